/* kern_window.c: the convolution and pooling kernels of lathe_kern.h (lathe_k_conv2d_f32 ...), f32 and f64.
   Convolution is im2col + GEMM through OpenBLAS (a GEMM per sample and group) or, for one input channel,
   direct vectorized loops, with a scratch buffer kept per thread; pooling is direct loops, with straight-line
   fast paths for the common windows. Every op runs on the pool (lathe_parallel_for): the convolutions by
   samples or output channels through their _range entry points, pooling by (sample, channel) planes; any
   split gives the same bits. ir/interp_window.c is the reference they are tested against;
   bench/conv_kernels.sh times them.
   The typed half of the file is written once over KW_T and compiled once per dtype: the untyped half at the
   top includes this very file again with KW_T defined (a template by the preprocessor). */
#ifndef KW_T

#include "lathe_kern.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- geometry from the descriptor
   The forward op's input x [n,c,h,w] and output y [n,o,oh,ow], the window kh x kw (a convolution's comes from
   its weight) with its stride, padding and dilation. For the _BWD ops x and y name the forward op's input
   and output, whichever buffers carry their gradients. */
typedef struct KGeo {
    int64_t n, c, h, w;
    int64_t o, oh, ow;
    int64_t kh, kw;
    int64_t sh, sw, ph, pw, dh, dw;
    int64_t groups;
    bool count_include_pad;
} KGeo;

#define KW_OUT (-1) /* a tensor of the descriptor: the output, or input 0, 1 */

/* The dims of a rank-4 tensor of desc with N bound to n; false when it is not rank 4 with dims >= 0 and a
   product that fits (so that no index computed from it overflows). */
static bool kw_dims(const int64_t *desc, int which, int64_t n, int64_t d[4])
{
    int64_t rank = which == KW_OUT ? LATHE_KD_OUT_RANK(desc) : LATHE_KD_IN_RANK(desc, which);
    const int64_t *dims = which == KW_OUT ? LATHE_KD_OUT_DIMS(desc) : LATHE_KD_IN_DIMS(desc, which);
    if (rank != 4)
        return false;
    int64_t numel = 1;
    for (int i = 0; i < 4; i++) {
        d[i] = dims[i] == -1 ? n : dims[i];
        if (d[i] < 0 || __builtin_mul_overflow(numel, d[i], &numel))
            return false;
    }
    return numel <= (INT64_MAX >> 4);
}

/* The element count of the output, 0 when its shape is unreadable. */
static int64_t kw_out_numel(const int64_t *desc, int64_t n)
{
    int64_t rank = LATHE_KD_OUT_RANK(desc), numel = 1;
    if (rank < 0 || rank > LATHE_KD_MAX_RANK)
        return 0;
    for (int i = 0; i < rank; i++) {
        int64_t d = LATHE_KD_OUT_DIMS(desc)[i] == -1 ? n : LATHE_KD_OUT_DIMS(desc)[i];
        if (d < 0 || __builtin_mul_overflow(numel, d, &numel))
            return 0;
    }
    return numel;
}

/* Reads the geometry of a window op whose x, y and weight (KW_OUT, 0 or 1; wsrc -2 for pooling) are the
   given tensors of desc, and checks that the tensors agree with each other, so that no loop of a kernel can
   leave its buffers whatever the descriptor says. Strides and dilations below 1 read as 1. */
static bool kw_geometry(const int64_t *desc, int64_t n, int xsrc, int ysrc, int wsrc, KGeo *g)
{
    int64_t x[4], y[4], w[4];
    int64_t need = xsrc > ysrc ? xsrc : ysrc;
    if (wsrc > need)
        need = wsrc;
    if (n < 0 || LATHE_KD_NINPUTS(desc) <= need || !kw_dims(desc, xsrc, n, x) || !kw_dims(desc, ysrc, n, y))
        return false;
    const int64_t *a = LATHE_KD_ATTRS(desc);
    *g = (KGeo){
        .n = x[0], .c = x[1], .h = x[2], .w = x[3], .o = y[1], .oh = y[2], .ow = y[3],
        .kh = a[LATHE_KA_WINDOW_H] > 0 ? a[LATHE_KA_WINDOW_H] : 0,
        .kw = a[LATHE_KA_WINDOW_W] > 0 ? a[LATHE_KA_WINDOW_W] : 0,
        .sh = a[LATHE_KA_STRIDE_H] > 0 ? a[LATHE_KA_STRIDE_H] : 1,
        .sw = a[LATHE_KA_STRIDE_W] > 0 ? a[LATHE_KA_STRIDE_W] : 1,
        .ph = a[LATHE_KA_PAD_H], .pw = a[LATHE_KA_PAD_W],
        .dh = a[LATHE_KA_DILATION_H] > 0 ? a[LATHE_KA_DILATION_H] : 1,
        .dw = a[LATHE_KA_DILATION_W] > 0 ? a[LATHE_KA_DILATION_W] : 1,
        .groups = a[LATHE_KA_GROUPS] > 0 ? a[LATHE_KA_GROUPS] : 1,
        .count_include_pad = a[LATHE_KA_COUNT_INCLUDE_PAD] != 0,
    };
    if (y[0] != g->n)
        return false;
    /* pads and window sizes as large as int: indices stay far from overflow */
    if (g->ph < -INT_MAX || g->ph > INT_MAX || g->pw < -INT_MAX || g->pw > INT_MAX || g->kh > INT_MAX ||
        g->kw > INT_MAX || g->sh > INT_MAX || g->sw > INT_MAX || g->dh > INT_MAX || g->dw > INT_MAX)
        return false;
    if (wsrc == -2)
        return g->o == g->c;
    if (!kw_dims(desc, wsrc, n, w))
        return false;
    g->kh = w[2];
    g->kw = w[3];
    int64_t c;
    return w[0] == g->o && g->o % g->groups == 0 && !__builtin_mul_overflow(w[1], g->groups, &c) && c == g->c;
}

/* Whether the output of a kernel is the same shape as input i (max_pool2d_bwd's gx and x). */
static bool kw_out_is_input(const int64_t *desc, int64_t n, int i)
{
    int64_t a[4], b[4];
    return kw_dims(desc, KW_OUT, n, a) && kw_dims(desc, i, n, b) && memcmp(a, b, sizeof a) == 0;
}

/* ---------------------------------------------------------------- scratch
   The im2col matrix lives in a buffer kept per thread between calls, grown as needed and freed when its
   thread ends (through a pthread key's destructor; the main thread's stays reachable from its TLS). */
static _Thread_local void *kw_scratch;
static _Thread_local size_t kw_scratch_size;
static pthread_key_t kw_scratch_key;
static pthread_once_t kw_scratch_once = PTHREAD_ONCE_INIT;
static bool kw_scratch_key_ok;

static void kw_scratch_make_key(void)
{
    kw_scratch_key_ok = pthread_key_create(&kw_scratch_key, free) == 0;
}

/* At least size bytes, or NULL when memory is short: the caller then takes its path without scratch. */
static void *kw_scratch_get(size_t size)
{
    if (size <= kw_scratch_size)
        return kw_scratch;
    void *p = realloc(kw_scratch, size);
    if (!p)
        return NULL;
    pthread_once(&kw_scratch_once, kw_scratch_make_key);
    if (kw_scratch_key_ok)
        pthread_setspecific(kw_scratch_key, p);
    kw_scratch = p;
    kw_scratch_size = size;
    return p;
}

/* How a convolution runs: nothing to compute (a zero dim: the result is the zeros it starts from), a GEMM per
   sample and group on an im2col matrix in scratch, the vectorized direct loops of kw_direct_fwd_ (forward
   only, one input channel a group), or plain loops when a GEMM is past BLAS's int dims or no scratch can be
   had.

   Every GEMM's shape depends on the convolution's shape alone, never on the range a call computes, so that
   any split of the batch (or of the output channels) gives the same bits: the forward and input-gradient
   GEMMs are one per sample; the weight gradient's run per block of kw_block rows of gw (block boundaries
   fixed by the shape: a range that cuts a block computes the whole block aside and keeps its rows), summing
   over the samples one after another in the same order in every range. OpenBLAS runs single-threaded in the
   pool: a GEMM per sample (a few hundred columns) loses little to the chunks of samples that OpenBLAS's own
   threads needed (bench/conv_kernels.sh, before and after). */
