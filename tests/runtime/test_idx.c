/* test_idx.c: IDX reading (plain and gzip) and every malformed file it must reject with the file name and
   byte offset; datasets checked against the model's inputs; gathering a batch. */
#include "support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_idx_reads_plain_images(void **state) {
    char p[512];
    uint8_t px[2 * 2 * 3] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255};
    uint32_t dims[3] = {2, 2, 3};
    write_idx(tmp_path(p, sizeof p, ts_dir, "plain"), 3, dims, px, false);
    RtIdx x;
    RtErr e;
    assert_int_equal(rt_idx_read(p, 2, RT_IDX_MAX_DIMS, &x, &e), RT_OK);
    assert_int_equal(x.count, 2);
    assert_int_equal(x.per_item, 6);
    assert_memory_equal(x.data, px, sizeof px);
    rt_idx_free(&x);
}

static void test_idx_reads_gzip_labels(void **state) {
    char p[512];
    uint8_t lab[5] = {3, 1, 4, 1, 5};
    uint32_t dims[1] = {5};
    write_idx(tmp_path(p, sizeof p, ts_dir, "labels.gz"), 1, dims, lab, true);
    RtIdx x;
    RtErr e;
    assert_int_equal(rt_idx_read(p, 1, 1, &x, &e), RT_OK);
    assert_int_equal(x.count, 5);
    assert_memory_equal(x.data, lab, 5);
    rt_idx_free(&x);
}

static void test_idx_truncated_data_names_offset(void **state) {
    char p[512];
    /* header for 10 labels, then only 3 */
    uint8_t bytes[] = {0, 0, 8, 1, 0, 0, 0, 10, 1, 2, 3};
    write_bytes(tmp_path(p, sizeof p, ts_dir, "short"), bytes, sizeof bytes);
    RtIdx x;
    RtErr e;
    assert_int_equal(rt_idx_read(p, 1, 1, &x, &e), RT_ERR);
    assert_contains(e.msg, p);
    assert_contains(e.msg, "truncated at byte offset 11");
}

static void test_idx_truncated_header(void **state) {
    char p[512];
    uint8_t bytes[] = {0, 0, 8, 3, 0, 0, 0, 10, 0, 0};
    write_bytes(tmp_path(p, sizeof p, ts_dir, "shorthead"), bytes, sizeof bytes);
    RtIdx x;
    RtErr e;
    assert_int_equal(rt_idx_read(p, 2, RT_IDX_MAX_DIMS, &x, &e), RT_ERR);
    assert_contains(e.msg, "truncated at byte offset 10");
}

static void test_idx_bad_magic(void **state) {
    char p[512];
    uint8_t bytes[] = {0, 0, 8, 1, 0, 0, 0, 1, 7};
    write_bytes(tmp_path(p, sizeof p, ts_dir, "labels-as-images"), bytes, sizeof bytes);
    RtIdx x;
    RtErr e;
    assert_int_equal(rt_idx_read(p, 2, RT_IDX_MAX_DIMS, &x, &e), RT_ERR);
    assert_contains(e.msg, p);
    assert_contains(e.msg, "bad magic 0x00000801 at byte offset 0");
}

static void test_idx_empty_file(void **state) {
    char p[512];
    write_bytes(tmp_path(p, sizeof p, ts_dir, "empty"), "", 0);
    RtIdx x;
    RtErr e;
    assert_int_equal(rt_idx_read(p, 1, 1, &x, &e), RT_ERR);
    assert_contains(e.msg, "empty file");
}

static void test_idx_huge_dims_rejected(void **state) {
    char p[512];
    uint8_t bytes[] = {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1};
    write_bytes(tmp_path(p, sizeof p, ts_dir, "huge"), bytes, sizeof bytes);
    RtIdx x;
    RtErr e;
    assert_int_equal(rt_idx_read(p, 2, RT_IDX_MAX_DIMS, &x, &e), RT_ERR);
    assert_contains(e.msg, "byte offset 8");
}

static void test_idx_large_claim_small_file_is_truncated(void **state) {
    char p[512];
    /* 1e6 x 28 x 28 claimed: within limits, but the data is missing; no giant allocation */
    uint8_t bytes[] = {0, 0, 8, 3, 0, 0x0f, 0x42, 0x40, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2};
    write_bytes(tmp_path(p, sizeof p, ts_dir, "claim"), bytes, sizeof bytes);
    RtIdx x;
    RtErr e;
    assert_int_equal(rt_idx_read(p, 2, RT_IDX_MAX_DIMS, &x, &e), RT_ERR);
    assert_contains(e.msg, "truncated at byte offset 18");
}

