/* test_anomaly.c: the runtime's side of --detect-anomaly: a graph's "checks" read from the manifest (and
   manifests without them), lathe_check_finite keeping the first non-finite value until it is taken, the
   message that names the node, and rt_all_finite. */
#include "support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lathe_kern.h"

static const char *manifest_with_checks =
    "{\"model\": \"m\", \"graphs\": {"
    " \"train\": {\"arena\": [0, 0], \"kernels\": 2, \"args\": [], \"checks\": ["
    "   {\"node\": \"%7\", \"op\": \"log\", \"loc\": \"fashion_mlp.lathe:7:13\"},"
    "   {\"node\": \"%42\", \"op\": \"mul\", \"name\": \"grad.fc1.weight\", \"loc\": \"fashion_mlp.lathe:9:9\"}]},"
    " \"eval\": {\"arena\": [0, 0], \"kernels\": 0, \"args\": []}}}";

static int teardown(void **state) {
    rt_anomaly_enable(false);
    return 0;
}

static void test_manifest_checks_parsed(void **state) {
    RtManifest m;
    RtErr e;
    assert_int_equal(rt_manifest_parse(&m, manifest_with_checks, &e), RT_OK);
    assert_int_equal(m.train.nchecks, 2);
    assert_string_equal(m.train.checks[0].node, "%7");
    assert_string_equal(m.train.checks[0].op, "log");
    assert_null(m.train.checks[0].name);
    assert_string_equal(m.train.checks[0].loc, "fashion_mlp.lathe:7:13");
    assert_string_equal(m.train.checks[1].name, "grad.fc1.weight");
    /* a graph (or an older manifest) without checks has none */
    assert_true(m.eval.present);
    assert_int_equal(m.eval.nchecks, 0);
    assert_null(m.eval.checks);
    rt_manifest_free(&m);
}

static void test_manifest_bad_checks_named(void **state) {
    RtManifest m;
    RtErr e;
    assert_int_equal(rt_manifest_parse(&m, "{\"graphs\": {\"grads\": {\"arena\": [0, 0], \"args\": [], \"checks\": 3}}}",
                                       &e), RT_ERR);
    assert_contains(e.msg, "graph 'grads': checks is not a list");
    rt_manifest_free(&m);
    assert_int_equal(rt_manifest_parse(&m, "{\"graphs\": {\"eval\": {\"arena\": [0, 0], \"args\": [], \"checks\": [{}, 1]}}}",
                                       &e), RT_ERR);
    assert_contains(e.msg, "graph 'eval': check 1 is not an object");
    rt_manifest_free(&m);
}

static void test_first_hit_kept_until_taken(void **state) {
    float ok[40], bad[40];
    for (int i = 0; i < 40; i++)
        ok[i] = bad[i] = (float)i - 20;
    bad[17] = NAN;
    bad[30] = INFINITY;
    rt_anomaly_enable(true);
    assert_int_equal(lathe_anomaly_on, 1);
    lathe_check_finite(ok, 40, RT_F32, RT_ANOMALY_TRAIN, 0);
    RtAnomaly a;
    assert_false(rt_anomaly_take(&a));
    lathe_check_finite(bad, 40, RT_F32, RT_ANOMALY_TRAIN, 1);
    assert_int_equal(lathe_anomaly_on, 0); /* the rest of the step skips the checks */
    lathe_check_finite(bad + 20, 20, RT_F32, RT_ANOMALY_TRAIN, 0); /* a later one does not replace it */
    assert_true(rt_anomaly_take(&a));
    assert_int_equal(a.graph, RT_ANOMALY_TRAIN);
    assert_int_equal(a.check, 1);
    assert_int_equal(a.index, 17);
    assert_true(isnan(a.value));
    assert_int_equal(a.step, -1);
    assert_false(rt_anomaly_take(&a));
    assert_int_equal(lathe_anomaly_on, 1); /* on again for the next step */
    lathe_check_finite(bad + 20, 20, RT_F32, RT_ANOMALY_GRADS, 4);
    assert_true(rt_anomaly_take(&a));
    assert_int_equal(a.graph, RT_ANOMALY_GRADS);
    assert_int_equal(a.index, 10);
    assert_true(isinf(a.value) && a.value > 0);
}

static void test_disabled_stays_off(void **state) {
    rt_anomaly_enable(false);
    assert_int_equal(lathe_anomaly_on, 0);
    double bad[3] = {1, -INFINITY, 2};
    lathe_check_finite(bad, 3, RT_F64, RT_ANOMALY_EVAL, 0); /* a direct call still records */
    RtAnomaly a;
    assert_true(rt_anomaly_take(&a));
    assert_int_equal(lathe_anomaly_on, 0); /* and taking it does not turn checking on */
    assert_true(a.value < 0 && isinf(a.value));
}

