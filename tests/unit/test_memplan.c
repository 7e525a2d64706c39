/* test_memplan.c: the static memory plan. Buffers that are live at the same time never share bytes (every
   pair checked, for several batch sizes), buffers are reused once dead, offsets are 64-byte aligned,
   outputs are written straight into their arguments, and parameter updates happen in place exactly when
   no later reader needs the old value. */
#include "support.h"

#include <stdio.h>
#include <string.h>

#include "../../passes/passes.h"

#define N IR_DIM_N

static const Loc L = {"test_memplan", 1, 1};

static int setup(void **state) {
    ts_open("train", stderr);
    return 0;
}

static Node *bin(Op op, Node *x, Node *y) {
    Node *r = ir_binary(ts.g, ts.d, L, op, x, y);
    assert_non_null(r);
    return r;
}

static Node *un(Op op, Node *x) {
    Node *r = ir_unary(ts.g, ts.d, L, op, x);
    assert_non_null(r);
    return r;
}

static int arg_index(const char *name, ArgRole role) {
    int nargs = ir_graph_args(ts.g, NULL);
    GraphArg args[64];
    assert_true(nargs <= 64);
    ir_graph_args(ts.g, args);
    for (int a = 0; a < nargs; a++)
        if (args[a].role == role && strcmp(args[a].name, name) == 0)
            return a;
    fail_msg("no arg %s", name);
    return -1;
}

static const Node *owner(const Node *n) {
    while (n->op == OP_RESHAPE)
        n = n->inputs[0];
    return n;
}

/* The last node index that reads n's buffer (the node count when an output reads it at the end). */
static int last_use(const Graph *g, const Node *n) {
    int last = n->id;
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i]->ninputs; k++)
            if (g->nodes[i]->op != OP_RESHAPE && owner(g->nodes[i]->inputs[k]) == n && last < i)
                last = i;
    for (int i = 0; i < g->noutputs; i++)
        if (owner(g->outputs[i].value) == n)
            last = g->nnodes;
    return last;
}

static int64_t bytes_of(const Node *n, int64_t batch) {
    return ir_shape_numel(&n->shape, batch) * (int64_t)ir_dtype_size(n->dtype);
}

/* Every pair of arena buffers whose lifetimes meet owns disjoint bytes inside the arena. */
static void check_no_overlap(const Graph *g) {
    int64_t c, per_n;
    pass_memplan_size(g, &c, &per_n);
    static const int64_t batches[] = {0, 1, 5, 64, 1000};
    for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
        int64_t n = batches[bi], arena = c + per_n * n;
        for (int i = 0; i < g->nnodes; i++) {
            const Node *x = g->nodes[i];
            if (x->mem.kind != MEM_ARENA)
                continue;
            int64_t xs = x->mem.offset_c + x->mem.offset_n * n, xe = xs + bytes_of(x, n);
            assert_true(xs % 64 == 0);
            assert_true(xs >= 0 && xe <= arena);
            for (int j = i + 1; j < g->nnodes; j++) {
                const Node *y = g->nodes[j];
                if (y->mem.kind != MEM_ARENA || last_use(g, x) < j)
                    continue;
                int64_t ys = y->mem.offset_c + y->mem.offset_n * n, ye = ys + bytes_of(y, n);
                if (xs < xe && ys < ye && xs < ye && ys < xe)
                    fail_msg("%%%d [%lld,%lld) and %%%d [%lld,%lld) overlap at N=%lld", x->id, (long long)xs,
                             (long long)xe, y->id, (long long)ys, (long long)ye, (long long)n);
            }
        }
    }
}

static void plan(void) {
    assert_true(ir_verify(ts.g, ts.d));
    assert_true(pass_memplan(ts.g, ts.d));
    for (int i = 0; i < ts.g->nnodes; i++)
        assert_int_not_equal(ts.g->nodes[i]->mem.kind, MEM_NONE);
}

/* ---------------------------------------------------------------- tests */

