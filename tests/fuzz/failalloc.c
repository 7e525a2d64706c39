/* failalloc.c: a main for the fuzz targets that runs each input again and again with its N-th allocation
   failed, for N = 1, 2, ... until a run ends with no failure injected, and checks after each run that every
   block the run allocated has been freed: the readers' paths under allocation failure end in a clean error,
   with no crash and no leak (issue 10; tests/fuzz/replay.cmake registers it as fuzz_failalloc_NAME).

   The target and Lathe's static libraries are linked with -Wl,--wrap=malloc,--wrap=calloc,... so that their
   calls reach the __wrap_ functions below. Allocations made inside shared libraries (libc's fopen, zlib's
   and libpng's buffers) are neither failed nor tracked, except jansson's, which the runtime routes through
   its own malloc (runtime/budget.c). A block is tracked from its allocation to its free in a table keyed by
   address, so that a free of a block the wrappers never saw is ignored. Single-threaded, as the targets are.
   With --fork first, each run is a child process: the compiler's exit on out of memory (by design: a message
   and status 1) then ends that run alone, and a crash is reported with its N.
     FAILALLOC_N=K      run each input only with its K-th allocation failed
     FAILALLOC_TRACE=S  print a backtrace of each run's S-th allocation (the numbers a leak report gives) */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <execinfo.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
int __real_posix_memalign(void **out, size_t align, size_t n);

/* ---------------------------------------------------------------- the live blocks */

#define SLOTS (1u << 18) /* a power of two, far above the blocks a target holds at once */

static void *slot_ptr[SLOTS];
static unsigned long slot_seq[SLOTS]; /* the block's allocation number within its run */
static unsigned long slot_run[SLOTS]; /* and its run */
static unsigned long nlive, run_id;
static unsigned long run_live; /* of nlive, the blocks of the run run_id */

static size_t slot_of(const void *p) {
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 44) & (SLOTS - 1);
}

static void track(void *p, unsigned long seq) {
    if (nlive >= SLOTS / 2) {
        fprintf(stderr, "failalloc: more than %u blocks live at once\n", SLOTS / 2);
        abort();
    }
    size_t i = slot_of(p);
    while (slot_ptr[i])
        i = (i + 1) & (SLOTS - 1);
    slot_ptr[i] = p;
    slot_seq[i] = seq;
    slot_run[i] = run_id;
    nlive++;
    run_live++;
}

/* Removes p (linear probing, deletion by shifting back the entries after it); false when untracked. */
static bool untrack(const void *p) {
    size_t i = slot_of(p);
    while (slot_ptr[i] && slot_ptr[i] != p)
        i = (i + 1) & (SLOTS - 1);
    if (!slot_ptr[i])
        return false;
    slot_ptr[i] = NULL;
    nlive--;
    run_live -= slot_run[i] == run_id;
    for (size_t j = (i + 1) & (SLOTS - 1); slot_ptr[j]; j = (j + 1) & (SLOTS - 1)) {
        size_t home = slot_of(slot_ptr[j]);
        /* the entry at j may move to the hole at i unless its home lies cyclically in (i, j] */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays)
            continue;
        slot_ptr[i] = slot_ptr[j];
        slot_seq[i] = slot_seq[j];
        slot_run[i] = slot_run[j];
        slot_ptr[j] = NULL;
        i = j;
    }
    return true;
}

/* ---------------------------------------------------------------- the wrappers */

static bool armed;            /* inside a run of the target */
static unsigned long calls;   /* allocations in this run */
static unsigned long fail_at; /* the allocation to fail (0: none) */
static bool injected;         /* this run's fail_at was reached */
static unsigned long trace_at;

/* The number of this allocation in its run, or 0 when it is to fail. */
static unsigned long next_call(void) {
    if (!armed)
        return ULONG_MAX;
    unsigned long n = ++calls;
    if (n == trace_at) {
        void *frames[64];
        fprintf(stderr, "failalloc: allocation %lu of the run (N = %lu):\n", n, fail_at);
        backtrace_symbols_fd(frames, backtrace(frames, 64), 2);
    }
    if (n != fail_at)
        return n;
    injected = true;
    return 0;
}

