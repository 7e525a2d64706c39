/* test_init.c: parameter initialization from the manifest's init specs: bounds, reproducibility for a
   seed, independence from the order of initialization; the generator's bounded draws. */
#include "support.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static RtParam param(RtInitKind k, double a, double b, int64_t n) {
    RtParam p = {.t = {.name = "p", .dtype = RT_F32, .rank = 1, .shape = {n}}, .init = k, .a = a, .b = b};
    return p;
}

static void test_uniform_init_within_bounds(void **state) {
    RtParam p = param(RT_INIT_UNIFORM, -0.0357, 0.0357, 100000);
    float *v = malloc(100000 * sizeof *v);
    rt_param_init(&p, 0, 1, v);
    float lo = 1, hi = -1;
    for (int i = 0; i < 100000; i++) {
        assert_true(v[i] >= (float)-0.0357 && v[i] < (float)0.0357);
        lo = fminf(lo, v[i]);
        hi = fmaxf(hi, v[i]);
    }
    assert_true(lo < -0.035f && hi > 0.035f); /* it fills the interval */
    free(v);
}

static void test_init_reproducible_for_seed(void **state) {
    RtParam p = param(RT_INIT_UNIFORM, -1, 1, 64);
    float a[64], b[64], c[64];
    rt_param_init(&p, 3, 99, a);
    rt_param_init(&p, 3, 99, b);
    rt_param_init(&p, 3, 100, c);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
}

static void test_init_independent_of_order(void **state) {
    /* param 1 gets the same values whether or not param 0 was initialized first */
    RtParam p0 = param(RT_INIT_NORMAL, 0, 1, 50), p1 = param(RT_INIT_UNIFORM, 0, 1, 50);
    float a0[50], a1[50], b1[50];
    rt_param_init(&p0, 0, 5, a0);
    rt_param_init(&p1, 1, 5, a1);
    rt_param_init(&p1, 1, 5, b1);
    assert_memory_equal(a1, b1, sizeof a1);
    rt_param_init(&p1, 0, 5, b1);
    assert_memory_not_equal(a1, b1, sizeof a1); /* each index has its own stream */
}

static void test_normal_init_mean_and_std(void **state) {
    enum { N = 200000 };
    RtParam p = param(RT_INIT_NORMAL, 2.0, 0.5, N);
    float *v = malloc(N * sizeof *v);
    rt_param_init(&p, 0, 7, v);
    double s = 0, s2 = 0;
    for (int i = 0; i < N; i++) {
        assert_true(isfinite(v[i]));
        s += v[i];
        s2 += (double)v[i] * v[i];
    }
    double mean = s / N, sd = sqrt(s2 / N - mean * mean);
    assert_true(fabs(mean - 2.0) < 0.01);
    assert_true(fabs(sd - 0.5) < 0.01);
    free(v);
}

static void test_const_ones_zeros_init(void **state) {
    float v[8];
    RtParam p = param(RT_INIT_CONST, 0.25, 0, 8);
    rt_param_init(&p, 0, 0, v);
    for (int i = 0; i < 8; i++)
        assert_true(v[i] == 0.25f);
    p.init = RT_INIT_ONES;
    rt_param_init(&p, 0, 0, v);
    for (int i = 0; i < 8; i++)
        assert_true(v[i] == 1.0f);
    p.init = RT_INIT_ZEROS;
    rt_param_init(&p, 0, 0, v);
    for (int i = 0; i < 8; i++)
        assert_true(v[i] == 0.0f);
}

static void test_f64_param_init(void **state) {
    double v[16];
    RtParam p = param(RT_INIT_UNIFORM, 10, 11, 16);
    p.t.dtype = RT_F64;
    rt_param_init(&p, 0, 0, v);
    for (int i = 0; i < 16; i++)
        assert_true(v[i] >= 10 && v[i] < 11);
}

static void test_rng_below_stays_in_range_and_covers_it(void **state) {
    RtRng r;
    rt_rng_seed(&r, 1, 2);
    int hits[7] = {0};
    for (int i = 0; i < 7000; i++) {
        uint32_t k = rt_rng_below(&r, 7);
        assert_true(k < 7);
        hits[k]++;
    }
    for (int k = 0; k < 7; k++)
        assert_true(hits[k] > 800 && hits[k] < 1200);
}

/* Both wide draws take the first 32-bit draw as their high word, whatever order a compiler would give the
   operands of one expression: the same seed initializes and shuffles alike in every build. */
static void test_rng_wide_draws_take_first_draw_as_high_word(void **state) {
    RtRng a, b;
    rt_rng_seed(&a, 7, 3);
    rt_rng_seed(&b, 7, 3);
    uint64_t hi = rt_rng_u32(&b), lo = rt_rng_u32(&b);
    assert_true(rt_rng_unit(&a) == (double)(((hi << 21) ^ (lo >> 11)) & ((1ull << 53) - 1)) * 0x1.0p-53);
    hi = rt_rng_u32(&b);
    lo = rt_rng_u32(&b);
    uint64_t bound = (1ull << 40) + 1; /* above 32 bits; rejects with probability below 2^-23 */
    assert_int_equal(rt_rng_below64(&a, bound), ((hi << 32) | lo) % bound);
}

static void test_manifest_rejects_top_level_not_object(void **state) {
    RtManifest m;
    RtErr e;
    assert_int_equal(rt_manifest_parse(&m, "[1, 2]", &e), RT_ERR);
    assert_non_null(strstr(e.msg, "not a JSON object"));
    rt_manifest_free(&m);
}

static void test_manifest_init_specs_parsed(void **state) {
    RtManifest m;
    RtErr e;
    assert_int_equal(rt_manifest_parse(&m, lathe_manifest, &e), RT_OK);
    assert_int_equal(m.nparams, 2);
    assert_string_equal(m.params[0].t.name, "w");
    assert_int_equal(m.params[0].init, RT_INIT_UNIFORM);
    assert_true(m.params[0].a == -0.5 && m.params[0].b == 0.5);
    assert_int_equal(m.params[1].init, RT_INIT_ZEROS);
    assert_int_equal(rt_manifest_classes(&m), 3);
    rt_manifest_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uniform_init_within_bounds),
        cmocka_unit_test(test_init_reproducible_for_seed),
        cmocka_unit_test(test_init_independent_of_order),
        cmocka_unit_test(test_normal_init_mean_and_std),
        cmocka_unit_test(test_const_ones_zeros_init),
        cmocka_unit_test(test_f64_param_init),
        cmocka_unit_test(test_rng_below_stays_in_range_and_covers_it),
        cmocka_unit_test(test_rng_wide_draws_take_first_draw_as_high_word),
        cmocka_unit_test(test_manifest_rejects_top_level_not_object),
        cmocka_unit_test(test_manifest_init_specs_parsed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