typedef enum { KW_EMPTY, KW_LOOPS, KW_IM2COL, KW_DIRECT } KPlanKind;

typedef struct KPlan {
    KPlanKind kind;
    int64_t cg, og, k, ohw; /* channels in and out of a group, the GEMMs' inner dim, the output plane */
    int64_t block;          /* rows of gw per weight-gradient GEMM */
    int64_t chunk;          /* samples per weight-gradient GEMM */
    int64_t wp, hp;         /* kw_direct_fwd_'s padded plane: row length and rows */
    void *cols;             /* scratch: cols [k, ohw], then the op's own (see kw_conv_plan) */
} KPlan;

enum { KW_OP_FWD, KW_OP_BWD_INPUT, KW_OP_BWD_WEIGHT };

/* Whether the forward convolution of g runs kw_direct_fwd_ rather than im2col + GEMM: one input channel a
   group, a 3x3 window, stride 1, padding >= 0 and rows of at least 16 cells. bench/conv_kernels.sh RULE=1,
   f32, batch 64, 1 thread, fastest of 10 rounds, ms im2col + GEMM / direct (the direct loops of the time:
   these 3x3 ones, and for other windows a pass per window row over the whole padded plane):
     fashion_cnn conv1  1->32 28x28 3x3 pad 1   0.370 / 0.381
     resnet20 conv1     1->16 28x28 3x3 pad 1   0.210 / 0.194
     lenet5 conv1       1->6  28x28 5x5 pad 2   0.326 / 0.339
   With several input channels (fashion_cnn conv2, lenet5 conv2, resnet20's blocks and shortcuts) the
   GEMMs (K = cg kh kw >= 16) run near the machine's peak and stay. With one channel the direct loops do the
   GEMM's multiply-adds without im2col's copy, but OpenBLAS packs a K = 9 GEMM well too: the two tie on 3x3
   (0.580 ms against 0.575 over both shapes, within this machine's noise of a few percent), and the direct
   loops, which need no im2col matrix, take it; 5x5 goes to the GEMM, which wins it by 4%. */
static bool kw_direct_ok(const KGeo *g)
{
    bool can = g->c == g->groups && g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->ph >= 0 &&
               g->pw >= 0 && g->ow >= 16 && g->oh <= g->h + 2 * g->ph - 2 * g->dh &&
               g->ow <= g->w + 2 * g->pw - 2 * g->dw;
#ifdef KW_FORCE_PATH /* -DKW_FORCE_PATH=1: direct wherever it can run, 2: never (bench/conv_kernels.sh RULE=1) */
    return can && KW_FORCE_PATH == 1;
#else
    return can;
#endif
}

/* Rows of gw per weight-gradient GEMM: a KW_BLOCK_PARTS-th of a group's, a multiple of 8 (OpenBLAS's row
   unroll), so that KW_BLOCK_PARTS threads share a group without work done twice at the blocks they cut. */
#ifndef KW_BLOCK_PARTS
#define KW_BLOCK_PARTS 2
#endif
static int64_t kw_block(int64_t og)
{
    int64_t b = ((og + KW_BLOCK_PARTS - 1) / KW_BLOCK_PARTS + 7) / 8 * 8;
    return b < og ? b : og;
}

/* The weight gradient's GEMMs sum over chunks of samples, KW_CHUNK_COLS output positions or more (K of the
   GEMM: one sample's few hundred made GEMMs too small for OpenBLAS to run well), within KW_SCRATCH_BUDGET
   bytes of scratch (one sample takes what it needs). A GEMM with fewer than KW_CHUNK_MIN_K rows of cols is
   bound by memory, not arithmetic: it runs per sample, on gy in place, since the copies of a chunk would
   cost more than they buy. The chunks depend on the shape alone, as the blocks. Measured with
   bench/conv_kernels.sh. */
#ifndef KW_CHUNK_COLS /* -D overrides them: to measure others */
#define KW_CHUNK_COLS 2048
#endif
#ifndef KW_CHUNK_MIN_K
#define KW_CHUNK_MIN_K 64
#endif
#define KW_SCRATCH_BUDGET ((int64_t)32 << 20)

/* The plan of one op's range: scratch (per thread) for cols [k, chunk ohw]; for the weight gradient then
   mat [og, chunk ohw] (gy's rows of a chunk side by side) and two blocks [block, k] (the first and last
   block of a range, when it cuts them); for the direct forward the padded plane [hp wp]. */
static KPlan kw_conv_plan(const KGeo *g, int op, size_t elsize)
{
    KPlan p = {.kind = KW_EMPTY, .cg = g->c / g->groups, .og = g->o / g->groups, .ohw = g->oh * g->ow};
    int64_t elems; /* of scratch */
    p.k = p.cg * g->kh * g->kw;
    if (g->n == 0 || p.k == 0 || p.ohw == 0 || p.og == 0)
        return p;
    p.kind = KW_LOOPS;
    p.block = kw_block(p.og);
    if (op == KW_OP_FWD && kw_direct_ok(g)) {
        p.wp = g->w + 2 * g->pw;
        p.hp = g->h + 2 * g->ph;
        if (__builtin_mul_overflow(p.wp, p.hp, &elems) || elems > (INT64_MAX >> 5))
            return p;
        p.cols = kw_scratch_get((size_t)elems * elsize);
        p.kind = p.cols ? KW_DIRECT : KW_LOOPS;
        return p;
    }
    int64_t per_sample; /* elements of cols and mat */
    if (p.k > INT_MAX || p.ohw > INT_MAX || p.og > INT_MAX || __builtin_mul_overflow(p.k + p.og, p.ohw, &per_sample))
        return p;
    p.chunk = 1;
    if (op == KW_OP_BWD_WEIGHT && p.k >= KW_CHUNK_MIN_K) {
        p.chunk = (KW_CHUNK_COLS + p.ohw - 1) / p.ohw;
        if (p.chunk > KW_SCRATCH_BUDGET / ((int64_t)elsize * per_sample))
            p.chunk = KW_SCRATCH_BUDGET / ((int64_t)elsize * per_sample);
        p.chunk = p.chunk < 1 ? 1 : p.chunk > g->n ? g->n : p.chunk;
        if (p.chunk * p.ohw > INT_MAX)
            p.chunk = INT_MAX / p.ohw;
    }
    if (__builtin_mul_overflow(per_sample, p.chunk, &elems) ||
        __builtin_add_overflow(elems, 2 * p.block * p.k, &elems) || elems > (INT64_MAX >> 5) ||
        (uint64_t)elems * elsize > SIZE_MAX)
        return p;
    p.cols = kw_scratch_get((size_t)elems * elsize);
    if (p.cols)
        p.kind = KW_IM2COL;
    return p;
}

/* Zeros over the output, as far as its shape can be read. */
static void kw_zero_out(void *out, const int64_t *desc, int64_t n, size_t elsize)
{
    int64_t numel = kw_out_numel(desc, n);
    if (numel > 0)
        memset(out, 0, (size_t)numel * elsize);
}

/* The output's dim 0 (N bound to n): the count of the range kernels, which split it; 0 when unreadable. */
static int64_t kw_out_rows(const int64_t *desc, int64_t n)
{
    if (LATHE_KD_OUT_RANK(desc) < 1 || kw_out_numel(desc, n) <= 0)
        return 0;
    return LATHE_KD_OUT_DIMS(desc)[0] == -1 ? n : LATHE_KD_OUT_DIMS(desc)[0];
}

