/* gemm_split.h: what the GEMM-bound benchmarks (gemm_mlp.c, gemm_cnn.c) share: a clock, random buffers,
   and the GEMM call that runs either on OpenBLAS's own threads or, with THREADS given as Tr, split by rows of
   its output over T threads that each call a single-threaded OpenBLAS, as Lathe's thread pool runs a GEMM.
   Included once by each program, which defines BENCH_NAME (its name, for messages) first. */
#ifndef BENCH_NAME
#error "define BENCH_NAME before including gemm_split.h"
#endif
#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static float *buffer(size_t n) {
    float *p = malloc(n * sizeof *p);
    if (!p) {
        perror(BENCH_NAME);
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return p;
}

/* ---- the row split (THREADS Tr): the calling thread and T-1 spinning workers each run a block of rows */
typedef struct Gemm {
    CBLAS_TRANSPOSE ta, tb;
    int m, n, k, lda, ldb, ldc;
    const float *a, *b;
    float beta, *c;
} Gemm;

static int split; /* threads splitting each GEMM; 0: one call on OpenBLAS's own threads */
static Gemm job;
static atomic_int posted, finished;

/* Rows [lo, hi) of C: op(A)'s row lo starts at A + lo lda (not transposed) or at A + lo (transposed). */
static void gemm_rows(const Gemm *g, int lo, int hi) {
    if (hi <= lo)
        return;
    const float *a = g->ta == CblasNoTrans ? g->a + (size_t)lo * g->lda : g->a + lo;
    cblas_sgemm(CblasRowMajor, g->ta, g->tb, hi - lo, g->n, g->k, 1, a, g->lda, g->b, g->ldb, g->beta,
                g->c + (size_t)lo * g->ldc, g->ldc);
}

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg, seen = 0;
    for (;;) {
        for (int spins = 0; atomic_load_explicit(&posted, memory_order_acquire) == seen; spins++)
            if (spins > 1000)
                sched_yield(); /* a busy machine: a spinning thread would take the core the other needs */
        seen++;
        gemm_rows(&job, (int)((int64_t)job.m * id / split), (int)((int64_t)job.m * (id + 1) / split));
        atomic_fetch_add_explicit(&finished, 1, memory_order_release);
    }
    return NULL;
}

/* C = op(A) op(B) + beta C, row-major, alpha 1. */
static void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc) {
    if (!split) {
        cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    job = (Gemm){ta, tb, m, n, k, lda, ldb, ldc, a, b, beta, c};
    atomic_store_explicit(&finished, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&posted, 1, memory_order_release);
    gemm_rows(&job, 0, m / split);
    for (int spins = 0; atomic_load_explicit(&finished, memory_order_acquire) < split - 1; spins++)
        if (spins > 1000)
            sched_yield();
}

/* THREADS: "T" (OpenBLAS's threads) or "Tr" (the row split); the workers of a split start here. */
static void set_threads(const char *arg) {
    int t = atoi(arg);
    if (t < 1 || (arg[strspn(arg, "0123456789")] != '\0' && strcmp(arg + strspn(arg, "0123456789"), "r") != 0)) {
        fprintf(stderr, BENCH_NAME ": THREADS must be N or Nr (got '%s')\n", arg);
        exit(2);
    }
    if (arg[strlen(arg) - 1] != 'r') {
        openblas_set_num_threads(t);
        return;
    }
    openblas_set_num_threads(1);
    split = t;
    for (int id = 1; id < t; id++) {
        pthread_t th;
        if (pthread_create(&th, NULL, worker, (void *)(intptr_t)id) != 0) {
            perror(BENCH_NAME ": pthread_create");
            exit(1);
        }
        pthread_detach(th);
    }
}

