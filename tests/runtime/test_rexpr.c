/* test_rexpr.c: recipe expressions (rexpr.c): the parser's precedence and Python's folding, the call trees
   of arithmetic over names, errors at their column, evaluation with variables and functions, the check
   without evaluating, and printing back so that parse(text(v)) == v. */
#include "support.h"
#include "rexpr.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static json_t *parse_ok(const char *text) {
    RtErr e = {{0}};
    json_t *v = rt_rexpr_parse(text, &e);
    if (!v)
        fail_msg("'%s' does not parse: %s", text, e.msg);
    return v;
}

/* text parses to exactly the JSON want (integers and reals told apart). */
static void expect_json(const char *text, const char *want) {
    json_error_t je;
    json_t *w = json_loads(want, JSON_DECODE_ANY, &je);
    if (!w)
        fail_msg("bad expected JSON '%s': %s", want, je.text);
    json_t *v = parse_ok(text);
    if (!json_equal(v, w)) {
        char *got = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        fail_msg("'%s' parsed to %s, want %s", text, got, want);
    }
    json_decref(v);
    json_decref(w);
}

static void expect_parse_error(const char *text, const char *part) {
    RtErr e = {{0}};
    json_t *v = rt_rexpr_parse(text, &e);
    if (v) {
        json_decref(v);
        fail_msg("'%s' parsed, want the error '%s'", text, part);
    }
    assert_contains(e.msg, part);
}

static double eval_ok(const char *text, const char *const *names, const double *vals, int n) {
    json_t *v = parse_ok(text);
    RtErr e = {{0}};
    double out = NAN;
    if (rt_rexpr_eval(v, names, vals, n, &out, &e) != RT_OK)
        fail_msg("'%s' does not evaluate: %s", text, e.msg);
    json_decref(v);
    return out;
}

static void expect_eval_error(const char *text, const char *const *names, const double *vals, int n,
                              const char *part) {
    json_t *v = parse_ok(text);
    RtErr e = {{0}};
    double out;
    assert_int_equal(rt_rexpr_eval(v, names, vals, n, &out, &e), RT_ERR);
    assert_contains(e.msg, part);
    json_decref(v);
}

static void test_rexpr_precedence_as_python(void **state) {
    expect_json("-2 ** 2", "-4");
    expect_json("2 ** 3 ** 2", "512");
    expect_json("(2 ** 3) ** 2", "64");
    expect_json("2 ** -1", "0.5");
    expect_json("(-2) ** 2", "4");
    expect_json("2 + 3 * 4", "14");
    expect_json("(2 + 3) * 4", "20");
    expect_json("10 - 4 - 3", "3");
    expect_json("2 * 3 % 4", "2");
    expect_json("- - 3", "3");
}

static void test_rexpr_folding_python_semantics(void **state) {
    expect_json("7 // 2", "3");
    expect_json("-7 // 2", "-4");
    expect_json("7 % -3", "-2");
    expect_json("-7 % 3", "2");
    expect_json("7.5 // 2", "3.0");
    expect_json("-7.5 % 2", "0.5");
    expect_json("1 // 0.1", "9.0"); /* Python's divmod, not floor(1 / 0.1) = 10 */
    expect_json("2 ** 10", "1024");
    expect_json("2 ** -2", "0.25");
    expect_json("4 / 2", "2.0"); /* true division gives a real */
    expect_json("1 / 4", "0.25");
    expect_json("2.5 * 2", "5.0");
}

static void test_rexpr_int_and_real_literals(void **state) {
    json_t *v = parse_ok("64");
    assert_true(json_is_integer(v));
    json_decref(v);
    v = parse_ok("64.0");
    assert_true(json_is_real(v));
    json_decref(v);
    v = parse_ok("1e3");
    assert_true(json_is_real(v) && json_real_value(v) == 1000);
    json_decref(v);
    v = parse_ok("1 / 255");
    assert_true(json_is_real(v) && json_real_value(v) == 1.0 / 255);
    json_decref(v);
    expect_json("2.5E-3", "0.0025");
    expect_json("-9223372036854775807 - 1", "-9223372036854775808");
}

