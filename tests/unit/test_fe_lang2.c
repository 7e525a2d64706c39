/* test_fe_lang2.c: the language of the layers issue. Statements (if/else if/else staged away, for unrolled,
   calls), none/and/or/not and == on compile-time values, list comprehensions, tensor indexing and slicing,
   lists of layers (ModuleList naming), Sequential(list), buffers with update(), freeze and init paths,
   `training`, N in arithmetic, the new builtins (each checked by the IR it builds), the data sources'
   label types and SGD's keywords; and every misuse as one error at its line and column. Layers are defined
   in the test models so that the tests do not depend on the standard library's. */
#include "support.h"

#include <math.h>
#include <string.h>

#include "../../frontend/fe.h"

/* A loss that any forward's result gives, so that every graph builds. */
static const char *TRAIN = "\ntrain M { loss = mean(cast(logits, f32))\n optimizer = SGD(lr = 0.1) }\n";

static Program *compile(const char *model) {
    return ts_compile_text("m.lathe", arena_printf(ts.a, "%s%s", model, TRAIN));
}

static void expect_error(const char *text, const char *msg, int line, int col) {
    ts_expect_compile_error(text, msg, line, col);
}

static void expect_model_error(const char *model, const char *msg, int line, int col) {
    expect_error(arena_printf(ts.a, "%s%s", model, TRAIN), msg, line, col);
}

static const char *type_of(const Node *n) {
    char buf[128];
    return arena_strdup(ts.a, ir_type_str(n->dtype, &n->shape, buf, sizeof buf));
}

static const Node *first(const Graph *g, Op op) {
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == op)
            return g->nodes[i];
    fail_msg("graph %s has no %s", g->name, ir_op_name(op));
    return NULL;
}

static const Node *logits(const Program *p) {
    int i = ts_output_index(p->predict, "logits");
    assert_true(i >= 0);
    return p->predict->outputs[i].value;
}

/* The result of forward(x: TYPE) { return EXPR } in the predict graph. */
static const Node *result_of(const char *type, const char *expr) {
    Program *p = compile(arena_printf(ts.a, "model M {\n  forward(x: %s) { return %s }\n}", type, expr));
    return logits(p);
}

/* ---------------------------------------------------------------- statements */

static void test_lang_if_else_if_else_builds_only_the_branch_taken(void **state) {
    Program *p = compile("layer Act(kind) {\n"
                         "  forward(x) {\n"
                         "    if kind == \"relu\" {\n      y = relu(x)\n"
                         "    } else if kind == \"tanh\" {\n      y = tanh(x)\n"
                         "    } else {\n      y = sigmoid(x)\n    }\n"
                         "    return y\n  }\n}\n"
                         "model M {\n  a = Act(\"tanh\")\n  b = Act(\"other\")\n"
                         "  forward(x: f32[N, 3]) { return b(a(x)) }\n}");
    assert_int_equal(ts_count_op(p->predict, OP_TANH), 1);
    assert_int_equal(ts_count_op(p->predict, OP_SIGMOID), 1);
    assert_int_equal(ts_count_op(p->predict, OP_RELU), 0);
}

static void test_lang_return_inside_if_ends_the_call(void **state) {
    Program *p = compile("def f(x, k) {\n  if k == none {\n    return relu(x)\n  }\n  return exp(x)\n}\n"
                         "model M {\n  forward(x: f32[N, 3]) { return f(x, none) + f(x, 1) }\n}");
    assert_int_equal(ts_count_op(p->predict, OP_RELU), 1);
    assert_int_equal(ts_count_op(p->predict, OP_EXP), 1);
}

static void test_lang_for_over_range_unrolls(void **state) {
    Program *p = compile("model M {\n  forward(x: f32[N, 3]) {\n    for i in range(1, 7, 2) {\n"
                         "      x = x * i\n    }\n    return x\n  }\n}");
    /* i = 1, 3, 5: three products */
    assert_int_equal(ts_count_op(p->predict, OP_MUL), 3);
    assert_int_equal(ts_count_op(p->predict, OP_CONST), 3);
}

static void test_lang_for_over_list_of_layers_and_module_list_names(void **state) {
    Program *p = compile("layer Block(n: int) {\n  w = param f32[n, n] init ones()\n"
                         "  forward(x) { return relu(x @ w) }\n}\n"
                         "model M {\n  blocks = [Block(4) for i in range(3)]\n"
                         "  forward(x: f32[N, 4]) {\n    for b in blocks {\n      x = b(x)\n    }\n"
                         "    return blocks[-1](x)\n  }\n}");
    assert_int_equal(p->nparams, 3);
    assert_string_equal(p->params[0].name, "blocks.0.w");
    assert_string_equal(p->params[2].name, "blocks.2.w");
    assert_int_equal(ts_count_op(p->predict, OP_MATMUL), 4);
}