/* Zeros over rows [lo, hi) of the output's dim 0 (clipped to it). */
static void kw_zero_rows(void *out, const int64_t *desc, int64_t n, size_t elsize, int64_t lo, int64_t hi)
{
    int64_t rows = kw_out_rows(desc, n);
    lo = lo < 0 ? 0 : lo;
    hi = hi > rows ? rows : hi;
    if (lo >= hi)
        return;
    size_t row = (size_t)(kw_out_numel(desc, n) / rows) * elsize;
    memset((char *)out + (size_t)lo * row, 0, (size_t)(hi - lo) * row);
}

/* A whole-op kernel as its range kernel over [0, count) on the pool, cost being one row's flops. */
typedef struct KCall {
    LatheKernRangeFn fn;
    void *out;
    const void *const *in;
    int64_t n;
    const int64_t *desc;
} KCall;

static void kw_call_range(void *ctx, int64_t lo, int64_t hi)
{
    KCall *c = ctx;
    c->fn(c->out, c->in, c->n, c->desc, lo, hi);
}

static void kw_run_ranges(LatheKernRangeFn fn, void *out, const void *const *in, int64_t n,
                          const int64_t *desc, int64_t cost)
{
    KCall call = {fn, out, in, n, desc};
    int64_t count = kw_out_rows(desc, n);
    if (count > 0)
        lathe_parallel_for(count, cost, kw_call_range, &call);
}

/* One row's flops of a convolution (for the pool's rule on what pays for a wake-up): 2 k per output element
   of a sample, or of an output channel of gw over the batch. */
static int64_t kw_conv_cost(const KGeo *g, int op)
{
    int64_t k = g->c / (g->groups > 0 ? g->groups : 1) * g->kh * g->kw, cost;
    int64_t per = op == KW_OP_BWD_WEIGHT ? g->n * g->oh * g->ow : g->o * g->oh * g->ow;
    if (__builtin_mul_overflow(2 * k, per, &cost))
        return INT64_MAX / 4;
    return cost;
}

/* Pooling runs on the pool by (sample, channel) planes: the context of one call. */
typedef struct KPool {
    const struct KGeo *g;
    const void *x, *gy;
    void *y, *gx;
    bool adaptive;
} KPool;

/* ---------------------------------------------------------------- pooling windows
   A window on one axis: the input cells [lo, hi) and how many cells an average's divisor counts. */
typedef struct KSpan {
    int64_t lo, hi, count;
} KSpan;

/* avg_pool2d's window i on an axis of size h, as PyTorch: the window may reach past the padded input only in
   ceil mode, and those cells are never counted; padded cells are counted when count_include_pad. */
static KSpan kw_avg_span(int64_t i, int64_t h, int64_t k, int64_t s, int64_t p, bool count_include_pad)
{
    int64_t lo = i * s - p, hi = lo + k;
    if (hi > h + p)
        hi = h + p;
    int64_t padded = hi - lo;
    lo = lo < 0 ? 0 : lo;
    hi = hi > h ? h : hi;
    return (KSpan){lo, hi, count_include_pad ? padded : hi - lo};
}

/* adaptive pooling's window i of oh on an axis of size h: [floor(i h / oh), ceil((i + 1) h / oh)). */
static KSpan kw_adaptive_span(int64_t i, int64_t h, int64_t oh)
{
    int64_t lo = i * h / oh, hi = ((i + 1) * h + oh - 1) / oh;
    return (KSpan){lo, hi, hi - lo};
}

/* The rows and columns of average pooling's window (oh, ow), plain or adaptive. */
static void kw_avg_window(const KGeo *g, bool adaptive, int64_t oh, int64_t ow, KSpan *sh, KSpan *sw)
{
    if (adaptive) {
        *sh = kw_adaptive_span(oh, g->h, g->oh);
        *sw = kw_adaptive_span(ow, g->w, g->ow);
    } else {
        *sh = kw_avg_span(oh, g->h, g->kh, g->sh, g->ph, g->count_include_pad);
        *sw = kw_avg_span(ow, g->w, g->kw, g->sw, g->pw, g->count_include_pad);
    }
}

/* The taps t = 0 .. k-1 of a window on one axis read cells start + t d; those inside [0, h) are t in
   [*t0, *t1), so that loops over them test no bounds. Counting beats dividing here: few taps lie outside. */
static void kw_taps(int64_t start, int64_t k, int64_t d, int64_t h, int64_t *t0, int64_t *t1)
{
    int64_t a = 0, b = k;
    while (a < b && start + a * d < 0)
        a++;
    while (b > a && start + (b - 1) * d >= h)
        b--;
    *t0 = a;
    *t1 = b;
}

/* Stride 1 with as many output columns as input columns (a "same" convolution): the cells of a tap, row
   after row, are one run of x (src = dst + a constant), so im2col copies each tap with one memcpy and
   col2im adds it with one loop, fixing up the few columns of each row that read padding. */
static bool kw_flat_taps(const KGeo *g)
{
    return g->sh == 1 && g->sw == 1 && g->ow == g->w;
}

/* The max pooling geometries with fast paths (kw_max2x2_plane_, kw_max3x3s2_plane_): 2x2 stride 2 without
   padding with every window inside x, and 3x3 stride 2 padding 1; dilation 1 both. */
static bool kw_max2x2(const KGeo *g)
{
    return g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0 && g->dh == 1 &&
           g->dw == 1 && 2 * g->oh <= g->h && 2 * g->ow <= g->w;
}

static bool kw_max3x3s2(const KGeo *g)
{
    return g->kh == 3 && g->kw == 3 && g->sh == 2 && g->sw == 2 && g->ph == 1 && g->pw == 1 && g->dh == 1 &&
           g->dw == 1;
}

#define KW_CHUNK 64 /* output columns that max pooling handles at once, on the stack */

#define KW_CAT2(a, b) a##b
#define KW_CAT(a, b) KW_CAT2(a, b)
#define KW_FN(name) KW_CAT(name, KW_SUFFIX)
#define KW_RFN(name) KW_CAT(KW_FN(name), _range)

/* The direct convolution's loops in three builds chosen at load time (an ifunc): AVX-512, AVX2 with FMA, and
   the baseline (SSE2) that the rest of the file is compiled for. Bits differ between the builds (FMA), never
   between the calls of one process. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(KW_NO_CLONES)
#define KW_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define KW_CLONES
#endif

#define KW_T float
#define KW_I int32_t /* an integer as wide as KW_T: flags beside it in vectorized loops */
#define KW_SUFFIX f32
#define KW_GEMM cblas_sgemm
#include "kern_window.c"
#undef KW_T
#undef KW_I
#undef KW_SUFFIX
#undef KW_GEMM

#define KW_T double
#define KW_I int64_t
#define KW_SUFFIX f64
#define KW_GEMM cblas_dgemm
#include "kern_window.c"
#undef KW_T
#undef KW_I
#undef KW_SUFFIX
#undef KW_GEMM

#else /* ---------------------------------------------------------------- the typed half, over KW_T */

/* x's plane of one sample and group (cg channels) into cols [cg kh kw, ld]: row (c, kh, kw) holds, in its
   first oh ow columns, the cells that tap (kh, kw) of channel c reads at every output position, zeros where it
   reads padding. ld > oh ow when the columns of several samples sit side by side. */
