/* test_autodiff_fd.c: every VJP rule of pass_autodiff checked against central finite differences through
   the reference interpreter, in f64. Each test builds op(params...) with odd shapes (broadcasting, keepdim,
   batched and transposed matmuls, the batch dim N bound to 3), loss = reduce_sum(op(...) * w) with w a
   fixed random INPUT, and compares every "grad.NAME" output with (L(p+eps) - L(p-eps)) / 2eps. The layers
   issue's primitives too: broadcast matmuls, convolution with stride, padding, dilation and groups, pooling
   with ceil_mode and padding, slice/pad/concat, gather/scatter_add with repeated and out-of-range indices. */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../../passes/passes.h"

#define N_BOUND 3
#define EPS 1e-6
#define TOL 1e-6
#define MAXP 6

typedef enum { SIGNED, POSITIVE } Domain; /* SIGNED: +-[0.2, 1.2], away from the kinks at 0 */

typedef struct Fx {
    IBinding bind[MAXP + 2];
    int nbind;
    const char *pnames[MAXP];
    int np;
    uint64_t rng;
} Fx;

#define N IR_DIM_N

static ITensor random_tensor(Fx *f, Shape s, Domain dom) {
    ITensor t = {ts_shape_at(s, N_BOUND), NULL};
    int64_t n = ir_shape_numel(&s, N_BOUND);
    t.data = arena_alloc(ts.a, (size_t)n * sizeof(double) + 8);
    for (int64_t i = 0; i < n; i++) {
        double v = 0.2 + ts_rand_uniform(&f->rng);
        if (dom == SIGNED && ts_rand_uniform(&f->rng) < 0.5)
            v = -v;
        t.data[i] = dom == POSITIVE ? v + 0.3 : v;
    }
    return t;
}

static Fx *fx_new(void) {
    static Fx f;
    memset(&f, 0, sizeof f);
    ts_open("train", stderr);
    f.rng = 0x9e3779b97f4a7c15ULL;
    return &f;
}

static void bind(Fx *f, const char *name, ITensor t) {
    f->bind[f->nbind++] = (IBinding){name, t};
}

static Node *param(Fx *f, const char *name, Shape s, Domain dom) {
    Node *p = ir_param(ts.g, (Loc){0}, name, DT_F64, s);
    assert_non_null(p);
    bind(f, name, random_tensor(f, s, dom));
    f->pnames[f->np++] = name;
    return p;
}

static Node *input(Fx *f, const char *name, Shape s, Domain dom) {
    Node *x = ir_input(ts.g, (Loc){0}, name, DT_F64, s);
    assert_non_null(x);
    bind(f, name, random_tensor(f, s, dom));
    return x;
}

static double loss_at(Fx *f) {
    ITensor *out = ir_interp(ts.a, ts.g, N_BOUND, f->bind, f->nbind, ts.d);
    assert_non_null(out);
    return out[0].data[0];
}

static const ITensor *find_grad(Fx *f, ITensor *out, const char *pname) {
    char want[128];
    snprintf(want, sizeof want, "grad.%s", pname);
    int i = ts_output_index(ts.g, want);
    if (i < 0)
        fail_msg("no output %s", want);
    return &out[i];
}

/* loss = reduce_sum(y * w); differentiate; compare every gradient with central differences */
static void check_with(Fx *f, Node *y, double eps, double tol) {
    assert_non_null(y);
    Node *w = input(f, "weighting", y->shape, SIGNED);
    Node *prod = ir_binary(ts.g, ts.d, (Loc){0}, OP_MUL, y, w);
    uint32_t all = y->shape.rank ? (1u << y->shape.rank) - 1 : 0;
    Node *loss = all ? ir_reduce(ts.g, ts.d, (Loc){0}, OP_REDUCE_SUM, prod, all, false) : prod;
    assert_non_null(loss);
    ir_add_output(ts.g, "loss", loss, false);
    assert_true(pass_autodiff(ts.g, ts.d));
    assert_true(ir_verify(ts.g, ts.d));
    assert_int_equal(ts.g->noutputs, 1 + f->np);

    ITensor *out = ir_interp(ts.a, ts.g, N_BOUND, f->bind, f->nbind, ts.d);
    assert_non_null(out);
    for (int p = 0; p < f->np; p++) {
        const ITensor *gr = find_grad(f, out, f->pnames[p]);
        ITensor *val = NULL;
        for (int b = 0; b < f->nbind; b++)
            if (strcmp(f->bind[b].name, f->pnames[p]) == 0)
                val = &f->bind[b].value;
        assert_non_null(val);
        assert_true(ir_shape_eq(&gr->shape, &val->shape));
        int64_t n = ir_shape_numel(&val->shape, N_BOUND);
        for (int64_t i = 0; i < n; i++) {
            double keep = val->data[i];
            val->data[i] = keep + eps;
            double lp = loss_at(f);
            val->data[i] = keep - eps;
            double lm = loss_at(f);
            val->data[i] = keep;
            double fd = (lp - lm) / (2 * eps), an = gr->data[i];
            double scale = fmax(1.0, fmax(fabs(fd), fabs(an)));
            if (fabs(fd - an) > tol * scale)
                fail_msg("grad.%s[%lld]: autodiff %.12g, finite differences %.12g", f->pnames[p], (long long)i,
                         an, fd);
        }
    }
    ts_teardown(NULL);
}

