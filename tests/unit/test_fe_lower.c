/* test_fe_lower.c: from model file to Program. models/fashion_mlp.lathe gives PyTorch's parameter names,
   shapes and inits, the three graphs with their inputs, outputs and types, nodes located at the user's
   lines (library code at the user's call site), and the recipe's values; small models check naming,
   constant folding and the IR that operators build. */
#include "support.h"

#include <math.h>
#include <string.h>

#include "../../frontend/fe.h"

/* cmocka's assert_float_equal works in float; these values need double precision. */
#define assert_near(a, b, eps) assert_true(fabs((double)(a) - (double)(b)) <= (eps))

static Program *fashion(void) { return ts_compile_text("fashion_mlp.lathe", ts_read_model("fashion_mlp.lathe")); }

static const char *TRAIN = "\ntrain M { loss = cross_entropy(logits, label)\n optimizer = SGD(lr = 0.1) }\n";

static Program *compile(const char *model) {
    return ts_compile_text("m.lathe", arena_printf(ts.a, "%s%s", model, TRAIN));
}

static const char *type_of(const Node *n) {
    char buf[128];
    return arena_strdup(ts.a, ir_type_str(n->dtype, &n->shape, buf, sizeof buf));
}

static const Output *output(const Graph *g, const char *name) {
    int i = ts_output_index(g, name);
    if (i < 0)
        fail_msg("graph %s has no output %s", g->name, name);
    return &g->outputs[i];
}

static const Node *first(const Graph *g, Op op) {
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == op)
            return g->nodes[i];
    fail_msg("graph %s has no %s", g->name, ir_op_name(op));
    return NULL;
}

static void test_lower_fashion_param_names_and_shapes(void **state) {
    Program *p = fashion();
    const char *names[] = {"linear_relu_stack.0.weight", "linear_relu_stack.0.bias", "linear_relu_stack.2.weight",
                           "linear_relu_stack.2.bias", "linear_relu_stack.4.weight", "linear_relu_stack.4.bias"};
    const char *types[] = {"f32[512,784]", "f32[512]", "f32[512,512]", "f32[512]", "f32[10,512]", "f32[10]"};
    assert_int_equal(p->nparams, 6);
    for (int i = 0; i < 6; i++) {
        char buf[64];
        assert_string_equal(p->params[i].name, names[i]);
        assert_string_equal(ir_type_str(p->params[i].dtype, &p->params[i].shape, buf, sizeof buf), types[i]);
        assert_true(p->params[i].trainable);
    }
    assert_string_equal(p->model_name, "NeuralNetwork");
}

static void test_lower_fashion_inits_are_pytorch_defaults(void **state) {
    Program *p = fashion();
    const ParamInfo *w = ts_param(p, "linear_relu_stack.0.weight"), *b = ts_param(p, "linear_relu_stack.4.bias");
    assert_int_equal(w->init.kind, INIT_UNIFORM);
    assert_near(w->init.a, -1 / sqrt(784), 1e-12);
    assert_near(w->init.b, 1 / sqrt(784), 1e-12);
    assert_int_equal(b->init.kind, INIT_UNIFORM);
    assert_near(b->init.b, 1 / sqrt(512), 1e-12);
    assert_int_equal(w->loc.line, 7); /* Linear(28 * 28, 512): the user's line, not the library's */
    assert_int_equal(w->loc.col, 9);
}

