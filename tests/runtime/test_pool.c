/* test_pool.c: the thread pool of lathe_kern.h: every index of a loop runs exactly once, whatever the count,
   the thread count and the forced split; nested loops run serially; small loops stay on the caller; the
   writes of every range are visible when the loop returns. */
#include "lathe_kern.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* Every index adds one to its slot; a range also records the thread that ran it. */
typedef struct Cover {
    int64_t count;
    int *hits;
    atomic_int ranges;
    atomic_int bad_range; /* a range outside [0, count) or empty */
    atomic_int off_caller; /* ranges run by a worker */
} Cover;

static void cover_range(void *ctx, int64_t lo, int64_t hi) {
    Cover *c = ctx;
    if (lo < 0 || hi > c->count || lo >= hi)
        atomic_fetch_add(&c->bad_range, 1);
    for (int64_t i = lo; i < hi && i >= 0 && i < c->count; i++)
        c->hits[i]++; /* plain writes: the pool's ordering makes them visible to the caller */
    atomic_fetch_add(&c->ranges, 1);
    if (lathe_pool_thread_index() != 0)
        atomic_fetch_add(&c->off_caller, 1);
}

static void cover(int64_t count, int64_t cost, Cover *c) {
    memset(c, 0, sizeof *c);
    c->count = count;
    c->hits = calloc((size_t)(count > 0 ? count : 1), sizeof *c->hits);
    assert_non_null(c->hits);
    lathe_parallel_for(count, cost, cover_range, c);
}

static void assert_each_once(Cover *c) {
    for (int64_t i = 0; i < c->count; i++)
        if (c->hits[i] != 1)
            fail_msg("index %lld of %lld ran %d times", (long long)i, (long long)c->count, c->hits[i]);
    assert_int_equal(atomic_load(&c->bad_range), 0);
    free(c->hits);
}

static void test_pool_covers_every_index_once(void **state) {
    static const int threads[] = {1, 2, 3, 5, 8};
    static const int64_t counts[] = {1, 2, 3, 7, 64, 100, 1000, 4099};
    for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
        lathe_pool_init(threads[t]);
        assert_int_equal(lathe_pool_threads(), threads[t]);
        for (size_t k = 0; k < sizeof counts / sizeof *counts; k++)
            for (int rep = 0; rep < 20; rep++) {
                Cover c;
                cover(counts[k], 1 << 20, &c);
                /* the default split: one range per thread at most */
                int expect = counts[k] < threads[t] ? (int)counts[k] : threads[t];
                assert_int_equal(atomic_load(&c.ranges), expect);
                assert_each_once(&c);
            }
    }
}

static void test_pool_forced_split_covers_every_index_once(void **state) {
    static const int threads[] = {1, 2, 4};
    static const int parts[] = {1, 2, 3, 7, 16, 1000};
    for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
        lathe_pool_init(threads[t]);
        for (size_t p = 0; p < sizeof parts / sizeof *parts; p++) {
            lathe_pool_test_split(parts[p]);
            for (int64_t count = 1; count < 40; count += 3) {
                Cover c;
                cover(count, 1, &c); /* tiny work: split anyway */
                int64_t expect = count < 2 ? 1 : parts[p] < count ? parts[p] : count;
                assert_int_equal(atomic_load(&c.ranges), expect);
                assert_each_once(&c);
            }
        }
        lathe_pool_test_split(0);
    }
}

static void test_pool_zero_and_negative_count_run_nothing(void **state) {
    lathe_pool_init(2);
    Cover c;
    cover(0, 1 << 20, &c);
    assert_int_equal(atomic_load(&c.ranges), 0);
    free(c.hits);
    lathe_parallel_for(-5, 1 << 20, cover_range, &c);
    assert_int_equal(atomic_load(&c.ranges), 0);
}

static void test_pool_small_work_runs_serially_on_caller(void **state) {
    lathe_pool_init(4);
    Cover c;
    cover(100, 1, &c); /* 100 units of work: not worth a wake-up */
    assert_int_equal(atomic_load(&c.ranges), 1);
    assert_int_equal(atomic_load(&c.off_caller), 0);
    assert_each_once(&c);
    cover(100, 0, &c);
    assert_int_equal(atomic_load(&c.ranges), 1);
    assert_each_once(&c);
}