static void check(Fx *f, Node *y) { check_with(f, y, EPS, TOL); }

static Node *un(Fx *f, Op op, Node *x) { return ir_unary(ts.g, ts.d, (Loc){0}, op, x); }
static Node *bin(Fx *f, Op op, Node *a, Node *b) { return ir_binary(ts.g, ts.d, (Loc){0}, op, a, b); }
static Node *red(Fx *f, Op op, Node *x, uint32_t axes, bool keep) {
    return ir_reduce(ts.g, ts.d, (Loc){0}, op, x, axes, keep);
}
static Node *mm(Fx *f, Node *a, Node *b, bool ta, bool tb) { return ir_matmul(ts.g, ts.d, (Loc){0}, a, b, ta, tb); }

/* An integer INPUT of dtype t with values drawn from [lo, hi): indices, some repeated, some out of range
   when the range passes the indexed dim. */
static Node *index_input(Fx *f, const char *name, DType t, Shape s, int lo, int hi) {
    Node *x = ir_input(ts.g, (Loc){0}, name, t, s);
    assert_non_null(x);
    ITensor v = {ts_shape_at(s, N_BOUND), NULL};
    int64_t n = ir_shape_numel(&s, N_BOUND);
    v.data = arena_alloc(ts.a, (size_t)n * sizeof(double) + 8);
    for (int64_t i = 0; i < n; i++)
        v.data[i] = lo + (int)(ts_rand_uniform(&f->rng) * (hi - lo));
    bind(f, name, v);
    return x;
}

/* An Attr for a window op: (h, w) pairs, one group, no ceil_mode. */
static Attr window_attr(int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
    Attr a = {0};
    a.window[0] = kh, a.window[1] = kw;
    a.stride[0] = sh, a.stride[1] = sw;
    a.pad[0] = ph, a.pad[1] = pw;
    a.dilation[0] = dh, a.dilation[1] = dw;
    a.groups = 1;
    return a;
}

static Node *window(Fx *f, Op op, int ninputs, Node *const *inputs, const Attr *a) {
    (void)f;
    Node *y = ir_window(ts.g, ts.d, (Loc){0}, op, ninputs, inputs, a);
    assert_non_null(y);
    return y;
}

/* ---------------------------------------------------------------- unary */

static void unary_case(Op op, Domain dom) {
    Fx *f = fx_new();
    Node *x = param(f, "x", ts_shape(3, N, 2, 3), dom);
    check(f, un(f, op, x));
}

static void test_neg_vjp(void **s) { (void)s; unary_case(OP_NEG, SIGNED); }
static void test_exp_vjp(void **s) { (void)s; unary_case(OP_EXP, SIGNED); }
static void test_log_vjp(void **s) { (void)s; unary_case(OP_LOG, POSITIVE); }
static void test_sqrt_vjp(void **s) { (void)s; unary_case(OP_SQRT, POSITIVE); }
static void test_abs_vjp(void **s) { (void)s; unary_case(OP_ABS, SIGNED); }
static void test_relu_vjp(void **s) { (void)s; unary_case(OP_RELU, SIGNED); }
static void test_sigmoid_vjp(void **s) { (void)s; unary_case(OP_SIGMOID, SIGNED); }
static void test_tanh_vjp(void **s) { (void)s; unary_case(OP_TANH, SIGNED); }
static void test_erf_vjp(void **s) { (void)s; unary_case(OP_ERF, SIGNED); }
static void test_rsqrt_vjp(void **s) { (void)s; unary_case(OP_RSQRT, POSITIVE); }

static void test_cast_f64_f64_vjp(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *x = param(f, "x", ts_shape(2, N, 3), SIGNED);
    check(f, un(f, OP_EXP, ir_cast(ts.g, (Loc){0}, x, DT_F64)));
}

/* Through f32 the interpreter rounds every value to f32, so finite differences need a larger step and
   tolerance: the rule is the same, only the arithmetic is coarser. */
static void test_cast_f64_f32_f64_vjp(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *x = param(f, "x", ts_shape(2, N, 3), SIGNED);
    Node *y = ir_cast(ts.g, (Loc){0}, x, DT_F32);
    check_with(f, ir_cast(ts.g, (Loc){0}, un(f, OP_EXP, y), DT_F64), 1e-2, 1e-3);
}

/* ---------------------------------------------------------------- binary, broadcasting both ways */

