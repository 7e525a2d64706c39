/* test_ir_text.c: the text IR. Printing, parsing and printing again gives the same bytes, for graphs that
   use every op and attribute; parse errors point at line:col. */
#include "support.h"

#include <math.h>
#include <string.h>
#include <time.h>

#include "../../ir/ir.h"

#define N IR_DIM_N

/* The printed text of g, in the arena. */
static char *print_graph(const Graph *g, bool dot)
{
    TsCapture c;
    FILE *f = ts_capture_open(&c);
    if (dot)
        ir_print_dot(f, g);
    else
        ir_print(f, g);
    return ts_capture_close(&c);
}

static void assert_round_trip(const char *text)
{
    Graph **gs;
    int n = ir_parse(ts.a, ts.d, "t.ir", text, &gs);
    if (n == 0)
        fail_msg("parse failed: %s", diag_first_message(ts.d));
    size_t cap = strlen(text) + 1, len = 0;
    char *all = arena_alloc(ts.a, cap);
    for (int i = 0; i < n; i++) {
        ir_renumber(gs[i]);
        const char *s = print_graph(gs[i], false);
        assert_true(len + strlen(s) < cap + 1);
        memcpy(all + len, s, strlen(s));
        len += strlen(s);
    }
    all[len] = '\0';
    assert_string_equal(all, text);
}

static const char *spec_text =
    "graph train {\n"
    "  optimizer = SGD(lr = 0.001)\n"
    "  %0 = input \"x\" : f32[N,1,28,28]  # models/fashion_mlp.lathe:14:13\n"
    "  %1 = param \"fc.weight\" {frozen} : f32[10,784]  # models/fashion_mlp.lathe:7:9\n"
    "  %2 = reshape %0 : f32[N,784]  # models/fashion_mlp.lathe:15:13\n"
    "  %3 = matmul %2, %1 {transpose_b} : f32[N,10]\n"
    "  %4 = const 0.5 : f32[]\n"
    "  %5 = const 1 {npow=-1} : f64[]\n"
    "  %6 = reduce_sum %3 {axes=[1], keepdim} : f32[N,1]\n"
    "  %7 = transpose %1 {perm=[1,0]} : f32[784,10]\n"
    "  %8 = argmax %3 {axis=1} : i64[N]\n"
    "  %9 = one_hot %8 {classes=10} : f32[N,10]\n"
    "  output \"loss\" = %6\n"
    "  output \"t\" = %7\n"
    "}\n";

static void test_spec_example_round_trips(void **state)
{
    assert_round_trip(spec_text);
}

static void test_parse_fills_nodes(void **state)
{
    Graph *g = ts_parse_graph("t.ir", spec_text);
    assert_string_equal(g->name, "train");
    assert_int_equal(g->nnodes, 10);
    assert_true(g->nodes[1]->attr.frozen);
    assert_string_equal(g->nodes[1]->attr.name, "fc.weight");
    assert_string_equal(g->nodes[0]->loc.file, "models/fashion_mlp.lathe");
    assert_int_equal(g->nodes[0]->loc.line, 14);
    assert_int_equal(g->nodes[0]->loc.col, 13);
    assert_ptr_equal(g->nodes[0]->loc.file, g->nodes[1]->loc.file); /* interned once */
    assert_null(g->nodes[3]->loc.file);
    assert_true(g->nodes[3]->attr.transpose_b);
    assert_int_equal(g->nodes[5]->attr.npow, -1);
    assert_int_equal(g->nodes[6]->attr.axes, 2u);
    assert_int_equal(g->nodes[9]->attr.classes, 10);
    assert_non_null(g->optimizer);
    assert_string_equal(g->optimizer->str, "SGD");
    assert_true(rval_arg(g->optimizer, "lr", 0)->num == 0.001);
    assert_int_equal(g->noutputs, 2);
    assert_true(ir_verify(g, ts.d));
}

