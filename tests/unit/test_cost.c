/* test_cost.c: the work of a node (ir/cost.c), FLOPs and bytes moved, against counts worked out by hand
   for a matmul, a convolution and its gradients, an elementwise op, a reduction, a pooling, views, leaves
   and a count too big for an int64. */
#include "support.h"

#include <string.h>

#define N IR_DIM_N

static const Loc L = {"t.lathe", 1, 1};

static int setup(void **state)
{
    ts_open("t", NULL);
    return 0;
}

static Node *in(const char *name, DType t, Shape s)
{
    return ir_input(ts.g, L, name, t, s);
}

static Attr conv_attr(int stride, int pad, int groups)
{
    Attr a = {0};
    a.stride[0] = a.stride[1] = stride;
    a.pad[0] = a.pad[1] = pad;
    a.dilation[0] = a.dilation[1] = 1;
    a.groups = groups;
    return a;
}

/* x [N,784] @ w[512,784].T at N = 64: 2 * 64 * 512 * 784 FLOPs; reads 64*784 + 512*784 floats and writes
   64*512 of them. */
static void test_matmul_flops_and_bytes(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, N, 784));
    Node *w = ir_param(ts.g, L, "w", DT_F32, ts_shape(2, 512, 784));
    Node *y = ir_matmul(ts.g, ts.d, L, x, w, false, true);
    assert_non_null(y);
    assert_int_equal(ir_node_flops(y, 64), 2LL * 64 * 512 * 784);
    assert_int_equal(ir_node_bytes(y, 64), 4LL * (64 * 784 + 512 * 784 + 64 * 512));
}

/* A batched matmul [N,3,4,5] @ [5,6] (broadcast over the batch dims): 2 * (N*3) * 4 * 6 * 5 at N = 2;
   transpose_a makes the inner dim the second-to-last one. */
static void test_batched_matmul_and_transpose_a(void **state)
{
    Node *a = in("a", DT_F32, ts_shape(4, N, 3, 4, 5));
    Node *b = in("b", DT_F32, ts_shape(2, 5, 6));
    Node *y = ir_matmul(ts.g, ts.d, L, a, b, false, false);
    assert_non_null(y);
    assert_int_equal(ir_node_flops(y, 2), 2LL * 2 * 3 * 4 * 6 * 5);
    Node *at = in("at", DT_F64, ts_shape(2, 7, 3)); /* [7,3].T @ [7,2]: K = 7 */
    Node *c = in("c", DT_F64, ts_shape(2, 7, 2));
    Node *z = ir_matmul(ts.g, ts.d, L, at, c, true, false);
    assert_non_null(z);
    assert_int_equal(ir_node_flops(z, 1), 2LL * 3 * 2 * 7);
    assert_int_equal(ir_node_bytes(z, 1), 8LL * (21 + 14 + 6));
}

/* A weight's gradient gy[N,10].T @ x[N,512]: the batch is the inner dim, 2 * 10 * 512 * N at N = 64. */
static void test_matmul_batch_as_inner_dim(void **state)
{
    Node *gy = in("gy", DT_F32, ts_shape(2, N, 10));
    Node *x = in("x", DT_F32, ts_shape(2, N, 512));
    Node *gw = ir_matmul(ts.g, ts.d, L, gy, x, true, false);
    assert_non_null(gw);
    assert_int_equal(ir_node_flops(gw, 64), 2LL * 10 * 512 * 64);
    assert_int_equal(ir_node_bytes(gw, 64), 4LL * (64 * 10 + 64 * 512 + 10 * 512));
}

/* conv2d x[N,4,8,8] * w[6,2,3,3] groups 2, pad 1: y [N,6,8,8]; each output element is 2*3*3 multiply-adds.
   Its gradients do the same work: 2 * |y| * 2 * 3 * 3 each. */
static void test_conv2d_and_gradients(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(4, N, 4, 8, 8));
    Node *w = ir_param(ts.g, L, "w", DT_F32, ts_shape(4, 6, 2, 3, 3));
    Attr a = conv_attr(1, 1, 2);
    Node *y = ir_window(ts.g, ts.d, L, OP_CONV2D, 2, (Node *[]){x, w}, &a);
    assert_non_null(y);
    const int64_t ny = 3LL * 6 * 8 * 8, want = 2 * ny * 2 * 3 * 3;
    assert_int_equal(ir_node_flops(y, 3), want);
    assert_int_equal(ir_node_bytes(y, 3), 4LL * (3 * 4 * 8 * 8 + 6 * 2 * 3 * 3 + ny));

    Node *gy = in("gy", DT_F32, ts_shape(4, N, 6, 8, 8));
    Attr ai = a;
    ai.shape = x->shape;
    Node *gx = ir_window(ts.g, ts.d, L, OP_CONV2D_BWD_INPUT, 2, (Node *[]){gy, w}, &ai);
    assert_non_null(gx);
    assert_int_equal(ir_node_flops(gx, 3), want);
    Attr aw = a;
    aw.shape = w->shape;
    Node *gw = ir_window(ts.g, ts.d, L, OP_CONV2D_BWD_WEIGHT, 2, (Node *[]){x, gy}, &aw);
    assert_non_null(gw);
    assert_int_equal(ir_node_flops(gw, 3), want);
}

