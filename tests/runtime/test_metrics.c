/* test_metrics.c: the runtime's metrics (runtime/metrics.c) on small examples worked out by hand: a 3-class
   confusion matrix with its precision, recall and F1 per class and macro, top-k with ties, ignored labels,
   [N, T, C] tokens, regression, two batches against one batch of both, a class never predicted and a class
   absent altogether, the JSON and the console line, and the recipe's mistakes. */
#include "support.h"

#include "metrics.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Opens m on the recipe's metrics; the recipe is kept in *keep (the spec borrows custom names from it). */
static void open_ok(RtMetrics *m, const char *text, int64_t classes, bool regression, json_t **keep) {
    RtMetricSpec s;
    RtErr e = {{0}};
    *keep = ts_json(text);
    if (rt_metrics_parse(*keep, classes, regression, NULL, &s, &e) != RT_OK)
        fail_msg("'%s' refused: %s", text, e.msg);
    if (rt_metrics_open(m, &s, classes, regression, &e) != RT_OK)
        fail_msg("open: %s", e.msg);
}

static void expect_metric(const RtMetrics *m, const char *name, double want) {
    double got = rt_metrics_value(m, name);
    if (!(fabs(got - want) <= 1e-12))
        fail_msg("%s: got %.17g, want %.17g", name, got, want);
}

/* logits [N, C] f32 whose largest entry is pred[i] (2.0; the others 0.5 and below) */
static void one_hot_logits(float *x, const int64_t *pred, int64_t n, int64_t c) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < c; j++)
            x[i * c + j] = j == pred[i] ? 2.0f : 0.5f - 0.1f * (float)j;
}

static const RtTensorSpec logits3 = {.name = "logits", .dtype = RT_F32, .rank = 2, .shape = {-1, 3}};
static const RtTensorSpec labels_i64 = {.name = "label", .dtype = RT_I64, .rank = 1, .shape = {-1}};

/* The 3-class example: true 0 -> 0, 0, 1; true 1 -> 1, 2, 2; true 2 -> 2, 0.
   confusion [[2, 1, 0], [0, 1, 2], [1, 0, 1]]; tp [2, 1, 1], true [3, 3, 2], predicted [3, 2, 3];
   precision [2/3, 1/2, 1/3] (macro 1/2), recall [2/3, 1/3, 1/2] (macro 1/2),
   F1 = 2tp / (2tp + fp + fn) = [4/6, 2/5, 2/5] (macro 22/45); accuracy 4/8. */
static const int64_t ex_true[8] = {0, 0, 0, 1, 1, 1, 2, 2};
static const int64_t ex_pred[8] = {0, 0, 1, 1, 2, 2, 2, 0};

static void feed_example(RtMetrics *m, int64_t from, int64_t to, double loss) {
    float x[8 * 3];
    one_hot_logits(x, ex_pred + from, to - from, 3);
    rt_metrics_batch(m, &logits3, x, &labels_i64, ex_true + from, to - from, loss);
}

static void expect_per_class(json_t *o, const char *key, const double *want, int n) {
    json_t *a = json_object_get(o, key);
    if (!json_is_array(a) || json_array_size(a) != (size_t)n)
        fail_msg("%s is not an array of %d", key, n);
    for (int i = 0; i < n; i++)
        if (!(fabs(json_real_value(json_array_get(a, (size_t)i)) - want[i]) <= 1e-12))
            fail_msg("%s[%d]: got %g, want %g", key, i, json_real_value(json_array_get(a, (size_t)i)), want[i]);
}

static void test_metrics_confusion_precision_recall_f1(void **state) {
    RtMetrics m;
    json_t *r;
    open_ok(&m, "{\"metrics\": [{\"ident\": \"accuracy\"}, {\"ident\": \"precision\"}, {\"ident\": \"recall\"}, "
                "{\"ident\": \"f1\"}, {\"ident\": \"confusion_matrix\"}]}", 3, false, &r);
    feed_example(&m, 0, 8, 0.25);
    expect_metric(&m, "accuracy", 0.5);
    expect_metric(&m, "precision", 0.5);
    expect_metric(&m, "recall", 0.5);
    expect_metric(&m, "f1", 22.0 / 45);
    expect_metric(&m, "loss", 0.25);
    json_t *o = json_object();
    rt_metrics_json(&m, o, "test_");
    expect_per_class(o, "test_precision_per_class", (const double[]){2.0 / 3, 0.5, 1.0 / 3}, 3);
    expect_per_class(o, "test_recall_per_class", (const double[]){2.0 / 3, 1.0 / 3, 0.5}, 3);
    expect_per_class(o, "test_f1_per_class", (const double[]){4.0 / 6, 0.4, 0.4}, 3);
    char *cm = json_dumps(json_object_get(o, "test_confusion_matrix"), JSON_COMPACT);
    assert_string_equal(cm, "[[2,1,0],[0,1,2],[1,0,1]]");
    free(cm);
    assert_true(fabs(json_real_value(json_object_get(o, "test_accuracy")) - 0.5) < 1e-15);
    assert_true(fabs(json_real_value(json_object_get(o, "test_loss")) - 0.25) < 1e-15);
    json_decref(o);
    rt_metrics_close(&m);
    json_decref(r);
}