static void test_lang_sequential_of_a_list_names_children(void **state) {
    Program *p = compile("layer Scale(n: int) {\n  s = param f32[n] init ones()\n  forward(x) { return x * s }\n}\n"
                         "model M {\n  body = Sequential([Scale(2) for i in range(2)])\n"
                         "  forward(x: f32[N, 2]) { return body[1](body(x)) }\n}");
    assert_int_equal(p->nparams, 2);
    assert_string_equal(p->params[0].name, "body.0.s");
    assert_string_equal(p->params[1].name, "body.1.s");
    assert_int_equal(ts_count_op(p->predict, OP_MUL), 3);
}

static void test_lang_member_if_else_chooses_members(void **state) {
    Program *p = compile("layer L(bias = true) {\n  w = param f32[2]\n"
                         "  if bias {\n    bias = param f32[2]\n  } else {\n    extra = 1\n  }\n"
                         "  forward(x) { return x * w }\n}\n"
                         "model M {\n  a = L()\n  b = L(bias = false)\n  forward(x: f32[N, 2]) { return b(a(x)) }\n}");
    assert_int_equal(p->nparams, 3);
    assert_string_equal(p->params[1].name, "a.bias");
    assert_string_equal(p->params[2].name, "b.w");
}

static void test_lang_logic_and_none_fold(void **state) {
    Program *p = compile("def pick(a, b) { return a or b }\n"
                         "model M {\n  k = pick(none, 3)\n  t = not (k == 3 and none == none) or [1, 2] != [1, 2]\n"
                         "  z = [] or 0\n"
                         "  forward(x: f32[N, 2]) {\n    if t or z {\n      x = relu(x)\n    }\n"
                         "    return x * k\n  }\n}");
    assert_int_equal(ts_count_op(p->predict, OP_RELU), 0);
    assert_true(ir_is_const(first(p->predict, OP_CONST), 3));
}

static void test_lang_list_comprehension_len_and_slices(void **state) {
    const Node *n = result_of("f32[N, 6]", "reshape(x, [N, len([i * i for i in range(4)][1:]) * len([1, 2, 3, 4][::2])])");
    assert_string_equal(type_of(n), "f32[N,6]");
    n = result_of("f32[N, 5]", "reshape(x, [N, [i * i for i in range(4)][-1] - 4])");
    assert_string_equal(type_of(n), "f32[N,5]");
}

/* ---------------------------------------------------------------- indexing */

static void test_lang_index_int_removes_dim(void **state) {
    const Node *n = result_of("f32[N, 3, 4]", "x[:, 1]");
    assert_int_equal(n->op, OP_RESHAPE);
    assert_string_equal(type_of(n), "f32[N,4]");
    const Node *s = n->inputs[0];
    assert_int_equal(s->op, OP_SLICE);
    assert_string_equal(type_of(s), "f32[N,1,4]");
    assert_int_equal(s->attr.start[1], 1);
}

static void test_lang_index_negative_step_and_ellipsis(void **state) {
    const Node *n = result_of("f32[N, 3, 10]", "x[..., -8:9:3]");
    assert_int_equal(n->op, OP_SLICE);
    assert_string_equal(type_of(n), "f32[N,3,3]"); /* 2, 5, 8 */
    assert_int_equal(n->attr.start[2], 2);
    assert_int_equal(n->attr.step[2], 3);
    n = result_of("f32[N, 3, 10]", "x[:, -1, :]");
    assert_string_equal(type_of(n), "f32[N,10]");
    assert_int_equal(n->inputs[0]->attr.start[1], 2);
}

static void test_lang_index_whole_is_the_tensor_itself(void **state) {
    const Node *n = result_of("f32[N, 3]", "x[:, :] + x[...]");
    assert_int_equal(n->op, OP_ADD);
    assert_int_equal(n->inputs[0]->op, OP_INPUT);
    assert_int_equal(n->inputs[1]->op, OP_INPUT);
}

static void test_lang_slice_builtin_clamps_like_python(void **state) {
    const Node *n = result_of("f32[N, 6]", "slice(x, 1, 2, 100)");
    assert_string_equal(type_of(n), "f32[N,4]");
    assert_int_equal(n->attr.start[1], 2);
}

/* ---------------------------------------------------------------- buffers, freeze, init, training */

