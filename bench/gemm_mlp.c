/* gemm_mlp.c: the GEMM-bound limit of one training epoch of an MLP: the GEMMs of every step (forward,
   the gradient of each weight, the gradient of each hidden activation) through OpenBLAS alone, with the
   shapes and transpose flags Lathe's train step uses, and nothing else. usage: gemm_mlp THREADS BATCH
   SAMPLES LAYER_SIZES...   prints one JSON line with the epoch's seconds and samples per second. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
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

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: gemm_mlp THREADS BATCH SAMPLES SIZE0 SIZE1 [SIZE2 ...]\n");
        return 2;
    }
    openblas_set_num_threads(atoi(argv[1]));
    int n = atoi(argv[2]), samples = atoi(argv[3]), nl = argc - 5;
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
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, size[l + 1], size[l], 1, x[l], size[l], w[l],
                        size[l], 0, x[l + 1], size[l + 1]);
        for (int l = nl - 1; l >= 0; l--) {
            /* dW = dy^T @ x */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, size[l + 1], size[l], m, 1, g[l + 1], size[l + 1],
                        x[l], size[l], 0, dw[l], size[l]);
            if (l > 0) /* dx = dy @ W */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, size[l], size[l + 1], 1, g[l + 1],
                            size[l + 1], w[l], size[l], 0, g[l], size[l]);
        }
    }
    double s = now() - t0;
    printf("{\"impl\": \"openblas-gemm-only\", \"threads\": %s, \"batch\": %d, \"epoch_s\": %.3f, "
           "\"samples_per_s\": %.0f}\n", argv[1], n, s, samples / s);
    return 0;
}
