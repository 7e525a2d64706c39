/* test_fe_robust.c: bad model files that once crashed, hung or stopped with an internal error, found by
   throwing odd programs at the new language features (control flow, builtins, lists of layers); each must
   now be one error at its file:line:col. Also: mutations of every zoo model fail cleanly. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../frontend/fe.h"

static const char *TRAIN = "train M {\n loss = cross_entropy(logits, label)\n optimizer = SGD(lr = 0.1)\n}\n";

/* Compiles "model M { forward(x: f32[N, 4]) { BODY } }" and the standard train block as m.lathe; the
   body starts on line 3, column 5. Checks one error containing msg at line:col. */
static void expect_body_error(const char *body, const char *msg, int line, int col) {
    ts_expect_compile_error(arena_printf(ts.a, "model M {\n  forward(x: f32[N, 4]) {\n    %s\n  }\n}\n%s", body, TRAIN),
                            msg, line, col);
}

/* Nested loops with empty bodies evaluate nothing per iteration, so the evaluation bound alone never
   stopped them: 10^10 iterations (and a fresh range(100000) list each time round) hung and ate memory. */
static void test_robust_nested_empty_loops_are_bounded(void **state) {
    expect_body_error("for i in range(100000) { for j in range(100000) { } }\n    return x",
                      "evaluation steps", 3, 39);
}

/* One loop with an empty body is fine up to the bound, and a loop past it fails at the iterable. */
static void test_robust_long_empty_loop_is_bounded(void **state) {
    expect_body_error("for k in range(3) { for i in range(600000) { } }\n    return x", "evaluation steps", 3, 34);
}

/* Ranges count their items against the bound, so a comprehension over big ranges stops early. */
static void test_robust_comprehension_of_ranges_is_bounded(void **state) {
    expect_body_error("l = [range(600000) for i in range(10)]\n    return x", "evaluation steps", 3, 10);
}

/* max(list, float) went down the elementwise path with no tensor at all: an internal error. */
static void test_robust_max_of_list_and_float(void **state) {
    expect_body_error("y = max([1, 2], 1.5)\n    return x", "max", 3, 9);
    assert_null(strstr(diag_first_message(ts.d), "internal"));
}

static void test_robust_min_of_string_and_float(void **state) {
    expect_body_error("y = min(\"a\", 1.5)\n    return x", "min", 3, 9);
    assert_null(strstr(diag_first_message(ts.d), "internal"));
}

/* max of two numbers and of a tensor and a float still work. */
static void test_robust_max_of_numbers_and_tensor_still_work(void **state) {
    const char *text = arena_printf(ts.a, "model M {\n  forward(x: f32[N, 4]) {\n    k = max(2, 3.5)\n"
                                    "    return max(x, k) + min(x, -1.5)\n  }\n}\n%s", TRAIN);
    assert_non_null(ts_compile_text("m.lathe", text));
}

/* A forward inside a member `if` and another outside it: the second silently replaced the first. */
static void test_robust_second_forward_in_if_is_an_error(void **state) {
    const char *text = arena_printf(ts.a, "model M {\n  if true { forward(x) { return x } }\n"
                                    "  forward(x: f32[N, 4]) { return -x }\n}\n%s", TRAIN);
    assert_null(fe_compile(ts.a, ts.d, "m.lathe", text));
    assert_int_equal(diag_error_count(ts.d), 1);
    assert_non_null(strstr(diag_first_message(ts.d), "second 'forward'"));
    assert_int_equal(diag_first_loc(ts.d).line, 3);
    assert_int_equal(diag_first_loc(ts.d).col, 3);
}