static const char *BN = "layer Stat(n: int) {\n"
                        "  scale = param f32[n] init ones()\n"
                        "  running = buffer f32[n] init zeros()\n"
                        "  count = buffer i64[] init zeros()\n"
                        "  forward(x) {\n"
                        "    if training {\n"
                        "      update(running, 0.9 * running + 0.1 * mean(x, axis = 0))\n"
                        "      update(count, count + 1)\n"
                        "      y = x - mean(x, axis = 0)\n"
                        "    } else {\n"
                        "      y = x - running\n"
                        "    }\n"
                        "    return y * scale\n"
                        "  }\n"
                        "}\n";

static void test_lang_buffers_are_frozen_params_updated_in_training(void **state) {
    Program *p = compile(arena_printf(ts.a, "%smodel M {\n  s = Stat(3)\n  forward(x: f32[N, 3]) { return s(x) }\n}", BN));
    assert_int_equal(p->nparams, 3);
    assert_string_equal(p->params[0].name, "s.scale"); /* parameters before buffers, as PyTorch */
    assert_true(p->params[0].trainable);
    const ParamInfo *r = ts_param(p, "s.running"), *c = ts_param(p, "s.count");
    assert_true(r->buffer);
    assert_false(r->trainable);
    assert_int_equal(c->dtype, DT_I64);
    assert_true(c->buffer);
    const Node *rn = ir_find_leaf(p->train, OP_PARAM, "s.running");
    assert_non_null(rn);
    assert_true(rn->attr.frozen);
    int i = ts_output_index(p->train, "s.running");
    assert_true(i >= 1);
    assert_string_equal(p->train->outputs[0].name, "loss"); /* the updates come after the loss */
    assert_true(p->train->outputs[i].update);
    assert_string_equal(type_of(p->train->outputs[i].value), "f32[3]");
    assert_true(ts_output_index(p->train, "s.count") >= 0);
    /* eval and predict read the running statistics and update nothing */
    assert_int_equal(ts_output_index(p->eval, "s.running"), -1);
    assert_int_equal(p->predict->noutputs, 1);
    assert_non_null(ir_find_leaf(p->eval, OP_PARAM, "s.running"));
    assert_non_null(p->train_logits);
    assert_string_equal(type_of(p->train_logits), "f32[N,3]");
}

static void test_lang_freeze_and_init_paths(void **state) {
    Program *p = compile("layer Lin(i: int, o: int) {\n  weight = param f32[o, i] init ones()\n"
                         "  bias = param f32[o]\n  forward(x) { return x @ weight.T + bias }\n}\n"
                         "model M {\n  body = Sequential(Lin(4, 4), Lin(4, 4))\n  heads = [Lin(4, 2), Lin(4, 2)]\n"
                         "  freeze body.0\n  freeze heads.1.bias\n  init heads.0.weight = normal(0, 0.5)\n"
                         "  forward(x: f32[N, 4]) { return heads[0](body(x)) + heads[1](x) }\n}");
    assert_false(ts_param(p, "body.0.weight")->trainable);
    assert_false(ts_param(p, "body.0.bias")->trainable);
    assert_true(ts_param(p, "body.1.weight")->trainable);
    assert_false(ts_param(p, "heads.1.bias")->trainable);
    assert_true(ts_param(p, "heads.1.weight")->trainable);
    assert_false(ts_param(p, "body.0.weight")->buffer);
    assert_int_equal(ts_param(p, "heads.0.weight")->init.kind, INIT_NORMAL);
    assert_true(ts_param(p, "heads.0.weight")->init.b == 0.5);
    assert_true(ir_find_leaf(p->train, OP_PARAM, "body.0.weight")->attr.frozen);
    assert_false(ir_find_leaf(p->train, OP_PARAM, "body.1.weight")->attr.frozen);
}

static void test_lang_rand_in_training_only_with_seed_and_step_inputs(void **state) {
    Program *p = compile("model M {\n  forward(x: f32[N, 3]) {\n    if training {\n"
                         "      x = x * cast(rand_like(x) >= 0.5, f32) + rand([N, 1])\n    }\n    return x\n  }\n}");
    assert_int_equal(ts_count_op(p->train, OP_RANDOM), 2);
    assert_int_equal(ts_count_op(p->eval, OP_RANDOM), 0);
    assert_int_equal(ts_count_op(p->predict, OP_RANDOM), 0);
    const Node *seed = ir_find_leaf(p->train, OP_INPUT, "seed"), *step = ir_find_leaf(p->train, OP_INPUT, "step");
    assert_string_equal(type_of(seed), "i64[]");
    assert_string_equal(type_of(step), "i64[]");
    int k = 0;
    for (int i = 0; i < p->train->nnodes; i++) {
        const Node *n = p->train->nodes[i];
        if (n->op == OP_RANDOM) {
            assert_int_equal(n->attr.stream, k++);
            assert_ptr_equal(n->inputs[0], seed);
            assert_ptr_equal(n->inputs[1], step);
        }
    }
    assert_string_equal(type_of(first(p->train, OP_RANDOM)), "f32[N,3]");
}

