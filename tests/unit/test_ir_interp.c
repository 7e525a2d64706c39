/* test_ir_interp.c: the reference interpreter, op by op on small tensors computed by hand, with
   broadcasting, N bound at run time, dtype rounding and the errors of bad bindings. */
#include "support.h"

#include <math.h>
#include <string.h>

#include "../../ir/ir.h"

#define N IR_DIM_N
#define VALUES(...) (double[]){__VA_ARGS__}, (int)(sizeof((double[]){__VA_ARGS__}) / sizeof(double))

typedef struct Fix {
    IBinding bind[8];
    int nbind;
} Fix;

static Fix F;
static const Loc L = {"t.lathe", 1, 1};

static int setup(void **state)
{
    memset(&F, 0, sizeof F);
    ts_open("t", NULL);
    return 0;
}

/* An input named name, bound to the given concrete shape and values. */
static Node *bound(const char *name, DType t, Shape decl, Shape conc, const double *v, int nv)
{
    assert_int_equal(ir_shape_numel(&conc, 0), nv);
    double *data = arena_alloc(ts.a, sizeof(double) * (size_t)(nv + 1));
    memcpy(data, v, sizeof(double) * (size_t)nv);
    F.bind[F.nbind++] = (IBinding){name, {conc, data}};
    return ir_input(ts.g, L, name, t, decl);
}

/* Runs the graph with `out` as its only output and checks shape and values. */
static void expect(Node *out, int64_t n, Shape shape, const double *want, int nwant)
{
    assert_non_null(out);
    ts.g->noutputs = 0;
    ir_add_output(ts.g, "out", out, false);
    assert_true(ir_verify(ts.g, ts.d));
    ITensor *r = ir_interp(ts.a, ts.g, n, F.bind, F.nbind, ts.d);
    if (!r)
        fail_msg("interp failed: %s", diag_first_message(ts.d));
    assert_true(ir_shape_eq(&r[0].shape, &shape));
    assert_int_equal(ir_shape_numel(&shape, 0), nwant);
    for (int i = 0; i < nwant; i++) {
        if (isnan(want[i]) ? !isnan(r[0].data[i]) : r[0].data[i] != want[i])
            fail_msg("element %d: got %.17g, want %.17g", i, r[0].data[i], want[i]);
    }
}

static void test_unary_ops(void **state)
{
    Node *x = bound("x", DT_F64, ts_shape(1, 4), ts_shape(1, 4), VALUES(-2, 0, 1, 4));
    expect(ir_unary(ts.g, ts.d, L, OP_NEG, x), 0, ts_shape(1, 4), VALUES(2, -0.0, -1, -4));
    expect(ir_unary(ts.g, ts.d, L, OP_ABS, x), 0, ts_shape(1, 4), VALUES(2, 0, 1, 4));
    expect(ir_unary(ts.g, ts.d, L, OP_RELU, x), 0, ts_shape(1, 4), VALUES(0, 0, 1, 4));
    expect(ir_unary(ts.g, ts.d, L, OP_EXP, x), 0, ts_shape(1, 4), VALUES(exp(-2), 1, exp(1), exp(4)));
    expect(ir_unary(ts.g, ts.d, L, OP_LOG, x), 0, ts_shape(1, 4), VALUES(NAN, -INFINITY, 0, log(4)));
    expect(ir_unary(ts.g, ts.d, L, OP_SQRT, x), 0, ts_shape(1, 4), VALUES(NAN, 0, 1, 2));
    expect(ir_unary(ts.g, ts.d, L, OP_SIGMOID, x), 0, ts_shape(1, 4),
           VALUES(1 / (1 + exp(2)), 0.5, 1 / (1 + exp(-1)), 1 / (1 + exp(-4))));
    expect(ir_unary(ts.g, ts.d, L, OP_TANH, x), 0, ts_shape(1, 4), VALUES(tanh(-2), 0, tanh(1), tanh(4)));
}

static void test_f32_nodes_round_to_float(void **state)
{
    Node *x = bound("x", DT_F32, ts_shape(1, 2), ts_shape(1, 2), VALUES(0.1, 1));
    expect(ir_unary(ts.g, ts.d, L, OP_EXP, x), 0, ts_shape(1, 2), VALUES((float)exp((float)0.1), (float)exp(1)));
}

