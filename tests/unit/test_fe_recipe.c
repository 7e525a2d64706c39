/* test_fe_recipe.c: the train block's recipe as the frontend keeps it. Arithmetic over names becomes the
   operator call tree that the runtime's rt_rexpr_parse gives (and the manifest carries), constant arithmetic
   still folds, every key of the list is accepted and an unknown one suggests the closest, and each
   data source gives its label type; misuses are one error at their place. */
#include "support.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../../codegen/codegen.h"

/* A model whose forward takes x: f32[N, 4] and returns it, so that any loss over logits builds. */
static const char *MODEL = "model M {\n  forward(x: f32[N, 4]) { return x }\n}\n";

/* MODEL and a train block of the loss, SGD and the settings given (one a line, from line 7). */
static const char *with_settings(const char *settings) {
    return arena_printf(ts.a, "%strain M {\n loss = mean(logits)\n optimizer = SGD(lr = 0.1)\n%s\n}\n", MODEL,
                        settings);
}

/* One error containing msg at line:col, in a fresh fixture (its Diag counts every error so far). */
static void expect_error(const char *text, const char *msg, int line, int col) {
    char *copy = strdup(text);
    assert_non_null(copy);
    ts_teardown(NULL);
    ts_open(NULL, NULL);
    ts_expect_compile_error(copy, msg, line, col);
    free(copy);
}

static const char *type_of(const Node *n) {
    char buf[128];
    return arena_strdup(ts.a, ir_type_str(n->dtype, &n->shape, buf, sizeof buf));
}

/* The manifest's recipe value of key, as JSON text compared with want. */
static void expect_manifest_value(const Program *p, const char *key, const char *want) {
    char *text = cg_manifest(ts.a, p, ts.d);
    assert_non_null(text);
    json_error_t je;
    json_t *root = json_loads(text, 0, &je), *w = json_loads(want, JSON_DECODE_ANY, &je);
    assert_non_null(root);
    assert_non_null(w);
    json_t *got = json_object_get(json_object_get(root, "recipe"), key);
    if (!json_equal(got, w)) {
        char *s = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
        fail_msg("recipe key %s is %s, want %s", key, s ? s : "(absent)", want);
    }
    json_decref(root);
    json_decref(w);
}

static void test_recipe_power_of_a_name_is_an_operator_tree(void **state) {
    Program *p = ts_compile_text("m.lathe", with_settings(" schedule = LambdaLR(0.95 ** epoch)"));
    const RVal *s = program_recipe(p, "schedule");
    assert_int_equal(s->kind, RV_CALL);
    assert_string_equal(s->str, "LambdaLR");
    const RVal *pw = rval_arg(s, NULL, 0);
    assert_int_equal(pw->kind, RV_CALL);
    assert_string_equal(pw->str, "pow");
    assert_int_equal(pw->nitems, 2);
    assert_int_equal(pw->items[0]->kind, RV_NUM);
    assert_false(pw->items[0]->is_int);
    assert_true(pw->items[0]->num == 0.95);
    assert_int_equal(pw->items[1]->kind, RV_IDENT);
    assert_string_equal(pw->items[1]->str, "epoch");
    /* what rt_rexpr_parse("LambdaLR(0.95 ** epoch)") gives (tests/runtime/test_rexpr.c) */
    expect_manifest_value(p, "schedule", "{\"call\": \"LambdaLR\", \"args\": [{\"call\": \"pow\", \"args\": [0.95, "
                                         "{\"ident\": \"epoch\"}], \"kwargs\": {}}], \"kwargs\": {}}");
}

