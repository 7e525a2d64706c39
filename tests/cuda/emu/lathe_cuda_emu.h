/* lathe_cuda_emu.h: the generated CUDA C compiled for the host (g++ -std=c++17 -DLATHE_CUDA_EMULATE -include
   this header), so that the tests run every kernel without a GPU. Each CUDA thread is a fiber with its own
   stack; the blocks of a launch run one after another and a block's threads switch only where CUDA
   synchronizes them (__syncthreads, __syncwarp, the warp shuffles, wmma's loads and stores), so a block that
   never synchronizes runs its threads one by one on one stack. __shared__ is `static`: one copy, shared by
   the block that runs. wmma fragments hold the whole tile in every lane; TF32 is rounded as cvt.rna.tf32.f32. */
#ifndef LATHE_CUDA_EMU_H
#define LATHE_CUDA_EMU_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __shared__ static
#define __constant__

struct LatheEmuDim3 {
    unsigned x, y, z;
};
/* set by the scheduler before it resumes a fiber (one OS thread runs all fibers) */
static LatheEmuDim3 threadIdx, blockIdx, blockDim, gridDim;

/* ---------------------------------------------------------------- fibers */

enum { LATHE_EMU_STACK = 256 << 10, LATHE_EMU_MAX_THREADS = 1024, LATHE_EMU_WARP = 32 };

#if defined(__x86_64__)
/* lathe_emu_swap(save, to): saves the callee-saved registers on this stack, stores its pointer in *save,
   and resumes the fiber whose stack pointer is `to`. A new fiber's stack holds r12 = argument, r13 =
   function, and lathe_emu_start as the return address. */
__asm__(".text\n"
        ".globl lathe_emu_swap\n.hidden lathe_emu_swap\n.globl lathe_emu_start\n.hidden lathe_emu_start\n"
        ".p2align 4\n"
        "lathe_emu_swap:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".p2align 4\n"
        "lathe_emu_start:\n"
        "  movq %r12, %rdi\n"
        "  callq *%r13\n"
        "  ud2\n");
extern "C" void lathe_emu_swap(void **save, void *to);
extern "C" void lathe_emu_start(void);

static void *lathe_emu_fiber_init(char *stack, size_t size, void (*fn)(void *), void *arg) {
    uintptr_t top = ((uintptr_t)(stack + size)) & ~(uintptr_t)15;
    void **sp = (void **)(top - 72); /* after the six pops and ret, %rsp is 16-byte aligned for the call */
    sp[0] = 0;                       /* r15 */
    sp[1] = 0;                       /* r14 */
    sp[2] = (void *)fn;              /* r13 */
    sp[3] = arg;                     /* r12 */
    sp[4] = 0;                       /* rbx */
    sp[5] = 0;                       /* rbp */
    sp[6] = (void *)lathe_emu_start;
    return sp;
}
#else
#error "lathe_cuda_emu.h: fibers are written for x86-64 only"
#endif

enum LatheEmuState { LATHE_EMU_NEW, LATHE_EMU_RUNNABLE, LATHE_EMU_WAIT, LATHE_EMU_DONE };

struct LatheEmuThread {
    void *sp;
    char *stack;
    LatheEmuState state;
    unsigned mma_calls; /* wmma::mma_sync calls since this thread last passed a barrier */
};

struct LatheEmu {
    void (*body)(void *);
    void *arg;
    unsigned nthreads, cur;
    void *sched_sp;
    LatheEmuThread th[LATHE_EMU_MAX_THREADS];
    /* barriers: arrivals against the threads still running (exited threads never block a barrier) */
    unsigned alive, block_arrived;
    unsigned warp_alive[LATHE_EMU_MAX_THREADS / LATHE_EMU_WARP], warp_arrived[LATHE_EMU_MAX_THREADS / LATHE_EMU_WARP];
    bool waits_warp[LATHE_EMU_MAX_THREADS];
    uint64_t lanes[LATHE_EMU_MAX_THREADS]; /* each lane's value in a shuffle */
    char *pool[LATHE_EMU_MAX_THREADS];     /* free stacks, reused across blocks and launches */
    unsigned npool;
    bool reverse; /* run a block's threads last to first: a race that thread order hid shows */
};
static LatheEmu lathe_emu;