static void test_binary_ops_broadcast_row(void **state)
{
    Node *a = bound("a", DT_F64, ts_shape(2, 2, 3), ts_shape(2, 2, 3), VALUES(1, 2, 3, 4, 5, 6));
    Node *b = bound("b", DT_F64, ts_shape(1, 3), ts_shape(1, 3), VALUES(10, 20, 30));
    expect(ir_binary(ts.g, ts.d, L, OP_ADD, a, b), 0, ts_shape(2, 2, 3), VALUES(11, 22, 33, 14, 25, 36));
    expect(ir_binary(ts.g, ts.d, L, OP_SUB, b, a), 0, ts_shape(2, 2, 3), VALUES(9, 18, 27, 6, 15, 24));
    expect(ir_binary(ts.g, ts.d, L, OP_MUL, a, b), 0, ts_shape(2, 2, 3), VALUES(10, 40, 90, 40, 100, 180));
    expect(ir_binary(ts.g, ts.d, L, OP_DIV, a, b), 0, ts_shape(2, 2, 3), VALUES(0.1, 0.1, 0.1, 0.4, 0.25, 0.2));
}

static void test_binary_broadcast_column_and_row(void **state)
{
    Node *c = bound("c", DT_F64, ts_shape(2, 3, 1), ts_shape(2, 3, 1), VALUES(1, 2, 3));
    Node *r = bound("r", DT_F64, ts_shape(2, 1, 2), ts_shape(2, 1, 2), VALUES(10, 100));
    expect(ir_binary(ts.g, ts.d, L, OP_MUL, c, r), 0, ts_shape(2, 3, 2), VALUES(10, 100, 20, 200, 30, 300));
}

static void test_max_min_pow(void **state)
{
    Node *a = bound("a", DT_F64, ts_shape(1, 3), ts_shape(1, 3), VALUES(1, 5, -2));
    Node *b = bound("b", DT_F64, ts_shape(1, 3), ts_shape(1, 3), VALUES(3, 2, NAN));
    expect(ir_binary(ts.g, ts.d, L, OP_MAX, a, b), 0, ts_shape(1, 3), VALUES(3, 5, NAN));
    expect(ir_binary(ts.g, ts.d, L, OP_MIN, a, b), 0, ts_shape(1, 3), VALUES(1, 2, NAN));
    Node *two = ir_const(ts.g, L, DT_F64, ir_shape_scalar(), 2);
    expect(ir_binary(ts.g, ts.d, L, OP_POW, a, two), 0, ts_shape(1, 3), VALUES(1, 25, 4));
}

static void test_integer_division_truncates(void **state)
{
    Node *a = bound("a", DT_I32, ts_shape(1, 4), ts_shape(1, 4), VALUES(7, -7, 7, 5));
    Node *b = bound("b", DT_I32, ts_shape(1, 4), ts_shape(1, 4), VALUES(2, 2, -2, 0));
    expect(ir_binary(ts.g, ts.d, L, OP_DIV, a, b), 0, ts_shape(1, 4), VALUES(3, -3, -3, 0));
}

static void test_compare_ops_give_zero_one(void **state)
{
    Node *a = bound("a", DT_F32, ts_shape(1, 3), ts_shape(1, 3), VALUES(1, 2, 3));
    Node *b = bound("b", DT_F32, ts_shape(0), ts_shape(0), VALUES(2));
    expect(ir_binary(ts.g, ts.d, L, OP_EQ, a, b), 0, ts_shape(1, 3), VALUES(0, 1, 0));
    expect(ir_binary(ts.g, ts.d, L, OP_NE, a, b), 0, ts_shape(1, 3), VALUES(1, 0, 1));
    expect(ir_binary(ts.g, ts.d, L, OP_LT, a, b), 0, ts_shape(1, 3), VALUES(1, 0, 0));
    expect(ir_binary(ts.g, ts.d, L, OP_LE, a, b), 0, ts_shape(1, 3), VALUES(1, 1, 0));
    expect(ir_binary(ts.g, ts.d, L, OP_GT, a, b), 0, ts_shape(1, 3), VALUES(0, 0, 1));
    expect(ir_binary(ts.g, ts.d, L, OP_GE, a, b), 0, ts_shape(1, 3), VALUES(0, 1, 1));
}

static void test_select_broadcasts(void **state)
{
    Node *c = bound("c", DT_U8, ts_shape(2, 2, 1), ts_shape(2, 2, 1), VALUES(1, 0));
    Node *a = bound("a", DT_F32, ts_shape(1, 3), ts_shape(1, 3), VALUES(1, 2, 3));
    Node *z = ir_const(ts.g, L, DT_F32, ir_shape_scalar(), -1);
    expect(ir_select(ts.g, ts.d, L, c, a, z), 0, ts_shape(2, 2, 3), VALUES(1, 2, 3, -1, -1, -1));
}

