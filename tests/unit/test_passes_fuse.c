/* test_passes_fuse.c: pass_fuse over every model of models/ (the groups pass the verifier, their counts are
   sane, the fused graph computes what the unfused one does, the memory plan holds), the LATHE_FUSE switch,
   the printed groups reading back, and the rules a group keeps on small graphs. */
#include "support.h"

#include <stdlib.h>
#include <string.h>

#include "../../passes/passes.h"

#define N IR_DIM_N

static const Loc L = {"f.lathe", 1, 1};

static const char *const models[] = {"fashion_mlp.lathe", "fashion_cnn.lathe", "conv_mlp.lathe",
                                     "lenet5.lathe",      "linear_regression.lathe", "char_gpt.lathe",
                                     "vit_tiny.lathe",    "vgg11_bn.lathe",    "resnet20.lathe"};

static int setup(void **state) {
    (void)state;
    ts_open("train", stderr);
    return 0;
}

static int teardown(void **state) {
    unsetenv("LATHE_FUSE");
    return ts_teardown(state);
}

/* The model through the whole pipeline, fused or not. */
static Program *pipeline(const char *name, bool fuse) {
    setenv("LATHE_FUSE", fuse ? "1" : "0", 1);
    Program *p = ts_compile_text(name, ts_read_model(name));
    if (!pass_pipeline(p, NULL, NULL, ts.d))
        fail_msg("%s: %s", name, diag_first_message(ts.d));
    return p;
}

typedef struct Counts {
    int groups, epilogues, reduces, elementwise, members, singles;
} Counts;

static Counts count_groups(const Graph *g) {
    Counts c = {0};
    int *size = calloc((size_t)g->nnodes, sizeof(int));
    assert_non_null(size);
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->group >= 0)
            size[g->nodes[i]->group]++;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->group >= 0)
            c.members++;
        if (n->group != i)
            continue;
        c.groups++;
        c.singles += size[i] < 2;
        switch (ir_group_kind(g, n)) {
        case GROUP_EPILOGUE: c.epilogues++; break;
        case GROUP_REDUCE: c.reduces++; break;
        case GROUP_ELEMENTWISE: c.elementwise++; break;
        case GROUP_NONE: fail_msg("%%%d is a root of no kind", i);
        }
    }
    free(size);
    return c;
}

/* ---------------------------------------------------------------- every model */

static void test_fuse_every_model_verifies_with_sane_groups(void **state) {
    (void)state;
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
        Program *p = pipeline(models[m], true);
        Graph *gs[4];
        for (int k = 0, ng = program_graphs(p, gs); k < ng; k++) {
            assert_true(ir_verify(gs[k], ts.d));
            Counts c = count_groups(gs[k]);
            if (c.singles)
                fail_msg("%s %s: a group of one node", models[m], gs[k]->name);
            if (c.groups == 0)
                fail_msg("%s %s: nothing fused", models[m], gs[k]->name);
            int kernels = 0;
            for (int i = 0; i < gs[k]->nnodes; i++)
                kernels += ir_is_kernel(gs[k]->nodes[i]);
            /* every group holds two nodes or more, so it runs fewer kernels than it has nodes */
            assert_true(c.members >= 2 * c.groups);
            assert_true(c.members <= kernels);
            for (int i = 0; i < gs[k]->nnodes; i++) {
                const Node *n = gs[k]->nodes[i];
                assert_int_not_equal(n->mem.kind, MEM_NONE);
                /* the plan agrees with the rules: exactly the members no one else reads have no buffer */
                assert_int_equal(n->mem.kind == MEM_FUSED, !ir_group_materialized(gs[k], n));
            }
        }
    }
}

