/* test_data.c: the data sources beyond 2-D IDX images: IDX images of 1 to 4 dims after the count,
   text(file, context, stride) with labels [N, T] (the next byte of each position), and csv(file, header,
   label_column, regression); each checked against a model's inputs, and every bad file rejected with its
   name and the byte offset or line. The prefetching loader yields the batches of a serial gather. */
#include "support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

static int load(RtDataset *d, const RtDataSpec *s, RtErr *e) { return rt_dataset_load(d, ts_dir, s, e); }

/* ---------------------------------------------------------------- idx */

static void test_idx_reads_images_of_three_dims_after_count(void **state) {
    char p[512];
    uint8_t px[2 * 3 * 2 * 2];
    for (int i = 0; i < 24; i++)
        px[i] = (uint8_t)i;
    uint32_t dims[4] = {2, 3, 2, 2}, dl[1] = {2};
    write_idx(tmp_path(p, sizeof p, ts_dir, "c-images"), 4, dims, px, false);
    write_idx(tmp_path(p, sizeof p, ts_dir, "c-labels"), 1, dl, (uint8_t[]){1, 0}, false);
    RtDataSpec s = {.present = true, .images = "c-images", .labels = "c-labels", .scale = 1};
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(d.count, 2);
    assert_int_equal(d.per_sample, 12);
    RtManifest m = ts_model("\"dtype\": \"f32\", \"shape\": [-1, 3, 2, 2]", "\"dtype\": \"i64\", \"shape\": [-1]",
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
    write_idx(tmp_path(p, sizeof p, ts_dir, "vec"), 2, dims, px, true);
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
    write_idx(tmp_path(p, sizeof p, ts_dir, "six"), 6, dims, px, false);
    RtIdx x;
    RtErr e;
    assert_int_equal(rt_idx_read(p, 2, RT_IDX_MAX_DIMS, &x, &e), RT_ERR);
    assert_contains(e.msg, "bad magic 0x00000806 at byte offset 0");
    assert_contains(e.msg, "1 to 4 dimensions after the count");
}

static void test_idx_other_type_than_u8_rejected(void **state) {
    char p[512];
    uint8_t bytes[] = {0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0}; /* f32 labels */
    write_bytes(tmp_path(p, sizeof p, ts_dir, "f32"), bytes, sizeof bytes);
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
    ts_write_text("t.txt", "abcdefghij"); /* 10 bytes */
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
    ts_write_text("s.txt", "0123456789");
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
    gzFile f = gzopen(tmp_path(p, sizeof p, ts_dir, "t.txt.gz"), "wb");
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

static void test_text_gzip_cut_is_truncated(void **state) {
    char p[512];
    gzFile f = gzopen(tmp_path(p, sizeof p, ts_dir, "cut.txt.gz"), "wb");
    char text[3000];
    for (int i = 0; i < 3000; i++)
        text[i] = (char)('a' + i * 7 % 26);
    assert_int_equal(gzwrite(f, text, sizeof text), (int)sizeof text);
    assert_int_equal(gzclose(f), Z_OK);
    char *whole = read_text(p);
    write_bytes(p, whole, 40);
    free(whole);
    RtDataSpec s = text_spec("cut.txt.gz", 4, 4);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_ERR);
    assert_contains(e.msg, "cut.txt.gz: truncated at byte offset ");
    assert_contains(e.msg, "of the uncompressed data: unexpected end of file");
}

static void test_text_too_short_for_one_window(void **state) {
    ts_write_text("short.txt", "abcd");
    RtDataSpec s = text_spec("short.txt", 4, 4);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_ERR);
    assert_contains(e.msg, "short.txt: truncated at byte offset 4");
    assert_contains(e.msg, "needs 5 bytes");
}

static void test_text_empty_file(void **state) {
    ts_write_text("empty.txt", "");
    RtDataSpec s = text_spec("empty.txt", 4, 4);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_ERR);
    assert_contains(e.msg, "empty.txt: empty file");
}

static void test_text_checked_against_model_tokens(void **state) {
    ts_write_text("big.txt", "abcdefgh\xff" "abc");
    RtDataSpec s = text_spec("big.txt", 4, 4);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    ts_expect_check_error(&d, "\"dtype\": \"i64\", \"shape\": [-1, 4]", "\"dtype\": \"i64\", \"shape\": [-1, 4]",
                          "\"dtype\": \"f32\", \"shape\": [-1, 4, 200]",
                          "big.txt: byte offset 8 holds byte 255, but the model has 200 tokens");
    rt_dataset_free(&d);
}