static void binary_case(Op op, Domain da, Domain db) {
    Fx *f = fx_new();
    Node *a = param(f, "a", ts_shape(3, N, 1, 3), da);
    Node *b = param(f, "b", ts_shape(2, 2, 1), db);
    check(f, bin(f, op, a, b));
}

static void test_add_vjp_broadcast(void **s) { (void)s; binary_case(OP_ADD, SIGNED, SIGNED); }
static void test_sub_vjp_broadcast(void **s) { (void)s; binary_case(OP_SUB, SIGNED, SIGNED); }
static void test_mul_vjp_broadcast(void **s) { (void)s; binary_case(OP_MUL, SIGNED, SIGNED); }
static void test_div_vjp_broadcast(void **s) { (void)s; binary_case(OP_DIV, SIGNED, POSITIVE); }
static void test_max_vjp_broadcast(void **s) { (void)s; binary_case(OP_MAX, SIGNED, SIGNED); }
static void test_min_vjp_broadcast(void **s) { (void)s; binary_case(OP_MIN, SIGNED, SIGNED); }
static void test_pow_vjp_broadcast(void **s) { (void)s; binary_case(OP_POW, POSITIVE, SIGNED); }

static void test_add_vjp_same_shape_and_scalar(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *a = param(f, "a", ts_shape(2, N, 4), SIGNED);
    Node *b = param(f, "b", ts_shape(2, N, 4), SIGNED);
    Node *c = param(f, "c", ts_shape(0), SIGNED);
    check(f, bin(f, OP_MUL, bin(f, OP_ADD, a, b), c));
}

static void pow_const_case(double e) {
    Fx *f = fx_new();
    Node *a = param(f, "a", ts_shape(2, N, 3), POSITIVE);
    check(f, bin(f, OP_POW, a, ir_const(ts.g, (Loc){0}, DT_F64, ts_shape(0), e)));
}

static void test_pow_vjp_const_exponent_2(void **s) { (void)s; pow_const_case(2); }
static void test_pow_vjp_const_exponent_3(void **s) { (void)s; pow_const_case(3); }
static void test_pow_vjp_const_exponent_half(void **s) { (void)s; pow_const_case(0.5); }
static void test_pow_vjp_const_exponent_1(void **s) { (void)s; pow_const_case(1); }

static void test_select_vjp_broadcast(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *c = input(f, "c", ts_shape(2, N, 1), SIGNED);
    Node *cond = bin(f, OP_GT, c, ir_const(ts.g, (Loc){0}, DT_F64, ts_shape(0), 0));
    Node *a = param(f, "a", ts_shape(2, N, 4), SIGNED);
    Node *b = param(f, "b", ts_shape(1, 4), SIGNED);
    check(f, ir_select(ts.g, ts.d, (Loc){0}, cond, a, b));
}

/* the same value reached along several paths: contributions add up */
static void test_vjp_sums_contributions_of_reused_value(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *x = param(f, "x", ts_shape(2, N, 3), SIGNED);
    Node *y = bin(f, OP_ADD, bin(f, OP_MUL, x, x), un(f, OP_TANH, x));
    check(f, bin(f, OP_MUL, y, un(f, OP_EXP, x)));
}

/* ---------------------------------------------------------------- reductions */

static void reduce_case(Op op, uint32_t axes, bool keep) {
    Fx *f = fx_new();
    Node *x = param(f, "x", ts_shape(3, N, 4, 3), SIGNED);
    check(f, red(f, op, x, axes, keep));
}

static void test_reduce_sum_vjp_middle_axis(void **s) { (void)s; reduce_case(OP_REDUCE_SUM, 2, false); }
static void test_reduce_sum_vjp_keepdim(void **s) { (void)s; reduce_case(OP_REDUCE_SUM, 5, true); }
static void test_reduce_sum_vjp_batch_axis(void **s) { (void)s; reduce_case(OP_REDUCE_SUM, 1, false); }
static void test_reduce_sum_vjp_all_axes(void **s) { (void)s; reduce_case(OP_REDUCE_SUM, 7, false); }
static void test_reduce_mean_vjp_batch_axis(void **s) { (void)s; reduce_case(OP_REDUCE_MEAN, 1, false); }
static void test_reduce_mean_vjp_last_axes(void **s) { (void)s; reduce_case(OP_REDUCE_MEAN, 6, false); }
static void test_reduce_mean_vjp_keepdim(void **s) { (void)s; reduce_case(OP_REDUCE_MEAN, 3, true); }
static void test_reduce_max_vjp_last_axis(void **s) { (void)s; reduce_case(OP_REDUCE_MAX, 4, false); }
static void test_reduce_max_vjp_keepdim(void **s) { (void)s; reduce_case(OP_REDUCE_MAX, 2, true); }
static void test_reduce_max_vjp_batch_axis(void **s) { (void)s; reduce_case(OP_REDUCE_MAX, 1, false); }
static void test_reduce_min_vjp_last_axis(void **s) { (void)s; reduce_case(OP_REDUCE_MIN, 4, false); }
static void test_reduce_min_vjp_keepdim(void **s) { (void)s; reduce_case(OP_REDUCE_MIN, 2, true); }
static void test_reduce_min_vjp_batch_axis(void **s) { (void)s; reduce_case(OP_REDUCE_MIN, 1, false); }
static void test_reduce_min_vjp_two_axes(void **s) { (void)s; reduce_case(OP_REDUCE_MIN, 6, false); }