static void test_fuse_fashion_mlp_groups(void **state) {
    (void)state;
    Program *p = pipeline("fashion_mlp.lathe", true);
    Counts train = count_groups(p->train), predict = count_groups(p->predict);
    /* three forward epilogues, two backward relu masks, three weight updates */
    assert_int_equal(train.epilogues, 8);
    assert_int_equal(predict.epilogues, 3);
    assert_int_equal(predict.groups, 3);
    /* the first layer: matmul, bias add and relu in one group whose root is the relu */
    const Graph *g = p->predict;
    int matmuls = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op != OP_MATMUL)
            continue;
        matmuls++;
        assert_true(n->group >= 0);
        const Node *root = g->nodes[n->group];
        assert_ptr_equal(ir_group_anchor(g, root), n);
        assert_true(root->op == (matmuls < 3 ? OP_RELU : OP_ADD));
    }
    assert_int_equal(matmuls, 3);
}

static void test_fuse_on_unless_lathe_fuse_is_0(void **state) {
    (void)state;
    unsetenv("LATHE_FUSE");
    Program *on = ts_compile_text("fashion_mlp.lathe", ts_read_model("fashion_mlp.lathe"));
    assert_true(pass_pipeline(on, NULL, NULL, ts.d));
    assert_true(count_groups(on->train).groups > 0);
    setenv("LATHE_FUSE", "0", 1);
    Program *p = ts_compile_text("fashion_mlp.lathe", ts_read_model("fashion_mlp.lathe"));
    assert_true(pass_pipeline(p, NULL, NULL, ts.d));
    assert_int_equal(count_groups(p->train).groups, 0);
    /* pass_fuse_run fuses whatever the variable says */
    assert_true(pass_fuse_run(p->predict, ts.d));
    assert_int_equal(count_groups(p->predict).groups, 3);
}

/* Random values for every leaf of g at batch n (labels as class indices). */
static IBinding *bindings(const Graph *g, int64_t n, int *count) {
    IBinding *b = arena_alloc(ts.a, sizeof *b * (size_t)(g->nnodes + 1));
    uint64_t seed = 12345;
    int k = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *x = g->nodes[i];
        if (x->op != OP_INPUT && x->op != OP_PARAM && x->op != OP_STATE)
            continue;
        Shape s = ts_shape_at(x->shape, n);
        int64_t numel = ir_shape_numel(&s, n);
        double *data = arena_alloc(ts.a, sizeof(double) * (size_t)(numel + 1));
        for (int64_t j = 0; j < numel; j++)
            data[j] = ir_dtype_is_int(x->dtype) ? (double)(ts_rand_next(&seed) % 10)
                                                  : ts_rand_uniform(&seed) - 0.5;
        if (x->op == OP_INPUT && strcmp(x->attr.name, "lr") == 0)
            data[0] = 0.1;
        b[k++] = (IBinding){x->attr.name, {s, data}};
    }
    *count = k;
    return b;
}

/* The fused graphs compute what the unfused ones do (the interpreter ignores groups, so this checks the
   reordering), output for output, bit for bit in double. */
static void expect_same_results(const char *model) {
    Program *plain = pipeline(model, false), *fused = pipeline(model, true);
    const Graph *a[] = {plain->train, plain->eval, plain->predict};
    const Graph *b[] = {fused->train, fused->eval, fused->predict};
    for (int k = 0; k < 3; k++) {
        int nb;
        IBinding *bind = bindings(a[k], 3, &nb);
        ITensor *x = ir_interp(ts.a, a[k], 3, bind, nb, ts.d), *y = ir_interp(ts.a, b[k], 3, bind, nb, ts.d);
        assert_non_null(x);
        assert_non_null(y);
        assert_int_equal(a[k]->noutputs, b[k]->noutputs);
        for (int o = 0; o < a[k]->noutputs; o++) {
            assert_string_equal(a[k]->outputs[o].name, b[k]->outputs[o].name);
            int64_t numel = ir_shape_numel(&x[o].shape, 3);
            for (int64_t j = 0; j < numel; j++)
                if (x[o].data[j] != y[o].data[j])
                    fail_msg("%s %s output %s[%lld]: %g unfused, %g fused", model, a[k]->name, a[k]->outputs[o].name,
                             (long long)j, x[o].data[j], y[o].data[j]);
        }
    }
}

