/* lathe_kern.h: the kernels that generated code calls instead of emitting the loops itself: convolution and
   pooling (im2col and OpenBLAS), the data-movement ops (slice, pad, concat, gather, scatter_add) and the
   counter-based random generator. They are part of liblathe_rt.a, so every produced executable has them, and
   the JIT of the tests registers them by address (lathe_kern_symbols).

   Every kernel has one signature:
       void lathe_k_<op>_<dtype>(void *out, const void *const *in, int64_t n, const int64_t *desc)
   <op> is the op's text name (ops.def: "conv2d", "max_pool2d_bwd", ...), <dtype> the node's dtype name
   ("f32", "f64"; the data-movement ops also "i32", "i64", "u8"). in[i] is input i's buffer, n the run's batch
   size, desc a constant array that the code generator builds from the node (LATHE_KD_* below): the shapes of
   the output and of every input with N already in them as -1 (a kernel replaces -1 by n), then the node's
   attributes. Kernels never allocate per call beyond a scratch buffer they keep, never print, never fail. */
#ifndef LATHE_KERN_H
#define LATHE_KERN_H

#include <stdint.h>

#define LATHE_KD_MAX_RANK 8

/* desc layout (int64 each):
     [0]                   ninputs
     [1]                   output rank r
     [2 .. 2+8)            output dims (first r used; -1 = N)
     then for input i:     rank, 8 dims        (9 entries each)
     then the attributes:  LATHE_KD_ATTRS(desc) points at them:
       conv2d*, *pool2d*:  window h, w, stride h, w, pad h, w, dilation h, w, groups, ceil_mode,
                           count_include_pad                                   (11 entries)
       slice, pad:         start[8], step[8], value as the bits of a double    (17 entries)
       concat:             axis                                                (1 entry)
       gather, scatter_add: axis, the index's dtype as ir.h's DType number
                           (0 f32, 1 f64, 2 i32, 3 i64, 4 u8)                  (2 entries)
       random:             stream                                              (1 entry) */
#define LATHE_KD_NINPUTS(d) ((d)[0])
#define LATHE_KD_OUT_RANK(d) ((d)[1])
#define LATHE_KD_OUT_DIMS(d) ((d) + 2)
#define LATHE_KD_IN_RANK(d, i) ((d)[10 + 9 * (i)])
#define LATHE_KD_IN_DIMS(d, i) ((d) + 11 + 9 * (i))
#define LATHE_KD_ATTRS(d) ((d) + 10 + 9 * (d)[0])

enum {
    LATHE_KA_WINDOW_H, LATHE_KA_WINDOW_W, LATHE_KA_STRIDE_H, LATHE_KA_STRIDE_W, LATHE_KA_PAD_H, LATHE_KA_PAD_W,
    LATHE_KA_DILATION_H, LATHE_KA_DILATION_W, LATHE_KA_GROUPS, LATHE_KA_CEIL_MODE, LATHE_KA_COUNT_INCLUDE_PAD,
    LATHE_KA_WINDOW_COUNT
};
enum { LATHE_KA_START = 0, LATHE_KA_STEP = 8, LATHE_KA_VALUE = 16, LATHE_KA_SLICE_COUNT = 17 };

typedef void (*LatheKernFn)(void *out, const void *const *in, int64_t n, const int64_t *desc);

typedef struct LatheKernSymbol {
    const char *name; /* "lathe_k_conv2d_f32" */
    LatheKernFn fn;
} LatheKernSymbol;

