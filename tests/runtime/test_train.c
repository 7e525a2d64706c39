/* test_train.c: training the fake model lowers its loss; the whole driver (train, eval, predict, info)
   with checkpoints, JSON logs, resume reproducing an uninterrupted run, and exit statuses. */
#include "support.h"
#include "train.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static void test_training_lowers_loss(void **state) {
    RtManifest m;
    RtErr e;
    assert_int_equal(rt_manifest_parse(&m, lathe_manifest, &e), RT_OK);
    m.train.fn = lathe_train;
    m.eval.fn = lathe_eval;
    char *argv[] = {"prog", "train", NULL};
    RtConfig cfg;
    assert_int_equal(rt_config_parse(&cfg, &m, 2, argv, &e), RT_OK);
    RtModel md;
    RtDataset train, test;
    RtBinding tb, eb;
    assert_int_equal(rt_model_init(&md, &m, 1, &e), RT_OK);
    assert_int_equal(rt_dataset_load(&train, ts_dir, &cfg.train_data, &e), RT_OK);
    assert_int_equal(rt_dataset_load(&test, ts_dir, &cfg.test_data, &e), RT_OK);
    assert_int_equal(rt_bind(&tb, &md, &m.train, &cfg, cfg.batch, &e), RT_OK);
    assert_int_equal(rt_bind(&eb, &md, &m.eval, &cfg, cfg.batch, &e), RT_OK);
    RtMetrics before, after;
    assert_int_equal(rt_scores_open(&before, &m, cfg.recipe, &e), RT_OK);
    assert_int_equal(rt_scores_open(&after, &m, cfg.recipe, &e), RT_OK);
    rt_evaluate_scores(&eb, &md, &test, NULL, test.count, cfg.batch, &before);
    double first = rt_train_epoch(&tb, &md, NULL, &train, &cfg, 0, NULL), last = first;
    for (int ep = 1; ep < 4; ep++)
        last = rt_train_epoch(&tb, &md, NULL, &train, &cfg, ep, NULL);
    rt_evaluate_scores(&eb, &md, &test, NULL, test.count, cfg.batch, &after);
    assert_true(last < first);
    assert_true(rt_metrics_value(&after, "loss") < 0.5 * rt_metrics_value(&before, "loss"));
    assert_true(rt_metrics_value(&after, "accuracy") > 0.9);
    assert_int_equal(after.samples, 60);
    rt_metrics_close(&before);
    rt_metrics_close(&after);
    rt_unbind(&tb);
    rt_unbind(&eb);
    rt_dataset_free(&train);
    rt_dataset_free(&test);
    rt_model_free(&md);
    rt_config_free(&cfg);
    rt_manifest_free(&m);
}

static float *read_params(const char *path) {
    static float w[12], b[3];
    RtTensor ts[2] = {{.name = "w", .dtype = RT_F32, .rank = 2, .shape = {3, 4}, .data = w},
                      {.name = "b", .dtype = RT_F32, .rank = 1, .shape = {3}, .data = b}};
    float *out = malloc(15 * sizeof *out);
    RtErr e;
    if (rt_st_load(path, ts, 2, NULL, 0, NULL, &e) != RT_OK)
        fail_msg("%s", e.msg);
    memcpy(out, w, sizeof w);
    memcpy(out + 12, b, sizeof b);
    return out;
}

static void test_driver_train_prints_writes_checkpoint_and_log(void **state) {
    char ck[512], log[512], path[600];
    tmp_path(ck, sizeof ck, ts_dir, "ck1/deeper");
    tmp_path(log, sizeof log, ts_dir, "log1.jsonl");
    char *out, *err;
    const char *args[] = {"train", "--data", ts_dir, "--checkpoint-dir", ck, "--log-json", log, NULL};
    assert_int_equal(run_driver(&out, &err, args), 0);
    assert_contains(out, "Epoch 1\n-------------------------------\nloss: ");
    assert_contains(out, "[    8/  300]");
    assert_contains(out, "Test Error: \n Accuracy: ");
    assert_contains(out, "Epoch 3\n");
    assert_contains(out, "Done!\n");
    snprintf(path, sizeof path, "%s/last.safetensors", ck);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    char *text = read_text(log);
    int lines = 0;
    for (char *p = text; (p = strchr(p, '\n')); p++)
        lines++;
    assert_int_equal(lines, 3);
    json_error_t je;
    json_t *first = json_loadb(text, (size_t)(strchr(text, '\n') - text), 0, &je);
    assert_non_null(first);
    assert_int_equal(json_integer_value(json_object_get(first, "epoch")), 1);
    const char *keys[] = {"train_loss", "test_loss", "test_accuracy", "seconds", "samples_per_s"};
    for (int i = 0; i < 5; i++)
        assert_true(json_is_number(json_object_get(first, keys[i])));
    json_decref(first);
    free(text);
    free(out);
    free(err);
}

