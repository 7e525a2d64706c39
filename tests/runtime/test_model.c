/* test_model.c: the driver on a sequence model fed by text(...): labels [N, T] that are the next bytes of
   the inputs, the inputs "seed" and "step" bound for each call, buffers (any dtype, rank 0 included)
   initialised, changed by the train step, saved and restored with optimizer state, listed by `info`; and no
   accuracy where the graph counts no "correct", no evaluation where the recipe has no test set. */
#include "support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define SPEC_X "\"dtype\": \"i64\", \"shape\": [-1, 4]"
#define SPEC_F32(shape) "\"dtype\": \"f32\", \"shape\": " shape
#define PARAMS_ARGS                                                                                             \
    "{\"name\": \"emb\", \"role\": \"param\", \"dtype\": \"f32\", \"shape\": [8]},"                            \
    "{\"name\": \"bn.running_mean\", \"role\": \"param\", \"dtype\": \"f32\", \"shape\": [2]},"                \
    "{\"name\": \"bn.num_batches_tracked\", \"role\": \"param\", \"dtype\": \"i64\", \"shape\": []},"

static const char seq_manifest[] =
    "{\"lathe\": \"0.1.0\", \"model\": \"FakeSeq\", \"source\": \"seq.lathe\", \"hash\": \"5e05e05e05e05e05\","
    " \"inputs\": [{\"name\": \"x\", " SPEC_X "}, {\"name\": \"label\", " SPEC_X "}],"
    " \"params\": [{\"name\": \"emb\", \"dtype\": \"f32\", \"shape\": [8],"
    "               \"init\": {\"kind\": \"uniform\", \"a\": -1, \"b\": 1}, \"trainable\": true},"
    "              {\"name\": \"bn.running_mean\", \"dtype\": \"f32\", \"shape\": [2],"
    "               \"init\": {\"kind\": \"ones\", \"a\": 0, \"b\": 0}, \"trainable\": false, \"buffer\": true},"
    "              {\"name\": \"bn.num_batches_tracked\", \"dtype\": \"i64\", \"shape\": [],"
    "               \"init\": {\"kind\": \"zeros\", \"a\": 0, \"b\": 0}, \"trainable\": false, \"buffer\": true}],"
    " \"graphs\": {"
    "  \"train\": {\"arena\": [64, 0], \"kernels\": 1, \"args\": ["
    "    {\"name\": \"x\", \"role\": \"input\", " SPEC_X "},"
    "    {\"name\": \"label\", \"role\": \"input\", " SPEC_X "},"
    "    {\"name\": \"lr\", \"role\": \"input\", \"dtype\": \"f32\", \"shape\": []},"
    "    {\"name\": \"step\", \"role\": \"input\", \"dtype\": \"i64\", \"shape\": []},"
    "    {\"name\": \"seed\", \"role\": \"input\", \"dtype\": \"i64\", \"shape\": []}," PARAMS_ARGS
    "    {\"name\": \"optimizer.emb.momentum_buffer\", \"role\": \"state\", \"dtype\": \"f32\", \"shape\": [8]},"
    "    {\"name\": \"loss\", \"role\": \"output\", \"dtype\": \"f32\", \"shape\": []}]},"
    "  \"eval\": {\"arena\": [64, 0], \"kernels\": 1, \"args\": ["
    "    {\"name\": \"x\", \"role\": \"input\", " SPEC_X "},"
    "    {\"name\": \"label\", \"role\": \"input\", " SPEC_X "}," PARAMS_ARGS
    "    {\"name\": \"loss\", \"role\": \"output\", \"dtype\": \"f32\", \"shape\": []}]},"
    "  \"predict\": {\"arena\": [64, 0], \"kernels\": 1, \"args\": ["
    "    {\"name\": \"x\", \"role\": \"input\", " SPEC_X "}," PARAMS_ARGS
    "    {\"name\": \"logits\", \"role\": \"output\", \"dtype\": \"f32\", \"shape\": [-1, 4, 256]}]}},"
    " \"recipe\": {"
    "  \"data\": {\"call\": \"text\", \"args\": [\"train.txt\"], \"kwargs\": {\"stride\": 2}},"
    "  \"batch\": 3, \"epochs\": 2,"
    "  \"optimizer\": {\"call\": \"SGD\", \"args\": [], \"kwargs\": {\"lr\": 0.1, \"momentum\": 0.9}}}}";