static void test_metrics_top_k_with_ties(void **state) {
    /* label's rank (the classes above it; among equal logits the lower class first):
       row 0: label 2 below 0.9 -> rank 1; row 1: label 1 ties class 0 -> rank 1; row 2: label 1 -> rank 3;
       row 3: label 0 -> rank 0; row 4: all equal, label 3 -> rank 3.
       accuracy 1/5, top2 3/5, top4 5/5 */
    const float x[5 * 4] = {0.1f, 0.9f, 0.5f, 0.2f, 0.3f, 0.3f, 0.1f, 0.0f, 0.7f, 0.1f, 0.2f, 0.6f,
                            1.0f, 0.0f, 0.0f, 0.0f, 0.5f, 0.5f, 0.5f, 0.5f};
    const int32_t y[5] = {2, 1, 1, 0, 3};
    const RtTensorSpec ls = {.name = "logits", .dtype = RT_F32, .rank = 2, .shape = {-1, 4}};
    const RtTensorSpec ys = {.name = "label", .dtype = RT_I32, .rank = 1, .shape = {-1}};
    RtMetrics m;
    json_t *r;
    open_ok(&m, "{\"metrics\": [{\"ident\": \"accuracy\"}, {\"call\": \"top_k\", \"args\": [2]}, "
                "{\"call\": \"top_k\", \"kwargs\": {\"k\": 4}}]}", 4, false, &r);
    rt_metrics_batch(&m, &ls, x, &ys, y, 5, 1.0);
    expect_metric(&m, "accuracy", 0.2);
    expect_metric(&m, "top2_accuracy", 0.6);
    expect_metric(&m, "top4_accuracy", 1.0);
    assert_true(isnan(rt_metrics_value(&m, "top3_accuracy")));
    rt_metrics_close(&m);
    json_decref(r);
}

static void test_metrics_ignored_labels_are_skipped(void **state) {
    /* f64 logits; labels -100 and 3 (== classes) skipped: 2 counted, 1 right */
    const double x[4 * 3] = {1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1};
    const int32_t y[4] = {0, -100, 2, 3};
    const RtTensorSpec ls = {.name = "logits", .dtype = RT_F64, .rank = 2, .shape = {-1, 3}};
    const RtTensorSpec ys = {.name = "label", .dtype = RT_I32, .rank = 1, .shape = {-1}};
    RtMetrics m;
    json_t *r;
    open_ok(&m, "{\"metrics\": [{\"ident\": \"accuracy\"}, {\"ident\": \"recall\"}]}", 3, false, &r);
    rt_metrics_batch(&m, &ls, x, &ys, y, 4, 2.0);
    assert_int_equal(m.counted, 2);
    expect_metric(&m, "accuracy", 0.5);
    /* class 0 recall 1, class 2 recall 0 (predicted 1); class 1 predicted once: recall 0/0 = 0, counted */
    expect_metric(&m, "recall", 1.0 / 3);
    expect_metric(&m, "loss", 2.0);
    rt_metrics_close(&m);
    json_decref(r);
}

