/* interp_window.c: the reference interpreter's convolution and pooling, forward and backward, in double
   precision with PyTorch's semantics. Direct loops written to be obviously right, not fast: the fast kernels
   of runtime/kern_window.c are tested against these. */
#include "interp_window.h"

#include <assert.h>
#include <math.h>
#include <string.h>

/* The geometry of one window op: the input x [n,c,h,w], the output y [n,o,oh,ow] (for pooling o == c), the
   window kh x kw and its stride, padding and dilation. For the _BWD ops x and y name the forward op's input
   and output, whichever buffers carry their gradients. */
typedef struct Geo {
    int64_t n, c, h, w;
    int64_t o, oh, ow;
    int64_t kh, kw;
    int64_t sh, sw, ph, pw, dh, dw;
    int64_t groups;
} Geo;

static void set_nchw(const Shape *s, int64_t *n, int64_t *c, int64_t *h, int64_t *w)
{
    assert(s->rank == 4 && "window ops work on rank-4 NCHW tensors");
    *n = s->dim[0];
    *c = s->dim[1];
    *h = s->dim[2];
    *w = s->dim[3];
}

/* x and y are the forward op's input and output shapes. Strides and dilations below 1 read as 1, as the
   kernels read them, so that a bad attribute cannot send a loop out of bounds. */
static Geo geometry(const Attr *at, const Shape *x, const Shape *y)
{
    Geo g;
    int64_t yn;
    set_nchw(x, &g.n, &g.c, &g.h, &g.w);
    set_nchw(y, &yn, &g.o, &g.oh, &g.ow);
    assert(yn == g.n && "window op: batch dims of input and output differ");
    g.kh = at->window[0];
    g.kw = at->window[1];
    g.sh = at->stride[0] > 0 ? at->stride[0] : 1;
    g.sw = at->stride[1] > 0 ? at->stride[1] : 1;
    g.ph = at->pad[0];
    g.pw = at->pad[1];
    g.dh = at->dilation[0] > 0 ? at->dilation[0] : 1;
    g.dw = at->dilation[1] > 0 ? at->dilation[1] : 1;
    g.groups = at->groups > 0 ? at->groups : 1;
    return g;
}

/* ---------------------------------------------------------------- convolution
   y[n,o,oh,ow] = sum over c, kh, kw of x[n, grp(o) cg + c, oh sh - ph + kh dh, ow sw - pw + kw dw] w[o,c,kh,kw]
   with zeros outside x. The three ops are this one sum of products read three ways: the forward op adds each
   product into y, the backward ops add gy times one factor into the other factor's gradient, so they are the
   exact adjoints of the forward op by construction. */
static void conv_sum(const Geo *g, Op op, double *out, const double *a, const double *b)
{
    int64_t cg = g->c / g->groups, og = g->o / g->groups;
    assert(cg * g->groups == g->c && og * g->groups == g->o && "conv2d: channels not divisible by groups");
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
                                switch (op) {
                                case OP_CONV2D: out[yi] += a[xi] * b[wi]; break;           /* (x, w) */
                                case OP_CONV2D_BWD_INPUT: out[xi] += a[yi] * b[wi]; break; /* (gy, w) */
                                case OP_CONV2D_BWD_WEIGHT: out[wi] += a[xi] * b[yi]; break; /* (x, gy) */
                                default: LATHE_UNREACHABLE("conv_sum: not a convolution");
                                }
                            }
                        }
                }
}

/* ---------------------------------------------------------------- pooling
   A window on one axis: the input cells [lo, hi) and, for average pooling, how many cells the divisor
   counts. */
typedef struct Span {
    int64_t lo, hi, count;
} Span;

/* avg_pool2d's window i on an axis of size h, as PyTorch: the window may reach past the padded input only
   in ceil mode, and those cells are never counted; padded cells are counted when count_include_pad. */
static Span avg_span(int64_t i, int64_t h, int64_t k, int64_t s, int64_t p, bool count_include_pad)
{
    int64_t lo = i * s - p, hi = lo + k;
    if (hi > h + p)
        hi = h + p;
    int64_t padded = hi - lo;
    lo = lo < 0 ? 0 : lo;
    hi = hi > h ? h : hi;
    return (Span){lo, hi, count_include_pad ? padded : hi - lo};
}

/* adaptive pooling's window i of oh on an axis of size h: [floor(i h / oh), ceil((i + 1) h / oh)). */
static Span adaptive_span(int64_t i, int64_t h, int64_t oh)
{
    int64_t lo = i * h / oh, hi = ((i + 1) * h + oh - 1) / oh;
    return (Span){lo, hi, hi - lo};
}

/* The flat index into x of the first maximum of y[n,c,oh,ow]'s window (row-major order in the window; NaN
   counts as a maximum), or -1 when the window holds no input cell. Padding is -inf, so it never wins over a
   cell; a window of cells all -inf picks its first cell, as PyTorch. */
static int64_t max_index(const Geo *g, const double *x, int64_t n, int64_t c, int64_t oh, int64_t ow)
{
    int64_t best = -1;
    double bestv = -INFINITY;
    for (int64_t kh = 0; kh < g->kh; kh++) {
        int64_t ih = oh * g->sh - g->ph + kh * g->dh;
        if (ih < 0 || ih >= g->h)
            continue;
        for (int64_t kw = 0; kw < g->kw; kw++) {
            int64_t iw = ow * g->sw - g->pw + kw * g->dw;
            if (iw < 0 || iw >= g->w)
                continue;
            int64_t xi = ((n * g->c + c) * g->h + ih) * g->w + iw;
            double v = x[xi];
            if (best < 0 || (!isnan(bestv) && (v > bestv || isnan(v)))) {
                best = xi;
                bestv = v;
            }
        }
    }
    return best;
}