/* ---------------------------------------------------------------- matmul: every transpose combination */

static void matmul2_case(bool ta, bool tb) {
    Fx *f = fx_new();
    Node *a = param(f, "a", ta ? ts_shape(2, 4, 3) : ts_shape(2, 3, 4), SIGNED); /* A [3,4] */
    Node *b = param(f, "b", tb ? ts_shape(2, 5, 4) : ts_shape(2, 4, 5), SIGNED); /* B [4,5] */
    check(f, mm(f, a, b, ta, tb));
}

static void test_matmul_vjp(void **s) { (void)s; matmul2_case(false, false); }
static void test_matmul_vjp_transpose_a(void **s) { (void)s; matmul2_case(true, false); }
static void test_matmul_vjp_transpose_b(void **s) { (void)s; matmul2_case(false, true); }
static void test_matmul_vjp_transpose_both(void **s) { (void)s; matmul2_case(true, true); }

static void matmul3_case(bool ta, bool tb) {
    Fx *f = fx_new();
    Node *a = param(f, "a", ta ? ts_shape(3, N, 4, 3) : ts_shape(3, N, 3, 4), SIGNED);
    Node *b = param(f, "b", tb ? ts_shape(3, N, 2, 4) : ts_shape(3, N, 4, 2), SIGNED);
    check(f, mm(f, a, b, ta, tb));
}

static void test_matmul_vjp_batched(void **s) { (void)s; matmul3_case(false, false); }
static void test_matmul_vjp_batched_transpose_a(void **s) { (void)s; matmul3_case(true, false); }
static void test_matmul_vjp_batched_transpose_b(void **s) { (void)s; matmul3_case(false, true); }
static void test_matmul_vjp_batched_transpose_both(void **s) { (void)s; matmul3_case(true, true); }

/* a batched left operand with a shared right one: the right one's gradient sums over the batch */
static void test_matmul_vjp_broadcast_batch(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *a = param(f, "a", ts_shape(3, 2, 3, 4), SIGNED);
    Node *b = param(f, "b", ts_shape(2, 5, 4), SIGNED);
    check(f, mm(f, a, b, false, true));
}

/* Linear: x [N,4] @ w.T + bias, and the weight's gradient contracts over K = N */
static void test_matmul_vjp_linear_contracts_batch(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *x = param(f, "x", ts_shape(2, N, 4), SIGNED);
    Node *w = param(f, "w", ts_shape(2, 3, 4), SIGNED);
    Node *bias = param(f, "bias", ts_shape(1, 3), SIGNED);
    Node *y = bin(f, OP_ADD, mm(f, x, w, false, true), bias);
    /* a product over the batch: [N,4]^T @ [N,3] -> [4,3], K = N */
    check(f, mm(f, x, y, true, false));
}

/* batch dims broadcast both ways: [2,1] against [5] gives [2,5], each gradient summed back to its own */
static void matmul_broadcast_case(bool ta, bool tb) {
    Fx *f = fx_new();
    Node *a = param(f, "a", ta ? ts_shape(4, 2, 1, 4, 3) : ts_shape(4, 2, 1, 3, 4), SIGNED); /* A [3,4] */
    Node *b = param(f, "b", tb ? ts_shape(3, 5, 2, 4) : ts_shape(3, 5, 4, 2), SIGNED);       /* B [4,2] */
    Node *y = mm(f, a, b, ta, tb);
    assert_true(ir_shape_eq(&y->shape, &(Shape){4, {2, 5, 3, 2}}));
    check(f, y);
}

static void test_matmul_vjp_broadcast_batches(void **s) { (void)s; matmul_broadcast_case(false, false); }
static void test_matmul_vjp_broadcast_batches_transpose_a(void **s) { (void)s; matmul_broadcast_case(true, false); }
static void test_matmul_vjp_broadcast_batches_transpose_b(void **s) { (void)s; matmul_broadcast_case(false, true); }
static void test_matmul_vjp_broadcast_batches_transpose_both(void **s) { (void)s; matmul_broadcast_case(true, true); }

/* a 2-D left operand against a batched right one: the left one's gradient sums over the batch */
static void test_matmul_vjp_broadcast_left_2d(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *a = param(f, "a", ts_shape(2, 3, 4), SIGNED);
    Node *b = param(f, "b", ts_shape(4, 2, N, 4, 2), SIGNED);
    check(f, mm(f, a, b, false, false));
}

