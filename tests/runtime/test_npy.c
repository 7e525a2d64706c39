/* test_npy.c: the npy(x, y, scale) source: .npy files of format 1.0, 2.0 and 3.0 and each dtype read, plain
   and gzip, labels as classes or as values; every malformed file rejected with its name and byte offset;
   the recipe's npy(...) read and a whole training run of the driver on .npy files. */
#include "support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

/* A .npy file as numpy.save writes it: magic, version, the header's length, the dict padded with spaces and
   a newline to a multiple of 64 bytes, then the data. dict is written as given (so tests can break it). */
static const char *write_npy_raw(const char *name, int major, const char *dict, const void *data, size_t nbytes,
                                 bool gz) {
    static char p[512];
    tmp_path(p, sizeof p, ts_dir, name);
    int lenbytes = major == 1 ? 2 : 4;
    size_t head = 8 + (size_t)lenbytes, dlen = strlen(dict), hlen = dlen + 1;
    while ((head + hlen) % 64)
        hlen++;
    size_t total = head + hlen + nbytes;
    uint8_t *buf = calloc(1, total);
    assert_non_null(buf);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (uint8_t)major;
    buf[7] = 0;
    for (int i = 0; i < lenbytes; i++)
        buf[8 + i] = (uint8_t)(hlen >> (8 * i));
    memcpy(buf + head, dict, dlen);
    memset(buf + head + dlen, ' ', hlen - dlen - 1);
    buf[head + hlen - 1] = '\n';
    if (nbytes)
        memcpy(buf + head + hlen, data, nbytes);
    if (gz) {
        gzFile f = gzopen(p, "wb");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, buf, (unsigned)total), (int)total);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        write_bytes(p, buf, total);
    }
    free(buf);
    return p;
}

static const char *write_npy(const char *name, const char *descr, const char *shape, const void *data,
                             size_t nbytes) {
    char dict[256];
    snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    return write_npy_raw(name, 1, dict, data, nbytes, false);
}

static RtDataSpec spec(const char *x, const char *y) {
    return (RtDataSpec){.present = true, .kind = RT_DATA_NPY, .images = x, .labels = y, .scale = 1};
}

static int load(RtDataset *d, const RtDataSpec *s, RtErr *e) { return rt_dataset_load(d, ts_dir, s, e); }

/* ---------------------------------------------------------------- reading */

static void test_npy_f32_images_and_i64_labels(void **state) {
    float x[3 * 2 * 2];
    for (int i = 0; i < 12; i++)
        x[i] = (float)i * 0.5f;
    int64_t y[3] = {2, 0, 1};
    write_npy("x.npy", "<f4", "(3, 2, 2)", x, sizeof x);
    write_npy("y.npy", "<i8", "(3,)", y, sizeof y);
    RtDataSpec s = spec("x.npy", "y.npy");
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(d.count, 3);
    assert_int_equal(d.per_sample, 4);
    assert_int_equal(d.per_label, 1);
    assert_int_equal(d.images_dtype, RT_F32);
    assert_false(d.regression);
    RtManifest m = ts_model("\"dtype\": \"f32\", \"shape\": [-1, 4]", "\"dtype\": \"i64\", \"shape\": [-1]",
                            "\"dtype\": \"f32\", \"shape\": [-1, 3]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_OK);
    int64_t idx[2] = {2, 0}, lab[2];
    float got[8];
    rt_dataset_gather(&d, idx, 2, RT_F32, got, RT_I64, lab);
    assert_memory_equal(got, x + 8, 4 * sizeof *got);
    assert_memory_equal(got + 4, x, 4 * sizeof *got);
    assert_int_equal(lab[0], 1);
    assert_int_equal(lab[1], 2);
    rt_dataset_free(&d);
    rt_manifest_free(&m);
}

/* The 2.0 and 3.0 headers have a 4-byte length; 3.0 allows UTF-8 in the dict. Gzip is read as IDX is. */
static void test_npy_versions_two_and_three_and_gzip(void **state) {
    double x[2] = {1.25, -3};
    for (int major = 2; major <= 3; major++)
        for (int gz = 0; gz < 2; gz++) {
            write_npy_raw("v.npy", major, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,)}", x, sizeof x, gz);
            RtNpy a;
            RtErr e;
            char p[512];
            assert_int_equal(rt_npy_read(tmp_path(p, sizeof p, ts_dir, "v.npy"), &a, &e), RT_OK);
            assert_int_equal(a.dtype, RT_F64);
            assert_int_equal(a.ndims, 1);
            assert_int_equal(a.count, 2);
            assert_int_equal(a.per_item, 1);
            assert_int_equal(a.offset, 128); /* 12 bytes and a dict of 55 padded to 64-byte alignment */
            assert_memory_equal(a.data, x, sizeof x);
            free(a.data);
        }
}

