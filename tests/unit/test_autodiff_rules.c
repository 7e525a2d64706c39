/* test_autodiff_rules.c: what pass_autodiff builds, beyond the numbers: which parameters get gradients,
   where the gradient stops, that Linear's gradients are matmul flags and not transposes, that constants are
   folded rather than multiplied by, and the errors. */
#include "support.h"

#include <string.h>

#include "../../passes/passes.h"

#define N IR_DIM_N

static const Loc L = {"t.lathe", 3, 7};

static int setup(void **s) {
    (void)s;
    ts_open("train", NULL);
    return 0;
}

static Node *output(const char *name) {
    int i = ts_output_index(ts.g, name);
    return i < 0 ? NULL : ts.g->outputs[i].value;
}

static Node *sum_all(Node *x) {
    uint32_t all = (1u << x->shape.rank) - 1;
    return ir_reduce(ts.g, ts.d, L, OP_REDUCE_SUM, x, all, false);
}

/* loss = mean over the batch of sum(x @ w.T + b) */
static Node *linear_loss(Node **w, Node **b) {
    Node *x = ir_input(ts.g, L, "x", DT_F32, ts_shape(2, N, 4));
    *w = ir_param(ts.g, L, "w", DT_F32, ts_shape(2, 3, 4));
    *b = ir_param(ts.g, L, "b", DT_F32, ts_shape(1, 3));
    Node *y = ir_binary(ts.g, ts.d, L, OP_ADD, ir_matmul(ts.g, ts.d, L, x, *w, false, true), *b);
    Node *r = ir_reduce(ts.g, ts.d, L, OP_REDUCE_SUM, y, 2, false);
    return ir_reduce(ts.g, ts.d, L, OP_REDUCE_MEAN, r, 1, false);
}

static void test_linear_gradient_uses_matmul_flags(void **s) {
    (void)s;
    Node *w, *b;
    ir_add_output(ts.g, "loss", linear_loss(&w, &b), false);
    assert_true(pass_autodiff(ts.g, ts.d));
    assert_true(ir_verify(ts.g, ts.d));
    assert_int_equal(ts_count_op(ts.g, OP_TRANSPOSE), 0);
    assert_int_equal(ts_count_op(ts.g, OP_MATMUL), 2); /* forward and dW: x is an input, so no dx */
    Node *gw = output("grad.w");
    assert_non_null(gw);
    assert_int_equal(gw->op, OP_MATMUL);
    /* dW = gy^T x: the stored w is W^T's transpose, so matmul(gy, x, transpose_a) */
    assert_true(gw->attr.transpose_a);
    assert_false(gw->attr.transpose_b);
    assert_ptr_equal(gw->inputs[1], ts.g->nodes[0]);
    assert_true(ir_shape_eq(&gw->shape, &w->shape));
}

static void test_mean_over_batch_gradient_is_one_over_n_const(void **s) {
    (void)s;
    Node *w, *b;
    ir_add_output(ts.g, "loss", linear_loss(&w, &b), false);
    assert_true(pass_autodiff(ts.g, ts.d));
    /* dL/dy is 1/N everywhere: one constant with npow -1, summed into the bias as N * 1/N = 1 */
    Node *gb = output("grad.b");
    assert_non_null(gb);
    assert_int_equal(gb->op, OP_CONST);
    assert_true(gb->attr.value == 1.0);
    assert_int_equal(gb->attr.npow, 0);
    assert_true(ir_shape_eq(&gb->shape, &b->shape));
    assert_int_equal(ts_count_op(ts.g, OP_BROADCAST), 0);
}

static void test_no_multiplication_by_one(void **s) {
    (void)s;
    Node *p = ir_param(ts.g, L, "p", DT_F32, ts_shape(2, 2, 3));
    Node *e = ir_unary(ts.g, ts.d, L, OP_EXP, p);
    ir_add_output(ts.g, "loss", sum_all(e), false);
    int before = ts.g->nnodes;
    assert_true(pass_autodiff(ts.g, ts.d));
    /* d sum(exp p) / dp = 1 * exp(p): the forward node itself */
    assert_ptr_equal(output("grad.p"), e);
    for (int i = before; i < ts.g->nnodes; i++)
        assert_int_not_equal(ts.g->nodes[i]->op, OP_MUL);
}

static void test_frozen_param_gets_no_gradient(void **s) {
    (void)s;
    Node *p = ir_param(ts.g, L, "p", DT_F32, ts_shape(1, 3));
    Node *q = ir_param(ts.g, L, "q", DT_F32, ts_shape(1, 3));
    q->attr.frozen = true;
    ir_add_output(ts.g, "loss", sum_all(ir_binary(ts.g, ts.d, L, OP_MUL, p, q)), false);
    assert_true(pass_autodiff(ts.g, ts.d));
    assert_non_null(output("grad.p"));
    assert_null(output("grad.q"));
    assert_ptr_equal(output("grad.p"), q);
}