static void test_driver_resume_matches_uninterrupted_run(void **state) {
    char full[512], part[512], path[600];
    tmp_path(full, sizeof full, ts_dir, "full");
    tmp_path(part, sizeof part, ts_dir, "part");
    const char *a1[] = {"train", "--data", ts_dir, "--seed", "11", "--checkpoint-dir", full, NULL};
    assert_int_equal(run_driver(NULL, NULL, a1), 0);
    const char *a2[] = {"train", "--data", ts_dir, "--seed", "11", "--epochs", "1", "--checkpoint-dir", part, NULL};
    assert_int_equal(run_driver(NULL, NULL, a2), 0);
    snprintf(path, sizeof path, "%s/last.safetensors", part);
    char *out;
    /* the seed comes back from the checkpoint's metadata */
    const char *a3[] = {"train", "--data", ts_dir, "--resume", path, "--checkpoint-dir", part, NULL};
    assert_int_equal(run_driver(&out, NULL, a3), 0);
    assert_null(strstr(out, "Epoch 1\n"));
    assert_contains(out, "Epoch 2\n");
    free(out);
    char fp[600];
    snprintf(fp, sizeof fp, "%s/last.safetensors", full);
    float *a = read_params(fp), *b = read_params(path);
    assert_memory_equal(a, b, 15 * sizeof *a);
    free(a);
    free(b);
}

static const char *trained(void) {
    static char path[600];
    char ck[512];
    tmp_path(ck, sizeof ck, ts_dir, "trained");
    snprintf(path, sizeof path, "%s/last.safetensors", ck);
    struct stat st;
    if (stat(path, &st) != 0) {
        const char *args[] = {"train", "--data", ts_dir, "--checkpoint-dir", ck, NULL};
        assert_int_equal(run_driver(NULL, NULL, args), 0);
    }
    return path;
}

static void test_driver_eval_json(void **state) {
    char *out;
    const char *args[] = {"eval", "--weights", trained(), "--data", ts_dir, "--json", NULL};
    assert_int_equal(run_driver(&out, NULL, args), 0);
    json_error_t je;
    json_t *o = json_loads(out, 0, &je);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "samples")), 60);
    assert_true(json_number_value(json_object_get(o, "test_accuracy")) > 0.9);
    assert_true(json_is_number(json_object_get(o, "test_loss")));
    json_decref(o);
    free(out);
}

static void test_driver_eval_text_and_limit(void **state) {
    char *out;
    const char *args[] = {"eval", "--weights", trained(), "--data", ts_dir, "--limit", "10", NULL};
    int64_t calls = fake_calls;
    assert_int_equal(run_driver(&out, NULL, args), 0);
    assert_contains(out, "Test Error: \n Accuracy: ");
    assert_int_equal(fake_calls - calls, 2); /* 10 samples in batches of 8 */
    free(out);
}

static void test_driver_predict_names_classes(void **state) {
    char *out;
    const char *args[] = {"predict", "--weights", trained(), "--data", ts_dir, "--index", "4", NULL};
    assert_int_equal(run_driver(&out, NULL, args), 0);
    assert_string_equal(out, "Predicted: \"one\", Actual: \"one\"\n");
    free(out);
}

static void test_driver_predict_index_out_of_range_exits_2(void **state) {
    char *err;
    const char *args[] = {"predict", "--weights", trained(), "--data", ts_dir, "--index", "60", NULL};
    assert_int_equal(run_driver(NULL, &err, args), 2);
    assert_contains(err, "--index: 60 is out of range");
    free(err);
}

static void test_driver_bad_flag_exits_2(void **state) {
    char *err;
    const char *args[] = {"train", "--epochs", "zero", NULL};
    assert_int_equal(run_driver(NULL, &err, args), 2);
    assert_string_equal(err, "fake_model: error: --epochs: 'zero' is not an integer\n");
    free(err);
}

static void test_driver_huge_batch_is_one_batch(void **state) {
    char *out;
    const char *args[] = {"train", "--data", ts_dir, "--epochs", "1", "--batch", "9223372036854775807", NULL};
    int64_t calls = fake_calls;
    assert_int_equal(run_driver(&out, NULL, args), 0);
    assert_int_equal(fake_calls - calls, 2); /* one train batch of 300, one eval batch of 60 */
    assert_contains(out, "[  300/  300]");
    free(out);
}

static void test_driver_missing_data_exits_1(void **state) {
    char *err;
    const char *args[] = {"train", "--data", "/nonexistent-lathe", NULL};
    assert_int_equal(run_driver(NULL, &err, args), 1);
    assert_contains(err, "/nonexistent-lathe/train-images: cannot open");
    free(err);
}