static void test_lang_batch_dim_in_arithmetic_is_a_const_with_npow(void **state) {
    Program *p = compile("model M {\n  forward(x: f32[N, 3]) {\n    n = dim(x, 0)\n"
                         "    return x * (n * 49) + x * (n / (n - 1)) + x * (1 / n)\n  }\n}");
    const Graph *g = p->predict;
    bool found49 = false, found_inv = false;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *c = g->nodes[i];
        if (c->op != OP_CONST)
            continue;
        assert_int_equal(c->dtype, DT_F32);
        assert_int_equal(c->shape.rank, 0);
        found49 |= c->attr.value == 49 && c->attr.npow == 1;
        found_inv |= c->attr.value == 1 && c->attr.npow == -1;
    }
    assert_true(found49);
    assert_true(found_inv);
    assert_int_equal(ts_count_op(g, OP_SUB), 1); /* n - 1 */
}

/* ---------------------------------------------------------------- builtins */

static void test_lang_unary_and_reductions(void **state) {
    assert_int_equal(result_of("f32[N, 3]", "erf(x)")->op, OP_ERF);
    assert_int_equal(result_of("f32[N, 3]", "rsqrt(x)")->op, OP_RSQRT);
    const Node *n = result_of("f32[N, 3]", "min(x, axis = 1, keepdim = true)");
    assert_int_equal(n->op, OP_REDUCE_MIN);
    assert_string_equal(type_of(n), "f32[N,1]");
    n = result_of("f32[N, 3]", "argmin(x, 1)");
    assert_int_equal(n->op, OP_ARGMIN);
    assert_string_equal(type_of(n), "i64[N]");
    n = result_of("f32[N, 3]", "max(x, -100) + max(x, 1.0)"); /* not an axis: elementwise */
    assert_int_equal(n->inputs[0]->op, OP_MAX);
    assert_int_equal(n->inputs[1]->op, OP_MAX);
}

static void test_lang_shape_builtins(void **state) {
    assert_string_equal(type_of(result_of("f32[N, 2, 3, 4]", "flatten(x)")), "f32[N,24]");
    assert_string_equal(type_of(result_of("f32[N, 2, 3, 4]", "flatten(x, 2)")), "f32[N,2,12]");
    assert_string_equal(type_of(result_of("f32[N, 2, 3, 4]", "flatten(x, 1, 2)")), "f32[N,6,4]");
    assert_string_equal(type_of(result_of("f32[N, 6]", "view(x, [N, 2, 3])")), "f32[N,2,3]");
    const Node *t = result_of("f32[N, 2, 3]", "transpose(x, -2, -1)");
    assert_int_equal(t->op, OP_TRANSPOSE);
    assert_string_equal(type_of(t), "f32[N,3,2]");
    assert_string_equal(type_of(result_of("f32[N, 2, 3]", "permute(x, [2, 0, 1])")), "f32[3,N,2]");
    assert_string_equal(type_of(result_of("f32[N, 3]", "unsqueeze(x, -1)")), "f32[N,3,1]");
    assert_string_equal(type_of(result_of("f32[N, 1, 3, 1]", "squeeze(x, 1)")), "f32[N,3,1]");
    assert_string_equal(type_of(result_of("f32[N, 1, 3, 1]", "squeeze(x)")), "f32[N,3]");
    const Node *e = result_of("f32[N, 1, 3]", "expand(x, [2, -1, 4, -1])");
    assert_int_equal(e->op, OP_BROADCAST);
    assert_string_equal(type_of(e), "f32[2,N,4,3]");
    assert_string_equal(type_of(result_of("f32[N, 3, 5]", "reshape(x, [shape(x)[0], shape(x)[2], 3])")), "f32[N,5,3]");
    assert_string_equal(type_of(result_of("f32[N, 3]", "x.T.T")), "f32[N,3]");
}