[[noreturn]] static void lathe_emu_fail(const char *what) {
    fprintf(stderr, "lathe_cuda_emu: %s (block %u, thread %u)\n", what, blockIdx.x, threadIdx.x);
    abort();
}

static char *lathe_emu_stack_get(void) {
    if (lathe_emu.npool)
        return lathe_emu.pool[--lathe_emu.npool];
    /* a guard page below each stack: an overflow faults instead of corrupting its neighbour */
    char *p = (char *)mmap(NULL, LATHE_EMU_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                           -1, 0);
    if (p == MAP_FAILED || mprotect(p, 4096, PROT_NONE) != 0)
        lathe_emu_fail("out of memory for fiber stacks");
    return p;
}

/* Between launches every stack is in the pool: unmapped when the kernels' library is unloaded, so that a
   process that loads many keeps few mappings. */
__attribute__((destructor)) static void lathe_emu_unmap_stacks(void) {
    while (lathe_emu.npool)
        munmap(lathe_emu.pool[--lathe_emu.npool], LATHE_EMU_STACK);
}

/* Gives the CPU back to the scheduler until a barrier releases this thread. */
static void lathe_emu_yield(void) {
    LatheEmuThread *t = &lathe_emu.th[lathe_emu.cur];
    lathe_emu_swap(&t->sp, lathe_emu.sched_sp);
}

static void lathe_emu_release_block(void) {
    for (unsigned i = 0; i < lathe_emu.nthreads; i++)
        if (lathe_emu.th[i].state == LATHE_EMU_WAIT && !lathe_emu.waits_warp[i])
            lathe_emu.th[i].state = LATHE_EMU_RUNNABLE;
    lathe_emu.block_arrived = 0;
}

static void lathe_emu_release_warp(unsigned w) {
    unsigned end = (w + 1) * LATHE_EMU_WARP < lathe_emu.nthreads ? (w + 1) * LATHE_EMU_WARP : lathe_emu.nthreads;
    for (unsigned i = w * LATHE_EMU_WARP; i < end; i++)
        if (lathe_emu.th[i].state == LATHE_EMU_WAIT && lathe_emu.waits_warp[i])
            lathe_emu.th[i].state = LATHE_EMU_RUNNABLE;
    lathe_emu.warp_arrived[w] = 0;
}

/* A barrier of the block (warp = false) or of this thread's warp: the last thread to arrive releases the
   others and goes on; the others yield. */
static void lathe_emu_barrier(bool warp) {
    unsigned t = lathe_emu.cur, w = t / LATHE_EMU_WARP;
    lathe_emu.th[t].mma_calls = 0;
    unsigned *arrived = warp ? &lathe_emu.warp_arrived[w] : &lathe_emu.block_arrived;
    unsigned alive = warp ? lathe_emu.warp_alive[w] : lathe_emu.alive;
    if (++*arrived == alive) {
        if (warp)
            lathe_emu_release_warp(w);
        else
            lathe_emu_release_block();
        return;
    }
    lathe_emu.th[t].state = LATHE_EMU_WAIT;
    lathe_emu.waits_warp[t] = warp;
    lathe_emu_yield();
}

/* A thread that exits no longer holds back the barriers its block and warp wait at. */
static void lathe_emu_exit(void) {
    unsigned t = lathe_emu.cur, w = t / LATHE_EMU_WARP;
    lathe_emu.th[t].state = LATHE_EMU_DONE;
    lathe_emu.alive--;
    lathe_emu.warp_alive[w]--;
    if (lathe_emu.block_arrived && lathe_emu.block_arrived == lathe_emu.alive)
        lathe_emu_release_block();
    if (lathe_emu.warp_arrived[w] && lathe_emu.warp_arrived[w] == lathe_emu.warp_alive[w])
        lathe_emu_release_warp(w);
}

static void lathe_emu_thread_main(void *unused) {
    (void)unused;
    lathe_emu.body(lathe_emu.arg);
    lathe_emu_exit();
    lathe_emu_yield();
    lathe_emu_fail("a finished fiber was resumed");
}

