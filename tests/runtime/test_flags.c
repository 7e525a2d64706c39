/* test_flags.c: the command line: recipe defaults, flags and --set overriding them, and one clear message
   naming the flag for each bad flag or value. */
#include "support.h"
#include "rexpr.h"

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
    expect_error("epochs takes an integer of at least 1", parse(&c, &e, "train", "--set", "epochs=many", NULL), &c,
                 &e);
    expect_error("shuffle takes true or false", parse(&c, &e, "train", "--set", "shuffle=1", NULL), &c, &e);
    expect_error("seed takes an integer of at least 0", parse(&c, &e, "train", "--set", "seed=-1", NULL), &c, &e);
    expect_error("expected KEY=EXPR", parse(&c, &e, "train", "--set", "epochs", NULL), &c, &e);
    expect_error("--set batch=0: batch takes an integer of at least 1",
                 parse(&c, &e, "train", "--set", "batch=0", NULL), &c, &e);
    expect_error("--set batch=2.5: batch takes an integer", parse(&c, &e, "train", "--set", "batch=2.5", NULL), &c,
                 &e);
}

/* EXPR is read as in the model file: a call, a list, arithmetic; the whole value replaces the key. */
static void test_flags_set_replaces_key_with_expression(void **state) {
    RtConfig c;
    RtErr e;
    assert_int_equal(parse(&c, &e, "train", "--set", "optimizer=Adam(lr = 1e-3, betas = [0.9, 0.999])", "--set",
                           "batch=2 ** 5", NULL),
                     RT_OK);
    json_t *opt = json_object_get(c.recipe, "optimizer");
    assert_string_equal(json_string_value(json_object_get(opt, "call")), "Adam");
    assert_int_equal(json_array_size(json_object_get(json_object_get(opt, "kwargs"), "betas")), 2);
    assert_true(c.has_lr && c.lr == 1e-3); /* the new call's lr */
    assert_int_equal(c.batch, 32);
    rt_config_free(&c);
    assert_int_equal(parse(&c, &e, "train", "--set", "data=csv('other.csv', header = false)", NULL), RT_OK);
    assert_int_equal(c.train_data.kind, RT_DATA_CSV);
    assert_string_equal(c.train_data.images, "other.csv");
    assert_false(c.train_data.header);
    rt_config_free(&c);
}

/* Keys the model file leaves out can be given too; their readers check the values later. */
static void test_flags_set_adds_keys_the_model_file_leaves_out(void **state) {
    RtConfig c;
    RtErr e;
    assert_null(json_object_get(m.recipe, "schedule"));
    assert_int_equal(parse(&c, &e, "train", "--set", "schedule=LambdaLR(0.95 ** epoch)", "--set",
                           "metrics=[accuracy, top_k(5)]", "--set", "workers=4", "--set", "early_stop=none", NULL),
                     RT_OK);
    RtErr pe;
    json_t *want = rt_rexpr_parse("LambdaLR(0.95 ** epoch)", &pe);
    assert_non_null(want);
    json_t *sched = json_object_get(c.recipe, "schedule");
    assert_true(json_equal(sched, want));
    json_decref(want);
    json_t *pw = json_array_get(json_object_get(sched, "args"), 0);
    assert_string_equal(json_string_value(json_object_get(pw, "call")), "pow");
    json_t *metrics = json_object_get(c.recipe, "metrics");
    assert_int_equal(json_array_size(metrics), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(metrics, 1), "call")), "top_k");
    assert_int_equal(json_integer_value(json_object_get(c.recipe, "workers")), 4);
    assert_true(json_is_null(json_object_get(c.recipe, "early_stop")));
    rt_config_free(&c);
}

static void test_flags_set_unknown_key_suggests_closest(void **state) {
    RtConfig c;
    RtErr e;
    expect_error("unknown recipe key 'epoch' (did you mean 'epochs'?)",
                 parse(&c, &e, "train", "--set", "epoch=3", NULL), &c, &e);
    expect_error("unknown recipe key 'shedule' (did you mean 'schedule'?)",
                 parse(&c, &e, "train", "--set", "shedule=StepLR(1)", NULL), &c, &e);
    assert_int_equal(parse(&c, &e, "train", "--set", "zzzzzzzz=1", NULL), RT_ERR);
    assert_null(strstr(e.msg, "did you mean"));
    rt_config_free(&c);
}

/* A mistake in EXPR names its column in EXPR. */
static void test_flags_set_expression_error_names_column(void **state) {
    RtConfig c;
    RtErr e;
    expect_error("--set optimizer=Adam(lr = ): column 11: expected an expression after '='",
                 parse(&c, &e, "train", "--set", "optimizer=Adam(lr = )", NULL), &c, &e);
    expect_error("column 5: unterminated string", parse(&c, &e, "train", "--set", "data=idx(\"a, 'b')", NULL), &c,
                 &e);
}

/* KEY.ARG replaces or adds one keyword argument of a call: the runtime runs every optimizer itself, so no
   argument of it is fixed by the compiled train step. */
static void test_flags_set_call_argument(void **state) {
    RtConfig c;
    RtErr e;
    assert_int_equal(parse(&c, &e, "train", "--set", "optimizer.momentum=0.5", "--set", "optimizer.lr=1 / 8", NULL),
                     RT_OK);
    json_t *kw = json_object_get(json_object_get(c.recipe, "optimizer"), "kwargs");
    assert_true(json_real_value(json_object_get(kw, "momentum")) == 0.5);
    assert_true(c.lr == 0.125);
    /* the manifest's own recipe is left as it was */
    assert_null(json_object_get(json_object_get(json_object_get(m.recipe, "optimizer"), "kwargs"), "momentum"));
    rt_config_free(&c);
    assert_int_equal(parse(&c, &e, "train", "--set", "data.scale=0.5", NULL), RT_OK);
    assert_true(c.train_data.scale == 0.5);
    rt_config_free(&c);
    expect_error("'batch' holds no call", parse(&c, &e, "train", "--set", "batch.size=3", NULL), &c, &e);
    expect_error("the model file sets no 'schedule'", parse(&c, &e, "train", "--set", "schedule.gamma=0.5", NULL), &c,
                 &e);
    expect_error("unknown recipe key 'optimiser' (did you mean 'optimizer'?)",
                 parse(&c, &e, "train", "--set", "optimiser.lr=0.1", NULL), &c, &e);
    expect_error("'l-r' is not an argument name", parse(&c, &e, "train", "--set", "optimizer.l-r=0.1", NULL), &c, &e);
}

/* The graphs compute the loss: a recipe loss given at run time would change nothing. */
static void test_flags_set_refuses_loss(void **state) {
    RtConfig c;
    RtErr e;
    expect_error("the loss is compiled into the model's graphs",
                 parse(&c, &e, "train", "--set", "loss=mse_loss(logits, label)", NULL), &c, &e);
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
        cmocka_unit_test(test_flags_set_replaces_key_with_expression),
        cmocka_unit_test(test_flags_set_adds_keys_the_model_file_leaves_out),
        cmocka_unit_test(test_flags_set_unknown_key_suggests_closest),
        cmocka_unit_test(test_flags_set_expression_error_names_column),
        cmocka_unit_test(test_flags_set_call_argument),
        cmocka_unit_test(test_flags_set_refuses_loss),
        cmocka_unit_test(test_flags_threads_default_and_range),
        cmocka_unit_test(test_flags_help_describes_threads_as_kernel_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