static void test_lang_cat_stack_and_long_lists_chain(void **state) {
    const Node *n = result_of("f32[N, 2]", "cat([x, x * 2, x], axis = -1)");
    assert_int_equal(n->op, OP_CONCAT);
    assert_int_equal(n->ninputs, 3);
    assert_string_equal(type_of(n), "f32[N,6]");
    n = result_of("f32[N, 2]", "stack([x, x], axis = 1)");
    assert_string_equal(type_of(n), "f32[N,2,2]");
    Program *p = compile("model M {\n  forward(x: f32[N, 2]) { return cat([x for i in range(40)], 1) }\n}");
    assert_string_equal(type_of(logits(p)), "f32[N,80]");
    for (int i = 0; i < p->predict->nnodes; i++)
        assert_true(p->predict->nodes[i]->ninputs <= IR_MAX_CONCAT);
    assert_int_equal(ts_count_op(p->predict, OP_CONCAT), 3); /* 16, then 15 more twice */
}

static void test_lang_pad_gather_embedding_one_hot(void **state) {
    const Node *n = result_of("f32[N, 3, 4]", "pad(x, [1, 2, 0, 3], value = -1)");
    assert_int_equal(n->op, OP_PAD);
    assert_string_equal(type_of(n), "f32[N,6,7]");
    assert_int_equal(n->attr.start[2], 1);
    assert_int_equal(n->attr.start[1], 0);
    assert_true(n->attr.value == -1);
    n = result_of("f32[N, 5]", "gather(x, 1, cast(x[:, 0:2], i64))");
    assert_int_equal(n->op, OP_GATHER);
    assert_string_equal(type_of(n), "f32[N,2]");
    Program *p = compile("model M {\n  w = param f32[7, 3]\n"
                         "  forward(x: i64[N, 5]) { return embedding(x, w) }\n}");
    assert_string_equal(type_of(logits(p)), "f32[N,5,3]");
    assert_int_equal(logits(p)->op, OP_MATMUL);
    assert_string_equal(type_of(first(p->predict, OP_ONE_HOT)), "f32[N,5,7]");
}

static void test_lang_window_builtins(void **state) {
    Program *p = compile("model M {\n  w = param f32[8, 2, 3, 3]\n"
                         "  forward(x: f32[N, 4, 9, 9]) {\n"
                         "    c = conv2d(x, w, stride = 2, padding = [1, 1], groups = 2)\n"
                         "    m = max_pool2d(c, 2, ceil_mode = true)\n"
                         "    a = avg_pool2d(c, [3, 3], stride = 1, padding = 1, count_include_pad = false)\n"
                         "    return flatten(adaptive_avg_pool2d(a, 1)) + flatten(m)[:, 0:8]\n  }\n}");
    const Node *c = first(p->predict, OP_CONV2D);
    assert_string_equal(type_of(c), "f32[N,8,5,5]");
    assert_int_equal(c->attr.groups, 2);
    assert_int_equal(c->attr.stride[0], 2);
    assert_int_equal(c->attr.pad[1], 1);
    const Node *m = first(p->predict, OP_MAX_POOL2D);
    assert_string_equal(type_of(m), "f32[N,8,3,3]");
    assert_true(m->attr.ceil_mode);
    assert_int_equal(m->attr.stride[1], 2);
    const Node *a = first(p->predict, OP_AVG_POOL2D);
    assert_string_equal(type_of(a), "f32[N,8,5,5]");
    assert_false(a->attr.count_include_pad);
    assert_string_equal(type_of(first(p->predict, OP_ADAPTIVE_AVG_POOL2D)), "f32[N,8,1,1]");
}

static void test_lang_arange_full_and_broadcast_matmul(void **state) {
    const Node *n = result_of("f32[N, 4]", "x + cast(arange(4), f32) + full([N, 1], 2)");
    assert_string_equal(type_of(n), "f32[N,4]");
    Program *p = compile("model M {\n  forward(x: f32[N, 4]) { return x + cast(arange(4), f32) }\n}");
    const Node *i = first(p->predict, OP_IOTA);
    assert_string_equal(type_of(i), "i64[4]");
    n = result_of("f32[N, 5, 4]", "x @ full([4, 3], 1)");
    assert_string_equal(type_of(n), "f32[N,5,3]");
    n = result_of("f32[N, 2, 5, 4]", "x @ transpose(x, -2, -1)");
    assert_string_equal(type_of(n), "f32[N,2,5,5]");
}

/* ---------------------------------------------------------------- the train block */