static void test_pool_huge_cost_does_not_overflow(void **state) {
    lathe_pool_init(2);
    Cover c;
    cover(1000, INT64_MAX / 3, &c);
    assert_int_equal(atomic_load(&c.ranges), 2);
    assert_each_once(&c);
}

/* A range that runs a whole loop inside itself: the inner loop must run on the range's own thread. */
typedef struct Nest {
    int64_t inner;
    int *hits;
    atomic_int inner_ranges;
    atomic_int wrong_thread;
} Nest;

typedef struct Inner {
    Nest *nest;
    int64_t row;
    int thread;
} Inner;

static void inner_range(void *ctx, int64_t lo, int64_t hi) {
    Inner *in = ctx;
    if (lathe_pool_thread_index() != in->thread)
        atomic_fetch_add(&in->nest->wrong_thread, 1);
    for (int64_t j = lo; j < hi; j++)
        in->nest->hits[in->row * in->nest->inner + j]++;
    atomic_fetch_add(&in->nest->inner_ranges, 1);
}

static void outer_range(void *ctx, int64_t lo, int64_t hi) {
    Nest *n = ctx;
    for (int64_t i = lo; i < hi; i++) {
        Inner in = {n, i, lathe_pool_thread_index()};
        lathe_parallel_for(n->inner, 1 << 20, inner_range, &in);
    }
}

static void test_pool_nested_loop_runs_serially_in_its_range(void **state) {
    lathe_pool_init(3);
    Nest n = {.inner = 50};
    n.hits = calloc(30 * 50, sizeof *n.hits);
    assert_non_null(n.hits);
    lathe_parallel_for(30, 1 << 20, outer_range, &n);
    for (int i = 0; i < 30 * 50; i++)
        assert_int_equal(n.hits[i], 1);
    assert_int_equal(atomic_load(&n.inner_ranges), 30); /* one range per inner loop: not split */
    assert_int_equal(atomic_load(&n.wrong_thread), 0);
    free(n.hits);
}

static void test_pool_nested_loop_forced_split_still_covers(void **state) {
    lathe_pool_init(2);
    lathe_pool_test_split(4);
    Nest n = {.inner = 9};
    n.hits = calloc(8 * 9, sizeof *n.hits);
    assert_non_null(n.hits);
    lathe_parallel_for(8, 1, outer_range, &n);
    lathe_pool_test_split(0);
    for (int i = 0; i < 8 * 9; i++)
        assert_int_equal(n.hits[i], 1);
    assert_int_equal(atomic_load(&n.inner_ranges), 8 * 4);
    assert_int_equal(atomic_load(&n.wrong_thread), 0);
    free(n.hits);
}

static void test_pool_init_twice_resizes(void **state) {
    lathe_pool_init(4);
    assert_int_equal(lathe_pool_threads(), 4);
    lathe_pool_init(4);
    assert_int_equal(lathe_pool_threads(), 4);
    lathe_pool_init(2);
    assert_int_equal(lathe_pool_threads(), 2);
    Cover c;
    cover(10, 1 << 20, &c);
    assert_int_equal(atomic_load(&c.ranges), 2);
    assert_each_once(&c);
    lathe_pool_init(1);
    assert_int_equal(lathe_pool_threads(), 1);
    cover(10, 1 << 20, &c);
    assert_int_equal(atomic_load(&c.ranges), 1);
    assert_each_once(&c);
}

static void test_pool_init_zero_means_one_per_core(void **state) {
    lathe_pool_init(0);
    assert_true(lathe_pool_threads() >= 1);
    lathe_pool_init(-3);
    assert_true(lathe_pool_threads() >= 1);
    Cover c;
    cover(1000, 1 << 20, &c);
    assert_each_once(&c);
}

static void test_pool_caller_is_thread_zero(void **state) {
    lathe_pool_init(3);
    assert_int_equal(lathe_pool_thread_index(), 0);
}

