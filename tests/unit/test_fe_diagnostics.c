/* test_fe_diagnostics.c: every user mistake is one error at file:line:col with a clear message, and the
   frontend never crashes: bad characters and strings, syntax, unknown names with suggestions, calls with
   the wrong arguments, shape and type mismatches (at the user's call when they happen inside the library),
   duplicate members, train blocks that name unknown models, keys or values, folding errors, unbounded
   recursion and nesting; and every prefix and many mutations of a real model compile or fail cleanly. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../frontend/fe.h"

static const char *TRAIN = "train M {\n loss = cross_entropy(logits, label)\n optimizer = SGD(lr = 0.1)\n}\n";

/* Compiles text as m.lathe and checks that it fails with one error containing msg at line:col. */
static void expect_error(const char *text, const char *msg, int line, int col) {
    ts_expect_compile_error(text, msg, line, col);
}

/* The model, then the standard train block. */
static const char *with_train(const char *model) { return arena_printf(ts.a, "%s\n%s", model, TRAIN); }

static void test_diag_unexpected_character(void **state) {
    expect_error(with_train("model M {\n  forward(x: f32[N, 4]) { return x ? 1 }\n}"), "unexpected character '?'", 2, 36);
}

static void test_diag_unterminated_string(void **state) {
    expect_error("model M { forward(x) { return x } }\ntrain M {\n data = idx(\"a.gz, \"b.gz\")\n}",
                 "unterminated string", 3, 25);
}

static void test_diag_missing_closing_brace(void **state) {
    expect_error("model M {\n  forward(x: f32[N, 4]) { return x }\n", "expected '}'", 3, 1);
}

static void test_diag_missing_closing_paren(void **state) {
    expect_error(with_train("model M {\n  forward(x: f32[N, 4]) { return relu(x }\n}"), "expected ')'", 2, 41);
}

static void test_diag_unknown_name_suggests(void **state) {
    expect_error(with_train("model M {\n  forward(input: f32[N, 4]) {\n    return relu(inptu)\n  }\n}"),
                 "unknown name 'inptu' (did you mean 'input'?)", 3, 17);
}

static void test_diag_unknown_layer_suggests(void **state) {
    expect_error(with_train("model M {\n  fc = Linaer(4, 2)\n  forward(x: f32[N, 4]) { return fc(x) }\n}"),
                 "unknown layer 'Linaer' (did you mean 'Linear'?)", 2, 8);
}

/* A layer of the test's own, so that the standard library's signatures do not matter. */
static const char *LIN = "layer Lin(in_features: int, out_features: int) {\n"
                         "  weight = param f32[out_features, in_features]\n"
                         "  forward(x: f32[N, in_features]) -> f32[N, out_features] { return x @ weight.T }\n}\n";

static void test_diag_wrong_argument_count(void **state) {
    expect_error(with_train(arena_printf(ts.a, "%smodel M {\n  fc = Lin(4, 2, 3)\n  forward(x: f32[N, 4]) { return fc(x) }\n}", LIN)),
                 "'Lin' takes 2 arguments, got 3", 6, 8);
}

static void test_diag_missing_argument(void **state) {
    expect_error(with_train("model M {\n  fc = Linear(4)\n  forward(x: f32[N, 4]) { return fc(x) }\n}"),
                 "missing argument 'out_features'", 2, 8);
}

static void test_diag_unknown_keyword_argument(void **state) {
    expect_error(with_train("model M {\n  forward(x: f32[N, 4]) { return sum(x, axes = 1) }\n}"),
                 "'sum' has no parameter 'axes' (did you mean 'axis'?)", 2, 48);
}

static void test_diag_linear_shape_mismatch_at_user_call(void **state) {
    expect_error(with_train(arena_printf(ts.a, "%smodel M {\n  fc = Lin(784, 512)\n  forward(x: f32[N, 100]) {\n"
                            "    return fc(x)\n  }\n}", LIN)),
                 "expected f32[N,784], got f32[N,100]", 8, 12);
}

/* The library's Linear reports a mismatch at the user's call, whatever its forward checks. */
static void test_diag_library_linear_mismatch_at_user_call(void **state) {
    expect_error(with_train("model M {\n  fc = Linear(784, 512)\n  forward(x: f32[N, 100]) {\n"
                            "    return fc(x)\n  }\n}"),
                 "f32[N,100]", 4, 12);
}

