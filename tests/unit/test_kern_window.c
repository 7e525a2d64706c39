/* test_kern_window.c: the convolution and pooling kernels of runtime/kern_window.c (f32 and f64) against the
   reference interpreter's ir_interp_window on random inputs of many geometries; the reference itself on
   values worked out by hand from PyTorch's rules; the backward ops as exact adjoints (<conv(x), gy> ==
   <x, conv_bwd_input(gy)>) and, for max pooling, against finite differences; every kernel split into 2, 3
   and 7 ranges on the pool (and the convolutions' _range entry points called by hand) against one whole
   call, bit for bit; and kernels fed descriptors that disagree with themselves, which must write zeros and
   stay inside their buffers. */
#include "support.h"

#include <math.h>
#include <string.h>

#include "../../ir/interp_window.h"
#include "../../runtime/lathe_kern.h"

/* ---------------------------------------------------------------- running one op */

/* The tensors of one window op call: out = op(in[0], in[1]), concrete shapes. */
typedef struct Call {
    Op op;
    Attr attr;
    int nin;
    Shape out, in[2];
} Call;

static bool is_weight(Op op, int which) /* which: -1 the output, else an input */
{
    return (op == OP_CONV2D && which == 1) || (op == OP_CONV2D_BWD_INPUT && which == 1) ||
           (op == OP_CONV2D_BWD_WEIGHT && which == -1);
}

static int64_t numel(const Shape *s)
{
    return ir_shape_numel(s, 0);
}

/* The descriptor that the code generator would build: dim 0 of every tensor but a weight is N (-1). */
static void make_desc(const Call *c, int64_t *desc)
{
    memset(desc, 0, sizeof(int64_t) * 64);
    desc[0] = c->nin;
    desc[1] = c->out.rank;
    for (int i = 0; i < c->out.rank; i++)
        LATHE_KD_OUT_DIMS(desc)[i] = i == 0 && !is_weight(c->op, -1) ? -1 : c->out.dim[i];
    for (int k = 0; k < c->nin; k++) {
        desc[10 + 9 * k] = c->in[k].rank;
        for (int i = 0; i < c->in[k].rank; i++)
            LATHE_KD_IN_DIMS(desc, k)[i] = i == 0 && !is_weight(c->op, k) ? -1 : c->in[k].dim[i];
    }
    int64_t *a = LATHE_KD_ATTRS(desc);
    const Attr *at = &c->attr;
    a[LATHE_KA_WINDOW_H] = at->window[0];
    a[LATHE_KA_WINDOW_W] = at->window[1];
    a[LATHE_KA_STRIDE_H] = at->stride[0];
    a[LATHE_KA_STRIDE_W] = at->stride[1];
    a[LATHE_KA_PAD_H] = at->pad[0];
    a[LATHE_KA_PAD_W] = at->pad[1];
    a[LATHE_KA_DILATION_H] = at->dilation[0];
    a[LATHE_KA_DILATION_W] = at->dilation[1];
    a[LATHE_KA_GROUPS] = at->groups;
    a[LATHE_KA_CEIL_MODE] = at->ceil_mode;
    a[LATHE_KA_COUNT_INCLUDE_PAD] = at->count_include_pad;
}

/* The batch size: dim 0 of the first tensor that is not a weight. */
static int64_t batch_of(const Call *c)
{
    return is_weight(c->op, -1) ? c->in[0].dim[0] : c->out.dim[0];
}

static double *ref_run(const Call *c, double *const *in)
{
    Node nd;
    memset(&nd, 0, sizeof nd);
    nd.op = c->op;
    nd.ninputs = c->nin;
    nd.attr = c->attr;
    double *out = arena_alloc(ts.a, sizeof(double) * (size_t)(numel(&c->out) + 1));
    ir_interp_window(&nd, &c->out, out, c->in, (const double *const *)in);
    return out;
}

static LatheKernFn kernel(Op op, const char *dtype)
{
    char name[96];
    snprintf(name, sizeof name, "lathe_k_%s_%s", ir_op_name(op), dtype);
    for (const LatheKernSymbol *s = lathe_kern_symbols; s->name; s++)
        if (strcmp(s->name, name) == 0)
            return s->fn;
    fail_msg("no kernel %s in lathe_kern_symbols", name);
    return NULL;
}

static LatheKernRangeFn range_kernel(Op op, const char *dtype)
{
    char name[96];
    snprintf(name, sizeof name, "lathe_k_%s_%s_range", ir_op_name(op), dtype);
    for (const LatheKernRangeSymbol *s = lathe_kern_range_symbols; s->name; s++)
        if (strcmp(s->name, name) == 0)
            return s->fn;
    fail_msg("no kernel %s in lathe_kern_range_symbols", name);
    return NULL;
}

/* How kern_run calls a kernel: whole, or through its _range entry point over cuts[0..ncuts) (the ranges
   [0, cuts[0]), [cuts[0], cuts[1]), ... [cuts[ncuts-1], count), in reverse order so that no range can lean on
   one computed before it). */
static const int64_t *run_cuts;
static int run_ncuts = -1; /* -1: the whole-op kernel */

/* Runs the f64 kernel (f32 false) or the f32 kernel on in, returning the output as doubles. The output
   buffer starts as NaNs, so that an element the kernel forgets to write shows. */
