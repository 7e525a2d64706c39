/* test_ir_ops2.c: the primitives of the layers issue in the IR: their shape rules and the messages of the
   broken ones (with the batch dim N where it may and may not go), their text form read back exactly, and
   the reference interpreter on small cases computed by hand. */
#include "support.h"

#include <math.h>
#include <string.h>

#include "../../ir/ir.h"
#include "../../runtime/lathe_kern.h"

#define N IR_DIM_N
#define VALUES(...) (double[]){__VA_ARGS__}, (int)(sizeof((double[]){__VA_ARGS__}) / sizeof(double))

static const Loc L = {"t.lathe", 3, 7};

typedef struct Fix {
    IBinding bind[8];
    int nbind;
} Fix;

static Fix F;

static int setup(void **state)
{
    memset(&F, 0, sizeof F);
    ts_open("t", NULL);
    return 0;
}

static Node *in(const char *name, DType t, Shape s)
{
    return ir_input(ts.g, L, name, t, s);
}

static void assert_type(const Node *n, const char *want)
{
    char buf[256];
    if (!n)
        fail_msg("no node: %s", diag_first_message(ts.d));
    assert_string_equal(ir_type_str(n->dtype, &n->shape, buf, sizeof buf), want);
}

static void assert_error(const Node *n, const char *want)
{
    assert_null(n);
    assert_int_equal(diag_error_count(ts.d), 1);
    assert_string_equal(diag_first_message(ts.d), want);
    assert_int_equal(diag_first_loc(ts.d).line, 3);
    assert_int_equal(diag_first_loc(ts.d).col, 7);
}

/* The shape rule alone, for ops whose wrapper takes no Diag (a failure there is an internal error). */
static void assert_infer_error(Op op, int nin, Node *const *inputs, const Attr *a, const char *want)
{
    char err[512];
    DType dt;
    Shape sh;
    assert_false(ir_infer(op, nin, inputs, a, &dt, &sh, err, sizeof err));
    assert_string_equal(err, want);
}

static Node *window(Op op, int nin, Node *const *inputs, Attr a)
{
    return ir_window(ts.g, ts.d, L, op, nin, inputs, &a);
}

#define CONV_ATTR(s, p, dl, g) ((Attr){.stride = {s, s}, .pad = {p, p}, .dilation = {dl, dl}, .groups = g})
#define POOL_ATTR(k, s, p) ((Attr){.window = {k, k}, .stride = {s, s}, .pad = {p, p}, .dilation = {1, 1}})

/* ---------------------------------------------------------------- shape rules */

static void test_erf_rsqrt_need_float(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, N, 3));
    assert_type(ir_unary(ts.g, ts.d, L, OP_RSQRT, ir_unary(ts.g, ts.d, L, OP_ERF, x)), "f32[N,3]");
    Node *i = in("i", DT_I64, ts_shape(1, 3));
    assert_error(ir_unary(ts.g, ts.d, L, OP_ERF, i), "erf: needs a float dtype, not i64[3]");
}

static void test_reduce_min_and_argmin_shapes(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(3, N, 3, 4));
    assert_type(ir_reduce(ts.g, ts.d, L, OP_REDUCE_MIN, x, 6, false), "f32[N]");
    assert_type(ir_reduce(ts.g, ts.d, L, OP_REDUCE_MIN, x, 2, true), "f32[N,1,4]");
    assert_type(ir_argmin(ts.g, ts.d, L, x, 2, false), "i64[N,3]");
    assert_type(ir_argmin(ts.g, ts.d, L, x, 1, true), "i64[N,1,4]");
    assert_error(ir_argmin(ts.g, ts.d, L, x, 3, false), "argmin: axis 3 out of range for f32[N,3,4]");
}

static void test_matmul_broadcasts_batch_dims(void **state)
{
    Node *a = in("a", DT_F32, ts_shape(4, 2, 1, 3, 4));
    Node *b = in("b", DT_F32, ts_shape(3, 5, 4, 2));
    assert_type(ir_matmul(ts.g, ts.d, L, a, b, false, false), "f32[2,5,3,2]");
    Node *q = in("q", DT_F32, ts_shape(4, N, 4, 7, 16));
    assert_type(ir_matmul(ts.g, ts.d, L, q, q, false, true), "f32[N,4,7,7]");
    Node *w = in("w", DT_F32, ts_shape(2, 16, 8));
    assert_type(ir_matmul(ts.g, ts.d, L, q, w, false, false), "f32[N,4,7,8]");
    Node *one = in("one", DT_F32, ts_shape(4, 1, 4, 16, 7));
    assert_type(ir_matmul(ts.g, ts.d, L, q, one, false, false), "f32[N,4,7,7]");
    assert_int_equal(diag_error_count(ts.d), 0);
}

static void test_matmul_batch_n_against_constant(void **state)
{
    Node *a = in("a", DT_F32, ts_shape(3, N, 3, 4));
    Node *b = in("b", DT_F32, ts_shape(3, 8, 4, 2));
    assert_error(ir_matmul(ts.g, ts.d, L, a, b, false, false),
                 "matmul: batch dimensions differ: f32[N,3,4] @ f32[8,4,2]");
}