static void test_driver_bad_checkpoint_exits_1(void **state) {
    char p[512], *err;
    write_bytes(tmp_path(p, sizeof p, ts_dir, "junk.safetensors"), "junk", 4);
    const char *args[] = {"eval", "--weights", p, "--data", ts_dir, NULL};
    assert_int_equal(run_driver(NULL, &err, args), 1);
    assert_contains(err, "too small");
    free(err);
}

static void test_driver_info_lists_params_and_arena(void **state) {
    char *out;
    const char *args[] = {"info", NULL};
    assert_int_equal(run_driver(&out, NULL, args), 0);
    assert_contains(out, "FakeSoftmax");
    assert_contains(out, "total parameters: 15");
    assert_contains(out, "train    256"); /* 128 + 16 x 8 */
    assert_contains(out, "optimizer");
    free(out);
}

/* Writes a checkpoint of the fake model's params whose metadata holds the given epoch and step. */
static const char *checkpoint_with_counts(const char *name, const char *epoch, const char *step) {
    static char path[512];
    float w[12] = {0}, b[3] = {0};
    RtTensor ts[2] = {{.name = "w", .dtype = RT_F32, .rank = 2, .shape = {3, 4}, .data = w},
                      {.name = "b", .dtype = RT_F32, .rank = 1, .shape = {3}, .data = b}};
    json_t *meta = json_pack("{s:s, s:s}", "epoch", epoch, "step", step);
    RtErr e;
    if (rt_st_save(tmp_path(path, sizeof path, ts_dir, name), ts, 2, meta, &e) != RT_OK)
        fail_msg("%s", e.msg);
    json_decref(meta);
    return path;
}

/* A negative step would resume Adam with a wrong bias correction; an epoch past INT64_MAX used to be read as
   INT64_MAX and end the run at once with status 0. */
static void test_driver_resume_rejects_bad_metadata_counts(void **state) {
    char *err;
    const char *a1[] = {"train", "--data", ts_dir, "--resume", checkpoint_with_counts("neg.st", "1", "-5"), NULL};
    assert_int_equal(run_driver(NULL, &err, a1), 1);
    assert_contains(err, "metadata 'step' is not a non-negative integer");
    free(err);
    const char *a2[] = {"train", "--data", ts_dir, "--resume",
                        checkpoint_with_counts("big.st", "99999999999999999999", "3"), NULL};
    assert_int_equal(run_driver(NULL, &err, a2), 1);
    assert_contains(err, "metadata 'epoch' is not a non-negative integer");
    free(err);
}

/* Output lost to a full disk is a failure, not exit status 0. */
static void test_driver_failed_stdout_write_exits_1(void **state) {
    char *argv[] = {"fake_model", "info", NULL};
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2), full = open("/dev/full", O_WRONLY), null = open("/dev/null", O_WRONLY);
    assert_true(so >= 0 && se >= 0 && full >= 0 && null >= 0);
    dup2(full, 1);
    dup2(null, 2);
    int status = rt_run(lathe_manifest, lathe_train, lathe_eval, lathe_predict, 2, argv);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    clearerr(stdout);
    close(so);
    close(se);
    close(full);
    close(null);
    assert_int_equal(status, 1);
}

static void test_driver_help(void **state) {
    char *out;
    const char *args[] = {"train", "--help", NULL};
    assert_int_equal(run_driver(&out, NULL, args), 0);
    assert_contains(out, "usage: fake_model train");
    assert_contains(out, "--checkpoint-dir");
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_training_lowers_loss),
        cmocka_unit_test(test_driver_train_prints_writes_checkpoint_and_log),
        cmocka_unit_test(test_driver_resume_matches_uninterrupted_run),
        cmocka_unit_test(test_driver_eval_json),
        cmocka_unit_test(test_driver_eval_text_and_limit),
        cmocka_unit_test(test_driver_predict_names_classes),
        cmocka_unit_test(test_driver_predict_index_out_of_range_exits_2),
        cmocka_unit_test(test_driver_bad_flag_exits_2),
        cmocka_unit_test(test_driver_huge_batch_is_one_batch),
        cmocka_unit_test(test_driver_missing_data_exits_1),
        cmocka_unit_test(test_driver_bad_checkpoint_exits_1),
        cmocka_unit_test(test_driver_info_lists_params_and_arena),
        cmocka_unit_test(test_driver_resume_rejects_bad_metadata_counts),
        cmocka_unit_test(test_driver_failed_stdout_write_exits_1),
        cmocka_unit_test(test_driver_help),
    };
    return cmocka_run_group_tests(tests, ts_setup_fake_data, ts_teardown_dir);
}
