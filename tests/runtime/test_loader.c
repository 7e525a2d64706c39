/* test_loader.c: the loader options: shuffled epoch orders over a subset, drop_last's batch count, the seeded
   validation split, the loader's workers (the same batches for 0, 1 or 3, many requests, asleep between
   batches, transforms applied in them) and the recipe keys workers, drop_last, validation and transforms. */
#include "support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static void test_epoch_order_of_subset_shuffles_its_members(void **state) {
    enum { N = 300 };
    int64_t sub[N], a[N], b[N], c[N], plain[N];
    for (int i = 0; i < N; i++)
        sub[i] = 3 * i + 1;
    rt_epoch_order_of(sub, N, false, 9, 0, a);
    assert_memory_equal(a, sub, sizeof a); /* no shuffle: the subset's order */
    rt_epoch_order_of(sub, N, true, 9, 0, a);
    assert_true(ts_differ(a, sub, N) > 250); /* shuffled */
    char seen[3 * N + 1] = {0};
    for (int i = 0; i < N; i++) {
        assert_true(a[i] % 3 == 1 && !seen[a[i]]);
        seen[a[i]] = 1;
    }
    rt_epoch_order_of(sub, N, true, 9, 0, b);
    assert_memory_equal(a, b, sizeof a); /* reproducible for (seed, epoch) */
    rt_epoch_order_of(sub, N, true, 9, 1, c);
    assert_true(ts_differ(a, c, N) > 250); /* another epoch, another order */
    /* the same permutation as rt_epoch_order's, applied to the subset */
    rt_epoch_order(N, true, 9, 0, plain);
    for (int i = 0; i < N; i++)
        assert_int_equal(a[i], sub[plain[i]]);
    rt_epoch_order_of(NULL, N, true, 9, 1, b);
    rt_epoch_order(N, true, 9, 1, c);
    assert_memory_equal(b, c, sizeof b);
}

static void test_drop_last_changes_batch_count(void **state) {
    assert_int_equal(rt_batch_count_drop(60000, 64, false), 938);
    assert_int_equal(rt_batch_count_drop(60000, 64, true), 937);
    assert_int_equal(rt_batch_count_drop(640, 64, true), 10); /* no partial batch: nothing dropped */
    assert_int_equal(rt_batch_count_drop(640, 64, false), 10);
    assert_int_equal(rt_batch_count_drop(10, 64, true), 0);
    assert_int_equal(rt_batch_count_drop(10, 64, false), 1);
    assert_int_equal(rt_batch_count_drop(10, INT64_MAX, true), 0);
}

static void check_split(int64_t n, double fraction, uint64_t seed, int64_t want_val) {
    int64_t *tr, *va, nt, nv;
    RtErr e;
    assert_int_equal(rt_split(n, fraction, seed, &tr, &nt, &va, &nv, &e), RT_OK);
    assert_int_equal(nv, want_val);
    assert_int_equal(nt + nv, n);
    char *seen = calloc((size_t)n, 1);
    for (int64_t i = 0; i < nt; i++) {
        assert_true(tr[i] >= 0 && tr[i] < n && !seen[tr[i]]);
        assert_true(i == 0 || tr[i] > tr[i - 1]); /* increasing */
        seen[tr[i]] = 1;
    }
    for (int64_t i = 0; i < nv; i++) {
        assert_true(va[i] >= 0 && va[i] < n && !seen[va[i]]); /* disjoint from train */
        assert_true(i == 0 || va[i] > va[i - 1]);
        seen[va[i]] = 1;
    }
    free(seen);
    free(tr);
    free(va);
}

static void test_split_sizes_and_disjointness(void **state) {
    check_split(1000, 0.1, 42, 100);
    check_split(60000, 1.0 / 6, 0, 10000);
    check_split(10, 0.01, 1, 1); /* at least one sample each side */
    check_split(10, 0.99, 1, 9);
    check_split(2, 0.5, 3, 1);
}