static void test_live_buffers_never_overlap(void **state) {
    Graph *g = ts.g;
    /* a ladder of mixed sizes, constant and per-N, with long and short lifetimes */
    Node *x = ir_input(g, L, "x", DT_F32, ts_shape(2, N, 13));
    Node *w = ir_param(g, L, "w", DT_F32, ts_shape(2, 7, 13));
    Node *h = ir_matmul(g, ts.d, L, x, w, false, true);
    Node *keep = un(OP_EXP, h);
    Node *acc = h;
    for (int i = 0; i < 12; i++) {
        Node *t = un(i % 2 ? OP_RELU : OP_TANH, acc);
        Node *s = ir_reduce(g, ts.d, L, OP_REDUCE_SUM, t, 1, true);
        Node *c = bin(OP_MUL, un(OP_NEG, w), ir_const(g, L, DT_F32, ts_shape(0), i));
        Node *cw = ir_reduce(g, ts.d, L, OP_REDUCE_SUM, c, 2, false);
        acc = bin(OP_ADD, bin(OP_SUB, t, s), cw);
        if (i % 4 == 3)
            acc = bin(OP_ADD, acc, keep);
    }
    Node *loss = ir_reduce(g, ts.d, L, OP_REDUCE_MEAN, acc, 3, false);
    ir_add_output(g, "loss", loss, false);
    ir_add_output(g, "h", keep, false);
    plan();
    check_no_overlap(g);
}

static void test_dead_buffers_are_reused(void **state) {
    Graph *g = ts.g;
    Node *x = ir_input(g, L, "x", DT_F32, ts_shape(2, N, 512));
    Node *v = x;
    Node *chain[6];
    for (int i = 0; i < 6; i++)
        v = chain[i] = un(OP_RELU, bin(OP_MUL, v, v));
    ir_add_output(g, "y", ir_reduce(g, ts.d, L, OP_REDUCE_SUM, v, 3, false), false);
    plan();
    check_no_overlap(g);
    int64_t c, per_n;
    pass_memplan_size(g, &c, &per_n);
    /* 12 intermediates of 2 KiB per sample; at most two live at once */
    assert_int_equal(per_n, 2 * 512 * 4);
    assert_int_equal(chain[0]->mem.offset_n, chain[2]->mem.offset_n);
}

static void test_constant_region_after_n_region(void **state) {
    Graph *g = ts.g;
    Node *x = ir_input(g, L, "x", DT_F64, ts_shape(2, N, 3));
    Node *w = ir_param(g, L, "w", DT_F64, ts_shape(2, 5, 3));
    Node *a = un(OP_EXP, x), *b = un(OP_EXP, w);
    Node *y = bin(OP_ADD, ir_reduce(g, ts.d, L, OP_REDUCE_SUM, a, 3, false), ir_reduce(g, ts.d, L, OP_REDUCE_SUM, b, 3, false));
    ir_add_output(g, "y", y, false);
    plan();
    check_no_overlap(g);
    int64_t c, per_n;
    pass_memplan_size(g, &c, &per_n);
    assert_int_equal(per_n, 64);               /* 3 doubles per sample, aligned */
    assert_int_equal(a->mem.offset_n, 0);
    assert_int_equal(a->mem.offset_c, 0);
    assert_int_equal(b->mem.offset_n, per_n); /* the constant region starts after the per-N one */
    assert_true(c >= 128);
}

static void test_outputs_written_into_args(void **state) {
    Graph *g = ts.g;
    Node *x = ir_input(g, L, "x", DT_F32, ts_shape(2, N, 10));
    Node *r = ir_reshape(g, ts.d, L, x, ts_shape(2, N, 10));
    Node *y = un(OP_RELU, x);
    Node *z = un(OP_EXP, x);
    ir_add_output(g, "y", y, false);
    ir_add_output(g, "z1", z, false); /* output twice: computed once, copied to both */
    ir_add_output(g, "z2", z, false);
    ir_add_output(g, "r", r, false);  /* an alias: copied */
    plan();
    assert_int_equal(x->mem.kind, MEM_ARG);
    assert_int_equal(x->mem.arg, arg_index("x", ARG_INPUT));
    assert_int_equal(r->mem.kind, MEM_ALIAS);
    assert_int_equal(y->mem.kind, MEM_ARG);
    assert_int_equal(y->mem.arg, arg_index("y", ARG_OUTPUT));
    assert_int_equal(z->mem.kind, MEM_ARENA);
}

static Node *sgd(Node *p, Node *grad, Node *lr) {
    return bin(OP_SUB, p, bin(OP_MUL, lr, grad));
}

