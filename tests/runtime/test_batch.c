/* test_batch.c: batching (the last partial batch kept), seeded shuffling reproducible per (seed, epoch) and
   unchanged across versions, --limit, and the n each graph call receives. */
#include "support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_batch_count_keeps_last_partial(void **state) {
    assert_int_equal(rt_batch_count(60000, 64), 938); /* 937 x 64 + 32 */
    assert_int_equal(rt_batch_count(64, 64), 1);
    assert_int_equal(rt_batch_count(65, 64), 2);
    assert_int_equal(rt_batch_count(1, 64), 1);
    assert_int_equal(rt_batch_count(10, INT64_MAX), 1); /* no overflow for a huge --batch */
}

static void test_epoch_order_identity_without_shuffle(void **state) {
    int64_t o[100];
    rt_epoch_order(100, false, 42, 3, o);
    for (int i = 0; i < 100; i++)
        assert_int_equal(o[i], i);
}

static void test_epoch_order_is_permutation(void **state) {
    enum { N = 1000 };
    int64_t o[N];
    char seen[N] = {0};
    rt_epoch_order(N, true, 7, 0, o);
    for (int i = 0; i < N; i++) {
        assert_true(o[i] >= 0 && o[i] < N);
        assert_false(seen[o[i]]);
        seen[o[i]] = 1;
    }
}

static void test_epoch_order_reproducible_for_seed_and_epoch(void **state) {
    int64_t a[500], b[500];
    rt_epoch_order(500, true, 1234, 2, a);
    rt_epoch_order(500, true, 1234, 2, b);
    assert_memory_equal(a, b, sizeof a);
}

static void test_epoch_order_differs_across_epochs(void **state) {
    int64_t a[500], b[500];
    rt_epoch_order(500, true, 1234, 0, a);
    rt_epoch_order(500, true, 1234, 1, b);
    assert_true(ts_differ(a, b, 500) > 400);
}

static void test_epoch_order_differs_across_seeds(void **state) {
    int64_t a[500], b[500];
    rt_epoch_order(500, true, 1, 0, a);
    rt_epoch_order(500, true, 2, 0, b);
    assert_true(ts_differ(a, b, 500) > 400);
}

/* The orders of earlier versions, so that a seed's run stays the same run (checkpoints resume into it). */
static void test_epoch_order_unchanged_for_seed(void **state) {
    const int64_t want42[12] = {1, 10, 7, 3, 8, 0, 5, 11, 2, 4, 6, 9};
    const int64_t want7[12] = {7, 6, 0, 3, 8, 11, 1, 4, 2, 5, 10, 9};
    int64_t o[12];
    rt_epoch_order(12, true, 42, 1, o);
    assert_memory_equal(o, want42, sizeof o);
    rt_epoch_order(12, true, 7, 0, o);
    assert_memory_equal(o, want7, sizeof o);
}

/* A graph that records the n of each call. */
static int64_t ns[2000];
static int nns;
static void record_n(void **args, int64_t n, uint8_t *arena) {
    float *loss = args[5];
    *loss = 1.0f;
    if (nns < 2000)
        ns[nns++] = n;
}

static void test_train_epoch_passes_batch_sizes(void **state) {
    RtManifest m;
    RtErr e;
    assert_int_equal(rt_manifest_parse(&m, lathe_manifest, &e), RT_OK);
    m.train.fn = record_n;
    RtConfig cfg = {.recipe = m.recipe, .batch = 64, .lr = 0.1, .has_lr = true};
    RtModel md;
    RtBinding b;
    assert_int_equal(rt_model_init(&md, &m, 0, &e), RT_OK);
    assert_int_equal(rt_bind(&b, &md, &m.train, &cfg, 64, &e), RT_OK);
    RtDataset d = {.count = 60000, .per_sample = 4, .per_label = 1, .scale = 1, .images_dtype = RT_U8,
                   .labels_dtype = RT_U8};
    d.images = calloc(60000, 4);
    d.labels = calloc(60000, 1);
    nns = 0;
    double loss = rt_train_epoch(&b, &md, NULL, &d, &cfg, 0, NULL);
    assert_true(loss == 1.0);
    assert_int_equal(nns, 938);
    for (int i = 0; i < 937; i++)
        assert_int_equal(ns[i], 64);
    assert_int_equal(ns[937], 32);
    assert_int_equal(md.step, 938);
    free(d.images);
    free(d.labels);
    rt_unbind(&b);
    rt_model_free(&md);
    rt_manifest_free(&m);
}

