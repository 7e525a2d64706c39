/* test_ir_shapes.c: the shape rule of every primitive through the builder, and the messages that name the
   op and the shapes when a rule is broken. */
#include "support.h"

#include <string.h>

#include "../../ir/ir.h"

static const Loc L = {"t.lathe", 3, 7};

static int setup(void **state)
{
    ts_open("t", NULL);
    return 0;
}

#define N IR_DIM_N

static Node *in(const char *name, DType t, Shape s)
{
    return ir_input(ts.g, L, name, t, s);
}

static void assert_type(const Node *n, const char *want)
{
    char buf[256];
    assert_non_null(n);
    assert_string_equal(ir_type_str(n->dtype, &n->shape, buf, sizeof buf), want);
}

static void assert_error(const char *want)
{
    assert_int_equal(diag_error_count(ts.d), 1);
    assert_string_equal(diag_first_message(ts.d), want);
    assert_int_equal(diag_first_loc(ts.d).line, 3);
    assert_int_equal(diag_first_loc(ts.d).col, 7);
}

static void test_new_node_defaults(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, N, 4));
    Node *y = ir_unary(ts.g, ts.d, L, OP_RELU, x);
    assert_int_equal(x->id, 0);
    assert_int_equal(y->id, 1);
    assert_int_equal(y->group, -1);
    assert_int_equal(y->mem.kind, MEM_NONE);
    assert_ptr_equal(y->inputs[0], x);
    assert_int_equal(ts.g->nnodes, 2);
    assert_string_equal(x->attr.name, "x");
}

static void test_binary_broadcast_with_n(void **state)
{
    Node *a = in("a", DT_F32, ts_shape(2, N, 512));
    Node *b = in("b", DT_F32, ts_shape(1, 512));
    Node *c = in("c", DT_F32, ts_shape(2, 1, 512));
    assert_type(ir_binary(ts.g, ts.d, L, OP_ADD, a, b), "f32[N,512]");
    assert_type(ir_binary(ts.g, ts.d, L, OP_MUL, c, a), "f32[N,512]");
    Node *e = in("e", DT_F32, ts_shape(2, 3, 1));
    Node *f = in("f", DT_F32, ts_shape(2, 1, 4));
    assert_type(ir_binary(ts.g, ts.d, L, OP_SUB, e, f), "f32[3,4]");
    assert_int_equal(diag_error_count(ts.d), 0);
}

static void test_binary_broadcast_error_names_shapes(void **state)
{
    Node *a = in("a", DT_F32, ts_shape(2, N, 512));
    Node *b = in("b", DT_F32, ts_shape(1, 10));
    assert_null(ir_binary(ts.g, ts.d, L, OP_ADD, a, b));
    assert_error("add: cannot broadcast f32[N,512] and f32[10]");
}

static void test_n_against_constant_is_an_error(void **state)
{
    Node *a = in("a", DT_F32, ts_shape(2, N, 4));
    Node *b = in("b", DT_F32, ts_shape(2, 8, 4));
    assert_null(ir_binary(ts.g, ts.d, L, OP_MAX, a, b));
    assert_error("max: cannot broadcast f32[N,4] and f32[8,4]");
}

static void test_binary_dtype_mismatch(void **state)
{
    Node *a = in("a", DT_F32, ts_shape(1, 4));
    Node *b = in("b", DT_F64, ts_shape(1, 4));
    assert_null(ir_binary(ts.g, ts.d, L, OP_DIV, a, b));
    assert_error("div: dtypes differ: f32[4] and f64[4]");
}

static void test_compare_gives_u8(void **state)
{
    Node *a = in("a", DT_I64, ts_shape(1, N));
    Node *b = in("b", DT_I64, ts_shape(1, N));
    assert_type(ir_binary(ts.g, ts.d, L, OP_EQ, a, b), "u8[N]");
    assert_type(ir_binary(ts.g, ts.d, L, OP_GE, a, b), "u8[N]");
}

static void test_unary_math_needs_float(void **state)
{
    Node *i = in("i", DT_I32, ts_shape(1, 2));
    assert_type(ir_unary(ts.g, ts.d, L, OP_NEG, i), "i32[2]");
    assert_type(ir_unary(ts.g, ts.d, L, OP_ABS, i), "i32[2]");
    assert_null(ir_unary(ts.g, ts.d, L, OP_EXP, i));
    assert_error("exp: needs a float dtype, not i32[2]");
}

static void test_cast_changes_dtype_only(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, N, 3));
    assert_type(ir_cast(ts.g, L, x, DT_I64), "i64[N,3]");
}