static void test_lang_label_types_from_data_sources(void **state) {
    const char *model = "model M {\n  forward(x: f32[N, 4]) { return x }\n}\n";
    Program *p = ts_compile_text("m.lathe", arena_printf(ts.a, "%strain M {\n data = csv(\"a.csv\", regression = true)\n"
                                                         " loss = mse_loss(logits[:, 0:1], label)\n"
                                                         " optimizer = SGD(lr = 0.1, momentum = 0.9, nesterov = true,"
                                                         " weight_decay = 1e-4, dampening = 0) }", model));
    assert_string_equal(type_of(ir_find_leaf(p->train, OP_INPUT, "label")), "f32[N,1]");
    p = ts_compile_text("m.lathe", "model M {\n  forward(x: i64[N, 8]) { return one_hot(x, 256) }\n}\n"
                                   "train M {\n data = text(\"t.txt\", context = 8)\n"
                                   " loss = mean(logits)\n optimizer = SGD(lr = 0.1) }");
    assert_string_equal(type_of(ir_find_leaf(p->eval, OP_INPUT, "label")), "i64[N,8]");
    p = ts_compile_text("m.lathe", arena_printf(ts.a, "%strain M {\n data = csv(\"a.csv\", header = false)\n"
                                                " loss = cross_entropy(logits, label)\n optimizer = SGD(lr = 1) }", model));
    assert_string_equal(type_of(ir_find_leaf(p->train, OP_INPUT, "label")), "i64[N]");
}

static void test_lang_error_unknown_data_keyword_suggests(void **state) {
    expect_error("model M {\n  forward(x: i64[N, 8]) { return x }\n}\n"
                 "train M {\n data = text(\"t.txt\", contxt = 8)\n loss = mean(logits)\n optimizer = SGD(lr = 0.1) }",
                 "'text' has no argument 'contxt' (did you mean 'context'?)", 5, 32);
}

static void test_lang_error_text_data_needs_token_input(void **state) {
    expect_error("model M {\n  forward(x: f32[N, 8]) { return x }\n}\n"
                 "train M {\n data = text(\"t.txt\", context = 8)\n loss = mean(logits)\n optimizer = SGD(lr = 0.1) }",
                 "text gives 'x' as i64[N,8], but forward takes f32[N,8]", 5, 9);
}

/* ---------------------------------------------------------------- errors */

static void test_lang_error_if_on_a_tensor(void **state) {
    expect_model_error("model M {\n  forward(x: f32[N, 4]) {\n    if x > 0 {\n      x = relu(x)\n    }\n    return x\n  }\n}",
                       "the condition of 'if' must be known at compile time", 3, 10);
}

static void test_lang_error_update_of_a_parameter(void **state) {
    expect_model_error("model M {\n  w = param f32[4]\n  forward(x: f32[N, 4]) {\n    update(w, w * 2)\n    return x * w\n  }\n}",
                       "'update' needs a buffer", 4, 5);
}

static void test_lang_error_update_twice(void **state) {
    expect_model_error("model M {\n  b = buffer f32[4]\n  forward(x: f32[N, 4]) {\n    update(b, b + 1)\n"
                       "    update(b, b + 2)\n    return x * b\n  }\n}",
                       "buffer 'b' is updated twice in one step", 5, 5);
}

static void test_lang_error_update_with_wrong_shape(void **state) {
    expect_model_error("model M {\n  b = buffer f32[4]\n  forward(x: f32[N, 4]) {\n    update(b, x)\n    return x * b\n  }\n}",
                       "'update' of buffer 'b' f32[4] with f32[N,4]", 4, 5);
}

static void test_lang_error_freeze_unknown_path_suggests(void **state) {
    expect_model_error("layer L() {\n  weight = param f32[2]\n  forward(x) { return x * weight }\n}\n"
                       "model M {\n  fc = L()\n  freeze fc.wieght\n  forward(x: f32[N, 2]) { return fc(x) }\n}",
                       "'fc' has no member 'wieght' (did you mean 'weight'?)", 7, 13);
}

static void test_lang_error_freeze_list_index_out_of_range(void **state) {
    expect_model_error("layer L() {\n  weight = param f32[2]\n  forward(x) { return x * weight }\n}\n"
                       "model M {\n  fs = [L(), L()]\n  freeze fs.2\n  forward(x: f32[N, 2]) { return fs[0](x) }\n}",
                       "'fs' has no member '2' (it holds 2 items", 7, 13);
}

static void test_lang_error_freeze_in_a_layer(void **state) {
    expect_model_error("layer L() {\n  w = param f32[2]\n  freeze w\n  forward(x) { return x * w }\n}\n"
                       "model M {\n  l = L()\n  forward(x: f32[N, 2]) { return l(x) }\n}",
                       "'freeze' is allowed only in a model body", 3, 3);
}

static void test_lang_error_init_of_a_layer(void **state) {
    expect_model_error("layer L() {\n  w = param f32[2]\n  forward(x) { return x * w }\n}\n"
                       "model M {\n  l = L()\n  init l = zeros()\n  forward(x: f32[N, 2]) { return l(x) }\n}",
                       "'init l' needs a parameter or a buffer", 7, 8);
}

