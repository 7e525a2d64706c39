/* test_data.c: the data sources beyond 2-D IDX images: IDX images of 1 to 4 dims after the count,
   text(file, context, stride) with labels [N, T] (the next byte of each position), and csv(file, header,
   label_column, regression); each checked against a model's inputs, and every bad file rejected with its
   name and the byte offset or line. */
#include "support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

static char *dir;

static int setup(void **state) {
    dir = tmp_dir();
    return 0;
}

static int teardown(void **state) {
    tmp_remove(dir);
    return 0;
}

/* A manifest whose only parts that matter here are the batch inputs and the predict output. */
static RtManifest model(const char *x, const char *label, const char *logits) {
    char text[2048];
    snprintf(text, sizeof text,
             "{\"inputs\": [{\"name\": \"x\", %s}, {\"name\": \"label\", %s}], \"params\": [],"
             " \"graphs\": {\"predict\": {\"arena\": [0, 0], \"kernels\": 0, \"args\": ["
             "   {\"name\": \"x\", \"role\": \"input\", %s},"
             "   {\"name\": \"logits\", \"role\": \"output\", %s}]}},"
             " \"recipe\": {}}",
             x, label, x, logits);
    RtManifest m;
    RtErr e;
    if (rt_manifest_parse(&m, text, &e) != RT_OK)
        fail_msg("%s", e.msg);
    return m;
}

static const char *write_file(const char *name, const char *text) {
    static char p[512];
    write_bytes(tmp_path(p, sizeof p, dir, name), text, strlen(text));
    return p;
}

static int load(RtDataset *d, const RtDataSpec *s, RtErr *e) { return rt_dataset_load(d, dir, s, e); }

/* ---------------------------------------------------------------- idx */

