/* conv_kernels.c: times each window op of one fashion_cnn training step (batch 64) through the kernels of
   runtime/kern_window.c, as generated code calls them: the two convolutions forward and backward (conv1's
   input gradient is never needed: x is data), the two 2x2 max poolings forward and backward. Prints one
   line per op, "name milliseconds": the fastest of REPS calls after a warm-up call, since the machine may
   be shared and the minimum is what other load disturbs least. THREADS is the size of Lathe's pool
   (lathe_pool_init: the kernels split over it, OpenBLAS runs single-threaded inside). With "rule" it times
   the forward convolutions of fashion_cnn, lenet5 and resnet20 instead (the shapes behind kern_window.c's
   choice between im2col + GEMM and the direct loops). bench/conv_kernels.sh puts them beside PyTorch's.
   usage: conv_kernels THREADS [REPS] [f32|f64] [rule]
   build (from the repository root), -O2 as the RelWithDebInfo build that liblathe_rt.a comes from:
       cc -O2 -Iruntime bench/conv_kernels.c runtime/kern_window.c runtime/kern_pool.c -o conv_kernels \
          -lopenblas -lpthread -lm
   (BEFORE=old/kern_window.c bench/conv_kernels.sh times another version of the file the same way). */
#include "lathe_kern.h"

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

/* The forward convolutions of the zoo's CNNs at batch 64: input [N, c, h, w], weight [o, c, k, k]. */
#define CONV(name, c, h, o, k, stride, pad, oh)                                                              \
    {name, K(conv2d), 2, {{-1, o, oh, oh}, {-1, c, h, h}, {o, c, k, k}}, {0, 0}, 0, stride, pad}

static const Bench rule_benches[] = {
    CONV("fashion_cnn.conv1", 1, 28, 32, 3, 1, 1, 28),
    CONV("fashion_cnn.conv2", 32, 14, 64, 3, 1, 1, 14),
    CONV("lenet5.conv1", 1, 28, 6, 5, 1, 2, 28),
    CONV("lenet5.conv2", 6, 14, 16, 5, 1, 0, 10),
    CONV("resnet20.conv1", 1, 28, 16, 3, 1, 1, 28),
    CONV("resnet20.layer1", 16, 28, 16, 3, 1, 1, 28),
    CONV("resnet20.layer2.s2", 16, 28, 32, 3, 2, 1, 14),
    CONV("resnet20.layer2", 32, 14, 32, 3, 1, 1, 14),
    CONV("resnet20.layer3.s2", 32, 14, 64, 3, 2, 1, 7),
    CONV("resnet20.layer3", 64, 7, 64, 3, 1, 1, 7),
    CONV("resnet20.shortcut2", 16, 28, 32, 1, 2, 0, 14),
    CONV("resnet20.shortcut3", 32, 14, 64, 1, 2, 0, 7),
};

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
        fprintf(stderr, "usage: conv_kernels THREADS [REPS] [f32|f64] [rule]\n");
        return 2;
    }
    int threads = atoi(argv[1]), reps = argc > 2 ? atoi(argv[2]) : 30;
    int f64 = argc > 3 && strcmp(argv[3], "f64") == 0, rule = argc > 4 && strcmp(argv[4], "rule") == 0;
    const Bench *list = rule ? rule_benches : benches;
    size_t count = rule ? sizeof rule_benches / sizeof rule_benches[0] : sizeof benches / sizeof benches[0];
    size_t elsize = f64 ? sizeof(double) : sizeof(float);
    int64_t n = 64;
    if (reps < 1)
        reps = 1;
    lathe_pool_init(threads);
    double *times = malloc(sizeof(double) * (size_t)reps), total = 0;
    for (size_t i = 0; i < count; i++) {
        const Bench *b = &list[i];
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