/* Runs every thread of block b to its end. */
static void lathe_emu_run_block(unsigned b) {
    LatheEmu *e = &lathe_emu;
    blockIdx.x = b;
    e->alive = e->nthreads;
    e->block_arrived = 0;
    for (unsigned w = 0; w * LATHE_EMU_WARP < e->nthreads; w++) {
        e->warp_arrived[w] = 0;
        unsigned left = e->nthreads - w * LATHE_EMU_WARP;
        e->warp_alive[w] = left < LATHE_EMU_WARP ? left : (unsigned)LATHE_EMU_WARP;
    }
    for (unsigned i = 0; i < e->nthreads; i++)
        e->th[i].state = LATHE_EMU_NEW;
    for (;;) {
        bool ran = false, pending = false;
        for (unsigned k = 0; k < e->nthreads; k++) {
            unsigned i = e->reverse ? e->nthreads - 1 - k : k;
            LatheEmuThread *t = &e->th[i];
            if (t->state == LATHE_EMU_NEW) {
                t->stack = lathe_emu_stack_get();
                t->sp = lathe_emu_fiber_init(t->stack, LATHE_EMU_STACK, lathe_emu_thread_main, NULL);
            } else if (t->state != LATHE_EMU_RUNNABLE) {
                pending |= t->state == LATHE_EMU_WAIT;
                continue;
            }
            if (t->state == LATHE_EMU_NEW)
                t->mma_calls = 0;
            t->state = LATHE_EMU_RUNNABLE;
            e->cur = i;
            threadIdx.x = i;
            lathe_emu_swap(&e->sched_sp, t->sp);
            ran = true;
            if (t->state == LATHE_EMU_DONE)
                e->pool[e->npool++] = t->stack;
            else
                pending = true;
        }
        if (!pending)
            return;
        if (!ran)
            lathe_emu_fail("deadlock: threads wait at a barrier that the others never reach");
    }
}

template <class F> static void lathe_emu_trampoline(void *f) {
    (*(F *)f)();
}

/* kernel<<<grid, block>>>: f() runs as every thread of every block. */
template <class F> static void lathe_emu_launch(unsigned grid, unsigned block, F f) {
    if (block == 0 || block > LATHE_EMU_MAX_THREADS)
        lathe_emu_fail("a block of 0 or more than 1024 threads");
    lathe_emu.body = lathe_emu_trampoline<F>;
    lathe_emu.arg = &f;
    lathe_emu.nthreads = block;
    blockDim = LatheEmuDim3{block, 1, 1};
    gridDim = LatheEmuDim3{grid, 1, 1};
    threadIdx = blockIdx = LatheEmuDim3{0, 0, 0};
    for (unsigned b = 0; b < grid; b++)
        lathe_emu_run_block(b);
}

/* The order in which the threads of a block run between barriers: first to last (0), or last to first. The
   tests' driver finds it with dlsym. */
extern "C" __attribute__((visibility("default"))) void lathe_emu_set_reverse(int reverse) {
    lathe_emu.reverse = reverse != 0;
}

/* ---------------------------------------------------------------- synchronization and warps */

static inline void __syncthreads(void) {
    lathe_emu_barrier(false);
}
static inline void __syncwarp(unsigned mask = 0xffffffffu) {
    (void)mask;
    lathe_emu_barrier(true);
}

/* Every lane publishes v, then reads lane src's (its own v when src is outside the warp or has exited). */
template <class T> static T lathe_emu_shuffle(T v, int src) {
    static_assert(sizeof(T) <= 8, "a shuffled value has at most 8 bytes");
    unsigned t = lathe_emu.cur, base = t / LATHE_EMU_WARP * LATHE_EMU_WARP;
    memcpy(&lathe_emu.lanes[t], &v, sizeof v);
    lathe_emu_barrier(true);
    T r = v;
    unsigned s = base + (unsigned)src;
    if (src >= 0 && src < LATHE_EMU_WARP && s < lathe_emu.nthreads && lathe_emu.th[s].state != LATHE_EMU_DONE)
        memcpy(&r, &lathe_emu.lanes[s], sizeof r);
    lathe_emu_barrier(true); /* nobody publishes the next value before every lane has read this one */
    return r;
}

