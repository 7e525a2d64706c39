/* kern_pool.c: the thread pool of lathe_kern.h: threads-1 persistent workers and the calling thread share
   the ranges of one loop at a time. A loop publishes its ranges as a ticket that every participant claims
   parts from with a compare-and-swap, so a worker that wakes late costs nothing: the caller takes the
   parts nobody claimed. Idle workers spin briefly on a generation counter (a kernel follows another within
   microseconds in a train step), then sleep on a futex so that the data loader and the driver's serial work
   get the cores. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "lathe_kern.h"

#include <assert.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Only executables that link OpenBLAS have it (the runtime tests do not). */
extern void openblas_set_num_threads(int n) __attribute__((weak));

/* A loop is split only when count * cost reaches this. Measured on the 2-core Zen4 (a loop of empty
   ranges): waking a spinning worker and collecting its range costs 0.5-0.8 us, waking a sleeping one 11-13 us
   (paid only after an idle spell of POOL_SPIN_NS). 64k flops or bytes are 5-15 us of a vectorized loop:
   several times the hot wake-up, so a split loop gains most of the second core. */
#define POOL_MIN_WORK 65536
/* How long an idle worker (and a caller waiting for the last range) spins before it sleeps. */
#define POOL_SPIN_NS 200000
#define POOL_MAX_THREADS 4096 /* --threads allows as many */

/* ticket: the generation of the loop (bits 40-63), its number of parts (bits 20-39) and the next part to
   claim (bits 0-19). The generation makes every loop's tickets distinct. */
#define TK_BITS 20
#define TK_MASK (((uint64_t)1 << TK_BITS) - 1)
#define TK_MAX_PARTS ((int64_t)TK_MASK)

typedef struct Pool {
    int threads;
    pthread_t *workers;
    /* the current loop: written by its caller before the ticket is published, read by a participant only
       after it claimed a part, rewritten only when every part is done */
    lathe_range_fn call;
    void *ctx;
    int64_t count;
    _Atomic uint64_t ticket;
    _Atomic uint32_t remaining;      /* parts not yet finished (a futex word for the waiting caller) */
    _Atomic uint32_t caller_waiting; /* the caller sleeps on remaining */
    _Atomic uint32_t wake_gen;       /* bumped per loop and at shutdown (the workers' futex word) */
    _Atomic uint32_t sleepers;       /* workers asleep or about to sleep on wake_gen */
    _Atomic bool quit;
    atomic_flag busy; /* held by the thread running a loop: a second outside caller runs its loop serially */
    uint32_t start_gen;
    bool exit_hook;
} Pool;

static Pool pool = {.threads = 1, .busy = ATOMIC_FLAG_INIT};
static int test_parts;

static _Thread_local int tl_index;
static _Thread_local bool tl_in_range; /* inside a range (or a worker): nested loops run serially */

static long futex(_Atomic uint32_t *word, int op, uint32_t val) {
    return syscall(SYS_futex, (uint32_t *)word, op, val, NULL, NULL, 0);
}

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins until *word differs from old, up to POOL_SPIN_NS; true when it changed. */
static bool spin_while_equal(_Atomic uint32_t *word, uint32_t old) {
    int64_t start = 0;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(word, memory_order_acquire) != old)
            return true;
        cpu_relax();
        if (i % 256 == 0) {
            int64_t t = now_ns();
            if (!start)
                start = t;
            else if (t - start > POOL_SPIN_NS)
                return false;
        }
    }
}

/* The start of part k of p over [0, count): count * k / p, without the overflow of count * k. */
static int64_t part_start(int64_t count, int64_t k, int64_t p) {
    return count / p * k + count % p * k / p;
}