void *__wrap_malloc(size_t n) {
    unsigned long seq = next_call();
    if (!seq) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = __real_malloc(n);
    if (p && armed)
        track(p, seq);
    return p;
}

void *__wrap_calloc(size_t k, size_t n) {
    unsigned long seq = next_call();
    if (!seq) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = __real_calloc(k, n);
    if (p && armed)
        track(p, seq);
    return p;
}

void *__wrap_realloc(void *p, size_t n) {
    unsigned long seq = next_call();
    if (!seq) {
        errno = ENOMEM;
        return NULL;
    }
    bool tracked = p && untrack(p);
    void *q = __real_realloc(p, n);
    if (!q && tracked)
        track(p, seq); /* still held by the caller */
    else if (q && armed && (tracked || !p))
        track(q, seq);
    return q;
}

void __wrap_free(void *p) {
    if (p)
        untrack(p);
    __real_free(p);
}

char *__wrap_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = __wrap_malloc(n);
    return p ? memcpy(p, s, n) : NULL;
}

char *__wrap_strndup(const char *s, size_t n) {
    size_t len = strnlen(s, n);
    char *p = __wrap_malloc(len + 1);
    if (!p)
        return NULL;
    memcpy(p, s, len);
    p[len] = 0;
    return p;
}

int __wrap_posix_memalign(void **out, size_t align, size_t n) {
    unsigned long seq = next_call();
    if (!seq)
        return ENOMEM;
    int rc = __real_posix_memalign(out, align, n);
    if (rc == 0 && armed)
        track(*out, seq);
    return rc;
}

/* ---------------------------------------------------------------- the runs */

/* One run of the target with allocation n failed; returns the blocks it left allocated. */
static unsigned long run(const uint8_t *data, size_t size, unsigned long n) {
    run_id++;
    run_live = 0;
    calls = 0;
    fail_at = n;
    injected = false;
    armed = true;
    LLVMFuzzerTestOneInput(data, size);
    armed = false;
    return run_live;
}

/* The leak of the last run, with the allocation numbers of up to 8 of its blocks still live. */
static void print_leaked(const char *path, unsigned long n, unsigned long leaked) {
    char how[64] = "with no allocation failed";
    if (n)
        snprintf(how, sizeof how, "with allocation %lu failed", n);
    fprintf(stderr, "%s: %s, %lu block%s the run allocated %s still allocated after it:", path, how, leaked,
            leaked == 1 ? "" : "s", leaked == 1 ? "is" : "are");
    int shown = 0;
    for (size_t i = 0; i < SLOTS && shown < 8; i++)
        if (slot_ptr[i] && slot_run[i] == run_id) {
            fprintf(stderr, " %lu", slot_seq[i]);
            shown++;
        }
    fprintf(stderr, " (allocation numbers of the run; rerun with FAILALLOC_N=%lu FAILALLOC_TRACE=NUMBER)\n", n);
}

/* How a run ended (a child's exit status); a target that exits by itself (the compiler's xmalloc on out of
   memory: a message and status 1) or dies of a signal ends otherwise. */
enum { RUN_COMPLETE = 60, RUN_FAILED_CLEAN, RUN_LEAKED };

static int ended(const char *path, unsigned long n, unsigned long leaked) {
    if (leaked)
        print_leaked(path, n, leaked);
    return leaked ? RUN_LEAKED : injected ? RUN_FAILED_CLEAN : RUN_COMPLETE;
}

static bool forking; /* --fork */