static void KW_FN(kw_im2col_)(const KGeo *g, const KW_T *restrict x, KW_T *restrict cols, int64_t ld)
{
    int64_t cg = g->c / g->groups, ohw = g->oh * g->ow;
    bool flat = kw_flat_taps(g);
    for (int64_t c = 0; c < cg; c++)
        for (int64_t kh = 0; kh < g->kh; kh++)
            for (int64_t kw = 0; kw < g->kw; kw++) {
                KW_T *row = cols + ((c * g->kh + kh) * g->kw + kw) * ld;
                const KW_T *xc = x + c * g->h * g->w;
                /* output rows oh0..oh1-1 and columns ow0..ow1-1 read inside x */
                int64_t ih0 = kh * g->dh - g->ph, iw0 = kw * g->dw - g->pw, oh0, oh1, ow0, ow1;
                kw_taps(ih0, g->oh, g->sh, g->h, &oh0, &oh1);
                kw_taps(iw0, g->ow, g->sw, g->w, &ow0, &ow1);
                if (ow0 >= ow1)
                    oh1 = oh0;
                if (oh0 > 0) /* most taps read no padding row: no call (they add up, a few a tap) */
                    memset(row, 0, sizeof(KW_T) * (size_t)(oh0 * g->ow));
                if (oh1 < g->oh)
                    memset(row + oh1 * g->ow, 0, sizeof(KW_T) * (size_t)(ohw - oh1 * g->ow));
                if (flat && oh0 < oh1) {
                    int64_t d0 = oh0 * g->ow + ow0, d1 = (oh1 - 1) * g->ow + ow1;
                    memcpy(row + d0, xc + d0 + ih0 * g->w + iw0, sizeof(KW_T) * (size_t)(d1 - d0));
                }
                for (int64_t oh = oh0; oh < oh1; oh++) {
                    KW_T *r = row + oh * g->ow;
                    const KW_T *xr = xc + (oh * g->sh + ih0) * g->w + iw0;
                    for (int64_t ow = 0; ow < ow0; ow++)
                        r[ow] = 0;
                    for (int64_t ow = ow1; ow < g->ow; ow++)
                        r[ow] = 0;
                    if (flat)
                        continue;
                    if (g->sw == 1)
                        memcpy(r + ow0, xr + ow0, sizeof(KW_T) * (size_t)(ow1 - ow0));
                    else
                        for (int64_t ow = ow0; ow < ow1; ow++)
                            r[ow] = xr[ow * g->sw];
                }
            }
}

/* a[i] += b[i] for i < n. The main loop's count is a multiple of 8, and a and b are restrict: so gcc -O2
   (whose cost model vectorises no loop that needs a scalar epilogue or an aliasing check) vectorises it. */
static void KW_FN(kw_add_)(KW_T *restrict a, const KW_T *restrict b, int64_t n)
{
    int64_t nv = n & ~(int64_t)7, i;
    for (i = 0; i < nv; i++)
        a[i] += b[i];
    for (; i < n; i++)
        a[i] += b[i];
}

/* The adjoint of im2col: every cell of cols added into the x cell it was read from (padding dropped). The
   flat path adds a tap's whole run, after zeroing the cells of cols that read padding (cols is scratch). */
static void KW_FN(kw_col2im_)(const KGeo *g, KW_T *restrict cols, int64_t ld, KW_T *restrict gx)
{
    int64_t cg = g->c / g->groups;
    bool flat = kw_flat_taps(g);
    for (int64_t c = 0; c < cg; c++)
        for (int64_t kh = 0; kh < g->kh; kh++)
            for (int64_t kw = 0; kw < g->kw; kw++) {
                KW_T *row = cols + ((c * g->kh + kh) * g->kw + kw) * ld, *gc = gx + c * g->h * g->w;
                int64_t ih0 = kh * g->dh - g->ph, iw0 = kw * g->dw - g->pw, oh0, oh1, ow0, ow1;
                kw_taps(ih0, g->oh, g->sh, g->h, &oh0, &oh1);
                kw_taps(iw0, g->ow, g->sw, g->w, &ow0, &ow1);
                if (ow0 >= ow1)
                    continue;
                for (int64_t oh = oh0; oh < oh1; oh++) {
                    KW_T *r = row + oh * g->ow, *xr = gc + (oh * g->sh + ih0) * g->w + iw0;
                    if (flat) {
                        for (int64_t ow = 0; ow < ow0; ow++)
                            r[ow] = 0;
                        for (int64_t ow = ow1; ow < g->ow; ow++)
                            r[ow] = 0;
                    } else if (g->sw == 1) {
                        KW_FN(kw_add_)(xr + ow0, r + ow0, ow1 - ow0);
                    } else {
                        for (int64_t ow = ow0; ow < ow1; ow++)
                            xr[ow * g->sw] += r[ow];
                    }
                }
                if (flat && oh0 < oh1) {
                    int64_t d0 = oh0 * g->ow + ow0, d1 = (oh1 - 1) * g->ow + ow1;
                    KW_FN(kw_add_)(gc + d0 + ih0 * g->w + iw0, row + d0, d1 - d0);
                }
            }
}

/* The convolution's sum of products as plain loops, for a GEMM past BLAS's int dims or no scratch: the
   forward op (which 0) adds each product into y, the backward ops add gy times one factor into the other
   factor's gradient (1: gx from (gy, w), 2: gw from (x, gy)). Samples [lo, hi) (which 0, 1) or output
   channels [lo, hi) (which 2), zero on entry; every element sums in the same order whatever the range. */
static void KW_FN(kw_conv_loops_)(const KGeo *g, int which, KW_T *out, const KW_T *a, const KW_T *b, int64_t lo,
                                  int64_t hi)
{
    int64_t cg = g->c / g->groups, og = g->o / g->groups;
    int64_t n0 = which == 2 ? 0 : lo, n1 = which == 2 ? g->n : hi;
    int64_t o0 = which == 2 ? lo : 0, o1 = which == 2 ? hi : g->o;
    for (int64_t n = n0; n < n1; n++)
        for (int64_t o = o0; o < o1; o++)
            for (int64_t oh = 0; oh < g->oh; oh++)
                for (int64_t ow = 0; ow < g->ow; ow++) {
                    int64_t yi = ((n * g->o + o) * g->oh + oh) * g->ow + ow;
                    for (int64_t c = 0; c < cg; c++)
                        for (int64_t kh = 0; kh < g->kh; kh++) {
                            int64_t ih = oh * g->sh - g->ph + kh * g->dh;
                            if (ih < 0 || ih >= g->h)
                                continue;
                            for (int64_t kw = 0; kw < g->kw; kw++) {
                                int64_t iw = ow * g->sw - g->pw + kw * g->dw;
                                if (iw < 0 || iw >= g->w)
                                    continue;
                                int64_t xi = ((n * g->c + o / og * cg + c) * g->h + ih) * g->w + iw;
                                int64_t wi = ((o * cg + c) * g->kh + kh) * g->kw + kw;
                                if (which == 0)
                                    out[yi] += a[xi] * b[wi];
                                else if (which == 1)
                                    out[xi] += a[yi] * b[wi];
                                else
                                    out[wi] += a[xi] * b[yi];
                            }
                        }
                }
}

/* The direct forward convolution of one input channel with a 3x3 window and rows of at least 16 cells:
   y [og, oh, ow] gets at (o, oh, ow) the sum over the taps of w[o, kh, kw] xp[(oh + kh dh) wp + ow + kw dw],
   xp being the zero-padded input plane with rows of wp, so that an output row is a run of padded rows. A
   pair of output channels at a time: per 16 cells of an output row, the nine shifted input vectors are
   loaded once and feed both channels' sums, the 18 weights held in registers (the loop is then bound by
   its multiply-adds, not its loads); the last 16 cells of a row again when ow is no multiple of 16 (they
   write what they wrote). Vectors through GCC's vector extension: 16 lanes whatever the build (the
   AVX-512 build holds one in a register, the others split it). */
typedef KW_T KW_FN(KVec_) __attribute__((vector_size(16 * sizeof(KW_T))));

