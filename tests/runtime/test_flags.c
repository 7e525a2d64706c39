/* test_flags.c: the command line: recipe defaults, flags and --set overriding them, and one clear message
   naming the flag for each bad flag or value. */
#include "support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static RtManifest m;

static int setup(void **state) {
    RtErr e;
    return rt_manifest_parse(&m, lathe_manifest, &e);
}

static int teardown(void **state) {
    rt_manifest_free(&m);
    return 0;
}

/* Parses the NULL-terminated words after the program name. */
static int parse(RtConfig *c, RtErr *e, ...) {
    char *argv[32] = {"prog"};
    int argc = 1;
    va_list ap;
    va_start(ap, e);
    for (char *s; (s = va_arg(ap, char *));)
        argv[argc++] = s;
    va_end(ap);
    e->msg[0] = 0;
    return rt_config_parse(c, &m, argc, argv, e);
}

static void expect_error(const char *part, int rc, RtConfig *c, RtErr *e) {
    assert_int_equal(rc, RT_ERR);
    if (!strstr(e->msg, part))
        fail_msg("'%s' does not contain '%s'", e->msg, part);
    rt_config_free(c);
}

static void test_flags_recipe_defaults(void **state) {
    RtConfig c;
    RtErr e;
    assert_int_equal(parse(&c, &e, "train", NULL), RT_OK);
    assert_int_equal(c.cmd, RT_CMD_TRAIN);
    assert_int_equal(c.epochs, 3);
    assert_int_equal(c.batch, 8);
    assert_true(c.has_lr && c.lr == 0.5);
    assert_true(c.shuffle);
    assert_int_equal(c.limit, -1);
    assert_string_equal(c.data_dir, ".");
    assert_string_equal(c.train_data.images, "train-images");
    assert_string_equal(c.test_data.labels, "test-labels");
    assert_true(c.train_data.scale == 0.00392156862745098);
    assert_int_equal(c.nclasses, 3);
    assert_string_equal(c.classes[2], "two");
    rt_config_free(&c);
}

static void test_flags_override_recipe(void **state) {
    RtConfig c;
    RtErr e;
    assert_int_equal(parse(&c, &e, "train", "--epochs", "2", "--batch=16", "--lr", "0.125", "--seed", "7",
                           "--no-shuffle", "--limit", "10", "--data", "/d", "--checkpoint-dir", "ck", "--log-json",
                           "l.jsonl", "--threads", "2", NULL),
                     RT_OK);
    assert_int_equal(c.epochs, 2);
    assert_int_equal(c.batch, 16);
    assert_true(c.lr == 0.125);
    assert_int_equal(c.seed, 7);
    assert_true(c.seed_given);
    assert_false(c.shuffle);
    assert_int_equal(c.limit, 10);
    assert_string_equal(c.data_dir, "/d");
    assert_string_equal(c.checkpoint_dir, "ck");
    assert_string_equal(c.log_json, "l.jsonl");
    assert_int_equal(c.threads, 2);
    rt_config_free(&c);
}

static void test_flags_set_overrides_recipe_keys(void **state) {
    RtConfig c;
    RtErr e;
    assert_int_equal(parse(&c, &e, "train", "--set", "epochs=5", "--set", "optimizer.lr=0.25", "--set",
                           "shuffle=false", "--set", "seed=9", NULL),
                     RT_OK);
    assert_int_equal(c.epochs, 5);
    assert_true(c.lr == 0.25);
    assert_false(c.shuffle);
    assert_int_equal(c.seed, 9);
    rt_config_free(&c);
    assert_int_equal(parse(&c, &e, "train", "--set", "lr=0.0625", NULL), RT_OK);
    assert_true(c.lr == 0.0625);
    rt_config_free(&c);
}

static void test_flags_dedicated_flag_beats_set(void **state) {
    RtConfig c;
    RtErr e;
    assert_int_equal(parse(&c, &e, "train", "--epochs", "2", "--set", "epochs=5", NULL), RT_OK);
    assert_int_equal(c.epochs, 2);
    rt_config_free(&c);
}

