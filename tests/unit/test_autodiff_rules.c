/* test_autodiff_rules.c: what pass_autodiff builds, beyond the numbers: which parameters get gradients,
   where the gradient stops, that Linear's gradients are matmul flags and not transposes, that constants are
   folded rather than multiplied by, which ops the layers issue's gradients are made of, and the errors. */
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

/* random numbers, iota and argmin carry no gradient; random stays a plain factor */
static void test_no_gradient_through_random_iota_argmin(void **s) {
    (void)s;
    Node *seed = ir_input(ts.g, L, "seed", DT_I64, ir_shape_scalar());
    Node *step = ir_input(ts.g, L, "step", DT_I64, ir_shape_scalar());
    Node *p = ir_param(ts.g, L, "p", DT_F32, ts_shape(2, 2, 3));
    Node *r = ir_random(ts.g, ts.d, L, seed, step, ts_shape(2, 2, 3), 0);
    Node *io = ir_iota(ts.g, L, DT_F32, ts_shape(2, 2, 3), 1);
    Node *am = ir_cast(ts.g, L, ir_argmin(ts.g, ts.d, L, p, 1, true), DT_F32);
    Node *y = ir_binary(ts.g, ts.d, L, OP_MUL, p, r);
    y = ir_binary(ts.g, ts.d, L, OP_ADD, ir_binary(ts.g, ts.d, L, OP_ADD, y, io), am);
    ir_add_output(ts.g, "loss", sum_all(y), false);
    assert_true(pass_autodiff(ts.g, ts.d));
    assert_true(ir_verify(ts.g, ts.d));
    assert_ptr_equal(output("grad.p"), r); /* d sum(p * r) / dp = r */
    assert_int_equal(ts.g->noutputs, 2);
}

/* a backward op on a gradient path would need its own derivative: a diagnostic, not a wrong gradient */
static void test_backward_op_on_gradient_path_is_error(void **s) {
    (void)s;
    Node *x = ir_param(ts.g, L, "x", DT_F32, ts_shape(4, 1, 1, 4, 4));
    Node *gy = ir_param(ts.g, L, "gy", DT_F32, ts_shape(4, 1, 1, 2, 2));
    Attr a = {0};
    a.window[0] = a.window[1] = a.stride[0] = a.stride[1] = 2;
    a.dilation[0] = a.dilation[1] = 1;
    a.shape = x->shape;
    Node *in[2] = {x, gy};
    Node *gx = ir_window(ts.g, ts.d, L, OP_MAX_POOL2D_BWD, 2, in, &a);
    assert_non_null(gx);
    ir_add_output(ts.g, "loss", sum_all(gx), false);
    Diag *quiet = diag_new(NULL);
    assert_false(pass_autodiff(ts.g, quiet));
    assert_int_equal(diag_error_count(quiet), 1);
    assert_non_null(strstr(diag_first_message(quiet), "second derivatives are not supported"));
    assert_int_equal(diag_first_loc(quiet).line, 3);
    diag_free(quiet);
}

/* BatchNorm's running statistics: a frozen buffer PARAM with an update output built before autodiff, which
   autodiff leaves as it is and gives no gradient */
static void test_buffer_update_outputs_left_alone(void **s) {
    (void)s;
    Node *x = ir_input(ts.g, L, "x", DT_F32, ts_shape(2, N, 3));
    Node *w = ir_param(ts.g, L, "w", DT_F32, ts_shape(1, 3));
    Node *rm = ir_param(ts.g, L, "bn.running_mean", DT_F32, ts_shape(1, 3));
    rm->attr.frozen = true;
    Node *h = ir_binary(ts.g, ts.d, L, OP_MUL, x, w);
    Node *mean = ir_reduce(ts.g, ts.d, L, OP_REDUCE_MEAN, h, 1, false);
    Node *c = ir_const(ts.g, L, DT_F32, ir_shape_scalar(), 0.9);
    Node *nrm = ir_binary(ts.g, ts.d, L, OP_ADD, ir_binary(ts.g, ts.d, L, OP_MUL, rm, c), mean);
    ir_add_output(ts.g, "bn.running_mean", nrm, true);
    Node *y = ir_binary(ts.g, ts.d, L, OP_SUB, h, mean);
    ir_add_output(ts.g, "loss", sum_all(ir_binary(ts.g, ts.d, L, OP_MUL, y, y)), false);
    assert_true(pass_autodiff(ts.g, ts.d));
    assert_true(ir_verify(ts.g, ts.d));
    assert_int_equal(ts.g->noutputs, 3);
    assert_string_equal(ts.g->outputs[0].name, "bn.running_mean");
    assert_true(ts.g->outputs[0].update);
    assert_ptr_equal(ts.g->outputs[0].value, nrm);
    assert_non_null(output("grad.w"));
    assert_null(output("grad.bn.running_mean"));
}