static void test_fuse_keeps_results_of_fashion_mlp(void **state) {
    (void)state;
    expect_same_results("fashion_mlp.lathe");
}

static void test_fuse_keeps_results_of_lenet5(void **state) {
    (void)state;
    expect_same_results("lenet5.lathe");
}

static void test_fuse_keeps_graph_arguments_in_order(void **state) {
    (void)state;
    Program *plain = pipeline("resnet20.lathe", false), *fused = pipeline("resnet20.lathe", true);
    int na = ir_graph_args(plain->train, NULL), nb = ir_graph_args(fused->train, NULL);
    assert_int_equal(na, nb);
    GraphArg *a = arena_alloc(ts.a, sizeof *a * (size_t)na), *b = arena_alloc(ts.a, sizeof *b * (size_t)nb);
    ir_graph_args(plain->train, a);
    ir_graph_args(fused->train, b);
    for (int i = 0; i < na; i++) {
        assert_string_equal(a[i].name, b[i].name);
        assert_int_equal(a[i].role, b[i].role);
    }
}

/* Every SGD update of the fused MLP is computed in place: the epilogue of the gradient's matmul writes the
   parameter itself, and its anchor keeps a buffer of its own. */
static void test_fuse_updates_stay_in_place(void **state) {
    (void)state;
    Program *p = pipeline("fashion_mlp.lathe", true);
    const Graph *g = p->train;
    int updates = 0;
    for (int i = 0; i < g->noutputs; i++) {
        const Output *o = &g->outputs[i];
        if (!o->update)
            continue;
        updates++;
        const Node *param = ir_find_leaf(g, OP_PARAM, o->name);
        assert_non_null(param);
        assert_int_equal(o->value->mem.kind, MEM_ARG);
        assert_int_equal(o->value->mem.arg, param->mem.arg);
        const Node *anchor = ir_group_anchor(g, g->nodes[o->value->group]);
        if (anchor) {
            assert_int_equal(anchor->mem.kind, MEM_ARENA);
        }
    }
    assert_int_equal(updates, 6);
}

/* resnet20's train graph (about 2,000 nodes) fuses in well under a second: the pass is n log n. */
static void test_fuse_is_fast_on_resnet20(void **state) {
    (void)state;
    Program *p = pipeline("resnet20.lathe", false);
    Graph *g = p->train;
    /* fuse the already planned graph again and again: each run starts from scratch */
    for (int r = 0; r < 20; r++)
        assert_true(pass_fuse_run(g, ts.d));
    assert_true(ir_verify(g, ts.d));
    assert_true(count_groups(g).groups > 100);
}

/* ---------------------------------------------------------------- the printed groups */

static char *print_noted(const Graph *g) {
    TsCapture c;
    ir_print_noted(ts_capture_open(&c), g, pass_fuse_note);
    return ts_capture_close(&c);
}

static void test_fuse_printed_groups_read_back(void **state) {
    (void)state;
    Program *p = pipeline("fashion_mlp.lathe", true);
    const Graph *g = p->train;
    const Node *first = NULL;
    for (int i = 0; i < g->nnodes && !first; i++)
        if (g->nodes[i]->op == OP_MATMUL)
            first = g->nodes[i];
    assert_non_null(first);
    char *text = print_noted(g);
    /* the first Linear and its ReLU: model lines 7 and 8 */
    char want[128];
    snprintf(want, sizeof want, "\n  # group %%%d (epilogue of matmul %%%d, 3 nodes): model lines 7, 8\n  %%%d = relu ",
             first->group, first->id, first->group);
    if (!strstr(text, want))
        fail_msg("no \"%s\" in\n%s", want, text);
    Graph *back = ts_parse_graph("train.ir", text);
    assert_true(ir_verify(back, ts.d));
    assert_string_equal(print_noted(back), text);
}