static void test_diag_matmul_shape_mismatch_names_both_shapes(void **state) {
    expect_error(with_train("model M {\n  w = param f32[3, 5]\n  forward(x: f32[N, 4]) { return x @ w }\n}"),
                 "matmul shape mismatch: f32[N,4] @ f32[3,5]", 3, 36);
}

static void test_diag_library_error_reported_at_call_with_note(void **state) {
    TsCapture c;
    Diag *d = diag_new(ts_capture_open(&c));
    const char *text = with_train("model M {\n  forward(x: f32[N, 4]) {\n    return log_softmax(x, axis = 3)\n  }\n}");
    assert_null(fe_compile(ts.a, d, "m.lathe", text));
    const char *out = ts_capture_close(&c);
    assert_non_null(strstr(diag_first_message(d), "axis 3 out of range for f32[N,4]"));
    assert_int_equal(diag_first_loc(d).line, 3);
    assert_int_equal(diag_first_loc(d).col, 12);
    assert_non_null(strstr(out, "m.lathe:3:12: error:"));
    assert_non_null(strstr(out, "stdlib.lathe:"));
    assert_non_null(strstr(out, "note:"));
    diag_free(d);
}

static void test_diag_forward_return_type_mismatch(void **state) {
    expect_error(with_train("model M {\n  forward(x: f32[N, 4]) -> f32[N, 3] {\n    h = relu(x)\n    return h\n  }\n}"),
                 "return value of 'M.forward': expected f32[N,3], got f32[N,4]", 4, 5);
}

static void test_diag_unknown_dtype(void **state) {
    expect_error(with_train("model M {\n  forward(x: f23[N, 4]) { return x }\n}"), "unknown dtype 'f23'", 2, 14);
}

static void test_diag_duplicate_member(void **state) {
    expect_error(with_train("model M {\n  fc = Linear(4, 2)\n  fc = Linear(2, 2)\n  forward(x) { return x }\n}"),
                 "duplicate member 'fc'", 3, 3);
}

static void test_diag_train_unknown_model(void **state) {
    expect_error("model Mine {\n  forward(x: f32[N, 4]) { return x }\n}\ntrain Mien {\n loss = mse_loss(logits, logits)\n}",
                 "train block for unknown model 'Mien' (did you mean 'Mine'?)", 4, 7);
}

static void test_diag_unknown_train_key(void **state) {
    expect_error("model M {\n  forward(x: f32[N, 4]) { return x }\n}\n"
                 "train M {\n loss = cross_entropy(logits, label)\n bacth = 64\n}",
                 "unknown train setting 'bacth' (did you mean 'batch'?)", 6, 2);
}

static void test_diag_bad_train_value_batch_zero(void **state) {
    expect_error("model M {\n  forward(x: f32[N, 4]) { return x }\n}\n"
                 "train M {\n loss = cross_entropy(logits, label)\n batch = 0\n}",
                 "'batch' must be an int >= 1", 6, 10);
}

static void test_diag_division_by_zero_in_constant(void **state) {
    expect_error(with_train("model M {\n  k = 1 / (2 - 2)\n  forward(x: f32[N, 4]) { return x * k }\n}"),
                 "division by zero", 2, 9);
}

static void test_diag_recursion_too_deep(void **state) {
    expect_error(with_train("def f(x) { return f(x + 1) }\nmodel M {\n  k = f(0)\n  forward(x) { return x }\n}"),
                 "recursion too deep", 1, 19);
}

static void test_diag_layer_instantiating_itself(void **state) {
    expect_error(with_train("layer L() { inner = L() }\nmodel M {\n  l = L()\n  forward(x) { return x }\n}"),
                 "recursion too deep", 1, 21);
}

static void test_diag_expression_nesting_too_deep(void **state) {
    char *text = arena_alloc(ts.a, 4000);
    strcpy(text, "model M { k = ");
    for (int i = 0; i < 300; i++)
        strcat(text, "[");
    assert_null(fe_compile(ts.a, ts.d, "m.lathe", text));
    assert_non_null(strstr(diag_first_message(ts.d), "nested too deeply"));
    assert_int_equal(diag_first_loc(ts.d).line, 1);
}

static void test_diag_empty_file(void **state) {
    expect_error("# nothing here\n", "empty model file", 1, 1);
}

static void test_diag_no_train_block(void **state) {
    expect_error("model M {\n  forward(x: f32[N, 4]) { return x }\n}\n", "no train block", 1, 1);
}