static void test_metrics_tokens_n_t_c(void **state) {
    /* [N=2, T=3, C=2] with labels [2, 3] (u8 and i64): every position a sample */
    const float x[2 * 3 * 2] = {1, 0, 0, 1, 1, 0, /* predictions 0 1 0 */ 0, 1, 0, 1, 1, 0 /* 1 1 0 */};
    const uint8_t y8[6] = {0, 0, 0, 1, 1, 1};      /* right: 1, 0, 1, 1, 1, 0 -> 4 / 6 */
    const int64_t y64[6] = {0, -100, 0, 1, 1, -100}; /* right: 1, -, 1, 1, 1, - -> 4 / 4 */
    const RtTensorSpec ls = {.name = "logits", .dtype = RT_F32, .rank = 3, .shape = {-1, 3, 2}};
    const RtTensorSpec ys8 = {.name = "label", .dtype = RT_U8, .rank = 2, .shape = {-1, 3}};
    const RtTensorSpec ys64 = {.name = "label", .dtype = RT_I64, .rank = 2, .shape = {-1, 3}};
    RtMetrics m;
    json_t *r;
    open_ok(&m, "{}", 2, false, &r); /* the default: [accuracy] */
    rt_metrics_batch(&m, &ls, x, &ys8, y8, 2, 1.0);
    assert_int_equal(m.counted, 6);
    expect_metric(&m, "accuracy", 4.0 / 6);
    rt_metrics_reset(&m);
    assert_true(isnan(rt_metrics_value(&m, "accuracy")));
    rt_metrics_batch(&m, NULL, NULL, NULL, NULL, 2, 3.0); /* a graph without logits: the loss alone */
    assert_true(isnan(rt_metrics_value(&m, "accuracy")));
    expect_metric(&m, "loss", 3.0);
    rt_metrics_reset(&m);
    rt_metrics_batch(&m, &ls, x, &ys64, y64, 2, 1.0);
    assert_int_equal(m.counted, 4);
    expect_metric(&m, "accuracy", 1.0);
    rt_metrics_close(&m);
    json_decref(r);
}

static void test_metrics_regression_mae_mse(void **state) {
    /* outputs [3, 2] against labels: differences 0.5, -1, 0, 2, -0.5, 1 -> |d| 5 / 6, d^2 6.5 / 6 */
    const float out[6] = {1.5f, 2.0f, 3.0f, 6.0f, 0.0f, 1.0f};
    const float lab[6] = {1.0f, 3.0f, 3.0f, 4.0f, 0.5f, 0.0f};
    const double lab64[6] = {1.0, 3.0, 3.0, 4.0, 0.5, 0.0};
    const RtTensorSpec ls = {.name = "logits", .dtype = RT_F32, .rank = 2, .shape = {-1, 2}};
    const RtTensorSpec ys = {.name = "label", .dtype = RT_F32, .rank = 2, .shape = {-1, 2}};
    const RtTensorSpec ys64 = {.name = "label", .dtype = RT_F64, .rank = 2, .shape = {-1, 2}};
    RtMetrics m;
    json_t *r;
    open_ok(&m, "{\"metrics\": [{\"ident\": \"mae\"}, {\"ident\": \"mse\"}]}", 2, true, &r);
    rt_metrics_batch(&m, &ls, out, &ys, lab, 3, 0.75);
    expect_metric(&m, "mae", 5.0 / 6);
    expect_metric(&m, "mse", 6.5 / 6);
    rt_metrics_reset(&m);
    rt_metrics_batch(&m, &ls, out, &ys64, lab64, 2, 0.75); /* the first 2 samples: 0.5, 1, 0, 2 */
    expect_metric(&m, "mae", 3.5 / 4);
    expect_metric(&m, "mse", 5.25 / 4);
    assert_true(isnan(rt_metrics_value(&m, "accuracy")));
    rt_metrics_close(&m);
    json_decref(r);
}

static void test_metrics_two_batches_equal_one(void **state) {
    const char *text = "{\"metrics\": [{\"ident\": \"accuracy\"}, {\"call\": \"top_k\", \"args\": [2]}, "
                       "{\"ident\": \"precision\"}, {\"ident\": \"recall\"}, {\"ident\": \"f1\"}]}";
    RtMetrics one, two;
    json_t *r1, *r2;
    open_ok(&one, text, 3, false, &r1);
    open_ok(&two, text, 3, false, &r2);
    feed_example(&one, 0, 8, 0.625);
    feed_example(&two, 0, 5, 0.5); /* a batch mean of 0.5 over 5 and of 0.833.. over 3: 0.625 over 8 */
    feed_example(&two, 5, 8, 2.5 / 3);
    const char *names[] = {"loss", "accuracy", "top2_accuracy", "precision", "recall", "f1"};
    for (int i = 0; i < 6; i++) {
        double a = rt_metrics_value(&one, names[i]), b = rt_metrics_value(&two, names[i]);
        if (!(fabs(a - b) <= 1e-15))
            fail_msg("%s: one batch %.17g, two batches %.17g", names[i], a, b);
    }
    expect_metric(&two, "f1", 22.0 / 45);
    rt_metrics_close(&one);
    rt_metrics_close(&two);
    json_decref(r1);
    json_decref(r2);
}