static double *kern_run(const Call *c, double *const *in, bool f32)
{
    int64_t desc[64];
    make_desc(c, desc);
    size_t el = f32 ? sizeof(float) : sizeof(double);
    const void *bufs[2] = {NULL, NULL};
    for (int k = 0; k < c->nin; k++) {
        int64_t m = numel(&c->in[k]);
        void *b = arena_alloc(ts.a, el * (size_t)(m + 1));
        for (int64_t i = 0; i < m; i++)
            if (f32)
                ((float *)b)[i] = (float)in[k][i];
            else
                ((double *)b)[i] = in[k][i];
        bufs[k] = b;
    }
    int64_t m = numel(&c->out);
    void *out = arena_alloc(ts.a, el * (size_t)(m + 1));
    memset(out, 0xff, el * (size_t)m);
    if (run_ncuts < 0) {
        kernel(c->op, f32 ? "f32" : "f64")(out, bufs, batch_of(c), desc);
    } else {
        LatheKernRangeFn fn = range_kernel(c->op, f32 ? "f32" : "f64");
        int64_t count = c->out.dim[0];
        for (int i = run_ncuts; i >= 0; i--)
            fn(out, bufs, batch_of(c), desc, i == 0 ? 0 : run_cuts[i - 1], i == run_ncuts ? count : run_cuts[i]);
    }
    double *r = arena_alloc(ts.a, sizeof(double) * (size_t)(m + 1));
    for (int64_t i = 0; i < m; i++)
        r[i] = f32 ? ((float *)out)[i] : ((double *)out)[i];
    return r;
}

static void expect_close(const char *what, const double *got, const double *want, int64_t m, double tol)
{
    for (int64_t i = 0; i < m; i++) {
        bool same_inf = isinf(want[i]) && got[i] == want[i];
        if (!same_inf && !(fabs(got[i] - want[i]) <= tol * (1 + fabs(want[i]))))
            fail_msg("%s: element %lld is %.17g, want %.17g", what, (long long)i, got[i], want[i]);
    }
}

static void expect_near(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("%.17g is not within %g of %.17g", got, tol, want);
}

/* Both kernels of c against the reference: f64 on in itself, f32 on in rounded to float. */
static void check_kernels(const Call *c, double *const *in)
{
    char what[64];
    int64_t m = numel(&c->out);
    snprintf(what, sizeof what, "%s_f64", ir_op_name(c->op));
    expect_close(what, kern_run(c, in, false), ref_run(c, in), m, 1e-12);

    double *rounded[2] = {NULL, NULL};
    for (int k = 0; k < c->nin; k++) {
        int64_t mk = numel(&c->in[k]);
        rounded[k] = arena_alloc(ts.a, sizeof(double) * (size_t)(mk + 1));
        for (int64_t i = 0; i < mk; i++)
            rounded[k][i] = (float)in[k][i];
    }
    snprintf(what, sizeof what, "%s_f32", ir_op_name(c->op));
    expect_close(what, kern_run(c, rounded, true), ref_run(c, rounded), m, 2e-5);
}

static double *random_values(const Shape *s, uint64_t *rng)
{
    int64_t m = numel(s);
    double *v = arena_alloc(ts.a, sizeof(double) * (size_t)(m + 1));
    for (int64_t i = 0; i < m; i++)
        v[i] = 2 * ts_rand_uniform(rng) - 1;
    return v;
}

static double dot(const double *a, const double *b, int64_t m)
{
    double s = 0;
    for (int64_t i = 0; i < m; i++)
        s += a[i] * b[i];
    return s;
}

static Shape nchw(int64_t n, int64_t c, int64_t h, int64_t w)
{
    return ts_shape(4, n, c, h, w);
}

/* PyTorch's output size of a window on one axis. */
static int64_t out_size(int64_t h, int k, int s, int p, int d, bool ceil_mode)
{
    int64_t span = h + 2 * p - d * (k - 1) - 1;
    int64_t o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= h + p)
        o--;
    return o;
}

/* ---------------------------------------------------------------- convolution */

typedef struct ConvCfg {
    int64_t n, c, h, w, o;
    int kh, kw, sh, sw, ph, pw, dh, dw, groups;
} ConvCfg;

/* The three convolution kernels against the reference, then the adjoint identities
   <conv(x, w), gy> == <x, conv_bwd_input(gy, w)> == <w, conv_bwd_weight(x, gy)> through the reference and
   through the f64 kernels. */
static void check_conv(ConvCfg f, uint64_t seed)
{
    uint64_t rng = seed;
    Attr at;
    memset(&at, 0, sizeof at);
    at.stride[0] = f.sh, at.stride[1] = f.sw, at.pad[0] = f.ph, at.pad[1] = f.pw;
    at.dilation[0] = f.dh, at.dilation[1] = f.dw, at.groups = f.groups;
    Shape xs = nchw(f.n, f.c, f.h, f.w), ws = nchw(f.o, f.c / f.groups, f.kh, f.kw);
    Shape ys = nchw(f.n, f.o, out_size(f.h, f.kh, f.sh, f.ph, f.dh, false),
                    out_size(f.w, f.kw, f.sw, f.pw, f.dw, false));
    double *x = random_values(&xs, &rng), *w = random_values(&ws, &rng), *gy = random_values(&ys, &rng);

    Call fwd = {OP_CONV2D, at, 2, ys, {xs, ws}};
    Call bin = {OP_CONV2D_BWD_INPUT, at, 2, xs, {ys, ws}};
    Call bw = {OP_CONV2D_BWD_WEIGHT, at, 2, ws, {xs, ys}};
    check_kernels(&fwd, (double *[]){x, w});
    check_kernels(&bin, (double *[]){gy, w});
    check_kernels(&bw, (double *[]){x, gy});

    for (int kern = 0; kern < 2; kern++) {
        double *y = kern ? kern_run(&fwd, (double *[]){x, w}, false) : ref_run(&fwd, (double *[]){x, w});
        double *gx = kern ? kern_run(&bin, (double *[]){gy, w}, false) : ref_run(&bin, (double *[]){gy, w});
        double *gw = kern ? kern_run(&bw, (double *[]){x, gy}, false) : ref_run(&bw, (double *[]){x, gy});
        double lhs = dot(y, gy, numel(&ys));
        assert_true(fabs(lhs) > 1e-6);
        expect_near(dot(x, gx, numel(&xs)), lhs, 1e-9 * (1 + fabs(lhs)));
        expect_near(dot(w, gw, numel(&ws)), lhs, 1e-9 * (1 + fabs(lhs)));
    }
}