/* The data source feeds one batch input; a second forward parameter was fed the labels at run time. */
static void test_robust_trained_forward_takes_one_input(void **state) {
    const char *text = arena_printf(ts.a, "model M {\n  forward(x: f32[N, 4], y: f32[N, 4]) { return x + y }\n}\n%s",
                                    TRAIN);
    assert_null(fe_compile(ts.a, ts.d, "m.lathe", text));
    assert_int_equal(diag_error_count(ts.d), 1);
    assert_non_null(strstr(diag_first_message(ts.d), "takes one tensor"));
    assert_int_equal(diag_first_loc(ts.d).line, 2);
    assert_int_equal(diag_first_loc(ts.d).col, 25);
}

/* The trained model's input must be a batch: without N first, the error came from the loss in the library. */
static void test_robust_trained_input_needs_batch_dim_first(void **state) {
    static const char *models[] = {
        "model M {\n  forward(x: f32[4, 4]) { return x }\n}\n",
        "model M {\n  forward(x: f32[4, N]) { return x }\n}\n",
        "model M {\n  N = 3\n  forward(x: f32[N, 4]) { return x }\n}\n",
    };
    static const int lines[] = {2, 2, 3};
    for (int i = 0; i < 3; i++) {
        Diag *d = diag_new(NULL);
        assert_null(fe_compile(ts.a, d, "m.lathe", arena_printf(ts.a, "%s%s", models[i], TRAIN)));
        assert_int_equal(diag_error_count(d), 1);
        assert_non_null(strstr(diag_first_message(d), "needs the batch dimension N first"));
        assert_int_equal(diag_first_loc(d).line, lines[i]);
        assert_int_equal(diag_first_loc(d).col, 14);
        diag_free(d);
    }
}

/* `test` of another kind than `data` (or other labels) was accepted and read wrongly by the executable. */
static void test_robust_test_source_must_match_data(void **state) {
    const char *text = "model M {\n  forward(x: f32[N, 4]) { return x }\n}\ntrain M {\n data = csv(\"a.csv\")\n"
                       " test = text(\"a.txt\", context = 8)\n loss = cross_entropy(logits, label)\n"
                       " optimizer = SGD(lr = 0.1)\n}\n";
    assert_null(fe_compile(ts.a, ts.d, "m.lathe", text));
    assert_int_equal(diag_error_count(ts.d), 1);
    assert_non_null(strstr(diag_first_message(ts.d), "'test' must be a source of the same kind"));
    assert_int_equal(diag_first_loc(ts.d).line, 6);
    assert_int_equal(diag_first_loc(ts.d).col, 9);
}

/* `init b = ones()` right after `b = buffer f32[4]` was read as the buffer's init clause `init b`, then
   failed at '=' ("expected a member name"). */
static void test_robust_init_member_after_param_line(void **state) {
    const char *text = arena_printf(ts.a, "model M {\n  b = buffer f32[4]\n  init b = ones()\n"
                                    "  w = param f32[4] init zeros()\n  init w = normal(0, 1)\n"
                                    "  forward(x: f32[N, 4]) { return x * b + w }\n}\n%s", TRAIN);
    Program *p = ts_compile_text("m.lathe", text);
    assert_non_null(p);
    assert_int_equal(p->nparams, 2);
    for (int i = 0; i < 2; i++) {
        const ParamInfo *pi = &p->params[i];
        assert_int_equal(pi->init.kind, !strcmp(pi->name, "b") ? INIT_ONES : INIT_NORMAL);
    }
}

/* A NUL byte in a model file was reported without a place. */
static void test_robust_nul_byte_has_a_location(void **state) {
    char path[] = "/tmp/lathe_robust_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char text[] = "model M {\n  a = 1\0\n}\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    assert_null(fe_read_file(ts.a, ts.d, path, NULL));
    unlink(path);
    assert_int_equal(diag_error_count(ts.d), 1);
    assert_non_null(strstr(diag_first_message(ts.d), "NUL byte"));
    assert_int_equal(diag_first_loc(ts.d).line, 2);
    assert_int_equal(diag_first_loc(ts.d).col, 8);
}

/* A file with old Mac line ends ('\r' only) that starts with a comment was one long comment: "empty model
   file". The comment now ends at the '\r'. */