static void test_cast_truncates_toward_zero(void **state)
{
    Node *x = bound("x", DT_F64, ts_shape(1, 5), ts_shape(1, 5), VALUES(2.7, -2.7, 0.5, 300, -1));
    expect(ir_cast(ts.g, L, x, DT_I64), 0, ts_shape(1, 5), VALUES(2, -2, 0, 300, -1));
    expect(ir_cast(ts.g, L, x, DT_U8), 0, ts_shape(1, 5), VALUES(2, 254, 0, 44, 255));
    Node *i = bound("i", DT_I64, ts_shape(1, 1), ts_shape(1, 1), VALUES(16777217));
    expect(ir_cast(ts.g, L, i, DT_F32), 0, ts_shape(1, 1), VALUES(16777216));
}

static void test_reduce_sum_mean_max(void **state)
{
    Node *x = bound("x", DT_F64, ts_shape(2, 2, 3), ts_shape(2, 2, 3), VALUES(1, 5, 3, 4, 2, 6));
    expect(ir_reduce(ts.g, ts.d, L, OP_REDUCE_SUM, x, 1u << 1, false), 0, ts_shape(1, 2), VALUES(9, 12));
    expect(ir_reduce(ts.g, ts.d, L, OP_REDUCE_SUM, x, 1u << 0, true), 0, ts_shape(2, 1, 3), VALUES(5, 7, 9));
    expect(ir_reduce(ts.g, ts.d, L, OP_REDUCE_MEAN, x, 3, false), 0, ts_shape(0), VALUES(3.5));
    expect(ir_reduce(ts.g, ts.d, L, OP_REDUCE_MAX, x, 1u << 1, true), 0, ts_shape(2, 2, 1), VALUES(5, 6));
    expect(ir_reduce(ts.g, ts.d, L, OP_REDUCE_MAX, x, 1u << 0, false), 0, ts_shape(1, 3), VALUES(4, 5, 6));
}

static void test_reduce_middle_axis_rank3(void **state)
{
    Node *x = bound("x", DT_F64, ts_shape(3, 2, 2, 2), ts_shape(3, 2, 2, 2), VALUES(1, 2, 3, 4, 5, 6, 7, 8));
    expect(ir_reduce(ts.g, ts.d, L, OP_REDUCE_SUM, x, 1u << 1, false), 0, ts_shape(2, 2, 2), VALUES(4, 6, 12, 14));
    expect(ir_reduce(ts.g, ts.d, L, OP_REDUCE_SUM, x, 5u, false), 0, ts_shape(1, 2), VALUES(14, 22));
}

static void test_reduce_mean_over_n(void **state)
{
    Node *x = bound("x", DT_F32, ts_shape(2, N, 2), ts_shape(2, 4, 2), VALUES(1, 2, 3, 4, 5, 6, 7, 8));
    expect(ir_reduce(ts.g, ts.d, L, OP_REDUCE_MEAN, x, 1u, false), 4, ts_shape(1, 2), VALUES(4, 5));
}

static void test_integer_mean_truncates(void **state)
{
    Node *x = bound("x", DT_I32, ts_shape(1, 3), ts_shape(1, 3), VALUES(1, 2, 2));
    expect(ir_reduce(ts.g, ts.d, L, OP_REDUCE_MEAN, x, 1u, false), 0, ts_shape(0), VALUES(1));
}

static void test_argmax_first_maximum(void **state)
{
    Node *x = bound("x", DT_F32, ts_shape(2, N, 3), ts_shape(2, 3, 3), VALUES(1, 3, 3, 7, 2, 7, 0, 0, 5));
    expect(ir_argmax(ts.g, ts.d, L, x, 1, false), 3, ts_shape(1, 3), VALUES(1, 0, 2));
    expect(ir_argmax(ts.g, ts.d, L, x, 0, true), 3, ts_shape(2, 1, 3), VALUES(1, 0, 1));
}