static void test_conv2d_kernels_3x3_pad1_batch3(void **state)
{
    check_conv((ConvCfg){3, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 1);
}

static void test_conv2d_kernels_stride2_odd_sizes(void **state)
{
    check_conv((ConvCfg){2, 3, 9, 7, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1}, 2);
    check_conv((ConvCfg){1, 2, 8, 8, 3, 3, 3, 2, 2, 0, 0, 1, 1, 1}, 3); /* the last row and column unread */
}

static void test_conv2d_kernels_dilation2(void **state)
{
    check_conv((ConvCfg){2, 2, 9, 8, 3, 3, 3, 1, 1, 2, 1, 2, 2, 1}, 4);
}

static void test_conv2d_kernels_groups2(void **state)
{
    check_conv((ConvCfg){3, 4, 6, 5, 6, 3, 3, 1, 2, 1, 1, 1, 1, 2}, 5);
}

static void test_conv2d_kernels_depthwise(void **state)
{
    check_conv((ConvCfg){2, 4, 7, 7, 4, 3, 3, 2, 2, 1, 1, 1, 1, 4}, 6);
    check_conv((ConvCfg){1, 3, 5, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 3}, 7); /* channel multiplier 2 */
}

static void test_conv2d_kernels_pointwise(void **state)
{
    check_conv((ConvCfg){3, 5, 4, 6, 7, 1, 1, 1, 1, 0, 0, 1, 1, 1}, 8);
    check_conv((ConvCfg){2, 4, 3, 5, 6, 1, 1, 1, 1, 0, 0, 1, 1, 2}, 9);
}

static void test_conv2d_kernels_rectangular_window_uneven_pad(void **state)
{
    check_conv((ConvCfg){1, 2, 6, 9, 3, 2, 5, 2, 1, 0, 2, 1, 2, 1}, 10);
    check_conv((ConvCfg){2, 1, 5, 5, 2, 5, 5, 3, 3, 2, 2, 1, 1, 1}, 11); /* a window larger than stride */
    check_conv((ConvCfg){2, 2, 4, 3, 3, 3, 3, 2, 3, 4, 3, 1, 2, 1}, 12); /* rows that read only padding */
}

/* Larger GEMMs: 72 products per output over planes of 576 and 400 positions, several samples; gw in blocks
   of rows (kern_window.c's kw_block: 24 rows make blocks of 16 and 8), chunks of samples (4 + 2, 6 + 1),
   and 2 groups. */
static void test_conv2d_kernels_many_samples_and_blocks(void **state)
{
    check_conv((ConvCfg){6, 8, 24, 24, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 13);
    check_conv((ConvCfg){7, 16, 20, 20, 8, 3, 3, 1, 1, 1, 1, 1, 1, 2}, 14);
}

/* One input channel a group, 3x3, stride 1, rows of 16 cells or more: the forward runs kern_window.c's direct
   loops (pairs of channels and an odd one left, rows of 17 and of 32, dilation, depthwise); with narrower
   rows or other windows, one channel goes through im2col. */
static void test_conv2d_kernels_direct_one_channel(void **state)
{
    check_conv((ConvCfg){2, 1, 5, 17, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 14);
    check_conv((ConvCfg){1, 2, 4, 32, 4, 3, 3, 1, 1, 0, 1, 1, 1, 2}, 24);
    check_conv((ConvCfg){1, 1, 6, 20, 5, 3, 3, 1, 1, 2, 2, 2, 2, 1}, 25);
    check_conv((ConvCfg){1, 4, 5, 18, 8, 3, 3, 1, 1, 1, 1, 1, 1, 4}, 26);
    check_conv((ConvCfg){3, 1, 9, 11, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 15);
    check_conv((ConvCfg){2, 1, 12, 10, 6, 5, 5, 1, 1, 2, 2, 1, 1, 1}, 16);
    check_conv((ConvCfg){2, 1, 8, 9, 3, 4, 2, 1, 1, 0, 1, 1, 1, 1}, 17);
    check_conv((ConvCfg){2, 2, 9, 9, 4, 2, 4, 1, 1, 1, 0, 2, 2, 2}, 18);
    check_conv((ConvCfg){2, 4, 7, 6, 8, 3, 3, 1, 1, 1, 1, 2, 1, 4}, 19);
}

/* 1 2 3 / 4 5 6 / 7 8 9 convolved with a 2x2 of ones: the sums of the four 2x2 squares. */
static void test_conv2d_reference_by_hand(void **state)
{
    Attr at;
    memset(&at, 0, sizeof at);
    at.stride[0] = at.stride[1] = at.dilation[0] = at.dilation[1] = at.groups = 1;
    Call c = {OP_CONV2D, at, 2, nchw(1, 1, 2, 2), {nchw(1, 1, 3, 3), nchw(1, 1, 2, 2)}};
    double x[] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[] = {1, 1, 1, 1};
    expect_close("conv2d", ref_run(&c, (double *[]){x, w}), (double[]){12, 16, 24, 28}, 4, 0);
}

/* ---------------------------------------------------------------- pooling */

typedef struct PoolCfg {
    int64_t n, c, h, w;
    int kh, kw, sh, sw, ph, pw, dh, dw;
    bool ceil_mode, count_include_pad;
} PoolCfg;

static Attr pool_attr(PoolCfg f)
{
    Attr at;
    memset(&at, 0, sizeof at);
    at.window[0] = f.kh, at.window[1] = f.kw, at.stride[0] = f.sh, at.stride[1] = f.sw;
    at.pad[0] = f.ph, at.pad[1] = f.pw, at.dilation[0] = f.dh, at.dilation[1] = f.dw;
    at.ceil_mode = f.ceil_mode, at.count_include_pad = f.count_include_pad;
    return at;
}

/* max_pool2d and its backward against the reference, and the reference's backward against central
   differences of <max_pool2d(x), gy> (distinct random values: no step moves a maximum). */
static void check_max_pool(PoolCfg f, uint64_t seed)
{
    uint64_t rng = seed;
    Attr at = pool_attr(f);
    Shape xs = nchw(f.n, f.c, f.h, f.w);
    Shape ys = nchw(f.n, f.c, out_size(f.h, f.kh, f.sh, f.ph, f.dh, f.ceil_mode),
                    out_size(f.w, f.kw, f.sw, f.pw, f.dw, f.ceil_mode));
    double *x = random_values(&xs, &rng), *gy = random_values(&ys, &rng);
    Call fwd = {OP_MAX_POOL2D, at, 1, ys, {xs}};
    Call bwd = {OP_MAX_POOL2D_BWD, at, 2, xs, {xs, ys}};
    check_kernels(&fwd, (double *[]){x});
    check_kernels(&bwd, (double *[]){x, gy});

    /* after a ReLU about half the cells are 0: ties, which must go to the first maximum */
    double *relu = arena_alloc(ts.a, sizeof(double) * (size_t)numel(&xs));
    for (int64_t i = 0; i < numel(&xs); i++)
        relu[i] = x[i] > 0 ? x[i] : 0;
    check_kernels(&bwd, (double *[]){relu, gy});

    double *gx = ref_run(&bwd, (double *[]){x, gy}), eps = 1e-7;
    for (int64_t i = 0; i < numel(&xs); i++) {
        double keep = x[i];
        x[i] = keep + eps;
        double up = dot(ref_run(&fwd, (double *[]){x}), gy, numel(&ys));
        x[i] = keep - eps;
        double down = dot(ref_run(&fwd, (double *[]){x}), gy, numel(&ys));
        x[i] = keep;
        expect_near((up - down) / (2 * eps), gx[i], 1e-6);
    }
}

/* avg_pool2d (or adaptive_avg_pool2d when adaptive, to [oh, ow]) and its backward against the reference,
   and the backward as the forward's adjoint, through the reference and the f64 kernels. */
static void check_avg_pool(PoolCfg f, bool adaptive, int64_t oh, int64_t ow, uint64_t seed)
{
    uint64_t rng = seed;
    Attr at = pool_attr(f);
    Shape xs = nchw(f.n, f.c, f.h, f.w);
    Shape ys = adaptive ? nchw(f.n, f.c, oh, ow)
                        : nchw(f.n, f.c, out_size(f.h, f.kh, f.sh, f.ph, 1, f.ceil_mode),
                               out_size(f.w, f.kw, f.sw, f.pw, 1, f.ceil_mode));
    double *x = random_values(&xs, &rng), *gy = random_values(&ys, &rng);
    Call fwd = {adaptive ? OP_ADAPTIVE_AVG_POOL2D : OP_AVG_POOL2D, at, 1, ys, {xs}};
    Call bwd = {adaptive ? OP_ADAPTIVE_AVG_POOL2D_BWD : OP_AVG_POOL2D_BWD, at, 1, xs, {ys}};
    check_kernels(&fwd, (double *[]){x});
    check_kernels(&bwd, (double *[]){gy});
    for (int kern = 0; kern < 2; kern++) {
        double *y = kern ? kern_run(&fwd, (double *[]){x}, false) : ref_run(&fwd, (double *[]){x});
        double *gx = kern ? kern_run(&bwd, (double *[]){gy}, false) : ref_run(&bwd, (double *[]){gy});
        double lhs = dot(y, gy, numel(&ys));
        assert_true(fabs(lhs) > 1e-6);
        expect_near(dot(x, gx, numel(&xs)), lhs, 1e-12 * (1 + fabs(lhs)));
    }
}

static void test_max_pool2d_kernels_2x2_stride2(void **state)
{
    check_max_pool((PoolCfg){3, 2, 8, 6, 2, 2, 2, 2, 0, 0, 1, 1, false, false}, 20);
    check_max_pool((PoolCfg){1, 3, 7, 7, 2, 2, 2, 2, 0, 0, 1, 1, false, false}, 21); /* odd: a row unread */
}

static void test_max_pool2d_kernels_pad_ceil_mode(void **state)
{
    check_max_pool((PoolCfg){2, 2, 7, 8, 3, 3, 2, 2, 1, 1, 1, 1, false, false}, 22);
    check_max_pool((PoolCfg){2, 2, 7, 8, 3, 3, 2, 2, 1, 1, 1, 1, true, false}, 23);
    check_max_pool((PoolCfg){1, 2, 6, 5, 2, 3, 3, 2, 0, 1, 1, 1, true, false}, 24);
}

static void test_max_pool2d_kernels_dilation2(void **state)
{
    check_max_pool((PoolCfg){2, 2, 9, 8, 3, 2, 1, 2, 1, 0, 2, 2, false, false}, 25);
    check_max_pool((PoolCfg){1, 1, 9, 9, 3, 3, 2, 2, 1, 1, 2, 2, true, false}, 26);
}

static void test_avg_pool2d_kernels_pad_ceil_count_include_pad(void **state)
{
    uint64_t seed = 30;
    for (int ceil_mode = 0; ceil_mode < 2; ceil_mode++)
        for (int include = 0; include < 2; include++) {
            check_avg_pool((PoolCfg){2, 2, 7, 8, 3, 3, 2, 2, 1, 1, 1, 1, ceil_mode, include}, false, 0, 0, seed++);
            check_avg_pool((PoolCfg){1, 3, 6, 5, 2, 3, 2, 2, 1, 1, 1, 1, ceil_mode, include}, false, 0, 0, seed++);
        }
    check_avg_pool((PoolCfg){3, 2, 8, 8, 2, 2, 2, 2, 0, 0, 1, 1, false, true}, false, 0, 0, seed++);
}

static void test_adaptive_avg_pool2d_kernels_uneven_windows(void **state)
{
    PoolCfg f = {3, 2, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0, false, false};
    check_avg_pool(f, true, 3, 3, 40); /* 7 -> 3: overlapping windows */
    f.n = 1, f.h = 5, f.w = 9;
    check_avg_pool(f, true, 3, 2, 41);
    check_avg_pool(f, true, 8, 4, 42); /* more outputs than inputs on one axis */
    check_avg_pool(f, true, 1, 1, 43); /* global average */
}

/* [1 2 3 4 5 6] with window 3, stride 2, pad 1, ceil mode: 4 windows, the last one reaching past the
   padded input; PyTorch counts padding (count_include_pad) but never the cells past it. */
static void test_avg_pool2d_reference_divisor_in_ceil_mode(void **state)
{
    double x[] = {1, 2, 3, 4, 5, 6};
    PoolCfg f = {1, 1, 1, 6, 1, 3, 1, 2, 0, 1, 1, 1, true, true};
    Call c = {OP_AVG_POOL2D, pool_attr(f), 1, nchw(1, 1, 1, 4), {nchw(1, 1, 1, 6)}};
    assert_int_equal(out_size(6, 3, 2, 1, 1, true), 4);
    expect_close("count_include_pad", ref_run(&c, (double *[]){x}), (double[]){1, 3, 5, 3}, 4, 1e-15);
    c.attr.count_include_pad = false;
    expect_close("exclude pad", ref_run(&c, (double *[]){x}), (double[]){1.5, 3, 5, 6}, 4, 1e-15);
}

/* [1 2 3 4 5] with window 2, stride 2, ceil mode: the last window holds 5 alone. */
static void test_max_pool2d_reference_ceil_mode_last_window(void **state)
{
    double x[] = {1, 2, 3, 4, 5};
    PoolCfg f = {1, 1, 1, 5, 1, 2, 1, 2, 0, 0, 1, 1, true, false};
    Call c = {OP_MAX_POOL2D, pool_attr(f), 1, nchw(1, 1, 1, 3), {nchw(1, 1, 1, 5)}};
    expect_close("max_pool2d", ref_run(&c, (double *[]){x}), (double[]){2, 4, 5}, 3, 0);
}

/* 7 -> 3: windows [0, 3), [2, 5), [4, 7). */
static void test_adaptive_avg_pool2d_reference_windows(void **state)
{
    double x[] = {1, 2, 3, 4, 5, 6, 7};
    Attr at;
    memset(&at, 0, sizeof at);
    Call c = {OP_ADAPTIVE_AVG_POOL2D, at, 1, nchw(1, 1, 1, 3), {nchw(1, 1, 1, 7)}};
    expect_close("adaptive", ref_run(&c, (double *[]){x}), (double[]){2, 4, 6}, 3, 1e-15);
}

/* One 2x2 window: a tie goes to the first maximum in row-major order; a NaN is the maximum (the first NaN
   when several). The reference and both kernels agree. */
static void test_max_pool2d_bwd_routes_to_first_max(void **state)
{
    PoolCfg f = {1, 1, 2, 2, 2, 2, 2, 2, 0, 0, 1, 1, false, false};
    Call fwd = {OP_MAX_POOL2D, pool_attr(f), 1, nchw(1, 1, 1, 1), {nchw(1, 1, 2, 2)}};
    Call bwd = {OP_MAX_POOL2D_BWD, pool_attr(f), 2, nchw(1, 1, 2, 2), {nchw(1, 1, 2, 2), nchw(1, 1, 1, 1)}};
    double gy[] = {1};
    double tie[] = {0, 3, 1, 3}, nan2[] = {5, NAN, 9, NAN};
    for (int k = 0; k < 3; k++) {
        double *g = k == 0 ? ref_run(&bwd, (double *[]){tie, gy}) : kern_run(&bwd, (double *[]){tie, gy}, k == 2);
        expect_close("tie", g, (double[]){0, 1, 0, 0}, 4, 0);
        g = k == 0 ? ref_run(&bwd, (double *[]){nan2, gy}) : kern_run(&bwd, (double *[]){nan2, gy}, k == 2);
        expect_close("nan", g, (double[]){0, 1, 0, 0}, 4, 0);
        double *y = k == 0 ? ref_run(&fwd, (double *[]){nan2}) : kern_run(&fwd, (double *[]){nan2}, k == 2);
        assert_true(isnan(y[0]));
    }
}

/* 2x2 windows away from the plane's origin with a tie, all -inf, and NaNs, on a plane of odd width (its last
   column in no window): each gy goes to its window's first maximum (the first NaN), the rest of gx is 0; the
   forward gives the maxima and NaN. */
static void test_max_pool2d_2x2_first_max_nan_odd_width(void **state)
{
    PoolCfg f = {1, 1, 4, 5, 2, 2, 2, 2, 0, 0, 1, 1, false, false};
    double x[] = {1, 2, 7, 7, 9, 0, 3, 7, 1, 9, -INFINITY, -INFINITY, 4, NAN, 9, -INFINITY, -INFINITY, NAN, 5, 9};
    double gy[] = {1, 2, 3, 4};
    double want[] = {0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 4, 0, 0, 0, 0, 0, 0};
    Call fwd = {OP_MAX_POOL2D, pool_attr(f), 1, nchw(1, 1, 2, 2), {nchw(1, 1, 4, 5)}};
    Call bwd = {OP_MAX_POOL2D_BWD, pool_attr(f), 2, nchw(1, 1, 4, 5), {nchw(1, 1, 4, 5), nchw(1, 1, 2, 2)}};
    expect_close("reference", ref_run(&bwd, (double *[]){x, gy}), want, 20, 0);
    for (int f32 = 0; f32 < 2; f32++) {
        expect_close("kernel", kern_run(&bwd, (double *[]){x, gy}, f32), want, 20, 0);
        double *y = kern_run(&fwd, (double *[]){x}, f32);
        assert_true(y[0] == 3 && y[1] == 7 && y[2] == -INFINITY && isnan(y[3]));
    }
}

/* ---------------------------------------------------------------- splits

   Any split of a kernel's range gives the same bits as one call: kern_window.c chooses every GEMM's shape
   and every sum's order from the op's shape alone. */

static void expect_same_bits(const char *what, const double *got, const double *want, int64_t m)
{
    for (int64_t i = 0; i < m; i++)
        if (memcmp(&got[i], &want[i], sizeof(double)) != 0)
            fail_msg("%s: element %lld is %.17g, want %.17g bit for bit", what, (long long)i, got[i], want[i]);
}

/* c's kernels, f32 and f64, split into 2, 3 and 7 ranges by the pool and, for the convolutions, through
   their _range entry points over the ranges [0, 1), [1, count/2), [count/2, count) and the empty
   [count, count), against one whole call. */
static void check_splits(const Call *c, double *const *in)
{
    int64_t m = numel(&c->out), count = c->out.dim[0];
    bool conv = c->op == OP_CONV2D || c->op == OP_CONV2D_BWD_INPUT || c->op == OP_CONV2D_BWD_WEIGHT;
    char what[96];
    assert_true(count >= 2);
    for (int f32 = 0; f32 < 2; f32++) {
        double *whole = kern_run(c, in, f32);
        int parts[] = {2, 3, 7};
        for (int i = 0; i < 3; i++) {
            lathe_pool_test_split(parts[i]);
            double *split = kern_run(c, in, f32);
            lathe_pool_test_split(0);
            snprintf(what, sizeof what, "%s_%s in %d parts", ir_op_name(c->op), f32 ? "f32" : "f64", parts[i]);
            expect_same_bits(what, split, whole, m);
        }
        if (!conv)
            continue;
        int64_t cuts[] = {1, count / 2, count};
        run_cuts = cuts;
        run_ncuts = 3;
        double *ranges = kern_run(c, in, f32);
        run_ncuts = -1;
        snprintf(what, sizeof what, "%s_%s_range by hand", ir_op_name(c->op), f32 ? "f32" : "f64");
        expect_same_bits(what, ranges, whole, m);
    }
}

/* The three convolutions of cfg split, on random values. */
static void check_conv_splits(ConvCfg f, uint64_t seed)
{
    uint64_t rng = seed;
    Attr at;
    memset(&at, 0, sizeof at);
    at.stride[0] = f.sh, at.stride[1] = f.sw, at.pad[0] = f.ph, at.pad[1] = f.pw;
    at.dilation[0] = f.dh, at.dilation[1] = f.dw, at.groups = f.groups;
    Shape xs = nchw(f.n, f.c, f.h, f.w), ws = nchw(f.o, f.c / f.groups, f.kh, f.kw);
    Shape ys = nchw(f.n, f.o, out_size(f.h, f.kh, f.sh, f.ph, f.dh, false),
                    out_size(f.w, f.kw, f.sw, f.pw, f.dw, false));
    double *x = random_values(&xs, &rng), *w = random_values(&ws, &rng), *gy = random_values(&ys, &rng);
    check_splits(&(Call){OP_CONV2D, at, 2, ys, {xs, ws}}, (double *[]){x, w});
    check_splits(&(Call){OP_CONV2D_BWD_INPUT, at, 2, xs, {ys, ws}}, (double *[]){gy, w});
    check_splits(&(Call){OP_CONV2D_BWD_WEIGHT, at, 2, ws, {xs, ys}}, (double *[]){x, gy});
}

static void test_conv2d_kernels_split_bit_identical(void **state)
{
    check_conv_splits((ConvCfg){7, 3, 6, 6, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 70); /* gw blocks 24, 16 */
    check_conv_splits((ConvCfg){5, 2, 24, 24, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 76); /* chunks of 4 + 1 samples */
    check_conv_splits((ConvCfg){5, 4, 6, 5, 40, 3, 3, 2, 1, 1, 1, 1, 1, 2}, 71); /* per group 8, 8, 4 */
    check_conv_splits((ConvCfg){9, 1, 10, 10, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 72); /* direct forward */
    check_conv_splits((ConvCfg){5, 1, 4, 18, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 75);
    check_conv_splits((ConvCfg){4, 1, 12, 12, 6, 5, 5, 1, 1, 2, 2, 1, 1, 1}, 73);
    check_conv_splits((ConvCfg){3, 4, 7, 7, 8, 3, 3, 1, 1, 2, 2, 2, 2, 4}, 74); /* depthwise, dilated */
}

/* The same on a pool of 2 threads (each with its own scratch), ranges run at once. */
static void test_conv2d_kernels_two_threads_bit_identical(void **state)
{
    lathe_pool_init(2);
    check_conv_splits((ConvCfg){6, 3, 12, 12, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 77);
    check_conv_splits((ConvCfg){6, 1, 8, 20, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 78);
    lathe_pool_init(1);
}

static void test_pool_kernels_split_bit_identical(void **state)
{
    PoolCfg cfgs[] = {
        {3, 3, 8, 10, 2, 2, 2, 2, 0, 0, 1, 1, false, false}, /* 2x2: 5 windows a row, one past 4 */
        {2, 4, 7, 6, 3, 3, 2, 2, 1, 1, 1, 1, false, false},  /* 3x3 stride 2 pad 1 */
        {3, 3, 9, 8, 3, 2, 1, 2, 1, 0, 2, 2, true, true},    /* general, dilated */
    };
    uint64_t rng = 80;
    for (size_t k = 0; k < sizeof cfgs / sizeof cfgs[0]; k++) {
        PoolCfg f = cfgs[k];
        Attr at = pool_attr(f);
        Shape xs = nchw(f.n, f.c, f.h, f.w);
        Shape ys = nchw(f.n, f.c, out_size(f.h, f.kh, f.sh, f.ph, f.dh, f.ceil_mode),
                        out_size(f.w, f.kw, f.sw, f.pw, f.dw, f.ceil_mode));
        double *x = random_values(&xs, &rng), *gy = random_values(&ys, &rng);
        check_splits(&(Call){OP_MAX_POOL2D, at, 1, ys, {xs}}, (double *[]){x});
        check_splits(&(Call){OP_MAX_POOL2D_BWD, at, 2, xs, {xs, ys}}, (double *[]){x, gy});
        if (f.dh == 1) {
            check_splits(&(Call){OP_AVG_POOL2D, at, 1, ys, {xs}}, (double *[]){x});
            check_splits(&(Call){OP_AVG_POOL2D_BWD, at, 1, xs, {ys}}, (double *[]){gy});
        }
        Shape as = nchw(f.n, f.c, 3, 2);
        double *ga = random_values(&as, &rng);
        check_splits(&(Call){OP_ADAPTIVE_AVG_POOL2D, at, 1, as, {xs}}, (double *[]){x});
        check_splits(&(Call){OP_ADAPTIVE_AVG_POOL2D_BWD, at, 1, xs, {as}}, (double *[]){ga});
    }
}

/* 2x2 max pooling on rows of 1 to 9 windows (below 4, a multiple of 4, and past one: the vectorized rows
   and the windows they run again), after a ReLU (ties) and with a NaN, forward and backward against the
   reference. */
static void test_max_pool2d_2x2_every_row_length(void **state)
{
    uint64_t rng = 90;
    for (int64_t w = 2; w <= 19; w++) {
        PoolCfg f = {2, 2, 4, w, 2, 2, 2, 2, 0, 0, 1, 1, false, false};
        Attr at = pool_attr(f);
        Shape xs = nchw(f.n, f.c, f.h, f.w), ys = nchw(f.n, f.c, 2, w / 2);
        double *x = random_values(&xs, &rng), *gy = random_values(&ys, &rng);
        for (int64_t i = 0; i < numel(&xs); i++)
            x[i] = x[i] > 0 ? (float)x[i] : 0; /* float values: the f32 kernels see the same maxima */
        x[numel(&xs) - 1 - w] = NAN; /* in the last plane's second-to-last window row */
        Call fwd = {OP_MAX_POOL2D, at, 1, ys, {xs}};
        Call bwd = {OP_MAX_POOL2D_BWD, at, 2, xs, {xs, ys}};
        for (int f32 = 0; f32 < 2; f32++) {
            double *y = kern_run(&fwd, (double *[]){x}, f32), *want = ref_run(&fwd, (double *[]){x});
            for (int64_t i = 0; i < numel(&ys); i++)
                if (!(isnan(want[i]) ? isnan(y[i]) : y[i] == (f32 ? (double)(float)want[i] : want[i])))
                    fail_msg("w %lld: y[%lld] is %g, want %g", (long long)w, (long long)i, y[i], want[i]);
            double *gx = kern_run(&bwd, (double *[]){x, gy}, f32), *gwant = ref_run(&bwd, (double *[]){x, gy});
            for (int64_t i = 0; i < numel(&xs); i++)
                if (gx[i] != (f32 ? (double)(float)gwant[i] : gwant[i]))
                    fail_msg("w %lld: gx[%lld] is %g, want %g", (long long)w, (long long)i, gx[i], gwant[i]);
        }
    }
}

/* ---------------------------------------------------------------- through the IR */

/* conv2d then max_pool2d built with ir_window (the shape rule computes the shapes, N in them) and run by
   ir_interp with N bound to 2, against the f64 kernels chained on the same values. */
static void test_window_ops_through_ir_interp_match_kernels(void **state)
{
    ts.g = ir_graph_new(ts.a, "t");
    Loc loc = {"t.lathe", 1, 1};
    Node *x = ir_input(ts.g, loc, "x", DT_F64, ts_shape(4, IR_DIM_N, 2, 7, 7));
    Node *w = ir_param(ts.g, loc, "w", DT_F64, ts_shape(4, 3, 2, 3, 3));
    Attr ca = {0}, pa = {0};
    ca.stride[0] = ca.stride[1] = 2, ca.pad[0] = ca.pad[1] = 1, ca.dilation[0] = ca.dilation[1] = 1, ca.groups = 1;
    pa = pool_attr((PoolCfg){0, 0, 0, 0, 3, 3, 2, 2, 1, 1, 1, 1, true, false});
    Node *y = ir_window(ts.g, ts.d, loc, OP_CONV2D, 2, (Node *[]){x, w}, &ca);
    assert_non_null(y);
    Node *z = ir_window(ts.g, ts.d, loc, OP_MAX_POOL2D, 1, (Node *[]){y}, &pa);
    assert_non_null(z);
    assert_true(ir_shape_eq(&z->shape, &(Shape){4, {IR_DIM_N, 3, 3, 3}}));
    ir_add_output(ts.g, "z", z, false);

    uint64_t rng = 60;
    Shape xs = nchw(2, 2, 7, 7), ws = w->shape, ys = ts_shape_at(y->shape, 2), zs = ts_shape_at(z->shape, 2);
    double *xv = random_values(&xs, &rng), *wv = random_values(&ws, &rng);
    IBinding bind[] = {{"x", {xs, xv}}, {"w", {ws, wv}}};
    ITensor *r = ir_interp(ts.a, ts.g, 2, bind, 2, ts.d);
    if (!r)
        fail_msg("interp failed: %s", diag_first_message(ts.d));

    Call conv = {OP_CONV2D, y->attr, 2, ys, {xs, ws}};
    Call pool = {OP_MAX_POOL2D, z->attr, 1, zs, {ys}};
    double *yk = kern_run(&conv, (double *[]){xv, wv}, false);
    expect_close("conv2d then max_pool2d", kern_run(&pool, (double *[]){yk}, false), r[0].data, numel(&zs), 1e-12);
}

/* ---------------------------------------------------------------- descriptors the kernels must survive */

/* Channels that groups do not divide, and a weight whose channels disagree with x: zeros, nothing outside
   the buffers (AddressSanitizer watches the sanitized build). */
static void test_conv2d_kernels_inconsistent_desc_write_zeros(void **state)
{
    Attr at;
    memset(&at, 0, sizeof at);
    at.stride[0] = at.stride[1] = at.dilation[0] = at.dilation[1] = 1;
    at.groups = 2;
    Call c = {OP_CONV2D, at, 2, nchw(1, 2, 3, 3), {nchw(1, 3, 3, 3), nchw(2, 1, 1, 1)}};
    uint64_t rng = 50;
    double *x = random_values(&c.in[0], &rng), *w = random_values(&c.in[1], &rng);
    double zeros[18] = {0};
    for (int f32 = 0; f32 < 2; f32++) {
        expect_close("groups", kern_run(&c, (double *[]){x, w}, f32), zeros, 18, 0);
        c.attr.groups = 1; /* now w has 1 channel, x 3 */
        expect_close("channels", kern_run(&c, (double *[]){x, w}, f32), zeros, 18, 0);
        c.attr.groups = 2;
    }
    Call b = {OP_MAX_POOL2D_BWD, at, 2, nchw(1, 3, 4, 4), {nchw(1, 3, 3, 3), nchw(1, 3, 1, 1)}};
    double *gx = kern_run(&b, (double *[]){x, x}, false); /* gx not x's shape */
    expect_close("max_pool2d_bwd", gx, zeros, 18, 0);
}

/* A batch of 0: nothing read, an empty output, and conv2d_bwd_weight's gradient all zeros. */
static void test_window_kernels_empty_batch(void **state)
{
    Attr at;
    memset(&at, 0, sizeof at);
    at.stride[0] = at.stride[1] = at.dilation[0] = at.dilation[1] = at.groups = 1;
    Call c = {OP_CONV2D_BWD_WEIGHT, at, 2, nchw(2, 1, 3, 3), {nchw(0, 1, 5, 5), nchw(0, 2, 3, 3)}};
    double zeros[18] = {0};
    expect_close("bwd_weight", kern_run(&c, (double *[]){NULL, NULL}, false), zeros, 18, 0);
    expect_close("bwd_weight", kern_run(&c, (double *[]){NULL, NULL}, true), zeros, 18, 0);
    Call p = {OP_MAX_POOL2D, pool_attr((PoolCfg){0, 1, 4, 4, 2, 2, 2, 2, 0, 0, 1, 1, false, false}), 1,
              nchw(0, 1, 2, 2), {nchw(0, 1, 4, 4)}};
    kern_run(&p, (double *[]){NULL}, false);
}

#define T(f) cmocka_unit_test_setup_teardown(f, ts_setup, ts_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_conv2d_kernels_3x3_pad1_batch3),
        T(test_conv2d_kernels_stride2_odd_sizes),
        T(test_conv2d_kernels_dilation2),
        T(test_conv2d_kernels_groups2),
        T(test_conv2d_kernels_depthwise),
        T(test_conv2d_kernels_pointwise),
        T(test_conv2d_kernels_rectangular_window_uneven_pad),
        T(test_conv2d_kernels_many_samples_and_blocks),
        T(test_conv2d_kernels_direct_one_channel),
        T(test_conv2d_reference_by_hand),
        T(test_max_pool2d_kernels_2x2_stride2),
        T(test_max_pool2d_kernels_pad_ceil_mode),
        T(test_max_pool2d_kernels_dilation2),
        T(test_avg_pool2d_kernels_pad_ceil_count_include_pad),
        T(test_adaptive_avg_pool2d_kernels_uneven_windows),
        T(test_avg_pool2d_reference_divisor_in_ceil_mode),
        T(test_max_pool2d_reference_ceil_mode_last_window),
        T(test_adaptive_avg_pool2d_reference_windows),
        T(test_max_pool2d_bwd_routes_to_first_max),
        T(test_max_pool2d_2x2_first_max_nan_odd_width),
        T(test_conv2d_kernels_split_bit_identical),
        T(test_conv2d_kernels_two_threads_bit_identical),
        T(test_pool_kernels_split_bit_identical),
        T(test_max_pool2d_2x2_every_row_length),
        T(test_window_ops_through_ir_interp_match_kernels),
        T(test_conv2d_kernels_inconsistent_desc_write_zeros),
        T(test_window_kernels_empty_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