static void test_iota_shape_and_bad_axis(void **state)
{
    assert_type(ir_iota(ts.g, L, DT_I64, ts_shape(2, 4, 4), 1), "i64[4,4]");
    assert_type(ir_iota(ts.g, L, DT_F32, ts_shape(2, N, 3), 0), "f32[N,3]");
    Attr a = {.dtype = DT_I64, .shape = ts_shape(2, 4, 4), .axis = 2};
    assert_infer_error(OP_IOTA, 0, NULL, &a, "iota: axis 2 out of range for i64[4,4]");
}

static void test_random_shape_and_seed_dtype(void **state)
{
    Node *seed = in("seed", DT_I64, ir_shape_scalar()), *step = in("step", DT_I64, ir_shape_scalar());
    Node *r = ir_random(ts.g, ts.d, L, seed, step, ts_shape(2, N, 16), 3);
    assert_type(r, "f32[N,16]");
    assert_int_equal(r->attr.stream, 3);
    Node *f = in("f", DT_F32, ir_shape_scalar());
    assert_error(ir_random(ts.g, ts.d, L, f, step, ts_shape(1, 4), 0),
                 "random: seed and step must be i64[], not f32[] and i64[]");
}

static void test_conv2d_output_sizes(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(4, N, 3, 32, 32));
    Node *w = in("w", DT_F32, ts_shape(4, 64, 3, 5, 5));
    assert_type(window(OP_CONV2D, 2, (Node *[]){x, w}, CONV_ATTR(1, 0, 1, 1)), "f32[N,64,28,28]");
    /* (32 + 4 - 4 - 1) / 2 + 1 = 16 */
    assert_type(window(OP_CONV2D, 2, (Node *[]){x, w}, CONV_ATTR(2, 2, 1, 1)), "f32[N,64,16,16]");
    /* dilation 2: the 5x5 window spans 9 */
    assert_type(window(OP_CONV2D, 2, (Node *[]){x, w}, CONV_ATTR(1, 0, 2, 1)), "f32[N,64,24,24]");
    Node *xg = in("xg", DT_F32, ts_shape(4, N, 4, 8, 8)), *wg = in("wg", DT_F32, ts_shape(4, 6, 2, 3, 3));
    Node *c = window(OP_CONV2D, 2, (Node *[]){xg, wg}, CONV_ATTR(1, 1, 1, 2));
    assert_type(c, "f32[N,6,8,8]");
    assert_int_equal(c->attr.groups, 2);
    assert_int_equal(c->attr.window[0], 0); /* conv2d takes its window from the weight */
}

static void test_conv2d_channel_mismatch_message(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(4, N, 3, 32, 32));
    Node *w = in("w", DT_F32, ts_shape(4, 64, 1, 5, 5));
    assert_error(window(OP_CONV2D, 2, (Node *[]){x, w}, CONV_ATTR(1, 0, 1, 1)),
                 "conv2d: input f32[N,3,32,32] has 3 channels but weight f32[64,1,5,5] expects 1 (groups 1)");
}

static void test_conv2d_groups_must_divide(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(4, N, 4, 8, 8)), *w = in("w", DT_F32, ts_shape(4, 6, 2, 3, 3));
    assert_error(window(OP_CONV2D, 2, (Node *[]){x, w}, CONV_ATTR(1, 0, 1, 3)),
                 "conv2d: groups 3 must divide the channels of input f32[N,4,8,8] and weight f32[6,2,3,3]");
}

static void test_conv2d_n_only_in_dim0(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(4, 2, N, 8, 8)), *w = in("w", DT_F32, ts_shape(4, 6, 2, 3, 3));
    assert_error(window(OP_CONV2D, 2, (Node *[]){x, w}, CONV_ATTR(1, 0, 1, 1)),
                 "conv2d: input f32[2,N,8,8] has the batch dim N outside dim 0");
}

static void test_conv2d_rejects_empty_output_and_zero_stride(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(4, N, 3, 2, 2)), *w = in("w", DT_F32, ts_shape(4, 4, 3, 5, 5));
    assert_error(window(OP_CONV2D, 2, (Node *[]){x, w}, CONV_ATTR(1, 0, 1, 1)),
                 "conv2d: input f32[N,3,2,2] is too small for weight f32[4,3,5,5] (stride [1,1], pad [0,0], "
                 "dilation [1,1])");
    Attr a = CONV_ATTR(1, 0, 1, 1);
    a.stride[0] = 0;
    assert_infer_error(OP_CONV2D, 2, (Node *[]){x, w}, &a, "conv2d: stride [0,1] must be >= 1");
    Node *flat = in("flat", DT_F32, ts_shape(2, N, 784));
    assert_infer_error(OP_CONV2D, 2, (Node *[]){flat, w}, &a,
                       "conv2d: input f32[N,784] must be of rank 4 (N, C, H, W)");
}

static void test_conv2d_backward_shapes(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(4, N, 4, 9, 9)), *w = in("w", DT_F32, ts_shape(4, 6, 2, 3, 3));
    Attr a = CONV_ATTR(2, 1, 1, 2);
    Node *y = window(OP_CONV2D, 2, (Node *[]){x, w}, a);
    assert_type(y, "f32[N,6,5,5]");
    a.shape = x->shape;
    assert_type(window(OP_CONV2D_BWD_INPUT, 2, (Node *[]){y, w}, a), "f32[N,4,9,9]");
    a.shape = w->shape;
    assert_type(window(OP_CONV2D_BWD_WEIGHT, 2, (Node *[]){x, y}, a), "f32[6,2,3,3]");
    Node *bad = in("gy", DT_F32, ts_shape(4, N, 6, 4, 5));
    a.shape = x->shape;
    assert_error(window(OP_CONV2D_BWD_INPUT, 2, (Node *[]){bad, w}, a),
                 "conv2d_bwd_input: gradient f32[N,6,4,5] does not match the forward's output f32[N,6,5,5]");
}