static void test_lower_fashion_graph_inputs_and_outputs(void **state) {
    Program *p = fashion();
    assert_int_equal(p->ninputs, 2);
    assert_string_equal(p->input_names[0], "x");
    assert_string_equal(p->input_names[1], "label");
    assert_string_equal(type_of(ir_find_leaf(p->predict, OP_INPUT, "x")), "f32[N,1,28,28]");
    assert_null(ir_find_leaf(p->predict, OP_INPUT, "label"));
    assert_int_equal(p->predict->noutputs, 1);
    assert_string_equal(type_of(output(p->predict, "logits")->value), "f32[N,10]");
    const Graph *gs[] = {p->eval, p->train, p->grads};
    for (int i = 0; i < 3; i++) {
        assert_string_equal(type_of(ir_find_leaf(gs[i], OP_INPUT, "x")), "f32[N,1,28,28]");
        assert_string_equal(type_of(ir_find_leaf(gs[i], OP_INPUT, "label")), "i64[N]");
        assert_int_equal(gs[i]->noutputs, 2);
        assert_string_equal(type_of(output(gs[i], "loss")->value), "f32[]");
        assert_string_equal(type_of(output(gs[i], "logits")->value), "f32[N,10]");
        assert_non_null(ir_find_leaf(gs[i], OP_PARAM, "linear_relu_stack.2.weight"));
    }
    assert_string_equal(p->predict->name, "predict");
    assert_string_equal(p->eval->name, "eval");
    assert_string_equal(p->train->name, "train");
    assert_string_equal(p->grads->name, "grads");
    assert_null(p->grads->optimizer); /* the runtime's optimizer applies its gradients */
    assert_null(p->eval->optimizer);
    assert_non_null(p->train->optimizer);
    assert_string_equal(p->train->optimizer->str, "SGD");
}

static void test_lower_fashion_one_param_node_per_graph(void **state) {
    Program *p = fashion();
    int n = 0;
    for (int i = 0; i < p->train->nnodes; i++)
        n += p->train->nodes[i]->op == OP_PARAM;
    assert_int_equal(n, 6);
}

static void test_lower_fashion_node_locations(void **state) {
    Program *p = fashion();
    const Node *x = ir_find_leaf(p->predict, OP_INPUT, "x");
    assert_int_equal(x->loc.line, 14);
    assert_int_equal(x->loc.col, 13);
    const Node *r = first(p->predict, OP_RESHAPE); /* flatten(x), in the library */
    assert_string_equal(r->loc.file, "fashion_mlp.lathe");
    assert_int_equal(r->loc.line, 15);
    assert_int_equal(r->loc.col, 13);
    /* Linear's x @ weight.T, run by the Sequential: at the line that created that Linear */
    const Node *m = first(p->predict, OP_MATMUL);
    assert_int_equal(m->loc.line, 7);
    assert_int_equal(m->loc.col, 9);
    const Node *l = output(p->eval, "loss")->value;
    assert_int_equal(l->loc.line, 29);
    assert_int_equal(l->loc.col, 17);
}

static void test_lower_fashion_recipe_values(void **state) {
    Program *p = fashion();
    const RVal *data = program_recipe(p, "data");
    assert_int_equal(data->kind, RV_CALL);
    assert_string_equal(data->str, "idx");
    assert_string_equal(rval_arg(data, NULL, 0)->str, "train-images-idx3-ubyte.gz");
    const RVal *scale = rval_arg(data, "scale", -1);
    assert_int_equal(scale->kind, RV_NUM);
    assert_false(scale->is_int);
    assert_near(scale->num, 1.0 / 255, 1e-15);
    const RVal *batch = program_recipe(p, "batch");
    assert_true(batch->is_int);
    assert_near(batch->num, 64, 0);
    assert_int_equal(program_recipe(p, "shuffle")->kind, RV_BOOL);
    assert_near(program_recipe(p, "shuffle")->num, 0, 0);
    assert_near(program_recipe(p, "epochs")->num, 5, 0);
    const RVal *classes = program_recipe(p, "classes");
    assert_int_equal(classes->nitems, 10);
    assert_string_equal(classes->items[9]->str, "Ankle boot");
    const RVal *lr = rval_arg(program_recipe(p, "optimizer"), "lr", 0);
    assert_near(lr->num, 1e-3, 1e-15);
    const RVal *metrics = program_recipe(p, "metrics");
    assert_int_equal(metrics->items[0]->kind, RV_IDENT);
    assert_string_equal(metrics->items[0]->str, "accuracy");
    assert_int_equal(program_recipe(p, "loss")->kind, RV_CALL);
    assert_null(program_recipe(p, "seed"));
}