static void test_update_in_place_when_safe(void **state) {
    Graph *g = ts.g;
    Node *lr = ir_input(g, L, "lr", DT_F32, ts_shape(0));
    Node *x = ir_input(g, L, "x", DT_F32, ts_shape(2, N, 4));
    Node *w = ir_param(g, L, "w", DT_F32, ts_shape(2, 3, 4));
    Node *y = ir_matmul(g, ts.d, L, x, w, false, true);
    Node *gw = ir_matmul(g, ts.d, L, y, x, true, false);
    Node *nw = sgd(w, gw, lr);
    ir_add_output(g, "loss", ir_reduce(g, ts.d, L, OP_REDUCE_SUM, y, 3, false), false);
    ir_add_output(g, "w", nw, true);
    plan();
    assert_int_equal(nw->mem.kind, MEM_ARG);
    assert_int_equal(nw->mem.arg, arg_index("w", ARG_PARAM));
}

static void test_update_not_in_place_when_read_later(void **state) {
    Graph *g = ts.g;
    Node *lr = ir_input(g, L, "lr", DT_F32, ts_shape(0));
    Node *w = ir_param(g, L, "w", DT_F32, ts_shape(2, 3, 4));
    Node *nw = sgd(w, un(OP_TANH, w), lr);
    Node *late = ir_reduce(g, ts.d, L, OP_REDUCE_SUM, w, 3, false); /* reads the old w after nw */
    ir_add_output(g, "norm", late, false);
    ir_add_output(g, "w", nw, true);
    plan();
    assert_int_equal(nw->mem.kind, MEM_ARENA);
    check_no_overlap(g);
}

static void test_update_not_in_place_when_read_through_reshape(void **state) {
    Graph *g = ts.g;
    Node *lr = ir_input(g, L, "lr", DT_F32, ts_shape(0));
    Node *w = ir_param(g, L, "w", DT_F32, ts_shape(2, 3, 4));
    Node *flat = ir_reshape(g, ts.d, L, w, ts_shape(1, 12));
    Node *nw = sgd(w, un(OP_TANH, w), lr);
    ir_add_output(g, "late", un(OP_EXP, flat), false);
    ir_add_output(g, "w", nw, true);
    plan();
    assert_int_equal(nw->mem.kind, MEM_ARENA);
}

static void test_update_not_in_place_when_not_elementwise(void **state) {
    Graph *g = ts.g;
    Node *w = ir_param(g, L, "w", DT_F32, ts_shape(2, 4, 4));
    Node *nw = ir_transpose(g, ts.d, L, w, (const int[]){1, 0});
    ir_add_output(g, "w", nw, true);
    plan();
    assert_int_equal(nw->mem.kind, MEM_ARENA);
}

static void test_update_not_in_place_when_also_output(void **state) {
    Graph *g = ts.g;
    Node *s = ir_state(g, L, "steps", DT_F32, ts_shape(0));
    Node *ns = bin(OP_ADD, s, ir_const(g, L, DT_F32, ts_shape(0), 1));
    ir_add_output(g, "steps", ns, true);
    ir_add_output(g, "count", ns, false);
    plan();
    assert_int_equal(ns->mem.kind, MEM_ARENA);
}

/* a concat reads many inputs at once: all of them stay live until it, and its result meets none of them */
static void test_concat_inputs_live_until_concat(void **state) {
    Graph *g = ts.g;
    Node *x = ir_input(g, L, "x", DT_F32, ts_shape(2, N, 3));
    Node *xs[6];
    for (int i = 0; i < 6; i++)
        xs[i] = un(i % 2 ? OP_EXP : OP_TANH, i ? xs[i - 1] : x);
    Node *c = ir_concat(g, ts.d, L, 6, xs, 1);
    assert_non_null(c);
    int64_t start[] = {0, 2}, step[] = {1, 3};
    Node *sl = ir_slice(g, ts.d, L, c, start, step, ts_shape(2, N, 6));
    Node *pd = ir_pad(g, ts.d, L, un(OP_NEG, sl), start, step, ts_shape(2, N, 18), 0);
    ir_add_output(g, "y", ir_reduce(g, ts.d, L, OP_REDUCE_SUM, bin(OP_ADD, pd, c), 3, false), false);
    plan();
    check_no_overlap(g);
    for (int i = 0; i < 6; i++)
        assert_int_equal(last_use(g, xs[i]) >= c->id, true);
}

