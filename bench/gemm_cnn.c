/* gemm_cnn.c: the GEMM-bound limit of one training epoch of models/fashion_cnn.lathe: the GEMMs that an
   im2col lowering of its two convolutions runs in every step, plus its Linear layers' GEMMs, through
   OpenBLAS alone and nothing else (no im2col copies, no pooling, no elementwise work, no data loading).
   Shapes and transpose flags are those of runtime/kern_window.c and of the matmuls of Lathe's train step
   (`lathe ir models/fashion_cnn.lathe --after dce`):
     conv forward        y [O, n OHW]    = w [O, K] @ cols [K, n OHW]          (K = C KH KW)
     conv input grad     cols [K, n OHW] = w^T @ gy [O, n OHW]                 (conv2 only: the step never
                                                                                 differentiates the image)
     conv weight grad    gw [O, K]       = gy [O, n OHW] @ cols^T
     linear forward      y [n, out]      = x [n, in] @ W^T
     linear weight grad  dW [out, in]    = dy^T @ x
     linear input grad   dx [n, in]      = dy @ W                               (both layers: conv2 below)
   The columns of a chunk of samples sit side by side in one GEMM, as the runtime's kernels do. How many
   samples per GEMM is fastest depends on the shape (one sample of conv1 is a [32, 9] x [9, 784] GEMM bound by
   memory; a whole batch of conv2 spills the caches), so by default each convolution takes the fastest chunk
   of 1, 2, 4, ... samples up to the batch, timed over a few batches first: the limit is the best an im2col
   lowering could do, not one choice of it. CHUNK fixes the samples per GEMM instead (0: the whole batch).
   THREADS is OpenBLAS's threads, or Tr (2r): T threads that split each GEMM by rows of its output, each
   calling a single-threaded OpenBLAS, as Lathe's thread pool runs a GEMM (a spinning pool: its best case).
   usage: gemm_cnn THREADS BATCH SAMPLES [CHUNK]
   prints one JSON line with the epoch's seconds, samples per second and the chunks taken. */
#define BENCH_NAME "gemm_cnn"
#include "gemm_split.h"


/* fashion_cnn: Conv2d(1, 32, 3, padding=1) on 28x28, Conv2d(32, 64, 3, padding=1) on 14x14 (3x3, stride 1,
   so OH = H); then Linear(3136, 128), Linear(128, 10). */
typedef struct Conv {
    int c, o, hw, k; /* channels in, out, the output plane (OH OW), the GEMMs' inner dim C KH KW */
    int input_grad;  /* whether the step computes its input's gradient */
    float *w, *gw, *cols, *y;
} Conv;

static Conv convs[] = {
    {1, 32, 28 * 28, 1 * 3 * 3, 0, NULL, NULL, NULL, NULL},
    {32, 64, 14 * 14, 32 * 3 * 3, 1, NULL, NULL, NULL, NULL},
};
enum { NCONV = sizeof convs / sizeof convs[0] };

static const int sizes[] = {64 * 7 * 7, 128, 10};
enum { NLIN = sizeof sizes / sizeof sizes[0] - 1 };

static void conv_gemms(Conv *cv, int m, int chunk, int backward) {
    for (int s0 = 0; s0 < m; s0 += chunk) {
        int ns = m - s0 < chunk ? m - s0 : chunk, ld = ns * cv->hw;
        if (!backward) {
            gemm(CblasNoTrans, CblasNoTrans, cv->o, ld, cv->k, cv->w, cv->k, cv->cols, ld, 0, cv->y, ld);
            continue;
        }
        if (cv->input_grad)
            gemm(CblasTrans, CblasNoTrans, cv->k, ld, cv->o, cv->w, cv->k, cv->y, ld, 0, cv->cols, ld);
        /* beta 1: the weight's gradient sums over the chunks of the batch */
        gemm(CblasNoTrans, CblasTrans, cv->o, cv->k, ld, cv->y, ld, cv->cols, ld, s0 == 0 ? 0 : 1, cv->gw, cv->k);
    }
}

/* The fastest samples per GEMM for convolution cv at batch n: each of 1, 2, 4, ... n timed on its forward and
   backward GEMMs over a few batches (after one to warm up). Its buffers must hold n samples. */
