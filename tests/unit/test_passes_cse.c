/* test_passes_cse.c: pass_cse merges nodes of one op, type, attributes and inputs (constants by value),
   never argument leaves or different random streams, and stays linear on large graphs. */
#include "support.h"

#include <math.h>
#include <string.h>
#include <time.h>

#include "../../passes/passes.h"

#define N IR_DIM_N

static const Loc L = {"c.lathe", 1, 1};

static int setup(void **s) {
    (void)s;
    ts_open("eval", stderr);
    return 0;
}

static Node *input(const char *name, Shape s) { return ir_input(ts.g, L, name, DT_F32, s); }
static Node *unary(Op op, Node *x) { return ir_unary(ts.g, ts.d, L, op, x); }
static Node *bin(Op op, Node *a, Node *b) { return ir_binary(ts.g, ts.d, L, op, a, b); }
static void out(const char *name, Node *v) { ir_add_output(ts.g, name, v, false); }
static Node *outv(int i) { return ts.g->outputs[i].value; }

static void cse(void) {
    assert_true(pass_cse(ts.g, ts.d));
    assert_true(ir_verify(ts.g, ts.d));
}

static void test_duplicate_unary_merges_and_is_removed(void **s) {
    (void)s;
    Node *x = input("x", ts_shape(2, N, 4));
    out("a", unary(OP_EXP, x));
    out("b", unary(OP_EXP, x));
    cse();
    assert_ptr_equal(outv(0), outv(1));
    assert_int_equal(ts.g->nnodes, 2);
}

/* the users of merged nodes become equal too, in the same sweep */
static void test_chain_merges_transitively(void **s) {
    (void)s;
    Node *x = input("x", ts_shape(2, N, 4));
    Node *y = input("y", ts_shape(2, N, 4));
    out("a", unary(OP_RELU, bin(OP_ADD, unary(OP_EXP, x), y)));
    out("b", unary(OP_RELU, bin(OP_ADD, unary(OP_EXP, x), y)));
    cse();
    assert_ptr_equal(outv(0), outv(1));
    assert_int_equal(ts.g->nnodes, 5);
}

static void test_commutative_operands_merge_swapped(void **s) {
    (void)s;
    Node *x = input("x", ts_shape(2, N, 4));
    Node *y = input("y", ts_shape(2, N, 4));
    out("a", bin(OP_ADD, x, y));
    out("b", bin(OP_ADD, y, x));
    out("c", bin(OP_SUB, x, y));
    out("d", bin(OP_SUB, y, x));
    out("e", bin(OP_MAX, x, y)); /* float max: max(+0, -0) depends on the order */
    out("f", bin(OP_MAX, y, x));
    cse();
    assert_ptr_equal(outv(0), outv(1));
    assert_ptr_not_equal(outv(2), outv(3));
    assert_ptr_not_equal(outv(4), outv(5));
}

static void test_constants_merge_by_value_type_and_npow(void **s) {
    (void)s;
    Shape sc = ir_shape_scalar();
    out("a", ir_const(ts.g, L, DT_F32, sc, 0.5));
    out("b", ir_const(ts.g, L, DT_F32, sc, 0.5));
    out("c", ir_const(ts.g, L, DT_F64, sc, 0.5));
    out("d", ir_const(ts.g, L, DT_F32, ts_shape(1, 3), 0.5));
    out("e", ir_const_npow(ts.g, L, DT_F32, sc, 0.5, -1));
    out("f", ir_const(ts.g, L, DT_F32, sc, 0.0));
    out("g", ir_const(ts.g, L, DT_F32, sc, -0.0));
    out("h", ir_const(ts.g, L, DT_F32, sc, NAN));
    out("i", ir_const(ts.g, L, DT_F32, sc, NAN));
    cse();
    assert_ptr_equal(outv(0), outv(1));
    for (int i = 2; i <= 6; i++)
        for (int j = 0; j < i; j++)
            assert_ptr_not_equal(outv(i), outv(j));
    assert_ptr_equal(outv(7), outv(8)); /* the same bits */
    assert_int_equal(ts.g->nnodes, 7);
}