/* window kernels (runtime/kern_window.c): convolution and pooling, f32 and f64 */
void lathe_k_conv2d_f32(void *out, const void *const *in, int64_t n, const int64_t *desc);
void lathe_k_conv2d_f64(void *out, const void *const *in, int64_t n, const int64_t *desc);
void lathe_k_conv2d_bwd_input_f32(void *out, const void *const *in, int64_t n, const int64_t *desc);
void lathe_k_conv2d_bwd_input_f64(void *out, const void *const *in, int64_t n, const int64_t *desc);
void lathe_k_conv2d_bwd_weight_f32(void *out, const void *const *in, int64_t n, const int64_t *desc);
void lathe_k_conv2d_bwd_weight_f64(void *out, const void *const *in, int64_t n, const int64_t *desc);
void lathe_k_max_pool2d_f32(void *out, const void *const *in, int64_t n, const int64_t *desc);
void lathe_k_max_pool2d_f64(void *out, const void *const *in, int64_t n, const int64_t *desc);
void lathe_k_max_pool2d_bwd_f32(void *out, const void *const *in, int64_t n, const int64_t *desc);
void lathe_k_max_pool2d_bwd_f64(void *out, const void *const *in, int64_t n, const int64_t *desc);
void lathe_k_avg_pool2d_f32(void *out, const void *const *in, int64_t n, const int64_t *desc);
void lathe_k_avg_pool2d_f64(void *out, const void *const *in, int64_t n, const int64_t *desc);
void lathe_k_avg_pool2d_bwd_f32(void *out, const void *const *in, int64_t n, const int64_t *desc);
void lathe_k_avg_pool2d_bwd_f64(void *out, const void *const *in, int64_t n, const int64_t *desc);
void lathe_k_adaptive_avg_pool2d_f32(void *out, const void *const *in, int64_t n, const int64_t *desc);
void lathe_k_adaptive_avg_pool2d_f64(void *out, const void *const *in, int64_t n, const int64_t *desc);
void lathe_k_adaptive_avg_pool2d_bwd_f32(void *out, const void *const *in, int64_t n, const int64_t *desc);
void lathe_k_adaptive_avg_pool2d_bwd_f64(void *out, const void *const *in, int64_t n, const int64_t *desc);

/* The convolutions by parts, for the pool and for generated kernels anchored on a convolution: the whole-op
   kernels above run these over [0, count) with lathe_parallel_for. conv2d and conv2d_bwd_input compute
   samples [lo, hi) of the batch (count n); conv2d_bwd_weight computes output channels [lo, hi) (count O),
   summing over every sample. Any split of [0, count) gives the same bits as one call over all of it. */
typedef void (*LatheKernRangeFn)(void *out, const void *const *in, int64_t n, const int64_t *desc, int64_t lo,
                                 int64_t hi);

typedef struct LatheKernRangeSymbol {
    const char *name; /* "lathe_k_conv2d_f32_range" */
    LatheKernRangeFn fn;
} LatheKernRangeSymbol;

void lathe_k_conv2d_f32_range(void *out, const void *const *in, int64_t n, const int64_t *desc, int64_t lo,
                              int64_t hi);
void lathe_k_conv2d_f64_range(void *out, const void *const *in, int64_t n, const int64_t *desc, int64_t lo,
                              int64_t hi);
void lathe_k_conv2d_bwd_input_f32_range(void *out, const void *const *in, int64_t n, const int64_t *desc,
                                        int64_t lo, int64_t hi);
void lathe_k_conv2d_bwd_input_f64_range(void *out, const void *const *in, int64_t n, const int64_t *desc,
                                        int64_t lo, int64_t hi);
void lathe_k_conv2d_bwd_weight_f32_range(void *out, const void *const *in, int64_t n, const int64_t *desc,
                                         int64_t lo, int64_t hi);
void lathe_k_conv2d_bwd_weight_f64_range(void *out, const void *const *in, int64_t n, const int64_t *desc,
                                         int64_t lo, int64_t hi);

/* ---------------------------------------------------------------- the thread pool (runtime/kern_pool.c)
   One pool runs every parallel loop of a produced binary: the generated kernels' and the runtime's own.
   OpenBLAS runs single-threaded inside it (a GEMM is split by the kernel that calls it), so the two never
   oversubscribe the cores.

   Every generated kernel has one signature:
       void k(uint8_t **bufs, int64_t n, int64_t lo, int64_t hi)
   bufs: the buffers of its outputs then of its inputs (the code generator's order); n: the batch size;
   [lo, hi): the part of the kernel's outer range (rows, output channels, ...) to compute. Any split of
   [0, count) into ranges gives the same result as one call over all of it, bit for bit. */
typedef void (*lathe_kernel_fn)(uint8_t **bufs, int64_t n, int64_t lo, int64_t hi);

/* Runs k over [0, count): split into contiguous ranges on the pool's threads when count >= 2 and the work
   (count * cost, cost being an estimate of one item's work in flops or bytes) is large enough to pay for a
   wake-up; otherwise k(bufs, n, 0, count) on the calling thread. Returns when every range is done. */
void lathe_run_kernel(lathe_kernel_fn k, uint8_t **bufs, int64_t n, int64_t count, int64_t cost);

/* The same for the runtime's own loops (the window kernels): fn(ctx, lo, hi) over [0, count). A call from
   inside a parallel range runs serially on the calling thread. */
