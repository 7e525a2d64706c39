/* test_memplan.c: the static memory plan. Buffers that are live at the same time never share bytes (every
   pair checked, for several batch sizes), buffers are reused once dead, offsets are 64-byte aligned,
   outputs are written straight into their arguments, and parameter updates happen in place exactly when
   no later reader needs the old value. With fusion groups: a group is one kernel at its root, members only
   its group reads have no bytes, and a kernel's buffers meet neither its inputs nor each other. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
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

/* ---------------------------------------------------------------- fusion groups */

/* Liveness as ir.h defines it for groups, computed here apart from memplan: a kernel runs at its group's
   root; a buffer lives from there to the last kernel outside its group that reads it (or to the end). */
static int run_at(const Node *n) {
    return n->group >= 0 ? n->group : n->id;
}

static void group_lifetime(const Graph *g, const Node *x, int *from, int *to) {
    *from = *to = run_at(x);
    for (int i = 0; i < g->nnodes; i++) {
        const Node *u = g->nodes[i];
        if (u->op == OP_RESHAPE)
            continue;
        for (int k = 0; k < u->ninputs; k++)
            if (owner(u->inputs[k]) == x && !(u->group >= 0 && u->group == x->group) && *to < run_at(u))
                *to = run_at(u);
    }
    for (int i = 0; i < g->noutputs; i++)
        if (owner(g->outputs[i].value) == x)
            *to = g->nnodes;
}

/* Buffers whose lifetimes meet own disjoint bytes; a kernel's buffers meet its inputs' (it reads them at
   its position) and each other's (it writes them all there). */
static void check_groups_never_overlap(const Graph *g) {
    int64_t c, per_n;
    pass_memplan_size(g, &c, &per_n);
    static const int64_t batches[] = {1, 7, 64};
    int *from = calloc((size_t)g->nnodes + 1, sizeof(int)), *to = calloc((size_t)g->nnodes + 1, sizeof(int));
    assert_true(from && to);
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->mem.kind == MEM_ARENA)
            group_lifetime(g, g->nodes[i], &from[i], &to[i]);
    for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
        int64_t n = batches[bi];
        for (int i = 0; i < g->nnodes; i++) {
            const Node *x = g->nodes[i];
            if (x->mem.kind != MEM_ARENA)
                continue;
            int xf = from[i], xt = to[i];
            int64_t xs = x->mem.offset_c + x->mem.offset_n * n, xe = xs + bytes_of(x, n);
            assert_true(xs % 64 == 0 && xe <= c + per_n * n);
            for (int j = i + 1; j < g->nnodes; j++) {
                const Node *y = g->nodes[j];
                if (y->mem.kind != MEM_ARENA)
                    continue;
                int yf = from[j], yt = to[j];
                if (yt < xf || xt < yf)
                    continue;
                int64_t ys = y->mem.offset_c + y->mem.offset_n * n, ye = ys + bytes_of(y, n);
                if (xs < xe && ys < ye && xs < ye && ys < xe)
                    fail_msg("%%%d [%lld,%lld) live %d..%d and %%%d [%lld,%lld) live %d..%d overlap at N=%lld",
                             x->id, (long long)xs, (long long)xe, xf, xt, y->id, (long long)ys, (long long)ye, yf,
                             yt, (long long)n);
            }
        }
    }
    free(from);
    free(to);
}

static void group(Node *root, int count, Node *const *members) {
    root->group = root->id;
    for (int i = 0; i < count; i++)
        members[i]->group = root->id;
}