/* Linear on [..., in]: the weight's gradient folds the constant batch dims into rows (one product) ... */
static void test_matmul_vjp_shared_weight_folded_rows(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *a = param(f, "a", ts_shape(4, 2, 3, 2, 4), SIGNED);
    Node *b = param(f, "b", ts_shape(2, 4, 5), SIGNED);
    check(f, mm(f, a, b, false, false));
}

/* ... and with N among the batch dims it sums a batched product */
static void test_matmul_vjp_shared_weight_batch_n(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *a = param(f, "a", ts_shape(3, N, 3, 4), SIGNED);
    Node *b = param(f, "b", ts_shape(2, 5, 4), SIGNED);
    check(f, mm(f, a, b, false, true));
}

/* ---------------------------------------------------------------- convolution and pooling */

static void test_conv2d_vjp(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *in[2] = {param(f, "x", ts_shape(4, N, 3, 5, 5), SIGNED),
                   param(f, "w", ts_shape(4, 4, 3, 3, 3), SIGNED)};
    Attr a = window_attr(3, 3, 1, 1, 1, 1, 1, 1);
    check(f, window(f, OP_CONV2D, 2, in, &a));
}

/* stride 2, padding 1, dilation 2, two groups, odd sizes, a non-square kernel */
static void test_conv2d_vjp_stride_pad_dilation_groups(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *in[2] = {param(f, "x", ts_shape(4, N, 4, 7, 6), SIGNED),
                   param(f, "w", ts_shape(4, 6, 2, 3, 2), SIGNED)};
    Attr a = window_attr(3, 2, 2, 2, 1, 1, 2, 2);
    a.groups = 2;
    Node *y = window(f, OP_CONV2D, 2, in, &a);
    assert_true(ir_shape_eq(&y->shape, &(Shape){4, {N, 6, 3, 3}}));
    check(f, y);
}

/* only the weight needs a gradient: the input is data */
static void test_conv2d_vjp_weight_only(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *in[2] = {input(f, "x", ts_shape(4, N, 2, 6, 5), SIGNED),
                   param(f, "w", ts_shape(4, 3, 2, 2, 3), SIGNED)};
    Attr a = window_attr(2, 3, 2, 1, 0, 1, 1, 1);
    check(f, window(f, OP_CONV2D, 2, in, &a));
}

static void max_pool_case(Attr a, Shape xs) {
    Fx *f = fx_new();
    Node *x = param(f, "x", xs, SIGNED);
    check(f, window(f, OP_MAX_POOL2D, 1, &x, &a));
}

static void test_max_pool2d_vjp(void **s) {
    (void)s;
    max_pool_case(window_attr(2, 2, 2, 2, 0, 0, 1, 1), ts_shape(4, N, 2, 6, 4));
}

/* ceil_mode adds a last partial window; padding 1 with a 3x2 window, odd sizes */
static void test_max_pool2d_vjp_ceil_mode_padding(void **s) {
    (void)s;
    Attr a = window_attr(3, 2, 2, 2, 1, 1, 1, 1);
    a.ceil_mode = true;
    max_pool_case(a, ts_shape(4, N, 2, 8, 6)); /* OH: 5 with ceil_mode, 4 without */
}

static void test_max_pool2d_vjp_overlapping_dilated(void **s) {
    (void)s;
    max_pool_case(window_attr(3, 3, 1, 2, 1, 0, 2, 1), ts_shape(4, N, 1, 7, 5));
}

static void avg_pool_case(bool ceil_mode, bool count_include_pad) {
    Fx *f = fx_new();
    /* with ceil_mode, a last window half in the padding */
    Node *x = param(f, "x", ts_shape(4, N, 2, 8, 7), SIGNED);
    Attr a = window_attr(3, 2, 2, 2, 1, 1, 1, 1);
    a.ceil_mode = ceil_mode;
    a.count_include_pad = count_include_pad;
    check(f, window(f, OP_AVG_POOL2D, 1, &x, &a));
}

static void test_avg_pool2d_vjp(void **s) { (void)s; avg_pool_case(false, true); }
static void test_avg_pool2d_vjp_ceil_mode(void **s) { (void)s; avg_pool_case(true, true); }
static void test_avg_pool2d_vjp_ceil_mode_exclude_pad(void **s) { (void)s; avg_pool_case(true, false); }

/* 7 -> 3 makes overlapping windows of uneven sizes; 5 -> 5 is the identity */
static void test_adaptive_avg_pool2d_vjp(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *x = param(f, "x", ts_shape(4, N, 2, 7, 5), SIGNED);
    Attr a = {0};
    a.shape = ts_shape(4, N, 2, 3, 5);
    check(f, window(f, OP_ADAPTIVE_AVG_POOL2D, 1, &x, &a));
}

/* ---------------------------------------------------------------- slice, pad, concat, gather, scatter */

static void test_slice_vjp_steps(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *x = param(f, "x", ts_shape(3, N, 5, 7), SIGNED);
    int64_t start[] = {0, 1, 0}, step[] = {1, 2, 3};
    check(f, ir_slice(ts.g, ts.d, (Loc){0}, x, start, step, ts_shape(3, N, 2, 3)));
}

