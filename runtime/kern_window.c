/* kern_window.c: the convolution and pooling kernels of lathe_kern.h (lathe_k_conv2d_f32 ...), f32 and f64.
   Convolution is im2col + GEMM through OpenBLAS, per sample and group, with a scratch buffer kept per thread;
   pooling is direct loops. ir/interp_window.c is the reference they are tested against.
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

/* A 1x1 convolution with stride 1 and no padding reads x as its own im2col matrix. */
static bool kw_pointwise(const KGeo *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0 && g->oh == g->h &&
           g->ow == g->w;
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
   on x itself (pointwise), GEMMs on an im2col matrix in *cols, or direct loops when the GEMM is past BLAS's
   int dims or no scratch can be had. */
typedef enum { KW_EMPTY, KW_DIRECT, KW_POINTWISE, KW_IM2COL } KPlan;

static KPlan kw_conv_plan(const KGeo *g, size_t elsize, void **cols)
{
    int64_t k = g->c / g->groups * g->kh * g->kw, ohw = g->oh * g->ow, og = g->o / g->groups, bytes;
    if (g->n == 0 || k == 0 || ohw == 0 || og == 0)
        return KW_EMPTY;
    if (k > INT_MAX || ohw > INT_MAX || og > INT_MAX || __builtin_mul_overflow(k, ohw, &bytes) ||
        __builtin_mul_overflow(bytes, (int64_t)elsize, &bytes) || (uint64_t)bytes > SIZE_MAX)
        return KW_DIRECT;
    if (kw_pointwise(g))
        return KW_POINTWISE;
    *cols = kw_scratch_get((size_t)bytes);
    return *cols ? KW_IM2COL : KW_DIRECT;
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

/* x's plane of one sample and group (cg channels) into cols [cg kh kw, oh ow]: row (c, kh, kw) holds the
   cells that tap (kh, kw) of channel c reads at every output position, zeros where it reads padding. */
static void KW_FN(kw_im2col_)(const KGeo *g, const KW_T *x, KW_T *cols)
{
    int64_t cg = g->c / g->groups, ohw = g->oh * g->ow;
    for (int64_t c = 0; c < cg; c++)
        for (int64_t kh = 0; kh < g->kh; kh++)
            for (int64_t kw = 0; kw < g->kw; kw++) {
                KW_T *row = cols + ((c * g->kh + kh) * g->kw + kw) * ohw;
                int64_t iw0 = kw * g->dw - g->pw, ow0, ow1; /* columns ow0..ow1-1 read inside x */
                kw_taps(iw0, g->ow, g->sw, g->w, &ow0, &ow1);
                for (int64_t oh = 0; oh < g->oh; oh++) {
                    KW_T *r = row + oh * g->ow;
                    int64_t ih = oh * g->sh - g->ph + kh * g->dh;
                    if (ih < 0 || ih >= g->h) {
                        memset(r, 0, sizeof(KW_T) * (size_t)g->ow);
                        continue;
                    }
                    const KW_T *xr = x + (c * g->h + ih) * g->w;
                    for (int64_t ow = 0; ow < ow0; ow++)
                        r[ow] = 0;
                    if (g->sw == 1 && ow1 > ow0)
                        memcpy(r + ow0, xr + iw0 + ow0, sizeof(KW_T) * (size_t)(ow1 - ow0));
                    else
                        for (int64_t ow = ow0; ow < ow1; ow++)
                            r[ow] = xr[iw0 + ow * g->sw];
                    for (int64_t ow = ow1; ow < g->ow; ow++)
                        r[ow] = 0;
                }
            }
}

/* The adjoint of im2col: every cell of cols added into the x cell it was read from (padding dropped). */
static void KW_FN(kw_col2im_)(const KGeo *g, const KW_T *cols, KW_T *gx)
{
    int64_t cg = g->c / g->groups, ohw = g->oh * g->ow;
    for (int64_t c = 0; c < cg; c++)
        for (int64_t kh = 0; kh < g->kh; kh++)
            for (int64_t kw = 0; kw < g->kw; kw++) {
                const KW_T *row = cols + ((c * g->kh + kh) * g->kw + kw) * ohw;
                int64_t iw0 = kw * g->dw - g->pw, ow0, ow1;
                kw_taps(iw0, g->ow, g->sw, g->w, &ow0, &ow1);
                for (int64_t oh = 0; oh < g->oh; oh++) {
                    int64_t ih = oh * g->sh - g->ph + kh * g->dh;
                    if (ih < 0 || ih >= g->h)
                        continue;
                    const KW_T *r = row + oh * g->ow;
                    KW_T *xr = gx + (c * g->h + ih) * g->w;
                    for (int64_t ow = ow0; ow < ow1; ow++)
                        xr[iw0 + ow * g->sw] += r[ow];
                }
            }
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

/* (x [N,C,H,W], w [O,C/groups,KH,KW]) -> y [N,O,OH,OW]: per sample and group, y_g = w_g @ im2col(x_g). */
void KW_FN(lathe_k_conv2d_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KGeo g;
    void *cols = NULL;
    KW_T *y = out;
    const KW_T *x = in[0], *w = in[1];
    KPlan plan = kw_geometry(desc, n, 0, KW_OUT, 1, &g) ? kw_conv_plan(&g, sizeof(KW_T), &cols) : KW_EMPTY;
    if (plan != KW_POINTWISE && plan != KW_IM2COL) { /* the GEMMs below write every element of y */
        kw_zero_out(out, desc, n, sizeof(KW_T));
        if (plan == KW_DIRECT)
            KW_FN(kw_conv_direct_)(&g, 0, y, x, w);
        return;
    }
    int cg = (int)(g.c / g.groups), og = (int)(g.o / g.groups), ohw = (int)(g.oh * g.ow);
    int k = (int)(cg * g.kh * g.kw);
    for (int64_t s = 0; s < g.n; s++)
        for (int64_t grp = 0; grp < g.groups; grp++) {
            const KW_T *xg = x + (s * g.c + grp * cg) * g.h * g.w;
            if (plan == KW_IM2COL)
                KW_FN(kw_im2col_)(&g, xg, cols);
            KW_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, og, ohw, k, 1, w + grp * og * k, k,
                    plan == KW_IM2COL ? cols : xg, ohw, 0, y + (s * g.o + grp * og) * ohw, ohw);
        }
}

/* (gy [N,O,OH,OW], w) -> gx [N,C,H,W]: per sample and group, gx_g += col2im(w_g^T @ gy_g). */
void KW_FN(lathe_k_conv2d_bwd_input_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KGeo g;
    void *cols = NULL;
    KW_T *gx = out;
    const KW_T *gy = in[0], *w = in[1];
    kw_zero_out(out, desc, n, sizeof(KW_T));
    KPlan plan = kw_geometry(desc, n, KW_OUT, 0, 1, &g) ? kw_conv_plan(&g, sizeof(KW_T), &cols) : KW_EMPTY;
    if (plan == KW_DIRECT)
        KW_FN(kw_conv_direct_)(&g, 1, gx, gy, w);
    if (plan != KW_POINTWISE && plan != KW_IM2COL)
        return;
    int cg = (int)(g.c / g.groups), og = (int)(g.o / g.groups), ohw = (int)(g.oh * g.ow);
    int k = (int)(cg * g.kh * g.kw);
    for (int64_t s = 0; s < g.n; s++)
        for (int64_t grp = 0; grp < g.groups; grp++) {
            KW_T *gxg = gx + (s * g.c + grp * cg) * g.h * g.w;
            KW_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, k, ohw, og, 1, w + grp * og * k, k,
                    gy + (s * g.o + grp * og) * ohw, ohw, 0, plan == KW_IM2COL ? cols : gxg, ohw);
            if (plan == KW_IM2COL)
                KW_FN(kw_col2im_)(&g, cols, gxg);
        }
}

/* (x [N,C,H,W], gy [N,O,OH,OW]) -> gw [O,C/groups,KH,KW]: gw_g = the sum over samples of gy_g @ im2col(x_g)^T. */
void KW_FN(lathe_k_conv2d_bwd_weight_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KGeo g;
    void *cols = NULL;
    KW_T *gw = out;
    const KW_T *x = in[0], *gy = in[1];
    kw_zero_out(out, desc, n, sizeof(KW_T));
    KPlan plan = kw_geometry(desc, n, 0, 1, KW_OUT, &g) ? kw_conv_plan(&g, sizeof(KW_T), &cols) : KW_EMPTY;
    if (plan == KW_DIRECT)
        KW_FN(kw_conv_direct_)(&g, 2, gw, x, gy);
    if (plan != KW_POINTWISE && plan != KW_IM2COL)
        return;
    int cg = (int)(g.c / g.groups), og = (int)(g.o / g.groups), ohw = (int)(g.oh * g.ow);
    int k = (int)(cg * g.kh * g.kw);
    for (int64_t s = 0; s < g.n; s++)
        for (int64_t grp = 0; grp < g.groups; grp++) {
            const KW_T *xg = x + (s * g.c + grp * cg) * g.h * g.w;
            if (plan == KW_IM2COL)
                KW_FN(kw_im2col_)(&g, xg, cols);
            KW_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, og, k, ohw, 1, gy + (s * g.o + grp * og) * ohw, ohw,
                    plan == KW_IM2COL ? cols : xg, ohw, 1, gw + grp * og * k, k);
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

/* x [N,C,H,W] -> y [N,C,OH,OW], the maximum of each window. */
void KW_FN(lathe_k_max_pool2d_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KGeo g;
    const KW_T *x = in[0];
    if (!kw_geometry(desc, n, 0, KW_OUT, -2, &g)) {
        kw_zero_out(out, desc, n, sizeof(KW_T));
        return;
    }
    for (int64_t p = 0; p < g.n * g.c; p++)
        KW_FN(kw_max_plane_)(&g, x + p * g.h * g.w, (KW_T *)out + p * g.oh * g.ow, NULL, NULL);
}

/* (x, gy) -> gx: each gy added at its window's first maximum in x. */
void KW_FN(lathe_k_max_pool2d_bwd_)(void *out, const void *const *in, int64_t n, const int64_t *desc)
{
    KGeo g;
    const KW_T *x = in[0], *gy = in[1];
    kw_zero_out(out, desc, n, sizeof(KW_T));
    if (!kw_geometry(desc, n, 0, 1, -2, &g) || !kw_out_is_input(desc, n, 0))
        return;
    for (int64_t p = 0; p < g.n * g.c; p++)
        KW_FN(kw_max_plane_)(&g, x + p * g.h * g.w, NULL, gy + p * g.oh * g.ow, (KW_T *)out + p * g.h * g.w);
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
