/* conv_kernels.c: times each window op of one fashion_cnn training step (batch 64) through the kernels of
   runtime/kern_window.c, as generated code calls them: the two convolutions forward and backward (conv1's
   input gradient is never needed: x is data), the two 2x2 max poolings forward and backward. Prints one
   line per op, "name milliseconds": the fastest of REPS calls after a warm-up call, since the machine may
   be shared and the minimum is what other load disturbs least. bench/conv_kernels.sh puts them beside
   PyTorch's. usage: conv_kernels THREADS [REPS] [f32|f64]
   build (from the repository root), -O2 as the RelWithDebInfo build that liblathe_rt.a comes from:
       cc -O2 -Iruntime bench/conv_kernels.c runtime/kern_window.c -o conv_kernels -lopenblas -lpthread -lm
   (BEFORE=old/kern_window.c bench/conv_kernels.sh times another version of the file the same way). */
#include "lathe_kern.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

/* A buffer of count elements of size elsize, values in [-1, 1); relu leaves half of them 0, as the
   activations that a pooling after ReLU reads (ties included). */
static void *buffer(size_t count, size_t elsize, int relu)
{
    void *p = malloc(count * elsize);
    if (!p) {
        perror("conv_kernels");
        exit(1);
    }
    for (size_t i = 0; i < count; i++) {
        double v = (double)rand() / RAND_MAX * 2 - 1;
        if (relu && v < 0)
            v = 0;
        if (elsize == sizeof(float))
            ((float *)p)[i] = (float)v;
        else
            ((double *)p)[i] = v;
    }
    return p;
}

/* One op: its kernel, its output and inputs as [n, c, h, w] (n -1 = the batch) and its window attributes. */
typedef struct Bench {
    const char *name;
    LatheKernFn f32, f64;
    int nin;
    int64_t dims[3][4]; /* output, input 0, input 1 */
    int relu[2];        /* whether input i holds post-ReLU values */
    int64_t window, stride, pad;
} Bench;

static void make_desc(const Bench *b, int64_t *desc)
{
    memset(desc, 0, sizeof(int64_t) * 64);
    desc[0] = b->nin;
    desc[1] = 4;
    memcpy(LATHE_KD_OUT_DIMS(desc), b->dims[0], sizeof b->dims[0]);
    for (int i = 0; i < b->nin; i++) {
        desc[10 + 9 * i] = 4;
        memcpy(LATHE_KD_IN_DIMS(desc, i), b->dims[1 + i], sizeof b->dims[0]);
    }
    int64_t *a = LATHE_KD_ATTRS(desc);
    a[LATHE_KA_WINDOW_H] = a[LATHE_KA_WINDOW_W] = b->window;
    a[LATHE_KA_STRIDE_H] = a[LATHE_KA_STRIDE_W] = b->stride;
    a[LATHE_KA_PAD_H] = a[LATHE_KA_PAD_W] = b->pad;
    a[LATHE_KA_DILATION_H] = a[LATHE_KA_DILATION_W] = 1;
    a[LATHE_KA_GROUPS] = 1;
}

static size_t numel(const int64_t d[4], int64_t n)
{
    return (size_t)((d[0] == -1 ? n : d[0]) * d[1] * d[2] * d[3]);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define K(op) lathe_k_##op##_f32, lathe_k_##op##_f64

static const Bench benches[] = {
    {"conv1_fwd", K(conv2d), 2, {{-1, 32, 28, 28}, {-1, 1, 28, 28}, {32, 1, 3, 3}}, {0, 0}, 0, 1, 1},
    {"conv1_bwd_weight", K(conv2d_bwd_weight), 2, {{32, 1, 3, 3}, {-1, 1, 28, 28}, {-1, 32, 28, 28}}, {0, 0}, 0, 1, 1},
    {"pool1_fwd", K(max_pool2d), 1, {{-1, 32, 14, 14}, {-1, 32, 28, 28}}, {1, 0}, 2, 2, 0},
    {"pool1_bwd", K(max_pool2d_bwd), 2, {{-1, 32, 28, 28}, {-1, 32, 28, 28}, {-1, 32, 14, 14}}, {1, 0}, 2, 2, 0},
    {"conv2_fwd", K(conv2d), 2, {{-1, 64, 14, 14}, {-1, 32, 14, 14}, {64, 32, 3, 3}}, {1, 0}, 0, 1, 1},
    {"conv2_bwd_input", K(conv2d_bwd_input), 2, {{-1, 32, 14, 14}, {-1, 64, 14, 14}, {64, 32, 3, 3}}, {0, 0}, 0, 1, 1},
    {"conv2_bwd_weight", K(conv2d_bwd_weight), 2, {{64, 32, 3, 3}, {-1, 32, 14, 14}, {-1, 64, 14, 14}}, {1, 0},
     0, 1, 1},
    {"pool2_fwd", K(max_pool2d), 1, {{-1, 64, 7, 7}, {-1, 64, 14, 14}}, {1, 0}, 2, 2, 0},
    {"pool2_bwd", K(max_pool2d_bwd), 2, {{-1, 64, 14, 14}, {-1, 64, 14, 14}, {-1, 64, 7, 7}}, {1, 0}, 2, 2, 0},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: conv_kernels THREADS [REPS] [f32|f64]\n");
        return 2;
    }
    int threads = atoi(argv[1]), reps = argc > 2 ? atoi(argv[2]) : 30;
    int f64 = argc > 3 && strcmp(argv[3], "f64") == 0;
    size_t elsize = f64 ? sizeof(double) : sizeof(float);
    int64_t n = 64;
    if (reps < 1)
        reps = 1;
    openblas_set_num_threads(threads);
    double *times = malloc(sizeof(double) * (size_t)reps), total = 0;
    for (size_t i = 0; i < sizeof benches / sizeof benches[0]; i++) {
        const Bench *b = &benches[i];
        int64_t desc[64];
        make_desc(b, desc);
        void *out = buffer(numel(b->dims[0], n), elsize, 0);
        const void *in[2] = {NULL, NULL};
        for (int k = 0; k < b->nin; k++)
            in[k] = buffer(numel(b->dims[1 + k], n), elsize, b->relu[k]);
        LatheKernFn fn = f64 ? b->f64 : b->f32;
        fn(out, in, n, desc);
        for (int r = 0; r < reps; r++) {
            double t0 = now_ms();
            fn(out, in, n, desc);
            times[r] = now_ms() - t0;
        }
        qsort(times, (size_t)reps, sizeof *times, cmp_double);
        printf("%s %.3f\n", b->name, times[0]);
        total += times[0];
        free(out);
        for (int k = 0; k < b->nin; k++)
            free((void *)in[k]);
    }
    printf("total %.3f\n", total);
    free(times);
    return 0;
}
