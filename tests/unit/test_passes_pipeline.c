/* test_passes_pipeline.c: pass_pipeline runs the passes in order on the right graphs, stops and dumps after
   a named pass, and rejects an unknown name listing the valid ones. */
#include "support.h"

#include <string.h>

#include "../../passes/passes.h"

static Program *P;
static const Loc L = {"p.lathe", 2, 5};

/* loss = mean over the batch of sum(x @ w.T + b) */
static Graph *linear_graph(const char *name, bool with_loss) {
    Graph *g = ir_graph_new(ts.a, name);
    Node *x = ir_input(g, L, "x", DT_F32, ts_shape(2, IR_DIM_N, 4));
    Node *w = ir_param(g, L, "w", DT_F32, ts_shape(2, 3, 4));
    Node *b = ir_param(g, L, "b", DT_F32, ts_shape(1, 3));
    Node *t = ir_transpose(g, ts.d, L, w, (int[]){1, 0});
    Node *y = ir_binary(g, ts.d, L, OP_ADD, ir_matmul(g, ts.d, L, x, t, false, false), b);
    if (!with_loss) {
        ir_add_output(g, "logits", y, false);
        return g;
    }
    Node *r = ir_reduce(g, ts.d, L, OP_REDUCE_SUM, y, 2, false);
    ir_add_output(g, "loss", ir_reduce(g, ts.d, L, OP_REDUCE_MEAN, r, 1, false), false);
    return g;
}

static int setup(void **s) {
    (void)s;
    ts_open(NULL, NULL);
    P = arena_alloc(ts.a, sizeof *P);
    P->arena = ts.a;
    P->train = linear_graph("train", true);
    P->eval = linear_graph("eval", true);
    P->predict = linear_graph("predict", false);
    static const char *keys[] = {"lr"};
    static RVal lr = {.kind = RV_NUM, .num = 0.01};
    static RVal *items[] = {&lr};
    static RVal opt = {.kind = RV_CALL, .str = "SGD", .nitems = 1, .items = items, .keys = keys};
    P->train->optimizer = &opt;
    return 0;
}

static char *run_dumped(const char *stop, bool *ok) {
    TsCapture c;
    *ok = pass_pipeline(P, stop, ts_capture_open(&c), ts.d);
    return ts_capture_close(&c);
}

static void test_pipeline_unknown_pass_lists_names(void **s) {
    (void)s;
    assert_false(pass_pipeline(P, "fuse-everything", NULL, ts.d));
    const char *m = diag_first_message(ts.d);
    assert_non_null(strstr(m, "fuse-everything"));
    assert_non_null(strstr(m, "lower, autodiff, optimizer, simplify, cse, layout, dce, fuse, memplan"));
}

static void test_pipeline_names_in_order(void **s) {
    (void)s;
    const char *want[] = {"lower", "autodiff", "optimizer", "simplify", "cse", "layout", "dce", "fuse", "memplan"};
    for (int i = 0; i < 9; i++)
        assert_string_equal(pass_names[i], want[i]);
    assert_null(pass_names[9]);
}

static void test_pipeline_stop_after_lower_changes_nothing(void **s) {
    (void)s;
    int n = P->train->nnodes;
    bool ok;
    char *text = run_dumped("lower", &ok);
    assert_true(ok);
    assert_int_equal(P->train->nnodes, n);
    assert_non_null(strstr(text, "graph train {"));
    assert_non_null(strstr(text, "graph eval {"));
    assert_non_null(strstr(text, "graph predict {"));
}

static void test_pipeline_stop_after_autodiff_dumps_gradients(void **s) {
    (void)s;
    bool ok;
    char *text = run_dumped("autodiff", &ok);
    assert_true(ok);
    assert_non_null(strstr(text, "output \"grad.w\""));
    assert_null(strstr(text, "input \"lr\""));
    assert_int_equal(P->eval->noutputs, 1); /* autodiff runs on train only */
}

static void test_pipeline_stop_after_dce_has_updates_and_no_transposes(void **s) {
    (void)s;
    bool ok;
    char *text = run_dumped("dce", &ok);
    assert_true(ok);
    assert_non_null(strstr(text, "update \"w\""));
    assert_non_null(strstr(text, "input \"lr\""));
    assert_int_equal(ts_count_op(P->train, OP_TRANSPOSE), 0);
    assert_int_equal(ts_count_op(P->eval, OP_TRANSPOSE), 0);
    assert_int_equal(ts_count_op(P->predict, OP_TRANSPOSE), 0);
    assert_null(ir_find_leaf(P->eval, OP_INPUT, "lr"));
}

static void test_pipeline_runs_every_pass(void **s) {
    (void)s;
    assert_true(pass_pipeline(P, NULL, NULL, ts.d));
    assert_int_equal(diag_error_count(ts.d), 0);
    Graph *gs[4];
    for (int k = 0, ng = program_graphs(P, gs); k < ng; k++)
        for (int i = 0; i < gs[k]->nnodes; i++)
            assert_int_not_equal(gs[k]->nodes[i]->mem.kind, MEM_NONE);
}

static void test_pipeline_missing_optimizer_is_error(void **s) {
    (void)s;
    P->train->optimizer = NULL;
    assert_false(pass_pipeline(P, NULL, NULL, ts.d));
    assert_non_null(strstr(diag_first_message(ts.d), "optimizer"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pipeline_unknown_pass_lists_names, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_names_in_order, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_stop_after_lower_changes_nothing, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_stop_after_autodiff_dumps_gradients, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_stop_after_dce_has_updates_and_no_transposes, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_runs_every_pass, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_missing_optimizer_is_error, setup, ts_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