static inline int lathe_emu_lane(void) {
    return (int)(lathe_emu.cur % LATHE_EMU_WARP);
}

template <class T> static T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    (void)mask;
    int lane = lathe_emu_lane();
    return lathe_emu_shuffle(v, (lane & ~(width - 1)) + (src & (width - 1)));
}
template <class T> static T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    (void)mask;
    int lane = lathe_emu_lane(), src = lane + (int)delta;
    /* a lane whose source is past its segment keeps its own value */
    return lathe_emu_shuffle(v, (src & ~(width - 1)) == (lane & ~(width - 1)) ? src : lane);
}
template <class T> static T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    (void)mask;
    int lane = lathe_emu_lane(), src = lane - (int)delta;
    return lathe_emu_shuffle(v, src >= (lane & ~(width - 1)) ? src : lane);
}
template <class T> static T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    (void)mask;
    int lane = lathe_emu_lane(), src = lane ^ lane_mask;
    return lathe_emu_shuffle(v, (src & ~(width - 1)) == (lane & ~(width - 1)) ? src : lane);
}

/* one fiber runs at a time: a plain read-modify-write is atomic */
template <class T> static T atomicAdd(T *p, T v) {
    T old = *p;
    *p = old + v;
    return old;
}
template <class T> static T atomicMax(T *p, T v) {
    T old = *p;
    *p = old < v ? v : old;
    return old;
}
template <class T> static T atomicMin(T *p, T v) {
    T old = *p;
    *p = v < old ? v : old;
    return old;
}

/* ---------------------------------------------------------------- bits and math */

template <class To, class From> static inline To lathe_emu_bits(From x) {
    static_assert(sizeof(To) == sizeof(From), "same size");
    To r;
    memcpy(&r, &x, sizeof r);
    return r;
}
static inline float __int_as_float(int x) { return lathe_emu_bits<float>(x); }
static inline int __float_as_int(float x) { return lathe_emu_bits<int>(x); }
static inline float __uint_as_float(unsigned x) { return lathe_emu_bits<float>(x); }
static inline unsigned __float_as_uint(float x) { return lathe_emu_bits<unsigned>(x); }
static inline double __longlong_as_double(long long x) { return lathe_emu_bits<double>(x); }
static inline long long __double_as_longlong(double x) { return lathe_emu_bits<long long>(x); }

static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }

/* CUDA's integer min and max */
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
static inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }

/* ---------------------------------------------------------------- wmma */