/* ---------------------------------------------------------------- rules on small graphs */

static Node *un(Op op, Node *x) {
    Node *r = ir_unary(ts.g, ts.d, L, op, x);
    assert_non_null(r);
    return r;
}

static Node *bin(Op op, Node *x, Node *y) {
    Node *r = ir_binary(ts.g, ts.d, L, op, x, y);
    assert_non_null(r);
    return r;
}

static void fuse(void) {
    assert_true(ir_verify(ts.g, ts.d));
    assert_true(pass_fuse_run(ts.g, ts.d));
    assert_true(ir_verify(ts.g, ts.d));
}

static void test_fuse_reduce_pulls_producers_not_other_shapes(void **state) {
    (void)state;
    Node *x = ir_input(ts.g, L, "x", DT_F32, ts_shape(2, N, 16));
    Node *m = ir_reduce(ts.g, ts.d, L, OP_REDUCE_MAX, x, 2, true);
    Node *e = un(OP_EXP, bin(OP_SUB, x, m));
    Node *s = ir_reduce(ts.g, ts.d, L, OP_REDUCE_SUM, e, 2, true);
    Node *l = un(OP_LOG, s); /* [N,1]: another domain */
    ir_add_output(ts.g, "y", l, false);
    fuse();
    assert_int_equal(e->group, s->id);
    assert_int_equal(e->inputs[0]->group, s->id);
    assert_int_equal(m->group, -1);
    assert_int_equal(l->group, -1);
    assert_int_equal(ir_group_kind(ts.g, s), GROUP_REDUCE);
}

static void test_fuse_integer_masks_fuse(void **state) {
    (void)state;
    Node *label = ir_input(ts.g, L, "label", DT_I64, ts_shape(1, N));
    Node *keep = bin(OP_NE, label, ir_const(ts.g, L, DT_I64, ts_shape(0), -100));
    Node *safe = ir_select(ts.g, ts.d, L, keep, label, ir_const(ts.g, L, DT_I64, ts_shape(0), 0));
    ir_add_output(ts.g, "y", safe, false);
    fuse();
    assert_int_equal(keep->dtype, DT_U8);
    assert_int_equal(keep->group, safe->id);
    assert_int_equal(safe->group, safe->id);
}

/* A member's reader outside the group that runs before the root would need the member before the group
   runs: the fusion is declined. Here %e feeds both a gather (no group takes it) and the root. */
static void test_fuse_declines_a_cycle(void **state) {
    (void)state;
    Node *x = ir_input(ts.g, L, "x", DT_F32, ts_shape(2, N, 8));
    Node *i = ir_input(ts.g, L, "i", DT_I64, ts_shape(2, N, 1));
    Node *e = un(OP_EXP, x);
    Node *gth = ir_gather(ts.g, ts.d, L, e, i, 1);
    Node *y = un(OP_TANH, bin(OP_SUB, e, gth));
    ir_add_output(ts.g, "y", y, false);
    fuse();
    assert_int_equal(e->group, -1);
    assert_int_equal(y->group, y->id);
    assert_int_equal(y->inputs[0]->group, y->id);
}

static void test_fuse_never_puts_an_anchor_input_in_its_epilogue(void **state) {
    (void)state;
    Node *x = ir_input(ts.g, L, "x", DT_F32, ts_shape(2, N, 8));
    Node *w = ir_param(ts.g, L, "w", DT_F32, ts_shape(2, 8, 8));
    Node *e = un(OP_EXP, x);
    Node *mm = ir_matmul(ts.g, ts.d, L, e, w, false, false);
    Node *y = bin(OP_ADD, e, mm);
    ir_add_output(ts.g, "y", y, false);
    fuse();
    assert_int_equal(mm->group, y->id);
    assert_int_equal(e->group, -1);
}