static void test_robust_comment_ends_at_carriage_return(void **state) {
    const char *text = arena_printf(ts.a, "# a comment\rmodel M {\r  forward(x: f32[N, 4]) { return x }\r}\r%s",
                                    "train M {\r loss = cross_entropy(logits, label)\r optimizer = SGD(lr = 0.1)\r}\r");
    assert_non_null(ts_compile_text("m.lathe", text));
}

/* `if dim(x, 0) == 3` was silently false for every batch: N is known only when a batch runs. */
static void test_robust_n_compared_with_number_is_an_error(void **state) {
    expect_body_error("n = dim(x, 0)\n    if n == 3 { x = x + 1 }\n    return x", "batch dimension N", 4, 10);
    ts_teardown(state);
    ts_setup(state);
    expect_body_error("if shape(x) != [3, 4] { x = x + 1 }\n    return x", "batch dimension N", 3, 17);
}

/* N compared with N, and with none, stays a compile-time answer. */
static void test_robust_n_compared_with_n_or_none_works(void **state) {
    const char *text = arena_printf(ts.a, "model M {\n  forward(x: f32[N, 4]) {\n    if shape(x) == [dim(x, 0), 4] "
                                    "and dim(x, 0) != none { x = x + 1 }\n    return x\n  }\n}\n%s", TRAIN);
    assert_non_null(ts_compile_text("m.lathe", text));
}

/* N / 0 gave an infinite scalar at run time; 1 / 0 is a compile-time error, and so is N / 0. */
static void test_robust_n_divided_by_zero(void **state) {
    expect_body_error("n = dim(x, 0)\n    return x * (n / 0)", "division by zero", 4, 19);
}

/* Token-level mutations of every zoo model (a token deleted, doubled or replaced by another of the file)
   compile or fail with exactly one error with a location: never a crash or an internal error. */
static void test_robust_zoo_mutations_fail_cleanly(void **state) {
    static const char *models[] = {"fashion_mlp.lathe", "conv_mlp.lathe", "fashion_cnn.lathe", "lenet5.lathe",
                                   "linear_regression.lathe", "resnet20.lathe", "vgg11_bn.lathe",
                                   "vit_tiny.lathe", "char_gpt.lathe"};
    uint64_t rng = 7;
    for (size_t m = 0; m < sizeof models / sizeof *models; m++) {
        char *text = ts_read_model(models[m]);
        size_t n = strlen(text);
        for (int i = 0; i < 12; i++) {
            Arena *a = arena_new();
            Diag *d = diag_new(NULL);
            char *buf = arena_alloc(a, 2 * n + 2);
            /* a word-sized span at a random place: deleted, doubled, or replaced by another span */
            size_t at = (size_t)(ts_rand_uniform(&rng) * (double)n), len = 1 + (size_t)(ts_rand_uniform(&rng) * 6);
            if (at + len > n)
                len = n - at;
            size_t from = (size_t)(ts_rand_uniform(&rng) * (double)(n - len));
            int how = (int)(ts_rand_uniform(&rng) * 3);
            size_t k = 0;
            memcpy(buf, text, at);
            k = at;
            if (how == 1) {
                memcpy(buf + k, text + at, len);
                k += len;
                memcpy(buf + k, text + at, len);
                k += len;
            } else if (how == 2) {
                memcpy(buf + k, text + from, len);
                k += len;
            }
            memcpy(buf + k, text + at + len, n - at - len);
            buf[k + n - at - len] = '\0';
            Program *p = fe_compile(a, d, models[m], buf);
            if (!p) {
                assert_int_equal(diag_error_count(d), 1);
                assert_null(strstr(diag_first_message(d), "internal"));
                assert_true(diag_first_loc(d).line > 0);
            }
            diag_free(d);
            arena_free(a);
        }
    }
}

