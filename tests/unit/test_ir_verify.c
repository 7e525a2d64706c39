/* test_ir_verify.c: the verifier accepts what the builder makes and catches each broken invariant that a
   faulty pass could leave behind, naming the node. */
#include "support.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../../ir/ir.h"

#define N IR_DIM_N

typedef struct Fix {
    Node *x, *w, *b, *mm, *y, *loss;
} Fix;

static Fix F;
static const Loc L = {"m.lathe", 4, 2};

/* x @ w^T + b, summed: a small train-like graph with an update of w. */
static int setup(void **state)
{
    memset(&F, 0, sizeof F);
    ts_open("train", NULL);
    F.x = ir_input(ts.g, L, "x", DT_F32, ts_shape(2, N, 3));
    F.w = ir_param(ts.g, L, "w", DT_F32, ts_shape(2, 2, 3));
    F.b = ir_param(ts.g, L, "b", DT_F32, ts_shape(1, 2));
    F.mm = ir_matmul(ts.g, ts.d, L, F.x, F.w, false, true);
    F.y = ir_binary(ts.g, ts.d, L, OP_ADD, F.mm, F.b);
    F.loss = ir_reduce(ts.g, ts.d, L, OP_REDUCE_SUM, F.y, 3, false);
    ir_add_output(ts.g, "loss", F.loss, false);
    ir_add_output(ts.g, "w", ir_unary(ts.g, ts.d, L, OP_NEG, F.w), true);
    return 0;
}

static void assert_rejected(const char *msg)
{
    assert_false(ir_verify(ts.g, ts.d));
    if (strcmp(diag_first_message(ts.d), msg) != 0)
        fail_msg("message \"%s\", expected \"%s\"", diag_first_message(ts.d), msg);
}

static void test_builder_graph_verifies(void **state)
{
    assert_true(ir_verify(ts.g, ts.d));
    assert_int_equal(diag_error_count(ts.d), 0);
}

static void test_wrong_id(void **state)
{
    F.y->id = 7;
    assert_rejected("verify: node at index 4 (add) has id 7");
}

static void test_input_after_user(void **state)
{
    /* swap mm and y: y now comes before its input mm */
    ts.g->nodes[3] = F.y, ts.g->nodes[4] = F.mm;
    F.y->id = 3, F.mm->id = 4;
    assert_rejected("verify: %3 (add): input %4 does not precede it");
}

static void test_input_from_another_graph(void **state)
{
    Graph *h = ir_graph_new(ts.a, "other");
    Node *z = ir_input(h, L, "z", DT_F32, ts_shape(2, N, 2));
    F.y->inputs[0] = z;
    assert_rejected("verify: %4 (add): input 0 is not a node of graph train");
}

static void test_shape_out_of_date(void **state)
{
    F.y->shape = ts_shape(2, N, 3);
    assert_rejected("verify: %4 (add) has type f32[N,3], its shape rule gives f32[N,2]");
}

static void test_shape_rule_broken_by_rewrite(void **state)
{
    F.mm->attr.transpose_b = false;
    assert_rejected("verify: %3: matmul: inner dimensions differ: f32[N,3] @ f32[2,3]");
}

static void test_wrong_arity(void **state)
{
    F.y->ninputs = 1;
    assert_rejected("verify: %4: add: takes 2 inputs, not 1");
}

static void test_duplicate_leaf_name(void **state)
{
    ir_state(ts.g, L, "w", DT_F32, ts_shape(2, 2, 3));
    assert_rejected("verify: %7: state \"w\" has the name of %1");
}

static void test_earliest_repeated_leaf_name_is_reported(void **state)
{
    ir_input(ts.g, L, "c", DT_F32, ts_shape(0));                 /* %7 */
    ir_state(ts.g, L, "b", DT_F32, ts_shape(0));                 /* %8: the earliest repeat */
    ir_input(ts.g, L, "c", DT_F32, ts_shape(0));                 /* %9 */
    ir_state(ts.g, L, "x", DT_F32, ts_shape(0));                 /* %10 */
    assert_rejected("verify: %8: state \"b\" has the name of %2");
}

/* Verification runs after every pass; with 100000 parameters and their updates it took tens of seconds when
   it compared every pair of leaves and searched every update's parameter through the whole graph. */
static void test_many_params_verify_fast(void **state)
{
    int count = 100000;
    for (int i = 0; i < count; i++) {
        char name[32];
        snprintf(name, sizeof name, "p%d", i);
        Node *p = ir_param(ts.g, L, name, DT_F32, ts_shape(0));
        ir_add_output(ts.g, name, ir_unary(ts.g, ts.d, L, OP_NEG, p), true);
    }
    clock_t start = clock();
    assert_true(ir_verify(ts.g, ts.d));
    double seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
    if (seconds > 2)
        fail_msg("verify took %.1f s", seconds);
}

static void test_update_without_param(void **state)
{
    ir_add_output(ts.g, "v", F.y, true);
    assert_rejected("verify: graph train: update \"v\" has no param or state of that name");
}

static void test_update_type_mismatch(void **state)
{
    ir_add_output(ts.g, "b", F.y, true);
    assert_rejected("verify: graph train: update \"b\" is f32[N,2], the param is f32[2]");
}

/* buffers are frozen params that the train graph updates (BatchNorm's running_mean) */
static void test_update_of_frozen_param_is_a_buffer_update(void **state)
{
    F.w->attr.frozen = true;
    assert_true(ir_verify(ts.g, ts.d));
    assert_int_equal(diag_error_count(ts.d), 0);
}

static void test_duplicate_output_name(void **state)
{
    ir_add_output(ts.g, "loss", F.y, false);
    assert_rejected("verify: graph train: two outputs named \"loss\"");
}

static void test_output_outside_graph(void **state)
{
    Graph *h = ir_graph_new(ts.a, "other");
    ir_add_output(ts.g, "z", ir_input(h, L, "z", DT_F32, ts_shape(1, 1)), false);
    assert_rejected("verify: graph train: output 2 has no name or a value outside the graph");
}

static void test_update_of_state_verifies(void **state)
{
    Node *m = ir_state(ts.g, L, "m", DT_F32, ts_shape(1, 2));
    ir_add_output(ts.g, "m", ir_binary(ts.g, ts.d, L, OP_ADD, m, F.b), true);
    assert_true(ir_verify(ts.g, ts.d));
}

static void test_error_carries_node_location(void **state)
{
    F.y->shape = ts_shape(2, N, 3);
    assert_false(ir_verify(ts.g, ts.d));
    assert_string_equal(diag_first_loc(ts.d).file, "m.lathe");
    assert_int_equal(diag_first_loc(ts.d).line, 4);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, ts_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_builder_graph_verifies),
        T(test_wrong_id),
        T(test_input_after_user),
        T(test_input_from_another_graph),
        T(test_shape_out_of_date),
        T(test_shape_rule_broken_by_rewrite),
        T(test_wrong_arity),
        T(test_duplicate_leaf_name),
        T(test_earliest_repeated_leaf_name_is_reported),
        T(test_many_params_verify_fast),
        T(test_update_without_param),
        T(test_update_type_mismatch),
        T(test_update_of_frozen_param_is_a_buffer_update),
        T(test_duplicate_output_name),
        T(test_output_outside_graph),
        T(test_update_of_state_verifies),
        T(test_error_carries_node_location),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