/* Workers that sleep after an idle spell still wake for the next loop. */
static void test_pool_wakes_sleeping_workers(void **state) {
    lathe_pool_init(2);
    for (int rep = 0; rep < 3; rep++) {
        struct timespec ts = {0, 3 * 1000 * 1000}; /* longer than the workers' spin */
        nanosleep(&ts, NULL);
        Cover c;
        cover(1000, 1 << 20, &c);
        assert_int_equal(atomic_load(&c.ranges), 2);
        assert_each_once(&c);
    }
}

/* lathe_run_kernel passes the buffers and n through to every range. */
static int64_t kernel_sum[64];
static void sum_kernel(uint8_t **bufs, int64_t n, int64_t lo, int64_t hi) {
    const int32_t *in = (const int32_t *)bufs[1];
    int64_t *out = (int64_t *)bufs[0];
    for (int64_t i = lo; i < hi; i++)
        out[i] = (int64_t)in[i] * n;
}

static void test_pool_run_kernel_passes_buffers_and_n(void **state) {
    lathe_pool_init(2);
    int32_t in[64];
    for (int i = 0; i < 64; i++)
        in[i] = i + 1;
    uint8_t *bufs[2] = {(uint8_t *)kernel_sum, (uint8_t *)in};
    for (int parts = 0; parts <= 5; parts++) {
        lathe_pool_test_split(parts);
        memset(kernel_sum, 0, sizeof kernel_sum);
        lathe_run_kernel(sum_kernel, bufs, 7, 64, 1 << 20);
        for (int i = 0; i < 64; i++)
            assert_int_equal(kernel_sum[i], (int64_t)(i + 1) * 7);
    }
    lathe_pool_test_split(0);
}

/* Ranges of a count too large to iterate: recorded, then checked to tile [0, count) with balanced sizes. */
typedef struct Tiles {
    atomic_int n;
    int64_t lo[64], hi[64];
} Tiles;

static void record_range(void *ctx, int64_t lo, int64_t hi) {
    Tiles *t = ctx;
    int i = atomic_fetch_add(&t->n, 1);
    if (i < 64)
        t->lo[i] = lo, t->hi[i] = hi;
}

static void test_pool_huge_count_ranges_tile_exactly(void **state) {
    lathe_pool_init(3);
    const int64_t count = INT64_MAX - 5;
    for (int parts = 2; parts <= 7; parts++) {
        lathe_pool_test_split(parts);
        Tiles t = {0};
        lathe_parallel_for(count, 1, record_range, &t);
        assert_int_equal(atomic_load(&t.n), parts);
        int64_t at = 0;
        for (int k = 0; k < parts; k++) { /* find the range that starts where the last one ended */
            int j = 0;
            while (j < parts && t.lo[j] != at)
                j++;
            assert_true(j < parts);
            int64_t size = t.hi[j] - t.lo[j];
            assert_true(size >= count / parts && size <= count / parts + 1);
            at = t.hi[j];
        }
        assert_true(at == count);
    }
    lathe_pool_test_split(0);
}

static int teardown(void **state) {
    lathe_pool_test_split(0);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_pool_covers_every_index_once, teardown),
        cmocka_unit_test_teardown(test_pool_forced_split_covers_every_index_once, teardown),
        cmocka_unit_test_teardown(test_pool_zero_and_negative_count_run_nothing, teardown),
        cmocka_unit_test_teardown(test_pool_small_work_runs_serially_on_caller, teardown),
        cmocka_unit_test_teardown(test_pool_huge_cost_does_not_overflow, teardown),
        cmocka_unit_test_teardown(test_pool_nested_loop_runs_serially_in_its_range, teardown),
        cmocka_unit_test_teardown(test_pool_nested_loop_forced_split_still_covers, teardown),
        cmocka_unit_test_teardown(test_pool_init_twice_resizes, teardown),
        cmocka_unit_test_teardown(test_pool_init_zero_means_one_per_core, teardown),
        cmocka_unit_test_teardown(test_pool_caller_is_thread_zero, teardown),
        cmocka_unit_test_teardown(test_pool_wakes_sleeping_workers, teardown),
        cmocka_unit_test_teardown(test_pool_run_kernel_passes_buffers_and_n, teardown),
        cmocka_unit_test_teardown(test_pool_huge_count_ranges_tile_exactly, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