static void test_select_broadcasts_three(void **state)
{
    Node *c = in("c", DT_U8, ts_shape(2, N, 1));
    Node *a = in("a", DT_F32, ts_shape(1, 5));
    Node *b = ir_const(ts.g, L, DT_F32, ir_shape_scalar(), 0);
    assert_type(ir_select(ts.g, ts.d, L, c, a, b), "f32[N,5]");
}

static void test_select_condition_must_be_u8(void **state)
{
    Node *c = in("c", DT_F32, ts_shape(1, 3));
    Node *a = in("a", DT_F32, ts_shape(1, 3));
    assert_null(ir_select(ts.g, ts.d, L, c, a, a));
    assert_error("select: condition must be u8, not f32[3]");
}

static void test_select_branches_same_dtype(void **state)
{
    Node *c = in("c", DT_U8, ts_shape(1, 3));
    Node *a = in("a", DT_F32, ts_shape(1, 3));
    Node *b = in("b", DT_F64, ts_shape(1, 3));
    assert_null(ir_select(ts.g, ts.d, L, c, a, b));
    assert_error("select: dtypes differ: f32[3] and f64[3]");
}

static void test_reduce_drops_or_keeps_axes(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(3, N, 3, 4));
    assert_type(ir_reduce(ts.g, ts.d, L, OP_REDUCE_SUM, x, 1u << 1, false), "f32[N,4]");
    assert_type(ir_reduce(ts.g, ts.d, L, OP_REDUCE_MEAN, x, 1u << 0 | 1u << 2, true), "f32[1,3,1]");
    assert_type(ir_reduce(ts.g, ts.d, L, OP_REDUCE_MAX, x, 7, false), "f32[]");
}

static void test_reduce_axes_out_of_range(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, N, 3));
    assert_null(ir_reduce(ts.g, ts.d, L, OP_REDUCE_SUM, x, 1u << 2, false));
    assert_error("reduce_sum: axes out of range for f32[N,3]");
}

static void test_reduce_empty_axes(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(1, 3));
    assert_null(ir_reduce(ts.g, ts.d, L, OP_REDUCE_MEAN, x, 0, false));
    assert_error("reduce_mean: no axes to reduce over in f32[3]");
}

static void test_argmax_is_i64_axis_dropped(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, N, 10));
    assert_type(ir_argmax(ts.g, ts.d, L, x, 1, false), "i64[N]");
    assert_type(ir_argmax(ts.g, ts.d, L, x, 1, true), "i64[N,1]");
    assert_null(ir_argmax(ts.g, ts.d, L, x, 2, false));
    assert_error("argmax: axis 2 out of range for f32[N,10]");
}

static void test_matmul_rank2_transpose_b(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, N, 784));
    Node *w = in("w", DT_F32, ts_shape(2, 512, 784));
    assert_type(ir_matmul(ts.g, ts.d, L, x, w, false, true), "f32[N,512]");
}

static void test_matmul_contracts_over_n(void **state)
{
    Node *dy = in("dy", DT_F32, ts_shape(2, N, 10));
    Node *x = in("x", DT_F32, ts_shape(2, N, 512));
    assert_type(ir_matmul(ts.g, ts.d, L, dy, x, true, false), "f32[10,512]");
}

static void test_matmul_inner_mismatch_message(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, N, 784));
    Node *w = in("w", DT_F32, ts_shape(2, 512, 10));
    assert_null(ir_matmul(ts.g, ts.d, L, x, w, false, false));
    assert_error("matmul: inner dimensions differ: f32[N,784] @ f32[512,10]");
}

static void test_matmul_n_against_constant_k(void **state)
{
    Node *a = in("a", DT_F32, ts_shape(2, N, 4));
    Node *b = in("b", DT_F32, ts_shape(2, 64, 3));
    assert_null(ir_matmul(ts.g, ts.d, L, a, b, true, false));
    assert_error("matmul: inner dimensions differ: f32[N,4].T @ f32[64,3]");
}

static void test_matmul_batched_and_broadcast_rank2(void **state)
{
    Node *a = in("a", DT_F64, ts_shape(3, 8, 3, 5));
    Node *b = in("b", DT_F64, ts_shape(3, 8, 5, 2));
    Node *w = in("w", DT_F64, ts_shape(2, 2, 5));
    assert_type(ir_matmul(ts.g, ts.d, L, a, b, false, false), "f64[8,3,2]");
    assert_type(ir_matmul(ts.g, ts.d, L, a, w, false, true), "f64[8,3,2]");
    assert_type(ir_matmul(ts.g, ts.d, L, a, a, true, false), "f64[8,5,5]");
}

