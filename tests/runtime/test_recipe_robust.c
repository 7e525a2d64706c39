/* test_recipe_robust.c: recipe values that once crashed, trained on silently, or printed a broken message,
   each found by tests/e2e/fuzz_set.py: a schedule whose learning rate turns negative or infinite at some epoch,
   OneCycleLR over more than 2^63 steps, early_stop monitoring a score that is never computed, a message that
   quotes a newline, a list of class names of the wrong length, and the limits of accumulate and warmup. */
#include "support.h"

#include "lrsched.h"
#include "metrics.h"
#include "train.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void sched_of(const char *text, RtSched *s, json_t **keep) {
    RtErr e = {{0}};
    *keep = ts_json(text);
    if (rt_sched_parse(*keep, s, &e) != RT_OK)
        fail_msg("'%s' refused: %s", text, e.msg);
}

/* Lines of s: a message must be exactly one, ending in a newline. */
static int lines_of(const char *s) {
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

/* ---------------------------------------------------------------- the learning rate of a schedule */

/* LambdaLR(1 - epoch) at lr 0.1: 0.1, 0, then -0.1 at epoch 2, which is refused there */
static void test_sched_negative_lr_is_an_error_at_its_epoch(void **state) {
    (void)state;
    RtSched s;
    json_t *r;
    sched_of("{\"schedule\": {\"call\": \"LambdaLR\", \"args\": [{\"call\": \"sub\", \"args\": [1, {\"ident\": "
             "\"epoch\"}]}], \"kwargs\": {}}}",
             &s, &r);
    double lr = -1;
    RtErr e = {{0}};
    assert_int_equal(rt_sched_lr(&s, 0.1, 0, 0, 1, 5, &lr, &e), RT_OK);
    assert_true(lr == 0.1);
    assert_int_equal(rt_sched_lr(&s, 0.1, 1, 1, 1, 5, &lr, &e), RT_OK);
    assert_true(lr == 0);
    assert_int_equal(rt_sched_lr(&s, 0.1, 2, 2, 1, 5, &lr, &e), RT_ERR);
    assert_contains(e.msg, "recipe key schedule: the learning rate at epoch = 2, step = 2 is -0.1");
    assert_contains(e.msg, "LambdaLR(1 - epoch)");
    json_decref(r);
}

/* LambdaLR(-1) is refused at the first epoch */
static void test_sched_constant_negative_lambda_is_an_error(void **state) {
    (void)state;
    RtSched s;
    json_t *r;
    sched_of("{\"schedule\": {\"call\": \"LambdaLR\", \"args\": [-1], \"kwargs\": {}}}", &s, &r);
    double lr;
    RtErr e = {{0}};
    assert_int_equal(rt_sched_lr(&s, 0.001, 0, 0, 1, 5, &lr, &e), RT_ERR);
    assert_contains(e.msg, "at epoch = 0, step = 0 is -0.001");
    json_decref(r);
}

/* ExponentialLR(1e300) from lr 1e300: finite at epoch 0, inf at epoch 1 */
static void test_sched_overflowing_lr_is_an_error(void **state) {
    (void)state;
    RtSched s;
    json_t *r;
    sched_of("{\"schedule\": {\"call\": \"ExponentialLR\", \"args\": [1e300], \"kwargs\": {}}}", &s, &r);
    double lr;
    RtErr e = {{0}};
    assert_int_equal(rt_sched_lr(&s, 1e300, 0, 0, 1, 5, &lr, &e), RT_OK);
    assert_int_equal(rt_sched_lr(&s, 1e300, 1, 1, 1, 5, &lr, &e), RT_ERR);
    assert_contains(e.msg, "the learning rate at epoch = 1, step = 1 is inf");
    json_decref(r);
}

/* OneCycleLR without total_steps over epochs * steps_per_epoch past 2^63: no signed overflow (UBSan aborts
   the sanitizer build on one), the cycle just never ends: the first step is max_lr / div_factor */
static void test_sched_onecycle_of_more_than_2_63_steps(void **state) {
    (void)state;
    RtSched s;
    json_t *r;
    sched_of("{\"schedule\": {\"call\": \"OneCycleLR\", \"args\": [], \"kwargs\": {}}}", &s, &r);
    double lr = 0;
    RtErr e = {{0}};
    assert_int_equal(rt_sched_lr(&s, 0.1, 0, 0, 64, INT64_MAX / 2, &lr, &e), RT_OK);
    assert_true(fabs(lr - 0.1 / 25) < 1e-12);
    assert_int_equal(rt_sched_lr(&s, 0.1, 5, 1000, 64, INT64_MAX, &lr, &e), RT_OK);
    assert_true(isfinite(lr) && lr > 0.1 / 25 && lr < 0.1);
    json_decref(r);
}

/* warmup = 2^63 - 1 ramps over every step the run can take: tiny, finite, positive rates */
static void test_sched_huge_warmup_is_finite(void **state) {
    (void)state;
    RtSched s;
    json_t *r;
    sched_of("{\"warmup\": 9223372036854775807}", &s, &r);
    double lr = 0;
    RtErr e = {{0}};
    assert_int_equal(rt_sched_lr(&s, 0.1, 0, 0, 1, 1, &lr, &e), RT_OK);
    assert_true(lr > 0 && lr < 1e-19);
    assert_int_equal(rt_sched_lr(&s, 0.1, 0, INT64_MAX - 1, 1, 1, &lr, &e), RT_OK);
    assert_true(fabs(lr - 0.1) < 1e-12);
    json_decref(r);
}

/* ---------------------------------------------------------------- early_stop's monitor */

static const RtManifest *fake_manifest(void) {
    static RtManifest m;
    static bool parsed;
    RtErr e;
    if (!parsed && rt_manifest_parse(&m, lathe_manifest, &e) != RT_OK)
        fail_msg("fake manifest: %s", e.msg);
    parsed = true;
    return &m;
}

static const char *check_error(const char *recipe_text) {
    static RtErr e;
    json_t *r = ts_json(recipe_text);
    memset(&e, 0, sizeof e);
    int rc = rt_recipe_check(fake_manifest(), r, &e);
    json_decref(r);
    return rc == RT_OK ? NULL : e.msg;
}

#define ES(mon) "\"early_stop\": {\"call\": \"early_stop\", \"args\": [{\"ident\": \"" mon "\"}], \"kwargs\": {}}"
#define OPT "\"optimizer\": {\"call\": \"SGD\", \"args\": [], \"kwargs\": {\"lr\": 0.5}}"
#define TEST_SET "\"test\": {\"call\": \"idx\", \"args\": [\"test-images\", \"test-labels\"], \"kwargs\": {}}"

static void test_early_stop_metric_not_computed_is_a_recipe_error(void **state) {
    (void)state;
    const char *msg = check_error("{" OPT ", " TEST_SET ", " ES("test_f1") "}");
    assert_contains(msg, "recipe key early_stop: monitor test_f1 names a score that is not computed");
    assert_contains(msg, "loss, accuracy");
    assert_null(check_error("{" OPT ", " TEST_SET ", \"metrics\": [{\"ident\": \"f1\"}], " ES("test_f1") "}"));
    assert_contains(check_error("{" OPT ", " ES("train_top_3") "}"), "monitor train_top_3 names a score");
    assert_null(check_error("{" OPT ", \"metrics\": [{\"call\": \"top_k\", \"args\": [2], \"kwargs\": {}}], "
                            ES("train_top2_accuracy") "}"));
    assert_contains(check_error("{" OPT ", " ES("train_confusion_matrix") "}"), "not computed");
}

static void test_early_stop_pass_that_does_not_run_is_a_recipe_error(void **state) {
    (void)state;
    assert_contains(check_error("{" OPT ", " ES("val_loss") "}"), "monitor val_loss needs a validation set");
    assert_null(check_error("{" OPT ", \"validation\": 0.2, " ES("val_loss") "}"));
    assert_contains(check_error("{" OPT ", " ES("test_accuracy") "}"), "monitor test_accuracy needs a test set");
    assert_contains(check_error("{" OPT ", \"test\": null, " ES("test_loss") "}"), "needs a test set");
    assert_null(check_error("{" OPT ", " TEST_SET ", " ES("test_accuracy") "}"));
}

/* through the driver: refused with status 2 before any batch runs */
static void test_driver_early_stop_unknown_score_exits_2_before_training(void **state) {
    (void)state;
    char *err;
    const char *args[] = {"train", "--data", ts_dir, "--set", "early_stop=early_stop(test_f1)", NULL};
    int64_t calls = fake_calls;
    assert_int_equal(run_driver(NULL, &err, args), 2);
    assert_int_equal(fake_calls, calls);
    assert_contains(err, "fake_model: error: recipe key early_stop: monitor test_f1");
    assert_int_equal(lines_of(err), 1);
    free(err);
}

/* ---------------------------------------------------------------- the driver */

/* the schedule's error comes at the epoch where the rate goes wrong, after the epochs before it ran */
static void test_driver_negative_lr_stops_at_its_epoch(void **state) {
    (void)state;
    char *out, *err;
    const char *args[] = {"train", "--data", ts_dir, "--epochs", "4", "--set", "schedule=LambdaLR(1 - epoch)", NULL};
    assert_int_equal(run_driver(&out, &err, args), 1);
    assert_contains(out, "Epoch 2\n");
    assert_null(strstr(out, "Done!"));
    assert_contains(err, "recipe key schedule: the learning rate at epoch = 2, step = ");
    assert_contains(err, "is -0.5");
    assert_int_equal(lines_of(err), 1);
    free(out);
    free(err);
}

/* a --set value with a newline gives one line, the newline escaped */
static void test_driver_message_quoting_a_newline_is_one_line(void **state) {
    (void)state;
    char *err;
    const char *args[] = {"train", "--data", ts_dir, "--set", "validation=1e-3\n00", NULL};
    assert_int_equal(run_driver(NULL, &err, args), 2);
    assert_contains(err, "fake_model: error: --set validation=1e-3\\n00: column ");
    assert_int_equal(lines_of(err), 1);
    free(err);
    const char *args2[] = {"train", "--data", ts_dir, "--set", "data=idx(\"a\x01\tb\", \"c\")", NULL};
    assert_int_equal(run_driver(NULL, &err, args2), 1);
    assert_contains(err, "a\\x01\\tb");
    assert_int_equal(lines_of(err), 1);
    free(err);
}

/* accumulate beyond an epoch's batches: one optimizer step an epoch, over the mean of every batch */
static void test_driver_accumulate_beyond_the_epoch_steps_once_an_epoch(void **state) {
    (void)state;
    char log[512];
    tmp_path(log, sizeof log, ts_dir, "acc.jsonl");
    char *argv[] = {"fake_model", "train", "--data", ts_dir, "--epochs", "2", "--set", "accumulate=1000", "--log-json",
                    log, NULL};
    /* the runtime's optimizer (accumulate is not fused): the fake model's grads graph */
    RtEntries fns = {lathe_train, lathe_grads, lathe_eval, lathe_predict};
    assert_int_equal(rt_run_entries(lathe_manifest, &fns, 10, argv), 0);
    char *text = read_text(log);
    assert_contains(text, "\"steps\":1,");
    assert_contains(text, "\"steps\":2,");
    free(text);
}

/* classes must name each of the model's classes: a shorter list printed class numbers for the others */
static void test_driver_classes_of_another_count_exit_2(void **state) {
    (void)state;
    char *err;
    const char *args[] = {"train", "--data", ts_dir, "--set", "classes=[\"a\"]", NULL};
    assert_int_equal(run_driver(NULL, &err, args), 2);
    assert_contains(err, "recipe key classes: 1 name for the model's 3 classes");
    free(err);
    const char *args2[] = {"train", "--data", ts_dir, "--set", "classes=3", NULL};
    assert_int_equal(run_driver(NULL, &err, args2), 2);
    assert_contains(err, "recipe key classes: expected a list of class names");
    free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sched_negative_lr_is_an_error_at_its_epoch),
        cmocka_unit_test(test_sched_constant_negative_lambda_is_an_error),
        cmocka_unit_test(test_sched_overflowing_lr_is_an_error),
        cmocka_unit_test(test_sched_onecycle_of_more_than_2_63_steps),
        cmocka_unit_test(test_sched_huge_warmup_is_finite),
        cmocka_unit_test(test_early_stop_metric_not_computed_is_a_recipe_error),
        cmocka_unit_test(test_early_stop_pass_that_does_not_run_is_a_recipe_error),
        cmocka_unit_test(test_driver_early_stop_unknown_score_exits_2_before_training),
        cmocka_unit_test(test_driver_negative_lr_stops_at_its_epoch),
        cmocka_unit_test(test_driver_message_quoting_a_newline_is_one_line),
        cmocka_unit_test(test_driver_accumulate_beyond_the_epoch_steps_once_an_epoch),
        cmocka_unit_test(test_driver_classes_of_another_count_exit_2),
    };
    return cmocka_run_group_tests(tests, ts_setup_fake_data, ts_teardown_dir);
}