KW_CLONES static void KW_FN(kw_direct3x3_)(KW_T *restrict y, const KW_T *restrict xp, const KW_T *restrict w,
                                           int64_t og, int64_t oh, int64_t ow, int64_t wp, int64_t dh, int64_t dw)
{
    int64_t rs = dh * wp, plane = oh * ow;
    for (int64_t o = 0; o < og; o += 2) {
        bool pair = o + 1 < og;
        const KW_T *wa = w + o * 9, *wb = pair ? wa + 9 : wa;
        KW_T a0 = wa[0], a1 = wa[1], a2 = wa[2], a3 = wa[3], a4 = wa[4], a5 = wa[5], a6 = wa[6], a7 = wa[7];
        KW_T a8 = wa[8], b0 = wb[0], b1 = wb[1], b2 = wb[2], b3 = wb[3], b4 = wb[4], b5 = wb[5], b6 = wb[6];
        KW_T b7 = wb[7], b8 = wb[8];
        for (int64_t r = 0; r < oh; r++) {
            const KW_T *xr = xp + r * wp;
            KW_T *ya = y + o * plane + r * ow, *yb = ya + plane;
            for (int64_t j = 0;; j += 16) {
                j = j + 16 > ow ? ow - 16 : j;
                const KW_T *q = xr + j;
                KW_FN(KVec_) x0, x1, x2, x3, x4, x5, x6, x7, x8;
                memcpy(&x0, q, sizeof x0); /* unaligned loads */
                memcpy(&x1, q + dw, sizeof x1);
                memcpy(&x2, q + 2 * dw, sizeof x2);
                memcpy(&x3, q + rs, sizeof x3);
                memcpy(&x4, q + rs + dw, sizeof x4);
                memcpy(&x5, q + rs + 2 * dw, sizeof x5);
                memcpy(&x6, q + 2 * rs, sizeof x6);
                memcpy(&x7, q + 2 * rs + dw, sizeof x7);
                memcpy(&x8, q + 2 * rs + 2 * dw, sizeof x8);
                KW_FN(KVec_) va = a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3 + a4 * x4 + a5 * x5 + a6 * x6 + a7 * x7 +
                                  a8 * x8;
                memcpy(ya + j, &va, sizeof va);
                if (pair) {
                    KW_FN(KVec_) vb = b0 * x0 + b1 * x1 + b2 * x2 + b3 * x3 + b4 * x4 + b5 * x5 + b6 * x6 +
                                      b7 * x7 + b8 * x8;
                    memcpy(yb + j, &vb, sizeof vb);
                }
                if (j + 16 >= ow)
                    break;
            }
        }
    }
}

/* One sample and group of a forward convolution with one input channel (x [h, w]): pads x into the plan's
   scratch, then kw_direct3x3_. */
static void KW_FN(kw_direct_fwd_)(const KGeo *g, const KPlan *p, const KW_T *x, const KW_T *w, KW_T *y)
{
    KW_T *xp = p->cols;
    memset(xp, 0, sizeof(KW_T) * (size_t)(p->hp * p->wp));
    for (int64_t ih = 0; ih < g->h; ih++)
        memcpy(xp + (ih + g->ph) * p->wp + g->pw, x + ih * g->w, sizeof(KW_T) * (size_t)g->w);
    KW_FN(kw_direct3x3_)(y, xp, w, p->og, g->oh, g->ow, p->wp, g->dh, g->dw);
}

/* (x [N,C,H,W], w [O,C/groups,KH,KW]) -> y [N,O,OH,OW], samples [lo, hi): per sample and group,
   y_g = w_g @ im2col(x_g), or the direct loops. */
void KW_RFN(lathe_k_conv2d_)(void *out, const void *const *in, int64_t n, const int64_t *desc, int64_t lo,
                             int64_t hi)
{
    KGeo g;
    KW_T *y = out;
    const KW_T *x = in[0], *w = in[1];
    if (!kw_geometry(desc, n, 0, KW_OUT, 1, &g)) {
        kw_zero_rows(out, desc, n, sizeof(KW_T), lo, hi);
        return;
    }
    lo = lo < 0 ? 0 : lo;
    hi = hi > g.n ? g.n : hi;
    KPlan p = kw_conv_plan(&g, KW_OP_FWD, sizeof(KW_T));
    if (p.kind == KW_EMPTY || p.kind == KW_LOOPS) { /* the others write every element of y */
        kw_zero_rows(out, desc, n, sizeof(KW_T), lo, hi);
        if (p.kind == KW_LOOPS)
            KW_FN(kw_conv_loops_)(&g, 0, y, x, w, lo, hi);
        return;
    }
    for (int64_t s = lo; s < hi; s++)
        for (int64_t grp = 0; grp < g.groups; grp++) {
            const KW_T *xs = x + (s * g.c + grp * p.cg) * g.h * g.w, *wg = w + grp * p.og * p.k;
            KW_T *ys = y + (s * g.o + grp * p.og) * p.ohw;
            if (p.kind == KW_DIRECT) {
                KW_FN(kw_direct_fwd_)(&g, &p, xs, wg, ys);
                continue;
            }
            KW_FN(kw_im2col_)(&g, xs, p.cols, p.ohw);
            KW_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p.og, (int)p.ohw, (int)p.k, 1, wg, (int)p.k,
                    p.cols, (int)p.ohw, 0, ys, (int)p.ohw);
        }
}

/* (gy [N,O,OH,OW], w) -> gx [N,C,H,W], samples [lo, hi): per sample and group, gx_g = col2im(w_g^T @ gy_g). */
void KW_RFN(lathe_k_conv2d_bwd_input_)(void *out, const void *const *in, int64_t n, const int64_t *desc,
                                       int64_t lo, int64_t hi)
{
    KGeo g;
    KW_T *gx = out;
    const KW_T *gy = in[0], *w = in[1];
    kw_zero_rows(out, desc, n, sizeof(KW_T), lo, hi);
    if (!kw_geometry(desc, n, KW_OUT, 0, 1, &g))
        return;
    lo = lo < 0 ? 0 : lo;
    hi = hi > g.n ? g.n : hi;
    KPlan p = kw_conv_plan(&g, KW_OP_BWD_INPUT, sizeof(KW_T));
    if (p.kind == KW_LOOPS)
        KW_FN(kw_conv_loops_)(&g, 1, gx, gy, w, lo, hi);
    if (p.kind != KW_IM2COL)
        return;
    for (int64_t s = lo; s < hi; s++)
        for (int64_t grp = 0; grp < g.groups; grp++) {
            KW_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)p.k, (int)p.ohw, (int)p.og, 1,
                    w + grp * p.og * p.k, (int)p.k, gy + (s * g.o + grp * p.og) * p.ohw, (int)p.ohw, 0, p.cols,
                    (int)p.ohw);
            KW_FN(kw_col2im_)(&g, p.cols, p.ohw, gx + (s * g.c + grp * p.cg) * g.h * g.w);
        }
}

/* Rows r0 .. r1-1 of group grp of samples s0 .. s0+ns-1 of gy [N,O,OH,OW] into m [r1 - r0, ns ohw], a row
   holding one channel of every sample side by side. */
static void KW_FN(kw_gather_)(const KGeo *g, const KW_T *gy, KW_T *m, int64_t s0, int64_t ns, int64_t grp,
                              int64_t r0, int64_t r1)
{
    int64_t og = g->o / g->groups, ohw = g->oh * g->ow;
    for (int64_t s = 0; s < ns; s++)
        for (int64_t r = r0; r < r1; r++)
            memcpy(m + ((r - r0) * ns + s) * ohw, gy + ((s0 + s) * g->o + grp * og + r) * ohw,
                   sizeof(KW_T) * (size_t)ohw);
}

/* (x [N,C,H,W], gy [N,O,OH,OW]) -> gw [O,C/groups,KH,KW], output channels [lo, hi): per group and block of
   rows, gw_b = the sum over chunks of samples, in order, of gy_b @ im2col(x_g)^T, accumulated by the GEMM
   (beta 1), the columns of a chunk's samples side by side. A block the range cuts is summed aside (at most
   the first and the last of a group's blocks) and only its rows in the range are kept: the GEMMs are the
   same whatever the range. */