static void test_matmul_batch_mismatch(void **state)
{
    Node *a = in("a", DT_F32, ts_shape(3, 8, 3, 5));
    Node *b = in("b", DT_F32, ts_shape(3, 4, 5, 2));
    assert_null(ir_matmul(ts.g, ts.d, L, a, b, false, false));
    assert_error("matmul: batch dimensions differ: f32[8,3,5] @ f32[4,5,2]");
}

static void test_matmul_needs_float(void **state)
{
    Node *a = in("a", DT_I32, ts_shape(2, 2, 2));
    assert_null(ir_matmul(ts.g, ts.d, L, a, a, false, false));
    assert_error("matmul: needs a float dtype: i32[2,2] @ i32[2,2]");
}

static void test_matmul_rank1_rejected(void **state)
{
    Node *a = in("a", DT_F32, ts_shape(1, 2));
    Node *b = in("b", DT_F32, ts_shape(2, 2, 2));
    assert_null(ir_matmul(ts.g, ts.d, L, a, b, false, false));
    assert_error("matmul: operands must be of rank 2 or more: f32[2] @ f32[2,2]");
}

static void test_reshape_flatten_with_n(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(4, N, 1, 28, 28));
    assert_type(ir_reshape(ts.g, ts.d, L, x, ts_shape(2, N, 784)), "f32[N,784]");
    assert_type(ir_reshape(ts.g, ts.d, L, x, ts_shape(3, 28, N, 28)), "f32[28,N,28]");
}

static void test_reshape_cannot_hide_n(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, N, 784));
    assert_null(ir_reshape(ts.g, ts.d, L, x, ts_shape(1, 784)));
    assert_error("reshape: cannot reshape f32[N,784] to f32[784]");
}

static void test_reshape_count_mismatch(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, 6, 4));
    assert_type(ir_reshape(ts.g, ts.d, L, x, ts_shape(3, 2, 3, 4)), "f32[2,3,4]");
    assert_null(ir_reshape(ts.g, ts.d, L, x, ts_shape(2, 5, 5)));
    assert_error("reshape: cannot reshape f32[6,4] to f32[5,5]");
}

static void test_broadcast_to_shape(void **state)
{
    Node *b = in("b", DT_F32, ts_shape(1, 10));
    assert_type(ir_broadcast(ts.g, ts.d, L, b, ts_shape(2, N, 10)), "f32[N,10]");
    Node *s = ir_const(ts.g, L, DT_F32, ir_shape_scalar(), 1);
    assert_type(ir_broadcast(ts.g, ts.d, L, s, ts_shape(2, N, 3)), "f32[N,3]");
    assert_null(ir_broadcast(ts.g, ts.d, L, b, ts_shape(2, N, 5)));
    assert_error("broadcast: cannot broadcast f32[10] to f32[N,5]");
}

static void test_broadcast_cannot_shrink(void **state)
{
    Node *b = in("b", DT_F32, ts_shape(2, N, 10));
    assert_null(ir_broadcast(ts.g, ts.d, L, b, ts_shape(2, 1, 10)));
    assert_error("broadcast: cannot broadcast f32[N,10] to f32[1,10]");
}

static void test_transpose_perm(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(3, N, 3, 5));
    assert_type(ir_transpose(ts.g, ts.d, L, x, (int[]){2, 0, 1}), "f32[5,N,3]");
    assert_null(ir_transpose(ts.g, ts.d, L, x, (int[]){0, 0, 1}));
    assert_error("transpose: perm [0,0,1] is not a permutation of the dims of f32[N,3,5]");
}

static void test_one_hot_appends_classes(void **state)
{
    Node *y = in("y", DT_I64, ts_shape(1, N));
    assert_type(ir_one_hot(ts.g, ts.d, L, y, 10, DT_F32), "f32[N,10]");
    Node *x = in("x", DT_F32, ts_shape(1, N));
    assert_null(ir_one_hot(ts.g, ts.d, L, x, 10, DT_F32));
    assert_error("one_hot: needs an integer input: f32[N]");
}

static void test_one_hot_classes_positive(void **state)
{
    Node *y = in("y", DT_U8, ts_shape(1, 4));
    assert_null(ir_one_hot(ts.g, ts.d, L, y, 0, DT_F32));
    assert_error("one_hot: classes must be positive, not 0");
}

static void test_const_takes_attr_type(void **state)
{
    Node *c = ir_const_npow(ts.g, L, DT_F64, ir_shape_scalar(), 1, -1);
    assert_type(c, "f64[]");
    assert_int_equal(c->attr.npow, -1);
}