static void test_idx_trailing_data_rejected(void **state) {
    char p[512];
    uint8_t bytes[] = {0, 0, 8, 1, 0, 0, 0, 2, 1, 2, 3};
    write_bytes(tmp_path(p, sizeof p, ts_dir, "trailing"), bytes, sizeof bytes);
    RtIdx x;
    RtErr e;
    assert_int_equal(rt_idx_read(p, 1, 1, &x, &e), RT_ERR);
    assert_contains(e.msg, "unexpected data at byte offset 10");
}

static void test_idx_corrupt_gzip_rejected(void **state) {
    char p[512];
    uint8_t lab[4000];
    for (int i = 0; i < 4000; i++)
        lab[i] = (uint8_t)(i * 7919 % 251);
    uint32_t dims[1] = {4000};
    write_idx(tmp_path(p, sizeof p, ts_dir, "cut.gz"), 1, dims, lab, true);
    char *whole = read_text(p);
    FILE *f = fopen(p, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    write_bytes(p, whole, (size_t)n / 2); /* a gzip stream cut in the middle */
    free(whole);
    RtIdx x;
    RtErr e;
    assert_int_equal(rt_idx_read(p, 1, 1, &x, &e), RT_ERR);
    assert_contains(e.msg, p);
    assert_contains(e.msg, "byte offset");
}

/* zlib gives a gzip stream cut before any data as the end of the data with an error set: truncated, not an
   empty file. */
static void test_idx_gzip_cut_in_header_is_truncated(void **state) {
    char p[512];
    uint8_t lab[4000] = {0};
    uint32_t dims[1] = {4000};
    write_idx(tmp_path(p, sizeof p, ts_dir, "cuthead.gz"), 1, dims, lab, true);
    char *whole = read_text(p);
    write_bytes(p, whole, 14); /* the gzip header and a few bytes of deflate data */
    free(whole);
    RtIdx x;
    RtErr e;
    assert_int_equal(rt_idx_read(p, 1, 1, &x, &e), RT_ERR);
    assert_contains(e.msg, "cuthead.gz: truncated at byte offset 0 of the uncompressed data: unexpected end of file");
}

static void test_idx_missing_file(void **state) {
    char p[512];
    RtIdx x;
    RtErr e;
    assert_int_equal(rt_idx_read(tmp_path(p, sizeof p, ts_dir, "nope"), 1, 1, &x, &e), RT_ERR);
    assert_contains(e.msg, "No such file");
}

static RtManifest manifest(void) {
    RtManifest m;
    RtErr e;
    if (rt_manifest_parse(&m, lathe_manifest, &e) != RT_OK)
        fail_msg("%s", e.msg);
    return m;
}

static RtDataSpec spec(const char *prefix) {
    static char im[128], lb[128];
    snprintf(im, sizeof im, "%s-images", prefix);
    snprintf(lb, sizeof lb, "%s-labels", prefix);
    return (RtDataSpec){.present = true, .images = im, .labels = lb, .scale = 1.0 / 255};
}

static void test_dataset_count_mismatch(void **state) {
    char p[512];
    uint8_t px[3 * 4] = {0}, lab[2] = {0, 1};
    uint32_t di[3] = {3, 2, 2}, dl[1] = {2};
    write_idx(tmp_path(p, sizeof p, ts_dir, "mm-images"), 3, di, px, false);
    write_idx(tmp_path(p, sizeof p, ts_dir, "mm-labels"), 1, dl, lab, false);
    RtDataset d;
    RtErr e;
    RtDataSpec s = spec("mm");
    assert_int_equal(rt_dataset_load(&d, ts_dir, &s, &e), RT_ERR);
    assert_contains(e.msg, "3 images");
    assert_contains(e.msg, "2 labels");
}

static void test_dataset_per_sample_mismatch_names_both(void **state) {
    char p[512];
    uint8_t px[2 * 9] = {0}, lab[2] = {0, 1};
    uint32_t di[3] = {2, 3, 3}, dl[1] = {2};
    write_idx(tmp_path(p, sizeof p, ts_dir, "ps-images"), 3, di, px, false);
    write_idx(tmp_path(p, sizeof p, ts_dir, "ps-labels"), 1, dl, lab, false);
    RtManifest m = manifest();
    RtDataset d;
    RtErr e;
    RtDataSpec s = spec("ps");
    assert_int_equal(rt_dataset_load(&d, ts_dir, &s, &e), RT_OK);
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_ERR);
    assert_contains(e.msg, "9 values per sample");
    assert_contains(e.msg, "'x' f32[N, 4] takes 4");
    rt_dataset_free(&d);
    rt_manifest_free(&m);
}