static void test_lang_error_for_over_a_number(void **state) {
    expect_model_error("model M {\n  forward(x: f32[N, 2]) {\n    for i in 3 {\n      x = x + i\n    }\n    return x\n  }\n}",
                       "'for' needs a list", 3, 14);
}

static void test_lang_error_tensor_index_out_of_range(void **state) {
    expect_model_error("model M {\n  forward(x: f32[N, 3]) { return x[:, 3] }\n}",
                       "index 3 out of range for dimension 1 of f32[N,3]", 2, 39);
}

static void test_lang_error_too_many_indices(void **state) {
    expect_model_error("model M {\n  forward(x: f32[N, 3]) { return x[:, 0, 1] }\n}",
                       "too many indices (3) for f32[N,3]", 2, 35);
}

static void test_lang_error_slicing_the_batch_dim(void **state) {
    expect_model_error("model M {\n  forward(x: f32[N, 3]) { return x[1:] }\n}",
                       "cannot slice the batch dimension N of f32[N,3]", 2, 36);
}

static void test_lang_error_conv2d_bad_argument_type(void **state) {
    expect_model_error("model M {\n  w = param f32[4, 1, 3, 3]\n"
                       "  forward(x: f32[N, 1, 8, 8]) { return conv2d(x, w, stride = \"2\") }\n}",
                       "'conv2d' needs an int >= 1 for 'stride', got a string", 3, 40);
}

static void test_lang_error_conv2d_channel_mismatch_names_both_shapes(void **state) {
    expect_model_error("model M {\n  w = param f32[4, 2, 3, 3]\n"
                       "  forward(x: f32[N, 1, 8, 8]) {\n    return conv2d(x, w)\n  }\n}",
                       "f32[N,1,8,8]", 4, 12);
    assert_non_null(strstr(diag_first_message(ts.d), "conv2d"));
    assert_non_null(strstr(diag_first_message(ts.d), "f32[4,2,3,3]"));
}

static void test_lang_error_cat_along_batch_dim(void **state) {
    expect_model_error("model M {\n  forward(x: f32[N, 3]) { return cat([x, x]) }\n}",
                       "'cat' cannot join along the batch dimension N", 2, 34);
}

static void test_lang_error_statement_must_be_a_call(void **state) {
    expect_model_error("model M {\n  forward(x: f32[N, 3]) {\n    x + 1\n    return x\n  }\n}",
                       "a statement must be an assignment, a call", 3, 5);
}

static void test_lang_error_range_too_long(void **state) {
    expect_model_error("model M {\n  k = range(100000000)\n  forward(x: f32[N, 3]) { return x }\n}",
                       "'range' of more than", 2, 7);
}

static void test_lang_error_forward_parameter_named_seed(void **state) {
    expect_model_error("model M {\n  forward(seed: f32[N, 4]) { return seed }\n}",
                       "forward's parameter cannot be called 'seed'", 2, 11);
}

static void test_lang_error_wrong_argument_count(void **state) {
    expect_model_error("model M {\n  forward(x: f32[N, 3]) { return unsqueeze(x) }\n}",
                       "missing argument 'dim' in call to 'unsqueeze'", 2, 34);
}

/* ---------------------------------------------------------------- robustness */

static const char *FULL = "layer Block(n: int, act = \"relu\") {\n"
                          "  w = param f32[n, n] init kaiming_uniform(fan_in = n)\n"
                          "  running = buffer f32[n] init zeros()\n"
                          "  if act != none { kind = act } else { kind = \"id\" }\n"
                          "  forward(x) {\n"
                          "    y = x @ w\n"
                          "    if kind == \"relu\" and not false { y = relu(y) } else if kind == \"id\" { y = y }\n"
                          "    if training { update(running, mean(y, axis = 0)) }\n"
                          "    return y[..., 0:n:1] * (dim(x, 0) / 2)\n"
                          "  }\n"
                          "}\n"
                          "model M {\n"
                          "  blocks = [Block(4) for i in range(2)]\n"
                          "  seq = Sequential([Block(4, none), Block(4)])\n"
                          "  freeze blocks.0\n"
                          "  init seq.1.w = normal(0, 0.1)\n"
                          "  forward(x: f32[N, 1, 2, 2]) {\n"
                          "    h = flatten(max_pool2d(pad(x, [1, 1, 1, 1]), 2, stride = 2))\n"
                          "    for b in blocks { h = b(h) }\n"
                          "    h = cat([seq(h), h[:, -2:]], axis = 1)\n"
                          "    return h[:, :4] + rand_like(h[:, :4]) * 0\n"
                          "  }\n"
                          "}\n"
                          "train M {\n loss = mean(logits)\n optimizer = SGD(lr = 0.1, momentum = 0.9) }\n";