static void test_idx_reads_images_of_three_dims_after_count(void **state) {
    char p[512];
    uint8_t px[2 * 3 * 2 * 2];
    for (int i = 0; i < 24; i++)
        px[i] = (uint8_t)i;
    uint32_t dims[4] = {2, 3, 2, 2}, dl[1] = {2};
    write_idx(tmp_path(p, sizeof p, dir, "c-images"), 4, dims, px, false);
    write_idx(tmp_path(p, sizeof p, dir, "c-labels"), 1, dl, (uint8_t[]){1, 0}, false);
    RtDataSpec s = {.present = true, .images = "c-images", .labels = "c-labels", .scale = 1};
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(d.count, 2);
    assert_int_equal(d.per_sample, 12);
    RtManifest m = model("\"dtype\": \"f32\", \"shape\": [-1, 3, 2, 2]", "\"dtype\": \"i64\", \"shape\": [-1]",
                         "\"dtype\": \"f32\", \"shape\": [-1, 2]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_OK);
    float x[12];
    int64_t y, i = 1;
    rt_dataset_gather(&d, &i, 1, RT_F32, x, RT_I64, &y);
    assert_true(x[0] == 12.0f && x[11] == 23.0f);
    assert_int_equal(y, 0);
    rt_dataset_free(&d);
    rt_manifest_free(&m);
}

static void test_idx_reads_one_dim_after_count(void **state) {
    char p[512];
    uint32_t dims[2] = {3, 5};
    uint8_t px[15] = {0};
    write_idx(tmp_path(p, sizeof p, dir, "vec"), 2, dims, px, true);
    RtIdx x;
    RtErr e;
    assert_int_equal(rt_idx_read(p, 2, RT_IDX_MAX_DIMS, &x, &e), RT_OK);
    assert_int_equal(x.per_item, 5);
    rt_idx_free(&x);
}

static void test_idx_five_dims_after_count_rejected(void **state) {
    char p[512];
    uint32_t dims[6] = {1, 1, 1, 1, 1, 1};
    uint8_t px[1] = {0};
    write_idx(tmp_path(p, sizeof p, dir, "six"), 6, dims, px, false);
    RtIdx x;
    RtErr e;
    assert_int_equal(rt_idx_read(p, 2, RT_IDX_MAX_DIMS, &x, &e), RT_ERR);
    assert_contains(e.msg, "bad magic 0x00000806 at byte offset 0");
    assert_contains(e.msg, "1 to 4 dimensions after the count");
}

static void test_idx_other_type_than_u8_rejected(void **state) {
    char p[512];
    uint8_t bytes[] = {0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0}; /* f32 labels */
    write_bytes(tmp_path(p, sizeof p, dir, "f32"), bytes, sizeof bytes);
    RtIdx x;
    RtErr e;
    assert_int_equal(rt_idx_read(p, 1, 1, &x, &e), RT_ERR);
    assert_contains(e.msg, "bad magic 0x00000d01");
}

/* ---------------------------------------------------------------- text */

static RtDataSpec text_spec(const char *file, int64_t context, int64_t stride) {
    return (RtDataSpec){.present = true, .kind = RT_DATA_TEXT, .images = file, .context = context, .stride = stride};
}

static void test_text_windows_and_next_byte_labels(void **state) {
    write_file("t.txt", "abcdefghij"); /* 10 bytes */
    RtDataSpec s = text_spec("t.txt", 4, 4);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(d.count, 2); /* (10 - 4 - 1) / 4 + 1 */
    assert_int_equal(d.per_sample, 4);
    assert_int_equal(d.per_label, 4);
    int64_t idx[2] = {1, 0}, x[8], y[8];
    rt_dataset_gather(&d, idx, 2, RT_I64, x, RT_I64, y);
    const char *wx = "efghabcd", *wy = "fghibcde";
    for (int i = 0; i < 8; i++) {
        assert_int_equal(x[i], wx[i]);
        assert_int_equal(y[i], wy[i]);
    }
    assert_true(rt_dataset_label(&d, 1, 3) == 'i');
    rt_dataset_free(&d);
}

static void test_text_stride_overlaps_windows(void **state) {
    write_file("s.txt", "0123456789");
    RtDataSpec s = text_spec("s.txt", 3, 1);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(d.count, 7); /* starts 0..6: the last window 6,7,8 has label 7,8,9 */
    int64_t i = 6, x[3], y[3];
    rt_dataset_gather(&d, &i, 1, RT_I64, x, RT_I64, y);
    assert_int_equal(x[0], '6');
    assert_int_equal(y[2], '9');
    rt_dataset_free(&d);
}

static void test_text_reads_gzip(void **state) {
    char p[512];
    gzFile f = gzopen(tmp_path(p, sizeof p, dir, "t.txt.gz"), "wb");
    assert_int_equal(gzwrite(f, "hello world", 11), 11);
    assert_int_equal(gzclose(f), Z_OK);
    RtDataSpec s = text_spec("t.txt.gz", 5, 5);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(d.count, 2);
    assert_int_equal(d.images[6], 'w');
    rt_dataset_free(&d);
}

static void test_text_too_short_for_one_window(void **state) {
    write_file("short.txt", "abcd");
    RtDataSpec s = text_spec("short.txt", 4, 4);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_ERR);
    assert_contains(e.msg, "short.txt: truncated at byte offset 4");
    assert_contains(e.msg, "needs 5 bytes");
}

static void test_text_empty_file(void **state) {
    write_file("empty.txt", "");
    RtDataSpec s = text_spec("empty.txt", 4, 4);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_ERR);
    assert_contains(e.msg, "empty.txt: empty file");
}