static void test_message_names_node_op_output_and_line(void **state) {
    RtManifest m;
    RtErr e;
    assert_int_equal(rt_manifest_parse(&m, manifest_with_checks, &e), RT_OK);
    char buf[512];
    RtAnomaly a = {.graph = RT_ANOMALY_TRAIN, .check = 1, .index = 17, .value = NAN, .step = 31};
    rt_anomaly_message(&m, "train", &a, buf, sizeof buf);
    assert_string_equal(buf, "a non-finite value (nan) first appeared in %42 mul (grad.fc1.weight) at "
                             "fashion_mlp.lathe:9:9, element 17, in step 31 of the train graph");
    a = (RtAnomaly){.graph = RT_ANOMALY_TRAIN, .check = 0, .index = 3, .value = -INFINITY, .step = -1};
    rt_anomaly_message(&m, NULL, &a, buf, sizeof buf);
    assert_string_equal(buf, "a non-finite value (-inf) first appeared in %7 log at fashion_mlp.lathe:7:13, "
                             "element 3, in the train graph");
    /* a check the manifest lacks (an older manifest): still the kernel's number and the element */
    a = (RtAnomaly){.graph = RT_ANOMALY_EVAL, .check = 5, .index = 0, .value = INFINITY, .step = 2};
    rt_anomaly_message(&m, NULL, &a, buf, sizeof buf);
    assert_contains(buf, "(inf)");
    assert_contains(buf, "check 5, element 0, in step 2 of the eval graph");
    /* truncated to the buffer, NUL-terminated */
    char small[16];
    rt_anomaly_message(&m, "train", &a, small, sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
    rt_manifest_free(&m);
}

static void test_all_finite(void **state) {
    enum { N = 10000 };
    float *f = calloc(N, sizeof *f);
    double *d = calloc(N, sizeof *d);
    assert_non_null(f);
    assert_non_null(d);
    for (int i = 0; i < N; i++) {
        f[i] = i % 2 ? 3.4e38f : -1e-40f; /* the largest and a subnormal are finite */
        d[i] = i % 2 ? 1.7e308 : -5e-324;
    }
    assert_true(rt_all_finite(RT_F32, f, N));
    assert_true(rt_all_finite(RT_F64, d, N));
    assert_true(rt_all_finite(RT_F32, f, 0));
    f[N - 1] = -INFINITY; /* past the first block */
    d[4097] = NAN;
    assert_false(rt_all_finite(RT_F32, f, N));
    assert_true(rt_all_finite(RT_F32, f, N - 1));
    assert_false(rt_all_finite(RT_F64, d, N));
    int64_t ints[2] = {INT64_MAX, -1};
    assert_true(rt_all_finite(RT_I64, ints, 2));
    free(f);
    free(d);
}

/* The driver's check after a step: a recorded hit first, then the loss, then the gradients. */
static void test_check_run_after_a_step(void **state) {
    RtManifest m;
    RtErr e;
    const char *text =
        "{\"params\": [{\"name\": \"fc.w\", \"dtype\": \"f32\", \"shape\": [3]},"
        "             {\"name\": \"fc.b\", \"dtype\": \"f32\", \"shape\": [2]}],"
        " \"graphs\": {\"grads\": {\"arena\": [0, 0], \"args\": ["
        "   {\"name\": \"loss\", \"role\": \"output\", \"dtype\": \"f32\", \"shape\": []},"
        "   {\"name\": \"grad.fc.w\", \"role\": \"output\", \"dtype\": \"f32\", \"shape\": [3]},"
        "   {\"name\": \"grad.fc.b\", \"role\": \"output\", \"dtype\": \"f32\", \"shape\": [2]}],"
        "  \"checks\": [{\"node\": \"%9\", \"op\": \"sqrt\", \"loc\": \"m.lathe:4:9\"}]}}}";
    assert_int_equal(rt_manifest_parse(&m, text, &e), RT_OK);
    float loss = 0.5f, gw[3] = {1, 2, 3}, gb[2] = {4, 5};
    void *args[3] = {&loss, gw, gb};
    int grad_arg[2] = {1, 2};
    RtBinding b = {.g = &m.grads, .max_n = 4, .args = args, .loss_arg = 0, .grad_arg = grad_arg};
    RtModel md = {.m = &m};
    rt_anomaly_enable(true);
    assert_int_equal(rt_anomaly_check_run(&b, &md, 1, true, true, &e), RT_OK);
    gb[1] = NAN;
    assert_int_equal(rt_anomaly_check_run(&b, &md, 2, true, false, &e), RT_OK); /* gradients not asked */
    assert_int_equal(rt_anomaly_check_run(&b, &md, 2, true, true, &e), RT_ERR);
    assert_string_equal(e.msg, "the gradient of 'fc.b' became nan at element 1 in step 2 of the grads graph "
                               "(--detect-anomaly names the first kernel that made a non-finite value)");
    loss = INFINITY;
    assert_int_equal(rt_anomaly_check_run(&b, &md, 3, true, true, &e), RT_ERR);
    assert_contains(e.msg, "the loss became inf in step 3 of the grads graph");
    /* a kernel's hit comes first, named from the graph's checks */
    float bad[2] = {1, -INFINITY};
    lathe_check_finite(bad, 2, RT_F32, RT_ANOMALY_GRADS, 0);
    assert_int_equal(rt_anomaly_check_run(&b, &md, 4, true, true, &e), RT_ERR);
    assert_string_equal(e.msg, "a non-finite value (-inf) first appeared in %9 sqrt at m.lathe:4:9, element 1, in "
                               "step 4 of the grads graph");
    loss = 0;
    gb[1] = 0;
    assert_int_equal(rt_anomaly_check_run(&b, &md, 5, true, true, &e), RT_OK); /* taken: nothing left */
    rt_manifest_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_manifest_checks_parsed, teardown),
        cmocka_unit_test_teardown(test_manifest_bad_checks_named, teardown),
        cmocka_unit_test_teardown(test_first_hit_kept_until_taken, teardown),
        cmocka_unit_test_teardown(test_disabled_stays_off, teardown),
        cmocka_unit_test_teardown(test_message_names_node_op_output_and_line, teardown),
        cmocka_unit_test_teardown(test_all_finite, teardown),
        cmocka_unit_test_teardown(test_check_run_after_a_step, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