static void test_rexpr_arithmetic_over_names_is_a_call_tree(void **state) {
    expect_json("0.95 ** epoch", "{\"call\": \"pow\", \"args\": [0.95, {\"ident\": \"epoch\"}], \"kwargs\": {}}");
    expect_json("-x", "{\"call\": \"neg\", \"args\": [{\"ident\": \"x\"}], \"kwargs\": {}}");
    expect_json("2 * x + 1", "{\"call\": \"add\", \"args\": [{\"call\": \"mul\", \"args\": [2, {\"ident\": \"x\"}],"
                             " \"kwargs\": {}}, 1], \"kwargs\": {}}");
    /* constant parts fold; the chain stays left-associative */
    expect_json("2 * 3 * x", "{\"call\": \"mul\", \"args\": [6, {\"ident\": \"x\"}], \"kwargs\": {}}");
    expect_json("x / 2 // 3 % 4 - 1",
                "{\"call\": \"sub\", \"args\": [{\"call\": \"mod\", \"args\": [{\"call\": \"floordiv\", \"args\": "
                "[{\"call\": \"div\", \"args\": [{\"ident\": \"x\"}, 2], \"kwargs\": {}}, 3], \"kwargs\": {}}, 4], "
                "\"kwargs\": {}}, 1], \"kwargs\": {}}");
    expect_json("-x ** 2", "{\"call\": \"neg\", \"args\": [{\"call\": \"pow\", \"args\": [{\"ident\": \"x\"}, 2], "
                           "\"kwargs\": {}}], \"kwargs\": {}}");
    expect_json("exp(-0.1 * epoch)", "{\"call\": \"exp\", \"args\": [{\"call\": \"mul\", \"args\": [-0.1, "
                                     "{\"ident\": \"epoch\"}], \"kwargs\": {}}], \"kwargs\": {}}");
}

static void test_rexpr_lists_calls_strings(void **state) {
    expect_json("[accuracy, top_k(5)]",
                "[{\"ident\": \"accuracy\"}, {\"call\": \"top_k\", \"args\": [5], \"kwargs\": {}}]");
    expect_json("[]", "[]");
    expect_json("[1, 2,]", "[1, 2]");
    expect_json("SGD(lr = 1e-3, momentum = 0.9)",
                "{\"call\": \"SGD\", \"args\": [], \"kwargs\": {\"lr\": 0.001, \"momentum\": 0.9}}");
    expect_json("idx('a.gz', \"b.gz\", scale = 1 / 2)",
                "{\"call\": \"idx\", \"args\": [\"a.gz\", \"b.gz\"], \"kwargs\": {\"scale\": 0.5}}");
    expect_json("f()", "{\"call\": \"f\", \"args\": [], \"kwargs\": {}}");
    expect_json("'it\\'s \"x\"\\n'", "\"it's \\\"x\\\"\\n\"");
    expect_json("true", "true");
    expect_json("false", "false");
    expect_json("none", "null");
    expect_json("  ( [ 1 ] ) ", "[1]");
    /* kwargs keep the order written */
    json_t *v = parse_ok("f(b = 1, a = 2)");
    void *it = json_object_iter(json_object_get(v, "kwargs"));
    assert_string_equal(json_object_iter_key(it), "b");
    json_decref(v);
}

static void test_rexpr_errors_name_the_column(void **state) {
    expect_parse_error("Adam(lr = )", "column 11: expected an expression after '=', found ')'");
    expect_parse_error("", "column 1: expected an expression, found the end");
    expect_parse_error("x +", "column 4: expected an expression after '+', found the end");
    expect_parse_error("[1, 2", "column 6: expected ']' to close the list");
    expect_parse_error("(1 + 2", "column 7: expected ')' to close the parenthesis");
    expect_parse_error("f(1, 2", "column 7: expected ')' to close the argument list");
    expect_parse_error("a b", "column 3: unexpected 'b' after the expression");
    expect_parse_error("idx(\"a)", "column 5: unterminated string");
    expect_parse_error("'a\\q'", "column 3: unknown escape sequence");
    expect_parse_error("1 $ 2", "column 3: unexpected character '$'");
    expect_parse_error("0x10", "column 1: invalid number literal '0x10'");
    expect_parse_error("2 * 1.", "column 5: invalid number literal '1.'");
    expect_parse_error("99999999999999999999", "column 1: integer literal '99999999999999999999' is too large");
    expect_parse_error("1e999", "column 1: number literal '1e999' is too large");
    expect_parse_error("f(a = 1, a = 2)", "column 10: keyword argument 'a' given twice");
    expect_parse_error("f(a = 1, 2)", "column 10: positional argument after a keyword argument");
    expect_parse_error("1 / 0", "column 3: division by zero");
    expect_parse_error("5 % (2 - 2)", "column 3: division by zero");
    expect_parse_error("2 ** 64", "column 3: integer overflow in '**'");
    expect_parse_error("(-8) ** 0.5", "column 6: '**' gives no real number");
    expect_parse_error("10.0 ** 400", "column 6: '**' overflows");
    expect_parse_error("\"a\" + 1", "column 5: '+' needs numbers, got a string");
    expect_parse_error("-[1]", "column 1: '-' needs numbers, got a list");
    expect_parse_error("x * true", "column 3: '*' needs numbers, got a boolean");
    expect_parse_error("if", "column 1: 'if' is a keyword");
    expect_parse_error("(f)(1)", "column 4: unexpected '('");
}