static void test_verify_rejects_an_anchor_reading_its_group(void **state) {
    (void)state;
    static const char text[] = "graph predict {\n"
                               "  %0 = input \"x\" : f32[N,8]\n"
                               "  %1 = param \"w\" : f32[8,8]\n"
                               "  %2 = exp %0 : f32[N,8] in %4\n"
                               "  %3 = matmul %2, %1 : f32[N,8] in %4\n"
                               "  %4 = add %2, %3 : f32[N,8] in %4\n"
                               "  output \"y\" = %4\n"
                               "}\n";
    Diag *quiet = diag_new(NULL);
    Graph **gs;
    assert_int_equal(ir_parse(ts.a, quiet, "bad.ir", text, &gs), 0); /* the parser verifies */
    assert_non_null(strstr(diag_first_message(quiet), "matmul %3 in group %4 reads a member of its group"));
    diag_free(quiet);
}

static void test_fuse_strided_read_of_a_member_starts_a_new_group(void **state) {
    (void)state;
    Node *x = ir_input(ts.g, L, "x", DT_F32, ts_shape(2, 4, 6));
    Node *a = un(OP_EXP, x);
    Node *t = ir_transpose(ts.g, ts.d, L, a, (const int[]){1, 0});
    Node *y = un(OP_NEG, t);
    ir_add_output(ts.g, "y", y, false);
    fuse();
    assert_int_equal(t->group, y->id);
    assert_int_equal(a->group, -1);
}

/* Fusing a fused graph again (its order now the fused one) fuses no fewer nodes and keeps the rules. */
static void test_fuse_again_fuses_no_fewer(void **state) {
    (void)state;
    Program *p = pipeline("vit_tiny.lathe", true);
    Graph *g = program_train_graph(p);
    int before = count_groups(g).members;
    assert_true(pass_fuse_run(g, ts.d));
    assert_true(ir_verify(g, ts.d));
    assert_true(count_groups(g).members >= before);
}

/* ---------------------------------------------------------------- random graphs */

/* Values of a random graph: [N,6], [N,1], [6] and [6,6] f32, and the ops that mix them. */
typedef struct Pool {
    Node *v[96];
    int n;
} Pool;

static Node *pick(Pool *p, uint64_t *seed, const Shape *want) {
    int idx[96], k = 0;
    for (int i = 0; i < p->n; i++)
        if (!want || ir_shape_eq(&p->v[i]->shape, want))
            idx[k++] = i;
    return k ? p->v[idx[ts_rand_next(seed) % (uint64_t)k]] : NULL;
}

static Node *random_node(Pool *p, uint64_t *seed) {
    Graph *g = ts.g;
    Shape row = ts_shape(2, N, 6), col = ts_shape(2, N, 1), vec = ts_shape(1, 6), mat = ts_shape(2, 6, 6);
    const Shape *shapes[] = {&row, &col, &vec, &mat};
    static const Op unary[] = {OP_NEG, OP_EXP, OP_TANH, OP_RELU, OP_SIGMOID, OP_ABS};
    static const Op binary[] = {OP_ADD, OP_SUB, OP_MUL, OP_MAX};
    Node *a = pick(p, seed, NULL);
    switch (ts_rand_next(seed) % 10) {
    case 0:
    case 1: return ir_unary(g, ts.d, L, unary[ts_rand_next(seed) % 6], a);
    case 2:
    case 3: {
        /* a partner that broadcasts with a: the same shape, or a row's [N,1] and [6] */
        const Shape *s = shapes[ts_rand_next(seed) % 4];
        Node *b = pick(p, seed, s);
        Shape out;
        if (!b || !ir_shape_broadcast(&a->shape, &b->shape, &out))
            b = a;
        return ir_binary(g, ts.d, L, binary[ts_rand_next(seed) % 4], a, b);
    }
    case 4: {
        Node *x = pick(p, seed, &row);
        return ts_rand_next(seed) % 2 ? ir_reduce(g, ts.d, L, OP_REDUCE_SUM, x, 2, true)
                                      : ir_reduce(g, ts.d, L, OP_REDUCE_MAX, x, 1, false);
    }
    case 5: {
        Node *x = pick(p, seed, &row), *w = pick(p, seed, &mat);
        return ir_matmul(g, ts.d, L, x, w, false, ts_rand_next(seed) % 2);
    }
    case 6: {
        Node *x = pick(p, seed, ts_rand_next(seed) % 2 ? &vec : &col);
        return x ? ir_broadcast(g, ts.d, L, x, row) : ir_unary(g, ts.d, L, OP_NEG, a);
    }
    case 7: {
        Node *w = pick(p, seed, &mat);
        return ir_transpose(g, ts.d, L, w, (const int[]){1, 0});
    }
    case 8: {
        Node *x = pick(p, seed, &row), *i = ir_find_leaf(g, OP_INPUT, "i");
        return ir_gather(g, ts.d, L, x, i, 1);
    }
    default: {
        Node *b = pick(p, seed, &a->shape);
        Node *mask = ir_binary(g, ts.d, L, OP_GT, a, b); /* u8, read by the select only */
        return ir_select(g, ts.d, L, mask, b, a);
    }
    }
}

