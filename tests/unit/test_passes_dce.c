/* test_passes_dce.c: pass_dce drops what no output needs, renumbers, and keeps the graph's arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../passes/passes.h"

static Arena *A;
static Diag *D;
static Graph *G;
static const Loc L = {"d.lathe", 1, 1};

static int setup(void **s) {
    (void)s;
    A = arena_new();
    D = diag_new(stderr);
    G = ir_graph_new(A, "predict");
    return 0;
}

static int teardown(void **s) {
    (void)s;
    diag_free(D);
    arena_free(A);
    return 0;
}

static Shape v3(void) { return ir_shape(1, (int64_t[]){3}); }

static void test_dce_removes_dead_chain_and_renumbers(void **s) {
    (void)s;
    Node *x = ir_input(G, L, "x", DT_F32, v3());
    Node *dead1 = ir_unary(G, D, L, OP_EXP, x);
    ir_unary(G, D, L, OP_LOG, dead1);
    ir_const(G, L, DT_F32, v3(), 7);
    Node *y = ir_unary(G, D, L, OP_TANH, x);
    ir_add_output(G, "y", y, false);
    assert_true(pass_dce(G, D));
    assert_true(ir_verify(G, D));
    assert_int_equal(G->nnodes, 2);
    assert_ptr_equal(G->nodes[0], x);
    assert_ptr_equal(G->nodes[1], y);
    assert_int_equal(y->id, 1);
    assert_ptr_equal(G->outputs[0].value, y);
}

static void test_dce_keeps_unused_arguments(void **s) {
    (void)s;
    Node *x = ir_input(G, L, "x", DT_F32, v3());
    Node *lab = ir_input(G, L, "label", DT_I64, v3());
    Node *p = ir_param(G, L, "p", DT_F32, v3());
    Node *st = ir_state(G, L, "running_mean", DT_F32, v3());
    ir_add_output(G, "y", ir_unary(G, D, L, OP_NEG, x), false);
    assert_true(pass_dce(G, D));
    assert_int_equal(G->nnodes, 5);
    assert_ptr_equal(ir_find_leaf(G, OP_INPUT, "label"), lab);
    assert_ptr_equal(ir_find_leaf(G, OP_PARAM, "p"), p);
    assert_ptr_equal(ir_find_leaf(G, OP_STATE, "running_mean"), st);
}

static void test_dce_keeps_everything_outputs_need(void **s) {
    (void)s;
    Node *p = ir_param(G, L, "p", DT_F32, v3());
    Node *c = ir_const(G, L, DT_F32, ir_shape_scalar(), 2);
    Node *m = ir_binary(G, D, L, OP_MUL, p, c);
    Node *u = ir_binary(G, D, L, OP_SUB, p, m);
    ir_add_output(G, "loss", ir_reduce(G, D, L, OP_REDUCE_SUM, m, 1, false), false);
    ir_add_output(G, "p", u, true);
    int before = G->nnodes;
    assert_true(pass_dce(G, D));
    assert_true(ir_verify(G, D));
    assert_int_equal(G->nnodes, before);
    for (int i = 0; i < G->nnodes; i++)
        assert_int_equal(G->nodes[i]->id, i);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dce_removes_dead_chain_and_renumbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dce_keeps_unused_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dce_keeps_everything_outputs_need, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