static void test_argument_leaves_never_merge(void **s) {
    (void)s;
    Node *a = input("a", ts_shape(1, 4));
    Node *b = input("b", ts_shape(1, 4));
    Node *p = ir_param(ts.g, L, "p", DT_F32, ts_shape(1, 4));
    Node *q = ir_param(ts.g, L, "q", DT_F32, ts_shape(1, 4));
    Node *st = ir_state(ts.g, L, "s", DT_F32, ts_shape(1, 4));
    Node *st2 = ir_state(ts.g, L, "t", DT_F32, ts_shape(1, 4));
    out("a", bin(OP_MUL, a, b));
    out("b", bin(OP_MUL, p, q));
    out("c", bin(OP_MUL, st, st2));
    int before = ts.g->nnodes;
    cse();
    assert_int_equal(ts.g->nnodes, before);
}

static void test_random_merges_only_within_a_stream(void **s) {
    (void)s;
    Node *seed = ir_input(ts.g, L, "seed", DT_I64, ir_shape_scalar());
    Node *step = ir_input(ts.g, L, "step", DT_I64, ir_shape_scalar());
    out("a", ir_random(ts.g, ts.d, L, seed, step, ts_shape(1, 4), 0));
    out("b", ir_random(ts.g, ts.d, L, seed, step, ts_shape(1, 4), 1));
    out("c", ir_random(ts.g, ts.d, L, seed, step, ts_shape(1, 4), 0));
    out("d", ir_random(ts.g, ts.d, L, seed, step, ts_shape(1, 5), 0));
    cse();
    assert_ptr_not_equal(outv(0), outv(1));
    assert_ptr_equal(outv(0), outv(2));
    assert_ptr_not_equal(outv(0), outv(3));
}

static void test_attributes_keep_nodes_apart(void **s) {
    (void)s;
    Node *x = input("x", ts_shape(3, N, 4, 4));
    out("t1", ir_transpose(ts.g, ts.d, L, x, (int[]){0, 2, 1}));
    out("t2", ir_transpose(ts.g, ts.d, L, x, (int[]){0, 2, 1}));
    out("r1", ir_reduce(ts.g, ts.d, L, OP_REDUCE_SUM, x, 2, false));
    out("r2", ir_reduce(ts.g, ts.d, L, OP_REDUCE_SUM, x, 4, false));
    out("r3", ir_reduce(ts.g, ts.d, L, OP_REDUCE_SUM, x, 2, true));
    out("m1", ir_matmul(ts.g, ts.d, L, x, x, false, true));
    out("m2", ir_matmul(ts.g, ts.d, L, x, x, true, false));
    out("m3", ir_matmul(ts.g, ts.d, L, x, x, false, true));
    out("s1", ir_slice(ts.g, ts.d, L, x, (int64_t[]){0, 0, 0}, (int64_t[]){1, 2, 1}, ts_shape(3, N, 2, 4)));
    out("s2", ir_slice(ts.g, ts.d, L, x, (int64_t[]){0, 1, 0}, (int64_t[]){1, 2, 1}, ts_shape(3, N, 2, 4)));
    out("c1", ir_cast(ts.g, L, x, DT_F64));
    out("c2", ir_cast(ts.g, L, x, DT_I32));
    cse();
    assert_ptr_equal(outv(0), outv(1));
    assert_ptr_not_equal(outv(2), outv(3));
    assert_ptr_not_equal(outv(2), outv(4));
    assert_ptr_not_equal(outv(5), outv(6));
    assert_ptr_equal(outv(5), outv(7));
    assert_ptr_not_equal(outv(8), outv(9));
    assert_ptr_not_equal(outv(10), outv(11));
}

/* Thousands of nodes that differ in one field only (and so share most of their hash input), each twice:
   every pair merges, no two different ones do. */
