/* kern_window.c: the convolution and pooling kernels of lathe_kern.h (lathe_k_conv2d_f32 ...), f32 and f64.
   Convolution is im2col + GEMM through OpenBLAS, one GEMM per chunk of samples and group, with a scratch
   buffer kept per thread; pooling is direct loops, with straight-line fast paths for the common windows.
   ir/interp_window.c is the reference they are tested against; bench/conv_kernels.sh times them.
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

/* How a convolution runs: nothing to compute (a zero dim: the result is the zeros it starts from), GEMMs
   over chunks of samples on im2col matrices in scratch, or direct loops when a GEMM is past BLAS's int dims
   or no scratch can be had. */
typedef enum { KW_EMPTY, KW_DIRECT, KW_IM2COL } KPlanKind;

typedef struct KPlan {
    KPlanKind kind;
    int64_t cg, og, k, ohw; /* channels in and out of a group, the GEMMs' inner dim, the output plane */
    int64_t chunk;          /* samples per GEMM */
    void *cols;             /* scratch: cols [k, chunk ohw], then mat [og, chunk ohw] */
} KPlan;

/* Samples per chunk: enough for a GEMM of KW_CHUNK_COLS columns (OpenBLAS's threads split a GEMM of a
   few thousand columns well; one of a sample's few hundred columns they spin on, and past a few thousand
   the columns of the chunk fall out of cache), within KW_SCRATCH_BUDGET bytes of scratch (one sample takes
   what it needs). A GEMM with fewer than KW_CHUNK_MIN_K products per element is bound by memory, not
   arithmetic: it runs per sample, since the copies of a chunk would cost more than they buy. Measured with
   bench/conv_kernels.sh. */
#ifndef KW_CHUNK_COLS /* -D overrides them: to measure others, or to run the tests through many chunks */
#define KW_CHUNK_COLS 2048
#endif
#ifndef KW_CHUNK_MIN_K
#define KW_CHUNK_MIN_K 64
#endif
#define KW_SCRATCH_BUDGET ((int64_t)32 << 20)