static void test_text_checked_against_model_tokens(void **state) {
    write_file("big.txt", "abcdefgh\xff" "abc");
    RtDataSpec s = text_spec("big.txt", 4, 4);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    RtManifest m = model("\"dtype\": \"i64\", \"shape\": [-1, 4]", "\"dtype\": \"i64\", \"shape\": [-1, 4]",
                         "\"dtype\": \"f32\", \"shape\": [-1, 4, 200]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_ERR);
    assert_contains(e.msg, "big.txt: byte offset 8 holds byte 255, but the model has 200 tokens");
    rt_dataset_free(&d);
    rt_manifest_free(&m);
}

static void test_text_context_other_than_model_input_is_error(void **state) {
    write_file("ctx.txt", "abcdefghijklmnop");
    RtDataSpec s = text_spec("ctx.txt", 8, 8);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    RtManifest m = model("\"dtype\": \"i64\", \"shape\": [-1, 4]", "\"dtype\": \"i64\", \"shape\": [-1, 4]",
                         "\"dtype\": \"f32\", \"shape\": [-1, 4, 256]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_ERR);
    assert_contains(e.msg, "context = 8) gives 8 tokens per sample, but the model's input 'x' i64[N, 4] takes 4");
    rt_dataset_free(&d);
    rt_manifest_free(&m);
}

static void test_text_labels_must_match_model_label_shape(void **state) {
    write_file("lab.txt", "abcdefghij");
    RtDataSpec s = text_spec("lab.txt", 4, 4);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    RtManifest m = model("\"dtype\": \"i64\", \"shape\": [-1, 4]", "\"dtype\": \"i64\", \"shape\": [-1]",
                         "\"dtype\": \"f32\", \"shape\": [-1, 256]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_ERR);
    assert_contains(e.msg, "4 labels per sample, but the model's 'label' i64[N] takes 1 per sample");
    rt_dataset_free(&d);
    rt_manifest_free(&m);
}

/* The recipe's text(file) takes its context from the model's input when it names none. */
static void test_text_context_defaults_to_model_input(void **state) {
    RtManifest m = model("\"dtype\": \"i64\", \"shape\": [-1, 6]", "\"dtype\": \"i64\", \"shape\": [-1, 6]",
                         "\"dtype\": \"f32\", \"shape\": [-1, 6, 256]");
    json_object_set_new(m.recipe, "data", json_pack("{s:s, s:[s], s:{s:i}}", "call", "text", "args", "t.txt",
                                                    "kwargs", "stride", 2));
    char *argv[] = {"prog", "train", NULL};
    RtConfig c;
    RtErr e;
    assert_int_equal(rt_config_parse(&c, &m, 2, argv, &e), RT_OK);
    assert_int_equal(c.train_data.kind, RT_DATA_TEXT);
    assert_int_equal(c.train_data.context, 6);
    assert_int_equal(c.train_data.stride, 2);
    assert_string_equal(c.train_data.images, "t.txt");
    rt_config_free(&c);
    rt_manifest_free(&m);
}

static void test_recipe_data_source_errors(void **state) {
    RtManifest m = model("\"dtype\": \"i64\", \"shape\": [-1, 6]", "\"dtype\": \"i64\", \"shape\": [-1, 6]",
                         "\"dtype\": \"f32\", \"shape\": [-1, 6, 256]");
    struct {
        json_t *v;
        const char *msg;
    } cases[] = {
        {json_pack("{s:s, s:[s], s:{s:i}}", "call", "text", "args", "t", "kwargs", "context", 0),
         "context must be an integer of at least 1"},
        {json_pack("{s:s, s:[s], s:{s:s}}", "call", "csv", "args", "f", "kwargs", "header", "yes"),
         "header must be true or false"},
        {json_pack("{s:s, s:[s], s:{s:i}}", "call", "csv", "args", "f", "kwargs", "labels", 1),
         "csv(file, header = true, label_column = -1, regression = false) has no argument 'labels'"},
        {json_pack("{s:s, s:[i], s:{}}", "call", "text", "args", 3, "kwargs"), "text needs the file name"},
        {json_pack("{s:s, s:[s], s:{}}", "call", "npy", "args", "f", "kwargs"), "the runtime reads idx("},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object_set_new(m.recipe, "test", cases[i].v);
        char *argv[] = {"prog", "train", NULL};
        RtConfig c;
        RtErr e;
        assert_int_equal(rt_config_parse(&c, &m, 2, argv, &e), RT_ERR);
        assert_contains(e.msg, "recipe key test: ");
        assert_contains(e.msg, cases[i].msg);
        rt_config_free(&c);
    }
    rt_manifest_free(&m);
}

/* ---------------------------------------------------------------- csv */

static RtDataSpec csv_spec(const char *file) {
    return (RtDataSpec){.present = true, .kind = RT_DATA_CSV, .images = file, .header = true, .label_column = -1};
}

static void test_csv_reads_features_and_last_column_label(void **state) {
    write_file("a.csv", "f1,f2,f3,class\r\n1.5, 2, -3e1 ,0\r\n\r\n4,5,6,2\n");
    RtDataSpec s = csv_spec("a.csv");
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(d.count, 2); /* the blank line skipped */
    assert_int_equal(d.per_sample, 3);
    assert_int_equal(d.per_label, 1);
    RtManifest m = model("\"dtype\": \"f32\", \"shape\": [-1, 3]", "\"dtype\": \"i64\", \"shape\": [-1]",
                         "\"dtype\": \"f32\", \"shape\": [-1, 3]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_OK);
    int64_t idx[2] = {1, 0}, y[2];
    float x[6];
    rt_dataset_gather(&d, idx, 2, RT_F32, x, RT_I64, y);
    float want[6] = {4, 5, 6, 1.5f, 2, -30};
    assert_memory_equal(x, want, sizeof want);
    assert_int_equal(y[0], 2);
    assert_int_equal(y[1], 0);
    rt_dataset_free(&d);
    rt_manifest_free(&m);
}

static void test_csv_label_column_first_and_no_header(void **state) {
    write_file("b.csv", "1,10,20\n0,30,40");
    RtDataSpec s = csv_spec("b.csv");
    s.header = false;
    s.label_column = 0;
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(d.count, 2);
    int64_t i = 1, y;
    double x[2];
    rt_dataset_gather(&d, &i, 1, RT_F64, x, RT_I64, &y);
    assert_true(x[0] == 30 && x[1] == 40);
    assert_int_equal(y, 0);
    rt_dataset_free(&d);
}

static void test_csv_regression_labels_are_values(void **state) {
    write_file("r.csv", "x,y\n1,2.5\n2,4.75\n");
    RtDataSpec s = csv_spec("r.csv");
    s.regression = true;
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    RtManifest m = model("\"dtype\": \"f32\", \"shape\": [-1, 1]", "\"dtype\": \"f32\", \"shape\": [-1, 1]",
                         "\"dtype\": \"f32\", \"shape\": [-1, 1]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_OK); /* no class check on values */
    int64_t idx[2] = {0, 1};
    float x[2], y[2];
    rt_dataset_gather(&d, idx, 2, RT_F32, x, RT_F32, y);
    assert_true(y[0] == 2.5f && y[1] == 4.75f);
    rt_dataset_free(&d);
    rt_manifest_free(&m);
}

static void test_csv_regression_into_integer_label_is_error(void **state) {
    write_file("ri.csv", "x,y\n1,2.5\n");
    RtDataSpec s = csv_spec("ri.csv");
    s.regression = true;
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    RtManifest m = model("\"dtype\": \"f32\", \"shape\": [-1, 1]", "\"dtype\": \"i64\", \"shape\": [-1]",
                         "\"dtype\": \"f32\", \"shape\": [-1, 1]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_ERR);
    assert_contains(e.msg, "real-valued labels, but the model's 'label' is i64[N]");
    rt_dataset_free(&d);
    rt_manifest_free(&m);
}

static void expect_csv_error(const char *name, const char *text, const char *msg) {
    write_file(name, text);
    RtDataSpec s = csv_spec(name);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_ERR);
    assert_contains(e.msg, name);
    assert_contains(e.msg, msg);
}

static void test_csv_non_number_cell_names_line_and_column(void **state) {
    expect_csv_error("nn.csv", "a,b,c\n1,2,0\n3,abc,1\n", "nn.csv:3: column 2: 'abc' is not a number");
}

static void test_csv_empty_cell_names_line(void **state) {
    expect_csv_error("ec.csv", "a,b,c\n1,,0\n", "ec.csv:2: column 2 is empty");
}

static void test_csv_non_finite_cell_rejected(void **state) {
    expect_csv_error("inf.csv", "a,b\nnan,1\n", "inf.csv:2: column 1: 'nan' is not a finite number");
}

static void test_csv_ragged_row_names_line(void **state) {
    expect_csv_error("rg.csv", "a,b,c\n1,2,0\n\n3,4,5,1\n", "rg.csv:4: 4 cells, but the records before have 3");
}

static void test_csv_fractional_class_label_rejected(void **state) {
    expect_csv_error("fl.csv", "a,b\n1,0\n2,1.5\n", "fl.csv:3: column 2: label 1.5 is not a class index");
}

static void test_csv_negative_class_label_rejected(void **state) {
    expect_csv_error("ng.csv", "a,b\n1,-1\n", "ng.csv:2: column 2: label -1 is not a class index");
}

static void test_csv_without_records_rejected(void **state) {
    expect_csv_error("hd.csv", "a,b,c\n\n", "hd.csv: no records after the header line");
}

static void test_csv_one_column_rejected(void **state) {
    expect_csv_error("one.csv", "a\n1\n", "one.csv:2: a record needs at least two columns");
}

static void test_csv_label_column_out_of_range(void **state) {
    write_file("lc.csv", "a,b\n1,0\n");
    RtDataSpec s = csv_spec("lc.csv");
    s.label_column = 2;
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_ERR);
    assert_contains(e.msg, "lc.csv:2: label_column = 2, but the records have 2 columns");
}

static void test_csv_class_label_beyond_model_classes_names_line(void **state) {
    write_file("cl.csv", "a,b\n1,0\n2,1\n\n3,3\n");
    RtDataSpec s = csv_spec("cl.csv");
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    RtManifest m = model("\"dtype\": \"f32\", \"shape\": [-1, 1]", "\"dtype\": \"i64\", \"shape\": [-1]",
                         "\"dtype\": \"f32\", \"shape\": [-1, 3]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_ERR);
    assert_contains(e.msg, "cl.csv:5: label 3, but the model has 3 classes");
    rt_dataset_free(&d);
    rt_manifest_free(&m);
}

static void test_csv_feature_count_other_than_model_input_is_error(void **state) {
    write_file("fc.csv", "a,b,c\n1,2,0\n");
    RtDataSpec s = csv_spec("fc.csv");
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    RtManifest m = model("\"dtype\": \"f32\", \"shape\": [-1, 3]", "\"dtype\": \"i64\", \"shape\": [-1]",
                         "\"dtype\": \"f32\", \"shape\": [-1, 3]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_ERR);
    assert_contains(e.msg, "fc.csv: 2 feature columns per record");
    assert_contains(e.msg, "'x' f32[N, 3] takes 3");
    rt_dataset_free(&d);
    rt_manifest_free(&m);
}

static void test_csv_missing_file(void **state) {
    RtDataSpec s = csv_spec("nope.csv");
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_ERR);
    assert_contains(e.msg, "nope.csv: cannot open: No such file");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_reads_images_of_three_dims_after_count),
        cmocka_unit_test(test_idx_reads_one_dim_after_count),
        cmocka_unit_test(test_idx_five_dims_after_count_rejected),
        cmocka_unit_test(test_idx_other_type_than_u8_rejected),
        cmocka_unit_test(test_text_windows_and_next_byte_labels),
        cmocka_unit_test(test_text_stride_overlaps_windows),
        cmocka_unit_test(test_text_reads_gzip),
        cmocka_unit_test(test_text_too_short_for_one_window),
        cmocka_unit_test(test_text_empty_file),
        cmocka_unit_test(test_text_checked_against_model_tokens),
        cmocka_unit_test(test_text_context_other_than_model_input_is_error),
        cmocka_unit_test(test_text_labels_must_match_model_label_shape),
        cmocka_unit_test(test_text_context_defaults_to_model_input),
        cmocka_unit_test(test_recipe_data_source_errors),
        cmocka_unit_test(test_csv_reads_features_and_last_column_label),
        cmocka_unit_test(test_csv_label_column_first_and_no_header),
        cmocka_unit_test(test_csv_regression_labels_are_values),
        cmocka_unit_test(test_csv_regression_into_integer_label_is_error),
        cmocka_unit_test(test_csv_non_number_cell_names_line_and_column),
        cmocka_unit_test(test_csv_empty_cell_names_line),
        cmocka_unit_test(test_csv_non_finite_cell_rejected),
        cmocka_unit_test(test_csv_ragged_row_names_line),
        cmocka_unit_test(test_csv_fractional_class_label_rejected),
        cmocka_unit_test(test_csv_negative_class_label_rejected),
        cmocka_unit_test(test_csv_without_records_rejected),
        cmocka_unit_test(test_csv_one_column_rejected),
        cmocka_unit_test(test_csv_label_column_out_of_range),
        cmocka_unit_test(test_csv_class_label_beyond_model_classes_names_line),
        cmocka_unit_test(test_csv_feature_count_other_than_model_input_is_error),
        cmocka_unit_test(test_csv_missing_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