static void test_lower_own_params_before_children(void **state) {
    Program *p = compile("model M {\n"
                         "  fc1 = Linear(4, 3)\n"
                         "  scale = param f32[3] init ones()\n"
                         "  forward(x: f32[N, 4]) -> f32[N, 3] { return fc1(x) * scale }\n"
                         "}");
    assert_int_equal(p->nparams, 3);
    assert_string_equal(p->params[0].name, "scale");
    assert_int_equal(p->params[0].init.kind, INIT_ONES);
    assert_string_equal(p->params[1].name, "fc1.weight");
    assert_string_equal(p->params[2].name, "fc1.bias");
}

static void test_lower_member_access_and_layer_arguments(void **state) {
    Program *p = compile("layer Wrap(inner, k: float = 2) {\n"
                         "  gain = param f32[] init constant(k)\n"
                         "  forward(x) { return inner(x) * gain }\n"
                         "}\n"
                         "model M {\n"
                         "  w = Wrap(Linear(4, 3))\n"
                         "  forward(x: f32[N, 4]) { return w(x) + x @ w.inner.weight.T }\n"
                         "}");
    assert_int_equal(p->nparams, 3);
    assert_string_equal(p->params[0].name, "w.gain");
    assert_int_equal(p->params[0].init.kind, INIT_CONST);
    assert_near(p->params[0].init.a, 2.0, 0);
    assert_string_equal(p->params[1].name, "w.inner.weight");
    int nparam = 0;
    for (int i = 0; i < p->predict->nnodes; i++)
        nparam += p->predict->nodes[i]->op == OP_PARAM;
    assert_int_equal(nparam, 3); /* w.inner.weight used twice, one node */
}

static void test_lower_library_nodes_at_user_call_site(void **state) {
    Program *p = compile("model M {\n"
                         "  fc1 = Linear(4, 3)\n"
                         "  forward(x: f32[N, 4]) {\n"
                         "    h = relu(fc1(x))\n"
                         "    return h\n"
                         "  }\n"
                         "}");
    const Node *m = first(p->predict, OP_MATMUL), *add = first(p->predict, OP_ADD);
    const Node *relu = first(p->predict, OP_RELU);
    assert_int_equal(m->loc.line, 4);
    assert_int_equal(m->loc.col, 14);
    assert_int_equal(add->loc.col, 14);
    assert_int_equal(relu->loc.col, 9);
}

static void test_lower_constant_folding_in_shapes(void **state) {
    Program *p = compile("model M {\n"
                         "  k = 2 ** 3 + 7 % 3 - 10 / 5\n" /* 8 + 1 - 2.0 = 7.0: a float */
                         "  w = param f32[2 ** 3, 7 % 3, -(-2)] init normal(0, 0.5)\n"
                         "  forward(x: f32[N, 2]) -> f32[N, 2] { return x * k + sum(w) }\n"
                         "}");
    char buf[64];
    assert_string_equal(ir_type_str(p->params[0].dtype, &p->params[0].shape, buf, sizeof buf), "f32[8,1,2]");
    assert_int_equal(p->params[0].init.kind, INIT_NORMAL);
    assert_near(p->params[0].init.b, 0.5, 0);
    const Node *c = first(p->predict, OP_CONST);
    assert_near(c->attr.value, 7.0, 0);
    assert_int_equal(c->shape.rank, 0);
    assert_int_equal(c->dtype, DT_F32);
}

static void test_lower_def_with_default_and_keywords(void **state) {
    Program *p = compile("def scaled(x, by = 2) { return x * by }\n"
                         "model M {\n"
                         "  forward(x: f32[N, 5]) { return scaled(x) + scaled(x, by = 3) }\n"
                         "}");
    int nconst = 0;
    for (int i = 0; i < p->predict->nnodes; i++)
        if (p->predict->nodes[i]->op == OP_CONST)
            nconst++;
    assert_int_equal(nconst, 2);
    assert_string_equal(type_of(output(p->predict, "logits")->value), "f32[N,5]");
}