/* Precedence as Python's, constant parts folded, unary minus of a name a "neg". */
static void test_recipe_arithmetic_over_names_keeps_precedence(void **state) {
    Program *p = ts_compile_text("m.lathe", with_settings(" schedule = LambdaLR(-epoch ** 2 * (1 / 4) + 2 * 3)"));
    expect_manifest_value(
        p, "schedule",
        "{\"call\": \"LambdaLR\", \"args\": [{\"call\": \"add\", \"args\": [{\"call\": \"mul\", \"args\": [{\"call\": "
        "\"neg\", \"args\": [{\"call\": \"pow\", \"args\": [{\"ident\": \"epoch\"}, 2], \"kwargs\": {}}], "
        "\"kwargs\": {}}, 0.25], \"kwargs\": {}}, 6], \"kwargs\": {}}], \"kwargs\": {}}");
    /* a function call inside arithmetic stays a call: exp(-0.1 * epoch) */
    p = ts_compile_text("m.lathe", with_settings(" schedule = LambdaLR(0.5 * exp(-0.1 * epoch))"));
    expect_manifest_value(p, "schedule",
                          "{\"call\": \"LambdaLR\", \"args\": [{\"call\": \"mul\", \"args\": [0.5, {\"call\": \"exp\", "
                          "\"args\": [{\"call\": \"mul\", \"args\": [-0.1, {\"ident\": \"epoch\"}], \"kwargs\": {}}], "
                          "\"kwargs\": {}}], \"kwargs\": {}}], \"kwargs\": {}}");
}

static void test_recipe_constant_arithmetic_still_folds(void **state) {
    Program *p = ts_compile_text("m.lathe", with_settings(" batch = 2 ** 6\n clip_grad_norm = 1 / 4\n warmup = -3"));
    const RVal *b = program_recipe(p, "batch");
    assert_true(b->kind == RV_NUM && b->is_int && b->num == 64);
    const RVal *c = program_recipe(p, "clip_grad_norm");
    assert_true(c->kind == RV_NUM && !c->is_int && c->num == 0.25);
    const RVal *w = program_recipe(p, "warmup");
    assert_true(w->kind == RV_NUM && w->is_int && w->num == -3);
    expect_manifest_value(p, "clip_grad_norm", "0.25");
}

/* Every key of the list is accepted; the runtime's readers check their values. */
static void test_recipe_new_keys_accepted(void **state) {
    Program *p = ts_compile_text(
        "m.lathe",
        with_settings(" data = idx(\"a\", \"b\")\n validation = 0.1\n workers = 2\n drop_last = true\n"
                      " transforms = [random_crop(28, padding = 4), normalize(0.5, 0.25)]\n"
                      " param_groups = [group(\"fc.*\", lr = 0.01)]\n clip_grad_norm = 1.0\n clip_grad_value = 0.5\n"
                      " accumulate = 2\n schedule = StepLR(step_size = 1, gamma = 0.5)\n warmup = 100\n"
                      " early_stop = EarlyStop(patience = 3)\n metrics = [accuracy, top_k(5)]"));
    static const char *const keys[] = {"validation", "workers", "drop_last", "transforms", "param_groups",
                                       "clip_grad_norm", "clip_grad_value", "accumulate", "schedule", "warmup",
                                       "early_stop", "metrics"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!program_recipe(p, keys[i]))
            fail_msg("recipe key %s missing", keys[i]);
    const RVal *m = program_recipe(p, "metrics");
    assert_int_equal(m->items[1]->kind, RV_CALL);
    assert_string_equal(m->items[1]->str, "top_k");
}

/* The optimizer is any call: the runtime's optimizers check their arguments. */
static void test_recipe_optimizer_any_call(void **state) {
    Program *p = ts_compile_text("m.lathe", arena_printf(ts.a, "%strain M {\n loss = mean(logits)\n"
                                                         " optimizer = Adam(lr = 1e-3, betas = [0.9, 0.999]) }",
                                                         MODEL));
    assert_string_equal(program_recipe(p, "optimizer")->str, "Adam");
}

static void test_recipe_unknown_key_suggests_closest(void **state) {
    expect_error(with_settings(" schedul = StepLR(1)"),
                            "unknown train setting 'schedul' (did you mean 'schedule'?)", 7, 2);
    expect_error(with_settings(" clip_grad = 1"), "unknown train setting 'clip_grad'", 7, 2);
}

/* The type of the INPUT label that a `data` source gives, with the forward's input x. */
static const char *label_of(const char *x_type, const char *data) {
    const char *text = arena_printf(ts.a, "model M {\n  forward(x: %s) { return x }\n}\ntrain M {\n data = %s\n"
                                    " loss = mean(cast(logits, f32))\n optimizer = SGD(lr = 0.1) }", x_type, data);
    Program *p = ts_compile_text("m.lathe", text);
    return type_of(ir_find_leaf(p->eval, OP_INPUT, "label"));
}