static void test_unused_param_gets_zeros(void **s) {
    (void)s;
    Node *p = ir_param(ts.g, L, "p", DT_F32, ts_shape(1, 3));
    Node *u = ir_param(ts.g, L, "unused", DT_F64, ts_shape(2, 2, 5));
    ir_add_output(ts.g, "loss", sum_all(ir_unary(ts.g, ts.d, L, OP_TANH, p)), false);
    assert_true(pass_autodiff(ts.g, ts.d));
    Node *gu = output("grad.unused");
    assert_non_null(gu);
    assert_int_equal(gu->op, OP_CONST);
    assert_true(gu->attr.value == 0.0);
    assert_int_equal(gu->dtype, DT_F64);
    assert_true(ir_shape_eq(&gu->shape, &u->shape));
    assert_true(ir_verify(ts.g, ts.d));
}

/* accuracy-like paths: argmax, compare, one_hot and integer casts stop the gradient */
static void test_no_gradient_through_argmax_compare_cast(void **s) {
    (void)s;
    Node *p = ir_param(ts.g, L, "p", DT_F32, ts_shape(2, 2, 3));
    Node *am = ir_argmax(ts.g, ts.d, L, p, 1, false);
    Node *oh = ir_one_hot(ts.g, ts.d, L, am, 3, DT_F32);
    Node *gt = ir_binary(ts.g, ts.d, L, OP_GT, p, ir_const(ts.g, L, DT_F32, ir_shape_scalar(), 0));
    Node *c = ir_cast(ts.g, L, gt, DT_F32);
    Node *ip = ir_cast(ts.g, L, ir_cast(ts.g, L, p, DT_I32), DT_F32);
    Node *y = ir_binary(ts.g, ts.d, L, OP_ADD, ir_binary(ts.g, ts.d, L, OP_ADD, oh, c), ip);
    ir_add_output(ts.g, "loss", sum_all(y), false);
    int before = ts.g->nnodes;
    assert_true(pass_autodiff(ts.g, ts.d));
    Node *gp = output("grad.p");
    assert_non_null(gp);
    assert_int_equal(gp->op, OP_CONST);
    assert_true(gp->attr.value == 0.0);
    assert_int_equal(ts.g->nnodes, before + 1); /* the zeros only */
}

static void test_gradient_nodes_carry_forward_location(void **s) {
    (void)s;
    Node *p = ir_param(ts.g, (Loc){0}, "p", DT_F32, ts_shape(1, 3));
    Loc here = {"m.lathe", 12, 9};
    Node *t = ir_unary(ts.g, ts.d, here, OP_TANH, p);
    ir_add_output(ts.g, "loss", sum_all(t), false);
    assert_true(pass_autodiff(ts.g, ts.d));
    Node *gp = output("grad.p"); /* 1 - tanh^2 */
    assert_int_equal(gp->op, OP_SUB);
    assert_string_equal(gp->loc.file, "m.lathe");
    assert_int_equal(gp->loc.line, 12);
    assert_int_equal(gp->loc.col, 9);
}

static void test_missing_loss_is_error(void **s) {
    (void)s;
    Node *p = ir_param(ts.g, L, "p", DT_F32, ts_shape(1, 3));
    ir_add_output(ts.g, "logits", p, false);
    assert_false(pass_autodiff(ts.g, ts.d));
    assert_int_equal(diag_error_count(ts.d), 1);
    assert_non_null(strstr(diag_first_message(ts.d), "loss"));
}

static void test_non_scalar_loss_is_error(void **s) {
    (void)s;
    Node *p = ir_param(ts.g, L, "p", DT_F32, ts_shape(1, 3));
    ir_add_output(ts.g, "loss", ir_unary(ts.g, ts.d, L, OP_EXP, p), false);
    assert_false(pass_autodiff(ts.g, ts.d));
    assert_non_null(strstr(diag_first_message(ts.d), "scalar"));
    assert_int_equal(diag_first_loc(ts.d).line, 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_linear_gradient_uses_matmul_flags, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_mean_over_batch_gradient_is_one_over_n_const, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_no_multiplication_by_one, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_frozen_param_gets_no_gradient, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_unused_param_gets_zeros, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_no_gradient_through_argmax_compare_cast, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_gradient_nodes_carry_forward_location, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_missing_loss_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_non_scalar_loss_is_error, setup, ts_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