/* a buffer (a frozen PARAM, BatchNorm's running_mean) updated by the train graph: in place, as a parameter */
static void test_buffer_update_in_place(void **state) {
    Graph *g = ts.g;
    Node *x = ir_input(g, L, "x", DT_F32, ts_shape(2, N, 4));
    Node *rm = ir_param(g, L, "bn.running_mean", DT_F32, ts_shape(1, 4));
    rm->attr.frozen = true;
    Node *m = ir_reduce(g, ts.d, L, OP_REDUCE_MEAN, x, 1, false);
    Node *nrm = bin(OP_ADD, bin(OP_MUL, rm, ir_const(g, L, DT_F32, ts_shape(0), 0.9)),
                    bin(OP_MUL, m, ir_const(g, L, DT_F32, ts_shape(0), 0.1)));
    ir_add_output(g, "loss", ir_reduce(g, ts.d, L, OP_REDUCE_SUM, bin(OP_SUB, x, m), 3, false), false);
    ir_add_output(g, "bn.running_mean", nrm, true);
    plan();
    assert_int_equal(nrm->mem.kind, MEM_ARG);
    assert_int_equal(nrm->mem.arg, arg_index("bn.running_mean", ARG_PARAM));
    check_no_overlap(g);
}

static void test_two_n_dims_is_a_diagnostic(void **state) {
    Graph *g = ts.g;
    Node *x = ir_input(g, L, "x", DT_F32, ts_shape(2, N, 3));
    Node *y = ir_input(g, L, "y", DT_F32, ts_shape(2, 3, N));
    Node *p = ir_matmul(g, ts.d, L, x, y, false, false); /* [N, N] */
    assert_non_null(p);
    ir_add_output(g, "p", p, false);
    Diag *quiet = diag_new(NULL);
    assert_false(pass_memplan(g, quiet));
    assert_int_equal(diag_error_count(quiet), 1);
    diag_free(quiet);
}

/* pass_memplan fails with one diagnostic whose message holds msg. */
static void expect_plan_error(const char *msg) {
    assert_true(ir_verify(ts.g, ts.d));
    Diag *quiet = diag_new(NULL);
    assert_false(pass_memplan(ts.g, quiet));
    assert_int_equal(diag_error_count(quiet), 1);
    if (!strstr(diag_first_message(quiet), msg))
        fail_msg("got \"%s\", want \"%s\"", diag_first_message(quiet), msg);
    diag_free(quiet);
}

static void test_buffer_past_int64_bytes_is_a_diagnostic(void **state) {
    /* 2^60 - 1 elements fit an int64, their 8-byte size does not after alignment */
    Shape s = ts_shape(1, ((int64_t)1 << 60) - 1);
    Node *x = ir_input(ts.g, L, "x", DT_F64, s);
    ir_add_output(ts.g, "y", un(OP_NEG, un(OP_NEG, x)), false);
    expect_plan_error("is too large");
}

static void test_arena_past_2_56_bytes_is_a_diagnostic(void **state) {
    /* three live buffers of 2^55 bytes each: the third one would end past 2^56 */
    Node *x = ir_input(ts.g, L, "x", DT_F64, ts_shape(2, N, (int64_t)1 << 52));
    Node *a = un(OP_NEG, x), *b = un(OP_EXP, x), *c = un(OP_SQRT, x);
    ir_add_output(ts.g, "y", bin(OP_ADD, bin(OP_ADD, a, b), c), false);
    expect_plan_error("the arena passes 2^56 bytes per sample");
}

int main(void) {
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, ts_teardown)
        T(test_live_buffers_never_overlap),
        T(test_dead_buffers_are_reused),
        T(test_constant_region_after_n_region),
        T(test_outputs_written_into_args),
        T(test_update_in_place_when_safe),
        T(test_update_not_in_place_when_read_later),
        T(test_update_not_in_place_when_read_through_reshape),
        T(test_update_not_in_place_when_not_elementwise),
        T(test_update_not_in_place_when_also_output),
        T(test_concat_inputs_live_until_concat),
        T(test_buffer_update_in_place),
        T(test_two_n_dims_is_a_diagnostic),
        T(test_buffer_past_int64_bytes_is_a_diagnostic),
        T(test_arena_past_2_56_bytes_is_a_diagnostic),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