static void test_metrics_never_predicted_counts_zero_absent_left_out(void **state) {
    /* 4 classes: true 0 -> 0, 0; true 1 -> 0; true 2 -> 2; class 3 never seen nor predicted.
       tp [2, 0, 1, 0], true [2, 1, 1, 0], predicted [3, 0, 1, 0].
       precision [2/3, 0 (0/0, class 1 has a true sample: counts), 1, -]: macro (2/3 + 0 + 1) / 3 = 5/9;
       recall [1, 0, 1, -]: 2/3; F1 [4/5, 0, 1, -]: 3/5 (torchmetrics leaves class 3 out of the average) */
    const int64_t pred[4] = {0, 0, 0, 2}, y[4] = {0, 0, 1, 2};
    float x[4 * 4];
    one_hot_logits(x, pred, 4, 4);
    const RtTensorSpec ls = {.name = "logits", .dtype = RT_F32, .rank = 2, .shape = {-1, 4}};
    RtMetrics m;
    json_t *r;
    open_ok(&m, "{\"metrics\": [{\"ident\": \"precision\"}, {\"ident\": \"recall\"}, {\"ident\": \"f1\"}]}", 4, false,
            &r);
    rt_metrics_batch(&m, &ls, x, &labels_i64, y, 4, 1.0);
    expect_metric(&m, "precision", 5.0 / 9);
    expect_metric(&m, "recall", 2.0 / 3);
    expect_metric(&m, "f1", 0.6);
    json_t *o = json_object();
    rt_metrics_json(&m, o, "");
    expect_per_class(o, "precision_per_class", (const double[]){2.0 / 3, 0, 1, 0}, 4);
    json_decref(o);
    rt_metrics_close(&m);
    json_decref(r);
}

static void test_metrics_json_and_line(void **state) {
    RtMetrics m;
    json_t *r;
    open_ok(&m, "{\"metrics\": [{\"ident\": \"accuracy\"}, {\"call\": \"top_k\", \"args\": [2]}, {\"ident\": \"f1\"}]}",
            3, false, &r);
    json_t *o = json_object();
    rt_metrics_json(&m, o, "val_"); /* nothing fed: null, as JSON has no NaN */
    assert_true(json_is_null(json_object_get(o, "val_loss")) && json_is_null(json_object_get(o, "val_accuracy")));
    json_decref(o);
    feed_example(&m, 0, 8, 0.625);
    char line[256];
    rt_metrics_line(&m, line, sizeof line);
    /* top-2 of the example: a wrong row's label has logit 0.5 - 0.1 c under the prediction's 2.0, so its rank
       is 1 plus the other classes above it: (true 0, pred 1): 0.5 over 0.3 -> rank 1, in the top 2;
       (1, 2) twice: 0.4 under class 0's 0.5 -> rank 2; (2, 0): 0.3 under 0.4 -> rank 2. top2 = (4 + 1) / 8 */
    assert_string_equal(line, "loss 0.6250, accuracy 50.0%, top2_accuracy 62.5%, f1 0.489");
    char small[12];
    rt_metrics_line(&m, small, sizeof small);
    assert_string_equal(small, "loss 0.6250");
    rt_metrics_close(&m);
    json_decref(r);
}

static void test_metrics_custom_from_the_graph(void **state) {
    RtTensorSpec args[2] = {{.name = "loss", .role = RT_ROLE_OUTPUT}, {.name = "metric.bleu", .role = RT_ROLE_OUTPUT}};
    RtGraph g = {.present = true, .name = "eval", .nargs = 2, .args = args};
    json_t *rec = ts_json("{\"metrics\": [{\"ident\": \"accuracy\"}, {\"ident\": \"bleu\"}]}");
    RtMetricSpec s;
    RtErr e = {{0}};
    assert_int_equal(rt_metrics_parse(rec, 3, false, &g, &s, &e), RT_OK);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.kind[1], RT_METRIC_CUSTOM);
    RtMetrics m;
    assert_int_equal(rt_metrics_open(&m, &s, 3, false, &e), RT_OK);
    rt_metrics_custom(&m, 1, 0.5, 3);
    rt_metrics_custom(&m, 1, 1.0, 1);
    expect_metric(&m, "bleu", 2.5 / 4);
    rt_metrics_close(&m);
    json_decref(rec);
    /* a misspelt one suggests the graph's */
    rec = ts_json("{\"metrics\": [{\"ident\": \"blue\"}]}");
    assert_int_equal(rt_metrics_parse(rec, 3, false, &g, &s, &e), RT_ERR);
    assert_non_null(strstr(e.msg, "unknown metric 'blue' (did you mean 'bleu'?)"));
    json_decref(rec);
}

