/* test_fe_lexer.c: the lexer. Token kinds, spellings, values and locations; comments and newlines are
   whitespace; the longest punctuator wins; bad characters and strings are reported where they start. */
#include "support.h"

#include <string.h>

#include "../../frontend/fe.h"

static Token *lex(const char *text, int *n) { return lex_tokenize(ts.a, ts.d, "t.lathe", text, n); }

static void test_lex_kinds_and_spellings(void **state) {
    int n;
    Token *t = lex("model Net { fc1 = Linear(784, 10) }", &n);
    assert_non_null(t);
    assert_int_equal(n, 13);
    assert_int_equal(t[0].kind, TK_KEYWORD);
    assert_string_equal(t[0].str, "model");
    assert_int_equal(t[1].kind, TK_IDENT);
    assert_string_equal(t[1].str, "Net");
    assert_true(lex_is(&t[2], "{"));
    assert_int_equal(t[7].kind, TK_INT);
    assert_int_equal(t[7].ival, 784);
    assert_true(lex_is(&t[11], "}"));
    assert_int_equal(t[12].kind, TK_EOF);
}

static void test_lex_numbers_int_float_exponent(void **state) {
    int n;
    Token *t = lex("1 0.5 1e-3 2E+2 255", &n);
    assert_non_null(t);
    assert_int_equal(t[0].kind, TK_INT);
    assert_int_equal(t[0].ival, 1);
    assert_int_equal(t[1].kind, TK_FLOAT);
    assert_true(t[1].fval == 0.5);
    assert_int_equal(t[2].kind, TK_FLOAT);
    assert_true(t[2].fval == 1e-3);
    assert_int_equal(t[3].kind, TK_FLOAT);
    assert_true(t[3].fval == 200.0);
    assert_int_equal(t[4].ival, 255);
}

static void test_lex_string_escapes(void **state) {
    int n;
    Token *t = lex("\"a\\\"b\\\\c\\nd\"", &n);
    assert_non_null(t);
    assert_int_equal(t[0].kind, TK_STR);
    assert_string_equal(t[0].str, "a\"b\\c\nd");
}

static void test_lex_longest_punctuator_wins(void **state) {
    int n;
    Token *t = lex("** * -> - == = <= < != >= >", &n);
    assert_non_null(t);
    const char *want[] = {"**", "*", "->", "-", "==", "=", "<=", "<", "!=", ">=", ">"};
    assert_int_equal(n, 12);
    for (int i = 0; i < 11; i++)
        assert_true(lex_is(&t[i], want[i]));
}

static void test_lex_comments_and_newlines_are_whitespace(void **state) {
    int n;
    Token *t = lex("# a comment\n  x = 1 # another\n\ty", &n);
    assert_non_null(t);
    assert_int_equal(n, 5);
    assert_string_equal(t[0].str, "x");
    assert_int_equal(t[0].loc.line, 2);
    assert_int_equal(t[0].loc.col, 3);
    assert_string_equal(t[3].str, "y");
    assert_int_equal(t[3].loc.line, 3);
    assert_int_equal(t[3].loc.col, 2);
}

static void test_lex_keywords_vs_identifiers(void **state) {
    int n;
    Token *t = lex("forward forwards param init train N f32", &n);
    assert_non_null(t);
    assert_int_equal(t[0].kind, TK_KEYWORD);
    assert_int_equal(t[1].kind, TK_IDENT);
    assert_int_equal(t[2].kind, TK_KEYWORD);
    assert_int_equal(t[3].kind, TK_KEYWORD);
    assert_int_equal(t[4].kind, TK_KEYWORD);
    assert_int_equal(t[5].kind, TK_IDENT);
    assert_int_equal(t[6].kind, TK_IDENT);
}

/* After a '.', digits are a path segment (layers.0.weight), not the start of a float. */
static void test_lex_digits_after_dot_are_a_member(void **state) {
    int n;
    Token *t = lex("layers.0.weight 1.5 x[...]", &n);
    assert_non_null(t);
    assert_int_equal(t[2].kind, TK_INT);
    assert_int_equal(t[2].ival, 0);
    assert_true(lex_is(&t[3], "."));
    assert_int_equal(t[4].kind, TK_IDENT);
    assert_int_equal(t[5].kind, TK_FLOAT);
    assert_true(lex_is(&t[8], "..."));
}

static void test_lex_unexpected_character_location(void **state) {
    int n;
    assert_null(lex("x = 1\ny = $", &n));
    assert_int_equal(diag_error_count(ts.d), 1);
    assert_non_null(strstr(diag_first_message(ts.d), "unexpected character '$'"));
    assert_int_equal(diag_first_loc(ts.d).line, 2);
    assert_int_equal(diag_first_loc(ts.d).col, 5);
}

static void test_lex_unterminated_string_at_its_quote(void **state) {
    int n;
    assert_null(lex("a = \"abc\nb", &n));
    assert_non_null(strstr(diag_first_message(ts.d), "unterminated string"));
    assert_int_equal(diag_first_loc(ts.d).line, 1);
    assert_int_equal(diag_first_loc(ts.d).col, 5);
}

static void test_lex_integer_too_large(void **state) {
    int n;
    assert_null(lex("99999999999999999999999", &n));
    assert_non_null(strstr(diag_first_message(ts.d), "too large"));
}

static void test_lex_number_glued_to_name(void **state) {
    int n;
    assert_null(lex("x = 12abc", &n));
    assert_non_null(strstr(diag_first_message(ts.d), "invalid number"));
    assert_int_equal(diag_first_loc(ts.d).col, 5);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lex_kinds_and_spellings, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_lex_numbers_int_float_exponent, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_lex_string_escapes, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_lex_longest_punctuator_wins, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_lex_comments_and_newlines_are_whitespace, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_lex_keywords_vs_identifiers, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_lex_digits_after_dot_are_a_member, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_lex_unexpected_character_location, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_lex_unterminated_string_at_its_quote, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_lex_integer_too_large, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_lex_number_glued_to_name, ts_setup, ts_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