/* what the train graph saw */
static int64_t seen_seed, seen_steps[64], nsteps, label_pairs, label_mismatches;

static void seq_train(void **args, int64_t n, uint8_t *arena) {
    const int64_t *x = args[0], *y = args[1];
    for (int64_t i = 0; i < n; i++)
        for (int t = 0; t < 3; t++) { /* label t is the byte after input t, which is input t + 1 */
            label_pairs++;
            label_mismatches += y[i * 4 + t] != x[i * 4 + t + 1];
        }
    int64_t step = *(int64_t *)args[3];
    seen_seed = *(int64_t *)args[4];
    if (nsteps < 64)
        seen_steps[nsteps++] = step;
    *(int64_t *)args[7] += 1;     /* num_batches_tracked, as BatchNorm's train step does */
    ((float *)args[6])[0] += 0.5f; /* running_mean */
    ((float *)args[8])[0] += 1.0f; /* the momentum buffer counts steps */
    *(float *)args[9] = 1.0f / (float)(1 + step);
}

static void seq_eval(void **args, int64_t n, uint8_t *arena) { *(float *)args[5] = 0.5f; }

/* predicts that each byte is followed by the next one */
static void seq_predict(void **args, int64_t n, uint8_t *arena) {
    const int64_t *x = args[0];
    float *logits = args[4];
    memset(logits, 0, (size_t)n * 4 * 256 * sizeof *logits);
    for (int64_t i = 0; i < n * 4; i++)
        logits[i * 256 + (x[i] + 1) % 256] = 1;
}

static int setup(void **state) {
    ts_setup_dir(state);
    char p[512];
    write_bytes(tmp_path(p, sizeof p, ts_dir, "train.txt"), "abcdefghijklmnopqrstuvwxyz", 26);
    write_bytes(tmp_path(p, sizeof p, ts_dir, "test.txt"), "0123456789", 10);
    nsteps = label_pairs = label_mismatches = 0;
    return 0;
}

static int run(char **out, char **err, const char *const *args) {
    return run_driver_with(seq_manifest, seq_train, seq_eval, seq_predict, out, err, args);
}

/* 26 bytes, context 4, stride 2: (26 - 5) / 2 + 1 = 11 samples, 4 batches of 3 an epoch */
static void test_text_labels_are_the_next_bytes(void **state) {
    const char *args[] = {"train", "--data", ts_dir, "--epochs", "1", NULL};
    assert_int_equal(run(NULL, NULL, args), 0);
    assert_int_equal(label_pairs, 11 * 3);
    assert_int_equal(label_mismatches, 0);
}