static void test_rexpr_deep_nesting_is_an_error(void **state) {
    char text[2000];
    memset(text, '(', 1000);
    strcpy(text + 1000, "1");
    expect_parse_error(text, "nested too deeply");
    memset(text, '-', 1000);
    expect_parse_error(text, "nested too deeply");
    /* a long flat chain over a name is bounded too */
    size_t n = 5000 * 4 + 2;
    char *chain = malloc(n);
    strcpy(chain, "x");
    for (int i = 0; i < 5000; i++)
        strcat(chain, " + 1");
    expect_parse_error(chain, "expression too long");
    free(chain);
}

static void test_rexpr_eval_with_variables_and_functions(void **state) {
    const char *names[] = {"epoch", "x"};
    double vals[] = {3, 2};
    assert_true(eval_ok("0.95 ** epoch", names, vals, 2) == pow(0.95, 3));
    assert_true(eval_ok("2 * x + 1", names, vals, 2) == 5);
    assert_true(eval_ok("-x ** 2", names, vals, 2) == -4);
    assert_true(eval_ok("-epoch // x", names, vals, 2) == -2);
    assert_true(eval_ok("-epoch % x", names, vals, 2) == 1);
    assert_true(eval_ok("epoch / x", names, vals, 2) == 1.5);
    assert_true(eval_ok("max(x, epoch, 1)", names, vals, 2) == 3);
    assert_true(eval_ok("min(x, epoch)", names, vals, 2) == 2);
    assert_true(eval_ok("cos(pi * x)", names, vals, 2) == cos(acos(-1.0) * 2));
    assert_true(eval_ok("log(e ** x)", names, vals, 2) == log(exp(1.0) * exp(1.0)));
    assert_true(eval_ok("sqrt(x) + abs(-epoch) + floor(2.5) + ceil(2.5)", names, vals, 2) == sqrt(2) + 3 + 2 + 3);
    assert_true(eval_ok("round(2.5) + round(3.5)", names, vals, 2) == 2 + 4); /* half to even, as Python */
    assert_true(eval_ok("tanh(0) + exp(0) + sin(0) + tan(0)", NULL, NULL, 0) == 1);
    assert_true(eval_ok("7", NULL, NULL, 0) == 7);
}

static void test_rexpr_eval_errors(void **state) {
    const char *names[] = {"epoch", "step"};
    double vals[] = {0, 0};
    expect_eval_error("0.9 ** epochs", names, vals, 2, "unknown name 'epochs' (the names here: epoch, step, pi, e)");
    expect_eval_error("cos(epoch, 1)", names, vals, 2, "cos takes 1 argument");
    expect_eval_error("max(epoch)", names, vals, 2, "max takes at least 2 arguments");
    expect_eval_error("cosine(epoch)", names, vals, 2, "unknown function 'cosine'");
    expect_eval_error("exp(x = epoch)", names, vals, 2, "exp takes no keyword arguments");
    expect_eval_error("1 / epoch", names, vals, 2, "division by zero in '1 / epoch'");
    expect_eval_error("step % epoch", names, vals, 2, "division by zero");
    expect_eval_error("log(epoch)", names, vals, 2, "'log(epoch)' gives -inf with epoch = 0, step = 0");
    expect_eval_error("sqrt(epoch - 1)", names, vals, 2, "gives nan");
    expect_eval_error("'a'", names, vals, 2, "expected a number, got a string \"a\"");
    expect_eval_error("[epoch]", names, vals, 2, "expected a number, got a list [epoch]");
}