/* add [N,10] + [10] broadcast: 1 FLOP per output element; reads N*10 + 10 and writes N*10 floats. */
static void test_elementwise_add_broadcast(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, N, 10));
    Node *b = ir_param(ts.g, L, "b", DT_F32, ts_shape(1, 10));
    Node *y = ir_binary(ts.g, ts.d, L, OP_ADD, x, b);
    assert_int_equal(ir_node_flops(y, 32), 320);
    assert_int_equal(ir_node_bytes(y, 32), 4 * (320 + 10 + 320));
    Node *c = ir_binary(ts.g, ts.d, L, OP_GT, x, b); /* a comparison: 1 FLOP, result u8 */
    assert_int_equal(ir_node_flops(c, 32), 320);
    assert_int_equal(ir_node_bytes(c, 32), 4 * (320 + 10) + 320);
}

/* reduce_sum of [N,5,6] over dim 2 at N = 4: 1 FLOP per input element (120); reads 120 f64s, writes 20. */
static void test_reduction_counts_input_elements(void **state)
{
    Node *x = in("x", DT_F64, ts_shape(3, N, 5, 6));
    Node *s = ir_reduce(ts.g, ts.d, L, OP_REDUCE_SUM, x, 1u << 2, false);
    assert_non_null(s);
    assert_int_equal(ir_node_flops(s, 4), 120);
    assert_int_equal(ir_node_bytes(s, 4), 8 * (120 + 20));
    Node *m = ir_argmax(ts.g, ts.d, L, x, 1, false); /* i64 [N,6] */
    assert_int_equal(ir_node_flops(m, 4), 120);
    assert_int_equal(ir_node_bytes(m, 4), 8 * 120 + 8 * 24);
}

/* max_pool2d 2x2 stride 2 of [N,3,4,4] -> [N,3,2,2]: 4 comparisons per output element. */
static void test_pooling_counts_window(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(4, N, 3, 4, 4));
    Attr a = {0};
    a.window[0] = a.window[1] = 2;
    a.stride[0] = a.stride[1] = 2;
    a.dilation[0] = a.dilation[1] = 1;
    Node *p = ir_window(ts.g, ts.d, L, OP_MAX_POOL2D, 1, &x, &a);
    assert_non_null(p);
    assert_int_equal(ir_node_flops(p, 1), 12 * 4);
    assert_int_equal(ir_node_bytes(p, 1), 4 * (48 + 12));
    /* adaptive 4 -> 3 on each axis: windows [0,2), [1,3), [2,4), 6 elements per axis, 36 per plane */
    Attr ad = {0};
    ad.shape = ts_shape(4, N, 3, 3, 3);
    Node *q = ir_window(ts.g, ts.d, L, OP_ADAPTIVE_AVG_POOL2D, 1, &x, &ad);
    assert_non_null(q);
    assert_int_equal(ir_node_flops(q, 2), 2 * 3 * 36);
}

/* Leaves and reshapes are no kernels: no work. A transpose moves bytes and computes nothing. */
static void test_leaves_and_views_cost_nothing(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, N, 6));
    Node *c = ir_const(ts.g, L, DT_F32, ts_shape(1, 6), 2.0);
    Node *r = ir_reshape(ts.g, ts.d, L, x, ts_shape(3, N, 2, 3));
    assert_int_equal(ir_node_flops(x, 8) + ir_node_bytes(x, 8), 0);
    assert_int_equal(ir_node_flops(c, 8) + ir_node_bytes(c, 8), 0);
    assert_int_equal(ir_node_flops(r, 8) + ir_node_bytes(r, 8), 0);
    Node *t = ir_transpose(ts.g, ts.d, L, x, (int[]){1, 0});
    assert_int_equal(ir_node_flops(t, 8), 0);
    assert_int_equal(ir_node_bytes(t, 8), 4 * 2 * 48);
}

/* A count past 2^63 saturates instead of wrapping to a negative number. */
static void test_overflow_saturates(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, N, 1LL << 31));
    Node *w = ir_param(ts.g, L, "w", DT_F32, ts_shape(2, 1LL << 31, 1LL << 20));
    Node *y = ir_matmul(ts.g, ts.d, L, x, w, false, false);
    assert_non_null(y);
    assert_true(ir_node_flops(y, 1LL << 40) == INT64_MAX);
    assert_true(ir_node_bytes(y, 1LL << 40) == INT64_MAX);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, ts_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_matmul_flops_and_bytes),
        T(test_batched_matmul_and_transpose_a),
        T(test_matmul_batch_as_inner_dim),
        T(test_conv2d_and_gradients),
        T(test_elementwise_add_broadcast),
        T(test_reduction_counts_input_elements),
        T(test_pooling_counts_window),
        T(test_leaves_and_views_cost_nothing),
        T(test_overflow_saturates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