static void test_metrics_parse_defaults_and_duplicates(void **state) {
    RtMetricSpec s;
    RtErr e;
    json_t *rec = ts_json("{}");
    assert_int_equal(rt_metrics_parse(rec, 10, false, NULL, &s, &e), RT_OK);
    assert_true(s.n == 1 && s.kind[0] == RT_METRIC_ACCURACY);
    assert_int_equal(rt_metrics_parse(rec, 0, true, NULL, &s, &e), RT_OK);
    assert_true(s.n == 1 && s.kind[0] == RT_METRIC_MAE);
    json_decref(rec);
    rec = ts_json("{\"metrics\": [{\"ident\": \"f1\"}, {\"call\": \"top_k\", \"args\": [5]}, {\"ident\": \"f1\"}, "
                  "{\"call\": \"top_k\", \"args\": [5]}, {\"call\": \"top_k\", \"args\": [10]}]}");
    assert_int_equal(rt_metrics_parse(rec, 10, false, NULL, &s, &e), RT_OK);
    assert_int_equal(s.n, 3);
    assert_true(s.kind[0] == RT_METRIC_F1 && s.k[1] == 5 && s.k[2] == 10);
    json_decref(rec);
}

static void expect_error(const char *text, int64_t classes, bool regression, const char *part) {
    RtMetricSpec s;
    RtErr e = {{0}};
    json_t *rec = ts_json(text);
    assert_int_equal(rt_metrics_parse(rec, classes, regression, NULL, &s, &e), RT_ERR);
    if (!strstr(e.msg, part) || strncmp(e.msg, "recipe key metrics: ", 20) != 0)
        fail_msg("'%s': message '%s' does not contain '%s' after the key", text, e.msg, part);
    json_decref(rec);
}

static void test_metrics_parse_errors(void **state) {
    expect_error("{\"metrics\": [{\"ident\": \"acuracy\"}]}", 10, false, "unknown metric 'acuracy' (did you mean 'accuracy'?)");
    expect_error("{\"metrics\": [{\"ident\": \"topk\"}]}", 10, false, "did you mean 'top_k'?");
    expect_error("{\"metrics\": [{\"ident\": \"perplexity\"}]}", 10, false, "unknown metric 'perplexity' (the runtime");
    expect_error("{\"metrics\": [{\"call\": \"top_k\", \"args\": [0]}]}", 10, false, "k must be an integer of at least 1");
    expect_error("{\"metrics\": [{\"call\": \"top_k\", \"args\": [11]}]}", 10, false, "top_k(11) needs k of at most the 10");
    expect_error("{\"metrics\": [{\"ident\": \"top_k\"}]}", 10, false, "top_k needs k");
    expect_error("{\"metrics\": [{\"call\": \"top_k\", \"kwargs\": {\"kk\": 2}}]}", 10, false, "top_k needs k");
    expect_error("{\"metrics\": [{\"call\": \"top_k\", \"args\": [2, 3]}]}", 10, false, "at most 1 positional");
    expect_error("{\"metrics\": [{\"call\": \"accuracy\", \"args\": [2]}]}", 10, false, "accuracy takes no arguments");
    expect_error("{\"metrics\": [{\"ident\": \"mae\"}]}", 10, false, "mae is a regression metric, and this model's labels are classes");
    expect_error("{\"metrics\": [{\"ident\": \"f1\"}]}", 0, true, "f1 is a classification metric, and this model's labels are values");
    expect_error("{\"metrics\": [{\"call\": \"top_k\", \"args\": [2]}]}", 0, true, "top_k is a classification metric");
    expect_error("{\"metrics\": [{\"ident\": \"confusion_matrix\"}]}", 50257, false, "confusion_matrix is kept for at most");
    expect_error("{\"metrics\": \"accuracy\"}", 10, false, "must be a list");
    expect_error("{\"metrics\": [3]}", 10, false, "item 1 must be a metric");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_confusion_precision_recall_f1),
        cmocka_unit_test(test_metrics_top_k_with_ties),
        cmocka_unit_test(test_metrics_ignored_labels_are_skipped),
        cmocka_unit_test(test_metrics_tokens_n_t_c),
        cmocka_unit_test(test_metrics_regression_mae_mse),
        cmocka_unit_test(test_metrics_two_batches_equal_one),
        cmocka_unit_test(test_metrics_never_predicted_counts_zero_absent_left_out),
        cmocka_unit_test(test_metrics_json_and_line),
        cmocka_unit_test(test_metrics_custom_from_the_graph),
        cmocka_unit_test(test_metrics_parse_defaults_and_duplicates),
        cmocka_unit_test(test_metrics_parse_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