static void test_split_reproducible_for_seed(void **state) {
    int64_t *t1, *v1, *t2, *v2, *t3, *v3, n1, m1, n2, m2, n3, m3;
    RtErr e;
    assert_int_equal(rt_split(1000, 0.2, 5, &t1, &n1, &v1, &m1, &e), RT_OK);
    assert_int_equal(rt_split(1000, 0.2, 5, &t2, &n2, &v2, &m2, &e), RT_OK);
    assert_int_equal(rt_split(1000, 0.2, 6, &t3, &n3, &v3, &m3, &e), RT_OK);
    assert_int_equal(m1, 200);
    assert_memory_equal(v1, v2, 200 * sizeof *v1);
    assert_memory_equal(t1, t2, 800 * sizeof *t1);
    int same = 0; /* another seed: another split (about 40 of 200 in common by chance) */
    for (int64_t i = 0, j = 0; i < 200 && j < 200;)
        v1[i] == v3[j] ? (same++, i++, j++) : v1[i] < v3[j] ? i++ : j++;
    assert_true(same < 100);
    /* not the first samples, nor every k-th: spread over the data */
    assert_true(v1[0] < 50 && v1[199] > 950);
    free(t1), free(v1), free(t2), free(v2), free(t3), free(v3);
}

static void test_split_rejects_bad_fraction_and_tiny_data(void **state) {
    int64_t *t, *v, nt, nv;
    RtErr e;
    assert_int_equal(rt_split(100, 0, 1, &t, &nt, &v, &nv, &e), RT_ERR);
    assert_contains(e.msg, "above 0 and below 1");
    assert_int_equal(rt_split(100, 1, 1, &t, &nt, &v, &nv, &e), RT_ERR);
    assert_int_equal(rt_split(1, 0.5, 1, &t, &nt, &v, &nv, &e), RT_ERR);
    assert_contains(e.msg, "at least 2 samples");
    assert_null(t);
    assert_null(v);
}

/* ---------------------------------------------------------------- the loader */
enum { NS = 157, C = 2, H = 6, W = 5, PER = C * H * W };

static RtTensorSpec xspec(void) {
    RtTensorSpec x = {.name = "x", .dtype = RT_F32, .rank = 4, .shape = {-1, C, H, W}, .role = RT_ROLE_INPUT};
    return x;
}
static RtTensorSpec yspec(void) {
    RtTensorSpec y = {.name = "label", .dtype = RT_I64, .rank = 1, .shape = {-1}, .role = RT_ROLE_INPUT};
    return y;
}

static RtDataset dataset(void) {
    RtDataset d = {.kind = RT_DATA_IDX, .count = NS, .per_sample = PER, .per_label = 1, .scale = 1.0 / 255,
                   .images_dtype = RT_U8, .labels_dtype = RT_U8};
    d.images = malloc(NS * PER);
    d.labels = malloc(NS);
    assert_true(d.images && d.labels);
    for (int i = 0; i < NS * PER; i++)
        d.images[i] = (uint8_t)(1 + (i * 7 + i / PER) % 255); /* nonzero: zeros are crop borders */
    for (int i = 0; i < NS; i++)
        d.labels[i] = (uint8_t)(i % 10);
    return d;
}

static void free_dataset(RtDataset *d) {
    free(d->images);
    free(d->labels);
}

static void transforms(RtTransforms *t) {
    RtTensorSpec x = xspec();
    RtErr e;
    json_error_t je;
    json_t *r = json_loads("{\"transforms\": ["
                           "{\"call\": \"random_crop\", \"args\": [[6, 5]], \"kwargs\": {\"padding\": 2}},"
                           "{\"call\": \"random_hflip\", \"args\": [], \"kwargs\": {}},"
                           "{\"call\": \"normalize\", \"args\": [[0.25, 0.5], [0.5, 2]], \"kwargs\": {}}]}",
                           0, &je);
    assert_non_null(r);
    assert_int_equal(rt_transforms_parse(r, &x, t, &e), RT_OK);
    assert_int_equal(t->n, 3);
    json_decref(r);
}

/* The driver's use of a loader over `epochs` epochs: batch k waited for, batch k + 1 requested, then batch k
   "stepped" (copied into out, and checked against a gather and transform on this thread). Returns the
   values of every batch in turn. The checks fail after the loader is closed: a test must not leave its
   threads behind. */
