/* test_memcheck.c: out of memory told before it happens (memcheck.c): reading /proc/meminfo and cgroup files
   (fake ones here), LATHE_MEMORY_LIMIT's byte counts, the largest batch that fits, and the whole driver on the
   fake model under a tiny limit: the run stops before its first step with the batch that fits, that batch
   runs, the next one does not, and --batch auto picks it. */
#include "support.h"
#include "memcheck.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char *fake_file(const char *name, const char *text) { return ts_write_text(name, text); }

/* ---------------------------------------------------------------- /proc/meminfo */

static void test_meminfo_reads_mem_available_in_bytes(void **state) {
    (void)state;
    const char *p = fake_file("meminfo", "MemTotal:       32000000 kB\nMemFree:         1000000 kB\n"
                                         "MemAvailable:   23113556 kB\nBuffers:          100 kB\n");
    int64_t v;
    assert_int_equal(rt_mem_meminfo(p, &v), RT_OK);
    assert_int_equal(v, 23113556LL * 1024);
}

static void test_meminfo_without_mem_available_fails(void **state) {
    (void)state;
    int64_t v;
    assert_int_equal(rt_mem_meminfo(fake_file("old", "MemTotal: 100 kB\nMemFree: 50 kB\n"), &v), RT_ERR);
    assert_int_equal(v, -1);
    assert_int_equal(rt_mem_meminfo(fake_file("bad", "MemAvailable: lots kB\n"), &v), RT_ERR);
    assert_int_equal(rt_mem_meminfo(fake_file("unit", "MemAvailable: 100 MB\n"), &v), RT_ERR);
    assert_int_equal(rt_mem_meminfo(fake_file("huge", "MemAvailable: 99999999999999999 kB\n"), &v), RT_ERR);
    char missing[600];
    assert_int_equal(rt_mem_meminfo(tmp_path(missing, sizeof missing, ts_dir, "no-such-file"), &v), RT_ERR);
}

/* ---------------------------------------------------------------- cgroups */

static void test_cgroup_v2_room_is_limit_less_usage_without_inactive_files(void **state) {
    (void)state;
    char lim[600], use[600], st[600];
    snprintf(lim, sizeof lim, "%s", fake_file("memory.max", "1000000\n"));
    snprintf(use, sizeof use, "%s", fake_file("memory.current", "600000\n"));
    snprintf(st, sizeof st, "%s", fake_file("memory.stat", "anon 400000\nfile 200000\ninactive_file 100000\n"));
    int64_t v;
    assert_int_equal(rt_mem_cgroup(lim, use, st, "inactive_file", &v), RT_OK);
    assert_int_equal(v, 1000000 - (600000 - 100000));
    /* no memory.stat: the page cache counts as used */
    assert_int_equal(rt_mem_cgroup(lim, use, NULL, NULL, &v), RT_OK);
    assert_int_equal(v, 400000);
}

static void test_cgroup_max_and_v1_huge_limit_are_unlimited(void **state) {
    (void)state;
    char lim[600], use[600];
    snprintf(use, sizeof use, "%s", fake_file("usage", "5000\n"));
    snprintf(lim, sizeof lim, "%s", fake_file("memory.max", "max\n"));
    int64_t v;
    assert_int_equal(rt_mem_cgroup(lim, use, NULL, NULL, &v), RT_OK);
    assert_int_equal(v, RT_MEM_UNLIMITED);
    snprintf(lim, sizeof lim, "%s", fake_file("memory.limit_in_bytes", "9223372036854771712\n"));
    assert_int_equal(rt_mem_cgroup(lim, use, NULL, NULL, &v), RT_OK);
    assert_int_equal(v, RT_MEM_UNLIMITED);
}

static void test_cgroup_v1_usage_past_limit_leaves_nothing(void **state) {
    (void)state;
    char lim[600], use[600], st[600];
    snprintf(lim, sizeof lim, "%s", fake_file("memory.limit_in_bytes", "1048576\n"));
    snprintf(use, sizeof use, "%s", fake_file("memory.usage_in_bytes", "2097152\n"));
    snprintf(st, sizeof st, "%s", fake_file("memory.stat", "inactive_file 10\ntotal_inactive_file 4096\n"));
    int64_t v;
    assert_int_equal(rt_mem_cgroup(lim, use, st, "total_inactive_file", &v), RT_OK);
    assert_int_equal(v, 0);
}