/* A graph built through the builder with every op, every attribute, and values that need all 17 digits. */
static Graph *every_op_graph(void)
{
    Graph *g = ir_graph_new(ts.a, "every");
    Diag *d = ts.d;
    Loc l = {"m.lathe", 2, 5}, none = {0};
    Node *x = ir_input(g, l, "x", DT_F32, ts_shape(2, N, 4));
    Node *w = ir_param(g, l, "w \"q\"", DT_F32, ts_shape(2, 3, 4));
    Node *fz = ir_param(g, none, "frozen.w", DT_F32, ts_shape(1, 4));
    fz->attr.frozen = true;
    Node *st = ir_state(g, l, "m", DT_F32, ts_shape(2, 3, 4));
    Node *lbl = ir_input(g, l, "label", DT_I64, ts_shape(1, N));
    Node *c = ir_const(g, l, DT_F32, ir_shape_scalar(), 0.1);
    Node *cn = ir_const_npow(g, none, DT_F64, ir_shape_scalar(), -2.5e-300, -1);
    Node *ci = ir_const(g, none, DT_F32, ir_shape_scalar(), -INFINITY);
    Node *u = x;
    Op unary[] = {OP_NEG, OP_EXP, OP_LOG, OP_SQRT, OP_ABS, OP_RELU, OP_SIGMOID, OP_TANH};
    for (size_t i = 0; i < sizeof unary / sizeof *unary; i++)
        u = ir_unary(g, d, l, unary[i], u);
    Node *b = u;
    for (Op op = OP_ADD; op <= OP_POW; op++)
        b = ir_binary(g, d, l, op, b, c);
    Node *cmp = NULL;
    for (Op op = OP_EQ; op <= OP_GE; op++)
        cmp = ir_binary(g, d, l, op, b, fz);
    Node *sel = ir_select(g, d, l, cmp, b, ci);
    Node *mm = ir_matmul(g, d, l, sel, w, false, true);
    Node *mm2 = ir_matmul(g, d, l, mm, sel, true, false);
    Node *sq = ir_matmul(g, d, l, mm2, mm2, true, false);
    Node *mm3 = ir_matmul(g, d, l, sq, sq, true, true);
    Node *r1 = ir_reduce(g, d, l, OP_REDUCE_SUM, mm, 1, false);
    Node *r2 = ir_reduce(g, d, l, OP_REDUCE_MEAN, mm, 3, true);
    Node *r3 = ir_reduce(g, d, l, OP_REDUCE_MAX, mm3, 2, false);
    Node *am = ir_argmax(g, d, l, mm, 1, true);
    Node *am2 = ir_argmax(g, d, l, mm, 0, false);
    Node *rs = ir_reshape(g, d, l, sel, ts_shape(3, N, 2, 2));
    Node *tr = ir_transpose(g, d, l, rs, (int[]){2, 0, 1});
    Node *bc = ir_broadcast(g, d, l, r1, ts_shape(2, 5, 3));
    Node *cast = ir_cast(g, l, bc, DT_I32);
    Node *oh = ir_one_hot(g, d, l, lbl, 10, DT_F64);
    Node *oh2 = ir_one_hot(g, d, l, cast, 2, DT_U8);
    Node *batched = ir_reshape(g, d, l, mm3, ts_shape(3, 1, 4, 4));
    Node *bmm = ir_matmul(g, d, l, batched, w, false, true);
    Node *upd = ir_binary(g, d, l, OP_ADD, w, st);
    /* the layers issue's ops */
    Node *rq = ir_unary(g, d, l, OP_RSQRT, ir_unary(g, d, l, OP_ERF, x));
    Node *rmin = ir_reduce(g, d, l, OP_REDUCE_MIN, rq, 2, true);
    Node *amin = ir_argmin(g, d, l, rq, 1, false);
    Node *io = ir_iota(g, l, DT_I64, ts_shape(2, 4, 4), 1);
    Node *seed = ir_input(g, l, "seed", DT_I64, ir_shape_scalar());
    Node *step = ir_input(g, l, "step", DT_I64, ir_shape_scalar());
    Node *rnd = ir_random(g, d, l, seed, step, ts_shape(2, N, 16), 3);
    Node *img = ir_input(g, l, "img", DT_F32, ts_shape(4, N, 4, 8, 8));
    Node *cw = ir_param(g, l, "conv.weight", DT_F32, ts_shape(4, 6, 2, 3, 3));
    Attr ca = {.stride = {2, 2}, .pad = {1, 1}, .dilation = {1, 2}, .groups = 2};
    Node *cv = ir_window(g, d, l, OP_CONV2D, 2, (Node *[]){img, cw}, &ca);
    ca.shape = img->shape;
    Node *cvi = ir_window(g, d, l, OP_CONV2D_BWD_INPUT, 2, (Node *[]){cv, cw}, &ca);
    ca.shape = cw->shape;
    Node *cvw = ir_window(g, d, l, OP_CONV2D_BWD_WEIGHT, 2, (Node *[]){img, cv}, &ca);
    Attr pa = {.window = {3, 3}, .stride = {2, 2}, .pad = {1, 1}, .dilation = {1, 1}, .ceil_mode = true};
    Node *mp = ir_window(g, d, l, OP_MAX_POOL2D, 1, &img, &pa);
    Node *mpb = ir_window(g, d, l, OP_MAX_POOL2D_BWD, 2, (Node *[]){img, mp}, &pa);
    Attr aa = {.window = {2, 2}, .stride = {2, 1}, .count_include_pad = true};
    Node *ap = ir_window(g, d, l, OP_AVG_POOL2D, 1, &img, &aa);
    aa.shape = img->shape;
    Node *apb = ir_window(g, d, l, OP_AVG_POOL2D_BWD, 1, &ap, &aa);
    Attr ada = {.shape = ts_shape(4, N, 4, 3, 3)};
    Node *ad = ir_window(g, d, l, OP_ADAPTIVE_AVG_POOL2D, 1, &img, &ada);
    ada.shape = img->shape;
    Node *adb = ir_window(g, d, l, OP_ADAPTIVE_AVG_POOL2D_BWD, 1, &ad, &ada);
    Node *sl = ir_slice(g, d, l, x, (int64_t[]){0, 1}, (int64_t[]){1, 2}, ts_shape(2, N, 2));
    Node *pd = ir_pad(g, d, l, sl, (int64_t[]){0, 1}, (int64_t[]){1, 3}, ts_shape(2, N, 7), -INFINITY);
    Node *pd2 = ir_pad(g, d, l, x, (int64_t[]){0, 0}, (int64_t[]){1, 1}, ts_shape(2, N, 5), NAN);
    Node *pd3 = ir_pad(g, d, l, x, (int64_t[]){0, 2}, (int64_t[]){1, 1}, ts_shape(2, N, 6), 0.1);
    Node *cc = ir_concat(g, d, l, 3, (Node *[]){x, sl, x}, 1);
    Node *gi = ir_input(g, l, "gi", DT_I32, ts_shape(2, N, 3));
    Node *ga = ir_gather(g, d, l, x, gi, 1);
    Node *sa = ir_scatter_add(g, d, l, gi, ga, 1, ts_shape(2, N, 6));
    if (diag_error_count(d))
        fail_msg("%s", diag_first_message(d));
    Node *outs[] = {cn,  r2,  r3,  am, am2, tr, oh, oh2, bmm, rmin, amin, io,  rnd, cvi, cvw,
                    mpb, apb, adb, pd, pd2, pd3, cc, sa};
    for (size_t i = 0; i < sizeof outs / sizeof *outs; i++)
        ir_add_output(g, arena_printf(ts.a, "o%zu", i), outs[i], false);
    ir_add_output(g, "w \"q\"", upd, true);
    ir_add_output(g, "m", upd, true);

    /* the optimizer line with every kind of recipe value */
    RVal **v = arena_alloc(ts.a, 6 * sizeof(RVal *));
    for (int i = 0; i < 6; i++)
        v[i] = arena_alloc(ts.a, sizeof(RVal));
    *v[0] = (RVal){.kind = RV_NUM, .num = 0.1};
    *v[1] = (RVal){.kind = RV_NUM, .num = 64, .is_int = true};
    *v[2] = (RVal){.kind = RV_STR, .str = "a \"b\""};
    *v[3] = (RVal){.kind = RV_BOOL, .num = 1};
    *v[4] = (RVal){.kind = RV_IDENT, .str = "accuracy"};
    RVal **li = arena_alloc(ts.a, 2 * sizeof(RVal *));
    li[0] = v[1], li[1] = v[4];
    *v[5] = (RVal){.kind = RV_LIST, .nitems = 2, .items = li};
    RVal *call = arena_alloc(ts.a, sizeof(RVal));
    const char **keys = arena_alloc(ts.a, 6 * sizeof(char *));
    keys[1] = "lr", keys[2] = "name", keys[3] = "nesterov", keys[5] = "metrics";
    *call = (RVal){.kind = RV_CALL, .str = "Adam", .nitems = 6, .items = v, .keys = keys};
    g->optimizer = call;
    assert_true(ir_verify(g, d));
    return g;
}

