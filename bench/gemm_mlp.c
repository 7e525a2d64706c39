/* gemm_mlp.c: the GEMM-bound limit of one training epoch of an MLP: the GEMMs of every step (forward,
   the gradient of each weight, the gradient of each hidden activation) through OpenBLAS alone, with the
   shapes and transpose flags Lathe's train step uses, and nothing else. THREADS is OpenBLAS's threads, or
   Tr (2r): T threads that split each GEMM by rows of its output, each calling a single-threaded OpenBLAS,
   as Lathe's thread pool runs a GEMM (a spinning pool: its best case). usage: gemm_mlp THREADS BATCH
   SAMPLES LAYER_SIZES...   prints one JSON line with the epoch's seconds and samples per second. */
#define BENCH_NAME "gemm_mlp"
#include "gemm_split.h"

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
