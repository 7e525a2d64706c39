/* pool_gemm.c: does splitting a GEMM by rows of its output between two threads, each calling a
   single-threaded OpenBLAS, run as fast as OpenBLAS's own two threads? For each GEMM of the fashion MLP's
   train step (bench/gemm_mlp.c's shapes) at batches 64 and 512, prints the GFLOP/s of one call with OpenBLAS
   at 1 thread, one call at 2 threads, and two threads (a spinning pair, the thread pool's best case) each
   computing half of the output rows at OpenBLAS 1 thread.
   usage: pool_gemm [SECONDS_PER_CASE]   build: cc -O2 -pthread bench/pool_gemm.c -lopenblas */
#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct Gemm {
    const char *what;
    CBLAS_TRANSPOSE ta, tb;
    int m, n, k; /* C is m x n; the batch appears as m or k */
    float *a, *b, *c;
} Gemm;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static float *buffer(size_t n) {
    float *p = malloc(n * sizeof *p);
    if (!p) {
        perror("pool_gemm");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return p;
}

/* Rows [lo, hi) of C = op(A) op(B): op(A)'s rows lo.. start at A + lo*k (not transposed, lda k) or at
   A + lo (transposed, A is k x m, lda m). */
static void gemm_rows(const Gemm *g, int lo, int hi) {
    int lda = g->ta == CblasNoTrans ? g->k : g->m, ldb = g->tb == CblasNoTrans ? g->n : g->k;
    const float *a = g->ta == CblasNoTrans ? g->a + (size_t)lo * g->k : g->a + lo;
    cblas_sgemm(CblasRowMajor, g->ta, g->tb, hi - lo, g->n, g->k, 1, a, lda, g->b, ldb, 0, g->c + (size_t)lo * g->n,
                g->n);
}

/* the second thread of the split mode: waits (spinning) for a new generation, runs the lower half's
   complement, counts itself done */
static atomic_int generation, done, quit;
static const Gemm *current;

static void *worker(void *arg) {
    (void)arg;
    int seen = 0;
    for (;;) {
        int gen;
        while ((gen = atomic_load_explicit(&generation, memory_order_acquire)) == seen)
            if (atomic_load_explicit(&quit, memory_order_relaxed))
                return NULL;
        seen = gen;
        gemm_rows(current, current->m / 2, current->m);
        atomic_fetch_add_explicit(&done, 1, memory_order_release);
    }
}

static void split_call(const Gemm *g) {
    current = g;
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    gemm_rows(g, 0, g->m / 2);
    while (atomic_load_explicit(&done, memory_order_acquire) == 0)
        ;
    atomic_store_explicit(&done, 0, memory_order_relaxed);
}

/* GFLOP/s of mode 1 (one call, OpenBLAS 1 thread), 2 (one call, 2 threads), 3 (split, 1 thread each) */
static double measure(const Gemm *g, int mode, double seconds) {
    openblas_set_num_threads(mode == 2 ? 2 : 1);
    long reps = 0;
    double t0 = now(), t;
    do {
        for (int i = 0; i < 10; i++)
            if (mode == 3)
                split_call(g);
            else
                gemm_rows(g, 0, g->m);
        reps += 10;
        t = now() - t0;
    } while (t < seconds);
    return 2.0 * g->m * g->n * g->k * (double)reps / t * 1e-9;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 0.2;
    pthread_t th;
    if (pthread_create(&th, NULL, worker, NULL) != 0) {
        perror("pool_gemm: pthread_create");
        return 1;
    }
    const int sizes[] = {784, 512, 512, 10}, batches[] = {64, 512};
    printf("%-28s %6s %6s %6s  %10s %10s %10s %7s\n", "gemm (C = m x n, depth k)", "m", "n", "k", "blas1_gf",
           "blas2_gf", "split2_gf", "split/b2");
    for (int bi = 0; bi < 2; bi++) {
        int nb = batches[bi];
        for (int l = 0; l < 3; l++) {
            int in = sizes[l], out = sizes[l + 1];
            float *x = buffer((size_t)nb * in), *w = buffer((size_t)out * in), *y = buffer((size_t)nb * out);
            float *gy = buffer((size_t)nb * out), *dw = buffer((size_t)out * in), *gx = buffer((size_t)nb * in);
            char name[3][40];
            snprintf(name[0], sizeof name[0], "b%d fwd x@W%d^T", nb, l);
            snprintf(name[1], sizeof name[1], "b%d dW%d = dy^T@x", nb, l);
            snprintf(name[2], sizeof name[2], "b%d dx%d = dy@W", nb, l);
            Gemm gs[3] = {
                {name[0], CblasNoTrans, CblasTrans, nb, out, in, x, w, y},
                {name[1], CblasTrans, CblasNoTrans, out, in, nb, gy, x, dw},
                {name[2], CblasNoTrans, CblasNoTrans, nb, in, out, gy, w, gx},
            };
            for (int i = 0; i < 3; i++) {
                if (i == 2 && l == 0) /* the input's gradient is never computed */
                    continue;
                const Gemm *g = &gs[i];
                double b1 = measure(g, 1, seconds), b2 = measure(g, 2, seconds), sp = measure(g, 3, seconds);
                printf("%-28s %6d %6d %6d  %10.1f %10.1f %10.1f %6.2fx\n", g->what, g->m, g->n, g->k, b1, b2, sp,
                       sp / b2);
            }
            free(x), free(w), free(y), free(gy), free(dw), free(gx);
        }
    }
    atomic_store(&quit, 1);
    pthread_join(th, NULL);
    return 0;
}