static void test_every_op_round_trips(void **state)
{
    Graph *g = every_op_graph();
    const char *text = print_graph(g, false);
    assert_non_null(strstr(text, "  optimizer = Adam(0.10000000000000001, lr = 64, name = \"a \\\"b\\\"\", "
                                 "nesterov = true, accuracy, metrics = [64, accuracy])\n"));
    assert_non_null(strstr(text, "= const -2.5e-300 {npow=-1} : f64[]\n"));
    assert_non_null(strstr(text, "= const -inf : f32[]\n"));
    assert_non_null(strstr(text, "= param \"frozen.w\" {frozen} : f32[4]\n"));
    assert_non_null(strstr(text, "{transpose_a, transpose_b}"));
    assert_non_null(strstr(text, "{axes=[0,1], keepdim}"));
    assert_non_null(strstr(text, "= cast %"));
    assert_non_null(strstr(text, " : i32[5,3]  # m.lathe:2:5\n"));
    assert_non_null(strstr(text, "= iota {axis=1} : i64[4,4]"));
    assert_non_null(strstr(text, "{stream=3} : f32[N,16]"));
    assert_non_null(strstr(text, "{stride=[2,2], pad=[1,1], dilation=[1,2], groups=2} : f32[N,6,4,3]"));
    assert_non_null(strstr(text, "{window=[3,3], stride=[2,2], pad=[1,1], dilation=[1,1], ceil_mode} : "
                                 "f32[N,4,5,5]"));
    assert_non_null(strstr(text, "{window=[2,2], stride=[2,1], pad=[0,0], count_include_pad} : f32[N,4,4,7]"));
    assert_non_null(strstr(text, "{start=[0,1], step=[1,2]} : f32[N,2]"));
    assert_non_null(strstr(text, "{start=[0,1], step=[1,3], value=-inf} : f32[N,7]"));
    assert_non_null(strstr(text, "{start=[0,0], step=[1,1], value=nan} : f32[N,5]"));
    assert_non_null(strstr(text, "{start=[0,2], step=[1,1], value=0.10000000000000001} : f32[N,6]"));
    assert_non_null(strstr(text, "{axis=1} : f32[N,10]"));
    /* every op appears */
    for (int op = 0; op < OP__COUNT; op++) {
        char *pat = arena_printf(ts.a, "= %s ", ir_op_name((Op)op));
        if (!strstr(text, pat))
            fail_msg("op %s missing from the printed graph", ir_op_name((Op)op));
    }
    assert_round_trip(text);
}

