/* test_usage.c: the produced executable's help (rt_usage): the general help and each command's name every
   command and give an example of its own, with the program's name filled in. */
#include "support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static char *usage_of(int cmd) {
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    assert_non_null(f);
    rt_usage(f, "fmnist", cmd);
    assert_int_equal(fclose(f), 0);
    return text;
}

static void assert_has(const char *text, const char *want) {
    if (!strstr(text, want))
        fail_msg("the help lacks \"%s\":\n%s", want, text);
}

/* Each command's help has an Example(s) section with a line running that command. */
static void test_usage_each_command_has_an_example(void **state) {
    static const struct {
        int cmd;
        const char *line;
    } cases[] = {
        {RT_CMD_TRAIN, "\n  fmnist train --data "},
        {RT_CMD_EVAL, "\n  fmnist eval --weights "},
        {RT_CMD_PREDICT, "\n  fmnist predict --weights "},
        {RT_CMD_INFO, "\n  fmnist info\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = usage_of(cases[i].cmd);
        assert_has(text, "Example");
        assert_has(text, cases[i].line);
        assert_null(strstr(text, "%s")); /* every %s has its argument */
        free(text);
    }
}

/* The general help lists the four commands, an example of each, and the exit statuses. */
static void test_usage_general_help(void **state) {
    char *text = usage_of(-1);
    assert_has(text, "usage: fmnist COMMAND");
    static const char *const lines[] = {"\n  fmnist train ", "\n  fmnist eval ", "\n  fmnist predict ",
                                        "\n  fmnist info\n", "Exit status: 0 success"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        assert_has(text, lines[i]);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_each_command_has_an_example),
        cmocka_unit_test(test_usage_general_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