static void test_fused_members_get_no_bytes(void **state) {
    Graph *g = ts.g;
    Node *x = ir_input(g, L, "x", DT_F32, ts_shape(2, N, 256));
    Node *a = un(OP_NEG, x), *b = un(OP_EXP, a), *c = un(OP_TANH, b), *r = un(OP_LOG, c);
    group(r, 3, (Node *[]){a, b, c});
    Node *late = ir_reduce(g, ts.d, L, OP_REDUCE_SUM, b, 2, false); /* b is read after the group */
    ir_add_output(g, "y", r, false);
    ir_add_output(g, "s", late, false);
    plan();
    assert_int_equal(a->mem.kind, MEM_FUSED);
    assert_int_equal(c->mem.kind, MEM_FUSED);
    assert_int_equal(b->mem.kind, MEM_ARENA);
    assert_int_equal(r->mem.kind, MEM_ARG);
    int64_t cc, per_n;
    pass_memplan_size(g, &cc, &per_n);
    assert_int_equal(per_n, 1024); /* b alone: a and c have no bytes */
    check_groups_never_overlap(g);
}

/* Every group reads its inputs while it writes: an input that dies at the group is not overwritten by it,
   however the sizes would fit; once the group has run, a later group reuses those bytes. */
static void test_groups_never_write_over_their_inputs(void **state) {
    Graph *g = ts.g;
    Node *x = ir_input(g, L, "x", DT_F32, ts_shape(2, N, 64));
    Node *a1 = un(OP_NEG, x), *r1 = un(OP_EXP, a1);
    Node *a2 = un(OP_TANH, r1), *r2 = un(OP_RELU, a2);
    Node *a3 = un(OP_SIGMOID, r2), *r3 = un(OP_NEG, a3);
    group(r1, 1, (Node *[]){a1});
    group(r2, 1, (Node *[]){a2});
    group(r3, 1, (Node *[]){a3});
    ir_add_output(g, "y", ir_reduce(g, ts.d, L, OP_REDUCE_SUM, r3, 3, false), false);
    plan();
    check_groups_never_overlap(g);
    assert_int_not_equal(r1->mem.offset_n, r2->mem.offset_n);
    assert_int_not_equal(r2->mem.offset_n, r3->mem.offset_n);
    assert_int_equal(r1->mem.offset_n, r3->mem.offset_n);
}

/* An epilogue writes its anchor and its materialized members at once: they never share bytes. */
static void test_epilogue_buffers_are_disjoint(void **state) {
    Graph *g = ts.g;
    Node *x = ir_input(g, L, "x", DT_F32, ts_shape(2, N, 16));
    Node *w = ir_param(g, L, "w", DT_F32, ts_shape(2, 16, 16));
    Node *mm = ir_matmul(g, ts.d, L, x, w, false, true);
    Node *pre = bin(OP_ADD, mm, x);
    Node *act = un(OP_RELU, pre);
    group(act, 2, (Node *[]){mm, pre});
    Node *mask = bin(OP_GT, pre, ir_const(g, L, DT_F32, ts_shape(0), 0)); /* pre read after the group */
    ir_add_output(g, "y", ir_reduce(g, ts.d, L, OP_REDUCE_SUM, bin(OP_MUL, act, ir_cast(g, L, mask, DT_F32)), 3,
                                    false), false);
    plan();
    assert_int_equal(mm->mem.kind, MEM_ARENA);
    assert_int_equal(pre->mem.kind, MEM_ARENA);
    assert_int_equal(act->mem.kind, MEM_ARENA);
    check_groups_never_overlap(g);
}

/* The SGD epilogue's root writes the parameter in place; its anchor has a buffer of its own. */
static void test_epilogue_update_in_place_keeps_anchor_buffer(void **state) {
    Graph *g = ts.g;
    Node *lr = ir_input(g, L, "lr", DT_F32, ts_shape(0));
    Node *x = ir_input(g, L, "x", DT_F32, ts_shape(2, N, 4));
    Node *w = ir_param(g, L, "w", DT_F32, ts_shape(2, 3, 4));
    Node *y = ir_matmul(g, ts.d, L, x, w, false, true);
    Node *loss = ir_reduce(g, ts.d, L, OP_REDUCE_SUM, y, 3, false);
    Node *gw = ir_matmul(g, ts.d, L, y, x, true, false);
    Node *step = bin(OP_MUL, lr, gw);
    Node *nw = bin(OP_SUB, w, step);
    group(nw, 2, (Node *[]){gw, step});
    ir_add_output(g, "loss", loss, false);
    ir_add_output(g, "w", nw, true);
    plan();
    assert_int_equal(nw->mem.kind, MEM_ARG);
    assert_int_equal(nw->mem.arg, arg_index("w", ARG_PARAM));
    assert_int_equal(step->mem.kind, MEM_FUSED);
    assert_int_equal(gw->mem.kind, MEM_ARENA);
    check_groups_never_overlap(g);
}