/* uint8 pixels stay bytes and are divided as IDX's are: x / 255 as torchvision's ToTensor. */
static void test_npy_u8_scaled_as_idx(void **state) {
    uint8_t x[2 * 3] = {0, 1, 128, 254, 255, 7};
    uint8_t y[2] = {1, 0};
    write_npy("u.npy", "|u1", "(2, 3)", x, sizeof x);
    write_npy("uy.npy", "|u1", "(2,)", y, sizeof y);
    RtDataSpec s = spec("u.npy", "uy.npy");
    s.scale = 1.0 / 255;
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(d.images_dtype, RT_U8);
    int64_t idx[2] = {0, 1}, lab[2];
    float got[6];
    rt_dataset_gather(&d, idx, 2, RT_F32, got, RT_I64, lab);
    for (int i = 0; i < 6; i++)
        assert_true(got[i] == (float)x[i] / 255.0f);
    assert_int_equal(lab[0], 1);
    rt_dataset_free(&d);
}

static void test_npy_i32_x_and_dtype_conversion(void **state) {
    int32_t x[4] = {-5, 10, 300, 7};
    int32_t y[2] = {0, 1};
    write_npy("i.npy", "<i4", "(2, 2)", x, sizeof x);
    write_npy("iy.npy", "<i4", "(2,)", y, sizeof y);
    RtDataSpec s = spec("i.npy", "iy.npy");
    s.scale = 0.5;
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    int64_t idx[2] = {1, 0};
    double got[4];
    int32_t lab[2];
    rt_dataset_gather(&d, idx, 2, RT_F64, got, RT_I32, lab);
    double want[4] = {150, 3.5, -2.5, 5};
    assert_memory_equal(got, want, sizeof want);
    assert_int_equal(lab[0], 1);
    rt_dataset_free(&d);
}

