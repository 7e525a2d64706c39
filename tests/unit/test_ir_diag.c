/* test_ir_diag.c: diagnostics print as clang does, with the source line and a caret when the text is
   registered, and keep the first error for tests. */
#include "support.h"

#include <stdlib.h>
#include <string.h>

#include "../../ir/ir.h"

typedef struct Fix {
    char *buf;
    size_t len;
    FILE *out;
    Diag *d;
} Fix;

static Fix F;

static int setup(void **state)
{
    F.out = open_memstream(&F.buf, &F.len);
    F.d = diag_new(F.out);
    return 0;
}

static int teardown(void **state)
{
    diag_free(F.d);
    fclose(F.out);
    free(F.buf);
    return 0;
}

static const char *printed(void)
{
    fflush(F.out);
    return F.buf;
}

static void test_error_with_source_prints_line_and_caret(void **state)
{
    const char *text = "model M {\n    fc = Linear(3, 4)\n}\n";
    diag_add_source(F.d, "m.lathe", text, strlen(text));
    diag_error(F.d, (Loc){"m.lathe", 2, 10}, "unknown layer '%s'", "Linear");
    assert_string_equal(printed(), "m.lathe:2:10: error: unknown layer 'Linear'\n"
                                   "    fc = Linear(3, 4)\n"
                                   "         ^\n");
}

static void test_caret_keeps_tabs(void **state)
{
    const char *text = "\tx = y";
    diag_add_source(F.d, "t.lathe", text, strlen(text));
    diag_error(F.d, (Loc){"t.lathe", 1, 6}, "bad");
    assert_string_equal(printed(), "t.lathe:1:6: error: bad\n\tx = y\n\t    ^\n");
}

static void test_error_without_source_has_no_caret(void **state)
{
    diag_error(F.d, (Loc){"other.lathe", 3, 1}, "oops");
    assert_string_equal(printed(), "other.lathe:3:1: error: oops\n");
}

static void test_error_without_location(void **state)
{
    diag_error(F.d, (Loc){0}, "no location %d", 5);
    assert_string_equal(printed(), "error: no location 5\n");
}

static void test_note_prints_and_does_not_count(void **state)
{
    const char *text = "a\nbb\n";
    diag_add_source(F.d, "n.lathe", text, strlen(text));
    diag_note(F.d, (Loc){"n.lathe", 2, 2}, "declared here");
    assert_string_equal(printed(), "n.lathe:2:2: note: declared here\nbb\n ^\n");
    assert_int_equal(diag_error_count(F.d), 0);
    assert_string_equal(diag_first_message(F.d), "");
}

static void test_first_error_is_kept(void **state)
{
    char file[] = "first.lathe";
    diag_error(F.d, (Loc){file, 7, 3}, "first");
    file[0] = 'X'; /* the Diag keeps its own copy of the file name */
    diag_error(F.d, (Loc){"second.lathe", 1, 1}, "second");
    assert_int_equal(diag_error_count(F.d), 2);
    assert_string_equal(diag_first_message(F.d), "first");
    Loc l = diag_first_loc(F.d);
    assert_string_equal(l.file, "first.lathe");
    assert_int_equal(l.line, 7);
    assert_int_equal(l.col, 3);
}

static void test_line_past_end_prints_header_only(void **state)
{
    const char *text = "one line";
    diag_add_source(F.d, "s.lathe", text, strlen(text));
    diag_error(F.d, (Loc){"s.lathe", 5, 1}, "far");
    assert_string_equal(printed(), "s.lathe:5:1: error: far\n");
}

static void test_record_only_diag(void **state)
{
    Diag *d = diag_new(NULL);
    diag_error(d, (Loc){0}, "quiet");
    assert_int_equal(diag_error_count(d), 1);
    assert_string_equal(diag_first_message(d), "quiet");
    diag_free(d);
}

static void test_arena_alloc_zeroed_and_realloc_keeps(void **state)
{
    Arena *a = arena_new();
    int *p = arena_alloc(a, 10 * sizeof(int));
    for (int i = 0; i < 10; i++)
        assert_int_equal(p[i], 0);
    for (int i = 0; i < 10; i++)
        p[i] = i;
    int *q = arena_realloc(a, p, 10 * sizeof(int), 100000 * sizeof(int));
    for (int i = 0; i < 10; i++)
        assert_int_equal(q[i], i);
    assert_int_equal(q[99999], 0);
    assert_int_equal(((uintptr_t)arena_alloc(a, 3)) % 16, 0);
    assert_string_equal(arena_printf(a, "%s-%d", "x", 42), "x-42");
    assert_string_equal(arena_strndup(a, "abcdef", 3), "abc");
    arena_free(a);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_error_with_source_prints_line_and_caret),
        T(test_caret_keeps_tabs),
        T(test_error_without_source_has_no_caret),
        T(test_error_without_location),
        T(test_note_prints_and_does_not_count),
        T(test_first_error_is_kept),
        T(test_line_past_end_prints_header_only),
        T(test_record_only_diag),
        T(test_arena_alloc_zeroed_and_realloc_keeps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