static void test_recipe_source_label_types(void **state) {
    assert_string_equal(label_of("f32[N, 4]", "idx(\"a\", \"b\", scale = 1 / 255)"), "i64[N]");
    assert_string_equal(label_of("i64[N, 8]", "text(\"t.txt\", context = 8, tokens = \"chars\")"), "i64[N,8]");
    assert_string_equal(label_of("i64[N, 8]", "text(\"t.txt\", 8, lines = true, pad = 0)"), "i64[N,8]");
    assert_string_equal(label_of("f32[N, 4]", "csv(\"a.csv\")"), "i64[N]");
    assert_string_equal(label_of("f32[N, 4]", "csv(\"a.csv\", regression = true)"), "f32[N,1]");
    assert_string_equal(label_of("f32[N, 4]", "npy(\"x.npy\", \"y.npy\")"), "i64[N]");
    assert_string_equal(label_of("f32[N, 4]", "npy(\"x.npy\", y = \"y.npy\", regression = true)"), "f32[N,1]");
    assert_string_equal(label_of("f32[N, 4]", "npy(\"x.npy\", \"y.npy\", regression = true, label_shape = [3])"),
                        "f32[N,3]");
    assert_string_equal(label_of("f32[N, 1, 28, 28]", "images(\"train\", grayscale = true)"), "i64[N]");
    assert_string_equal(label_of("f32[N, 1]", "generate(256, x = uniform(-1, 1), y = 2 * x + 1, noise = 0.1)"),
                        "f32[N,1]");
}

/* generate's y is an expression of x: its operator tree travels to the runtime. */
static void test_recipe_generate_y_is_an_operator_tree(void **state) {
    Program *p = ts_compile_text("m.lathe", "model M {\n  forward(x: f32[N, 1]) { return x }\n}\ntrain M {\n"
                                            " data = generate(64, y = 2 * x + 1)\n loss = mse_loss(logits, label)\n"
                                            " optimizer = SGD(lr = 0.1) }");
    const RVal *y = rval_arg(program_recipe(p, "data"), "y", 2);
    assert_string_equal(y->str, "add");
    assert_string_equal(y->items[0]->str, "mul");
    assert_string_equal(y->items[0]->items[1]->str, "x");
    assert_true(y->items[1]->is_int && y->items[1]->num == 1);
}

static void test_recipe_source_errors(void **state) {
    expect_error(with_settings(" data = npy(\"x.npy\", \"y.npy\", label_shape = [3])"),
                            "npy's label_shape gives real-valued labels and needs regression = true", 7, 45);
    expect_error(with_settings(" data = npy(\"x.npy\", \"y.npy\", regression = true, label_shape = [0])"),
                            "npy's label_shape must be a list of ints >= 1", 7, 64);
    expect_error(with_settings(" data = text(\"t.txt\", context = 4, tokens = \"words\")"),
                            "text's tokens must be \"bytes\" or \"chars\"", 7, 45);
    expect_error(with_settings(" data = idx(\"a\", \"b\", images = \"c\")"),
                            "idx's images is given twice", 7, 32);
    expect_error(with_settings(" data = images(3)"), "images needs file names as strings", 7, 16);
    expect_error(with_settings(" data = generate(x = uniform(0, 1))"), "generate needs its n", 7, 9);
    expect_error(with_settings(" data = generate(10)"),
                            "generate gives 'x' as f32[N,1], but forward takes f32[N,4]", 7, 9);
    expect_error(with_settings(" data = parquet(\"a\")"), "'data' must be a data source", 7, 9);
}

static void test_recipe_validation_fraction_or_same_source(void **state) {
    Program *p = ts_compile_text("m.lathe", with_settings(" data = csv(\"a.csv\")\n validation = csv(\"v.csv\")"));
    assert_string_equal(program_recipe(p, "validation")->str, "csv");
    expect_error(with_settings(" validation = 1.5"), "between 0 and 1", 7, 15);
    expect_error(with_settings(" data = csv(\"a.csv\")\n validation = idx(\"a\", \"b\")"),
                            "'validation' must be a source of the same kind and labels as 'data'", 8, 15);
    expect_error(with_settings(" data = csv(\"a.csv\")\n validation = csv(\"v.csv\", regression = true)"),
                            "'validation' must be a source of the same kind and labels as 'data'", 8, 15);
}