static void test_dataset_label_out_of_range_names_record(void **state) {
    char p[512];
    uint8_t px[3 * 4] = {0}, lab[3] = {0, 2, 3};
    uint32_t di[3] = {3, 2, 2}, dl[1] = {3};
    write_idx(tmp_path(p, sizeof p, ts_dir, "lr-images"), 3, di, px, false);
    write_idx(tmp_path(p, sizeof p, ts_dir, "lr-labels"), 1, dl, lab, false);
    RtManifest m = manifest();
    RtDataset d;
    RtErr e;
    RtDataSpec s = spec("lr");
    assert_int_equal(rt_dataset_load(&d, ts_dir, &s, &e), RT_OK);
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_ERR);
    assert_contains(e.msg, "record 2");
    assert_contains(e.msg, "label 3");
    rt_dataset_free(&d);
    rt_manifest_free(&m);
}

static void test_dataset_gather_scales_and_converts(void **state) {
    write_fake_dataset(ts_dir, "g", 6, true);
    RtDataset d;
    RtErr e;
    RtDataSpec s = spec("g");
    assert_int_equal(rt_dataset_load(&d, ts_dir, &s, &e), RT_OK);
    int64_t idx[2] = {4, 1};
    float x[8];
    int64_t y[2];
    rt_dataset_gather(&d, idx, 2, RT_F32, x, RT_I64, y);
    assert_int_equal(y[0], 1);
    assert_int_equal(y[1], 1);
    for (int k = 0; k < 4; k++) {
        assert_true(x[k] == (float)d.images[16 + k] / 255.0f); /* as torchvision's ToTensor divides */
        assert_true(x[4 + k] == (float)d.images[4 + k] / 255.0f);
    }
    rt_dataset_free(&d);
}

static void test_dataset_absolute_names_ignore_dir(void **state) {
    write_fake_dataset(ts_dir, "abs", 3, false);
    char im[512], lb[512];
    tmp_path(im, sizeof im, ts_dir, "abs-images");
    tmp_path(lb, sizeof lb, ts_dir, "abs-labels");
    RtDataSpec s = {.present = true, .images = im, .labels = lb, .scale = 1};
    RtDataset d;
    RtErr e;
    assert_int_equal(rt_dataset_load(&d, "/nonexistent", &s, &e), RT_OK);
    assert_int_equal(d.count, 3);
    rt_dataset_free(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_reads_plain_images),
        cmocka_unit_test(test_idx_reads_gzip_labels),
        cmocka_unit_test(test_idx_truncated_data_names_offset),
        cmocka_unit_test(test_idx_truncated_header),
        cmocka_unit_test(test_idx_bad_magic),
        cmocka_unit_test(test_idx_empty_file),
        cmocka_unit_test(test_idx_huge_dims_rejected),
        cmocka_unit_test(test_idx_large_claim_small_file_is_truncated),
        cmocka_unit_test(test_idx_trailing_data_rejected),
        cmocka_unit_test(test_idx_corrupt_gzip_rejected),
        cmocka_unit_test(test_idx_gzip_cut_in_header_is_truncated),
        cmocka_unit_test(test_idx_missing_file),
        cmocka_unit_test(test_dataset_count_mismatch),
        cmocka_unit_test(test_dataset_per_sample_mismatch_names_both),
        cmocka_unit_test(test_dataset_label_out_of_range_names_record),
        cmocka_unit_test(test_dataset_gather_scales_and_converts),
        cmocka_unit_test(test_dataset_absolute_names_ignore_dir),
    };
    return cmocka_run_group_tests(tests, ts_setup_dir, ts_teardown_dir);
}
