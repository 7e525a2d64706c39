/* test_budget.c: the readers' budget of bytes for one load (runtime/budget.h, issue 10): a data set with its
   labels or a checkpoint past LATHE_READ_LIMIT stops with one message naming the file, what it was reading
   and the budget; the same files under the budget load; what a reader frees during the load is given back;
   jansson's allocations for a checkpoint's header are counted; the default is the memory there is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "budget.h"
#include "support.h"

static int setup(void **state) {
    unsetenv("LATHE_READ_LIMIT");
    unsetenv("LATHE_MEMORY_LIMIT");
    return ts_setup_dir(state);
}

static int teardown(void **state) {
    unsetenv("LATHE_READ_LIMIT");
    unsetenv("LATHE_MEMORY_LIMIT");
    return ts_teardown_dir(state);
}

/* ---------------------------------------------------------------- data sets */

/* 100 images of 28x28 bytes (78,400 bytes of data) and their 100 labels, as IDX files */
static RtDataSpec idx_set(void) {
    static uint8_t pixels[100 * 28 * 28], labels[100];
    char path[512];
    write_idx(tmp_path(path, sizeof path, ts_dir, "images"), 3, (const uint32_t[]){100, 28, 28}, pixels, true);
    write_idx(tmp_path(path, sizeof path, ts_dir, "labels"), 1, (const uint32_t[]){100}, labels, false);
    return (RtDataSpec){.present = true, .kind = RT_DATA_IDX, .images = "images", .labels = "labels", .scale = 1};
}

static void test_idx_set_over_budget_fails_with_the_message(void **state) {
    RtDataSpec s = idx_set();
    setenv("LATHE_READ_LIMIT", "64K", 1);
    RtDataset d;
    RtErr e = {{0}};
    assert_int_equal(rt_dataset_load(&d, ts_dir, &s, &e), RT_ERR);
    assert_contains(e.msg, "/images: reading the IDX data needs 78400 more bytes, past the data set's read budget of "
                           "65536 bytes (LATHE_READ_LIMIT)");
}

static void test_idx_set_under_budget_loads(void **state) {
    RtDataSpec s = idx_set();
    setenv("LATHE_READ_LIMIT", "100K", 1);
    RtDataset d;
    RtErr e = {{0}};
    if (rt_dataset_load(&d, ts_dir, &s, &e) != RT_OK)
        fail_msg("%s", e.msg);
    assert_int_equal(d.count, 100);
    rt_dataset_free(&d);
}

/* The labels count with their images: a budget that the images alone fit stops at the labels file. */
static void test_idx_labels_count_with_the_images(void **state) {
    RtDataSpec s = idx_set();
    setenv("LATHE_READ_LIMIT", "78450", 1);
    RtDataset d;
    RtErr e = {{0}};
    assert_int_equal(rt_dataset_load(&d, ts_dir, &s, &e), RT_ERR);
    assert_contains(e.msg, "/labels: reading the IDX data needs 100 more bytes");
    assert_contains(e.msg, "of which 78400 are already allocated");
    /* and each load has its own budget: the labels alone load under it */
    RtIdx lb;
    char path[600];
    assert_int_equal(rt_idx_read(tmp_path(path, sizeof path, ts_dir, "labels"), 1, 1, &lb, &e), RT_OK);
    rt_idx_free(&lb);
}

static void test_csv_over_budget_fails_with_the_message(void **state) {
    char path[600];
    FILE *f = fopen(tmp_path(path, sizeof path, ts_dir, "a.csv"), "w");
    assert_non_null(f);
    fprintf(f, "x,y,label\n");
    for (int i = 0; i < 5000; i++)
        fprintf(f, "%d,%d,%d\n", i, i + 1, i % 3);
    fclose(f);
    RtDataSpec s = {.present = true, .kind = RT_DATA_CSV, .images = "a.csv", .header = true, .label_column = -1,
                    .delimiter = ','};
    RtDataset d;
    RtErr e = {{0}};
    setenv("LATHE_READ_LIMIT", "160K", 1);
    assert_int_equal(rt_dataset_load(&d, ts_dir, &s, &e), RT_ERR);
    assert_contains(e.msg, "a.csv: reading the features needs");
    assert_contains(e.msg, "the data set's read budget of 163840 bytes");
    setenv("LATHE_READ_LIMIT", "400K", 1);
    if (rt_dataset_load(&d, ts_dir, &s, &e) != RT_OK)
        fail_msg("%s", e.msg);
    assert_int_equal(d.count, 5000);
    rt_dataset_free(&d);
}

/* A folder of 100 PGMs of 16x16: each image's file and pixels are freed once it is copied into the data set,
   and given back, so that the load needs the data set and one image, not every image read. */
static void test_images_freed_during_the_load_are_given_back(void **state) {
    char path[700];
    mkdir(tmp_path(path, sizeof path, ts_dir, "f"), 0700);
    mkdir(tmp_path(path, sizeof path, ts_dir, "f/a"), 0700);
    uint8_t pgm[15 + 256];
    memcpy(pgm, "P5\n16 16\n255\n", 13);
    memset(pgm + 13, 7, sizeof pgm - 13);
    for (int i = 0; i < 100; i++) {
        char name[64];
        snprintf(name, sizeof name, "f/a/%03d.pgm", i);
        write_bytes(tmp_path(path, sizeof path, ts_dir, name), pgm, 13 + 256);
    }
    RtDataSpec s = {.present = true, .kind = RT_DATA_IMAGES, .images = "f", .scale = 1, .grayscale = true};
    RtDataset d;
    RtErr e = {{0}};
    setenv("LATHE_READ_LIMIT", "48K", 1); /* 25,600 bytes of images and the file list; 100 files read take 52,000 */
    if (rt_dataset_load(&d, ts_dir, &s, &e) != RT_OK)
        fail_msg("%s", e.msg);
    assert_int_equal(d.count, 100);
    rt_dataset_free(&d);
    setenv("LATHE_READ_LIMIT", "20K", 1);
    assert_int_equal(rt_dataset_load(&d, ts_dir, &s, &e), RT_ERR);
    assert_contains(e.msg, "/f: reading the images needs 25600 more bytes, past the data set's read budget");
}