static void test_matmul_plain_and_transposed(void **state)
{
    Node *a = bound("a", DT_F64, ts_shape(2, 2, 3), ts_shape(2, 2, 3), VALUES(1, 2, 3, 4, 5, 6));
    Node *b = bound("b", DT_F64, ts_shape(2, 3, 2), ts_shape(2, 3, 2), VALUES(7, 8, 9, 10, 11, 12));
    expect(ir_matmul(ts.g, ts.d, L, a, b, false, false), 0, ts_shape(2, 2, 2), VALUES(58, 64, 139, 154));
    /* a^T @ a: [3,2] @ [2,3] */
    expect(ir_matmul(ts.g, ts.d, L, a, a, true, false), 0, ts_shape(2, 3, 3),
           VALUES(17, 22, 27, 22, 29, 36, 27, 36, 45));
    /* a @ a^T */
    expect(ir_matmul(ts.g, ts.d, L, a, a, false, true), 0, ts_shape(2, 2, 2), VALUES(14, 32, 32, 77));
    /* b^T @ a^T = (a b)^T */
    expect(ir_matmul(ts.g, ts.d, L, b, a, true, true), 0, ts_shape(2, 2, 2), VALUES(58, 139, 64, 154));
}

static void test_matmul_batched_with_rank2_rhs(void **state)
{
    Node *a = bound("a", DT_F64, ts_shape(3, 2, 1, 2), ts_shape(3, 2, 1, 2), VALUES(1, 2, 3, 4));
    Node *w = bound("w", DT_F64, ts_shape(2, 2, 2), ts_shape(2, 2, 2), VALUES(1, 0, 1, 1));
    expect(ir_matmul(ts.g, ts.d, L, a, w, false, false), 0, ts_shape(3, 2, 1, 2), VALUES(3, 2, 7, 4));
    Node *b = bound("b", DT_F64, ts_shape(3, 2, 2, 1), ts_shape(3, 2, 2, 1), VALUES(1, 1, 2, 0));
    expect(ir_matmul(ts.g, ts.d, L, a, b, false, false), 0, ts_shape(3, 2, 1, 1), VALUES(3, 6));
}

static void test_reshape_keeps_order(void **state)
{
    Node *x = bound("x", DT_F32, ts_shape(3, N, 2, 2), ts_shape(3, 2, 2, 2), VALUES(1, 2, 3, 4, 5, 6, 7, 8));
    expect(ir_reshape(ts.g, ts.d, L, x, ts_shape(2, N, 4)), 2, ts_shape(2, 2, 4), VALUES(1, 2, 3, 4, 5, 6, 7, 8));
}

static void test_transpose_rank3(void **state)
{
    Node *x = bound("x", DT_F64, ts_shape(2, 2, 3), ts_shape(2, 2, 3), VALUES(1, 2, 3, 4, 5, 6));
    expect(ir_transpose(ts.g, ts.d, L, x, (int[]){1, 0}), 0, ts_shape(2, 3, 2), VALUES(1, 4, 2, 5, 3, 6));
    Node *y = bound("y", DT_F64, ts_shape(3, 2, 1, 3), ts_shape(3, 2, 1, 3), VALUES(1, 2, 3, 4, 5, 6));
    expect(ir_transpose(ts.g, ts.d, L, y, (int[]){2, 0, 1}), 0, ts_shape(3, 3, 2, 1), VALUES(1, 4, 2, 5, 3, 6));
}

static void test_broadcast_to_n(void **state)
{
    Node *b = bound("b", DT_F32, ts_shape(1, 2), ts_shape(1, 2), VALUES(1, 2));
    expect(ir_broadcast(ts.g, ts.d, L, b, ts_shape(2, N, 2)), 3, ts_shape(2, 3, 2), VALUES(1, 2, 1, 2, 1, 2));
}

static void test_one_hot_out_of_range_is_zero_row(void **state)
{
    Node *y = bound("y", DT_I64, ts_shape(1, N), ts_shape(1, 4), VALUES(2, 0, 3, -1));
    expect(ir_one_hot(ts.g, ts.d, L, y, 3, DT_F32), 4, ts_shape(2, 4, 3), VALUES(0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0));
}

static void test_const_with_npow_uses_n(void **state)
{
    Node *x = bound("x", DT_F64, ts_shape(1, N), ts_shape(1, 4), VALUES(1, 2, 3, 4));
    Node *inv = ir_const_npow(ts.g, L, DT_F64, ir_shape_scalar(), 2, -1);
    expect(ir_binary(ts.g, ts.d, L, OP_MUL, x, inv), 4, ts_shape(1, 4), VALUES(0.5, 1, 1.5, 2));
}

static void test_const_broadcasts_to_shape(void **state)
{
    expect(ir_const(ts.g, L, DT_I32, ts_shape(2, 2, 2), 7.9), 0, ts_shape(2, 2, 2), VALUES(7, 7, 7, 7));
}