/* An anchor that reads the parameter reads all of it while the epilogue writes: not in place. */
static void test_update_not_in_place_when_anchor_reads_param(void **state) {
    Graph *g = ts.g;
    Node *lr = ir_input(g, L, "lr", DT_F32, ts_shape(0));
    Node *a = ir_input(g, L, "a", DT_F32, ts_shape(2, 3, 3));
    Node *w = ir_param(g, L, "w", DT_F32, ts_shape(2, 3, 4));
    Node *gw = ir_matmul(g, ts.d, L, a, w, false, false);
    Node *step = bin(OP_MUL, lr, gw);
    Node *nw = bin(OP_SUB, w, step);
    group(nw, 2, (Node *[]){gw, step});
    ir_add_output(g, "w", nw, true);
    plan();
    assert_int_equal(nw->mem.kind, MEM_ARENA);
    check_groups_never_overlap(g);
}

/* A member of the group reading the parameter through a broadcast reads other indices: not in place. */
static void test_update_not_in_place_when_member_reads_param_strided(void **state) {
    Graph *g = ts.g;
    Node *w = ir_param(g, L, "w", DT_F32, ts_shape(2, 4, 4));
    Node *t = ir_transpose(g, ts.d, L, w, (const int[]){1, 0});
    Node *nw = bin(OP_SUB, w, t);
    group(nw, 1, (Node *[]){t});
    ir_add_output(g, "w", nw, true);
    plan();
    assert_int_equal(nw->mem.kind, MEM_ARENA);
}

/* Every model, fused and planned: the plan holds group liveness at every batch. */
static void test_every_model_fused_plan_never_overlaps(void **state) {
    static const char *const models[] = {"fashion_mlp.lathe", "fashion_cnn.lathe", "lenet5.lathe",
                                         "conv_mlp.lathe",    "char_gpt.lathe",    "vit_tiny.lathe"};
    setenv("LATHE_FUSE", "1", 1);
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
        Program *p = ts_compile_text(models[m], ts_read_model(models[m]));
        assert_true(pass_pipeline(p, NULL, NULL, ts.d));
        Graph *gs[4];
        for (int k = 0, ng = program_graphs(p, gs); k < ng; k++)
            check_groups_never_overlap(gs[k]);
    }
    unsetenv("LATHE_FUSE");
}

/* ---------------------------------------------------------------- lathe compile --mem-report */

/* The output of `lathe compile models/fashion_mlp.lathe --mem-report EXTRA` (the built lathe command). */
static char *mem_report(const char *extra) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' compile '%s/models/fashion_mlp.lathe' --mem-report %s", LATHE_EXE,
             LATHE_SOURCE_DIR, extra);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t cap = 1 << 16, len = 0;
    char *out = arena_alloc(ts.a, cap);
    size_t got;
    while ((got = fread(out + len, 1, cap - 1 - len, f)) > 0)
        len += got;
    out[len] = 0;
    assert_int_equal(pclose(f), 0);
    return out;
}

typedef struct Peak {
    long long bytes, batch, arena, params, state, inputs;
} Peak;

/* The last line, which must be the peak line. */
static Peak peak_line(const char *out) {
    size_t len = strlen(out);
    assert_true(len > 1 && out[len - 1] == '\n');
    const char *last = out + len - 1;
    while (last > out && last[-1] != '\n')
        last--;
    Peak p;
    int used = 0;
    int got = sscanf(last, "peak: %lld bytes at batch %lld (arena %lld, parameters %lld, optimizer state %lld, "
                           "batch inputs %lld)\n%n",
                     &p.bytes, &p.batch, &p.arena, &p.params, &p.state, &p.inputs, &used);
    if (got != 6 || last[used] != 0)
        fail_msg("not a peak line: %s", last);
    return p;
}