static void test_pool_output_sizes_with_ceil_mode(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(4, N, 32, 28, 28));
    assert_type(window(OP_MAX_POOL2D, 1, &x, POOL_ATTR(2, 2, 0)), "f32[N,32,14,14]");
    Node *f = in("f", DT_F32, ts_shape(4, N, 1, 5, 5));
    assert_type(window(OP_MAX_POOL2D, 1, &f, POOL_ATTR(2, 2, 0)), "f32[N,1,2,2]");
    Attr a = POOL_ATTR(2, 2, 0);
    a.ceil_mode = true;
    assert_type(window(OP_MAX_POOL2D, 1, &f, a), "f32[N,1,3,3]");
    /* ceil would give 4, but the 4th window would start in the right padding (as PyTorch: 3) */
    a = POOL_ATTR(2, 2, 1);
    a.ceil_mode = true;
    assert_type(window(OP_AVG_POOL2D, 1, &f, a), "f32[N,1,3,3]");
    Node *mp = window(OP_MAX_POOL2D, 1, &x, POOL_ATTR(3, 2, 1));
    assert_type(mp, "f32[N,32,14,14]");
    assert_type(window(OP_MAX_POOL2D_BWD, 2, (Node *[]){x, mp}, POOL_ATTR(3, 2, 1)), "f32[N,32,28,28]");
    a = POOL_ATTR(2, 2, 0);
    a.shape = x->shape;
    Node *ap = window(OP_AVG_POOL2D, 1, &x, a);
    assert_type(window(OP_AVG_POOL2D_BWD, 1, &ap, a), "f32[N,32,28,28]");
    assert_int_equal(ap->attr.dilation[0], 1); /* average pooling's dilation reads as 1 */
}

static void test_pool_pad_at_most_half_window(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(4, N, 1, 8, 8));
    assert_error(window(OP_MAX_POOL2D, 1, &x, POOL_ATTR(3, 1, 2)),
                 "max_pool2d: pad [2,2] must be at most half the window [3,3]");
}

static void test_pool_window_must_be_positive(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(4, N, 1, 8, 8));
    assert_error(window(OP_AVG_POOL2D, 1, &x, POOL_ATTR(0, 1, 0)), "avg_pool2d: window [0,0] must be >= 1");
}

static void test_pool_too_small_input(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(4, N, 1, 2, 8));
    assert_error(window(OP_MAX_POOL2D, 1, &x, POOL_ATTR(3, 1, 0)),
                 "max_pool2d: input f32[N,1,2,8] is too small for window [3,3] (stride [1,1], pad [0,0], "
                 "dilation [1,1])");
}

static void test_adaptive_pool_shapes(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(4, N, 64, 7, 7));
    Node *y = window(OP_ADAPTIVE_AVG_POOL2D, 1, &x, (Attr){.shape = ts_shape(4, N, 64, 1, 1)});
    assert_type(y, "f32[N,64,1,1]");
    assert_type(window(OP_ADAPTIVE_AVG_POOL2D_BWD, 1, &y, (Attr){.shape = x->shape}), "f32[N,64,7,7]");
    assert_error(window(OP_ADAPTIVE_AVG_POOL2D, 1, &x, (Attr){.shape = ts_shape(4, N, 32, 1, 1)}),
                 "adaptive_avg_pool2d: f32[N,64,7,7] and f32[N,32,1,1] differ in batch or channels");
}

static void test_slice_shapes_and_range(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, N, 10));
    assert_type(ir_slice(ts.g, ts.d, L, x, (int64_t[]){0, 1}, (int64_t[]){1, 3}, ts_shape(2, N, 3)), "f32[N,3]");
    assert_type(ir_slice(ts.g, ts.d, L, x, (int64_t[]){0, 10}, (int64_t[]){1, 1}, ts_shape(2, N, 0)), "f32[N,0]");
    assert_error(ir_slice(ts.g, ts.d, L, x, (int64_t[]){0, 1}, (int64_t[]){1, 3}, ts_shape(2, N, 4)),
                 "slice: dim 1 of f32[N,10] to f32[N,4]: start 1, step 3 go out of range");
}

static void test_slice_keeps_n_whole(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, N, 10));
    assert_error(ir_slice(ts.g, ts.d, L, x, (int64_t[]){1, 0}, (int64_t[]){1, 1}, ts_shape(2, N, 10)),
                 "slice: dim 0 of f32[N,10] to f32[N,10]: the batch dim N must stay whole (start 0, step 1)");
}

static void test_slice_step_must_be_positive(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(1, 10));
    assert_error(ir_slice(ts.g, ts.d, L, x, (int64_t[]){0}, (int64_t[]){0}, ts_shape(1, 2)),
                 "slice: start 0 and step 0 of dim 0 must be >= 0 and >= 1");
}