static KPlan kw_conv_plan(const KGeo *g, size_t elsize)
{
    KPlan p = {.kind = KW_EMPTY, .cg = g->c / g->groups, .og = g->o / g->groups, .ohw = g->oh * g->ow};
    int64_t per_sample; /* bytes of cols and mat of one sample */
    p.k = p.cg * g->kh * g->kw;
    if (g->n == 0 || p.k == 0 || p.ohw == 0 || p.og == 0)
        return p;
    p.kind = KW_DIRECT;
    if (p.k > INT_MAX || p.ohw > INT_MAX || p.og > INT_MAX ||
        __builtin_mul_overflow(p.k + p.og, p.ohw, &per_sample) ||
        __builtin_mul_overflow(per_sample, (int64_t)elsize, &per_sample) || (uint64_t)per_sample > SIZE_MAX)
        return p;
    p.chunk = p.k < KW_CHUNK_MIN_K ? 1 : (KW_CHUNK_COLS + p.ohw - 1) / p.ohw;
    if (p.chunk > KW_SCRATCH_BUDGET / per_sample)
        p.chunk = KW_SCRATCH_BUDGET / per_sample;
    p.chunk = p.chunk < 1 ? 1 : p.chunk > g->n ? g->n : p.chunk;
    p.cols = kw_scratch_get((size_t)(per_sample * p.chunk));
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

#define KW_T float
#define KW_SUFFIX f32
#define KW_GEMM cblas_sgemm
#include "kern_window.c"
#undef KW_T
#undef KW_SUFFIX
#undef KW_GEMM

#define KW_T double
#define KW_SUFFIX f64
#define KW_GEMM cblas_dgemm
#include "kern_window.c"
#undef KW_T
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
                memset(row, 0, sizeof(KW_T) * (size_t)(oh0 * g->ow));
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

/* The [og, ohw] planes of group grp of samples s0 .. s0+ns-1 of an NCHW tensor t with o channels into the
   matrix m [og, ns ohw], whose row holds one channel of every sample side by side; kw_scatter_ the reverse. */
static void KW_FN(kw_gather_)(const KGeo *g, const KW_T *t, KW_T *m, int64_t s0, int64_t ns, int64_t grp)
{
    int64_t og = g->o / g->groups, ohw = g->oh * g->ow;
    for (int64_t s = 0; s < ns; s++)
        for (int64_t o = 0; o < og; o++)
            memcpy(m + (o * ns + s) * ohw, t + ((s0 + s) * g->o + grp * og + o) * ohw, sizeof(KW_T) * (size_t)ohw);
}

static void KW_FN(kw_scatter_)(const KGeo *g, const KW_T *m, KW_T *t, int64_t s0, int64_t ns, int64_t grp)
{
    int64_t og = g->o / g->groups, ohw = g->oh * g->ow;
    for (int64_t s = 0; s < ns; s++)
        for (int64_t o = 0; o < og; o++)
            memcpy(t + ((s0 + s) * g->o + grp * og + o) * ohw, m + (o * ns + s) * ohw, sizeof(KW_T) * (size_t)ohw);
}

/* The convolution's sum of products as direct loops, for a GEMM past BLAS's int dims or no scratch: the
   forward op (which 0) adds each product into y, the backward ops add gy times one factor into the other
   factor's gradient (1: gx from (gy, w), 2: gw from (x, gy)). out is zero on entry. */
static void KW_FN(kw_conv_direct_)(const KGeo *g, int which, KW_T *out, const KW_T *a, const KW_T *b)
{
    int64_t cg = g->c / g->groups, og = g->o / g->groups;
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t o = 0; o < g->o; o++)
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

/* The GEMMs of the convolutions below run over chunks of plan->chunk samples at once, with the columns of
   every sample of the chunk side by side (cols [k, chunk ohw]): one large GEMM keeps OpenBLAS's threads busy
   where a GEMM per sample left them spinning. The chunk's slices of y or gy move between NCHW and the
   matrix [og, chunk ohw] (mat) by copies, which cost little beside the GEMM. */

/* (x [N,C,H,W], w [O,C/groups,KH,KW]) -> y [N,O,OH,OW]: per chunk and group, y_g = w_g @ im2col(x_g). */
void KW_FN(lathe_k_conv2d_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KGeo g;
    KPlan p = {0};
    KW_T *y = out;
    const KW_T *x = in[0], *w = in[1];
    if (kw_geometry(desc, n, 0, KW_OUT, 1, &g))
        p = kw_conv_plan(&g, sizeof(KW_T));
    if (p.kind != KW_IM2COL) { /* the GEMMs below write every element of y */
        kw_zero_out(out, desc, n, sizeof(KW_T));
        if (p.kind == KW_DIRECT)
            KW_FN(kw_conv_direct_)(&g, 0, y, x, w);
        return;
    }
    KW_T *cols = p.cols, *mat = (KW_T *)p.cols + p.k * p.chunk * p.ohw;
    for (int64_t s0 = 0; s0 < g.n; s0 += p.chunk) {
        int64_t ns = g.n - s0 < p.chunk ? g.n - s0 : p.chunk;
        int ld = (int)(ns * p.ohw);
        for (int64_t grp = 0; grp < g.groups; grp++) {
            for (int64_t s = 0; s < ns; s++)
                KW_FN(kw_im2col_)(&g, x + ((s0 + s) * g.c + grp * p.cg) * g.h * g.w, cols + s * p.ohw, ld);
            /* one sample: the GEMM writes y's planes in place */
            KW_T *c = ns == 1 ? y + (s0 * g.o + grp * p.og) * p.ohw : mat;
            KW_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p.og, ld, (int)p.k, 1, w + grp * p.og * p.k,
                    (int)p.k, cols, ld, 0, c, ld);
            if (ns > 1)
                KW_FN(kw_scatter_)(&g, mat, y, s0, ns, grp);
        }
    }
}