/* "model M { MEMBER\n forward(x: f32[N, 4]) { return BODY } }": the member on line 2 at column 3. */
static void expect_member_error(const char *member, const char *body, const char *msg, int line, int col) {
    diag_free(ts.d); /* a fresh Diag per case: several cases share one test */
    ts.d = diag_new(NULL);
    ts_expect_compile_error(arena_printf(ts.a, "model M {\n  %s\n  forward(x: f32[N, 4]) { return %s }\n}\n%s",
                                         member, body, TRAIN),
                            msg, line, col);
}

/* The library's layers check their arguments as PyTorch's constructors do, at the user's line. */
static void test_robust_layer_arguments_are_checked(void **state) {
    expect_member_error("c = Conv2d(3, 4, 3, groups = 2)", "x", "divisible by groups", 2, 7);
    expect_member_error("d = Dropout(1.5)", "d(x)", "between 0 and 1", 2, 7);
    expect_member_error("a = CausalSelfAttention(4, 3)", "x", "divisible by n_head", 2, 7);
    expect_member_error("b = BatchNorm2d(4)", "b(x)", "4-D input", 3, 34);
}

/* Conv2d's kernel_size may be [h, w], as PyTorch's. */
static void test_robust_conv2d_takes_a_rectangular_kernel(void **state) {
    const char *text = "model M {\n  c = Conv2d(2, 3, [3, 1], padding = [1, 0])\n"
                       "  forward(x: f32[N, 2, 5, 4]) { return flatten(c(x)) }\n}\n"
                       "train M {\n loss = mse_loss(logits, logits)\n optimizer = SGD(lr = 0.1)\n}\n";
    Program *p = fe_compile(ts.a, ts.d, "m.lathe", text);
    assert_non_null(p);
    assert_int_equal(p->params[0].shape.rank, 4);
    assert_int_equal(p->params[0].shape.dim[2], 3);
    assert_int_equal(p->params[0].shape.dim[3], 1);
}

/* '//' is Python's floor division on numbers; on tensors it is an error. */
static void test_robust_floor_division(void **state) {
    const char *text = "model M {\n  w = param f32[7 // 2, -7 // 2 + 8]\n"
                       "  forward(x: f32[N, 4]) { return x }\n}\n"
                       "train M {\n loss = mse_loss(logits, logits)\n optimizer = SGD(lr = 0.1)\n}\n";
    Program *p = fe_compile(ts.a, ts.d, "m.lathe", text);
    assert_non_null(p);
    assert_int_equal(p->params[0].shape.dim[0], 3);
    assert_int_equal(p->params[0].shape.dim[1], 4);
    expect_body_error("y = x // 2\n    return y", "'//' is not supported on tensors", 3, 11);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, ts_setup, ts_teardown)
    const struct CMUnitTest tests[] = {
        T(test_robust_nested_empty_loops_are_bounded),
        T(test_robust_long_empty_loop_is_bounded),
        T(test_robust_comprehension_of_ranges_is_bounded),
        T(test_robust_max_of_list_and_float),
        T(test_robust_min_of_string_and_float),
        T(test_robust_max_of_numbers_and_tensor_still_work),
        T(test_robust_second_forward_in_if_is_an_error),
        T(test_robust_trained_forward_takes_one_input),
        T(test_robust_trained_input_needs_batch_dim_first),
        T(test_robust_test_source_must_match_data),
        T(test_robust_init_member_after_param_line),
        T(test_robust_nul_byte_has_a_location),
        T(test_robust_comment_ends_at_carriage_return),
        T(test_robust_n_compared_with_number_is_an_error),
        T(test_robust_n_compared_with_n_or_none_works),
        T(test_robust_n_divided_by_zero),
        T(test_robust_zoo_mutations_fail_cleanly),
        T(test_robust_layer_arguments_are_checked),
        T(test_robust_conv2d_takes_a_rectangular_kernel),
        T(test_robust_floor_division),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