static void test_recipe_value_errors(void **state) {
    expect_error(with_settings(" metrics = [accuracy, 5]"), "a metric must be a name", 7, 23);
    expect_error(with_settings(" metrics = accuracy"), "'metrics' must be a list", 7, 12);
    expect_error(arena_printf(ts.a, "%strain M {\n loss = mean(logits)\n optimizer = 0.1\n}\n", MODEL),
                            "'optimizer' must be a call", 6, 14);
    expect_error(with_settings(" schedule = LambdaLR(\"a\" * epoch)"), "'*' needs numbers, got a string", 7,
                            22);
    expect_error(with_settings(" schedule = LambdaLR(epoch < 3)"), "'<' cannot be part of a train setting",
                            7, 28);
}

/* csv's columns by index or header name, its label kinds and delimiter: the label type stays a class (or a value
   with regression), forward's input must take one value a chosen feature, and each misuse is one error. */
static void test_recipe_csv_columns_labels_and_delimiter(void **state) {
    assert_string_equal(label_of("f32[N, 2]", "csv(\"a.csv\", features = [0, \"petal_width\"], label_column = "
                                 "\"species\", labels = \"categorical\", delimiter = \";\")"), "i64[N]");
    assert_string_equal(label_of("f32[N, 3]", "csv(\"a.csv\", features = [-2, 1, 4], regression = true, labels = "
                                 "\"numeric\")"), "f32[N,1]");
    Program *p = ts_compile_text("m.lathe", with_settings(" data = csv(\"a.csv\", features = [3, \"b\", -1, 0], "
                                                          "label_column = \"y\")"));
    expect_manifest_value(p, "data", "{\"call\": \"csv\", \"args\": [\"a.csv\"], \"kwargs\": {\"features\": [3, "
                                     "\"b\", -1, 0], \"label_column\": \"y\"}}");
    expect_error(with_settings(" data = csv(\"a.csv\", features = [0, 1])"),
                 "csv gives 'x' as f32[N,2] (one value a column of features), but forward takes f32[N,4]", 7, 9);
    expect_error(with_settings(" data = csv(\"a.csv\", features = [])"), "csv's features must be a list of column "
                 "indices (negative from the end) or header names", 7, 33);
    expect_error(with_settings(" data = csv(\"a.csv\", features = [1, 2.5, 3, 4])"), "csv's features must be", 7, 33);
    expect_error(with_settings(" data = csv(\"a.csv\", label_column = 1.5)"),
                 "csv's label_column must be an int (negative from the end) or a header name", 7, 37);
    expect_error(with_settings(" data = csv(\"a.csv\", labels = \"words\")"),
                 "csv's labels must be \"auto\", \"numeric\" or \"categorical\"", 7, 31);
    expect_error(with_settings(" data = csv(\"a.csv\", delimiter = \";;\")"), "csv's delimiter must be one character",
                 7, 34);
    expect_error(with_settings(" data = csv(\"a.csv\", delimiter = \"\\\"\")"), "csv's delimiter must be one "
                 "character", 7, 34);
    expect_error(with_settings(" data = csv(\"a.csv\", header = false, features = [0, \"b\", 2, 3])"),
                 "csv's column \"b\" is a header name, which needs header = true", 7, 53);
    expect_error(with_settings(" data = csv(\"a.csv\", false, \"y\")"),
                 "csv's column \"y\" is a header name, which needs header = true", 7, 29);
    expect_error(with_settings(" data = csv(\"a.csv\", regression = true, labels = \"categorical\")"),
                 "csv(..., regression = true) reads numbers as labels, not labels = \"categorical\"", 7, 50);
    expect_error(with_settings(" data = csv(\"a.csv\", delimitr = \";\")"),
                 "did you mean 'delimiter'", 7, 33);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_recipe_power_of_a_name_is_an_operator_tree, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_recipe_arithmetic_over_names_keeps_precedence, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_recipe_constant_arithmetic_still_folds, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_recipe_new_keys_accepted, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_recipe_optimizer_any_call, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_recipe_unknown_key_suggests_closest, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_recipe_source_label_types, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_recipe_generate_y_is_an_operator_tree, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_recipe_source_errors, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_recipe_validation_fraction_or_same_source, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_recipe_value_errors, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_recipe_csv_columns_labels_and_delimiter, ts_setup, ts_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