static void test_n_inferred_from_binding(void **state)
{
    Node *x = bound("x", DT_F32, ts_shape(2, N, 1), ts_shape(2, 3, 1), VALUES(1, 2, 3));
    expect(ir_reduce(ts.g, ts.d, L, OP_REDUCE_SUM, x, 1u, false), -1, ts_shape(1, 1), VALUES(6));
}

static void test_outputs_in_order_with_updates(void **state)
{
    Node *w = ir_param(ts.g, L, "w", DT_F64, ts_shape(1, 2));
    F.bind[F.nbind++] = (IBinding){"w", {ts_shape(1, 2), (double[]){1, 2}}};
    Node *two = ir_const(ts.g, L, DT_F64, ir_shape_scalar(), 2);
    ir_add_output(ts.g, "w", ir_binary(ts.g, ts.d, L, OP_MUL, w, two), true);
    ir_add_output(ts.g, "s", ir_reduce(ts.g, ts.d, L, OP_REDUCE_SUM, w, 1, false), false);
    ITensor *r = ir_interp(ts.a, ts.g, 0, F.bind, F.nbind, ts.d);
    assert_non_null(r);
    assert_true(r[0].data[0] == 2 && r[0].data[1] == 4);
    assert_true(r[1].data[0] == 3);
}

/* ---------------------------------------------------------------- errors */

static void test_missing_binding_is_reported(void **state)
{
    Node *x = ir_input(ts.g, L, "x", DT_F32, ts_shape(1, 2));
    ir_add_output(ts.g, "y", x, false);
    assert_null(ir_interp(ts.a, ts.g, 0, NULL, 0, ts.d));
    assert_string_equal(diag_first_message(ts.d), "interp: no value bound to input \"x\"");
}

static void test_binding_with_wrong_n_is_reported(void **state)
{
    Node *x = bound("x", DT_F32, ts_shape(2, N, 2), ts_shape(2, 3, 2), VALUES(1, 2, 3, 4, 5, 6));
    ir_add_output(ts.g, "y", x, false);
    assert_null(ir_interp(ts.a, ts.g, 4, F.bind, F.nbind, ts.d));
    assert_string_equal(diag_first_message(ts.d), "interp: \"x\" bound to a tensor of shape [3,2], expected [N,2] (N = 4)");
}

static void test_bindings_disagreeing_on_n(void **state)
{
    Node *x = bound("x", DT_F32, ts_shape(1, N), ts_shape(1, 3), VALUES(1, 2, 3));
    Node *y = bound("y", DT_F32, ts_shape(1, N), ts_shape(1, 2), VALUES(1, 2));
    ir_add_output(ts.g, "z", ir_binary(ts.g, ts.d, L, OP_ADD, x, y), false);
    assert_null(ir_interp(ts.a, ts.g, -1, F.bind, F.nbind, ts.d));
    assert_string_equal(diag_first_message(ts.d), "interp: \"y\" bound to a tensor of shape [2], expected [N] (N = 3)");
}

static void test_binding_with_wrong_constant_dim(void **state)
{
    Node *x = bound("x", DT_F32, ts_shape(2, 2, 2), ts_shape(1, 4), VALUES(1, 2, 3, 4));
    ir_add_output(ts.g, "y", x, false);
    assert_null(ir_interp(ts.a, ts.g, 0, F.bind, F.nbind, ts.d));
    assert_int_equal(diag_error_count(ts.d), 1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, ts_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_unary_ops),
        T(test_f32_nodes_round_to_float),
        T(test_binary_ops_broadcast_row),
        T(test_binary_broadcast_column_and_row),
        T(test_max_min_pow),
        T(test_integer_division_truncates),
        T(test_compare_ops_give_zero_one),
        T(test_select_broadcasts),
        T(test_cast_truncates_toward_zero),
        T(test_reduce_sum_mean_max),
        T(test_reduce_middle_axis_rank3),
        T(test_reduce_mean_over_n),
        T(test_integer_mean_truncates),
        T(test_argmax_first_maximum),
        T(test_matmul_plain_and_transposed),
        T(test_matmul_batched_with_rank2_rhs),
        T(test_reshape_keeps_order),
        T(test_transpose_rank3),
        T(test_broadcast_to_n),
        T(test_one_hot_out_of_range_is_zero_row),
        T(test_const_with_npow_uses_n),
        T(test_const_broadcasts_to_shape),
        T(test_n_inferred_from_binding),
        T(test_outputs_in_order_with_updates),
        T(test_missing_binding_is_reported),
        T(test_binding_with_wrong_n_is_reported),
        T(test_bindings_disagreeing_on_n),
        T(test_binding_with_wrong_constant_dim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