static void test_round_trip_after_renumber_of_sparse_ids(void **state)
{
    const char *sparse = "graph g {\n"
                         "  %10 = input \"x\" : f32[N]\n"
                         "  %3 = neg %10 : f32[N]\n"
                         "  output \"y\" = %3\n"
                         "}\n";
    Graph *g = ts_parse_graph("t.ir", sparse);
    assert_string_equal(print_graph(g, false), "graph g {\n"
                                               "  %0 = input \"x\" : f32[N]\n"
                                               "  %1 = neg %0 : f32[N]\n"
                                               "  output \"y\" = %1\n"
                                               "}\n");
}

static void test_several_graphs_and_comments(void **state)
{
    const char *text = "# a file of two graphs\n"
                       "\n"
                       "graph a {\n"
                       "  # a comment line\n"
                       "  %0 = input \"x\" : f32[2]\n"
                       "\n"
                       "  %1 = exp %0 : f32[2]  # not a location\n"
                       "  output \"y\" = %1\n"
                       "}\n"
                       "   # between\n"
                       "graph b {\n"
                       "  %0 = input \"x\" : i32[]\n"
                       "  output \"y\" = %0\n"
                       "}\n";
    Graph **gs;
    assert_int_equal(ir_parse(ts.a, ts.d, "t.ir", text, &gs), 2);
    assert_string_equal(gs[1]->name, "b");
    assert_null(gs[0]->nodes[1]->loc.file);
    assert_int_equal(gs[0]->nodes[1]->op, OP_EXP);
}

