/* test_passes_layout.c: pass_layout's rules (transposes into matmul flags, a transposed matmul into
   swapped operands, transposes composed, transposes of unit dims into reshapes, transposes that only
   elementwise ops read left alone), each checked for its shape of the graph and for unchanged values
   through the interpreter. */
#include "support.h"

#include <math.h>
#include <string.h>

#include "../../passes/passes.h"

#define N IR_DIM_N

static const Loc L = {"s.lathe", 1, 1};

static int setup(void **s) {
    (void)s;
    ts_open("eval", stderr);
    return 0;
}

static Node *param(const char *name, Shape s) { return ir_param(ts.g, L, name, DT_F64, s); }


static void test_transpose_folds_into_matmul_transpose_b(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(2, N, 4));
    Node *w = param("w", ts_shape(2, 3, 4));
    Node *t = ir_transpose(ts.g, ts.d, L, w, (int[]){1, 0});
    Node *y = ir_matmul(ts.g, ts.d, L, x, t, false, false);
    ir_add_output(ts.g, "y", y, false);
    ts_pass_keeps_values(pass_layout);
    assert_ptr_equal(ts.g->outputs[0].value, y);
    assert_ptr_equal(y->inputs[1], w);
    assert_false(y->attr.transpose_a);
    assert_true(y->attr.transpose_b);
    assert_int_equal(ts_count_used_op(ts.g, OP_TRANSPOSE), 0);
}

static void test_transpose_folds_into_both_flags_batched(void **s) {
    (void)s;
    Node *a = param("a", ts_shape(3, 2, 4, 3));
    Node *b = param("b", ts_shape(3, 2, 5, 4));
    Node *ta = ir_transpose(ts.g, ts.d, L, a, (int[]){0, 2, 1});
    Node *tb = ir_transpose(ts.g, ts.d, L, b, (int[]){0, 2, 1});
    Node *y = ir_matmul(ts.g, ts.d, L, ta, tb, false, false);
    ir_add_output(ts.g, "y", y, false);
    ts_pass_keeps_values(pass_layout);
    assert_ptr_equal(y->inputs[0], a);
    assert_ptr_equal(y->inputs[1], b);
    assert_true(y->attr.transpose_a);
    assert_true(y->attr.transpose_b);
}

/* a transpose that is not of the last two dims stays */
static void test_batch_transpose_stays_before_matmul(void **s) {
    (void)s;
    Node *a = param("a", ts_shape(3, 3, 2, 4));
    Node *b = param("b", ts_shape(3, 2, 4, 5));
    Node *ta = ir_transpose(ts.g, ts.d, L, a, (int[]){1, 0, 2});
    Node *y = ir_matmul(ts.g, ts.d, L, ta, b, false, false);
    ir_add_output(ts.g, "y", y, false);
    ts_pass_keeps_values(pass_layout);
    assert_ptr_equal(y->inputs[0], ta);
    assert_false(y->attr.transpose_a);
}

/* (ts.a B)^T = B^T ts.a^T: how the weight gradient of x @ w.T comes out of autodiff */
static void test_transpose_of_matmul_swaps_operands(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(2, N, 4));
    Node *g = param("g", ts_shape(2, N, 3));
    Node *m = ir_matmul(ts.g, ts.d, L, x, g, true, false); /* [4,3] */
    Node *t = ir_transpose(ts.g, ts.d, L, m, (int[]){1, 0});
    ir_add_output(ts.g, "gw", t, false);
    ts_pass_keeps_values(pass_layout);
    Node *v = ts.g->outputs[0].value;
    assert_int_equal(v->op, OP_MATMUL);
    assert_ptr_equal(v->inputs[0], g);
    assert_ptr_equal(v->inputs[1], x);
    assert_true(v->attr.transpose_a);
    assert_false(v->attr.transpose_b);
    assert_int_equal(ts_count_used_op(ts.g, OP_TRANSPOSE), 0);
    assert_int_equal(ts_count_used_op(ts.g, OP_MATMUL), 1);
}

static void test_transpose_of_shared_matmul_stays(void **s) {
    (void)s;
    Node *a = param("a", ts_shape(2, 3, 4));
    Node *b = param("b", ts_shape(2, 4, 5));
    Node *m = ir_matmul(ts.g, ts.d, L, a, b, false, false);
    Node *t = ir_transpose(ts.g, ts.d, L, m, (int[]){1, 0});
    ir_add_output(ts.g, "m", m, false);
    ir_add_output(ts.g, "t", t, false);
    ts_pass_keeps_values(pass_layout);
    assert_int_equal(ts.g->outputs[1].value->op, OP_TRANSPOSE);
    assert_int_equal(ts_count_used_op(ts.g, OP_MATMUL), 1);
}

