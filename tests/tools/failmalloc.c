/* failmalloc.c: a fault-injection shim for the e2e tests (tests/e2e/faults_malloc.sh), built as a shared
   library and loaded with LD_PRELOAD. It counts the calls to malloc, calloc, realloc, posix_memalign,
   aligned_alloc and memalign made once main has started, and fails one of them as the C library does when
   memory runs out (NULL, or ENOMEM from posix_memalign). The allocations of the dynamic loader and of
   libraries' constructors are not counted: a program can do nothing about those.
     FAILMALLOC_N=K        fail the K-th counted allocation (1-based); unset or 0: fail none
     FAILMALLOC_REPORT=F   write the number of counted allocations to the file F at exit
     FAILMALLOC_TRACE=1    print a backtrace of the failed call to stderr (for finding what crashed)
   It takes the allocator's own entry points (__libc_malloc and the like, exported by glibc), so it needs no
   dlsym to find them and allocates nothing itself. free is left alone. Linux and glibc only. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static volatile int armed;      /* main has started */
static unsigned long fail_at;   /* FAILMALLOC_N */
static unsigned long calls;     /* counted allocations */

static unsigned long env_count(const char *name) {
    const char *v = getenv(name);
    return v ? strtoul(v, NULL, 10) : 0;
}

/* Whether this allocation is the one to fail. */
static bool should_fail(void) {
    if (!armed)
        return false;
    unsigned long n = __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
    if (n != fail_at)
        return false;
    if (getenv("FAILMALLOC_TRACE")) {
        void *frames[64];
        int k = backtrace(frames, 64); /* may allocate: counted past fail_at, never failed */
        static const char head[] = "failmalloc: failing this allocation:\n";
        if (write(2, head, sizeof head - 1) < 0) { /* nothing to do about it */
        }
        backtrace_symbols_fd(frames, k, 2);
    }
    return true;
}

void *malloc(size_t n) {
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_malloc(n);
}

void *calloc(size_t k, size_t n) {
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_calloc(k, n);
}

void *realloc(void *p, size_t n) {
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_realloc(p, n);
}

void *memalign(size_t align, size_t n) {
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n) { return memalign(align, n); }

int posix_memalign(void **out, size_t align, size_t n) {
    if (align < sizeof(void *) || (align & (align - 1)))
        return EINVAL;
    if (should_fail())
        return ENOMEM;
    void *p = __libc_memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

/* ---------------------------------------------------------------- counting from main */
typedef int (*MainFn)(int, char **, char **);
typedef int (*StartFn)(MainFn, int, char **, void (*)(void), void (*)(void), void (*)(void), void *);
static MainFn real_main;

static void report(void) {
    const char *path = getenv("FAILMALLOC_REPORT");
    if (!path)
        return;
    armed = 0;
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%lu\n", __atomic_load_n(&calls, __ATOMIC_RELAXED));
        fclose(f);
    }
}

static int counted_main(int argc, char **argv, char **envp) {
    fail_at = env_count("FAILMALLOC_N");
    atexit(report); /* registered before main: runs after main's own exit handlers */
    armed = 1;
    return real_main(argc, argv, envp);
}

/* glibc calls this to run main: the wrapper arms the counter just before main. */
int __libc_start_main(MainFn main_fn, int argc, char **argv, void (*init)(void), void (*fini)(void),
                      void (*rtld_fini)(void), void *stack_end) {
    StartFn next = (StartFn)dlsym(RTLD_NEXT, "__libc_start_main");
    if (!next)
        abort();
    real_main = main_fn;
    return next(counted_main, argc, argv, init, fini, rtld_fini, stack_end);
}