static void test_mem_report_of_fashion_mlp(void **state) {
    setenv("LATHE_FUSE", "0", 1);
    char *out = mem_report("");
    Peak p = peak_line(out);
    assert_int_equal(p.batch, 64); /* the recipe's */
    assert_int_equal(p.bytes, p.arena + p.params + p.state + p.inputs);
    assert_int_equal(p.params, 669706 * 4);               /* the Quickstart's parameters, f32 */
    assert_int_equal(p.state, 0);                         /* plain SGD keeps no state */
    assert_int_equal(p.inputs, 64 * 784 * 4 + 64 * 8 + 4); /* x, label (i64) and lr */
    /* the arena is the plan's, at that batch */
    Program *prog = ts_compile_text("fashion_mlp.lathe", ts_read_model("fashion_mlp.lathe"));
    assert_true(pass_pipeline(prog, NULL, NULL, ts.d));
    int64_t c, per_n;
    pass_memplan_size(prog->train, &c, &per_n);
    assert_int_equal(p.arena, c + per_n * 64);
    /* a line for each graph */
    assert_non_null(strstr(out, "\n  train "));
    assert_non_null(strstr(out, "\n  eval "));
    assert_non_null(strstr(out, "\n  predict "));
    /* the train graph's arena buffers, one a line, largest first */
    const char *at = strstr(out, "largest first\n");
    assert_non_null(at);
    at = strchr(at, '\n') + 1;
    at = strchr(at, '\n') + 1; /* the column names */
    long long prev = -1;
    int rows = 0;
    while (at[0] == ' ' && at[1] == ' ' && at[2] == '%') {
        char id[32], op[64];
        int line;
        long long bytes;
        assert_int_equal(sscanf(at, " %31s %63s %d %lld", id, op, &line, &bytes), 4);
        assert_true(prev < 0 || bytes <= prev);
        prev = bytes;
        rows++;
        at = strchr(at, '\n') + 1;
    }
    int arena_nodes = 0;
    for (int i = 0; i < prog->train->nnodes; i++)
        arena_nodes += prog->train->nodes[i]->mem.kind == MEM_ARENA;
    assert_int_equal(rows, arena_nodes);
    /* the largest: the first layer's weight gradient, [512,784] f32 */
    assert_int_equal(strstr(out, "largest first") < strstr(out, " 1605632 "), 1);
}

static void test_mem_report_at_another_batch(void **state) {
    setenv("LATHE_FUSE", "0", 1);
    Peak a = peak_line(mem_report("--batch 64")), b = peak_line(mem_report("--batch 512"));
    assert_int_equal(b.batch, 512);
    assert_int_equal(b.params, a.params);
    assert_int_equal(b.inputs - 4, (a.inputs - 4) * 8); /* lr is one value at any batch */
    assert_true(b.arena > a.arena);
    assert_int_equal(b.bytes, b.arena + b.params + b.state + b.inputs);
    /* fused, the arena is planned over groups: MEM_FUSED members take no bytes */
    setenv("LATHE_FUSE", "1", 1);
    Peak f = peak_line(mem_report(""));
    unsetenv("LATHE_FUSE");
    assert_int_equal(f.bytes, f.arena + f.params + f.state + f.inputs);
    assert_true(f.arena < a.arena);
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
        T(test_fused_members_get_no_bytes),
        T(test_groups_never_write_over_their_inputs),
        T(test_epilogue_buffers_are_disjoint),
        T(test_epilogue_update_in_place_keeps_anchor_buffer),
        T(test_update_not_in_place_when_anchor_reads_param),
        T(test_update_not_in_place_when_member_reads_param_strided),
        T(test_every_model_fused_plan_never_overlaps),
        T(test_mem_report_of_fashion_mlp),
        T(test_mem_report_at_another_batch),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