/* Arena buffers whose kernels' lifetimes meet (ir.h: a group runs at its root and reads its inputs there)
   own disjoint bytes, at batch n. */
static void expect_disjoint_live_buffers(const Graph *g, int64_t n) {
    int nn = g->nnodes;
    int *from = calloc((size_t)nn + 1, sizeof(int)), *to = calloc((size_t)nn + 1, sizeof(int));
    assert_true(from && to);
    for (int i = 0; i < nn; i++)
        from[i] = to[i] = g->nodes[i]->group >= 0 ? g->nodes[i]->group : i;
    for (int i = 0; i < nn; i++) {
        const Node *u = g->nodes[i];
        for (int k = 0; k < u->ninputs && u->op != OP_RESHAPE; k++) {
            const Node *x = u->inputs[k];
            while (x->op == OP_RESHAPE)
                x = x->inputs[0];
            if (!(u->group >= 0 && u->group == x->group) && to[x->id] < from[i])
                to[x->id] = from[i];
        }
    }
    for (int i = 0; i < g->noutputs; i++) {
        const Node *x = g->outputs[i].value;
        while (x->op == OP_RESHAPE)
            x = x->inputs[0];
        to[x->id] = nn;
    }
    for (int i = 0; i < nn; i++) {
        const Node *x = g->nodes[i];
        if (x->mem.kind != MEM_ARENA)
            continue;
        int64_t xs = x->mem.offset_c + x->mem.offset_n * n;
        int64_t xe = xs + ir_shape_numel(&x->shape, n) * (int64_t)ir_dtype_size(x->dtype);
        for (int j = i + 1; j < nn; j++) {
            const Node *y = g->nodes[j];
            if (y->mem.kind != MEM_ARENA || to[j] < from[i] || to[i] < from[j])
                continue;
            int64_t ys = y->mem.offset_c + y->mem.offset_n * n;
            int64_t ye = ys + ir_shape_numel(&y->shape, n) * (int64_t)ir_dtype_size(y->dtype);
            if (xs < ye && ys < xe)
                fail_msg("%%%d and %%%d overlap while both live", i, j);
        }
    }
    free(from);
    free(to);
}