static void test_rexpr_check_without_evaluating(void **state) {
    const char *names[] = {"epoch"};
    RtErr e = {{0}};
    json_t *v = parse_ok("1 / epoch + log(epoch - 1)"); /* fine to check, whatever epoch turns out to be */
    assert_int_equal(rt_rexpr_check(v, names, 1, &e), RT_OK);
    json_decref(v);
    const char *bad[][2] = {
        {"0.9 ** step", "unknown name 'step'"},
        {"foo(epoch)", "unknown function 'foo'"},
        {"sin(epoch, epoch)", "sin takes 1 argument"},
        {"epoch * min(1)", "min takes at least 2 arguments"},
        {"max(epoch, 'a')", "expected a number, got a string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        v = parse_ok(bad[i][0]);
        e.msg[0] = 0;
        assert_int_equal(rt_rexpr_check(v, names, 1, &e), RT_ERR);
        assert_contains(e.msg, bad[i][1]);
        json_decref(v);
    }
}

static void expect_round_trip(const char *text, const char *want_text) {
    json_t *v = parse_ok(text);
    char *t = rt_rexpr_text(v);
    assert_non_null(t);
    if (want_text)
        assert_string_equal(t, want_text);
    json_t *w = parse_ok(t);
    if (!json_equal(v, w))
        fail_msg("'%s' printed as '%s', which parses to another value", text, t);
    json_decref(v);
    json_decref(w);
    free(t);
}

static void test_rexpr_text_round_trip(void **state) {
    expect_round_trip("SGD(lr = 1e-3, momentum = 0.9)", "SGD(lr = 0.001, momentum = 0.9)");
    expect_round_trip("[accuracy, top_k(5)]", "[accuracy, top_k(5)]");
    expect_round_trip("LambdaLR(0.95 ** epoch)", "LambdaLR(0.95 ** epoch)");
    expect_round_trip("-x ** 2", "-x ** 2");
    expect_round_trip("(-x) ** 2", "(-x) ** 2");
    expect_round_trip("(x ** 2) ** 3", "(x ** 2) ** 3");
    expect_round_trip("x ** y ** 3", "x ** y ** 3");
    expect_round_trip("x ** -y", "x ** -y");
    expect_round_trip("(-2.5) ** x", "(-2.5) ** x");
    expect_round_trip("x - (y - 1)", "x - (y - 1)");
    expect_round_trip("x - y - 1", "x - y - 1");
    expect_round_trip("x / (y * 2)", "x / (y * 2)");
    expect_round_trip("(x + 1) * (y - -1)", "(x + 1) * (y - -1)");
    expect_round_trip("-(x + 1)", "-(x + 1)");
    expect_round_trip("--x", "--x");
    expect_round_trip("x // 2 % 3", "x // 2 % 3");
    expect_round_trip("x % (2 // y)", "x % (2 // y)");
    expect_round_trip("1 / 3", NULL);
    expect_round_trip("3.0", "3.0");
    expect_round_trip("1e20", "1e+20");
    expect_round_trip("0.1 + 0.2", NULL);
    expect_round_trip("-9223372036854775807 - 1", NULL);
    expect_round_trip("'it\\'s \"q\"\\\\\\n'", "\"it's \\\"q\\\"\\\\\\n\"");
    expect_round_trip("f(a, [1, 2.5, 'x'], k = none, b = true, c = false)",
                      "f(a, [1, 2.5, \"x\"], k = none, b = true, c = false)");
    expect_round_trip("generate(256, x = uniform(-1, 1), y = 2 * x + 1, noise = 0.1)", NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rexpr_precedence_as_python),
        cmocka_unit_test(test_rexpr_folding_python_semantics),
        cmocka_unit_test(test_rexpr_int_and_real_literals),
        cmocka_unit_test(test_rexpr_arithmetic_over_names_is_a_call_tree),
        cmocka_unit_test(test_rexpr_lists_calls_strings),
        cmocka_unit_test(test_rexpr_errors_name_the_column),
        cmocka_unit_test(test_rexpr_deep_nesting_is_an_error),
        cmocka_unit_test(test_rexpr_eval_with_variables_and_functions),
        cmocka_unit_test(test_rexpr_eval_errors),
        cmocka_unit_test(test_rexpr_check_without_evaluating),
        cmocka_unit_test(test_rexpr_text_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