/* Claims and runs parts of the current loop until none is left. */
static void run_parts(void) {
    uint64_t t = atomic_load_explicit(&pool.ticket, memory_order_acquire);
    for (;;) {
        uint64_t parts = (t >> TK_BITS) & TK_MASK, i = t & TK_MASK;
        if (i >= parts)
            return;
        if (!atomic_compare_exchange_weak_explicit(&pool.ticket, &t, t + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        int64_t count = pool.count, p = (int64_t)parts, k = (int64_t)i;
        pool.call(pool.ctx, part_start(count, k, p), part_start(count, k + 1, p));
        /* seq_cst with the caller's store to caller_waiting: one of the two sees the other */
        if (atomic_fetch_sub(&pool.remaining, 1) == 1 && atomic_load(&pool.caller_waiting))
            futex(&pool.remaining, FUTEX_WAKE_PRIVATE, 1);
        t = atomic_load_explicit(&pool.ticket, memory_order_acquire);
    }
}

/* The caller, its own parts done, waits for the workers' last ones: spinning, then asleep on remaining. */
static void wait_done(void) {
    int64_t start = 0;
    for (unsigned i = 1; atomic_load_explicit(&pool.remaining, memory_order_acquire); i++) {
        cpu_relax();
        if (i % 256)
            continue;
        int64_t t = now_ns();
        if (!start) {
            start = t;
        } else if (t - start > POOL_SPIN_NS) {
            /* seq_cst with the last worker's decrement: it sees caller_waiting, or we see 0 */
            atomic_store(&pool.caller_waiting, 1);
            uint32_t left;
            while ((left = atomic_load(&pool.remaining)) != 0)
                futex(&pool.remaining, FUTEX_WAIT_PRIVATE, left);
            atomic_store(&pool.caller_waiting, 0);
            return;
        }
    }
}

static void *worker_main(void *arg) {
    tl_index = (int)(intptr_t)arg;
    tl_in_range = true;
    /* the generation when the pool started, not now: a loop or a shutdown published before this thread
       first ran must not be missed */
    uint32_t seen = pool.start_gen;
    for (;;) {
        if (!spin_while_equal(&pool.wake_gen, seen)) {
            /* seq_cst with the caller's bump of wake_gen: it sees the sleeper, or the sleeper sees the bump */
            atomic_fetch_add(&pool.sleepers, 1);
            while (atomic_load(&pool.wake_gen) == seen)
                futex(&pool.wake_gen, FUTEX_WAIT_PRIVATE, seen);
            atomic_fetch_sub(&pool.sleepers, 1);
        }
        seen = atomic_load_explicit(&pool.wake_gen, memory_order_acquire);
        if (atomic_load_explicit(&pool.quit, memory_order_acquire))
            return NULL;
        run_parts();
    }
}

static void wake_workers(void) {
    atomic_fetch_add(&pool.wake_gen, 1);
    if (atomic_load(&pool.sleepers))
        futex(&pool.wake_gen, FUTEX_WAKE_PRIVATE, INT_MAX);
}

static void stop_workers(void) {
    if (!pool.workers)
        return;
    atomic_store_explicit(&pool.quit, true, memory_order_release);
    wake_workers();
    for (int i = 1; i < pool.threads; i++)
        pthread_join(pool.workers[i], NULL);
    free(pool.workers);
    pool.workers = NULL;
    pool.threads = 1;
    atomic_store(&pool.quit, false);
}

static void run_serial(int64_t count, int64_t parts, lathe_range_fn call, void *ctx) {
    bool outer = tl_in_range;
    tl_in_range = true;
    for (int64_t i = 0; i < parts; i++)
        call(ctx, part_start(count, i, parts), part_start(count, i + 1, parts));
    tl_in_range = outer;
}

static void run_loop(int64_t count, int64_t cost, lathe_range_fn call, void *ctx) {
    if (count <= 0)
        return;
    int64_t work;
    bool big = cost > 0 && (__builtin_mul_overflow(count, cost, &work) || work >= POOL_MIN_WORK);
    /* a nested loop is one range: the threads are busy with the outer one */
    int64_t parts = test_parts > 0 ? test_parts : big && !tl_in_range ? pool.threads : 1;
    if (parts > count)
        parts = count;
    if (parts > TK_MAX_PARTS)
        parts = TK_MAX_PARTS;
    if (parts < 2 || pool.threads < 2 || tl_in_range ||
        atomic_flag_test_and_set_explicit(&pool.busy, memory_order_acquire)) {
        run_serial(count, parts, call, ctx);
        return;
    }
    pool.call = call;
    pool.ctx = ctx;
    pool.count = count;
    atomic_store_explicit(&pool.remaining, (uint32_t)parts, memory_order_relaxed);
    uint64_t gen = (atomic_load_explicit(&pool.ticket, memory_order_relaxed) >> (2 * TK_BITS)) + 1;
    atomic_store_explicit(&pool.ticket, gen << (2 * TK_BITS) | (uint64_t)parts << TK_BITS, memory_order_release);
    wake_workers();
    tl_in_range = true;
    run_parts();
    tl_in_range = false;
    wait_done();
    atomic_flag_clear_explicit(&pool.busy, memory_order_release);
}

typedef struct KernelCall {
    lathe_kernel_fn k;
    uint8_t **bufs;
    int64_t n;
} KernelCall;

static void kernel_range(void *ctx, int64_t lo, int64_t hi) {
    KernelCall *c = ctx;
    c->k(c->bufs, c->n, lo, hi);
}

void lathe_run_kernel(lathe_kernel_fn k, uint8_t **bufs, int64_t n, int64_t count, int64_t cost) {
    KernelCall c = {k, bufs, n};
    run_loop(count, cost, kernel_range, &c);
}

void lathe_parallel_for(int64_t count, int64_t cost, lathe_range_fn fn, void *ctx) {
    run_loop(count, cost, fn, ctx);
}

static int cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* OpenBLAS runs single-threaded from here on: every GEMM is called inside a kernel's range (generated code
   splits a GEMM by rows, the window kernels by samples or channels), so the pool's threads and OpenBLAS's
   never oversubscribe the cores. No worker is left running at exit. */
void lathe_pool_init(int threads) {
    assert(!tl_in_range && "lathe_pool_init inside a parallel range");
    if (threads <= 0)
        threads = cores();
    if (threads > POOL_MAX_THREADS)
        threads = POOL_MAX_THREADS;
    stop_workers();
    if (!pool.exit_hook) {
        pool.exit_hook = true;
        atexit(stop_workers);
    }
    if (openblas_set_num_threads)
        openblas_set_num_threads(1);
    if (threads == 1 || !(pool.workers = calloc((size_t)threads, sizeof *pool.workers)))
        return;
    pool.start_gen = atomic_load(&pool.wake_gen);
    for (int i = 1; i < threads; i++) {
        if (pthread_create(&pool.workers[i], NULL, worker_main, (void *)(intptr_t)i) != 0) {
            /* fewer threads than asked: the pool works with those it has */
            threads = i;
            break;
        }
    }
    pool.threads = threads;
    if (threads == 1) {
        free(pool.workers);
        pool.workers = NULL;
    }
}

int lathe_pool_threads(void) {
    return pool.threads;
}

int lathe_pool_thread_index(void) {
    return tl_index;
}

void lathe_pool_test_split(int parts) {
    test_parts = parts > 0 ? parts : 0;
}
