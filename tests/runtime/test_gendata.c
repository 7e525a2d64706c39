/* test_gendata.c: the generate(n, x, y, noise, seed) source: x from uniform(a, b) or normal(mean, std), y an
   expression of x plus normal noise, the same data for a seed, f32 [n, 1] checked against a regression
   model; the recipe's mistakes named; a training run of the driver on generated data. */
#include "support.h"
#include "rexpr.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* A manifest of x and label into one real value. */
static RtManifest model(const char *x, const char *label) {
    return ts_model(x, label, "\"dtype\": \"f32\", \"shape\": [-1, 1]");
}

static RtManifest regression_model(void) {
    return model("\"dtype\": \"f32\", \"shape\": [-1, 1]", "\"dtype\": \"f32\", \"shape\": [-1, 1]");
}

/* The spec of a recipe call written as JSON text. */
static int parse(const char *json, RtDataSpec *s, json_t **keep, RtErr *e) {
    *keep = ts_json(json);
    RtManifest m = regression_model();
    int rc = rt_data_spec_parse(*keep, &m, "data", s, e);
    rt_manifest_free(&m);
    return rc;
}

static void load_ok(const RtDataSpec *s, RtDataset *d) {
    RtErr e;
    if (rt_dataset_load(d, "", s, &e) != RT_OK)
        fail_msg("%s", e.msg);
}

/* generate(100): x uniform in [0, 10), y = 2 x + 1 exactly (no noise), f32 [n, 1]. */
static void test_generate_defaults_linear_data(void **state) {
    json_t *v;
    RtDataSpec s;
    RtErr e;
    assert_int_equal(parse("{\"call\": \"generate\", \"args\": [100]}", &s, &v, &e), RT_OK);
    assert_int_equal(s.kind, RT_DATA_GENERATE);
    assert_int_equal(s.n, 100);
    assert_false(s.x_normal);
    assert_true(s.xa == 0 && s.xb == 10 && s.noise == 0);
    RtDataset d;
    load_ok(&s, &d);
    assert_int_equal(d.count, 100);
    assert_int_equal(d.per_sample, 1);
    assert_int_equal(d.per_label, 1);
    assert_true(d.regression);
    RtManifest m = regression_model();
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_OK);
    int64_t idx[100];
    for (int i = 0; i < 100; i++)
        idx[i] = i;
    float x[100], y[100], lo = 10, hi = 0;
    rt_dataset_gather(&d, idx, 100, RT_F32, x, RT_F32, y);
    for (int i = 0; i < 100; i++) {
        assert_true(x[i] >= 0 && x[i] < 10);
        assert_true(y[i] == (float)(2.0 * x[i] + 1));
        lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    }
    assert_true(lo < 1 && hi > 9); /* spread over the interval */
    rt_dataset_free(&d);
    rt_manifest_free(&m);
    json_decref(v);
}

/* The same seed gives the same data; another seed other data; the noise changes y, never x. */
static void test_generate_seeded_and_noise_leaves_x(void **state) {
    const char *calls[3] = {
        "{\"call\": \"generate\", \"args\": [50], \"kwargs\": {\"seed\": 7}}",
        "{\"call\": \"generate\", \"args\": [50], \"kwargs\": {\"seed\": 8}}",
        "{\"call\": \"generate\", \"args\": [50], \"kwargs\": {\"seed\": 7, \"noise\": 0.5}}",
    };
    float x[4][50], y[4][50];
    int64_t idx[50];
    for (int i = 0; i < 50; i++)
        idx[i] = i;
    for (int k = 0; k < 4; k++) {
        json_t *v;
        RtDataSpec s;
        RtErr e;
        assert_int_equal(parse(calls[k % 3], &s, &v, &e), RT_OK);
        RtDataset d;
        load_ok(&s, &d);
        rt_dataset_gather(&d, idx, 50, RT_F32, x[k], RT_F32, y[k]);
        rt_dataset_free(&d);
        json_decref(v);
    }
    assert_memory_equal(x[0], x[3], sizeof x[0]); /* seed 7 again */
    assert_memory_equal(y[0], y[3], sizeof y[0]);
    assert_memory_not_equal(x[0], x[1], sizeof x[0]);
    assert_memory_equal(x[0], x[2], sizeof x[0]);
    double sum = 0, sq = 0;
    for (int i = 0; i < 50; i++) {
        double r = y[2][i] - y[0][i];
        sum += r, sq += r * r;
    }
    assert_true(sq > 0);
    double sd = sqrt(sq / 50 - (sum / 50) * (sum / 50));
    assert_true(sd > 0.3 && sd < 0.7);
}

/* x = normal(mean, std) and y an expression tree of the manifest's form, and the same written as text
   through rexpr's parser. */