/* (gy [N,O,OH,OW], w) -> gx [N,C,H,W]: per chunk and group, gx_g += col2im(w_g^T @ gy_g). */
void KW_FN(lathe_k_conv2d_bwd_input_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KGeo g;
    KPlan p = {0};
    KW_T *gx = out;
    const KW_T *gy = in[0], *w = in[1];
    kw_zero_out(out, desc, n, sizeof(KW_T));
    if (kw_geometry(desc, n, KW_OUT, 0, 1, &g))
        p = kw_conv_plan(&g, sizeof(KW_T));
    if (p.kind == KW_DIRECT)
        KW_FN(kw_conv_direct_)(&g, 1, gx, gy, w);
    if (p.kind != KW_IM2COL)
        return;
    KW_T *cols = p.cols, *mat = (KW_T *)p.cols + p.k * p.chunk * p.ohw;
    for (int64_t s0 = 0; s0 < g.n; s0 += p.chunk) {
        int64_t ns = g.n - s0 < p.chunk ? g.n - s0 : p.chunk;
        int ld = (int)(ns * p.ohw);
        for (int64_t grp = 0; grp < g.groups; grp++) {
            const KW_T *b = gy + (s0 * g.o + grp * p.og) * p.ohw;
            if (ns > 1) {
                KW_FN(kw_gather_)(&g, gy, mat, s0, ns, grp);
                b = mat;
            }
            KW_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)p.k, ld, (int)p.og, 1, w + grp * p.og * p.k,
                    (int)p.k, b, ld, 0, cols, ld);
            for (int64_t s = 0; s < ns; s++)
                KW_FN(kw_col2im_)(&g, cols + s * p.ohw, ld, gx + ((s0 + s) * g.c + grp * p.cg) * g.h * g.w);
        }
    }
}

/* (x [N,C,H,W], gy [N,O,OH,OW]) -> gw [O,C/groups,KH,KW]: gw_g = the sum over chunks of
   gy_g @ im2col(x_g)^T, accumulated by the GEMM (beta 1). */
void KW_FN(lathe_k_conv2d_bwd_weight_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KGeo g;
    KPlan p = {0};
    KW_T *gw = out;
    const KW_T *x = in[0], *gy = in[1];
    kw_zero_out(out, desc, n, sizeof(KW_T));
    if (kw_geometry(desc, n, 0, 1, KW_OUT, &g))
        p = kw_conv_plan(&g, sizeof(KW_T));
    if (p.kind == KW_DIRECT)
        KW_FN(kw_conv_direct_)(&g, 2, gw, x, gy);
    if (p.kind != KW_IM2COL)
        return;
    KW_T *cols = p.cols, *mat = (KW_T *)p.cols + p.k * p.chunk * p.ohw;
    for (int64_t s0 = 0; s0 < g.n; s0 += p.chunk) {
        int64_t ns = g.n - s0 < p.chunk ? g.n - s0 : p.chunk;
        int ld = (int)(ns * p.ohw);
        for (int64_t grp = 0; grp < g.groups; grp++) {
            for (int64_t s = 0; s < ns; s++)
                KW_FN(kw_im2col_)(&g, x + ((s0 + s) * g.c + grp * p.cg) * g.h * g.w, cols + s * p.ohw, ld);
            const KW_T *a = gy + (s0 * g.o + grp * p.og) * p.ohw;
            if (ns > 1) {
                KW_FN(kw_gather_)(&g, gy, mat, s0, ns, grp);
                a = mat;
            }
            KW_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)p.og, (int)p.k, ld, 1, a, ld, cols, ld, 1,
                    gw + grp * p.og * p.k, (int)p.k);
        }
    }
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
   straight-line code per window. The maximum comes out of the same selects in the same order as in
   kw_max_plane_ (so that +-0 ties give the same sign); a NaN anywhere gives NaN. Backward writes every cell
   of gx: gy at the window's first maximum (+0 for a -0: kw_max_plane_ adds into zeros), zeros elsewhere;
   a window with a NaN (rare: a branch that predicts well) goes through kw_max_window_. */
