/* test_fe_limits.c: the limits that keep a hostile model file cheap (issue 10), each one clear error at the
   token that breaks it: a name, a number literal or a string longer than any real one, and nesting deeper
   than the parser's bound, a tensor rank past 8. Just under each length limit still lexes. */
#include "support.h"

#include <stdlib.h>
#include <string.h>

#include "../../frontend/fe.h"

static Token *lex(const char *text, int *n) { return lex_tokenize(ts.a, ts.d, "t.lathe", text, n); }

/* A text of prefix, then n copies of c, then suffix, in the arena. */
static char *repeat(const char *prefix, char c, size_t n, const char *suffix) {
    size_t lp = strlen(prefix), ls = strlen(suffix);
    char *s = arena_alloc(ts.a, lp + n + ls + 1);
    memcpy(s, prefix, lp);
    memset(s + lp, c, n);
    memcpy(s + lp + n, suffix, ls + 1);
    return s;
}

static void test_limit_name_length(void **state) {
    int n;
    assert_non_null(lex(repeat("x = ", 'a', 256, ""), &n));
    assert_null(lex(repeat("x = ", 'a', 257, ""), &n));
    assert_non_null(strstr(diag_first_message(ts.d), "name of 257 characters (256 at most)"));
    assert_int_equal(diag_first_loc(ts.d).col, 5);
}

static void test_limit_number_length(void **state) {
    int n;
    /* a float literal of 300 digits is finite, so only the length limit stops it */
    assert_non_null(lex(repeat("x = 0.", '1', 254, ""), &n));
    assert_null(lex(repeat("x = 0.", '1', 298, ""), &n));
    assert_non_null(strstr(diag_first_message(ts.d), "number literal of 300 characters (256 at most)"));
    assert_int_equal(diag_first_loc(ts.d).col, 5);
}

static void test_limit_string_length(void **state) {
    int n;
    assert_non_null(lex(repeat("s = \"", 'p', 4096, "\""), &n));
    assert_null(lex(repeat("s = \"", 'p', 4097, "\""), &n));
    assert_non_null(strstr(diag_first_message(ts.d), "string longer than 4096 bytes"));
    assert_int_equal(diag_first_loc(ts.d).col, 5);
}

/* Nesting: parentheses past FE_MAX_EXPR_DEPTH fail in the parser, not by running out of stack. */
static void test_limit_nesting_depth(void **state) {
    size_t depth = 100000;
    char *open = repeat("model M {\n  forward(x: f32[N, 4]) {\n    return ", '(', depth, "x");
    char *text = repeat(open, ')', depth, "\n  }\n}\n");
    Program *p = fe_compile(ts.a, ts.d, "m.lathe", text);
    assert_null(p);
    assert_non_null(strstr(diag_first_message(ts.d), "nested too deeply"));
}

/* Tensor rank: a type of 9 dimensions in a model file and a shape of 9 in text IR. */
static void test_limit_rank(void **state) {
    Program *p = fe_compile(ts.a, ts.d, "m.lathe",
                            "model M {\n  forward(x: f32[N, 1, 1, 1, 1, 1, 1, 1, 1]) -> f32[N, 1] {\n    return x\n  }\n}\n");
    assert_null(p);
    assert_non_null(strstr(diag_first_message(ts.d), "a tensor type has at most 8 dimensions"));
    Graph **gs;
    Diag *d = diag_new(NULL);
    assert_int_equal(ir_parse(ts.a, d, "t.ir", "graph g {\n  %0 = input \"x\" : f32[1,1,1,1,1,1,1,1,1]\n}\n", &gs), 0);
    assert_non_null(strstr(diag_first_message(d), "more than 8 dimensions"));
    diag_free(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_limit_name_length, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_limit_number_length, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_limit_string_length, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_limit_nesting_depth, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_limit_rank, ts_setup, ts_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