/* the same x sliced twice: the two pads add up */
static void test_slice_vjp_overlapping_slices_add(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *x = param(f, "x", ts_shape(2, 4, 6), SIGNED);
    int64_t s1[] = {1, 0}, st1[] = {1, 1}, s2[] = {0, 1}, st2[] = {2, 2};
    Node *a = ir_slice(ts.g, ts.d, (Loc){0}, x, s1, st1, ts_shape(2, 2, 3));
    Node *b = ir_slice(ts.g, ts.d, (Loc){0}, x, s2, st2, ts_shape(2, 2, 3));
    check(f, bin(f, OP_MUL, a, b));
}

static void test_pad_vjp_interior_and_value(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *x = param(f, "x", ts_shape(3, N, 2, 3), SIGNED);
    int64_t start[] = {0, 1, 2}, step[] = {1, 2, 2};
    check(f, ir_pad(ts.g, ts.d, (Loc){0}, x, start, step, ts_shape(3, N, 5, 7), 0.5));
}

static void test_concat_vjp_three_inputs(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *xs[3] = {param(f, "a", ts_shape(3, N, 2, 3), SIGNED), param(f, "b", ts_shape(3, N, 1, 3), SIGNED),
                   param(f, "c", ts_shape(3, N, 4, 3), SIGNED)};
    check(f, ir_concat(ts.g, ts.d, (Loc){0}, 3, xs, 1));
}

/* along the last axis, with an input that needs no gradient and one used twice */
static void test_concat_vjp_last_axis_mixed(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *a = param(f, "a", ts_shape(3, N, 2, 3), SIGNED);
    Node *k = input(f, "k", ts_shape(3, N, 2, 2), SIGNED);
    Node *xs[3] = {a, k, a};
    check(f, ir_concat(ts.g, ts.d, (Loc){0}, 3, xs, 2));
}

/* indices repeat (their gradients add) and some fall outside [0, 4) (they read 0: no gradient) */
static void test_gather_vjp_repeats_and_out_of_range(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *x = param(f, "x", ts_shape(3, N, 4, 5), SIGNED);
    Node *idx = index_input(f, "index", DT_I64, ts_shape(3, N, 6, 5), -1, 5);
    check(f, ir_gather(ts.g, ts.d, (Loc){0}, x, idx, 1));
}

static void test_gather_vjp_last_axis_i32(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *x = param(f, "x", ts_shape(2, N, 7), SIGNED);
    Node *idx = index_input(f, "index", DT_I32, ts_shape(2, N, 3), 0, 7);
    check(f, ir_gather(ts.g, ts.d, (Loc){0}, x, idx, 1));
}

static void test_scatter_add_vjp(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *src = param(f, "src", ts_shape(3, N, 3, 5), SIGNED);
    Node *idx = index_input(f, "index", DT_I64, ts_shape(3, N, 3, 5), -1, 5);
    check(f, ir_scatter_add(ts.g, ts.d, (Loc){0}, idx, src, 2, ts_shape(3, N, 3, 4)));
}

/* ---------------------------------------------------------------- shape ops */

static void test_reshape_vjp(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *x = param(f, "x", ts_shape(3, N, 2, 3), SIGNED);
    check(f, un(f, OP_EXP, ir_reshape(ts.g, ts.d, (Loc){0}, x, ts_shape(2, N, 6))));
}

static void test_transpose_vjp(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *x = param(f, "x", ts_shape(3, 2, 3, 4), SIGNED);
    int perm[] = {2, 0, 1};
    check(f, un(f, OP_TANH, ir_transpose(ts.g, ts.d, (Loc){0}, x, perm)));
}

static void test_broadcast_vjp(void **s) {
    (void)s;
    Fx *f = fx_new();
    Node *x = param(f, "x", ts_shape(2, 2, 1), SIGNED);
    Node *y = param(f, "y", ts_shape(1, 3), SIGNED);
    Node *bx = ir_broadcast(ts.g, ts.d, (Loc){0}, x, ts_shape(3, N, 2, 3));
    Node *by = ir_broadcast(ts.g, ts.d, (Loc){0}, y, ts_shape(2, 2, 3));
    check(f, bin(f, OP_MUL, bx, by));
}

/* ---------------------------------------------------------------- a whole model */