static void test_cgroup_unreadable_values_fail(void **state) {
    (void)state;
    char lim[600], use[600], missing[600];
    snprintf(use, sizeof use, "%s", fake_file("usage", "5000\n"));
    snprintf(lim, sizeof lim, "%s", fake_file("limit", "12ab\n"));
    int64_t v;
    assert_int_equal(rt_mem_cgroup(lim, use, NULL, NULL, &v), RT_ERR);
    snprintf(lim, sizeof lim, "%s", fake_file("limit", "-5\n"));
    assert_int_equal(rt_mem_cgroup(lim, use, NULL, NULL, &v), RT_ERR);
    snprintf(lim, sizeof lim, "%s", fake_file("limit", "99999999999999999999999\n"));
    assert_int_equal(rt_mem_cgroup(lim, use, NULL, NULL, &v), RT_ERR);
    snprintf(lim, sizeof lim, "%s", fake_file("limit", "100000\n"));
    tmp_path(missing, sizeof missing, ts_dir, "no-such-file");
    assert_int_equal(rt_mem_cgroup(missing, use, NULL, NULL, &v), RT_ERR);
    assert_int_equal(rt_mem_cgroup(lim, missing, NULL, NULL, &v), RT_ERR);
}

/* ---------------------------------------------------------------- LATHE_MEMORY_LIMIT */

static void test_parse_bytes_takes_counts_and_binary_suffixes(void **state) {
    (void)state;
    int64_t v;
    assert_int_equal(rt_mem_parse_bytes("1000000", &v), RT_OK);
    assert_int_equal(v, 1000000);
    assert_int_equal(rt_mem_parse_bytes("512M", &v), RT_OK);
    assert_int_equal(v, 512LL << 20);
    assert_int_equal(rt_mem_parse_bytes("2G", &v), RT_OK);
    assert_int_equal(v, 2LL << 30);
    assert_int_equal(rt_mem_parse_bytes("3KiB", &v), RT_OK);
    assert_int_equal(v, 3072);
    assert_int_equal(rt_mem_parse_bytes("1t", &v), RT_OK);
    assert_int_equal(v, 1LL << 40);
}

static void test_parse_bytes_refuses_the_rest(void **state) {
    (void)state;
    int64_t v;
    const char *bad[] = {"", "abc", "0", "-5", " 5", "10X", "5 M", "1.5G", "9223372036854775808", "9000000000000T",
                         "5MB extra", NULL};
    for (int i = 0; bad[i]; i++)
        if (rt_mem_parse_bytes(bad[i], &v) == RT_OK)
            fail_msg("'%s' was taken as %lld bytes", bad[i], (long long)v);
    assert_int_equal(rt_mem_parse_bytes(NULL, &v), RT_ERR);
}

static void test_available_takes_the_environment_cap(void **state) {
    (void)state;
    RtMemAvail a;
    RtErr e;
    setenv(RT_MEMORY_LIMIT_ENV, "64M", 1);
    assert_int_equal(rt_mem_available(&a, &e), RT_OK);
    assert_int_equal(a.bytes, 64LL << 20);
    assert_true(a.cap);
    assert_contains(a.source, "LATHE_MEMORY_LIMIT");
    setenv(RT_MEMORY_LIMIT_ENV, "lots", 1);
    assert_int_equal(rt_mem_available(&a, &e), RT_ERR);
    assert_contains(e.msg, "LATHE_MEMORY_LIMIT=lots: expected a byte count");
    unsetenv(RT_MEMORY_LIMIT_ENV);
    assert_int_equal(rt_mem_available(&a, &e), RT_OK);
    assert_false(a.cap);
}

/* ---------------------------------------------------------------- the largest batch */

typedef struct Linear {
    int64_t fixed, per_n;
} Linear;

static bool linear_cost(const void *ctx, int64_t n, int64_t *bytes) {
    const Linear *l = ctx;
    return !__builtin_mul_overflow(l->per_n, n, bytes) && !__builtin_add_overflow(*bytes, l->fixed, bytes);
}