/* Float labels are values to regress on: [count] or [count, K] against the model's label. */
static void test_npy_float_labels_are_regression_targets(void **state) {
    float x[3] = {1, 2, 3}, y[3 * 2] = {0.5f, 1, 1.5f, 2, 2.5f, 3};
    write_npy("rx.npy", "<f4", "(3,)", x, sizeof x);
    write_npy("ry.npy", "<f4", "(3, 2)", y, sizeof y);
    RtDataSpec s = spec("rx.npy", "ry.npy");
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_true(d.regression);
    assert_int_equal(d.per_label, 2);
    RtManifest m = ts_model("\"dtype\": \"f32\", \"shape\": [-1, 1]", "\"dtype\": \"f32\", \"shape\": [-1, 2]",
                            "\"dtype\": \"f32\", \"shape\": [-1, 2]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_OK);
    int64_t i = 2;
    float gx, gy[2];
    rt_dataset_gather(&d, &i, 1, RT_F32, &gx, RT_F32, gy);
    assert_true(gx == 3 && gy[0] == 2.5f && gy[1] == 3);
    assert_true(rt_dataset_label(&d, 1, 1) == 2);
    rt_manifest_free(&m);
    m = ts_model("\"dtype\": \"f32\", \"shape\": [-1, 1]", "\"dtype\": \"i64\", \"shape\": [-1, 2]",
                 "\"dtype\": \"f32\", \"shape\": [-1, 2]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_ERR);
    assert_contains(e.msg,
                    "ry.npy: npy's y holds real-valued labels, but the model's 'label' is i64[N, 2] (npy(..., "
                    "regression = true) types it as values)");
    rt_manifest_free(&m);
    m = ts_model("\"dtype\": \"f32\", \"shape\": [-1, 1]", "\"dtype\": \"f32\", \"shape\": [-1, 1]",
                 "\"dtype\": \"f32\", \"shape\": [-1, 1]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_ERR);
    assert_contains(e.msg, "ry.npy: 2 labels per sample, but the model's 'label' f32[N, 1] takes 1 per sample");
    rt_dataset_free(&d);
    rt_manifest_free(&m);
}

static void test_npy_without_y(void **state) {
    float x[4] = {1, 2, 3, 4};
    write_npy("nx.npy", "<f4", "(2, 2)", x, sizeof x);
    RtDataSpec s = spec("nx.npy", NULL);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_null(d.labels);
    assert_int_equal(d.count, 2);
    ts_expect_check_error(&d, "\"dtype\": \"f32\", \"shape\": [-1, 2]", "\"dtype\": \"i64\", \"shape\": [-1]",
                          "\"dtype\": \"f32\", \"shape\": [-1, 3]",
                          "nx.npy: npy(x) without y gives no labels, but the model takes 'label' i64[N]");
    rt_dataset_free(&d);
}

/* ---------------------------------------------------------------- checks against the model */

static void test_npy_label_beyond_classes_names_record_and_offset(void **state) {
    float x[3] = {0};
    int64_t y[3] = {0, 2, 3};
    write_npy("cx.npy", "<f4", "(3, 1)", x, sizeof x);
    write_npy("cy.npy", "<i8", "(3,)", y, sizeof y);
    RtDataSpec s = spec("cx.npy", "cy.npy");
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    RtManifest m = ts_model("\"dtype\": \"f32\", \"shape\": [-1, 1]", "\"dtype\": \"i64\", \"shape\": [-1]",
                            "\"dtype\": \"f32\", \"shape\": [-1, 3]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_ERR);
    assert_contains(e.msg, "cy.npy: record 2 (byte offset 144) has label 3, but the model has 3 classes (0 to 2)");
    rt_dataset_free(&d);
    y[2] = -1;
    write_npy("cy.npy", "<i8", "(3,)", y, sizeof y);
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_ERR);
    assert_contains(e.msg, "cy.npy: record 2 (byte offset 144) has label -1");
    rt_dataset_free(&d);
    rt_manifest_free(&m);
}

static void test_npy_values_per_sample_against_model(void **state) {
    float x[6] = {0};
    write_npy("px.npy", "<f4", "(2, 3)", x, sizeof x);
    RtDataSpec s = spec("px.npy", NULL);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    ts_expect_check_error(&d, "\"dtype\": \"f32\", \"shape\": [-1, 2, 2]", "\"dtype\": \"i64\", \"shape\": [-1]",
                          "\"dtype\": \"f32\", \"shape\": [-1, 3]",
                          "px.npy: 3 values per sample, but the model's input 'x' f32[N, 2, 2] takes 4 per sample");
    rt_dataset_free(&d);
}

static void test_npy_count_mismatch_between_x_and_y(void **state) {
    float x[3] = {0};
    int64_t y[2] = {0};
    write_npy("mx.npy", "<f4", "(3,)", x, sizeof x);
    write_npy("my.npy", "<i8", "(2,)", y, sizeof y);
    RtDataSpec s = spec("mx.npy", "my.npy");
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_ERR);
    assert_contains(e.msg, "mx.npy has 3 samples but ");
    assert_contains(e.msg, "my.npy has 2 labels");
}

/* ---------------------------------------------------------------- malformed files */

static void expect_npy_error(const char *path, const char *msg) {
    RtNpy a;
    RtErr e;
    assert_int_equal(rt_npy_read(path, &a, &e), RT_ERR);
    assert_contains(e.msg, path);
    assert_contains(e.msg, msg);
}

static void test_npy_header_without_shape_names_byte(void **state) {
    expect_npy_error(write_npy_raw("a.npy", 1, "{'descr': '<f4', 'fortran_order': False}", NULL, 0, false),
                     "a.npy: byte 10: header dict has no 'shape'");
}

static void test_npy_fortran_order_rejected(void **state) {
    float x[4] = {0};
    expect_npy_error(write_npy_raw("f.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", x,
                                   sizeof x, false),
                     "byte 44: fortran_order is True: only C order is read");
}

static void test_npy_unknown_dtypes_rejected(void **state) {
    float x[1] = {0};
    expect_npy_error(write_npy("b.npy", ">f4", "(1,)", x, 4), "byte 20: dtype '>f4' is not read");
    expect_npy_error(write_npy("b.npy", ">f4", "(1,)", x, 4), "big-endian");
    expect_npy_error(write_npy("h.npy", "<f2", "(2,)", x, 4), "dtype '<f2' is not read (float32 <f4");
}

static void test_npy_truncated_data_names_offset(void **state) {
    float x[3] = {0};
    expect_npy_error(write_npy("t.npy", "<f4", "(4,)", x, sizeof x),
                     "truncated at byte offset 140: expected 16 bytes of data after the header");
}

static void test_npy_extra_data_rejected(void **state) {
    float x[3] = {0};
    expect_npy_error(write_npy("xd.npy", "<f4", "(2,)", x, sizeof x),
                     "unexpected data at byte offset 136, after the 2 values the header declares");
}

static void test_npy_bad_magic_and_version(void **state) {
    char p[512];
    write_bytes(tmp_path(p, sizeof p, ts_dir, "m.npy"), "\x93NUMPX\x01\x00", 8);
    expect_npy_error(p, "byte 0: bad magic");
    float x[1] = {0};
    const char *v = write_npy_raw("v4.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", x, 4,
                                  false);
    FILE *f = fopen(v, "r+b");
    fseek(f, 6, SEEK_SET);
    fputc(4, f);
    fclose(f);
    expect_npy_error(v, "byte 6: format version 4.0 (this runtime reads 1.0, 2.0 and 3.0)");
    write_bytes(tmp_path(p, sizeof p, ts_dir, "e.npy"), "", 0);
    expect_npy_error(p, "e.npy: empty file");
    write_bytes(tmp_path(p, sizeof p, ts_dir, "s.npy"), "\x93NUMPY\x01", 7);
    expect_npy_error(p, "truncated at byte offset 7");
    write_bytes(tmp_path(p, sizeof p, ts_dir, "hl.npy"), "\x93NUMPY\x01\x00\x40\x00{'descr'", 17);
    expect_npy_error(p, "truncated at byte offset 17: the header declares 64 bytes from byte 10");
}

static void test_npy_header_syntax_errors_name_byte(void **state) {
    expect_npy_error(write_npy_raw("k.npy", 1, "{'descr': '<f4', 'order': False, 'shape': (1,)}", NULL, 0, false),
                     "byte 27: unknown key 'order' in the header dict");
    expect_npy_error(write_npy_raw("s.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': [1]}", NULL, 0,
                                   false),
                     "byte 60: shape must be a tuple");
    expect_npy_error(write_npy_raw("n.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", NULL, 0,
                                   false),
                     "byte 61: expected a dimension");
    expect_npy_error(write_npy_raw("d.npy", 1, "['descr', '<f4']", NULL, 0, false),
                     "byte 10: the header is not a dict");
    expect_npy_error(write_npy_raw("q.npy", 1, "{'descr'; '<f4'}", NULL, 0, false), "byte 18: expected ':'");
    expect_npy_error(write_npy_raw("r.npy", 1, "{'descr': '<f4', 'descr': '<f4'}", NULL, 0, false),
                     "byte 27: repeated key 'descr'");
    expect_npy_error(write_npy_raw("h.npy", 1,
                                   "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999)}",
                                   NULL, 0, false),
                     "byte 10: the shape makes the data larger than");
}

static void test_npy_scalar_x_rejected(void **state) {
    float x[1] = {1};
    write_npy("sc.npy", "<f4", "()", x, sizeof x);
    RtDataSpec s = spec("sc.npy", NULL);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_ERR);
    assert_contains(e.msg, "sc.npy: x is a scalar (shape ())");
}

static void test_npy_gzip_truncated(void **state) {
    float x[64] = {0};
    const char *p = write_npy_raw("tz.npy.gz", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (64,)}", x,
                                  sizeof x, true);
    FILE *f = fopen(p, "r+b");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    assert_int_equal(truncate(p, n / 2), 0);
    RtNpy a;
    RtErr e;
    assert_int_equal(rt_npy_read(p, &a, &e), RT_ERR);
    assert_contains(e.msg, "tz.npy.gz: ");
}