static void test_flags_eval_predict_options(void **state) {
    RtConfig c;
    RtErr e;
    assert_int_equal(parse(&c, &e, "predict", "--weights", "w.st", "--index", "4", NULL), RT_OK);
    assert_int_equal(c.cmd, RT_CMD_PREDICT);
    assert_string_equal(c.weights, "w.st");
    assert_int_equal(c.index, 4);
    rt_config_free(&c);
    assert_int_equal(parse(&c, &e, "eval", "--weights", "w.st", "--json", NULL), RT_OK);
    assert_true(c.json);
    rt_config_free(&c);
}

static void test_flags_help(void **state) {
    RtConfig c;
    RtErr e;
    assert_int_equal(parse(&c, &e, "--help", NULL), RT_HELP);
    assert_int_equal((int)c.cmd, -1);
    rt_config_free(&c);
    assert_int_equal(parse(&c, &e, "train", "--help", NULL), RT_HELP);
    assert_int_equal(c.cmd, RT_CMD_TRAIN);
    rt_config_free(&c);
}

static void test_flags_bad_integer_names_flag(void **state) {
    RtConfig c;
    RtErr e;
    expect_error("--epochs: 'abc' is not an integer", parse(&c, &e, "train", "--epochs", "abc", NULL), &c, &e);
    expect_error("--batch: must be at least 1", parse(&c, &e, "train", "--batch", "0", NULL), &c, &e);
    expect_error("--limit: '5x' is not an integer", parse(&c, &e, "train", "--limit", "5x", NULL), &c, &e);
    expect_error("--index: must be at least 0", parse(&c, &e, "train", "--index", "-1", NULL), &c, &e);
    expect_error("--threads", parse(&c, &e, "train", "--threads", "99999999999999999999", NULL), &c, &e);
}

static void test_flags_bad_lr_names_flag(void **state) {
    RtConfig c;
    RtErr e;
    expect_error("--lr: must not be negative", parse(&c, &e, "train", "--lr", "-1", NULL), &c, &e);
    expect_error("--lr: 'nan' is not a finite number", parse(&c, &e, "train", "--lr", "nan", NULL), &c, &e);
}

static void test_flags_unknown_option(void **state) {
    RtConfig c;
    RtErr e;
    expect_error("--bogus", parse(&c, &e, "train", "--bogus", NULL), &c, &e);
    expect_error("-q", parse(&c, &e, "train", "-q", NULL), &c, &e);
}

/* In a cluster getopt stays on the word, so the message names the letter, not the word before it. */
static void test_flags_unknown_short_option_in_cluster(void **state) {
    RtConfig c;
    RtErr e;
    expect_error("-x: unknown option", parse(&c, &e, "train", "--epochs", "2", "-xq", NULL), &c, &e);
}

static void test_flags_missing_value(void **state) {
    RtConfig c;
    RtErr e;
    expect_error("--epochs: missing value", parse(&c, &e, "train", "--epochs", NULL), &c, &e);
}

static void test_flags_value_given_to_switch(void **state) {
    RtConfig c;
    RtErr e;
    expect_error("--json: takes no value", parse(&c, &e, "eval", "--weights", "w", "--json=1", NULL), &c, &e);
}

static void test_flags_unexpected_argument(void **state) {
    RtConfig c;
    RtErr e;
    expect_error("unexpected argument 'extra'", parse(&c, &e, "train", "extra", NULL), &c, &e);
}

static void test_flags_unknown_and_missing_command(void **state) {
    RtConfig c;
    RtErr e;
    expect_error("unknown command 'fit'", parse(&c, &e, "fit", NULL), &c, &e);
    expect_error("missing command", parse(&c, &e, NULL), &c, &e);
}

static void test_flags_eval_requires_weights(void **state) {
    RtConfig c;
    RtErr e;
    expect_error("--weights FILE is required", parse(&c, &e, "eval", NULL), &c, &e);
}