/* Many random graphs: fused, each verifies, computes what it did, and its plan keeps group liveness. */
static void test_fuse_random_graphs(void **state) {
    (void)state;
    uint64_t seed = 2024;
    Counts all = {0};
    for (int round = 0; round < 300; round++) {
        ts_teardown(NULL);
        ts_open("train", stderr);
        Graph *g = ts.g;
        Pool p = {.n = 0};
        p.v[p.n++] = ir_input(g, L, "x", DT_F32, ts_shape(2, N, 6));
        p.v[p.n++] = ir_param(g, L, "w", DT_F32, ts_shape(2, 6, 6));
        p.v[p.n++] = ir_param(g, L, "b", DT_F32, ts_shape(1, 6));
        p.v[p.n++] = ir_input(g, L, "c", DT_F32, ts_shape(2, N, 1));
        ir_input(g, L, "i", DT_I64, ts_shape(2, N, 1));
        int count = 10 + (int)(ts_rand_next(&seed) % 40);
        for (int k = 0; k < count && p.n < 90; k++) {
            Node *n = random_node(&p, &seed);
            assert_non_null(n);
            p.v[p.n++] = n;
        }
        for (int o = 0; o < 3; o++)
            ir_add_output(g, arena_printf(ts.a, "y%d", o), p.v[p.n - 1 - (int)(ts_rand_next(&seed) % 6)], false);
        /* an update of w in place, as the optimizer writes it */
        ir_add_output(g, "w", ir_binary(g, ts.d, L, OP_SUB, p.v[1], pick(&p, &seed, &p.v[1]->shape)), true);
        assert_true(ir_verify(g, ts.d));

        TsCapture c;
        ir_print(ts_capture_open(&c), g);
        Graph *fused = ts_parse_graph("random.ir", ts_capture_close(&c));
        assert_true(pass_fuse_run(fused, ts.d));
        assert_true(ir_verify(fused, ts.d));
        assert_true(pass_memplan(fused, ts.d));
        expect_disjoint_live_buffers(fused, 3);
        Counts c1 = count_groups(fused);
        all.epilogues += c1.epilogues;
        all.reduces += c1.reduces;
        all.elementwise += c1.elementwise;
        int nb;
        IBinding *bind = bindings(g, 2, &nb);
        ITensor *want = ir_interp(ts.a, g, 2, bind, nb, ts.d), *got = ir_interp(ts.a, fused, 2, bind, nb, ts.d);
        assert_true(want && got);
        for (int o = 0; o < g->noutputs; o++) {
            int64_t numel = ir_shape_numel(&want[o].shape, 2);
            for (int64_t j = 0; j < numel; j++)
                if (!(want[o].data[j] == got[o].data[j] || (want[o].data[j] != want[o].data[j] &&
                                                             got[o].data[j] != got[o].data[j])))
                    fail_msg("round %d output %d[%lld]: %g, fused %g", round, o, (long long)j, want[o].data[j],
                             got[o].data[j]);
        }
        for (int i = 0; i < fused->nnodes; i++) {
            const Node *n = fused->nodes[i];
            assert_int_equal(n->mem.kind == MEM_FUSED, n->group >= 0 && !ir_group_materialized(fused, n));
        }
    }
    /* the graphs exercise every kind of group */
    print_message("random graphs: %d epilogues, %d reductions, %d elementwise groups\n", all.epilogues, all.reduces,
                  all.elementwise);
    assert_true(all.epilogues > 100 && all.reduces > 100 && all.elementwise > 100);
}

int main(void) {
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_fuse_every_model_verifies_with_sane_groups),
        T(test_fuse_fashion_mlp_groups),
        T(test_fuse_on_unless_lathe_fuse_is_0),
        T(test_fuse_keeps_results_of_fashion_mlp),
        T(test_fuse_keeps_results_of_lenet5),
        T(test_fuse_keeps_graph_arguments_in_order),
        T(test_fuse_updates_stay_in_place),
        T(test_fuse_is_fast_on_resnet20),
        T(test_fuse_printed_groups_read_back),
        T(test_fuse_reduce_pulls_producers_not_other_shapes),
        T(test_fuse_integer_masks_fuse),
        T(test_fuse_declines_a_cycle),
        T(test_fuse_never_puts_an_anchor_input_in_its_epilogue),
        T(test_verify_rejects_an_anchor_reading_its_group),
        T(test_fuse_strided_read_of_a_member_starts_a_new_group),
        T(test_fuse_again_fuses_no_fewer),
        T(test_fuse_random_graphs),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