static float *run_epochs(const RtDataset *d, int workers, const RtTransforms *tf, bool train, int64_t batch,
                         int epochs, size_t *count) {
    RtTensorSpec x = xspec(), y = yspec();
    RtLoaderOpts o = {.workers = workers, .tf = tf, .train = train, .seed = 77};
    RtLoader l;
    RtErr e;
    assert_int_equal(rt_loader_open_opts(&l, d, &x, &y, batch, &o, &e), RT_OK);
    int started = l.nworkers;
    float *out = malloc((size_t)epochs * NS * PER * sizeof *out), *want = malloc((size_t)batch * PER * sizeof *want);
    int64_t *want_y = malloc((size_t)batch * sizeof *want_y), order[NS];
    size_t at = 0;
    int wrong = 0, misaligned = 0;
    for (int ep = 0; ep < epochs; ep++) {
        rt_epoch_order(NS, true, 77, ep, order);
        rt_loader_set_epoch(&l, ep);
        int64_t nb = rt_batch_count(NS, batch);
        rt_loader_request(&l, order, batch < NS ? batch : NS);
        for (int64_t k = 0; k < nb; k++) {
            int64_t start = k * batch, n = NS - start < batch ? NS - start : batch;
            void *bx, *by;
            rt_loader_wait(&l, &bx, &by);
            misaligned += (uintptr_t)bx % 64 != 0;
            if (k + 1 < nb)
                rt_loader_request(&l, order + start + n, NS - start - n < batch ? NS - start - n : batch);
            rt_dataset_gather(d, order + start, n, RT_F32, want, RT_I64, want_y);
            rt_transforms_apply(tf, train, RT_F32, want, &x, n, order + start, 77, ep);
            wrong += memcmp(bx, want, (size_t)(n * PER) * sizeof(float)) != 0;
            wrong += memcmp(by, want_y, (size_t)n * sizeof(int64_t)) != 0;
            memcpy(out + at, bx, (size_t)(n * PER) * sizeof(float));
            at += (size_t)(n * PER);
        }
    }
    rt_loader_close(&l);
    free(want);
    free(want_y);
    assert_int_equal(started, workers);
    assert_int_equal(wrong, 0);
    assert_int_equal(misaligned, 0);
    *count = at;
    return out;
}

static void test_workers_give_identical_batches(void **state) {
    RtDataset d = dataset();
    RtTransforms tf;
    transforms(&tf);
    size_t n0, n1, n3;
    float *b0 = run_epochs(&d, 0, &tf, true, 16, 3, &n0);
    float *b1 = run_epochs(&d, 1, &tf, true, 16, 3, &n1);
    float *b3 = run_epochs(&d, 3, &tf, true, 16, 3, &n3);
    assert_int_equal(n0, 3 * NS * PER);
    assert_int_equal(n1, n0);
    assert_int_equal(n3, n0);
    assert_memory_equal(b0, b1, n0 * sizeof *b0);
    assert_memory_equal(b0, b3, n0 * sizeof *b0);
    /* the transforms ran: some values are crop borders, none of the raw data is 0 */
    size_t zeros = 0;
    for (size_t i = 0; i < n0; i++)
        zeros += b0[i] == (0.0f - 0.25f) / 0.5f || b0[i] == (0.0f - 0.5f) / 2.0f;
    assert_true(zeros > 0);
    free(b0), free(b1), free(b3);
    free_dataset(&d);
}

/* Eval's loader (train false) applies normalize only: the same values as a plain gather then normalize. */
static void test_eval_loader_skips_random_transforms(void **state) {
    RtDataset d = dataset();
    RtTransforms tf;
    transforms(&tf);
    size_t n;
    float *b = run_epochs(&d, 2, &tf, false, 10, 1, &n); /* checked against rt_transforms_apply(train false) */
    int64_t order[NS];
    rt_epoch_order(NS, true, 77, 0, order);
    float v[PER];
    rt_dataset_gather(&d, order, 1, RT_F32, v, RT_U8, NULL);
    for (int i = 0; i < PER; i++) {
        float m = i < H * W ? 0.25f : 0.5f, s = i < H * W ? 0.5f : 2.0f;
        assert_true(b[i] == (v[i] - m) / s);
    }
    free(b);
    free_dataset(&d);
}