static void test_pad_shapes_and_range(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, N, 3));
    Node *p = ir_pad(ts.g, ts.d, L, x, (int64_t[]){0, 1}, (int64_t[]){1, 3}, ts_shape(2, N, 8), -INFINITY);
    assert_type(p, "f32[N,8]");
    assert_true(isinf(p->attr.value) && p->attr.value < 0);
    assert_error(ir_pad(ts.g, ts.d, L, x, (int64_t[]){0, 1}, (int64_t[]){1, 3}, ts_shape(2, N, 7), 0),
                 "pad: dim 1 of f32[N,3] to f32[N,7]: start 1, step 3 go out of range");
}

static void test_concat_shapes(void **state)
{
    Node *a = in("a", DT_F32, ts_shape(2, N, 2)), *b = in("b", DT_F32, ts_shape(2, N, 3));
    Node *c = in("c", DT_F32, ts_shape(2, N, 1));
    assert_type(ir_concat(ts.g, ts.d, L, 3, (Node *[]){a, b, c}, 1), "f32[N,6]");
    assert_type(ir_concat(ts.g, ts.d, L, 1, &a, 1), "f32[N,2]");
}

static void test_concat_never_along_n(void **state)
{
    Node *a = in("a", DT_F32, ts_shape(2, N, 2));
    assert_error(ir_concat(ts.g, ts.d, L, 2, (Node *[]){a, a}, 0),
                 "concat: cannot concatenate along the batch dim N: f32[N,2] (axis 0)");
}

static void test_concat_other_dims_must_agree(void **state)
{
    Node *a = in("a", DT_F32, ts_shape(2, N, 2)), *b = in("b", DT_F32, ts_shape(2, 3, 2));
    assert_error(ir_concat(ts.g, ts.d, L, 2, (Node *[]){a, b}, 1),
                 "concat: dims other than axis 1 differ: f32[N,2] and f32[3,2]");
}

static void test_concat_at_most_max_inputs(void **state)
{
    Node *a = in("a", DT_F32, ts_shape(1, 2));
    Node *xs[IR_MAX_CONCAT + 1];
    for (int i = 0; i <= IR_MAX_CONCAT; i++)
        xs[i] = a;
    assert_type(ir_concat(ts.g, ts.d, L, IR_MAX_CONCAT, xs, 0), "f32[32]");
    assert_error(ir_concat(ts.g, ts.d, L, IR_MAX_CONCAT + 1, xs, 0), "concat: takes 1 to 16 inputs, not 17");
}

static void test_gather_shapes(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, N, 5)), *i = in("i", DT_I64, ts_shape(2, N, 3));
    assert_type(ir_gather(ts.g, ts.d, L, x, i, 1), "f32[N,3]");
    Node *i32 = in("i32", DT_I32, ts_shape(2, N, 9));
    assert_type(ir_gather(ts.g, ts.d, L, x, i32, 1), "f32[N,9]");
    Node *f = in("f", DT_F32, ts_shape(2, N, 3));
    assert_error(ir_gather(ts.g, ts.d, L, x, f, 1), "gather: index f32[N,3] must be i32 or i64");
}

static void test_gather_n_must_agree(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, 8, 5)), *i = in("i", DT_I64, ts_shape(2, N, 3));
    assert_error(ir_gather(ts.g, ts.d, L, x, i, 1),
                 "gather: index i64[N,3] and f32[8,5] must agree on the batch dim N (dim 0)");
}

static void test_gather_index_larger_than_input(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, 2, 5)), *i = in("i", DT_I64, ts_shape(2, 3, 1));
    assert_error(ir_gather(ts.g, ts.d, L, x, i, 1), "gather: index i64[3,1] is larger than f32[2,5] in dim 0");
}

static void test_scatter_add_shapes(void **state)
{
    Node *i = in("i", DT_I64, ts_shape(2, N, 3)), *src = in("src", DT_F64, ts_shape(2, N, 3));
    assert_type(ir_scatter_add(ts.g, ts.d, L, i, src, 1, ts_shape(2, N, 5)), "f64[N,5]");
    Node *other = in("other", DT_F64, ts_shape(2, N, 2));
    assert_error(ir_scatter_add(ts.g, ts.d, L, i, other, 1, ts_shape(2, N, 5)),
                 "scatter_add: index i64[N,3] and source f64[N,2] differ in shape");
}

static void test_invalid_rank_is_reported(void **state)
{
    Node *seed = in("seed", DT_I64, ir_shape_scalar());
    Attr a = {.shape = {.rank = IR_MAX_RANK + 1}};
    assert_infer_error(OP_RANDOM, 2, (Node *[]){seed, seed}, &a, "random: invalid shape f32[rank 9]");
}

/* ---------------------------------------------------------------- text form */