static void test_lower_builtins_shapes(void **state) {
    Program *p = compile("model M {\n"
                         "  forward(x: f32[N, 2, 3]) {\n"
                         "    a = transpose(x, [0, 2, 1])\n"
                         "    b = reshape(a, [-1, 6])\n"
                         "    c = mean(x, axis = [1, -1])\n"
                         "    d = max(x, 2, true)\n"
                         "    e = max(where(x > 0, x, 0), x)\n"
                         "    f = min(e, axis = 2, keepdim = true)\n"
                         "    return reshape(b, [dim(x, 0), 6]) + sum(f * d, axis = 1) + reshape(c, [N, 1])\n"
                         "  }\n"
                         "}");
    assert_string_equal(type_of(first(p->predict, OP_TRANSPOSE)), "f32[N,3,2]");
    assert_string_equal(type_of(first(p->predict, OP_RESHAPE)), "f32[N,6]");
    assert_string_equal(type_of(first(p->predict, OP_REDUCE_MEAN)), "f32[N]");
    assert_string_equal(type_of(first(p->predict, OP_SELECT)), "f32[N,2,3]");
    assert_string_equal(type_of(first(p->predict, OP_MAX)), "f32[N,2,3]");
    assert_string_equal(type_of(first(p->predict, OP_REDUCE_MAX)), "f32[N,2,1]");
    assert_string_equal(type_of(output(p->predict, "logits")->value), "f32[N,6]");
}

static void test_lower_metric_listed_twice_gives_one_output(void **state) {
    Program *p = ts_compile_text("m.lathe", "model M { forward(x: f32[N, 3]) { return x } }\n"
                                            "train M { loss = cross_entropy(logits, label)\n optimizer = SGD(lr = 1)\n"
                                            " metrics = [accuracy, accuracy]\n seed = 7 }");
    assert_non_null(p);
    assert_int_equal(p->eval->noutputs, 2);
    assert_true(program_recipe(p, "seed")->is_int);
}

/* The library's cross_entropy and accuracy, run by the reference interpreter, agree with the formulas:
   loss = mean_i(log(sum_j exp(x_ij)) - x_i,label_i), correct = #{i: argmax_j x_ij == label_i}. */
static void test_lower_cross_entropy_and_accuracy_values(void **state) {
    /* the library's accuracy through a metric of the model file's own, which the graphs compute */
    Program *p = ts_compile_text("m.lathe", "def hits(l, t) { return accuracy(l, t) }\n"
                                            "model M { forward(x: f32[N, 3]) { return x } }\n"
                                            "train M { loss = cross_entropy(logits, label)\n optimizer = SGD(lr = 1)\n"
                                            " metrics = [hits] }");
    assert_non_null(p);
    double x[] = {1, 2, 3, 1, 0, 0}, label[] = {2, 1};
    IBinding bind[] = {
        {"x", {ts_shape(2, 2, 3), x}},
        {"label", {ts_shape(1, 2), label}},
    };
    ITensor *out = ir_interp(ts.a, p->eval, 2, bind, 2, ts.d);
    if (!out)
        fail_msg("%s", diag_first_message(ts.d));
    double l0 = log(exp(1) + exp(2) + exp(3)) - 3, l1 = log(exp(1) + 2) - 0;
    assert_near(out[0].data[0], (l0 + l1) / 2, 1e-6); /* the interpreter rounds f32 */
    assert_int_equal(ts_output_index(p->eval, "metric.hits"), 2); /* after loss and logits */
    assert_near(out[2].data[0], 1, 0);
}

