/* test_passes_dce.c: pass_dce drops what no output needs, renumbers, and keeps the graph's arguments. */
#include "support.h"

#include "../../passes/passes.h"

static const Loc L = {"d.lathe", 1, 1};

static int setup(void **s) {
    (void)s;
    ts_open("predict", stderr);
    return 0;
}

static Shape v3(void) { return ts_shape(1, 3); }

static void test_dce_removes_dead_chain_and_renumbers(void **s) {
    (void)s;
    Node *x = ir_input(ts.g, L, "x", DT_F32, v3());
    Node *dead1 = ir_unary(ts.g, ts.d, L, OP_EXP, x);
    ir_unary(ts.g, ts.d, L, OP_LOG, dead1);
    ir_const(ts.g, L, DT_F32, v3(), 7);
    Node *y = ir_unary(ts.g, ts.d, L, OP_TANH, x);
    ir_add_output(ts.g, "y", y, false);
    assert_true(pass_dce(ts.g, ts.d));
    assert_true(ir_verify(ts.g, ts.d));
    assert_int_equal(ts.g->nnodes, 2);
    assert_ptr_equal(ts.g->nodes[0], x);
    assert_ptr_equal(ts.g->nodes[1], y);
    assert_int_equal(y->id, 1);
    assert_ptr_equal(ts.g->outputs[0].value, y);
}

static void test_dce_keeps_unused_arguments(void **s) {
    (void)s;
    Node *x = ir_input(ts.g, L, "x", DT_F32, v3());
    Node *lab = ir_input(ts.g, L, "label", DT_I64, v3());
    Node *p = ir_param(ts.g, L, "p", DT_F32, v3());
    Node *st = ir_state(ts.g, L, "running_mean", DT_F32, v3());
    ir_add_output(ts.g, "y", ir_unary(ts.g, ts.d, L, OP_NEG, x), false);
    assert_true(pass_dce(ts.g, ts.d));
    assert_int_equal(ts.g->nnodes, 5);
    assert_ptr_equal(ir_find_leaf(ts.g, OP_INPUT, "label"), lab);
    assert_ptr_equal(ir_find_leaf(ts.g, OP_PARAM, "p"), p);
    assert_ptr_equal(ir_find_leaf(ts.g, OP_STATE, "running_mean"), st);
}

static void test_dce_keeps_everything_outputs_need(void **s) {
    (void)s;
    Node *p = ir_param(ts.g, L, "p", DT_F32, v3());
    Node *c = ir_const(ts.g, L, DT_F32, ir_shape_scalar(), 2);
    Node *m = ir_binary(ts.g, ts.d, L, OP_MUL, p, c);
    Node *u = ir_binary(ts.g, ts.d, L, OP_SUB, p, m);
    ir_add_output(ts.g, "loss", ir_reduce(ts.g, ts.d, L, OP_REDUCE_SUM, m, 1, false), false);
    ir_add_output(ts.g, "p", u, true);
    int before = ts.g->nnodes;
    assert_true(pass_dce(ts.g, ts.d));
    assert_true(ir_verify(ts.g, ts.d));
    assert_int_equal(ts.g->nnodes, before);
    for (int i = 0; i < ts.g->nnodes; i++)
        assert_int_equal(ts.g->nodes[i]->id, i);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dce_removes_dead_chain_and_renumbers, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_dce_keeps_unused_arguments, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_dce_keeps_everything_outputs_need, setup, ts_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