static void test_transpose_of_transpose_composes(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(3, 2, 3, 4));
    Node *t1 = ir_transpose(ts.g, ts.d, L, x, (int[]){2, 0, 1});  /* [4,2,3] */
    Node *t2 = ir_transpose(ts.g, ts.d, L, t1, (int[]){0, 2, 1}); /* [4,3,2] */
    ir_add_output(ts.g, "y", t2, false);
    ts_pass_keeps_values(pass_layout);
    assert_ptr_equal(t2->inputs[0], x);
    assert_int_equal(t2->attr.perm[0], 2);
    assert_int_equal(t2->attr.perm[1], 1);
    assert_int_equal(t2->attr.perm[2], 0);
}

static void test_transpose_of_transpose_to_identity_disappears(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(3, 2, 3, 4));
    Node *t1 = ir_transpose(ts.g, ts.d, L, x, (int[]){2, 0, 1});
    Node *t2 = ir_transpose(ts.g, ts.d, L, t1, (int[]){1, 2, 0});
    ir_add_output(ts.g, "y", ir_unary(ts.g, ts.d, L, OP_EXP, t2), false);
    ts_pass_keeps_values(pass_layout);
    assert_ptr_equal(ts.g->outputs[0].value->inputs[0], x);
    assert_int_equal(ts_count_used_op(ts.g, OP_TRANSPOSE), 0);
}

/* [N,1,5] -> [1,N,5] moves only a dim of size 1: the same bytes, a reshape (a view) */
static void test_transpose_of_unit_dims_becomes_reshape(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(3, N, 1, 5));
    Node *t = ir_transpose(ts.g, ts.d, L, x, (int[]){1, 0, 2});
    ir_add_output(ts.g, "y", t, false);
    ts_pass_keeps_values(pass_layout);
    assert_int_equal(t->op, OP_RESHAPE);
    assert_ptr_equal(t->inputs[0], x);
    assert_true(ir_shape_eq(&t->attr.shape, &t->shape));
}

/* N may be anything at run time: a transpose that moves it past a dim of 5 moves data */
static void test_transpose_moving_n_past_a_dim_stays(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(3, N, 1, 5));
    Node *t = ir_transpose(ts.g, ts.d, L, x, (int[]){2, 1, 0});
    ir_add_output(ts.g, "y", t, false);
    ts_pass_keeps_values(pass_layout);
    assert_int_equal(t->op, OP_TRANSPOSE);
}

/* a transpose only elementwise ops read stays for the fuse pass to read with strides */
static void test_transpose_feeding_elementwise_stays(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(2, N, 4));
    Node *y = param("y", ts_shape(2, 4, N));
    Node *t = ir_transpose(ts.g, ts.d, L, x, (int[]){1, 0});
    Node *a = ir_binary(ts.g, ts.d, L, OP_ADD, t, y);
    ir_add_output(ts.g, "y", ir_unary(ts.g, ts.d, L, OP_RELU, a), false);
    ts_pass_keeps_values(pass_layout);
    assert_ptr_equal(a->inputs[0], t);
    assert_int_equal(t->op, OP_TRANSPOSE);
}

/* members of fusion groups (text IR after fuse) are left as the group has them */
static void test_fused_transpose_is_left_alone(void **s) {
    (void)s;
    Graph *g = ts_parse_graph("f.ir", "graph eval {\n"
                                      "  %0 = input \"x\" : f32[N,1,4]\n"
                                      "  %1 = transpose %0 {perm=[1,0,2]} : f32[1,N,4] in %2\n"
                                      "  %2 = exp %1 : f32[1,N,4] in %2\n"
                                      "  output \"y\" = %2\n"
                                      "}\n");
    assert_true(pass_layout(g, ts.d));
    assert_true(ir_verify(g, ts.d));
    assert_int_equal(g->nodes[1]->op, OP_TRANSPOSE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_transpose_folds_into_matmul_transpose_b, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_transpose_folds_into_both_flags_batched, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_batch_transpose_stays_before_matmul, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_transpose_of_matmul_swaps_operands, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_transpose_of_shared_matmul_stays, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_transpose_of_transpose_composes, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_transpose_of_transpose_to_identity_disappears, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_transpose_of_unit_dims_becomes_reshape, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_transpose_moving_n_past_a_dim_stays, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_transpose_feeding_elementwise_stays, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_fused_transpose_is_left_alone, setup, ts_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