/* min over a u8 tensor: -max(-x) wraps (-5 is 251 in u8) and reorders, so that min(0, 5) came out 5. */
static void test_lower_min_of_u8_tensor_does_not_wrap(void **state) {
    Program *p = compile("model M {\n"
                         "  forward(x: u8[N, 2]) { return cast(min(x, axis = 1, keepdim = true), f32) }\n"
                         "}");
    double x[] = {0, 5, 7, 3, 255, 200};
    IBinding bind[] = {{"x", {ts_shape(2, 3, 2), x}}};
    ITensor *out = ir_interp(ts.a, p->predict, 3, bind, 1, ts.d);
    if (!out)
        fail_msg("%s", diag_first_message(ts.d));
    assert_near(out[0].data[0], 0, 0);
    assert_near(out[0].data[1], 3, 0);
    assert_near(out[0].data[2], 200, 0);
}

/* The same for the most negative i32, whose negation overflows. */
static void test_lower_min_of_i32_tensor_at_its_lowest_value(void **state) {
    Program *p = compile("model M {\n"
                         "  forward(x: i32[N, 2]) { return cast(min(x, axis = 1, keepdim = true), f32) }\n"
                         "}");
    double x[] = {-2147483648.0, 5, 2147483647.0, -3};
    IBinding bind[] = {{"x", {ts_shape(2, 2, 2), x}}};
    ITensor *out = ir_interp(ts.a, p->predict, 2, bind, 1, ts.d);
    if (!out)
        fail_msg("%s", diag_first_message(ts.d));
    assert_near(out[0].data[0], -2147483648.0, 0);
    assert_near(out[0].data[1], -3, 0);
}

/* Autodiff gives integer parameters no gradient, so they are reported as frozen. */
static void test_lower_integer_param_is_not_trainable(void **state) {
    Program *p = compile("model M {\n  k = param i32[2]\n"
                         "  forward(x: f32[N, 2]) { return x * cast(k, f32) }\n}");
    assert_false(ts_param(p, "k")->trainable);
}

/* Scopes past 8 names are hashed: a body of many names finds and rebinds each, and a call with many keyword
   arguments in any order binds each to its parameter. */
static void test_lower_large_scopes_find_and_rebind(void **state) {
    Program *p = compile("def f(a, b, c, d, e, f, g, h, i, j) { return a + 2 * b + 4 * c + 8 * j }\n"
                         "def k() {\n  a1 = 1\n  a2 = 2\n  a3 = 3\n  a4 = 4\n  a5 = 5\n  a6 = 6\n  a7 = 7\n"
                         "  a8 = 8\n  a9 = 9\n  a10 = 10\n  a1 = a1 + a10\n  a10 = 100\n"
                         "  return f(j = a10, i = 0, h = 0, g = 0, f = 0, e = 0, d = 0, c = a9, b = a2, a = a1)\n}\n"
                         "model M {\n  forward(x: f32[N, 851]) { return reshape(x, [N, k()]) }\n}");
    /* a1 = 11, then 11 + 2 * 2 + 4 * 9 + 8 * 100 = 851 */
    assert_string_equal(type_of(output(p->predict, "logits")->value), "f32[N,851]");
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, ts_setup, ts_teardown)
    const struct CMUnitTest tests[] = {
        T(test_lower_fashion_param_names_and_shapes),
        T(test_lower_fashion_inits_are_pytorch_defaults),
        T(test_lower_fashion_graph_inputs_and_outputs),
        T(test_lower_fashion_one_param_node_per_graph),
        T(test_lower_fashion_node_locations),
        T(test_lower_fashion_recipe_values),
        T(test_lower_own_params_before_children),
        T(test_lower_member_access_and_layer_arguments),
        T(test_lower_library_nodes_at_user_call_site),
        T(test_lower_constant_folding_in_shapes),
        T(test_lower_def_with_default_and_keywords),
        T(test_lower_builtins_shapes),
        T(test_lower_metric_listed_twice_gives_one_output),
        T(test_lower_cross_entropy_and_accuracy_values),
        T(test_lower_min_of_u8_tensor_does_not_wrap),
        T(test_lower_min_of_i32_tensor_at_its_lowest_value),
        T(test_lower_integer_param_is_not_trainable),
        T(test_lower_large_scopes_find_and_rebind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