static void test_generate_normal_x_and_expression_y(void **state) {
    json_t *v;
    RtDataSpec s;
    RtErr e;
    assert_int_equal(parse("{\"call\": \"generate\", \"args\": [2000], \"kwargs\": {"
                           " \"x\": {\"call\": \"normal\", \"args\": [5, 2], \"kwargs\": {}},"
                           " \"y\": {\"call\": \"sub\", \"args\": [{\"call\": \"mul\", \"args\": [{\"ident\": \"x\"},"
                           " {\"ident\": \"x\"}]}, 3]}}}",
                           &s, &v, &e),
                     RT_OK);
    assert_true(s.x_normal && s.xa == 5 && s.xb == 2);
    RtDataset d;
    load_ok(&s, &d);
    const float *x = (const float *)d.images, *y = (const float *)d.labels;
    double sum = 0, sq = 0;
    for (int i = 0; i < 2000; i++) {
        sum += x[i], sq += (double)x[i] * x[i];
        assert_true(y[i] == (float)((double)x[i] * x[i] - 3));
    }
    double mean = sum / 2000, sd = sqrt(sq / 2000 - mean * mean);
    assert_true(fabs(mean - 5) < 0.2);
    assert_true(fabs(sd - 2) < 0.2);
    rt_dataset_free(&d);
    json_decref(v);
    /* the model language's text gives the same tree */
    json_t *expr = rt_rexpr_parse("sin(x) / 2 + 1", &e);
    assert_non_null(expr);
    RtDataSpec t = {.present = true, .kind = RT_DATA_GENERATE, .n = 10, .xa = -1, .xb = 1, .y_expr = expr};
    load_ok(&t, &d);
    x = (const float *)d.images;
    for (int i = 0; i < 10; i++) {
        assert_true(x[i] >= -1 && x[i] < 1);
        assert_true(((const float *)d.labels)[i] == (float)(sin((double)x[i]) / 2 + 1));
    }
    rt_dataset_free(&d);
    json_decref(expr);
}

static void expect_spec_error(const char *json, const char *msg) {
    json_t *v;
    RtDataSpec s;
    RtErr e;
    assert_int_equal(parse(json, &s, &v, &e), RT_ERR);
    assert_contains(e.msg, "recipe key data: ");
    assert_contains(e.msg, msg);
    json_decref(v);
}

static void test_generate_recipe_mistakes(void **state) {
    expect_spec_error("{\"call\": \"generate\", \"args\": []}", "generate needs the sample count n");
    expect_spec_error("{\"call\": \"generate\", \"args\": [0]}", "n must be an integer of at least 1");
    expect_spec_error("{\"call\": \"generate\", \"args\": [10], \"kwargs\": {\"noise\": -1}}",
                      "noise must be a number from 0");
    expect_spec_error("{\"call\": \"generate\", \"args\": [10], \"kwargs\": {\"x\": {\"call\": \"poisson\","
                      " \"args\": [1]}}}",
                      "generate's x must be uniform(a, b) or normal(mean, std)");
    expect_spec_error("{\"call\": \"generate\", \"args\": [10], \"kwargs\": {\"x\": {\"call\": \"uniform\","
                      " \"args\": [1]}}}",
                      "generate's x = uniform(a, b) needs its b");
    expect_spec_error("{\"call\": \"generate\", \"args\": [10], \"kwargs\": {\"x\": {\"call\": \"uniform\","
                      " \"args\": [3, 1]}}}",
                      "generate's x = uniform(3, 1) needs a <= b");
    expect_spec_error("{\"call\": \"generate\", \"args\": [10], \"kwargs\": {\"x\": {\"call\": \"normal\","
                      " \"args\": [0, -1]}}}",
                      "std must be a number from 0");
    expect_spec_error("{\"call\": \"generate\", \"args\": [10], \"kwargs\": {\"y\": {\"call\": \"add\", \"args\": "
                      "[{\"ident\": \"z\"}, 1]}}}",
                      "generate's y: ");
    expect_spec_error("{\"call\": \"generate\", \"args\": [10], \"kwargs\": {\"y\": {\"call\": \"add\", \"args\": "
                      "[{\"ident\": \"z\"}, 1]}}}",
                      "'z'");
    expect_spec_error("{\"call\": \"generate\", \"args\": [10], \"kwargs\": {\"size\": 3}}",
                      "generate(n, x = uniform(0, 10), y = 2 * x + 1, noise = 0, seed = 0) has no argument 'size'");
}

/* y that is not finite at some x (log of a negative) names the sample and its x. */
static void test_generate_non_finite_y_names_sample(void **state) {
    json_t *v;
    RtDataSpec s;
    RtErr e;
    assert_int_equal(parse("{\"call\": \"generate\", \"args\": [10], \"kwargs\": {\"x\": {\"call\": \"uniform\","
                           " \"args\": [-2, -1]}, \"y\": {\"call\": \"log\", \"args\": [{\"ident\": \"x\"}]}}}",
                           &s, &v, &e),
                     RT_OK);
    RtDataset d;
    assert_int_equal(rt_dataset_load(&d, "", &s, &e), RT_ERR);
    assert_contains(e.msg, "generate(n = 10): y ");
    assert_contains(e.msg, "at sample 0 (x = -");
    json_decref(v);
}