static void test_diag_loss_must_be_scalar(void **state) {
    expect_error("model M {\n  forward(x: f32[N, 4]) { return x }\n}\n"
                 "train M {\n loss = relu(logits)\n optimizer = SGD(lr = 0.1)\n}",
                 "the loss must be a float scalar, got f32[N,4]", 5, 9);
}

static void test_diag_duplicate_definition(void **state) {
    expect_error(with_train("def f(x) { return x }\ndef f(y) { return y }\nmodel M { forward(x) { return x } }"),
                 "'f' is already defined", 2, 5);
}

static void test_diag_unknown_metric(void **state) {
    expect_error("model M {\n  forward(x: f32[N, 4]) { return x }\n}\n"
                 "train M {\n loss = cross_entropy(logits, label)\n optimizer = SGD(lr = 0.1)\n metrics = [acuracy]\n}",
                 "unknown metric", 7, 13);
}

static void test_diag_param_used_outside_forward(void **state) {
    expect_error(with_train("model M {\n  w = param f32[4]\n  v = w * 2\n  forward(x) { return x }\n}"),
                 "parameter 'w' used outside forward", 3, 9);
}

static void test_diag_tensor_type_too_large(void **state) {
    expect_error(with_train("model M {\n  w = param f64[1000000000000, 1000000000000]\n  forward(x) { return x }\n}"),
                 "too large", 2, 13);
}

static void test_diag_dimension_must_be_int(void **state) {
    expect_error(with_train("model M {\n  forward(x: f32[N, 2.5]) { return x }\n}"),
                 "a dimension must be an int >= 0 or N, got a float", 2, 21);
}

static void test_diag_dtype_mismatch_in_binary(void **state) {
    expect_error(with_train("model M {\n  forward(x: f32[N, 4], y: i64[N, 4]) { return x + y }\n}"),
                 "dtype mismatch in '+': f32[N,4] and i64[N,4]", 2, 50);
}

static void test_diag_layer_created_inside_forward(void **state) {
    expect_error(with_train("model M {\n  forward(x: f32[N, 4]) { return Linear(4, 2)(x) }\n}"),
                 "layer 'Linear' created inside forward", 2, 34);
}

/* Each def calls the next twice: within every depth limit, but 2^24 calls. A bound on the steps in all
   makes it an error in about a second instead of minutes of work (or, one def further, hours). */
static void test_diag_calls_multiplying_exponentially_are_bounded(void **state) {
    char *text = "";
    for (int i = 0; i < 24; i++)
        text = arena_printf(ts.a, "%sdef f%d(x) { return f%d(x) + f%d(x) }\n", text, i, i + 1, i + 1);
    text = arena_printf(ts.a, "%sdef f24(x) { return x }\nmodel M {\n  k = f0(1)\n  forward(x) { return x }\n}\n%s",
                        text, TRAIN);
    assert_null(fe_compile(ts.a, ts.d, "m.lathe", text));
    assert_int_equal(diag_error_count(ts.d), 1);
    assert_non_null(strstr(diag_first_message(ts.d), "evaluation steps"));
    assert_string_equal(diag_first_loc(ts.d).file, "m.lathe");
}

static void test_diag_constant_out_of_range_for_integer_tensor(void **state) {
    expect_error(with_train("model M {\n  forward(x: f32[N, 4]) {\n    k = cast(x, u8) + 300\n    return x\n  }\n}"),
                 "the constant 300 does not fit the integer tensor u8[N,4]", 3, 21);
}

/* The optimizer pass adds the INPUT "lr": a forward parameter of that name is the user's error, at its line. */
static void test_diag_forward_parameter_named_lr(void **state) {
    expect_error(with_train("model M {\n  forward(lr: f32[N, 4]) { return lr }\n}"),
                 "forward's parameter cannot be called 'lr'", 2, 11);
}

/* A character device never ends: reading stops at the size bound with an error, not out of memory. */
static void test_diag_read_file_bounded(void **state) {
    assert_null(fe_read_file(ts.a, ts.d, "/dev/zero", NULL));
    assert_non_null(strstr(diag_first_message(ts.d), "larger than"));
}

/* Members are checked for duplicates pairwise: their count is bounded so that a generated file of a
   million members is an error, not hours of work. */