static void test_lang_full_model_compiles(void **state) {
    Program *p = ts_compile_text("m.lathe", FULL);
    assert_int_equal(p->nparams, 8);
    assert_false(ts_param(p, "blocks.0.w")->trainable);
    assert_true(ts_param(p, "seq.1.running")->buffer);
    assert_int_equal(ts_param(p, "seq.1.w")->init.kind, INIT_NORMAL);
    assert_string_equal(type_of(logits(p)), "f32[N,4]");
}

/* Nothing a model file says may crash the frontend: each prefix of a model that uses every construct, and
   single-byte mutations of it, compile or fail with exactly one error. */
static void test_lang_prefixes_and_mutations_fail_cleanly(void **state) {
    size_t n = strlen(FULL);
    static const char bytes[] = "{}()[],=.:-*/@%+<>\"#0129aN_x \n.";
    unsigned seed = 777;
    for (size_t i = 0; i < n + 300; i++) {
        Arena *a = arena_new();
        Diag *d = diag_new(NULL);
        char *m;
        if (i < n) {
            m = arena_strndup(a, FULL, i);
        } else {
            m = arena_strdup(a, FULL);
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % n;
            seed = seed * 1103515245u + 12345u;
            m[at] = bytes[(seed >> 8) % (sizeof bytes - 1)];
        }
        Program *p = fe_compile(a, d, "m.lathe", m);
        if (!(p != NULL || diag_error_count(d) == 1))
            fail_msg("%d errors for:\n%s", diag_error_count(d), m);
        diag_free(d);
        arena_free(a);
    }
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, ts_setup, ts_teardown)
    const struct CMUnitTest tests[] = {
        T(test_lang_if_else_if_else_builds_only_the_branch_taken),
        T(test_lang_return_inside_if_ends_the_call),
        T(test_lang_for_over_range_unrolls),
        T(test_lang_for_over_list_of_layers_and_module_list_names),
        T(test_lang_sequential_of_a_list_names_children),
        T(test_lang_member_if_else_chooses_members),
        T(test_lang_logic_and_none_fold),
        T(test_lang_list_comprehension_len_and_slices),
        T(test_lang_index_int_removes_dim),
        T(test_lang_index_negative_step_and_ellipsis),
        T(test_lang_index_whole_is_the_tensor_itself),
        T(test_lang_slice_builtin_clamps_like_python),
        T(test_lang_buffers_are_frozen_params_updated_in_training),
        T(test_lang_freeze_and_init_paths),
        T(test_lang_rand_in_training_only_with_seed_and_step_inputs),
        T(test_lang_batch_dim_in_arithmetic_is_a_const_with_npow),
        T(test_lang_unary_and_reductions),
        T(test_lang_shape_builtins),
        T(test_lang_cat_stack_and_long_lists_chain),
        T(test_lang_pad_gather_embedding_one_hot),
        T(test_lang_window_builtins),
        T(test_lang_arange_full_and_broadcast_matmul),
        T(test_lang_label_types_from_data_sources),
        T(test_lang_error_unknown_data_keyword_suggests),
        T(test_lang_error_text_data_needs_token_input),
        T(test_lang_error_if_on_a_tensor),
        T(test_lang_error_update_of_a_parameter),
        T(test_lang_error_update_twice),
        T(test_lang_error_update_with_wrong_shape),
        T(test_lang_error_freeze_unknown_path_suggests),
        T(test_lang_error_freeze_list_index_out_of_range),
        T(test_lang_error_freeze_in_a_layer),
        T(test_lang_error_init_of_a_layer),
        T(test_lang_error_for_over_a_number),
        T(test_lang_error_tensor_index_out_of_range),
        T(test_lang_error_too_many_indices),
        T(test_lang_error_slicing_the_batch_dim),
        T(test_lang_error_conv2d_bad_argument_type),
        T(test_lang_error_conv2d_channel_mismatch_names_both_shapes),
        T(test_lang_error_cat_along_batch_dim),
        T(test_lang_error_statement_must_be_a_call),
        T(test_lang_error_range_too_long),
        T(test_lang_error_forward_parameter_named_seed),
        T(test_lang_error_wrong_argument_count),
        T(test_lang_full_model_compiles),
        T(test_lang_prefixes_and_mutations_fail_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