static void test_generate_against_model_types(void **state) {
    RtDataSpec s = {.present = true, .kind = RT_DATA_GENERATE, .n = 5, .xb = 1};
    RtDataset d;
    load_ok(&s, &d);
    RtErr e;
    RtManifest m = model("\"dtype\": \"f32\", \"shape\": [-1, 1]", "\"dtype\": \"i64\", \"shape\": [-1]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_ERR);
    assert_contains(e.msg, "generate(n = 5): generate gives real-valued labels, but the model's 'label' is i64[N]");
    rt_manifest_free(&m);
    m = model("\"dtype\": \"f32\", \"shape\": [-1, 2]", "\"dtype\": \"f32\", \"shape\": [-1, 1]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_ERR);
    assert_contains(e.msg, "generate(n = 5) gives x f32[N, 1], but the model's input 'x' is f32[N, 2]");
    rt_manifest_free(&m);
    rt_dataset_free(&d);
}

/* ---------------------------------------------------------------- the driver */

/* y = 2 x + 1 fitted by a Linear(1, 1) in C: w x + b, mean squared error, SGD fused in the train graph. */
static const char reg_manifest[] =
    "{\"lathe\": \"0.1.0\", \"model\": \"Reg\", \"source\": \"reg.lathe\", \"hash\": \"0000000000000001\","
    " \"inputs\": [{\"name\": \"x\", \"dtype\": \"f32\", \"shape\": [-1, 1]},"
    "              {\"name\": \"label\", \"dtype\": \"f32\", \"shape\": [-1, 1]}],"
    " \"params\": [{\"name\": \"w\", \"dtype\": \"f32\", \"shape\": [1], \"init\": {\"kind\": \"zeros\", \"a\": 0,"
    "               \"b\": 0}, \"trainable\": true},"
    "              {\"name\": \"b\", \"dtype\": \"f32\", \"shape\": [1], \"init\": {\"kind\": \"zeros\", \"a\": 0,"
    "               \"b\": 0}, \"trainable\": true}],"
    " \"graphs\": {\"train\": {\"arena\": [0, 0], \"kernels\": 1, \"args\": ["
    "    {\"name\": \"x\", \"role\": \"input\", \"dtype\": \"f32\", \"shape\": [-1, 1]},"
    "    {\"name\": \"label\", \"role\": \"input\", \"dtype\": \"f32\", \"shape\": [-1, 1]},"
    "    {\"name\": \"lr\", \"role\": \"input\", \"dtype\": \"f32\", \"shape\": []},"
    "    {\"name\": \"w\", \"role\": \"param\", \"dtype\": \"f32\", \"shape\": [1]},"
    "    {\"name\": \"b\", \"role\": \"param\", \"dtype\": \"f32\", \"shape\": [1]},"
    "    {\"name\": \"loss\", \"role\": \"output\", \"dtype\": \"f32\", \"shape\": []}]}},"
    " \"recipe\": {\"data\": {\"call\": \"generate\", \"args\": [256], \"kwargs\": {\"x\": {\"call\": \"uniform\","
    "   \"args\": [0, 2], \"kwargs\": {}}, \"y\": {\"call\": \"add\", \"args\": [{\"call\": \"mul\", \"args\": [2,"
    "   {\"ident\": \"x\"}]}, 1]}, \"noise\": 0.01, \"seed\": 3}},"
    "  \"batch\": 16, \"epochs\": 40, \"shuffle\": true,"
    "  \"optimizer\": {\"call\": \"SGD\", \"args\": [], \"kwargs\": {\"lr\": 0.1}}}}";

static float reg_w, reg_b;

static void reg_train(void **args, int64_t n, uint8_t *arena) {
    const float *x = args[0], *y = args[1], lr = *(const float *)args[2];
    float *w = args[3], *b = args[4], *loss = args[5], gw = 0, gb = 0, l = 0;
    for (int64_t i = 0; i < n; i++) {
        float r = w[0] * x[i] + b[0] - y[i];
        l += r * r, gw += 2 * r * x[i], gb += 2 * r;
    }
    w[0] -= lr * gw / (float)n;
    b[0] -= lr * gb / (float)n;
    *loss = l / (float)n;
    reg_w = w[0], reg_b = b[0];
}

static void test_driver_fits_generated_line(void **state) {
    char *out = NULL, *err = NULL;
    const char *args[] = {"train", NULL};
    int status = run_driver_with(reg_manifest, reg_train, NULL, NULL, &out, &err, args);
    if (status != 0)
        fail_msg("%s", err);
    assert_contains(out, "Done!");
    assert_true(fabsf(reg_w - 2) < 0.05f);
    assert_true(fabsf(reg_b - 1) < 0.05f);
    free(out);
    free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_defaults_linear_data),
        cmocka_unit_test(test_generate_seeded_and_noise_leaves_x),
        cmocka_unit_test(test_generate_normal_x_and_expression_y),
        cmocka_unit_test(test_generate_recipe_mistakes),
        cmocka_unit_test(test_generate_non_finite_y_names_sample),
        cmocka_unit_test(test_generate_against_model_types),
        cmocka_unit_test(test_driver_fits_generated_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