static void test_diag_too_many_members(void **state) {
    char *text = "model M {\n";
    for (int i = 0; i <= FE_MAX_NAMES; i++)
        text = arena_printf(ts.a, "%s  a%d = %d\n", text, i, i);
    expect_error(with_train(text), "more than 4096 members", FE_MAX_NAMES + 2, 3);
}

static void test_diag_metric_must_be_scalar(void **state) {
    expect_error("def hits(logits, target) { return cast(argmax(logits, 1) == target, f32) }\n"
                 "model M {\n  forward(x: f32[N, 4]) { return x }\n}\n"
                 "train M {\n loss = cross_entropy(logits, label)\n optimizer = SGD(lr = 0.1)\n metrics = [hits]\n}",
                 "metric 'hits' must give a float scalar (the batch's mean), got f32[N]", 8, 13);
}

/* Nothing a model file says may crash the frontend: each prefix of a real model, and single-byte
   mutations of it, either compiles or fails with exactly one error. */
static void test_diag_every_prefix_fails_cleanly(void **state) {
    char *text = ts_read_model("fashion_mlp.lathe");
    size_t n = strlen(text);
    for (size_t i = 0; i < n; i += 3) {
        Arena *a = arena_new();
        Diag *d = diag_new(NULL);
        char *prefix = arena_strndup(a, text, i);
        Program *p = fe_compile(a, d, "m.lathe", prefix);
        assert_true(p != NULL || diag_error_count(d) == 1);
        diag_free(d);
        arena_free(a);
    }
}

static void test_diag_mutations_fail_cleanly(void **state) {
    char *text = ts_read_model("fashion_mlp.lathe");
    size_t n = strlen(text);
    static const char bytes[] = "{}()[],=.:-*/@%+<>\"#0129aN_x \n\x01\xff";
    unsigned seed = 12345;
    for (int i = 0; i < 400; i++) {
        Arena *a = arena_new();
        Diag *d = diag_new(NULL);
        char *m = arena_strdup(a, text);
        seed = seed * 1103515245u + 12345u;
        size_t at = (seed >> 8) % n;
        seed = seed * 1103515245u + 12345u;
        m[at] = bytes[(seed >> 8) % (sizeof bytes - 1)];
        Program *p = fe_compile(a, d, "m.lathe", m);
        assert_true(p != NULL || diag_error_count(d) == 1);
        diag_free(d);
        arena_free(a);
    }
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, ts_setup, ts_teardown)
    const struct CMUnitTest tests[] = {
        T(test_diag_unexpected_character),
        T(test_diag_unterminated_string),
        T(test_diag_missing_closing_brace),
        T(test_diag_missing_closing_paren),
        T(test_diag_unknown_name_suggests),
        T(test_diag_unknown_layer_suggests),
        T(test_diag_wrong_argument_count),
        T(test_diag_missing_argument),
        T(test_diag_unknown_keyword_argument),
        T(test_diag_linear_shape_mismatch_at_user_call),
        T(test_diag_library_linear_mismatch_at_user_call),
        T(test_diag_matmul_shape_mismatch_names_both_shapes),
        T(test_diag_library_error_reported_at_call_with_note),
        T(test_diag_forward_return_type_mismatch),
        T(test_diag_unknown_dtype),
        T(test_diag_duplicate_member),
        T(test_diag_train_unknown_model),
        T(test_diag_unknown_train_key),
        T(test_diag_bad_train_value_batch_zero),
        T(test_diag_division_by_zero_in_constant),
        T(test_diag_recursion_too_deep),
        T(test_diag_layer_instantiating_itself),
        T(test_diag_expression_nesting_too_deep),
        T(test_diag_empty_file),
        T(test_diag_no_train_block),
        T(test_diag_loss_must_be_scalar),
        T(test_diag_duplicate_definition),
        T(test_diag_unknown_metric),
        T(test_diag_param_used_outside_forward),
        T(test_diag_tensor_type_too_large),
        T(test_diag_dimension_must_be_int),
        T(test_diag_dtype_mismatch_in_binary),
        T(test_diag_layer_created_inside_forward),
        T(test_diag_calls_multiplying_exponentially_are_bounded),
        T(test_diag_constant_out_of_range_for_integer_tensor),
        T(test_diag_metric_must_be_scalar),
        T(test_diag_forward_parameter_named_lr),
        T(test_diag_read_file_bounded),
        T(test_diag_too_many_members),
        T(test_diag_every_prefix_fails_cleanly),
        T(test_diag_mutations_fail_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