/* ---------------------------------------------------------------- checkpoints */

static float weights[4096];

static const char *save_checkpoint(int ntensors) {
    static char path[600];
    tmp_path(path, sizeof path, ts_dir, "c.safetensors");
    RtTensor *ts = calloc((size_t)ntensors, sizeof *ts);
    char (*names)[16] = calloc((size_t)ntensors, sizeof *names);
    assert_true(ts && names);
    for (int i = 0; i < ntensors; i++) {
        snprintf(names[i], sizeof names[i], "t%d", i);
        ts[i] = (RtTensor){names[i], RT_F32, 1, {4096 / ntensors}, weights + i * (4096 / ntensors)};
    }
    RtErr e;
    if (rt_st_save(path, ts, ntensors, NULL, &e) != RT_OK)
        fail_msg("%s", e.msg);
    free(ts);
    free(names);
    return path;
}

static void test_checkpoint_over_budget_fails_with_the_message(void **state) {
    const char *p = save_checkpoint(1);
    RtTensor t = {"t0", RT_F32, 1, {4096}, weights};
    RtErr e = {{0}};
    setenv("LATHE_READ_LIMIT", "8K", 1);
    assert_int_equal(rt_st_load(p, &t, 1, NULL, 0, NULL, &e), RT_ERR);
    assert_contains(e.msg, "c.safetensors: reading the tensors' data needs 16385 more bytes, past the checkpoint's "
                           "read budget of 8192 bytes (LATHE_READ_LIMIT)");
    setenv("LATHE_READ_LIMIT", "32K", 1);
    if (rt_st_load(p, &t, 1, NULL, 0, NULL, &e) != RT_OK)
        fail_msg("%s", e.msg);
}

/* 512 tensors of 8 floats: the header's text is about 30 KB and 16 KB of data, but jansson's objects for it
   take several times the text, and count too. */
static void test_checkpoint_header_json_counts(void **state) {
    const char *p = save_checkpoint(512);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    char limit[32];
    snprintf(limit, sizeof limit, "%lld", (long long)st.st_size + 4096);
    setenv("LATHE_READ_LIMIT", limit, 1);
    json_t *meta = NULL;
    RtErr e = {{0}};
    assert_int_equal(rt_st_read_meta(p, &meta, &e), RT_ERR);
    assert_contains(e.msg, "c.safetensors: reading the JSON header needs");
    assert_contains(e.msg, "past the checkpoint's read budget");
    setenv("LATHE_READ_LIMIT", "4M", 1);
    if (rt_st_read_meta(p, &meta, &e) != RT_OK)
        fail_msg("%s", e.msg);
    json_decref(meta);
}

/* ---------------------------------------------------------------- the limit */

static void test_default_is_the_memory_there_is(void **state) {
    RtDataSpec s = idx_set();
    setenv("LATHE_MEMORY_LIMIT", "64K", 1);
    RtDataset d;
    RtErr e = {{0}};
    assert_int_equal(rt_dataset_load(&d, ts_dir, &s, &e), RT_ERR);
    assert_contains(e.msg, "read budget of 65536 bytes (the memory there is: LATHE_MEMORY_LIMIT; LATHE_READ_LIMIT "
                           "sets another)");
}

static void test_bad_limit_is_refused(void **state) {
    RtDataSpec s = idx_set();
    setenv("LATHE_READ_LIMIT", "lots", 1);
    RtDataset d;
    RtErr e = {{0}};
    assert_int_equal(rt_dataset_load(&d, ts_dir, &s, &e), RT_ERR);
    assert_string_equal(e.msg, "LATHE_READ_LIMIT=lots: expected a byte count, such as 2000000000, 512M or 8G");
}

/* Outside a load nothing is counted; an allocation past the budget is refused before it is made. */
static void test_take_and_give(void **state) {
    RtErr e = {{0}};
    assert_int_equal(rt_budget_take(1ll << 50, "f", "x", &e), RT_OK);
    setenv("LATHE_READ_LIMIT", "1000", 1);
    RtBudget b;
    assert_int_equal(rt_budget_begin(&b, "test", &e), RT_OK);
    assert_int_equal(rt_budget_take(600, "f", "x", &e), RT_OK);
    assert_null(rt_budget_malloc(500, "f", "the rest", &e));
    assert_string_equal(e.msg, "f: reading the rest needs 500 more bytes, past the test's read budget of 1000 bytes "
                               "(LATHE_READ_LIMIT), of which 600 are already allocated");
    rt_budget_give(200);
    void *p = rt_budget_malloc(500, "f", "the rest", &e);
    assert_non_null(p);
    assert_int_equal(b.held, 900);
    p = rt_budget_realloc(p, 500, 100, "f", "the rest", &e);
    assert_int_equal(b.held, 500);
    free(p);
    rt_budget_end(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_idx_set_over_budget_fails_with_the_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_set_under_budget_loads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idx_labels_count_with_the_images, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_over_budget_fails_with_the_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_images_freed_during_the_load_are_given_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_over_budget_fails_with_the_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_header_json_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_is_the_memory_there_is, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_limit_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_take_and_give, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