/* The loader writes sample i at i * (values per sample), so a data input without N first would be written
   past its buffer by any batch above 1: rt_bind refuses it. */
static void test_bind_rejects_data_input_without_leading_batch_dim(void **state) {
    RtManifest m;
    RtErr e;
    RtConfig cfg = {.batch = 8, .lr = 0.1, .has_lr = true};
    RtModel md;
    RtBinding b;
    assert_int_equal(rt_manifest_parse(&m, lathe_manifest, &e), RT_OK);
    m.train.fn = record_n;
    cfg.recipe = m.recipe;
    assert_int_equal(rt_model_init(&md, &m, 0, &e), RT_OK);
    RtTensorSpec x = m.train.args[0], y = m.train.args[1];

    m.inputs[0].rank = m.train.args[0].rank = 1; /* x: f32[4] */
    m.inputs[0].shape[0] = m.train.args[0].shape[0] = 4;
    assert_int_equal(rt_bind(&b, &md, &m.train, &cfg, 8, &e), RT_ERR);
    assert_non_null(strstr(e.msg, "input 'x'"));
    rt_unbind(&b);

    m.inputs[0] = m.train.args[0] = x;
    m.train.args[1].rank = 0; /* label: i64[] */
    assert_int_equal(rt_bind(&b, &md, &m.train, &cfg, 8, &e), RT_ERR);
    assert_non_null(strstr(e.msg, "input 'label'"));
    rt_unbind(&b);

    m.train.args[1] = y;
    assert_int_equal(rt_bind(&b, &md, &m.train, &cfg, 8, &e), RT_OK);
    rt_unbind(&b);
    rt_model_free(&md);
    rt_manifest_free(&m);
}

static void test_limit_keeps_first_samples(void **state) {
    RtDataset d = {.count = 100};
    rt_dataset_limit(&d, 10);
    assert_int_equal(d.count, 10);
    rt_dataset_limit(&d, 50); /* a limit above the count changes nothing */
    assert_int_equal(d.count, 10);
    rt_dataset_limit(&d, -1);
    assert_int_equal(d.count, 10);
}

static void test_arena_bytes_for_largest_batch(void **state) {
    RtGraph g = {.arena_const = 100, .arena_per_n = 10};
    size_t bytes;
    assert_true(rt_arena_bytes(&g, 64, &bytes));
    assert_int_equal(bytes, 768); /* 740 rounded up to 64 */
    g.arena_per_n = INT64_MAX / 2;
    assert_false(rt_arena_bytes(&g, 64, &bytes));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_count_keeps_last_partial),
        cmocka_unit_test(test_epoch_order_identity_without_shuffle),
        cmocka_unit_test(test_epoch_order_is_permutation),
        cmocka_unit_test(test_epoch_order_reproducible_for_seed_and_epoch),
        cmocka_unit_test(test_epoch_order_differs_across_epochs),
        cmocka_unit_test(test_epoch_order_differs_across_seeds),
        cmocka_unit_test(test_epoch_order_unchanged_for_seed),
        cmocka_unit_test(test_train_epoch_passes_batch_sizes),
        cmocka_unit_test(test_bind_rejects_data_input_without_leading_batch_dim),
        cmocka_unit_test(test_limit_keeps_first_samples),
        cmocka_unit_test(test_arena_bytes_for_largest_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