/* conv2d's gradients are its two backward ops with its attributes; data x gets none */
static void test_conv2d_gradient_is_bwd_weight_with_attrs(void **s) {
    (void)s;
    Node *x = ir_input(ts.g, L, "x", DT_F32, ts_shape(4, N, 4, 9, 9));
    Node *w = ir_param(ts.g, L, "w", DT_F32, ts_shape(4, 4, 2, 3, 3));
    Attr a = {0};
    a.stride[0] = a.stride[1] = 2;
    a.pad[0] = a.pad[1] = 1;
    a.dilation[0] = a.dilation[1] = 1;
    a.groups = 2;
    Node *in[2] = {x, w};
    Node *y = ir_window(ts.g, ts.d, L, OP_CONV2D, 2, in, &a);
    assert_non_null(y);
    Node *in2[2] = {ir_unary(ts.g, ts.d, L, OP_RELU, y), w};
    Node *y2 = ir_window(ts.g, ts.d, L, OP_CONV2D, 2, in2, &a);
    ir_add_output(ts.g, "loss", sum_all(y2), false);
    assert_true(pass_autodiff(ts.g, ts.d));
    assert_true(ir_verify(ts.g, ts.d));
    /* the second conv's input needs a gradient, the first one's does not */
    assert_int_equal(ts_count_op(ts.g, OP_CONV2D_BWD_INPUT), 1);
    assert_int_equal(ts_count_op(ts.g, OP_CONV2D_BWD_WEIGHT), 2);
    Node *gw = output("grad.w");
    assert_int_equal(gw->op, OP_ADD);
    Node *bw = gw->inputs[0]->op == OP_CONV2D_BWD_WEIGHT ? gw->inputs[0] : gw->inputs[1];
    assert_int_equal(bw->op, OP_CONV2D_BWD_WEIGHT);
    assert_true(ir_shape_eq(&bw->shape, &w->shape));
    assert_int_equal(bw->attr.stride[0], 2);
    assert_int_equal(bw->attr.pad[1], 1);
    assert_int_equal(bw->attr.groups, 2);
}

/* a concat's gradient is one slice per input that needs it */
static void test_concat_gradient_slices_only_needed_inputs(void **s) {
    (void)s;
    Node *x = ir_input(ts.g, L, "x", DT_F32, ts_shape(2, N, 3));
    Node *p = ir_param(ts.g, L, "p", DT_F32, ts_shape(2, N, 2));
    Node *q = ir_param(ts.g, L, "q", DT_F32, ts_shape(2, N, 4));
    Node *xs[3] = {x, p, q};
    Node *c = ir_concat(ts.g, ts.d, L, 3, xs, 1);
    assert_non_null(c);
    ir_add_output(ts.g, "loss", sum_all(ir_unary(ts.g, ts.d, L, OP_TANH, c)), false);
    assert_true(pass_autodiff(ts.g, ts.d));
    assert_true(ir_verify(ts.g, ts.d));
    assert_int_equal(ts_count_op(ts.g, OP_SLICE), 2);
    Node *gq = output("grad.q");
    assert_int_equal(gq->op, OP_SLICE);
    assert_int_equal(gq->attr.start[0], 0);
    assert_int_equal(gq->attr.start[1], 5);
    assert_int_equal(gq->attr.step[1], 1);
}

static void test_gather_gradient_is_scatter_add(void **s) {
    (void)s;
    Node *p = ir_param(ts.g, L, "p", DT_F32, ts_shape(2, N, 10));
    Node *idx = ir_input(ts.g, L, "label", DT_I64, ts_shape(2, N, 1));
    Node *g = ir_gather(ts.g, ts.d, L, ir_unary(ts.g, ts.d, L, OP_EXP, p), idx, 1);
    ir_add_output(ts.g, "loss", sum_all(g), false);
    assert_true(pass_autodiff(ts.g, ts.d));
    assert_true(ir_verify(ts.g, ts.d));
    assert_int_equal(ts_count_op(ts.g, OP_SCATTER_ADD), 1);
    Node *gp = output("grad.p"); /* scatter_add(label, 1) * exp(p) */
    assert_int_equal(gp->op, OP_MUL);
    assert_int_equal(gp->inputs[0]->op, OP_SCATTER_ADD);
    assert_ptr_equal(gp->inputs[0]->inputs[0], idx);
    assert_int_equal(gp->inputs[0]->attr.axis, 1);
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
        cmocka_unit_test_setup_teardown(test_no_gradient_through_random_iota_argmin, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_backward_op_on_gradient_path_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_buffer_update_outputs_left_alone, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_conv2d_gradient_is_bwd_weight_with_attrs, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_concat_gradient_slices_only_needed_inputs, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_gather_gradient_is_scatter_add, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_gradient_nodes_carry_forward_location, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_missing_loss_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_non_scalar_loss_is_error, setup, ts_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