static void test_largest_solves_the_linear_peak(void **state) {
    (void)state;
    Linear l = {100, 10};
    assert_int_equal(rt_mem_largest(linear_cost, &l, 1000, 1000), 90);  /* 100 + 10 * 90 = 1000 */
    assert_int_equal(rt_mem_largest(linear_cost, &l, 1009, 1000), 90);
    assert_int_equal(rt_mem_largest(linear_cost, &l, 1010, 1000), 91);
    assert_int_equal(rt_mem_largest(linear_cost, &l, 1000, 50), 50);    /* the cap */
    assert_int_equal(rt_mem_largest(linear_cost, &l, 110, 1000), 1);
}

static void test_largest_is_zero_when_batch_1_does_not_fit(void **state) {
    (void)state;
    Linear l = {100, 10};
    assert_int_equal(rt_mem_largest(linear_cost, &l, 109, 1000), 0);
    assert_int_equal(rt_mem_largest(linear_cost, &l, -1, 1000), 0);
    assert_int_equal(rt_mem_largest(linear_cost, &l, 1000, 0), 0);
}

static void test_largest_treats_overflow_as_not_fitting(void **state) {
    (void)state;
    Linear l = {0, INT64_MAX / 4}; /* n = 4 and past overflow */
    assert_int_equal(rt_mem_largest(linear_cost, &l, INT64_MAX, INT64_MAX), 4);
    Linear big = {INT64_MAX, 1}; /* overflows at n = 1 */
    assert_int_equal(rt_mem_largest(linear_cost, &big, INT64_MAX, 100), 0);
    Linear one = {0, 1};
    assert_int_equal(rt_mem_largest(linear_cost, &one, INT64_MAX, INT64_MAX), INT64_MAX);
}

static void test_mem_text(void **state) {
    (void)state;
    char buf[32];
    rt_mem_text(100, buf, sizeof buf);
    assert_string_equal(buf, "100 B");
    rt_mem_text(1536, buf, sizeof buf);
    assert_string_equal(buf, "1.5 KiB");
    rt_mem_text(3LL << 30, buf, sizeof buf);
    assert_string_equal(buf, "3.0 GiB");
}

/* ---------------------------------------------------------------- what the run needs */

/* The fake model at batch 8 (arena 128 + 16 n; every tensor rounded up to 64 bytes, as rt_bind allocates). */
static void need_of(const char *const *argv, int argc, RtMemNeed *need, int64_t n) {
    RtManifest m;
    RtErr e;
    assert_int_equal(rt_manifest_parse(&m, lathe_manifest, &e), RT_OK);
    m.train.fn = lathe_train;
    m.grads.fn = lathe_grads;
    RtConfig cfg;
    assert_int_equal(rt_config_parse(&cfg, &m, argc, (char **)argv, &e), RT_OK);
    RtMemData d = {.ntrain = 300, .neval = 60};
    RtMemRun run;
    assert_int_equal(rt_mem_run_init(&run, &m, &cfg, &d, &e), RT_OK);
    assert_true(rt_mem_need(&run, n, need));
    rt_config_free(&cfg);
    rt_manifest_free(&m);
}

static void test_need_counts_every_buffer_of_the_fused_step(void **state) {
    (void)state;
    const char *argv[] = {"prog", "train", NULL};
    RtMemNeed need;
    need_of(argv, 2, &need, 8);
    assert_int_equal(need.part[RT_MEM_ARENA], 256);
    assert_int_equal(need.part[RT_MEM_BATCH], 128 + 64 + 64 + 64 + 128); /* x, label, lr, loss, logits */
    assert_int_equal(need.part[RT_MEM_GRADS], 0);
    assert_int_equal(need.part[RT_MEM_LOADER], 2 * (128 + 64));
    assert_int_equal(need.part[RT_MEM_EVAL], 256 + 128 + 64 + 64 + 128);
    assert_int_equal(need.part[RT_MEM_PARAMS], 64 + 64);
    assert_int_equal(need.part[RT_MEM_OPTIM], 0);
    assert_int_equal(need.part[RT_MEM_DATA], 8 * 300); /* the epoch's order; no data set given here */
    assert_int_equal(need.total, 256 + 448 + 384 + 640 + 128 + 2400);
    assert_int_equal(need.held, 128);
    /* past the samples the step's binding stops growing; the evaluation's past its 60 samples */
    RtMemNeed at300, at1000;
    need_of(argv, 2, &at300, 300);
    need_of(argv, 2, &at1000, 1000);
    assert_int_equal(at300.total, at1000.total);
    assert_int_equal(at300.part[RT_MEM_EVAL], 128 + 16 * 60 + 960 + 512 + 64 + 768);
}