/* One run, in a child process with --fork. */
static int run_child(const char *path, const uint8_t *data, size_t size, unsigned long n) {
    if (!forking)
        return ended(path, n, run(data, size, n));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("failalloc: fork");
        exit(2);
    }
    if (pid == 0) {
        int code = ended(path, n, run(data, size, n));
        fflush(NULL);
        _exit(code);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            perror("failalloc: waitpid");
            exit(2);
        }
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "%s: with allocation %lu failed, the run was killed by signal %d (%s)\n", path, n,
                WTERMSIG(status), strsignal(WTERMSIG(status)));
        return -1;
    }
    int code = WEXITSTATUS(status);
    if (code == RUN_COMPLETE || code == RUN_FAILED_CLEAN || code == RUN_LEAKED)
        return code;
    if (n == 0) {
        fprintf(stderr, "%s: the run without a failure exited with status %d\n", path, code);
        return -1;
    }
    return code == 1 ? RUN_FAILED_CLEAN : -1; /* the compiler's exit on out of memory */
}

static long runs_done;
static const char *current; /* the input being swept, for a crash's message */

/* A crash of an in-process run: which input and which N, then the signal's own action. */
static void on_crash(int sig) {
    char msg[4400];
    int n = snprintf(msg, sizeof msg, "failalloc: %s: with allocation %lu failed, the run got signal %d (rerun "
                     "with FAILALLOC_N=%lu)\n", current ? current : "?", fail_at, sig, fail_at);
    if (n > 0 && write(2, msg, (size_t)n) < 0) { /* nothing more to do */
    }
    raise(sig);
}

/* Every N for one input; returns the number of runs that leaked or crashed. */
static int sweep(const char *path, const uint8_t *data, size_t size) {
    unsigned long only = strtoul(getenv("FAILALLOC_N") ? getenv("FAILALLOC_N") : "0", NULL, 10);
    /* a run without a failure first, in this process: a target's one-time set-up (its folder, a cache) is
       made before the children start, and is not a leak */
    current = path;
    run(data, size, 0);
    unsigned long total = calls;
    int bad = run_child(path, data, size, 0) != RUN_COMPLETE;
    for (unsigned long n = only ? only : 1;; n++) {
        int r = run_child(path, data, size, n);
        runs_done++;
        bad += r < 0 || r == RUN_LEAKED;
        if (r == RUN_COMPLETE || only || bad >= 3) /* the first few: one leak tends to show at many N */
            break;
    }
    printf("%s: %lu allocations, each failed in turn: %s\n", path, total, bad ? "FAILED" : "no leak, no crash");
    return bad;
}

static int sweep_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size > (1 << 24)) {
        fprintf(stderr, "%s: not a file of at most 16 MiB\n", path);
        fclose(f);
        return 1;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *data = __real_malloc(size ? size : 1);
    if (!data || fread(data, 1, size, f) != size) {
        fprintf(stderr, "%s: cannot read\n", path);
        fclose(f);
        __real_free(data);
        return 1;
    }
    fclose(f);
    int bad = sweep(path, data, size);
    __real_free(data);
    return bad;
}

int main(int argc, char **argv) {
    trace_at = strtoul(getenv("FAILALLOC_TRACE") ? getenv("FAILALLOC_TRACE") : "0", NULL, 10);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct sigaction sa = {.sa_handler = on_crash, .sa_flags = (int)SA_RESETHAND};
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGABRT, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    int inputs = 0, bad = 0, first = 1;
    if (argc > 1 && strcmp(argv[1], "--fork") == 0) {
        forking = true;
        first = 2;
    }
    for (int i = first; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0 || !S_ISDIR(st.st_mode)) {
            bad += sweep_file(argv[i]);
            inputs++;
            continue;
        }
        struct dirent **ents;
        int n = scandir(argv[i], &ents, NULL, alphasort);
        for (int k = 0; k < n; k++) {
            if (ents[k]->d_name[0] != '.') {
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", argv[i], ents[k]->d_name);
                bad += sweep_file(path);
                inputs++;
            }
            free(ents[k]);
        }
        free(ents);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%d inputs, %ld runs with one allocation failed, %.1f s: %s\n", inputs, runs_done,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
           bad ? "leaks or crashes found" : "no leak, no crash");
    return bad || inputs == 0;
}