/* A value id of one graph is unknown in the next, and a huge id in one graph costs the later graphs
   nothing: each graph clears only the ids of the one before (all 16M slots, 2000 times, took seconds). */
static void test_huge_value_id_then_many_graphs_is_fast(void **state)
{
    const char *first = "graph a {\n  %16000000 = input \"x\" : f32[2]\n  output \"y\" = %16000000\n}\n";
    const char *small = "graph b {\n}\n";
    int ngraphs = 2000;
    size_t cap = strlen(first) + (size_t)ngraphs * strlen(small) + 1;
    char *text = arena_alloc(ts.a, cap);
    strcpy(text, first);
    for (int i = 0; i < ngraphs; i++)
        strcat(text + strlen(first) + (size_t)i * strlen(small), small);
    Graph **gs;
    clock_t start = clock();
    assert_int_equal(ir_parse(ts.a, ts.d, "t.ir", text, &gs), ngraphs + 1);
    double seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
    if (seconds > 1.5)
        fail_msg("parsing took %.1f s", seconds);

    const char *leak = "graph a {\n  %5 = input \"x\" : f32[2]\n}\ngraph b {\n  output \"y\" = %5\n}\n";
    assert_int_equal(ir_parse(ts.a, ts.d, "t.ir", leak, &gs), 0);
    assert_string_equal(diag_first_message(ts.d), "use of undefined value %5");
}

static void test_dot_has_a_node_per_ir_node(void **state)
{
    Graph *g = ts_parse_graph("t.ir", spec_text);
    const char *dot = print_graph(g, true);
    assert_non_null(strstr(dot, "digraph \"train\" {"));
    assert_non_null(strstr(dot, "n3 [label=\"%3 matmul\\nf32[N,10]\""));
    assert_non_null(strstr(dot, "n0 [label=\"%0 input \\\"x\\\"\\nf32[N,1,28,28]\\nfashion_mlp.lathe:14\""));
    assert_non_null(strstr(dot, "n2 -> n3;"));
    assert_non_null(strstr(dot, "n6 -> out0;"));
    for (int i = 0; i < g->nnodes; i++)
        assert_non_null(strstr(dot, arena_printf(ts.a, "  n%d [", i)));
}

/* ---------------------------------------------------------------- errors */

static void assert_parse_error(const char *text, int line, int col, const char *msg)
{
    Graph **gs;
    assert_int_equal(ir_parse(ts.a, ts.d, "bad.ir", text, &gs), 0);
    assert_true(diag_error_count(ts.d) >= 1);
    if (strcmp(diag_first_message(ts.d), msg) != 0)
        fail_msg("message \"%s\", expected \"%s\"", diag_first_message(ts.d), msg);
    Loc loc = diag_first_loc(ts.d);
    assert_string_equal(loc.file, "bad.ir");
    assert_int_equal(loc.line, line);
    assert_int_equal(loc.col, col);
}

static void test_error_unknown_op(void **state)
{
    assert_parse_error("graph g {\n  %0 = input \"x\" : f32[2]\n  %1 = frob %0 : f32[2]\n}\n", 3, 8,
                       "unknown op 'frob'");
}

static void test_error_undefined_value(void **state)
{
    assert_parse_error("graph g {\n  %0 = input \"x\" : f32[2]\n  %1 = add %0, %7 : f32[2]\n}\n", 3, 16,
                       "use of undefined value %7");
}

static void test_error_declared_type_differs(void **state)
{
    assert_parse_error("graph g {\n  %0 = input \"x\" : f32[N,3]\n  %1 = relu %0 : f32[N,4]\n}\n", 3, 18,
                       "declared type f32[N,4] differs from the inferred f32[N,3]");
}