static void test_many_similar_nodes_merge_pairwise(void **s) {
    (void)s;
    enum { K = 3000 };
    Node *x = input("x", ts_shape(1, N));
    Node *c[K], *m[K];
    for (int i = 0; i < K; i++)
        c[i] = ir_const(ts.g, L, DT_F64, ir_shape_scalar(), 1.0 + i * 0x1p-40);
    for (int i = 0; i < K; i++)
        ir_const(ts.g, L, DT_F64, ir_shape_scalar(), 1.0 + i * 0x1p-40);
    Node *xd = ir_cast(ts.g, L, x, DT_F64);
    for (int i = 0; i < K; i++) {
        m[i] = bin(OP_MUL, xd, c[i]);
        out(arena_printf(ts.a, "a%d", i), m[i]);
    }
    for (int i = 0; i < K; i++) {
        Node *dup = ts.g->nodes[1 + K + i]; /* the second constant of value i */
        out(arena_printf(ts.a, "b%d", i), bin(OP_MUL, xd, dup));
    }
    cse();
    assert_int_equal(ts.g->nnodes, 2 + K + K);
    for (int i = 0; i < K; i++) {
        assert_ptr_equal(outv(i), outv(K + i));
        Node *k = outv(i)->inputs[1];
        assert_true(k->attr.value == 1.0 + i * 0x1p-40);
        if (i)
            assert_ptr_not_equal(outv(i), outv(i - 1));
    }
}

/* two equal chains of 10000 nodes: one sweep merges them, in linear time */
static void test_chain_of_20000_nodes_is_fast(void **s) {
    (void)s;
    enum { LEN = 10000 };
    Node *x = input("x", ts_shape(1, 8));
    Node *a = x, *b = x;
    static const Op ops[] = {OP_EXP, OP_NEG, OP_RELU, OP_TANH};
    for (int i = 0; i < LEN; i++)
        a = unary(ops[i % 4], a);
    for (int i = 0; i < LEN; i++)
        b = unary(ops[i % 4], b);
    out("a", a);
    out("b", b);
    clock_t t0 = clock();
    cse();
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    assert_ptr_equal(outv(0), outv(1));
    assert_int_equal(ts.g->nnodes, LEN + 1);
    assert_true(secs < 1.0);
}

/* members of fusion groups (text IR after fuse) keep their identity */
static void test_fused_members_do_not_merge(void **s) {
    (void)s;
    Graph *g = ts_parse_graph("f.ir", "graph eval {\n"
                                      "  %0 = input \"x\" : f32[N,4]\n"
                                      "  %1 = exp %0 : f32[N,4] in %2\n"
                                      "  %2 = relu %1 : f32[N,4] in %2\n"
                                      "  %3 = exp %0 : f32[N,4] in %4\n"
                                      "  %4 = relu %3 : f32[N,4] in %4\n"
                                      "  output \"a\" = %2\n"
                                      "  output \"b\" = %4\n"
                                      "}\n");
    assert_true(pass_cse(g, ts.d));
    assert_true(ir_verify(g, ts.d));
    assert_int_equal(g->nnodes, 5);
}

/* the values stay: the interpreter gives the same outputs after the pass */
static void test_merged_graph_keeps_values(void **s) {
    (void)s;
    Node *x = input("x", ts_shape(2, N, 3));
    Node *e1 = unary(OP_EXP, x), *e2 = unary(OP_EXP, x);
    out("y", bin(OP_SUB, bin(OP_MUL, e1, e2), bin(OP_ADD, e2, ir_const(ts.g, L, DT_F32, ir_shape_scalar(), 1))));
    double xs[6] = {0.1, -0.2, 0.3, 1.5, -2, 0};
    IBinding b = {"x", {ts_shape(2, 2, 3), xs}};
    ITensor *before = ir_interp(ts.a, ts.g, 2, &b, 1, ts.d);
    assert_non_null(before);
    cse();
    ITensor *after = ir_interp(ts.a, ts.g, 2, &b, 1, ts.d);
    assert_non_null(after);
    for (int i = 0; i < 6; i++)
        assert_true(memcmp(&before[0].data[i], &after[0].data[i], sizeof(double)) == 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_duplicate_unary_merges_and_is_removed, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_chain_merges_transitively, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_commutative_operands_merge_swapped, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_constants_merge_by_value_type_and_npow, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_argument_leaves_never_merge, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_random_merges_only_within_a_stream, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_attributes_keep_nodes_apart, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_many_similar_nodes_merge_pairwise, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_chain_of_20000_nodes_is_fast, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_fused_members_do_not_merge, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_merged_graph_keeps_values, setup, ts_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