void KW_RFN(lathe_k_conv2d_bwd_weight_)(void *out, const void *const *in, int64_t n, const int64_t *desc,
                                        int64_t lo, int64_t hi)
{
    KGeo g;
    KW_T *gw = out;
    const KW_T *x = in[0], *gy = in[1];
    kw_zero_rows(out, desc, n, sizeof(KW_T), lo, hi);
    if (!kw_geometry(desc, n, 0, 1, KW_OUT, &g))
        return;
    lo = lo < 0 ? 0 : lo;
    hi = hi > g.o ? g.o : hi;
    if (lo >= hi)
        return;
    KPlan p = kw_conv_plan(&g, KW_OP_BWD_WEIGHT, sizeof(KW_T));
    if (p.kind == KW_LOOPS)
        KW_FN(kw_conv_loops_)(&g, 2, gw, x, gy, lo, hi);
    if (p.kind != KW_IM2COL)
        return;
    KW_T *cols = p.cols, *mat = cols + p.k * p.chunk * p.ohw, *aside = mat + p.og * p.chunk * p.ohw;
    for (int64_t grp = lo / p.og; grp * p.og < hi; grp++) {
        /* the group's rows r0 .. r1-1 are in the range; blocks b0 .. b1-1 (rows m0 .. m1-1) hold them */
        int64_t r0 = lo - grp * p.og > 0 ? lo - grp * p.og : 0, r1 = hi - grp * p.og < p.og ? hi - grp * p.og : p.og;
        int64_t b0 = r0 / p.block, b1 = (r1 - 1) / p.block + 1;
        int64_t m0 = b0 * p.block, m1 = b1 * p.block < p.og ? b1 * p.block : p.og;
        KW_T *gwg = gw + grp * p.og * p.k;
        memset(aside, 0, sizeof(KW_T) * (size_t)(2 * p.block * p.k));
        for (int64_t s0 = 0; s0 < g.n; s0 += p.chunk) {
            int64_t ns = g.n - s0 < p.chunk ? g.n - s0 : p.chunk, ld = ns * p.ohw;
            for (int64_t s = 0; s < ns; s++)
                KW_FN(kw_im2col_)(&g, x + ((s0 + s) * g.c + grp * p.cg) * g.h * g.w, cols + s * p.ohw, ld);
            /* rows m0 .. m1-1 of gy's group, side by side in mat, or in place for one sample */
            const KW_T *a = gy + (s0 * g.o + grp * p.og + m0) * p.ohw;
            if (ns > 1) {
                KW_FN(kw_gather_)(&g, gy, mat, s0, ns, grp, m0, m1);
                a = mat;
            }
            for (int64_t b = b0; b < b1; b++) {
                int64_t bs = b * p.block, be = bs + p.block < p.og ? bs + p.block : p.og;
                KW_T *acc = bs >= r0 && be <= r1 ? gwg + bs * p.k : aside + (b == b0 ? 0 : p.block * p.k);
                KW_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(be - bs), (int)p.k, (int)ld, 1,
                        a + (bs - m0) * ld, (int)ld, cols, (int)ld, 1, acc, (int)p.k);
            }
        }
        for (int64_t b = b0; b < b1; b++) {
            int64_t bs = b * p.block, be = bs + p.block < p.og ? bs + p.block : p.og;
            if (bs >= r0 && be <= r1)
                continue;
            int64_t k0 = bs > r0 ? bs : r0, k1 = be < r1 ? be : r1;
            memcpy(gwg + k0 * p.k, aside + (b == b0 ? 0 : p.block * p.k) + (k0 - bs) * p.k,
                   sizeof(KW_T) * (size_t)((k1 - k0) * p.k));
        }
    }
}

void KW_FN(lathe_k_conv2d_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KGeo g;
    int64_t cost = kw_geometry(desc, n, 0, KW_OUT, 1, &g) ? kw_conv_cost(&g, KW_OP_FWD) : 1;
    kw_run_ranges(KW_RFN(lathe_k_conv2d_), out, in, n, desc, cost);
}

void KW_FN(lathe_k_conv2d_bwd_input_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KGeo g;
    int64_t cost = kw_geometry(desc, n, KW_OUT, 0, 1, &g) ? kw_conv_cost(&g, KW_OP_BWD_INPUT) : 1;
    kw_run_ranges(KW_RFN(lathe_k_conv2d_bwd_input_), out, in, n, desc, cost);
}

void KW_FN(lathe_k_conv2d_bwd_weight_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KGeo g;
    int64_t cost = kw_geometry(desc, n, 0, 1, KW_OUT, &g) ? kw_conv_cost(&g, KW_OP_BWD_WEIGHT) : 1;
    kw_run_ranges(KW_RFN(lathe_k_conv2d_bwd_weight_), out, in, n, desc, cost);
}

/* Max pooling over one plane x [h, w] (padding -inf): forward (y given) writes each window's maximum,
   backward adds each gy into gx at its window's first maximum (row-major order in the window; NaN counts as
   a maximum, the first NaN when several). A window of cells all -inf takes its first cell, as PyTorch; one
   without cells gives -inf. The loops run tap by tap over a chunk of output columns with selects (maxss,
   cmov), not window by window with branches: on real data a comparison mispredicts about half the time, and
   one window's maximum is a chain of dependent steps. */
static void KW_FN(kw_max_plane_)(const KGeo *g, const KW_T *x, KW_T *y, const KW_T *gy, KW_T *gx)
{
    KW_T m[KW_CHUNK];
    int nan[KW_CHUNK];
    int64_t best[KW_CHUNK];
    for (int64_t oh = 0; oh < g->oh; oh++) {
        int64_t h0 = oh * g->sh - g->ph, kh0, kh1;
        kw_taps(h0, g->kh, g->dh, g->h, &kh0, &kh1);
        for (int64_t c0 = 0; c0 < g->ow; c0 += KW_CHUNK) {
            int64_t nc = g->ow - c0 < KW_CHUNK ? g->ow - c0 : KW_CHUNK;
            for (int64_t j = 0; j < nc; j++) {
                m[j] = -INFINITY;
                nan[j] = 0;
            }
            for (int64_t kh = kh0; kh < kh1; kh++)
                for (int64_t kw = 0; kw < g->kw; kw++) {
                    /* column j of the chunk reads x[row + iw + j sw], inside the row for j in [j0, j1) */
                    int64_t row = (h0 + kh * g->dh) * g->w, iw = c0 * g->sw - g->pw + kw * g->dw, j0, j1;
                    kw_taps(iw, nc, g->sw, g->w, &j0, &j1);
                    for (int64_t j = j0; j < j1; j++) {
                        KW_T v = x[row + iw + j * g->sw];
                        m[j] = v > m[j] ? v : m[j]; /* maxss, no branch; NaNs are counted apart */
                        nan[j] |= v != v;
                    }
                }
            for (int64_t j = 0; j < nc; j++)
                m[j] = nan[j] ? (KW_T)NAN : m[j];
            if (y) {
                memcpy(y + oh * g->ow + c0, m, sizeof(KW_T) * (size_t)nc);
                continue;
            }
            /* the first cell that holds the maximum: the last one found scanning the window backwards */
            for (int64_t j = 0; j < nc; j++)
                best[j] = -1;
            for (int64_t kh = kh1 - 1; kh >= kh0; kh--)
                for (int64_t kw = g->kw - 1; kw >= 0; kw--) {
                    int64_t row = (h0 + kh * g->dh) * g->w, iw = c0 * g->sw - g->pw + kw * g->dw, j0, j1;
                    kw_taps(iw, nc, g->sw, g->w, &j0, &j1);
                    for (int64_t j = j0; j < j1; j++) {
                        int64_t i = row + iw + j * g->sw;
                        int64_t hit = (x[i] == m[j]) | ((x[i] != x[i]) & nan[j]);
                        best[j] += (i - best[j]) & -hit; /* i when hit, arithmetic: gcc branched on ?: */
                    }
                }
            for (int64_t j = 0; j < nc; j++)
                if (best[j] >= 0)
                    gx[best[j]] += gy[oh * g->ow + c0 + j];
        }
    }
}

/* Window (oh, ow) of max pooling on plane x, one at a time: its maximum as kw_max_plane_ computes it, and in
   *first the index in x of its first maximum (-1 for a window without cells). For the cells at the edges of
   the fast paths below, and for their windows that hold a NaN. */
