/* gemm_mlp.c: the GEMM-bound limit of one training epoch of an MLP: the GEMMs of every step (forward,
   the gradient of each weight, the gradient of each hidden activation) through OpenBLAS alone, with the
   shapes and transpose flags Lathe's train step uses, and nothing else. THREADS is OpenBLAS's threads, or
   Tr (2r): T threads that split each GEMM by rows of its output, each calling a single-threaded OpenBLAS,
   as Lathe's thread pool runs a GEMM (a spinning pool: its best case). usage: gemm_mlp THREADS BATCH
   SAMPLES LAYER_SIZES...   prints one JSON line with the epoch's seconds and samples per second. */
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
        perror("gemm_mlp");
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
        fprintf(stderr, "gemm_mlp: THREADS must be N or Nr (got '%s')\n", arg);
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
            perror("gemm_mlp: pthread_create");
            exit(1);
        }
        pthread_detach(th);
    }
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: gemm_mlp THREADS BATCH SAMPLES SIZE0 SIZE1 [SIZE2 ...]\n");
        return 2;
    }
    set_threads(argv[1]);
    int n = atoi(argv[2]), samples = atoi(argv[3]), nl = argc - 5;
    if (n < 1 || samples < 1) {
        fprintf(stderr, "gemm_mlp: BATCH and SAMPLES must be positive\n");
        return 2;
    }
    int *size = calloc((size_t)nl + 1, sizeof *size);
    float **w = calloc((size_t)nl, sizeof *w), **dw = calloc((size_t)nl, sizeof *dw);
    float **x = calloc((size_t)nl + 1, sizeof *x), **g = calloc((size_t)nl + 1, sizeof *g);
    for (int l = 0; l <= nl; l++) {
        size[l] = atoi(argv[4 + l]);
        x[l] = buffer((size_t)n * size[l]);
        g[l] = buffer((size_t)n * size[l]);
    }
    for (int l = 0; l < nl; l++) {
        w[l] = buffer((size_t)size[l + 1] * size[l]);
        dw[l] = buffer((size_t)size[l + 1] * size[l]);
    }
    double t0 = now();
    for (int done = 0; done < samples; done += n) {
        int m = samples - done < n ? samples - done : n;
        for (int l = 0; l < nl; l++) /* y = x @ W^T */
            gemm(CblasNoTrans, CblasTrans, m, size[l + 1], size[l], x[l], size[l], w[l], size[l], 0, x[l + 1],
                 size[l + 1]);
        for (int l = nl - 1; l >= 0; l--) {
            /* dW = dy^T @ x */
            gemm(CblasTrans, CblasNoTrans, size[l + 1], size[l], m, g[l + 1], size[l + 1], x[l], size[l], 0, dw[l],
                 size[l]);
            if (l > 0) /* dx = dy @ W: not the input's, the step never differentiates the data */
                gemm(CblasNoTrans, CblasNoTrans, m, size[l], size[l + 1], g[l + 1], size[l + 1], w[l], size[l], 0,
                     g[l], size[l]);
        }
    }
    double s = now() - t0;
    printf("{\"impl\": \"openblas-gemm-only\", \"threads\": \"%s\", \"batch\": %d, \"epoch_s\": %.3f, "
           "\"samples_per_s\": %.0f}\n", argv[1], n, s, samples / s);
    for (int l = 0; l <= nl; l++) {
        free(x[l]);
        free(g[l]);
        if (l < nl) {
            free(w[l]);
            free(dw[l]);
        }
    }
    free(size);
    free(w);
    free(dw);
    free(x);
    free(g);
    return 0;
}