static void test_null_input_propagates_silently(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(1, 3));
    Node *w = in("w", DT_F32, ts_shape(2, 4, 4));
    Node *bad = ir_matmul(ts.g, ts.d, L, x, w, false, false);
    assert_null(bad);
    assert_null(ir_unary(ts.g, ts.d, L, OP_RELU, bad));
    assert_int_equal(diag_error_count(ts.d), 1);
}

static void test_wrong_arity_is_a_diagnostic(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(1, 3));
    assert_null(ir_make(ts.g, ts.d, L, OP_ADD, 1, &x, NULL));
    assert_error("add: takes 2 inputs, not 1");
}

static void test_sum_to_reduces_added_and_stretched_dims(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, N, 10));
    Node *b = ir_sum_to(ts.g, ts.d, L, x, ts_shape(1, 10));
    assert_type(b, "f32[10]");
    assert_int_equal(b->op, OP_RESHAPE);
    assert_int_equal(b->inputs[0]->op, OP_REDUCE_SUM);
    assert_int_equal(b->inputs[0]->attr.axes, 1u);
    assert_true(b->inputs[0]->attr.keepdim);

    Node *y = in("y", DT_F32, ts_shape(3, 4, 3, 5));
    Node *s = ir_sum_to(ts.g, ts.d, L, y, ts_shape(2, 3, 1));
    assert_type(s, "f32[3,1]");
    assert_int_equal(s->inputs[0]->attr.axes, 1u | 4u);
}

static void test_sum_to_same_shape_is_identity(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, N, 10));
    int before = ts.g->nnodes;
    assert_ptr_equal(ir_sum_to(ts.g, ts.d, L, x, ts_shape(2, N, 10)), x);
    assert_int_equal(ts.g->nnodes, before);
}

static void test_sum_to_keepdim_without_reshape(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, N, 10));
    Node *s = ir_sum_to(ts.g, ts.d, L, x, ts_shape(2, 1, 10));
    assert_type(s, "f32[1,10]");
    assert_int_equal(s->op, OP_REDUCE_SUM);
}

static void test_graph_args_order(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(2, N, 4));
    Node *w = ir_param(ts.g, L, "w", DT_F32, ts_shape(1, 4));
    Node *m = ir_state(ts.g, L, "m", DT_F32, ts_shape(1, 4));
    Node *lbl = in("label", DT_I64, ts_shape(1, N));
    Node *y = ir_binary(ts.g, ts.d, L, OP_MUL, x, w);
    ir_add_output(ts.g, "w", ir_binary(ts.g, ts.d, L, OP_ADD, w, m), true);
    ir_add_output(ts.g, "y", y, false);
    ir_add_output(ts.g, "lbl", lbl, false);
    GraphArg args[8];
    assert_int_equal(ir_graph_args(ts.g, NULL), 6);
    assert_int_equal(ir_graph_args(ts.g, args), 6);
    const char *names[] = {"x", "w", "m", "label", "y", "lbl"};
    ArgRole roles[] = {ARG_INPUT, ARG_PARAM, ARG_STATE, ARG_INPUT, ARG_OUTPUT, ARG_OUTPUT};
    for (int i = 0; i < 6; i++) {
        assert_string_equal(args[i].name, names[i]);
        assert_int_equal(args[i].role, roles[i]);
    }
    assert_ptr_equal(args[4].node, y);
    assert_string_equal(ir_arg_role_name(ARG_STATE), "state");
    assert_ptr_equal(ir_find_leaf(ts.g, OP_PARAM, "w"), w);
    assert_null(ir_find_leaf(ts.g, OP_INPUT, "w"));
}

static void test_renumber_compacts(void **state)
{
    Node *x = in("x", DT_F32, ts_shape(1, 2));
    Node *y = ir_unary(ts.g, ts.d, L, OP_NEG, x);
    Node *z = ir_unary(ts.g, ts.d, L, OP_ABS, x);
    ts.g->nodes[1] = NULL;
    ir_renumber(ts.g);
    assert_int_equal(ts.g->nnodes, 2);
    assert_ptr_equal(ts.g->nodes[1], z);
    assert_int_equal(z->id, 1);
    (void)y;
}