static KW_T KW_FN(kw_max_window_)(const KGeo *g, const KW_T *x, int64_t oh, int64_t ow, int64_t *first)
{
    int64_t h0 = oh * g->sh - g->ph, w0 = ow * g->sw - g->pw, kh0, kh1, kw0, kw1;
    kw_taps(h0, g->kh, g->dh, g->h, &kh0, &kh1);
    kw_taps(w0, g->kw, g->dw, g->w, &kw0, &kw1);
    KW_T m = -INFINITY;
    bool nan = false;
    for (int64_t kh = kh0; kh < kh1; kh++)
        for (int64_t kw = kw0; kw < kw1; kw++) {
            KW_T v = x[(h0 + kh * g->dh) * g->w + w0 + kw * g->dw];
            m = v > m ? v : m;
            nan |= v != v;
        }
    m = nan ? (KW_T)NAN : m;
    *first = -1;
    for (int64_t kh = kh0; kh < kh1 && *first < 0; kh++)
        for (int64_t kw = kw0; kw < kw1; kw++) {
            int64_t i = (h0 + kh * g->dh) * g->w + w0 + kw * g->dw;
            if (x[i] == m || (nan && x[i] != x[i])) {
                *first = i;
                break;
            }
        }
    return m;
}

/* The common 2x2 window with stride 2 and no padding, every window inside x (so none overlaps another):
   straight-line code per window, vectorized along the row. The maximum comes out of the same selects in the
   same order as in kw_max_plane_ (so that +-0 ties give the same sign); a NaN anywhere gives NaN.
   Backward writes every cell of gx: gy at the window's first maximum, the first of its four cells that equals
   the maximum (+0 for a -0 gy: kw_max_plane_ adds into zeros), zeros elsewhere. A row with a NaN (rare)
   then redoes its windows that hold one through kw_max_window_. */
static inline KW_T KW_FN(kw_max4_)(KW_T a, KW_T b, KW_T c, KW_T d)
{
    KW_T m = b > a ? b : a;
    m = c > m ? c : m;
    m = d > m ? d : m;
    return __builtin_isunordered(a, b) | __builtin_isunordered(c, d) ? (KW_T)NAN : m;
}

/* Windows [0, n) of the rows r0, r1 into y, n a multiple of 4. In a function of its own, not inlined (in
   a caller gcc no longer trusts restrict), over a count it knows to be a multiple of the vector's lanes:
   gcc -O2 vectorizes only such loops. kw_max2x2_rows_ covers the windows past a multiple of 4 by running
   the last 4 windows again (they write what they wrote). */
__attribute__((noinline)) static void KW_FN(kw_max2x2_row_)(const KW_T *restrict r0, const KW_T *restrict r1,
                                                            KW_T *restrict y, int64_t n)
{
    n &= ~(int64_t)3;
    for (int64_t ow = 0; ow < n; ow++)
        y[ow] = KW_FN(kw_max4_)(r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1]);
}

static void KW_FN(kw_max2x2_plane_)(const KGeo *g, const KW_T *x, KW_T *y)
{
    int64_t n = g->ow, tail = n - 4;
    for (int64_t oh = 0; oh < g->oh; oh++) {
        const KW_T *r0 = x + 2 * oh * g->w, *r1 = r0 + g->w;
        KW_T *yr = y + oh * g->ow;
        if (n < 4) {
            for (int64_t ow = 0; ow < n; ow++)
                yr[ow] = KW_FN(kw_max4_)(r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1]);
            continue;
        }
        KW_FN(kw_max2x2_row_)(r0, r1, yr, n);
        if (n & 3)
            KW_FN(kw_max2x2_row_)(r0 + 2 * tail, r1 + 2 * tail, yr + tail, 4);
    }
}

/* Window ow of the rows r0, r1 (gy v): writes its four cells of gx (q0, q1) and returns whether it holds a
   NaN. Selects and masks only, so that the loops calling it vectorize. */
static inline KW_I KW_FN(kw_max2x2_bwd_cell_)(const KW_T *restrict r0, const KW_T *restrict r1, KW_T v,
                                               KW_T *restrict q0, KW_T *restrict q1, int64_t ow)
{
    KW_T a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
    KW_T m = b > a ? b : a;
    m = c > m ? c : m;
    m = d > m ? d : m;
    KW_I ha = a == m, hb = !ha & (b == m), hc = !(ha | hb) & (c == m), hd = !(ha | hb | hc);
    v += (KW_T)0;
    q0[2 * ow] = ha ? v : 0;
    q0[2 * ow + 1] = hb ? v : 0;
    q1[2 * ow] = hc ? v : 0;
    q1[2 * ow + 1] = hd ? v : 0;
    return (a != a) | (b != b) | (c != c) | (d != d);
}

/* Windows [0, n) of the rows r0, r1 with their gy gr into the rows q0, q1 of gx, n a multiple of 4 (as
   kw_max2x2_row_); whether one holds a NaN. */
__attribute__((noinline)) static KW_I KW_FN(kw_max2x2_bwd_row_)(const KW_T *restrict r0, const KW_T *restrict r1,
                                                                const KW_T *restrict gr, KW_T *restrict q0,
                                                                KW_T *restrict q1, int64_t n)
{
    KW_I nan = 0;
    n &= ~(int64_t)3;
    for (int64_t ow = 0; ow < n; ow++)
        nan |= KW_FN(kw_max2x2_bwd_cell_)(r0, r1, gr[ow], q0, q1, ow);
    return nan;
}

static void KW_FN(kw_max2x2_bwd_plane_)(const KGeo *g, const KW_T *x, const KW_T *gy, KW_T *gx)
{
    int64_t n = g->ow, tail = n - 4;
    for (int64_t oh = 0; oh < g->oh; oh++) {
        const KW_T *r0 = x + 2 * oh * g->w, *r1 = r0 + g->w, *gr = gy + oh * g->ow;
        KW_T *q0 = gx + 2 * oh * g->w, *q1 = q0 + g->w;
        KW_I nan = 0;
        if (n < 4) {
            for (int64_t ow = 0; ow < n; ow++)
                nan |= KW_FN(kw_max2x2_bwd_cell_)(r0, r1, gr[ow], q0, q1, ow);
        } else {
            nan = KW_FN(kw_max2x2_bwd_row_)(r0, r1, gr, q0, q1, n);
            if (n & 3)
                nan |= KW_FN(kw_max2x2_bwd_row_)(r0 + 2 * tail, r1 + 2 * tail, gr + tail, q0 + 2 * tail,
                                                 q1 + 2 * tail, 4);
        }
        for (int64_t ow = 0; nan && ow < g->ow; ow++) {
            KW_T a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
            int64_t first;
            if (!(__builtin_isunordered(a, b) | __builtin_isunordered(c, d)))
                continue;
            KW_FN(kw_max_window_)(g, x, oh, ow, &first);
            q0[2 * ow] = q0[2 * ow + 1] = q1[2 * ow] = q1[2 * ow + 1] = 0;
            gx[first] = gr[ow] + (KW_T)0;
        }
        for (int64_t iw = 2 * g->ow; iw < g->w; iw++) /* columns in no window: the last one of an odd w */
            q0[iw] = q1[iw] = 0;
    }
    if (g->h > 2 * g->oh) /* rows in no window */
        memset(gx + 2 * g->oh * g->w, 0, sizeof(KW_T) * (size_t)(g->w * (g->h - 2 * g->oh)));
}

/* The 3x3 window with stride 2 and padding 1 (ResNet's stem): straight-line code for the windows with
   every column inside x, one at a time for the others. Forward only: backward's windows overlap. */