static const char *layers_text =
    "graph g {\n"
    "  %0 = input \"x\" : f32[N,3,8,8]\n"
    "  %1 = param \"w\" : f32[4,3,3,3]\n"
    "  %2 = conv2d %0, %1 {stride=[2,2], pad=[1,1], dilation=[1,1], groups=1} : f32[N,4,4,4]\n"
    "  %3 = conv2d_bwd_input %2, %1 {stride=[2,2], pad=[1,1], dilation=[1,1], groups=1} : f32[N,3,8,8]\n"
    "  %4 = conv2d_bwd_weight %0, %2 {stride=[2,2], pad=[1,1], dilation=[1,1], groups=1} : f32[4,3,3,3]\n"
    "  %5 = max_pool2d %0 {window=[2,2], stride=[2,2], pad=[0,0], dilation=[1,1], ceil_mode} : f32[N,3,4,4]\n"
    "  %6 = max_pool2d_bwd %0, %5 {window=[2,2], stride=[2,2], pad=[0,0], dilation=[1,1], ceil_mode} : "
    "f32[N,3,8,8]\n"
    "  %7 = avg_pool2d %0 {window=[3,3], stride=[1,1], pad=[1,1], count_include_pad} : f32[N,3,8,8]\n"
    "  %8 = avg_pool2d_bwd %7 {window=[3,3], stride=[1,1], pad=[1,1], count_include_pad} : f32[N,3,8,8]\n"
    "  %9 = adaptive_avg_pool2d %0 : f32[N,3,2,2]\n"
    "  %10 = adaptive_avg_pool2d_bwd %9 : f32[N,3,8,8]\n"
    "  %11 = reshape %0 : f32[N,192]\n"
    "  %12 = slice %11 {start=[0,1], step=[1,2]} : f32[N,95]\n"
    "  %13 = pad %12 {start=[0,1], step=[1,2], value=-inf} : f32[N,192]\n"
    "  %14 = pad %12 {start=[0,0], step=[1,1], value=inf} : f32[N,96]\n"
    "  %15 = concat %11, %13, %11 {axis=1} : f32[N,576]\n"
    "  %16 = iota {axis=0} : i64[4,4]\n"
    "  %17 = input \"seed\" : i64[]\n"
    "  %18 = input \"step\" : i64[]\n"
    "  %19 = random %17, %18 {stream=3} : f32[N,16]\n"
    "  %20 = input \"idx\" : i32[N,2]\n"
    "  %21 = gather %11, %20 {axis=1} : f32[N,2]\n"
    "  %22 = scatter_add %20, %21 {axis=1} : f32[N,192]\n"
    "  %23 = erf %21 : f32[N,2]\n"
    "  %24 = rsqrt %23 : f32[N,2]\n"
    "  %25 = reduce_min %24 {axes=[1], keepdim} : f32[N,1]\n"
    "  %26 = argmin %24 {axis=1} : i64[N]\n"
    "  %27 = input \"b\" : f32[2,1,3,4]\n"
    "  %28 = param \"m\" : f32[5,4,2]\n"
    "  %29 = matmul %27, %28 : f32[2,5,3,2]\n"
    "  %30 = const -inf : f32[]\n"
    "  %31 = const nan : f32[]\n"
    "  output \"a\" = %3\n"
    "  output \"b\" = %4\n"
    "}\n";

static char *print_graph(const Graph *g)
{
    TsCapture c;
    FILE *f = ts_capture_open(&c);
    ir_print(f, g);
    return ts_capture_close(&c);
}

static void test_text_round_trip_of_every_new_op(void **state)
{
    Graph *g = ts_parse_graph("t.ir", layers_text);
    assert_string_equal(print_graph(g), layers_text);
    assert_int_equal(g->nodes[2]->attr.stride[1], 2);
    assert_true(g->nodes[5]->attr.ceil_mode);
    assert_true(g->nodes[7]->attr.count_include_pad);
    assert_int_equal(g->nodes[12]->attr.step[1], 2);
    assert_true(isinf(g->nodes[13]->attr.value));
    assert_int_equal(g->nodes[15]->ninputs, 3);
    assert_int_equal(g->nodes[19]->attr.stream, 3);
    assert_true(isnan(g->nodes[31]->attr.value));
}

/* What printing always writes may be left out by hand: dilation and groups 1, a pool's stride its window, a
   convolution's stride 1, and start 0 and step 1 of slice and pad. */
static void test_parse_fills_defaults(void **state)
{
    Graph *g = ts_parse_graph("t.ir", "graph g {\n"
                                      "  %0 = input \"x\" : f32[N,3,8,8]\n"
                                      "  %1 = param \"w\" : f32[4,3,3,3]\n"
                                      "  %2 = conv2d %0, %1 {pad=[1,1]} : f32[N,4,8,8]\n"
                                      "  %3 = max_pool2d %0 {window=[2,2]} : f32[N,3,4,4]\n"
                                      "  %4 = slice %0 {start=[0,0,1,0]} : f32[N,3,7,8]\n"
                                      "}\n");
    assert_int_equal(g->nodes[2]->attr.groups, 1);
    assert_int_equal(g->nodes[2]->attr.dilation[1], 1);
    assert_int_equal(g->nodes[3]->attr.stride[0], 2);
    assert_int_equal(g->nodes[4]->attr.step[2], 1);
}

static void test_parse_error_start_length(void **state)
{
    Graph **gs;
    assert_int_equal(ir_parse(ts.a, ts.d, "t.ir",
                              "graph g {\n"
                              "  %0 = input \"x\" : f32[N,10]\n"
                              "  %1 = slice %0 {start=[0]} : f32[N,10]\n"
                              "}\n",
                              &gs),
                     0);
    assert_string_equal(diag_first_message(ts.d), "start has 1 entries for an operand of rank 2");
    assert_int_equal(diag_first_loc(ts.d).line, 3);
}

static void test_parse_error_attribute_of_other_op(void **state)
{
    Graph **gs;
    assert_int_equal(ir_parse(ts.a, ts.d, "t.ir",
                              "graph g {\n"
                              "  %0 = input \"x\" : f32[N,3,8,8]\n"
                              "  %1 = avg_pool2d %0 {window=[2,2], dilation=[1,1]} : f32[N,3,4,4]\n"
                              "}\n",
                              &gs),
                     0);
    assert_string_equal(diag_first_message(ts.d), "avg_pool2d takes no attribute 'dilation'");
}