static void test_error_shape_rule_at_op(void **state)
{
    assert_parse_error("graph g {\n"
                       "  %0 = input \"x\" : f32[N,784]\n"
                       "  %1 = param \"w\" : f32[512,10]\n"
                       "  %2 = matmul %0, %1 : f32[N,10]\n"
                       "}\n",
                       4, 8, "matmul: inner dimensions differ: f32[N,784] @ f32[512,10]");
}

static void test_error_attribute_not_for_op(void **state)
{
    assert_parse_error("graph g {\n  %0 = input \"x\" : f32[2]\n  %1 = neg %0 {keepdim} : f32[2]\n}\n", 3, 16,
                       "neg takes no attribute 'keepdim'");
}

static void test_error_bad_dtype(void **state)
{
    assert_parse_error("graph g {\n  %0 = input \"x\" : f16[2]\n}\n", 2, 20,
                       "expected a dtype (f32, f64, i32, i64, u8)");
}

static void test_error_wrong_operand_count(void **state)
{
    assert_parse_error("graph g {\n  %0 = input \"x\" : f32[2]\n  %1 = add %0 : f32[2]\n}\n", 3, 8,
                       "add takes 2 operands, not 1");
}

static void test_error_unclosed_graph(void **state)
{
    assert_parse_error("graph g {\n  %0 = input \"x\" : f32[2]\n", 1, 1, "graph g is not closed with '}'");
}

static void test_error_duplicate_value(void **state)
{
    assert_parse_error("graph g {\n  %0 = input \"x\" : f32[2]\n  %0 = neg %0 : f32[2]\n}\n", 3, 3,
                       "value %0 is defined twice");
}

static void test_error_trailing_text(void **state)
{
    assert_parse_error("graph g {\n  %0 = input \"x\" : f32[2] junk\n}\n", 2, 27, "unexpected text after the type");
}

static void test_error_empty_text(void **state)
{
    assert_parse_error("\n# nothing\n", 3, 1, "no graph in the text");
}

static void test_error_unterminated_string(void **state)
{
    assert_parse_error("graph g {\n  %0 = input \"x : f32[2]\n}\n", 2, 14, "unterminated string");
}

static void test_error_perm_length(void **state)
{
    assert_parse_error("graph g {\n  %0 = input \"x\" : f32[2,3]\n  %1 = transpose %0 {perm=[1,0,2]} : f32[3,2]\n}\n",
                       3, 22, "perm has 3 entries for an operand of rank 2");
}

static void test_error_reported_with_caret(void **state)
{
    TsCapture c;
    Diag *d = diag_new(ts_capture_open(&c));
    const char *text = "graph g {\n  %0 = input \"x\" : f32[N,3]\n  %1 = exp %0 : f32[N,4]\n}\n";
    diag_add_source(d, "c.ir", text, strlen(text));
    Graph **gs;
    assert_int_equal(ir_parse(ts.a, d, "c.ir", text, &gs), 0);
    const char *printed = ts_capture_close(&c);
    assert_string_equal(printed, "c.ir:3:17: error: declared type f32[N,4] differs from the inferred f32[N,3]\n"
                                 "  %1 = exp %0 : f32[N,4]\n"
                                 "                ^\n");
    diag_free(d);
}

#define T(f) cmocka_unit_test_setup_teardown(f, ts_setup, ts_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_spec_example_round_trips),
        T(test_parse_fills_nodes),
        T(test_every_op_round_trips),
        T(test_round_trip_after_renumber_of_sparse_ids),
        T(test_several_graphs_and_comments),
        T(test_huge_value_id_then_many_graphs_is_fast),
        T(test_dot_has_a_node_per_ir_node),
        T(test_error_unknown_op),
        T(test_error_undefined_value),
        T(test_error_declared_type_differs),
        T(test_error_shape_rule_at_op),
        T(test_error_attribute_not_for_op),
        T(test_error_bad_dtype),
        T(test_error_wrong_operand_count),
        T(test_error_unclosed_graph),
        T(test_error_duplicate_value),
        T(test_error_trailing_text),
        T(test_error_empty_text),
        T(test_error_unterminated_string),
        T(test_error_perm_length),
        T(test_error_reported_with_caret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