/* Max pooling forward (gy NULL: y = the maxima) or backward (gy given: each gy added into out at its
   window's first maximum). */
static void max_pool(const Geo *g, double *out, const double *x, const double *gy)
{
    assert(g->o == g->c && "max_pool2d: channels of input and output differ");
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t c = 0; c < g->c; c++)
            for (int64_t oh = 0; oh < g->oh; oh++)
                for (int64_t ow = 0; ow < g->ow; ow++) {
                    int64_t yi = ((n * g->c + c) * g->oh + oh) * g->ow + ow;
                    int64_t xi = max_index(g, x, n, c, oh, ow);
                    if (!gy)
                        out[yi] = xi < 0 ? -INFINITY : x[xi];
                    else if (xi >= 0)
                        out[xi] += gy[yi];
                }
}

/* Average pooling, plain (adaptive false) or adaptive, forward (y = window sums / divisor, from x) or
   backward (each gy / divisor added into every cell of its window). */
static void avg_pool(const Geo *g, bool adaptive, bool count_include_pad, bool backward, double *out,
                     const double *in)
{
    assert(g->o == g->c && "avg_pool2d: channels of input and output differ");
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t c = 0; c < g->c; c++)
            for (int64_t oh = 0; oh < g->oh; oh++)
                for (int64_t ow = 0; ow < g->ow; ow++) {
                    Span sh = adaptive ? adaptive_span(oh, g->h, g->oh)
                                       : avg_span(oh, g->h, g->kh, g->sh, g->ph, count_include_pad);
                    Span sw = adaptive ? adaptive_span(ow, g->w, g->ow)
                                       : avg_span(ow, g->w, g->kw, g->sw, g->pw, count_include_pad);
                    int64_t yi = ((n * g->c + c) * g->oh + oh) * g->ow + ow;
                    double div = (double)(sh.count * sw.count);
                    double sum = 0;
                    if (sh.lo >= sh.hi || sw.lo >= sw.hi) {
                        if (!backward)
                            out[yi] = 0; /* PyTorch: a window without input cells averages to 0 */
                        continue;
                    }
                    for (int64_t ih = sh.lo; ih < sh.hi; ih++)
                        for (int64_t iw = sw.lo; iw < sw.hi; iw++) {
                            int64_t xi = ((n * g->c + c) * g->h + ih) * g->w + iw;
                            if (backward)
                                out[xi] += in[yi] / div;
                            else
                                sum += in[xi];
                        }
                    if (!backward)
                        out[yi] = sum / div;
                }
}

void ir_interp_window(const Node *nd, const Shape *out_shape, double *out, const Shape *in_shape,
                      const double *const *in)
{
    const Attr *at = &nd->attr;
    int64_t numel = ir_shape_numel(out_shape, 0);
    assert(numel >= 0);
    memset(out, 0, sizeof(double) * (size_t)numel);
    Geo g;
    switch (nd->op) {
    case OP_CONV2D: /* (x, w) -> y */
    case OP_CONV2D_BWD_INPUT: /* (gy, w) -> gx */
    case OP_CONV2D_BWD_WEIGHT: { /* (x, gy) -> gw */
        const Shape *x = nd->op == OP_CONV2D_BWD_INPUT ? out_shape : &in_shape[0];
        const Shape *y = nd->op == OP_CONV2D ? out_shape : nd->op == OP_CONV2D_BWD_INPUT ? &in_shape[0] : &in_shape[1];
        const Shape *w = nd->op == OP_CONV2D_BWD_WEIGHT ? out_shape : &in_shape[1];
        g = geometry(at, x, y);
        /* the window of a convolution is its weight's [kh, kw] */
        assert(w->rank == 4 && w->dim[0] == g.o && w->dim[1] * g.groups == g.c);
        g.kh = w->dim[2];
        g.kw = w->dim[3];
        conv_sum(&g, nd->op, out, in[0], in[1]);
        return;
    }
    case OP_MAX_POOL2D:
        g = geometry(at, &in_shape[0], out_shape);
        max_pool(&g, out, in[0], NULL);
        return;
    case OP_MAX_POOL2D_BWD: /* (x, gy) -> gx */
        g = geometry(at, &in_shape[0], &in_shape[1]);
        max_pool(&g, out, in[0], in[1]);
        return;
    case OP_AVG_POOL2D:
        g = geometry(at, &in_shape[0], out_shape);
        avg_pool(&g, false, at->count_include_pad, false, out, in[0]);
        return;
    case OP_AVG_POOL2D_BWD: /* gy -> gx */
        g = geometry(at, out_shape, &in_shape[0]);
        avg_pool(&g, false, at->count_include_pad, true, out, in[0]);
        return;
    case OP_ADAPTIVE_AVG_POOL2D:
        g = geometry(at, &in_shape[0], out_shape);
        avg_pool(&g, true, false, false, out, in[0]);
        return;
    case OP_ADAPTIVE_AVG_POOL2D_BWD:
        g = geometry(at, out_shape, &in_shape[0]);
        avg_pool(&g, true, false, true, out, in[0]);
        return;
    default: LATHE_UNREACHABLE("ir_interp_window: not a window op");
    }
}