/* a two-layer MLP with log-softmax cross-entropy, as the frontend lowers the Quickstart */
static void test_mlp_cross_entropy_vjp(void **s) {
    (void)s;
    Fx *f = fx_new();
    Loc l = {0};
    Node *x = input(f, "x", ts_shape(2, N, 4), SIGNED);
    Node *lab = input(f, "onehot", ts_shape(2, N, 3), POSITIVE);
    Node *w1 = param(f, "w1", ts_shape(2, 5, 4), SIGNED);
    Node *b1 = param(f, "b1", ts_shape(1, 5), SIGNED);
    Node *w2 = param(f, "w2", ts_shape(2, 3, 5), SIGNED);
    Node *b2 = param(f, "b2", ts_shape(1, 3), SIGNED);
    Node *h = un(f, OP_RELU, bin(f, OP_ADD, mm(f, x, w1, false, true), b1));
    Node *z = bin(f, OP_ADD, mm(f, h, w2, false, true), b2);
    Node *m = red(f, OP_REDUCE_MAX, z, 2, true);
    Node *zs = bin(f, OP_SUB, z, m);
    Node *lse = un(f, OP_LOG, red(f, OP_REDUCE_SUM, un(f, OP_EXP, zs), 2, true));
    Node *logp = bin(f, OP_SUB, zs, lse);
    Node *nll = un(f, OP_NEG, red(f, OP_REDUCE_SUM, bin(f, OP_MUL, logp, lab), 2, false));
    Node *loss = red(f, OP_REDUCE_MEAN, nll, 1, true);
    (void)l;
    check(f, loss);
}

/* a small CNN as the standard library lowers one: conv, BatchNorm's batch statistics (rsqrt of the biased
   variance), GELU (erf), max pooling, adaptive pooling, a Linear, and cross-entropy through gather */