/* The maximum of a 2x2 window a b / c d. */
static inline KW_T KW_FN(kw_max4_)(KW_T a, KW_T b, KW_T c, KW_T d)
{
    KW_T m = b > a ? b : a;
    m = c > m ? c : m;
    m = d > m ? d : m;
    return __builtin_isunordered(a, b) | __builtin_isunordered(c, d) ? (KW_T)NAN : m;
}

static void KW_FN(kw_max2x2_plane_)(const KGeo *g, const KW_T *restrict x, KW_T *restrict y,
                                    const KW_T *restrict gy, KW_T *restrict gx)
{
    for (int64_t oh = 0; oh < g->oh; oh++) {
        const KW_T *r0 = x + 2 * oh * g->w, *r1 = r0 + g->w;
        if (y) {
            /* two loops, the first over a multiple of 8 windows: gcc -O2 vectorises only such */
            int64_t nv = g->ow & ~(int64_t)7, ow;
            for (ow = 0; ow < nv; ow++)
                y[oh * g->ow + ow] = KW_FN(kw_max4_)(r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1]);
            for (; ow < g->ow; ow++)
                y[oh * g->ow + ow] = KW_FN(kw_max4_)(r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1]);
            continue;
        }
        for (int64_t ow = 0; ow < g->ow; ow++) {
            KW_T a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
            /* strict comparisons in row-major order keep the first maximum; at is its offset in the window,
               chosen by arithmetic on masks: gcc branched on ?: (a coin flip on real data) */
            int64_t at = 0, gt = -(int64_t)(b > a);
            KW_T m = b > a ? b : a;
            at += (1 - at) & gt;
            gt = -(int64_t)(c > m);
            m = c > m ? c : m;
            at += (g->w - at) & gt;
            gt = -(int64_t)(d > m);
            at += (g->w + 1 - at) & gt;
            KW_T *q0 = gx + 2 * oh * g->w + 2 * ow, *q1 = q0 + g->w;
            q0[0] = q0[1] = q1[0] = q1[1] = 0;
            if (__builtin_expect(__builtin_isunordered(a, b) | __builtin_isunordered(c, d), 0)) {
                KW_FN(kw_max_window_)(g, x, oh, ow, &at);
                at -= 2 * oh * g->w + 2 * ow;
            }
            q0[at] = gy[oh * g->ow + ow] + (KW_T)0;
        }
        for (int64_t iw = 2 * g->ow; iw < g->w; iw++) /* columns in no window: the last one of an odd w */
            gx[2 * oh * g->w + iw] = gx[(2 * oh + 1) * g->w + iw] = 0;
    }
    if (gx && g->h > 2 * g->oh) /* rows in no window */
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

/* x [N,C,H,W] -> y [N,C,OH,OW], the maximum of each window. */
void KW_FN(lathe_k_max_pool2d_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KGeo g;
    const KW_T *x = in[0];
    if (!kw_geometry(desc, n, 0, KW_OUT, -2, &g)) {
        kw_zero_out(out, desc, n, sizeof(KW_T));
        return;
    }
    for (int64_t p = 0; p < g.n * g.c; p++) {
        const KW_T *xp = x + p * g.h * g.w;
        KW_T *yp = (KW_T *)out + p * g.oh * g.ow;
        if (kw_max2x2(&g))
            KW_FN(kw_max2x2_plane_)(&g, xp, yp, NULL, NULL);
        else if (kw_max3x3s2(&g))
            KW_FN(kw_max3x3s2_plane_)(&g, xp, yp);
        else
            KW_FN(kw_max_plane_)(&g, xp, yp, NULL, NULL);
    }
}