typedef void (*lathe_range_fn)(void *ctx, int64_t lo, int64_t hi);
void lathe_parallel_for(int64_t count, int64_t cost, lathe_range_fn fn, void *ctx);

/* The pool's size: threads <= 0 means one per core (sched_getaffinity). Sets OpenBLAS to one thread. Called
   by the driver before the first step; before that the pool has one thread (everything runs serially). */
void lathe_pool_init(int threads);
int lathe_pool_threads(void);
/* Which of the pool's threads runs the caller: 0 for the main thread, 1 .. threads-1 for the workers (for
   per-thread scratch buffers). */
int lathe_pool_thread_index(void);
/* For tests: parts > 0 makes every lathe_run_kernel and lathe_parallel_for with count >= 2 split its range
   into min(parts, count) ranges (run on the pool, or one after another when it has one thread), whatever
   the work; 0 restores the normal rule. */
void lathe_pool_test_split(int parts);

/* ---------------------------------------------------------------- non-finite checks (runtime/kern_anomaly.c)
   After each kernel call a graph entry does
       if (lathe_anomaly_on) lathe_check_finite(out, count, dtype, graph, check);
   for each float output the kernel writes: count its elements (N bound), dtype ir.h's DType number (0 f32,
   1 f64), graph 0 train, 1 grads, 2 eval, 3 predict (-1 another), check the output's index in the graph's
   "checks" of the manifest. The first non-finite value is recorded and turns lathe_anomaly_on off until the
   runtime takes it (rt_anomaly_take), so a disabled or already-tripped check costs one load and a branch. */
extern int lathe_anomaly_on;
void lathe_check_finite(const void *p, int64_t count, int32_t dtype, int32_t graph, int32_t check);

/* ---------------------------------------------------------------- outputs as they are ready (kern_anomaly.c)
   A graph entry calls, when it is set,
       lathe_output_ready_hook(graph, arg)
   right after the kernel that writes output argument arg (the manifest's args index) for the last time, once
   nothing later in the graph reads it (outputs copied at the end: after the copy). graph is as above. The
   data-parallel runtime starts reducing a bucket of gradients there while the rest of backward runs; the
   hook may change the output's values in place. NULL (the default) costs a load and a branch per output. */
extern void (*lathe_output_ready_hook)(int32_t graph, int32_t arg);

/* ---------------------------------------------------------------- profiling (runtime/kern_profile.c)
   Each kernel call of a graph entry is
       if (lathe_profile_on) lathe_profile_kernel(graph, node, k, bufs, n, count, cost);
       else                  lathe_run_kernel(k, bufs, n, count, cost);
   graph as above, node the id of the kernel's root node (the "node" of the graph's "kernel_list" in the
   manifest). lathe_profile_kernel runs the same call and hands its start and end (CLOCK_MONOTONIC, in ns)
   to lathe_profile_sink when one is set (runtime/profile.c, --profile). Off, a kernel costs one load and a
   branch more. */
extern int lathe_profile_on;
extern void (*lathe_profile_sink)(int32_t graph, int32_t node, int64_t n, int64_t start_ns, int64_t end_ns);
void lathe_profile_kernel(int32_t graph, int32_t node, lathe_kernel_fn k, uint8_t **bufs, int64_t n, int64_t count,
                          int64_t cost);

/* Every kernel, ending with {NULL, NULL}. */
extern const LatheKernSymbol lathe_kern_symbols[];
/* Every _range entry point, ending with {NULL, NULL}. */
extern const LatheKernRangeSymbol lathe_kern_range_symbols[];

/* The random generator of RANDOM nodes (and of the interpreter, which must agree bit for bit):
   Philox4x32-10 with key (k0, k1) = (low 32 bits of seed, stream ^ high 32 bits of seed) and counter
   (c0, c1, c2, c3) = (low and high 32 bits of the element index, low and high 32 bits of step); the element's
   value is (first output word >> 8) * 2^-24, a float in [0, 1). Static inline, defined here, so that the
   interpreter (ir/interp.c includes this header) computes the very same bits without linking the runtime. */
static inline float lathe_philox_uniform(uint64_t seed, uint32_t stream, uint64_t step, uint64_t index) {
    uint32_t c0 = (uint32_t)index, c1 = (uint32_t)(index >> 32), c2 = (uint32_t)step, c3 = (uint32_t)(step >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = stream ^ (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return (float)(c0 >> 8) * (1.0f / 16777216.0f);
}

#endif