static void KW_FN(kw_max3x3s2_plane_)(const KGeo *g, const KW_T *x, KW_T *y)
{
    int64_t first;
    for (int64_t oh = 0; oh < g->oh; oh++) {
        int64_t h0 = 2 * oh - 1, kh0, kh1;
        kw_taps(h0, 3, 1, g->h, &kh0, &kh1);
        /* windows ow in [lo, hi) read columns 2 ow - 1 .. 2 ow + 1, all inside x */
        int64_t lo = 1, hi = (g->w - 2) / 2 + 1;
        hi = hi > g->ow ? g->ow : hi < lo ? lo : hi;
        for (int64_t ow = 0; ow < g->ow; ow++) {
            if (ow < lo || ow >= hi || kh0 >= kh1) {
                y[oh * g->ow + ow] = KW_FN(kw_max_window_)(g, x, oh, ow, &first);
                continue;
            }
            const KW_T *r = x + (h0 + kh0) * g->w + 2 * ow - 1;
            KW_T m = r[0];
            int nan = 0;
            for (int64_t kh = kh0; kh < kh1; kh++, r += g->w) {
                m = r[0] > m ? r[0] : m;
                m = r[1] > m ? r[1] : m;
                m = r[2] > m ? r[2] : m;
                nan |= __builtin_isunordered(r[0], r[1]) | (r[2] != r[2]);
            }
            y[oh * g->ow + ow] = nan ? (KW_T)NAN : m;
        }
    }
}

/* Planes [lo, hi) of max pooling forward. */
static void KW_FN(kw_max_pool_range_)(void *ctx, int64_t lo, int64_t hi)
{
    const KPool *c = ctx;
    const KGeo *g = c->g;
    for (int64_t p = lo; p < hi; p++) {
        const KW_T *xp = (const KW_T *)c->x + p * g->h * g->w;
        KW_T *yp = (KW_T *)c->y + p * g->oh * g->ow;
        if (kw_max2x2(g))
            KW_FN(kw_max2x2_plane_)(g, xp, yp);
        else if (kw_max3x3s2(g))
            KW_FN(kw_max3x3s2_plane_)(g, xp, yp);
        else
            KW_FN(kw_max_plane_)(g, xp, yp, NULL, NULL);
    }
}

/* Planes [lo, hi) of max pooling backward. */
static void KW_FN(kw_max_pool_bwd_range_)(void *ctx, int64_t lo, int64_t hi)
{
    const KPool *c = ctx;
    const KGeo *g = c->g;
    for (int64_t p = lo; p < hi; p++) {
        const KW_T *xp = (const KW_T *)c->x + p * g->h * g->w, *gyp = (const KW_T *)c->gy + p * g->oh * g->ow;
        KW_T *gxp = (KW_T *)c->gx + p * g->h * g->w;
        if (kw_max2x2(g)) { /* writes every cell of gx */
            KW_FN(kw_max2x2_bwd_plane_)(g, xp, gyp, gxp);
            continue;
        }
        memset(gxp, 0, sizeof(KW_T) * (size_t)(g->h * g->w));
        KW_FN(kw_max_plane_)(g, xp, NULL, gyp, gxp);
    }
}

/* x [N,C,H,W] -> y [N,C,OH,OW], the maximum of each window. */
void KW_FN(lathe_k_max_pool2d_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KGeo g;
    if (!kw_geometry(desc, n, 0, KW_OUT, -2, &g)) {
        kw_zero_out(out, desc, n, sizeof(KW_T));
        return;
    }
    KPool c = {.g = &g, .x = in[0], .y = out};
    lathe_parallel_for(g.n * g.c, (g.h * g.w + g.oh * g.ow) * (int64_t)sizeof(KW_T), KW_FN(kw_max_pool_range_), &c);
}

/* (x, gy) -> gx: each gy added at its window's first maximum in x. */
void KW_FN(lathe_k_max_pool2d_bwd_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KGeo g;
    if (!kw_geometry(desc, n, 0, 1, -2, &g) || !kw_out_is_input(desc, n, 0)) {
        kw_zero_out(out, desc, n, sizeof(KW_T));
        return;
    }
    KPool c = {.g = &g, .x = in[0], .gy = in[1], .gx = out};
    lathe_parallel_for(g.n * g.c, (2 * g.h * g.w + g.oh * g.ow) * (int64_t)sizeof(KW_T),
                       KW_FN(kw_max_pool_bwd_range_), &c);
}

/* Average pooling, plain or adaptive, forward over planes [lo, hi): each window's sum / its divisor. */
static void KW_FN(kw_avg_pool_range_)(void *ctx, int64_t lo, int64_t hi)
{
    const KPool *c = ctx;
    const KGeo *g = c->g;
    for (int64_t p = lo; p < hi; p++) {
        const KW_T *xp = (const KW_T *)c->x + p * g->h * g->w;
        KW_T *yp = (KW_T *)c->y + p * g->oh * g->ow;
        for (int64_t oh = 0; oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++) {
                KSpan sh, sw;
                kw_avg_window(g, c->adaptive, oh, ow, &sh, &sw);
                double sum = 0;
                for (int64_t ih = sh.lo; ih < sh.hi; ih++)
                    for (int64_t iw = sw.lo; iw < sw.hi; iw++)
                        sum += xp[ih * g->w + iw];
                /* PyTorch: a window without input cells averages to 0 */
                yp[oh * g->ow + ow] = sh.lo < sh.hi && sw.lo < sw.hi ? (KW_T)(sum / (double)(sh.count * sw.count)) : 0;
            }
    }
}

/* Its adjoint over planes [lo, hi): each gy / its window's divisor added into every cell of the window. */
static void KW_FN(kw_avg_pool_bwd_range_)(void *ctx, int64_t lo, int64_t hi)
{
    const KPool *c = ctx;
    const KGeo *g = c->g;
    for (int64_t p = lo; p < hi; p++) {
        const KW_T *gyp = (const KW_T *)c->gy + p * g->oh * g->ow;
        KW_T *gxp = (KW_T *)c->gx + p * g->h * g->w;
        memset(gxp, 0, sizeof(KW_T) * (size_t)(g->h * g->w));
        for (int64_t oh = 0; oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++) {
                KSpan sh, sw;
                kw_avg_window(g, c->adaptive, oh, ow, &sh, &sw);
                if (sh.lo >= sh.hi || sw.lo >= sw.hi)
                    continue;
                KW_T v = (KW_T)(gyp[oh * g->ow + ow] / (double)(sh.count * sw.count));
                for (int64_t ih = sh.lo; ih < sh.hi; ih++)
                    for (int64_t iw = sw.lo; iw < sw.hi; iw++)
                        gxp[ih * g->w + iw] += v;
            }
    }
}

static void KW_FN(kw_avg_pool_)(void *out, const void *const *in, int64_t n, const int64_t *desc, bool adaptive)
{
    KGeo g;
    if (!kw_geometry(desc, n, 0, KW_OUT, -2, &g)) {
        kw_zero_out(out, desc, n, sizeof(KW_T));
        return;
    }
    KPool c = {.g = &g, .x = in[0], .y = out, .adaptive = adaptive};
    lathe_parallel_for(g.n * g.c, (g.h * g.w + g.oh * g.ow) * (int64_t)sizeof(KW_T), KW_FN(kw_avg_pool_range_), &c);
}

static void KW_FN(kw_avg_pool_bwd_)(void *out, const void *const *in, int64_t n, const int64_t *desc,
                                    bool adaptive)
{
    KGeo g;
    if (!kw_geometry(desc, n, KW_OUT, 0, -2, &g)) {
        kw_zero_out(out, desc, n, sizeof(KW_T));
        return;
    }
    KPool c = {.g = &g, .gy = in[0], .gx = out, .adaptive = adaptive};
    lathe_parallel_for(g.n * g.c, (g.h * g.w + g.oh * g.ow) * (int64_t)sizeof(KW_T),
                       KW_FN(kw_avg_pool_bwd_range_), &c);
}

void KW_FN(lathe_k_avg_pool2d_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KW_FN(kw_avg_pool_)(out, in, n, desc, false);
}

void KW_FN(lathe_k_avg_pool2d_bwd_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KW_FN(kw_avg_pool_bwd_)(out, in, n, desc, false);
}

void KW_FN(lathe_k_adaptive_avg_pool2d_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KW_FN(kw_avg_pool_)(out, in, n, desc, true);
}

void KW_FN(lathe_k_adaptive_avg_pool2d_bwd_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KW_FN(kw_avg_pool_bwd_)(out, in, n, desc, true);
}

#endif