/* (x, gy) -> gx: each gy added at its window's first maximum in x. */
void KW_FN(lathe_k_max_pool2d_bwd_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KGeo g;
    const KW_T *x = in[0], *gy = in[1];
    if (!kw_geometry(desc, n, 0, 1, -2, &g) || !kw_out_is_input(desc, n, 0)) {
        kw_zero_out(out, desc, n, sizeof(KW_T));
        return;
    }
    bool fast = kw_max2x2(&g); /* writes every cell of gx */
    if (!fast)
        kw_zero_out(out, desc, n, sizeof(KW_T));
    for (int64_t p = 0; p < g.n * g.c; p++) {
        const KW_T *xp = x + p * g.h * g.w, *gyp = gy + p * g.oh * g.ow;
        KW_T *gxp = (KW_T *)out + p * g.h * g.w;
        if (fast)
            KW_FN(kw_max2x2_plane_)(&g, xp, NULL, gyp, gxp);
        else
            KW_FN(kw_max_plane_)(&g, xp, NULL, gyp, gxp);
    }
}

/* Average pooling, plain or adaptive, forward: each window's sum / its divisor. */
static void KW_FN(kw_avg_pool_fwd_)(const KGeo *g, bool adaptive, const KW_T *x, KW_T *y)
{
    for (int64_t p = 0; p < g->n * g->c; p++) {
        const KW_T *xp = x + p * g->h * g->w;
        KW_T *yp = y + p * g->oh * g->ow;
        for (int64_t oh = 0; oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++) {
                KSpan sh, sw;
                kw_avg_window(g, adaptive, oh, ow, &sh, &sw);
                double sum = 0;
                for (int64_t ih = sh.lo; ih < sh.hi; ih++)
                    for (int64_t iw = sw.lo; iw < sw.hi; iw++)
                        sum += xp[ih * g->w + iw];
                /* PyTorch: a window without input cells averages to 0 */
                yp[oh * g->ow + ow] = sh.lo < sh.hi && sw.lo < sw.hi ? (KW_T)(sum / (double)(sh.count * sw.count)) : 0;
            }
    }
}

/* Its adjoint: each gy / its window's divisor added into every cell of the window. gx is zero on entry. */
static void KW_FN(kw_avg_pool_bwd_)(const KGeo *g, bool adaptive, const KW_T *gy, KW_T *gx)
{
    for (int64_t p = 0; p < g->n * g->c; p++) {
        const KW_T *gyp = gy + p * g->oh * g->ow;
        KW_T *gxp = gx + p * g->h * g->w;
        for (int64_t oh = 0; oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++) {
                KSpan sh, sw;
                kw_avg_window(g, adaptive, oh, ow, &sh, &sw);
                if (sh.lo >= sh.hi || sw.lo >= sw.hi)
                    continue;
                KW_T v = (KW_T)(gyp[oh * g->ow + ow] / (double)(sh.count * sw.count));
                for (int64_t ih = sh.lo; ih < sh.hi; ih++)
                    for (int64_t iw = sw.lo; iw < sw.hi; iw++)
                        gxp[ih * g->w + iw] += v;
            }
    }
}

void KW_FN(lathe_k_avg_pool2d_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KGeo g;
    if (!kw_geometry(desc, n, 0, KW_OUT, -2, &g)) {
        kw_zero_out(out, desc, n, sizeof(KW_T));
        return;
    }
    KW_FN(kw_avg_pool_fwd_)(&g, false, in[0], out);
}

void KW_FN(lathe_k_avg_pool2d_bwd_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KGeo g;
    kw_zero_out(out, desc, n, sizeof(KW_T));
    if (kw_geometry(desc, n, KW_OUT, 0, -2, &g))
        KW_FN(kw_avg_pool_bwd_)(&g, false, in[0], out);
}

void KW_FN(lathe_k_adaptive_avg_pool2d_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KGeo g;
    if (!kw_geometry(desc, n, 0, KW_OUT, -2, &g)) {
        kw_zero_out(out, desc, n, sizeof(KW_T));
        return;
    }
    KW_FN(kw_avg_pool_fwd_)(&g, true, in[0], out);
}

void KW_FN(lathe_k_adaptive_avg_pool2d_bwd_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KGeo g;
    kw_zero_out(out, desc, n, sizeof(KW_T));
    if (kw_geometry(desc, n, KW_OUT, 0, -2, &g))
        KW_FN(kw_avg_pool_bwd_)(&g, true, in[0], out);
}

#endif