static void test_need_counts_gradients_and_adam_state_of_the_runtime_optimizer(void **state) {
    (void)state;
    const char *argv[] = {"prog", "train", "--set", "optimizer=Adam(lr = 0.01)", NULL};
    RtMemNeed need;
    need_of(argv, 4, &need, 8);
    assert_int_equal(need.part[RT_MEM_BATCH], 128 + 64 + 64 + 128); /* x, label, loss, logits: no lr input */
    assert_int_equal(need.part[RT_MEM_GRADS], 64 + 64);
    assert_int_equal(need.part[RT_MEM_OPTIM], 2 * (12 + 3) * 4); /* exp_avg and exp_avg_sq */
}

/* ---------------------------------------------------------------- the whole driver under a limit */

/* The run's need at batch 1, read from the message of a limit that nothing fits in. */
static long long need_at_batch_1(void) {
    setenv(RT_MEMORY_LIMIT_ENV, "1", 1);
    setenv("LATHE_READ_LIMIT", "1G", 1); /* else the readers' budget (budget.h) stops the data first */
    char *out, *err;
    const char *args[] = {"train", "--data", ts_dir, "--epochs", "1", NULL};
    assert_int_equal(run_driver(&out, &err, args), 1);
    unsetenv("LATHE_READ_LIMIT");
    assert_contains(err, "not enough memory to train, even at batch 1: the run needs ");
    assert_contains(err, "1 B (1 bytes, from LATHE_MEMORY_LIMIT)");
    const char *p = strstr(err, "the run needs ");
    p = strchr(p, '(');
    long long need = p ? strtoll(p + 1, NULL, 10) : 0;
    assert_true(need > 0);
    free(out);
    free(err);
    return need;
}

static void test_driver_stops_before_the_first_step_with_the_batch_that_fits(void **state) {
    (void)state;
    long long need1 = need_at_batch_1();
    char limit[32];
    snprintf(limit, sizeof limit, "%lld", need1 + 2000);
    setenv(RT_MEMORY_LIMIT_ENV, limit, 1);
    char *out, *err;
    const char *args[] = {"train", "--data", ts_dir, "--epochs", "1", "--batch", "300", NULL};
    int64_t calls = fake_calls;
    assert_int_equal(run_driver(&out, &err, args), 1);
    assert_int_equal(fake_calls, calls); /* not one step */
    assert_contains(err, "not enough memory to train at batch 300: the run needs ");
    assert_contains(err, "train-step arena");
    assert_contains(err, "data sets");
    assert_contains(err, "from LATHE_MEMORY_LIMIT");
    const char *p = strstr(err, "the largest batch that fits is ");
    assert_non_null(p);
    long long best = strtoll(p + strlen("the largest batch that fits is "), NULL, 10);
    assert_true(best >= 1 && best < 300);
    assert_false(out && strstr(out, "Epoch 1"));
    free(out);
    free(err);

    char b[32];
    snprintf(b, sizeof b, "%lld", best);
    const char *fits[] = {"train", "--data", ts_dir, "--epochs", "1", "--batch", b, NULL};
    assert_int_equal(run_driver(&out, &err, fits), 0);
    assert_contains(out, "Done!");
    free(out);
    free(err);

    snprintf(b, sizeof b, "%lld", best + 1);
    assert_int_equal(run_driver(&out, &err, fits), 1);
    assert_contains(err, "not enough memory to train at batch");
    free(out);
    free(err);

    const char *autos[] = {"train", "--data", ts_dir, "--epochs", "1", "--batch", "auto", NULL};
    assert_int_equal(run_driver(&out, &err, autos), 0);
    char first[64];
    snprintf(first, sizeof first, "Batch: %lld (--batch auto: the largest that fits in ", best);
    assert_non_null(out);
    assert_true(strncmp(out, first, strlen(first)) == 0);
    assert_contains(out, "Done!");
    free(out);
    free(err);
    unsetenv(RT_MEMORY_LIMIT_ENV);
}