static void test_text_context_other_than_model_input_is_error(void **state) {
    ts_write_text("ctx.txt", "abcdefghijklmnop");
    RtDataSpec s = text_spec("ctx.txt", 8, 8);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    ts_expect_check_error(&d, "\"dtype\": \"i64\", \"shape\": [-1, 4]", "\"dtype\": \"i64\", \"shape\": [-1, 4]",
                          "\"dtype\": \"f32\", \"shape\": [-1, 4, 256]",
                          "context = 8) gives 8 tokens per sample, but the model's input 'x' i64[N, 4] takes 4");
    rt_dataset_free(&d);
}

static void test_text_labels_must_match_model_label_shape(void **state) {
    ts_write_text("lab.txt", "abcdefghij");
    RtDataSpec s = text_spec("lab.txt", 4, 4);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    ts_expect_check_error(&d, "\"dtype\": \"i64\", \"shape\": [-1, 4]", "\"dtype\": \"i64\", \"shape\": [-1]",
                          "\"dtype\": \"f32\", \"shape\": [-1, 256]",
                          "4 labels per sample, but the model's 'label' i64[N] takes 1 per sample");
    rt_dataset_free(&d);
}

/* The recipe's text(file) takes its context from the model's input when it names none. */
static void test_text_context_defaults_to_model_input(void **state) {
    RtManifest m = ts_model("\"dtype\": \"i64\", \"shape\": [-1, 6]", "\"dtype\": \"i64\", \"shape\": [-1, 6]",
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
    RtManifest m = ts_model("\"dtype\": \"i64\", \"shape\": [-1, 6]", "\"dtype\": \"i64\", \"shape\": [-1, 6]",
                            "\"dtype\": \"f32\", \"shape\": [-1, 6, 256]");
    struct {
        json_t *v;
        const char *msg;
    } cases[] = {
        {json_pack("{s:s, s:[s], s:{s:i}}", "call", "text", "args", "t", "kwargs", "context", 0),
         "context must be an integer of at least 1"},
        {json_pack("{s:s, s:[s], s:{s:s}}", "call", "csv", "args", "f", "kwargs", "header", "yes"),
         "header must be true or false"},
        {json_pack("{s:s, s:[s], s:{s:i}}", "call", "csv", "args", "f", "kwargs", "label", 1),
         "has no argument 'label'"},
        {json_pack("{s:s, s:[i], s:{}}", "call", "text", "args", 3, "kwargs"), "text needs the file name"},
        {json_pack("{s:s, s:[s], s:{}}", "call", "parquet", "args", "f", "kwargs"), "the runtime reads idx("},
        {json_pack("{s:s, s:[s], s:{s:s}}", "call", "text", "args", "t", "kwargs", "tokens", "words"),
         "text's tokens must be \"bytes\" or \"chars\""},
        {json_pack("{s:s, s:[s, i, i], s:{s:b}}", "call", "text", "args", "t", 6, 2, "kwargs", "lines", 1),
         "lines = true) reads one sample a line and takes no stride"},
        {json_pack("{s:s, s:[s], s:{s:i}}", "call", "text", "args", "t", "kwargs", "pad", 3),
         "text's pad fills short lines and needs lines = true"},
        {json_pack("{s:s, s:[s], s:{s:b, s:i}}", "call", "text", "args", "t", "kwargs", "lines", 1, "pad", -1),
         "pad must be an integer of at least 0"},
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


/* ---------------------------------------------------------------- text: tokens = "chars", lines = true */

static RtDataSpec chars_spec(const char *file, int64_t context, int64_t stride) {
    RtDataSpec s = text_spec(file, context, stride);
    s.chars = true;
    return s;
}

static RtDataSpec lines_spec(const char *file, int64_t context, bool chars) {
    RtDataSpec s = text_spec(file, context, 0);
    s.lines = true;
    s.chars = chars;
    return s;
}

/* The vocabulary is the file's code points in ascending order: ' ' 'a' 'b' 'é' (U+00E9) '€' (U+20AC). */
static void test_text_chars_ids_in_sorted_code_point_order(void **state) {
    ts_write_text("c.txt", "ab\xc3\xa9 \xe2\x82\xac" "ba");
    RtDataSpec s = chars_spec("c.txt", 3, 1);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(d.nvocab, 5);
    assert_int_equal(d.vocab[3], 0xe9);
    assert_int_equal(d.vocab[4], 0x20ac);
    assert_int_equal(d.size, 7); /* characters, not bytes */
    assert_int_equal(d.count, 4);
    assert_int_equal(d.nclass_names, 5);
    assert_string_equal(d.class_names[4], "\xe2\x82\xac");
    int64_t i = 2, x[3], y[3];
    rt_dataset_gather(&d, &i, 1, RT_I64, x, RT_I64, y);
    int64_t wx[3] = {3, 0, 4}, wy[3] = {0, 4, 2}; /* "é €" and " €b" */
    assert_memory_equal(x, wx, sizeof wx);
    assert_memory_equal(y, wy, sizeof wy);
    assert_true(rt_dataset_label(&d, 3, 2) == 1); /* the last 'a' */
    RtManifest m = ts_model("\"dtype\": \"i64\", \"shape\": [-1, 3]", "\"dtype\": \"i64\", \"shape\": [-1, 3]",
                            "\"dtype\": \"f32\", \"shape\": [-1, 3, 5]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_OK);
    rt_dataset_free(&d);
    rt_manifest_free(&m);
}

/* More than 256 characters: ids beyond a byte, stored wider. */
static void test_text_chars_large_vocabulary(void **state) {
    char text[3 * 300 + 1], *p = text;
    for (int i = 0; i < 300; i++) { /* U+0400 + i: two bytes each */
        unsigned c = 0x400u + (unsigned)i;
        *p++ = (char)(0xc0 | c >> 6);
        *p++ = (char)(0x80 | (c & 0x3f));
    }
    *p = 0;
    ts_write_text("big.txt", text);
    RtDataSpec s = chars_spec("big.txt", 8, 8);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(d.nvocab, 300);
    int64_t i = 36, x[8];
    rt_dataset_gather(&d, &i, 1, RT_I64, x, RT_I64, NULL);
    assert_int_equal(x[0], 288);
    assert_int_equal(x[7], 295);
    RtManifest m = ts_model("\"dtype\": \"i64\", \"shape\": [-1, 8]", "\"dtype\": \"i64\", \"shape\": [-1, 8]",
                            "\"dtype\": \"f32\", \"shape\": [-1, 8, 256]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_ERR);
    assert_contains(e.msg, "big.txt: text(..., tokens = \"chars\") finds 300 distinct characters, but the model has "
                           "256 tokens");
    rt_dataset_free(&d);
    rt_manifest_free(&m);
}

static void test_text_chars_invalid_utf8_names_byte_offset(void **state) {
    const char *bad[] = {"abc\xff", "abc\xc3", "abc\xc0\xaf", "abc\xed\xa0\x80x"}; /* stray, cut, overlong, surrogate */
    for (int i = 0; i < 4; i++) {
        ts_write_text("u.txt", bad[i]);
        RtDataSpec s = chars_spec("u.txt", 2, 2);
        RtDataset d;
        RtErr e;
        assert_int_equal(load(&d, &s, &e), RT_ERR);
        assert_contains(e.msg, "u.txt: byte offset 3: invalid UTF-8");
    }
}

static void test_text_chars_too_short_counts_characters(void **state) {
    ts_write_text("sc.txt", "\xc3\xa9\xc3\xa9\xc3\xa9"); /* 3 characters, 6 bytes */
    RtDataSpec s = chars_spec("sc.txt", 3, 3);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_ERR);
    assert_contains(e.msg, "sc.txt: truncated at character 3: one sample of context 3 needs 4 characters");
}

/* One sample a line: inputs padded with pad, labels the next tokens and -100 where there is none; an empty
   line and a line of one token (nothing to predict) are no samples. */
static void test_text_lines_pad_and_ignored_labels(void **state) {
    ts_write_text("l.txt", "abc\nhello world\n\nx\r\nxy\r\n");
    RtDataSpec s = lines_spec("l.txt", 4, false);
    s.pad = 7;
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(d.count, 3);
    assert_int_equal(d.per_sample, 4);
    assert_int_equal(d.per_label, 4);
    assert_int_equal(d.lines[2], 5);
    int64_t idx[3] = {0, 1, 2}, x[12], y[12];
    rt_dataset_gather(&d, idx, 3, RT_I64, x, RT_I64, y);
    int64_t wx[12] = {'a', 'b', 'c', 7, 'h', 'e', 'l', 'l', 'x', 'y', 7, 7};
    int64_t wy[12] = {'b', 'c', -100, -100, 'e', 'l', 'l', 'o', 'y', -100, -100, -100};
    assert_memory_equal(x, wx, sizeof wx);
    assert_memory_equal(y, wy, sizeof wy);
    assert_true(rt_dataset_label(&d, 0, 1) == 'c');
    assert_true(rt_dataset_label(&d, 0, 3) == RT_IGNORE_LABEL);
    RtManifest m = ts_model("\"dtype\": \"i64\", \"shape\": [-1, 4]", "\"dtype\": \"i64\", \"shape\": [-1, 4]",
                            "\"dtype\": \"f32\", \"shape\": [-1, 4, 128]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_OK); /* -100 labels are no class */
    rt_dataset_free(&d);
    rt_manifest_free(&m);
}

static void test_text_lines_of_chars(void **state) {
    ts_write_text("lc.txt", "b\xc3\xa9\xc3\xa9\r\nab\n");
    RtDataSpec s = lines_spec("lc.txt", 2, true);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(d.nvocab, 3); /* a b é: no newline, no carriage return */
    assert_int_equal(d.count, 2);
    int64_t idx[2] = {1, 0}, x[4], y[4];
    rt_dataset_gather(&d, idx, 2, RT_I64, x, RT_I64, y);
    int64_t wx[4] = {0, 1, 1, 2}, wy[4] = {1, -100, 2, 2};
    assert_memory_equal(x, wx, sizeof wx);
    assert_memory_equal(y, wy, sizeof wy);
    rt_dataset_free(&d);
}

static void test_text_lines_token_beyond_model_names_line(void **state) {
    ts_write_text("lt.txt", "ab\ncd\xf0\n");
    RtDataSpec s = lines_spec("lt.txt", 4, false);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    RtManifest m = ts_model("\"dtype\": \"i64\", \"shape\": [-1, 4]", "\"dtype\": \"i64\", \"shape\": [-1, 4]",
                            "\"dtype\": \"f32\", \"shape\": [-1, 4, 128]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_ERR);
    assert_contains(e.msg, "lt.txt:2: byte 2 of the line is 240, but the model has 128 tokens");
    rt_dataset_free(&d);
    d = (RtDataset){0};
    ts_write_text("lp.txt", "ab\ncd\n");
    s = lines_spec("lp.txt", 4, false);
    s.pad = 200;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_ERR);
    assert_contains(e.msg, "lp.txt: text(..., pad = 200): the pad token is not one of the model's 128 tokens");
    rt_dataset_free(&d);
    rt_manifest_free(&m);
}

static void test_text_lines_without_two_tokens_is_error(void **state) {
    ts_write_text("l1.txt", "a\n\nb\n");
    RtDataSpec s = lines_spec("l1.txt", 4, false);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_ERR);
    assert_contains(e.msg, "l1.txt: no line of two tokens or more");
}

/* The recipe's keywords reach the spec. */
static void test_text_recipe_tokens_lines_pad(void **state) {
    RtManifest m = ts_model("\"dtype\": \"i64\", \"shape\": [-1, 6]", "\"dtype\": \"i64\", \"shape\": [-1, 6]",
                            "\"dtype\": \"f32\", \"shape\": [-1, 6, 256]");
    json_t *v = json_pack("{s:s, s:[s], s:{s:s, s:b, s:i}}", "call", "text", "args", "t.txt", "kwargs", "tokens",
                          "chars", "lines", 1, "pad", 2);
    RtDataSpec s;
    RtErr e;
    assert_int_equal(rt_data_spec_parse(v, &m, "data", &s, &e), RT_OK);
    assert_true(s.chars && s.lines);
    assert_int_equal(s.pad, 2);
    assert_int_equal(s.context, 6);
    json_decref(v);
    rt_manifest_free(&m);
}

/* ---------------------------------------------------------------- csv */

static RtDataSpec csv_spec(const char *file) {
    return (RtDataSpec){.present = true, .kind = RT_DATA_CSV, .images = file, .header = true, .label_column = -1};
}

static void test_csv_reads_features_and_last_column_label(void **state) {
    ts_write_text("a.csv", "f1,f2,f3,class\r\n1.5, 2, -3e1 ,0\r\n\r\n4,5,6,2\n");
    RtDataSpec s = csv_spec("a.csv");
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(d.count, 2); /* the blank line skipped */
    assert_int_equal(d.per_sample, 3);
    assert_int_equal(d.per_label, 1);
    RtManifest m = ts_model("\"dtype\": \"f32\", \"shape\": [-1, 3]", "\"dtype\": \"i64\", \"shape\": [-1]",
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
    ts_write_text("b.csv", "1,10,20\n0,30,40");
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
    ts_write_text("r.csv", "x,y\n1,2.5\n2,4.75\n");
    RtDataSpec s = csv_spec("r.csv");
    s.regression = true;
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    RtManifest m = ts_model("\"dtype\": \"f32\", \"shape\": [-1, 1]", "\"dtype\": \"f32\", \"shape\": [-1, 1]",
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
    ts_write_text("ri.csv", "x,y\n1,2.5\n");
    RtDataSpec s = csv_spec("ri.csv");
    s.regression = true;
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    ts_expect_check_error(&d, "\"dtype\": \"f32\", \"shape\": [-1, 1]", "\"dtype\": \"i64\", \"shape\": [-1]",
                          "\"dtype\": \"f32\", \"shape\": [-1, 1]",
                          "real-valued labels, but the model's 'label' is i64[N]");
    rt_dataset_free(&d);
}

static void expect_csv_error(const char *name, const char *text, const char *msg) {
    ts_write_text(name, text);
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
    ts_write_text("lc.csv", "a,b\n1,0\n");
    RtDataSpec s = csv_spec("lc.csv");
    s.label_column = 2;
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_ERR);
    assert_contains(e.msg, "lc.csv:2: label_column = 2, but the records have 2 columns");
}

static void test_csv_class_label_beyond_model_classes_names_line(void **state) {
    ts_write_text("cl.csv", "a,b\n1,0\n2,1\n\n3,3\n");
    RtDataSpec s = csv_spec("cl.csv");
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    ts_expect_check_error(&d, "\"dtype\": \"f32\", \"shape\": [-1, 1]", "\"dtype\": \"i64\", \"shape\": [-1]",
                          "\"dtype\": \"f32\", \"shape\": [-1, 3]",
                          "cl.csv:5: label 3, but the model has 3 classes");
    rt_dataset_free(&d);
}

static void test_csv_feature_count_other_than_model_input_is_error(void **state) {
    ts_write_text("fc.csv", "a,b,c\n1,2,0\n");
    RtDataSpec s = csv_spec("fc.csv");
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    RtManifest m = ts_model("\"dtype\": \"f32\", \"shape\": [-1, 3]", "\"dtype\": \"i64\", \"shape\": [-1]",
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

/* ---------------------------------------------------------------- the prefetching loader */

/* The loader's batches, each checked against a serial gather of the same samples while the next batch is
   being gathered into the other buffers, as the driver's epoch uses them. */
static void check_loader_batches(const RtDataset *d, const RtTensorSpec *xs, const RtTensorSpec *ys, int64_t batch,
                                 bool prefetch) {
    RtLoader l;
    RtErr e;
    assert_int_equal(rt_loader_open(&l, d, xs, ys, batch, prefetch, &e), RT_OK);
    assert_int_equal(l.threaded, prefetch);
    int64_t *order = malloc((size_t)d->count * sizeof *order);
    assert_non_null(order);
    size_t xb = (size_t)(batch * d->per_sample) * rt_dtype_size(xs->dtype);
    size_t yb = (size_t)(batch * d->per_label) * rt_dtype_size(ys->dtype);
    void *want_x = malloc(xb), *want_y = malloc(yb);
    assert_true(want_x && want_y);
    for (int64_t epoch = 0; epoch < 3; epoch++) {
        rt_epoch_order(d->count, true, 42, epoch, order);
        int64_t nb = rt_batch_count(d->count, batch);
        rt_loader_request(&l, order, batch < d->count ? batch : d->count);
        for (int64_t k = 0; k < nb; k++) {
            int64_t start = k * batch, n = d->count - start < batch ? d->count - start : batch;
            void *x, *y;
            rt_loader_wait(&l, &x, &y);
            if (k + 1 < nb)
                rt_loader_request(&l, order + start + n, d->count - start - n < batch ? d->count - start - n : batch);
            rt_dataset_gather(d, order + start, n, xs->dtype, want_x, ys->dtype, want_y);
            assert_memory_equal(x, want_x, (size_t)(n * d->per_sample) * rt_dtype_size(xs->dtype));
            assert_memory_equal(y, want_y, (size_t)(n * d->per_label) * rt_dtype_size(ys->dtype));
            assert_int_equal((uintptr_t)x % 64, 0);
        }
    }
    free(want_x);
    free(want_y);
    free(order);
    rt_loader_close(&l);
}

static void write_loader_idx(int count, int per) {
    char p[512];
    uint8_t *px = malloc((size_t)(count * per)), *lb = malloc((size_t)count);
    assert_true(px && lb);
    for (int i = 0; i < count * per; i++)
        px[i] = (uint8_t)(i * 7 + i / per);
    for (int i = 0; i < count; i++)
        lb[i] = (uint8_t)(i % 10);
    uint32_t dims[2] = {(uint32_t)count, (uint32_t)per}, dl[1] = {(uint32_t)count};
    write_idx(tmp_path(p, sizeof p, ts_dir, "ld-images"), 2, dims, px, false);
    write_idx(tmp_path(p, sizeof p, ts_dir, "ld-labels"), 1, dl, lb, false);
    free(px);
    free(lb);
}

static void test_loader_prefetched_batches_equal_serial_gather(void **state) {
    write_loader_idx(103, 13);
    RtDataSpec s = {.present = true, .images = "ld-images", .labels = "ld-labels", .scale = 1.0 / 255};
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    RtTensorSpec xs = {.name = "x", .dtype = RT_F32, .rank = 2, .shape = {-1, 13}};
    RtTensorSpec ys = {.name = "label", .dtype = RT_I64, .rank = 1, .shape = {-1}};
    for (int64_t batch = 1; batch <= 128; batch = batch * 3 + 1) {
        check_loader_batches(&d, &xs, &ys, batch, true);
        check_loader_batches(&d, &xs, &ys, batch, false);
    }
    rt_dataset_free(&d);
}

static void test_loader_text_windows_and_labels_equal_serial_gather(void **state) {
    char text[600];
    for (int i = 0; i < 599; i++)
        text[i] = (char)('a' + (i * 11) % 26);
    text[599] = 0;
    ts_write_text("ld.txt", text);
    RtDataSpec s = {.present = true, .kind = RT_DATA_TEXT, .images = "ld.txt", .context = 16, .stride = 5};
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    RtTensorSpec xs = {.name = "x", .dtype = RT_I64, .rank = 2, .shape = {-1, 16}};
    RtTensorSpec ys = {.name = "label", .dtype = RT_I64, .rank = 2, .shape = {-1, 16}};
    check_loader_batches(&d, &xs, &ys, 7, true);
    rt_dataset_free(&d);
}

static void test_loader_without_labels_and_close_after_request(void **state) {
    write_loader_idx(20, 3);
    RtDataSpec s = {.present = true, .images = "ld-images", .labels = "ld-labels", .scale = 1};
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    RtTensorSpec xs = {.name = "x", .dtype = RT_F64, .rank = 2, .shape = {-1, 3}};
    RtLoader l;
    assert_int_equal(rt_loader_open(&l, &d, &xs, NULL, 4, true, &e), RT_OK);
    int64_t idx[4] = {19, 0, 5, 5};
    rt_loader_request(&l, idx, 4);
    void *x;
    rt_loader_wait(&l, &x, NULL);
    double want[12];
    rt_dataset_gather(&d, idx, 4, RT_F64, want, RT_U8, NULL);
    assert_memory_equal(x, want, sizeof want);
    rt_loader_request(&l, idx, 2);
    rt_loader_close(&l); /* with a request in flight: waits for it, joins the thread */
    rt_dataset_free(&d);
}

/* The driver's prefetching epochs train exactly as rt_train_epoch's serial ones, at any thread count. */
static float *checkpoint_params(const char *ckdir) {
    static float w[12], b[3];
    char path[600];
    snprintf(path, sizeof path, "%s/last.safetensors", ckdir);
    RtTensor ts[2] = {{.name = "w", .dtype = RT_F32, .rank = 2, .shape = {3, 4}, .data = w},
                      {.name = "b", .dtype = RT_F32, .rank = 1, .shape = {3}, .data = b}};
    RtErr e;
    if (rt_st_load(path, ts, 2, NULL, 0, NULL, &e) != RT_OK)
        fail_msg("%s", e.msg);
    float *out = malloc(15 * sizeof *out);
    assert_non_null(out);
    memcpy(out, w, sizeof w);
    memcpy(out + 12, b, sizeof b);
    return out;
}

static void test_driver_prefetching_epochs_match_serial_epochs(void **state) {
    write_fake_dataset(ts_dir, "train", 203, false);
    write_fake_dataset(ts_dir, "test", 20, false);
    float *got[2];
    const char *threads[2] = {"1", "2"};
    for (int t = 0; t < 2; t++) {
        char ck[512];
        tmp_path(ck, sizeof ck, ts_dir, threads[t][0] == '1' ? "ck-t1" : "ck-t2");
        const char *args[] = {"train", "--data", ts_dir, "--seed", "9", "--epochs", "2", "--batch", "16",
                              "--threads", threads[t], "--checkpoint-dir", ck, NULL};
        assert_int_equal(run_driver(NULL, NULL, args), 0);
        got[t] = checkpoint_params(ck);
    }
    RtManifest m;
    RtErr e;
    assert_int_equal(rt_manifest_parse(&m, lathe_manifest, &e), RT_OK);
    m.train.fn = lathe_train;
    char *argv[] = {"prog", "train", "--seed", "9", "--batch", "16", NULL};
    RtConfig cfg;
    assert_int_equal(rt_config_parse(&cfg, &m, 6, argv, &e), RT_OK);
    RtModel md;
    RtDataset train;
    RtBinding tb;
    assert_int_equal(rt_model_init(&md, &m, cfg.seed, &e), RT_OK);
    assert_int_equal(rt_dataset_load(&train, ts_dir, &cfg.train_data, &e), RT_OK);
    assert_int_equal(rt_bind(&tb, &md, &m.train, &cfg, cfg.batch, &e), RT_OK);
    for (int ep = 0; ep < 2; ep++)
        rt_train_epoch(&tb, &md, NULL, &train, &cfg, ep, NULL);
    float want[15];
    memcpy(want, md.params[rt_manifest_param_index(&m, "w")], 12 * sizeof *want);
    memcpy(want + 12, md.params[rt_manifest_param_index(&m, "b")], 3 * sizeof *want);
    assert_memory_equal(got[0], want, sizeof want);
    assert_memory_equal(got[1], want, sizeof want);
    free(got[0]);
    free(got[1]);
    rt_unbind(&tb);
    rt_dataset_free(&train);
    rt_model_free(&md);
    rt_config_free(&cfg);
    rt_manifest_free(&m);
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
        cmocka_unit_test(test_text_gzip_cut_is_truncated),
        cmocka_unit_test(test_text_too_short_for_one_window),
        cmocka_unit_test(test_text_empty_file),
        cmocka_unit_test(test_text_checked_against_model_tokens),
        cmocka_unit_test(test_text_context_other_than_model_input_is_error),
        cmocka_unit_test(test_text_labels_must_match_model_label_shape),
        cmocka_unit_test(test_text_context_defaults_to_model_input),
        cmocka_unit_test(test_recipe_data_source_errors),
        cmocka_unit_test(test_text_chars_ids_in_sorted_code_point_order),
        cmocka_unit_test(test_text_chars_large_vocabulary),
        cmocka_unit_test(test_text_chars_invalid_utf8_names_byte_offset),
        cmocka_unit_test(test_text_chars_too_short_counts_characters),
        cmocka_unit_test(test_text_lines_pad_and_ignored_labels),
        cmocka_unit_test(test_text_lines_of_chars),
        cmocka_unit_test(test_text_lines_token_beyond_model_names_line),
        cmocka_unit_test(test_text_lines_without_two_tokens_is_error),
        cmocka_unit_test(test_text_recipe_tokens_lines_pad),
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
        cmocka_unit_test(test_loader_prefetched_batches_equal_serial_gather),
        cmocka_unit_test(test_loader_text_windows_and_labels_equal_serial_gather),
        cmocka_unit_test(test_loader_without_labels_and_close_after_request),
        cmocka_unit_test(test_driver_prefetching_epochs_match_serial_epochs),
    };
    return cmocka_run_group_tests(tests, ts_setup_dir, ts_teardown_dir);
}