static int fastest_chunk(Conv *cv, int n) {
    int best = n;
    double best_s = 1e30;
    for (int c = 1;; c = c * 2 < n ? c * 2 : n) {
        conv_gemms(cv, n, c, 0);
        double t0 = now();
        for (int r = 0; r < 5; r++) {
            conv_gemms(cv, n, c, 0);
            conv_gemms(cv, n, c, 1);
        }
        double s = now() - t0;
        if (s < best_s) {
            best_s = s;
            best = c;
        }
        if (c == n)
            return best;
    }
}

int main(int argc, char **argv) {
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: gemm_cnn THREADS BATCH SAMPLES [CHUNK]\n");
        return 2;
    }
    set_threads(argv[1]);
    int n = atoi(argv[2]), samples = atoi(argv[3]), fixed = argc > 4 ? atoi(argv[4]) : -1;
    if (n < 1 || samples < 1) {
        fprintf(stderr, "gemm_cnn: BATCH and SAMPLES must be positive\n");
        return 2;
    }
    int chunk[NCONV];
    for (int i = 0; i < NCONV; i++) {
        Conv *cv = &convs[i];
        cv->w = buffer((size_t)cv->o * cv->k);
        cv->gw = buffer((size_t)cv->o * cv->k);
        cv->cols = buffer((size_t)cv->k * n * cv->hw);
        cv->y = buffer((size_t)cv->o * n * cv->hw);
        chunk[i] = fixed < 0 ? fastest_chunk(cv, n) : fixed == 0 || fixed > n ? n : fixed;
    }
    float *w[NLIN], *dw[NLIN], *x[NLIN + 1], *g[NLIN + 1];
    for (int l = 0; l <= NLIN; l++) {
        x[l] = buffer((size_t)n * sizes[l]);
        g[l] = buffer((size_t)n * sizes[l]);
    }
    for (int l = 0; l < NLIN; l++) {
        w[l] = buffer((size_t)sizes[l + 1] * sizes[l]);
        dw[l] = buffer((size_t)sizes[l + 1] * sizes[l]);
    }
    double t0 = now();
    for (int done = 0; done < samples; done += n) {
        int m = samples - done < n ? samples - done : n;
        for (int i = 0; i < NCONV; i++)
            conv_gemms(&convs[i], m, chunk[i], 0);
        for (int l = 0; l < NLIN; l++) /* y = x @ W^T */
            gemm(CblasNoTrans, CblasTrans, m, sizes[l + 1], sizes[l], x[l], sizes[l], w[l], sizes[l], 0, x[l + 1],
                 sizes[l + 1]);
        for (int l = NLIN - 1; l >= 0; l--) {
            /* dW = dy^T @ x */
            gemm(CblasTrans, CblasNoTrans, sizes[l + 1], sizes[l], m, g[l + 1], sizes[l + 1], x[l], sizes[l], 0,
                 dw[l], sizes[l]);
            /* dx = dy @ W: every layer's, the first's goes on through the pooling into conv2 */
            gemm(CblasNoTrans, CblasNoTrans, m, sizes[l], sizes[l + 1], g[l + 1], sizes[l + 1], w[l], sizes[l], 0,
                 g[l], sizes[l]);
        }
        for (int i = NCONV - 1; i >= 0; i--)
            conv_gemms(&convs[i], m, chunk[i], 1);
    }
    double s = now() - t0;
    printf("{\"impl\": \"openblas-gemm-only\", \"threads\": \"%s\", \"batch\": %d, \"chunks\": [%d, %d], "
           "\"epoch_s\": %.3f, \"samples_per_s\": %.0f}\n", argv[1], n, chunk[0], chunk[1], s, samples / s);
    for (int i = 0; i < NCONV; i++) {
        free(convs[i].w);
        free(convs[i].gw);
        free(convs[i].cols);
        free(convs[i].y);
    }
    for (int l = 0; l <= NLIN; l++) {
        free(x[l]);
        free(g[l]);
        if (l < NLIN) {
            free(w[l]);
            free(dw[l]);
        }
    }
    return 0;
}