/* ---------------------------------------------------------------- interpreter */

/* An input named name, bound to the given concrete shape and values. */
static Node *bound(const char *name, DType t, Shape decl, Shape conc, const double *v, int nv)
{
    assert_int_equal(ir_shape_numel(&conc, 0), nv);
    double *data = arena_alloc(ts.a, sizeof(double) * (size_t)(nv + 1));
    memcpy(data, v, sizeof(double) * (size_t)nv);
    F.bind[F.nbind++] = (IBinding){name, {conc, data}};
    return ir_input(ts.g, L, name, t, decl);
}

/* Runs the graph with `out` as its only output and returns its values, checking the shape. */
static double *run(Node *out, int64_t n, Shape shape)
{
    if (!out)
        fail_msg("no node: %s", diag_first_message(ts.d));
    ts.g->noutputs = 0;
    ir_add_output(ts.g, "out", out, false);
    assert_true(ir_verify(ts.g, ts.d));
    ITensor *r = ir_interp(ts.a, ts.g, n, F.bind, F.nbind, ts.d);
    if (!r)
        fail_msg("interp failed: %s", diag_first_message(ts.d));
    assert_true(ir_shape_eq(&r[0].shape, &shape));
    return r[0].data;
}

static void expect(Node *out, int64_t n, Shape shape, const double *want, int nwant)
{
    double *got = run(out, n, shape);
    assert_int_equal(ir_shape_numel(&shape, 0), nwant);
    for (int i = 0; i < nwant; i++)
        if (isnan(want[i]) ? !isnan(got[i]) : got[i] != want[i])
            fail_msg("element %d: got %.17g, want %.17g", i, got[i], want[i]);
}

static void test_interp_erf_rsqrt(void **state)
{
    Node *x = bound("x", DT_F64, ts_shape(1, 3), ts_shape(1, 3), VALUES(0, 1, 0.25));
    double *e = run(ir_unary(ts.g, ts.d, L, OP_ERF, x), 0, ts_shape(1, 3));
    assert_true(e[0] == 0);
    assert_true(fabs(e[1] - 0.8427007929497149) < 1e-15);
    assert_true(fabs(e[2] - 0.27632639016823696) < 1e-15);
    expect(ir_unary(ts.g, ts.d, L, OP_RSQRT, x), 0, ts_shape(1, 3), VALUES(INFINITY, 1, 2));
}

static void test_interp_reduce_min_nan_wins(void **state)
{
    Node *x = bound("x", DT_F64, ts_shape(2, 2, 3), ts_shape(2, 2, 3), VALUES(3, 1, 2, -1, 5, NAN));
    expect(ir_reduce(ts.g, ts.d, L, OP_REDUCE_MIN, x, 2, false), 0, ts_shape(1, 2), VALUES(1, NAN));
    expect(ir_reduce(ts.g, ts.d, L, OP_REDUCE_MIN, x, 1, true), 0, ts_shape(2, 1, 3), VALUES(-1, 1, NAN));
}

static void test_interp_argmin_first_minimum(void **state)
{
    Node *x = bound("x", DT_F32, ts_shape(2, 2, 3), ts_shape(2, 2, 3), VALUES(3, 1, 1, 2, -4, -4));
    expect(ir_argmin(ts.g, ts.d, L, x, 1, false), 0, ts_shape(1, 2), VALUES(1, 1));
    expect(ir_argmin(ts.g, ts.d, L, x, 0, true), 0, ts_shape(2, 1, 3), VALUES(1, 1, 1));
}

static void test_interp_iota(void **state)
{
    expect(ir_iota(ts.g, L, DT_I64, ts_shape(2, 2, 3), 1), 0, ts_shape(2, 2, 3), VALUES(0, 1, 2, 0, 1, 2));
    expect(ir_iota(ts.g, L, DT_F32, ts_shape(2, 2, 3), 0), 0, ts_shape(2, 2, 3), VALUES(0, 0, 0, 1, 1, 1));
}

static void test_philox_known_answer(void **state)
{
    assert_true(lathe_philox_uniform(0, 0, 0, 0) == (float)0x6627e8 / 16777216.0f);
}

static void test_interp_random_is_philox(void **state)
{
    Node *seed = bound("seed", DT_I64, ir_shape_scalar(), ir_shape_scalar(), VALUES(5));
    Node *step = bound("step", DT_I64, ir_shape_scalar(), ir_shape_scalar(), VALUES(7));
    double *r = run(ir_random(ts.g, ts.d, L, seed, step, ts_shape(2, N, 3), 2), 2, ts_shape(2, 2, 3));
    for (int i = 0; i < 6; i++) {
        assert_true(r[i] == lathe_philox_uniform(5, 2, 7, (uint64_t)i));
        assert_true(r[i] >= 0 && r[i] < 1);
    }
    assert_true(r[0] != r[1]);
}

static void test_interp_random_seed_zero_known_answer(void **state)
{
    Node *seed = bound("seed", DT_I64, ir_shape_scalar(), ir_shape_scalar(), VALUES(0));
    Node *step = bound("step", DT_I64, ir_shape_scalar(), ir_shape_scalar(), VALUES(0));
    expect(ir_random(ts.g, ts.d, L, seed, step, ts_shape(1, 1), 0), 0, ts_shape(1, 1),
           VALUES(0x6627e8 / 16777216.0));
}