static void test_seed_and_step_bound_for_each_call(void **state) {
    const char *args[] = {"train", "--data", ts_dir, "--seed", "1152921504606846977", NULL}; /* 2^60 + 1 */
    assert_int_equal(run(NULL, NULL, args), 0);
    assert_true(seen_seed == 1152921504606846977ll); /* not rounded through a double */
    assert_int_equal(nsteps, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(seen_steps[i], i);
}

static void test_training_without_test_set_says_nothing_about_evaluation(void **state) {
    char log[512];
    tmp_path(log, sizeof log, ts_dir, "log.jsonl");
    char *out;
    const char *args[] = {"train", "--data", ts_dir, "--log-json", log, NULL};
    assert_int_equal(run(&out, NULL, args), 0);
    assert_contains(out, "Done!");
    assert_null(strstr(out, "Test Error"));
    assert_null(strstr(out, "Accuracy"));
    char *text = read_text(log);
    assert_contains(text, "\"train_loss\"");
    assert_null(strstr(text, "test_loss"));
    assert_null(strstr(text, "test_accuracy"));
    free(text);
    free(out);
}

static void test_evaluation_without_correct_reports_loss_only(void **state) {
    char *out;
    const char *args[] = {"train", "--data", ts_dir, "--set", "epochs=1", NULL};
    /* a test set through --set is not possible (a call); give the model one by its recipe instead */
    char manifest[sizeof seq_manifest + 128];
    snprintf(manifest, sizeof manifest, "%.*s, \"test\": {\"call\": \"text\", \"args\": [\"test.txt\"], "
             "\"kwargs\": {}}}}", (int)(sizeof seq_manifest - 3), seq_manifest);
    assert_int_equal(run_driver_with(manifest, seq_train, seq_eval, seq_predict, &out, NULL, args), 0);
    assert_contains(out, "Test Error: \n Avg loss: 0.500000 \n");
    assert_null(strstr(out, "Accuracy"));
    free(out);
}

static void test_buffers_and_momentum_saved_and_restored(void **state) {
    char ck[512], path[600];
    tmp_path(ck, sizeof ck, ts_dir, "ck");
    const char *a1[] = {"train", "--data", ts_dir, "--epochs", "1", "--checkpoint-dir", ck, NULL};
    assert_int_equal(run(NULL, NULL, a1), 0);
    snprintf(path, sizeof path, "%s/last.safetensors", ck);
    const char *a2[] = {"train", "--data", ts_dir, "--epochs", "2", "--resume", path, "--checkpoint-dir", ck, NULL};
    assert_int_equal(run(NULL, NULL, a2), 0);
    assert_int_equal(seen_steps[nsteps - 1], 7); /* the resumed run went on from step 4 */

    float emb[8], mean[2], mom[8];
    int64_t tracked = -1;
    RtTensor ts[4] = {
        {.name = "emb", .dtype = RT_F32, .rank = 1, .shape = {8}, .data = emb},
        {.name = "bn.running_mean", .dtype = RT_F32, .rank = 1, .shape = {2}, .data = mean},
        {.name = "bn.num_batches_tracked", .dtype = RT_I64, .rank = 0, .data = &tracked},
        {.name = "optimizer.emb.momentum_buffer", .dtype = RT_F32, .rank = 1, .shape = {8}, .data = mom},
    };
    RtErr e;
    if (rt_st_load(path, ts, 4, NULL, 0, NULL, &e) != RT_OK)
        fail_msg("%s", e.msg);
    assert_int_equal(tracked, 8);      /* 4 steps, then 4 more after the resume */
    assert_true(mean[0] == 1.0f + 4);  /* initialised to ones, then + 0.5 a step */
    assert_true(mean[1] == 1.0f);
    assert_true(mom[0] == 8.0f && mom[1] == 0.0f); /* state starts at zero */
}

static void test_buffer_manifest_entries_parsed(void **state) {
    RtManifest m;
    RtErr e;
    assert_int_equal(rt_manifest_parse(&m, seq_manifest, &e), RT_OK);
    assert_false(m.params[0].buffer);
    assert_true(m.params[0].trainable);
    assert_true(m.params[2].buffer);
    assert_false(m.params[2].trainable);
    assert_int_equal(m.params[2].t.dtype, RT_I64);
    assert_int_equal(m.params[2].t.rank, 0);
    RtModel md;
    assert_int_equal(rt_model_init(&md, &m, 3, &e), RT_OK);
    assert_int_equal(*(int64_t *)md.params[2], 0);
    assert_true(((float *)md.params[1])[1] == 1.0f);
    assert_int_equal(md.nstate, 1);
    rt_model_free(&md);
    rt_manifest_free(&m);
}

static void test_info_lists_buffers_apart(void **state) {
    char *out;
    const char *args[] = {"info", NULL};
    assert_int_equal(run(&out, NULL, args), 0);
    assert_contains(out, "buffers:\n");
    assert_contains(out, "bn.num_batches_tracked");
    assert_contains(out, "i64[]");
    assert_contains(out, "total parameters: 8\n"); /* emb only */
    assert_contains(out, "total buffer values: 3\n");
    assert_true(strstr(out, "buffers:") < strstr(out, "bn.running_mean"));
    free(out);
}

static void test_predict_on_text_names_the_next_character(void **state) {
    char ck[512], path[600];
    tmp_path(ck, sizeof ck, ts_dir, "ckp");
    const char *a1[] = {"train", "--data", ts_dir, "--epochs", "1", "--checkpoint-dir", ck, NULL};
    assert_int_equal(run(NULL, NULL, a1), 0);
    snprintf(path, sizeof path, "%s/last.safetensors", ck);
    char manifest[sizeof seq_manifest + 128];
    snprintf(manifest, sizeof manifest, "%.*s, \"test\": {\"call\": \"text\", \"args\": [\"test.txt\"], "
             "\"kwargs\": {}}}}", (int)(sizeof seq_manifest - 3), seq_manifest);
    char *out;
    const char *a2[] = {"predict", "--data", ts_dir, "--weights", path, "--index", "1", NULL};
    assert_int_equal(run_driver_with(manifest, seq_train, seq_eval, seq_predict, &out, NULL, a2), 0);
    /* sample 1 of "0123456789" with context 4 and stride 4: "4567", then "8" */
    assert_contains(out, "Predicted: \"8\", Actual: \"8\"");
    free(out);
}

static void test_seed_input_of_wrong_type_is_error(void **state) {
    RtManifest m;
    RtErr e;
    assert_int_equal(rt_manifest_parse(&m, seq_manifest, &e), RT_OK);
    m.train.fn = seq_train;
    m.train.args[4].dtype = RT_F32;
    RtConfig cfg = {.recipe = m.recipe, .batch = 3, .lr = 0.1, .has_lr = true};
    RtModel md;
    RtBinding b;
    assert_int_equal(rt_model_init(&md, &m, 0, &e), RT_OK);
    assert_int_equal(rt_bind(&b, &md, &m.train, &cfg, 3, &e), RT_ERR);
    assert_contains(e.msg, "input 'seed' must be i64[]");
    rt_unbind(&b);
    rt_model_free(&md);
    rt_manifest_free(&m);
}

/* ---- a regression on csv(..., regression = true): x f32[N, 1], label f32[N, 1], loss only */

static const char reg_manifest[] =
    "{\"model\": \"FakeRegression\", \"hash\": \"0\","
    " \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 1]},"
    "              {\"name\": \"label\", \"dtype\": \"f32\", \"shape\": [-1, 1]}],"
    " \"params\": [],"
    " \"graphs\": {\"train\": {\"arena\": [64, 0], \"kernels\": 1, \"args\": ["
    "    {\"name\": \"x\", \"role\": \"input\", \"dtype\": \"f32\", \"shape\": [-1, 1]},"
    "    {\"name\": \"label\", \"role\": \"input\", \"dtype\": \"f32\", \"shape\": [-1, 1]},"
    "    {\"name\": \"loss\", \"role\": \"output\", \"dtype\": \"f32\", \"shape\": []}]}},"
    " \"recipe\": {\"data\": {\"call\": \"csv\", \"args\": [\"lin.csv\"], \"kwargs\": {\"regression\": true}},"
    "  \"optimizer\": {\"call\": \"SGD\", \"args\": [], \"kwargs\": {\"lr\": 0.1}},"
    "  \"batch\": 2, \"epochs\": 1}}";

static double label_sum, x_sum;

static void reg_train(void **args, int64_t n, uint8_t *arena) {
    for (int64_t i = 0; i < n; i++) {
        x_sum += ((float *)args[0])[i];
        label_sum += ((float *)args[1])[i];
    }
    *(float *)args[2] = 0;
}

static void test_csv_regression_labels_reach_the_graph_as_values(void **state) {
    char p[512];
    write_bytes(tmp_path(p, sizeof p, ts_dir, "lin.csv"), "x,y\n1,2.5\n2,4.5\n3,6.25\n", 23);
    label_sum = x_sum = 0;
    char *out;
    const char *args[] = {"train", "--data", ts_dir, NULL};
    assert_int_equal(run_driver_with(reg_manifest, reg_train, NULL, NULL, &out, NULL, args), 0);
    assert_true(x_sum == 6);
    assert_true(label_sum == 13.25);
    assert_null(strstr(out, "Test Error"));
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_text_labels_are_the_next_bytes, setup, ts_teardown_dir),
        cmocka_unit_test_setup_teardown(test_seed_and_step_bound_for_each_call, setup, ts_teardown_dir),
        cmocka_unit_test_setup_teardown(test_training_without_test_set_says_nothing_about_evaluation, setup,
                                        ts_teardown_dir),
        cmocka_unit_test_setup_teardown(test_evaluation_without_correct_reports_loss_only, setup, ts_teardown_dir),
        cmocka_unit_test_setup_teardown(test_buffers_and_momentum_saved_and_restored, setup, ts_teardown_dir),
        cmocka_unit_test_setup_teardown(test_buffer_manifest_entries_parsed, setup, ts_teardown_dir),
        cmocka_unit_test_setup_teardown(test_info_lists_buffers_apart, setup, ts_teardown_dir),
        cmocka_unit_test_setup_teardown(test_predict_on_text_names_the_next_character, setup, ts_teardown_dir),
        cmocka_unit_test_setup_teardown(test_seed_input_of_wrong_type_is_error, setup, ts_teardown_dir),
        cmocka_unit_test_setup_teardown(test_csv_regression_labels_reach_the_graph_as_values, setup,
                                        ts_teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