namespace nvcuda {
namespace wmma {

struct matrix_a;
struct matrix_b;
struct accumulator;
struct row_major;
struct col_major;
namespace precision {
struct tf32;
}
enum layout_t { mem_row_major, mem_col_major };

template <class T> struct lathe_storage {
    typedef T type;
};
template <> struct lathe_storage<precision::tf32> {
    typedef float type;
};
template <class Use, int M, int N, int K> struct lathe_dims;
template <int M, int N, int K> struct lathe_dims<matrix_a, M, N, K> {
    enum { rows = M, cols = K };
};
template <int M, int N, int K> struct lathe_dims<matrix_b, M, N, K> {
    enum { rows = K, cols = N };
};
template <int M, int N, int K> struct lathe_dims<accumulator, M, N, K> {
    enum { rows = M, cols = N };
};

/* The whole tile in every lane, row by row (x's order is unspecified in CUDA: only elementwise use is
   portable, which is all the generator does with it). */
template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
    typedef typename lathe_storage<T>::type element_type;
    enum { rows = lathe_dims<Use, M, N, K>::rows, cols = lathe_dims<Use, M, N, K>::cols };
    static const int num_elements = rows * cols;
    element_type x[rows * cols];
};

template <class Use, int M, int N, int K, class T, class L, class V>
static void fill_fragment(fragment<Use, M, N, K, T, L> &f, const V &v) {
    for (int i = 0; i < f.num_elements; i++)
        f.x[i] = (typename fragment<Use, M, N, K, T, L>::element_type)v;
}

template <class F, class P> static void lathe_load(F &f, const P *p, unsigned ldm, bool col) {
    for (int r = 0; r < F::rows; r++)
        for (int c = 0; c < F::cols; c++)
            f.x[r * F::cols + c] = col ? p[(size_t)c * ldm + r] : p[(size_t)r * ldm + c];
    /* _sync: the warp loads together, so no lane runs ahead and overwrites what another has yet to load */
    __syncwarp();
}

template <class Use, int M, int N, int K, class T, class P>
static void load_matrix_sync(fragment<Use, M, N, K, T, row_major> &f, const P *p, unsigned ldm) {
    lathe_load(f, p, ldm, false);
}
template <class Use, int M, int N, int K, class T, class P>
static void load_matrix_sync(fragment<Use, M, N, K, T, col_major> &f, const P *p, unsigned ldm) {
    lathe_load(f, p, ldm, true);
}
template <int M, int N, int K, class T, class P>
static void load_matrix_sync(fragment<accumulator, M, N, K, T> &f, const P *p, unsigned ldm, layout_t l) {
    lathe_load(f, p, ldm, l == mem_col_major);
}

template <int M, int N, int K, class T, class P>
static void store_matrix_sync(P *p, const fragment<accumulator, M, N, K, T> &f, unsigned ldm, layout_t l) {
    for (int r = 0; r < M; r++)
        for (int c = 0; c < N; c++)
            (l == mem_col_major ? p[(size_t)c * ldm + r] : p[(size_t)r * ldm + c]) = f.x[r * N + c];
    __syncwarp();
}

/* cvt.rna.tf32.f32: 10 mantissa bits, to nearest, ties away from zero; NaN and infinity unchanged.
   -DLATHE_EMU_TF32_EXACT keeps float32 everywhere instead, so that a TF32 kernel's logic (tiles, indices)
   can be checked as tightly as a float32 kernel's. */
static inline float __float_to_tf32(float x) {
#ifdef LATHE_EMU_TF32_EXACT
    return x;
#endif
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) != 0x7f800000u)
        u = (u + 0x1000u) & ~0x1fffu;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* The tensor cores read only a TF32 operand's top 19 bits: what the code did not round is truncated. */
static inline float lathe_tf32_truncate(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u &= ~0x1fffu;
    memcpy(&x, &u, sizeof x);
    return x;
}
template <class T> static inline float lathe_operand(float x) {
    return x;
}
template <> inline float lathe_operand<precision::tf32>(float x) {
#ifdef LATHE_EMU_TF32_EXACT
    return x;
#endif
    return lathe_tf32_truncate(x);
}

template <int M, int N, int K, class TA, class LA, class TB, class LB, class TC>
static void mma_sync(fragment<accumulator, M, N, K, TC> &d, const fragment<matrix_a, M, N, K, TA, LA> &a,
                     const fragment<matrix_b, M, N, K, TB, LB> &b, const fragment<accumulator, M, N, K, TC> &c,
                     bool satf = false) {
    (void)satf;
    /* The lanes of a warp hold the same tiles and run one after another between two barriers: the first
       computes, and each other lane finds its i-th call's operands in the memo's i-th entry and copies the
       result (the operands are compared, so a memo that does not match is only a miss). */
    enum { MEMO = 64 };
    static struct {
        fragment<matrix_a, M, N, K, TA, LA> a;
        fragment<matrix_b, M, N, K, TB, LB> b;
        fragment<accumulator, M, N, K, TC> c, d;
        bool valid;
    } memo[MEMO];
    auto &m = memo[lathe_emu.th[lathe_emu.cur].mma_calls++ % MEMO];
    if (m.valid && memcmp(&a, &m.a, sizeof a) == 0 && memcmp(&b, &m.b, sizeof b) == 0 &&
        memcmp(&c, &m.c, sizeof c) == 0) {
        d = m.d;
        return;
    }
    m.a = a;
    m.b = b;
    m.c = c;
    TC out[M * N];
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            TC s = c.x[i * N + j];
            for (int k = 0; k < K; k++)
                s += (TC)lathe_operand<TA>(a.x[i * K + k]) * (TC)lathe_operand<TB>(b.x[k * N + j]);
            out[i * N + j] = s;
        }
    memcpy(m.d.x, out, sizeof out);
    m.valid = true;
    d = m.d;
}

} // namespace wmma
} // namespace nvcuda

#endif