static void test_interp_matmul_broadcast_small(void **state)
{
    /* A [2,1,1,2] = {[1,2]}, {[3,4]}; B [3,2,1] = [1,0]^T, [0,1]^T, [1,1]^T: out[i,j] = A[i] . B[j] */
    Node *a = bound("a", DT_F64, ts_shape(4, 2, 1, 1, 2), ts_shape(4, 2, 1, 1, 2), VALUES(1, 2, 3, 4));
    Node *b = bound("b", DT_F64, ts_shape(3, 3, 2, 1), ts_shape(3, 3, 2, 1), VALUES(1, 0, 0, 1, 1, 1));
    expect(ir_matmul(ts.g, ts.d, L, a, b, false, false), 0, ts_shape(4, 2, 3, 1, 1), VALUES(1, 2, 3, 3, 4, 7));
    /* the same through transposes: A^T of [2,1,2,1], B^T of [3,1,2] */
    Node *at = bound("at", DT_F64, ts_shape(4, 2, 1, 2, 1), ts_shape(4, 2, 1, 2, 1), VALUES(1, 2, 3, 4));
    Node *bt = bound("bt", DT_F64, ts_shape(3, 3, 1, 2), ts_shape(3, 3, 1, 2), VALUES(1, 0, 0, 1, 1, 1));
    expect(ir_matmul(ts.g, ts.d, L, at, bt, true, true), 0, ts_shape(4, 2, 3, 1, 1), VALUES(1, 2, 3, 3, 4, 7));
}

static void test_interp_matmul_broadcast_2_1_3_4_by_5_4_2(void **state)
{
    double av[24], bv[40];
    for (int i = 0; i < 24; i++)
        av[i] = i % 7 - 3;
    for (int i = 0; i < 40; i++)
        bv[i] = i % 5 - 1;
    Node *a = bound("a", DT_F64, ts_shape(4, 2, 1, 3, 4), ts_shape(4, 2, 1, 3, 4), av, 24);
    Node *b = bound("b", DT_F64, ts_shape(3, 5, 4, 2), ts_shape(3, 5, 4, 2), bv, 40);
    double *r = run(ir_matmul(ts.g, ts.d, L, a, b, false, false), 0, ts_shape(4, 2, 5, 3, 2));
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 5; j++)
            for (int m = 0; m < 3; m++)
                for (int p = 0; p < 2; p++) {
                    double s = 0;
                    for (int k = 0; k < 4; k++)
                        s += av[i * 12 + m * 4 + k] * bv[j * 8 + k * 2 + p];
                    assert_true(r[((i * 5 + j) * 3 + m) * 2 + p] == s);
                }
}

static void test_interp_slice_with_steps(void **state)
{
    Node *x = bound("x", DT_F32, ts_shape(2, N, 5), ts_shape(2, 2, 5), VALUES(0, 1, 2, 3, 4, 5, 6, 7, 8, 9));
    expect(ir_slice(ts.g, ts.d, L, x, (int64_t[]){0, 1}, (int64_t[]){1, 2}, ts_shape(2, N, 2)), 2,
           ts_shape(2, 2, 2), VALUES(1, 3, 6, 8));
    Node *c = bound("c", DT_I32, ts_shape(2, 2, 5), ts_shape(2, 2, 5), VALUES(0, 1, 2, 3, 4, 5, 6, 7, 8, 9));
    expect(ir_slice(ts.g, ts.d, L, c, (int64_t[]){1, 0}, (int64_t[]){1, 3}, ts_shape(2, 1, 2)), 2,
           ts_shape(2, 1, 2), VALUES(5, 8));
}

static void test_interp_pad_with_steps(void **state)
{
    Node *x = bound("x", DT_F32, ts_shape(2, 1, 2), ts_shape(2, 1, 2), VALUES(7, 8));
    expect(ir_pad(ts.g, ts.d, L, x, (int64_t[]){1, 1}, (int64_t[]){1, 2}, ts_shape(2, 3, 5), -1), 0,
           ts_shape(2, 3, 5), VALUES(-1, -1, -1, -1, -1, -1, 7, -1, 8, -1, -1, -1, -1, -1, -1));
    expect(ir_pad(ts.g, ts.d, L, x, (int64_t[]){0, 0}, (int64_t[]){1, 1}, ts_shape(2, 1, 3), -INFINITY), 0,
           ts_shape(2, 1, 3), VALUES(7, 8, -INFINITY));
}

static void test_interp_concat_of_three(void **state)
{
    Node *a = bound("a", DT_F64, ts_shape(2, N, 1), ts_shape(2, 2, 1), VALUES(1, 2));
    Node *b = bound("b", DT_F64, ts_shape(2, N, 2), ts_shape(2, 2, 2), VALUES(3, 4, 5, 6));
    Node *c = bound("c", DT_F64, ts_shape(2, N, 1), ts_shape(2, 2, 1), VALUES(7, 8));
    expect(ir_concat(ts.g, ts.d, L, 3, (Node *[]){a, b, c}, 1), 2, ts_shape(2, 2, 4),
           VALUES(1, 3, 4, 7, 2, 5, 6, 8));
    Node *d = bound("d", DT_F64, ts_shape(2, 1, 2), ts_shape(2, 1, 2), VALUES(9, 10));
    Node *e = bound("e", DT_F64, ts_shape(2, 2, 2), ts_shape(2, 2, 2), VALUES(11, 12, 13, 14));
    expect(ir_concat(ts.g, ts.d, L, 3, (Node *[]){d, e, d}, 0), 2, ts_shape(2, 4, 2),
           VALUES(9, 10, 11, 12, 13, 14, 9, 10));
}