/* ---------------------------------------------------------------- the recipe and the driver */

static void test_npy_recipe_arguments(void **state) {
    RtManifest m = ts_model("\"dtype\": \"f32\", \"shape\": [-1, 4]", "\"dtype\": \"i64\", \"shape\": [-1]",
                            "\"dtype\": \"f32\", \"shape\": [-1, 3]");
    RtDataSpec s;
    RtErr e;
    json_t *v = json_pack("{s:s, s:[s, s], s:{s:f}}", "call", "npy", "args", "x.npy", "y.npy", "kwargs", "scale", 0.5);
    assert_int_equal(rt_data_spec_parse(v, &m, "data", &s, &e), RT_OK);
    assert_int_equal(s.kind, RT_DATA_NPY);
    assert_string_equal(s.images, "x.npy");
    assert_string_equal(s.labels, "y.npy");
    assert_true(s.scale == 0.5);
    json_decref(v);
    v = json_pack("{s:s, s:[s], s:{s:n}}", "call", "npy", "args", "x.npy", "kwargs", "y");
    assert_int_equal(rt_data_spec_parse(v, &m, "data", &s, &e), RT_OK);
    assert_null(s.labels);
    assert_true(s.scale == 1);
    json_decref(v);
    v = json_pack("{s:s, s:[s, i]}", "call", "npy", "args", "x.npy", 3);
    assert_int_equal(rt_data_spec_parse(v, &m, "test", &s, &e), RT_ERR);
    assert_contains(e.msg, "recipe key test: npy's y must be a file name as a string, or none");
    json_decref(v);
    v = json_pack("{s:s, s:[s], s:{s:s}}", "call", "npy", "args", "x.npy", "kwargs", "labels", "y.npy");
    assert_int_equal(rt_data_spec_parse(v, &m, "data", &s, &e), RT_ERR);
    assert_contains(e.msg, "npy(x, y = none, scale = 1, regression = false, label_shape = [K]) has no argument "
                           "'labels'");
    json_decref(v);
    /* the compiler's keywords: regression = true reads integer labels as values */
    v = json_pack("{s:s, s:[s, s], s:{s:b, s:[i]}}", "call", "npy", "args", "x.npy", "y.npy", "kwargs", "regression",
                  1, "label_shape", 1);
    assert_int_equal(rt_data_spec_parse(v, &m, "data", &s, &e), RT_OK);
    assert_true(s.regression);
    json_decref(v);
    rt_manifest_free(&m);
}