static void test_shape_helpers(void **state)
{
    Shape s = ts_shape(3, N, 3, 4);
    char buf[64];
    assert_true(ir_shape_has_n(&s));
    assert_int_equal(ir_shape_numel_per_n(&s), 12);
    assert_int_equal(ir_shape_numel(&s, 5), 60);
    assert_string_equal(ir_shape_str(&s, buf, sizeof buf), "[N,3,4]");
    Shape t = ir_shape_scalar();
    assert_string_equal(ir_type_str(DT_U8, &t, buf, sizeof buf), "u8[]");
    Shape big = ts_shape(2, INT64_MAX / 2, 4);
    assert_int_equal(ir_shape_numel_per_n(&big), -1);
    assert_false(ir_shape_valid(&big));
    int64_t r;
    assert_true(ir_mul_overflows(INT64_MAX, 2, &r));
    assert_false(ir_mul_overflows(1 << 20, 1 << 20, &r));
    assert_int_equal(r, (int64_t)1 << 40);
}

static void test_dtype_and_op_tables(void **state)
{
    DType t;
    Op op;
    assert_true(ir_dtype_parse("i64", &t));
    assert_int_equal(t, DT_I64);
    assert_false(ir_dtype_parse("f16", &t));
    assert_int_equal(ir_dtype_size(DT_U8), 1);
    assert_int_equal(ir_dtype_size(DT_F64), 8);
    assert_true(ir_op_parse("reduce_mean", &op));
    assert_int_equal(op, OP_REDUCE_MEAN);
    assert_int_equal(ir_op_arity(OP_SELECT), 3);
    assert_int_equal(ir_op_kind(OP_LT), K_COMPARE);
    assert_string_equal(ir_op_name(OP_ONE_HOT), "one_hot");
    assert_false(ir_op_parse("conv2d_nope", &op));
}

static void test_rval_arg_and_recipe(void **state)
{
    RVal lr = {.kind = RV_NUM, .num = 0.1}, mom = {.kind = RV_NUM, .num = 0.9}, pos = {.kind = RV_NUM, .num = 2};
    RVal *items[] = {&pos, &lr, &mom};
    const char *keys[] = {NULL, "lr", "momentum"};
    RVal call = {.kind = RV_CALL, .str = "SGD", .nitems = 3, .items = items, .keys = keys};
    assert_ptr_equal(rval_arg(&call, "momentum", -1), &mom);
    assert_ptr_equal(rval_arg(&call, "nesterov", 0), &pos);
    assert_null(rval_arg(&call, "nesterov", 1));
    assert_null(rval_arg(&lr, "lr", 0));
    RecipeEntry e[] = {{"batch", &pos, {0}}, {"optimizer", &call, {0}}};
    Program p = {.recipe = e, .nrecipe = 2};
    assert_ptr_equal(program_recipe(&p, "optimizer"), &call);
    assert_null(program_recipe(&p, "epochs"));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, ts_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_new_node_defaults),
        T(test_binary_broadcast_with_n),
        T(test_binary_broadcast_error_names_shapes),
        T(test_n_against_constant_is_an_error),
        T(test_binary_dtype_mismatch),
        T(test_compare_gives_u8),
        T(test_unary_math_needs_float),
        T(test_cast_changes_dtype_only),
        T(test_select_broadcasts_three),
        T(test_select_condition_must_be_u8),
        T(test_select_branches_same_dtype),
        T(test_reduce_drops_or_keeps_axes),
        T(test_reduce_axes_out_of_range),
        T(test_reduce_empty_axes),
        T(test_argmax_is_i64_axis_dropped),
        T(test_matmul_rank2_transpose_b),
        T(test_matmul_contracts_over_n),
        T(test_matmul_inner_mismatch_message),
        T(test_matmul_n_against_constant_k),
        T(test_matmul_batched_and_broadcast_rank2),
        T(test_matmul_batch_mismatch),
        T(test_matmul_needs_float),
        T(test_matmul_rank1_rejected),
        T(test_reshape_flatten_with_n),
        T(test_reshape_cannot_hide_n),
        T(test_reshape_count_mismatch),
        T(test_broadcast_to_shape),
        T(test_broadcast_cannot_shrink),
        T(test_transpose_perm),
        T(test_one_hot_appends_classes),
        T(test_one_hot_classes_positive),
        T(test_const_takes_attr_type),
        T(test_null_input_propagates_silently),
        T(test_wrong_arity_is_a_diagnostic),
        T(test_sum_to_reduces_added_and_stretched_dims),
        T(test_sum_to_same_shape_is_identity),
        T(test_sum_to_keepdim_without_reshape),
        T(test_graph_args_order),
        T(test_renumber_compacts),
        T(test_shape_helpers),
        T(test_dtype_and_op_tables),
        T(test_rval_arg_and_recipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