static void test_driver_batch_auto_caps_at_the_training_samples(void **state) {
    (void)state;
    setenv(RT_MEMORY_LIMIT_ENV, "1G", 1);
    char *out, *err;
    /* recipe batch 8: at most 8 * 64 = 512, and the data has 300 samples */
    const char *args[] = {"train", "--data", ts_dir, "--epochs", "1", "--batch", "auto", NULL};
    assert_int_equal(run_driver(&out, &err, args), 0);
    assert_non_null(out);
    assert_true(strncmp(out, "Batch: 300 (--batch auto: ", 26) == 0);
    assert_contains(out, "at most 300, the training samples");
    free(out);
    free(err);
    const char *limited[] = {"train", "--data", ts_dir, "--epochs", "1", "--batch", "auto", "--set", "batch=2", NULL};
    assert_int_equal(run_driver(&out, &err, limited), 0);
    assert_true(strncmp(out, "Batch: 128 (--batch auto: ", 26) == 0);
    assert_contains(out, "at most 128, 64 times the recipe's batch");
    free(out);
    free(err);
    unsetenv(RT_MEMORY_LIMIT_ENV);
}

static void test_driver_bad_limit_and_batch_auto_outside_train(void **state) {
    (void)state;
    setenv(RT_MEMORY_LIMIT_ENV, "12 parsecs", 1);
    char *out, *err;
    const char *args[] = {"train", "--data", ts_dir, "--epochs", "1", NULL};
    assert_int_equal(run_driver(&out, &err, args), 1);
    assert_contains(err, "LATHE_MEMORY_LIMIT=12 parsecs: expected a byte count");
    free(out);
    free(err);
    unsetenv(RT_MEMORY_LIMIT_ENV);
    const char *ev[] = {"eval", "--weights", "w.safetensors", "--batch", "auto", NULL};
    assert_int_equal(run_driver(&out, &err, ev), 2);
    assert_contains(err, "--batch auto: for train");
    free(out);
    free(err);
}

static void test_driver_info_prints_the_memory_available(void **state) {
    (void)state;
    setenv(RT_MEMORY_LIMIT_ENV, "3G", 1);
    char *out, *err;
    const char *args[] = {"info", NULL};
    assert_int_equal(run_driver(&out, &err, args), 0); /* the fake manifest has no memory plan: no peak line */
    assert_false(out && strstr(out, "memory available"));
    free(out);
    free(err);
    unsetenv(RT_MEMORY_LIMIT_ENV);
    FILE *f = tmpfile();
    assert_non_null(f);
    RtManifest m;
    RtErr e;
    assert_int_equal(rt_manifest_parse(&m, lathe_manifest, &e), RT_OK);
    setenv(RT_MEMORY_LIMIT_ENV, "3G", 1);
    rt_mem_info(f, &m, m.recipe);
    unsetenv(RT_MEMORY_LIMIT_ENV);
    rewind(f);
    char line[512] = "";
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "memory available: 3221225472 bytes (3.0 GiB, LATHE_MEMORY_LIMIT)\n");
    fclose(f);
    rt_manifest_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meminfo_reads_mem_available_in_bytes),
        cmocka_unit_test(test_meminfo_without_mem_available_fails),
        cmocka_unit_test(test_cgroup_v2_room_is_limit_less_usage_without_inactive_files),
        cmocka_unit_test(test_cgroup_max_and_v1_huge_limit_are_unlimited),
        cmocka_unit_test(test_cgroup_v1_usage_past_limit_leaves_nothing),
        cmocka_unit_test(test_cgroup_unreadable_values_fail),
        cmocka_unit_test(test_parse_bytes_takes_counts_and_binary_suffixes),
        cmocka_unit_test(test_parse_bytes_refuses_the_rest),
        cmocka_unit_test(test_available_takes_the_environment_cap),
        cmocka_unit_test(test_largest_solves_the_linear_peak),
        cmocka_unit_test(test_largest_is_zero_when_batch_1_does_not_fit),
        cmocka_unit_test(test_largest_treats_overflow_as_not_fitting),
        cmocka_unit_test(test_mem_text),
        cmocka_unit_test(test_need_counts_every_buffer_of_the_fused_step),
        cmocka_unit_test(test_need_counts_gradients_and_adam_state_of_the_runtime_optimizer),
        cmocka_unit_test(test_driver_stops_before_the_first_step_with_the_batch_that_fits),
        cmocka_unit_test(test_driver_batch_auto_caps_at_the_training_samples),
        cmocka_unit_test(test_driver_bad_limit_and_batch_auto_outside_train),
        cmocka_unit_test(test_driver_info_prints_the_memory_available),
    };
    return cmocka_run_group_tests(tests, ts_setup_fake_data, ts_teardown_dir);
}
