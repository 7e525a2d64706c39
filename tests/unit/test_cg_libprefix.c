/* test_cg_libprefix.c: the C prefix of a model library (--emit lib|shared): taken from the output's base name
   as a C identifier, and checked when given with --prefix. */
#include "support.h"

#include <string.h>

#include "../../codegen/codegen.h"

static void expect_prefix(const char *output, const char *want) {
    char *got = cg_lib_prefix_of(ts.a, output);
    if (strcmp(got, want) != 0)
        fail_msg("prefix of '%s' is '%s', expected '%s'", output, got, want);
    assert_true(cg_lib_prefix_ok(got));
}

static void test_libprefix_from_base_name(void **state) {
    (void)state;
    expect_prefix("fashion_mlp", "fashion_mlp");
    expect_prefix("out/dir/FashionMLP", "fashionmlp");
    expect_prefix("My-Net.a", "my_net");
    expect_prefix("build/libresnet20.so", "resnet20");
    expect_prefix("library", "library"); /* lib is dropped only before .a or .so */
    expect_prefix("net.h", "net");
}

static void test_libprefix_made_an_identifier(void **state) {
    (void)state;
    expect_prefix("3layers", "_3layers");
    expect_prefix("int", "int_model");     /* a C keyword */
    expect_prefix("class.a", "class_model"); /* a C++ keyword */
    expect_prefix("dir/", "_");
    expect_prefix("a b.c", "a_b_c");
}

static void test_libprefix_given_is_checked(void **state) {
    (void)state;
    assert_true(cg_lib_prefix_ok("net"));
    assert_true(cg_lib_prefix_ok("_net2"));
    assert_false(cg_lib_prefix_ok("2net"));
    assert_false(cg_lib_prefix_ok("my-net"));
    assert_false(cg_lib_prefix_ok(""));
    assert_false(cg_lib_prefix_ok("while"));
    assert_false(cg_lib_prefix_ok("namespace"));
    assert_false(cg_lib_prefix_ok("lathe")); /* the runtime's own prefix */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_libprefix_from_base_name, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_libprefix_made_an_identifier, ts_setup, ts_teardown),
        cmocka_unit_test(test_libprefix_given_is_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