static void test_cnn_batchnorm_cross_entropy_vjp(void **s) {
    (void)s;
    Fx *f = fx_new();
    Loc l = {0};
    Node *x = input(f, "x", ts_shape(4, N, 2, 6, 6), SIGNED);
    Node *label = index_input(f, "label", DT_I64, ts_shape(2, N, 1), 0, 3);
    Node *in[2] = {x, param(f, "conv.weight", ts_shape(4, 4, 2, 3, 3), SIGNED)};
    Node *gamma = param(f, "bn.weight", ts_shape(3, 4, 1, 1), SIGNED);
    Node *fc = param(f, "fc.weight", ts_shape(2, 3, 8), SIGNED);
    Attr ca = window_attr(3, 3, 1, 1, 1, 1, 1, 1);
    Node *h = window(f, OP_CONV2D, 2, in, &ca);
    Node *mean = red(f, OP_REDUCE_MEAN, h, 0xd, true);
    Node *c = bin(f, OP_SUB, h, mean);
    Node *var = red(f, OP_REDUCE_MEAN, bin(f, OP_MUL, c, c), 0xd, true);
    Node *eps = ir_const(ts.g, l, DT_F64, ts_shape(0), 1e-5);
    h = bin(f, OP_MUL, bin(f, OP_MUL, c, un(f, OP_RSQRT, bin(f, OP_ADD, var, eps))), gamma);
    Node *half = ir_const(ts.g, l, DT_F64, ts_shape(0), 0.5);
    Node *k = ir_const(ts.g, l, DT_F64, ts_shape(0), 0.7071067811865476);
    Node *one = ir_const(ts.g, l, DT_F64, ts_shape(0), 1);
    h = bin(f, OP_MUL, bin(f, OP_MUL, h, half), bin(f, OP_ADD, one, un(f, OP_ERF, bin(f, OP_MUL, h, k))));
    Attr pa = window_attr(2, 2, 2, 2, 0, 0, 1, 1);
    h = window(f, OP_MAX_POOL2D, 1, &h, &pa); /* [N,4,3,3] */
    Attr aa = {0};
    aa.shape = ts_shape(4, N, 4, 2, 1);
    h = window(f, OP_ADAPTIVE_AVG_POOL2D, 1, &h, &aa);
    Node *z = mm(f, ir_reshape(ts.g, ts.d, l, h, ts_shape(2, N, 8)), fc, false, true); /* [N,3] */
    Node *m = red(f, OP_REDUCE_MAX, z, 2, true);
    Node *zs = bin(f, OP_SUB, z, m);
    Node *logp = bin(f, OP_SUB, zs, un(f, OP_LOG, red(f, OP_REDUCE_SUM, un(f, OP_EXP, zs), 2, true)));
    Node *picked = ir_gather(ts.g, ts.d, l, logp, label, 1);
    check(f, un(f, OP_NEG, red(f, OP_REDUCE_MEAN, picked, 3, false)));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_neg_vjp),
        cmocka_unit_test(test_exp_vjp),
        cmocka_unit_test(test_log_vjp),
        cmocka_unit_test(test_sqrt_vjp),
        cmocka_unit_test(test_abs_vjp),
        cmocka_unit_test(test_relu_vjp),
        cmocka_unit_test(test_sigmoid_vjp),
        cmocka_unit_test(test_tanh_vjp),
        cmocka_unit_test(test_erf_vjp),
        cmocka_unit_test(test_rsqrt_vjp),
        cmocka_unit_test(test_cast_f64_f64_vjp),
        cmocka_unit_test(test_cast_f64_f32_f64_vjp),
        cmocka_unit_test(test_add_vjp_broadcast),
        cmocka_unit_test(test_sub_vjp_broadcast),
        cmocka_unit_test(test_mul_vjp_broadcast),
        cmocka_unit_test(test_div_vjp_broadcast),
        cmocka_unit_test(test_max_vjp_broadcast),
        cmocka_unit_test(test_min_vjp_broadcast),
        cmocka_unit_test(test_pow_vjp_broadcast),
        cmocka_unit_test(test_add_vjp_same_shape_and_scalar),
        cmocka_unit_test(test_pow_vjp_const_exponent_2),
        cmocka_unit_test(test_pow_vjp_const_exponent_3),
        cmocka_unit_test(test_pow_vjp_const_exponent_half),
        cmocka_unit_test(test_pow_vjp_const_exponent_1),
        cmocka_unit_test(test_select_vjp_broadcast),
        cmocka_unit_test(test_vjp_sums_contributions_of_reused_value),
        cmocka_unit_test(test_reduce_sum_vjp_middle_axis),
        cmocka_unit_test(test_reduce_sum_vjp_keepdim),
        cmocka_unit_test(test_reduce_sum_vjp_batch_axis),
        cmocka_unit_test(test_reduce_sum_vjp_all_axes),
        cmocka_unit_test(test_reduce_mean_vjp_batch_axis),
        cmocka_unit_test(test_reduce_mean_vjp_last_axes),
        cmocka_unit_test(test_reduce_mean_vjp_keepdim),
        cmocka_unit_test(test_reduce_max_vjp_last_axis),
        cmocka_unit_test(test_reduce_max_vjp_keepdim),
        cmocka_unit_test(test_reduce_max_vjp_batch_axis),
        cmocka_unit_test(test_reduce_min_vjp_last_axis),
        cmocka_unit_test(test_reduce_min_vjp_keepdim),
        cmocka_unit_test(test_reduce_min_vjp_batch_axis),
        cmocka_unit_test(test_reduce_min_vjp_two_axes),
        cmocka_unit_test(test_matmul_vjp),
        cmocka_unit_test(test_matmul_vjp_transpose_a),
        cmocka_unit_test(test_matmul_vjp_transpose_b),
        cmocka_unit_test(test_matmul_vjp_transpose_both),
        cmocka_unit_test(test_matmul_vjp_batched),
        cmocka_unit_test(test_matmul_vjp_batched_transpose_a),
        cmocka_unit_test(test_matmul_vjp_batched_transpose_b),
        cmocka_unit_test(test_matmul_vjp_batched_transpose_both),
        cmocka_unit_test(test_matmul_vjp_broadcast_batch),
        cmocka_unit_test(test_matmul_vjp_linear_contracts_batch),
        cmocka_unit_test(test_matmul_vjp_broadcast_batches),
        cmocka_unit_test(test_matmul_vjp_broadcast_batches_transpose_a),
        cmocka_unit_test(test_matmul_vjp_broadcast_batches_transpose_b),
        cmocka_unit_test(test_matmul_vjp_broadcast_batches_transpose_both),
        cmocka_unit_test(test_matmul_vjp_broadcast_left_2d),
        cmocka_unit_test(test_matmul_vjp_shared_weight_folded_rows),
        cmocka_unit_test(test_matmul_vjp_shared_weight_batch_n),
        cmocka_unit_test(test_conv2d_vjp),
        cmocka_unit_test(test_conv2d_vjp_stride_pad_dilation_groups),
        cmocka_unit_test(test_conv2d_vjp_weight_only),
        cmocka_unit_test(test_max_pool2d_vjp),
        cmocka_unit_test(test_max_pool2d_vjp_ceil_mode_padding),
        cmocka_unit_test(test_max_pool2d_vjp_overlapping_dilated),
        cmocka_unit_test(test_avg_pool2d_vjp),
        cmocka_unit_test(test_avg_pool2d_vjp_ceil_mode),
        cmocka_unit_test(test_avg_pool2d_vjp_ceil_mode_exclude_pad),
        cmocka_unit_test(test_adaptive_avg_pool2d_vjp),
        cmocka_unit_test(test_slice_vjp_steps),
        cmocka_unit_test(test_slice_vjp_overlapping_slices_add),
        cmocka_unit_test(test_pad_vjp_interior_and_value),
        cmocka_unit_test(test_concat_vjp_three_inputs),
        cmocka_unit_test(test_concat_vjp_last_axis_mixed),
        cmocka_unit_test(test_gather_vjp_repeats_and_out_of_range),
        cmocka_unit_test(test_gather_vjp_last_axis_i32),
        cmocka_unit_test(test_scatter_add_vjp),
        cmocka_unit_test(test_reshape_vjp),
        cmocka_unit_test(test_transpose_vjp),
        cmocka_unit_test(test_broadcast_vjp),
        cmocka_unit_test(test_mlp_cross_entropy_vjp),
        cmocka_unit_test(test_cnn_batchnorm_cross_entropy_vjp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