/* The fake model's manifest with its recipe's data and test replaced by src. */
static char *manifest_with(json_t *src) {
    json_error_t je;
    json_t *root = json_loads(lathe_manifest, 0, &je);
    assert_non_null(root);
    json_t *recipe = json_object_get(root, "recipe");
    json_object_set(recipe, "data", src);
    json_object_set_new(recipe, "test", src);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

/* The fake model (x f32[N, 4] into 3 classes) trains and evaluates on .npy files through the whole driver. */
static void test_driver_trains_on_npy(void **state) {
    enum { N = 60 };
    float x[N * 4];
    int64_t y[N];
    for (int i = 0; i < N; i++) {
        y[i] = i % 3;
        for (int k = 0; k < 4; k++)
            x[i * 4 + k] = k == y[i] ? 1.0f : 0.1f * (float)((i * 7 + k) % 3);
    }
    write_npy("tx.npy", "<f4", "(60, 4)", x, sizeof x);
    write_npy("ty.npy", "<i8", "(60,)", y, sizeof y);
    char *manifest = manifest_with(json_pack("{s:s, s:[s, s], s:{}}", "call", "npy", "args", "tx.npy", "ty.npy",
                                             "kwargs"));
    char *out = NULL, *err = NULL;
    const char *args[] = {"train", "--data", ts_dir, "--epochs", "3", "--log-json", "/dev/null", NULL};
    int status = run_driver_with(manifest, lathe_train, lathe_eval, lathe_predict, &out, &err, args);
    if (status != 0)
        fail_msg("%s", err);
    assert_contains(out, "Done!");
    assert_contains(out, "Accuracy: 100.0%");
    free(out);
    free(err);
    /* a label beyond the model's classes stops the run before training, naming the record */
    y[5] = 3;
    write_npy("ty.npy", "<i8", "(60,)", y, sizeof y);
    const char *args2[] = {"train", "--data", ts_dir, NULL};
    assert_int_equal(run_driver_with(manifest, lathe_train, lathe_eval, lathe_predict, &out, &err, args2), 1);
    assert_contains(err, "ty.npy: record 5 (byte offset 168) has label 3, but the model has 3 classes");
    free(out);
    free(err);
    free(manifest);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_f32_images_and_i64_labels),
        cmocka_unit_test(test_npy_versions_two_and_three_and_gzip),
        cmocka_unit_test(test_npy_u8_scaled_as_idx),
        cmocka_unit_test(test_npy_i32_x_and_dtype_conversion),
        cmocka_unit_test(test_npy_float_labels_are_regression_targets),
        cmocka_unit_test(test_npy_without_y),
        cmocka_unit_test(test_npy_label_beyond_classes_names_record_and_offset),
        cmocka_unit_test(test_npy_values_per_sample_against_model),
        cmocka_unit_test(test_npy_count_mismatch_between_x_and_y),
        cmocka_unit_test(test_npy_header_without_shape_names_byte),
        cmocka_unit_test(test_npy_fortran_order_rejected),
        cmocka_unit_test(test_npy_unknown_dtypes_rejected),
        cmocka_unit_test(test_npy_truncated_data_names_offset),
        cmocka_unit_test(test_npy_extra_data_rejected),
        cmocka_unit_test(test_npy_bad_magic_and_version),
        cmocka_unit_test(test_npy_header_syntax_errors_name_byte),
        cmocka_unit_test(test_npy_scalar_x_rejected),
        cmocka_unit_test(test_npy_gzip_truncated),
        cmocka_unit_test(test_npy_recipe_arguments),
        cmocka_unit_test(test_driver_trains_on_npy),
    };
    return cmocka_run_group_tests(tests, ts_setup_dir, ts_teardown_dir);
}