/* Many requests of every size from 1 (fewer samples than workers) to 40, with 3 workers (run under ASan and
   TSan): each batch is the serial gather. */
static void test_loader_many_requests_three_workers(void **state) {
    RtDataset d = dataset();
    RtTransforms tf;
    transforms(&tf);
    RtTensorSpec x = xspec(), y = yspec();
    RtLoaderOpts o = {.workers = 3, .tf = &tf, .train = true, .seed = 5};
    RtLoader l;
    RtErr e;
    assert_int_equal(rt_loader_open_opts(&l, &d, &x, &y, 40, &o, &e), RT_OK);
    int started = l.nworkers;
    static int64_t idx[2][40];
    int wrong = 0;
    static float want[40 * PER];
    int64_t want_y[40];
    for (int r = 0; r < 2000; r++) {
        int64_t n = 1 + r % 40, *ids = idx[r % 2];
        for (int64_t i = 0; i < n; i++)
            ids[i] = (r * 31 + i * 17) % NS;
        if (r % 100 == 0)
            rt_loader_set_epoch(&l, r / 100);
        rt_loader_request(&l, ids, n);
        void *bx, *by;
        rt_loader_wait(&l, &bx, &by);
        rt_dataset_gather(&d, ids, n, RT_F32, want, RT_I64, want_y);
        rt_transforms_apply(&tf, true, RT_F32, want, &x, n, ids, 5, r / 100);
        wrong += memcmp(bx, want, (size_t)(n * PER) * sizeof(float)) != 0;
        wrong += memcmp(by, want_y, (size_t)n * sizeof(int64_t)) != 0;
    }
    rt_loader_request(&l, idx[0], 40); /* closed with a request in flight */
    rt_loader_close(&l);
    assert_int_equal(started, 3);
    assert_int_equal(wrong, 0);
    assert_int_equal(l.nworkers, 0);
    free_dataset(&d);
}

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Idle workers sleep: 3 of them use next to no processor time while the caller waits 300 ms. */
static void test_idle_workers_sleep(void **state) {
    RtDataset d = dataset();
    RtTensorSpec x = xspec(), y = yspec();
    RtLoaderOpts o = {.workers = 3, .train = true};
    RtLoader l;
    RtErr e;
    assert_int_equal(rt_loader_open_opts(&l, &d, &x, &y, 8, &o, &e), RT_OK);
    int64_t ids[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    void *bx, *by;
    rt_loader_request(&l, ids, 8);
    rt_loader_wait(&l, &bx, &by);
    double t0 = cpu_seconds();
    usleep(300 * 1000);
    double used = cpu_seconds() - t0;
    rt_loader_close(&l);
    assert_true(used < 0.1);
    free_dataset(&d);
}

static void test_loader_open_wrapper_and_zeroed_close(void **state) {
    RtDataset d = dataset();
    RtTensorSpec x = xspec(), y = yspec();
    RtLoader l;
    RtErr e;
    assert_int_equal(rt_loader_open(&l, &d, &x, &y, 8, true, &e), RT_OK);
    int started = l.nworkers;
    bool threaded = l.threaded;
    rt_loader_close(&l);
    assert_int_equal(started, 1);
    assert_true(threaded);
    assert_int_equal(rt_loader_open(&l, &d, &x, &y, 8, false, &e), RT_OK);
    assert_int_equal(l.nworkers, 0);
    rt_loader_close(&l);
    RtLoader z = {0}; /* the driver closes a loader it never opened */
    rt_loader_close(&z);
    free_dataset(&d);
}

static void test_loader_refuses_transforms_on_integer_input(void **state) {
    RtDataset d = dataset();
    RtTransforms tf;
    transforms(&tf);
    RtTensorSpec x = xspec(), y = yspec();
    x.dtype = RT_I32;
    RtLoaderOpts o = {.workers = 1, .tf = &tf, .train = true};
    RtLoader l;
    RtErr e;
    assert_int_equal(rt_loader_open_opts(&l, &d, &x, &y, 8, &o, &e), RT_ERR);
    assert_contains(e.msg, "recipe key transforms: the model's input 'x' is i32");
    free_dataset(&d);
}

/* ---------------------------------------------------------------- the recipe keys */
static int recipe(const char *text, RtLoaderRecipe *r, RtErr *e) {
    json_t *j = ts_json(text);
    RtTensorSpec x = xspec();
    int rc = rt_loader_recipe(j, &x, r, e);
    json_decref(j);
    return rc;
}

static void test_recipe_defaults(void **state) {
    RtLoaderRecipe r;
    RtErr e;
    assert_int_equal(recipe("{}", &r, &e), RT_OK);
    assert_int_equal(r.workers, 1);
    assert_false(r.drop_last);
    assert_false(r.has_fraction);
    assert_false(r.is_source);
    assert_int_equal(r.tf.n, 0);
}

static void test_recipe_reads_loader_keys(void **state) {
    RtLoaderRecipe r;
    RtErr e;
    assert_int_equal(recipe("{\"workers\": 4, \"drop_last\": true, \"validation\": 0.1, \"transforms\": "
                            "[{\"call\": \"random_hflip\", \"args\": [], \"kwargs\": {\"p\": 0.3}}]}",
                            &r, &e),
                     RT_OK);
    assert_int_equal(r.workers, 4);
    assert_true(r.drop_last);
    assert_true(r.has_fraction);
    assert_true(r.fraction == 0.1);
    assert_false(r.is_source);
    assert_int_equal(r.tf.n, 1);
    assert_int_equal(r.tf.t[0].kind, RT_TF_RANDOM_HFLIP);
    assert_true(r.tf.t[0].p == 0.3);
    assert_int_equal(recipe("{\"workers\": 0, \"validation\": {\"call\": \"idx\", \"args\": [\"a\", \"b\"], "
                            "\"kwargs\": {}}}",
                            &r, &e),
                     RT_OK);
    assert_int_equal(r.workers, 0);
    assert_true(r.is_source);
    assert_false(r.has_fraction);
}

static void recipe_fails(const char *text, const char *part) {
    RtLoaderRecipe r;
    RtErr e = {{0}};
    assert_int_equal(recipe(text, &r, &e), RT_ERR);
    assert_contains(e.msg, part);
}

static void test_recipe_rejects_bad_values(void **state) {
    recipe_fails("{\"workers\": -1}", "recipe key workers: must be an integer from 0 to 256");
    recipe_fails("{\"workers\": 2.5}", "recipe key workers");
    recipe_fails("{\"workers\": 100000}", "recipe key workers");
    recipe_fails("{\"drop_last\": 1}", "recipe key drop_last: must be true or false");
    recipe_fails("{\"validation\": 1.5}", "recipe key validation: must be a fraction");
    recipe_fails("{\"validation\": 0}", "recipe key validation");
    recipe_fails("{\"validation\": \"10%\"}", "recipe key validation");
    recipe_fails("{\"transforms\": [{\"call\": \"random_flip\", \"args\": [], \"kwargs\": {}}]}",
                 "recipe key transforms: unknown transform 'random_flip'");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_epoch_order_of_subset_shuffles_its_members),
        cmocka_unit_test(test_drop_last_changes_batch_count),
        cmocka_unit_test(test_split_sizes_and_disjointness),
        cmocka_unit_test(test_split_reproducible_for_seed),
        cmocka_unit_test(test_split_rejects_bad_fraction_and_tiny_data),
        cmocka_unit_test(test_workers_give_identical_batches),
        cmocka_unit_test(test_eval_loader_skips_random_transforms),
        cmocka_unit_test(test_loader_many_requests_three_workers),
        cmocka_unit_test(test_idle_workers_sleep),
        cmocka_unit_test(test_loader_open_wrapper_and_zeroed_close),
        cmocka_unit_test(test_loader_refuses_transforms_on_integer_input),
        cmocka_unit_test(test_recipe_defaults),
        cmocka_unit_test(test_recipe_reads_loader_keys),
        cmocka_unit_test(test_recipe_rejects_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