static void test_flags_set_errors(void **state) {
    RtConfig c;
    RtErr e;
    expect_error("unknown recipe key 'momentum'", parse(&c, &e, "train", "--set", "momentum=0.9", NULL), &c, &e);
    expect_error("unknown recipe key 'optimizer.beta'", parse(&c, &e, "train", "--set", "optimizer.beta=1", NULL), &c,
                 &e);
    expect_error("epochs takes a number", parse(&c, &e, "train", "--set", "epochs=many", NULL), &c, &e);
    expect_error("shuffle takes true or false", parse(&c, &e, "train", "--set", "shuffle=1", NULL), &c, &e);
    expect_error("expected KEY=VALUE", parse(&c, &e, "train", "--set", "epochs", NULL), &c, &e);
    expect_error("cannot override", parse(&c, &e, "train", "--set", "data=x", NULL), &c, &e);
    expect_error("recipe key batch", parse(&c, &e, "train", "--set", "batch=0", NULL), &c, &e);
}

/* momentum is a constant of the compiled train step: --set may change it only where the graph takes it as an
   input */
static void test_flags_set_refuses_compiled_optimizer_argument(void **state) {
    RtConfig c;
    RtErr e;
    json_t *kw = json_object_get(json_object_get(m.recipe, "optimizer"), "kwargs");
    json_object_set_new(kw, "momentum", json_real(0.9));
    expect_error("optimizer.momentum is compiled into the train step",
                 parse(&c, &e, "train", "--set", "optimizer.momentum=0.5", NULL), &c, &e);
    RtTensorSpec *lr = &m.train.args[2];
    const char *name = lr->name;
    lr->name = "momentum"; /* a train step that takes momentum as its input */
    int rc = parse(&c, &e, "train", "--set", "optimizer.momentum=0.5", NULL);
    lr->name = name;
    assert_int_equal(rc, RT_OK);
    assert_true(json_real_value(json_object_get(json_object_get(json_object_get(c.recipe, "optimizer"), "kwargs"),
                                                "momentum")) == 0.5);
    rt_config_free(&c);
    json_object_del(kw, "momentum");
}

/* --threads sizes the thread pool: one per core when absent, at least 1 when given. */
static void test_flags_threads_default_and_range(void **state) {
    RtConfig c;
    RtErr e;
    assert_int_equal(parse(&c, &e, "train", NULL), RT_OK);
    assert_int_equal(c.threads, 0);
    rt_config_free(&c);
    assert_int_equal(parse(&c, &e, "predict", "--weights", "w.st", "--threads", "3", NULL), RT_OK);
    assert_int_equal(c.threads, 3);
    rt_config_free(&c);
    expect_error("--threads", parse(&c, &e, "train", "--threads", "0", NULL), &c, &e);
    expect_error("--threads: at most 4096", parse(&c, &e, "train", "--threads", "5000", NULL), &c, &e);
}

static void test_flags_help_describes_threads_as_kernel_threads(void **state) {
    for (int cmd = RT_CMD_TRAIN; cmd <= RT_CMD_PREDICT; cmd++) {
        char *text = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&text, &n);
        assert_non_null(f);
        rt_usage(f, "prog", cmd);
        fclose(f);
        assert_contains(text, "--threads N");
        assert_contains(text, "threads for Lathe's kernels (OpenBLAS runs inside them)");
        free(text);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flags_recipe_defaults),
        cmocka_unit_test(test_flags_set_refuses_compiled_optimizer_argument),
        cmocka_unit_test(test_flags_override_recipe),
        cmocka_unit_test(test_flags_set_overrides_recipe_keys),
        cmocka_unit_test(test_flags_dedicated_flag_beats_set),
        cmocka_unit_test(test_flags_eval_predict_options),
        cmocka_unit_test(test_flags_help),
        cmocka_unit_test(test_flags_bad_integer_names_flag),
        cmocka_unit_test(test_flags_bad_lr_names_flag),
        cmocka_unit_test(test_flags_unknown_option),
        cmocka_unit_test(test_flags_unknown_short_option_in_cluster),
        cmocka_unit_test(test_flags_missing_value),
        cmocka_unit_test(test_flags_value_given_to_switch),
        cmocka_unit_test(test_flags_unexpected_argument),
        cmocka_unit_test(test_flags_unknown_and_missing_command),
        cmocka_unit_test(test_flags_eval_requires_weights),
        cmocka_unit_test(test_flags_set_errors),
        cmocka_unit_test(test_flags_threads_default_and_range),
        cmocka_unit_test(test_flags_help_describes_threads_as_kernel_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