static void test_interp_gather_out_of_range_reads_zero(void **state)
{
    Node *x = bound("x", DT_F32, ts_shape(2, 2, 3), ts_shape(2, 2, 3), VALUES(10, 11, 12, 20, 21, 22));
    Node *i = bound("i", DT_I64, ts_shape(2, 2, 2), ts_shape(2, 2, 2), VALUES(2, 0, -1, 3));
    expect(ir_gather(ts.g, ts.d, L, x, i, 1), 0, ts_shape(2, 2, 2), VALUES(12, 10, 0, 0));
    Node *j = bound("j", DT_I32, ts_shape(2, 1, 3), ts_shape(2, 1, 3), VALUES(1, 0, 5));
    expect(ir_gather(ts.g, ts.d, L, x, j, 0), 0, ts_shape(2, 1, 3), VALUES(20, 11, 0));
}

static void test_interp_scatter_add_out_of_range_adds_nothing(void **state)
{
    Node *i = bound("i", DT_I64, ts_shape(2, 2, 2), ts_shape(2, 2, 2), VALUES(0, 0, 2, 7));
    Node *s = bound("s", DT_F64, ts_shape(2, 2, 2), ts_shape(2, 2, 2), VALUES(1, 2, 3, 4));
    expect(ir_scatter_add(ts.g, ts.d, L, i, s, 1, ts_shape(2, 2, 3)), 0, ts_shape(2, 2, 3),
           VALUES(3, 0, 0, 0, 0, 3));
    Node *j = bound("j", DT_I32, ts_shape(2, 1, 2), ts_shape(2, 1, 2), VALUES(-1, 1));
    Node *t = bound("t", DT_F64, ts_shape(2, 1, 2), ts_shape(2, 1, 2), VALUES(5, 6));
    expect(ir_scatter_add(ts.g, ts.d, L, j, t, 0, ts_shape(2, 2, 2)), 0, ts_shape(2, 2, 2), VALUES(0, 0, 0, 6));
}

/* The window family goes to ir_interp_window; one case checks the dispatch and the input shapes it gets. */
static void test_interp_max_pool_dispatch(void **state)
{
    Node *x = bound("x", DT_F32, ts_shape(4, N, 1, 2, 4), ts_shape(4, 1, 1, 2, 4), VALUES(1, 5, 2, 0, 3, 4, 9, 8));
    expect(window(OP_MAX_POOL2D, 1, &x, POOL_ATTR(2, 2, 0)), 1, ts_shape(4, 1, 1, 1, 2), VALUES(5, 9));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, ts_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_erf_rsqrt_need_float),
        T(test_reduce_min_and_argmin_shapes),
        T(test_matmul_broadcasts_batch_dims),
        T(test_matmul_batch_n_against_constant),
        T(test_iota_shape_and_bad_axis),
        T(test_random_shape_and_seed_dtype),
        T(test_conv2d_output_sizes),
        T(test_conv2d_channel_mismatch_message),
        T(test_conv2d_groups_must_divide),
        T(test_conv2d_n_only_in_dim0),
        T(test_conv2d_rejects_empty_output_and_zero_stride),
        T(test_conv2d_backward_shapes),
        T(test_pool_output_sizes_with_ceil_mode),
        T(test_pool_pad_at_most_half_window),
        T(test_pool_window_must_be_positive),
        T(test_pool_too_small_input),
        T(test_adaptive_pool_shapes),
        T(test_slice_shapes_and_range),
        T(test_slice_keeps_n_whole),
        T(test_slice_step_must_be_positive),
        T(test_pad_shapes_and_range),
        T(test_concat_shapes),
        T(test_concat_never_along_n),
        T(test_concat_other_dims_must_agree),
        T(test_concat_at_most_max_inputs),
        T(test_gather_shapes),
        T(test_gather_n_must_agree),
        T(test_gather_index_larger_than_input),
        T(test_scatter_add_shapes),
        T(test_invalid_rank_is_reported),
        T(test_text_round_trip_of_every_new_op),
        T(test_parse_fills_defaults),
        T(test_parse_error_start_length),
        T(test_parse_error_attribute_of_other_op),
        T(test_interp_erf_rsqrt),
        T(test_interp_reduce_min_nan_wins),
        T(test_interp_argmin_first_minimum),
        T(test_interp_iota),
        T(test_philox_known_answer),
        T(test_interp_random_is_philox),
        T(test_interp_random_seed_zero_known_answer),
        T(test_interp_matmul_broadcast_small),
        T(test_interp_matmul_broadcast_2_1_3_4_by_5_4_2),
        T(test_interp_slice_with_steps),
        T(test_interp_pad_with_steps),
        T(test_interp_concat_of_three),
        T(test_interp_gather_out_of_range_reads_zero),
        T(test_interp_scatter_add_out_of_range_adds_nothing),
        T(test_interp_max_pool_dispatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
