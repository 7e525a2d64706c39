/* test_safetensors.c: checkpoints round-trip; each kind of corrupt file is rejected with its own message and
   leaves the parameters untouched; writes are atomic (no temporary file left, the previous file intact). */
#include "support.h"

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static float w[12], b[3];

static int setup(void **state) {
    ts_setup_dir(state);
    for (int i = 0; i < 12; i++)
        w[i] = (float)i * 0.5f - 1;
    for (int i = 0; i < 3; i++)
        b[i] = (float)i + 0.25f;
    return 0;
}

static void tensors(RtTensor ts[2], float *wd, float *bd) {
    ts[0] = (RtTensor){.name = "w", .dtype = RT_F32, .rank = 2, .shape = {3, 4}, .data = wd};
    ts[1] = (RtTensor){.name = "b", .dtype = RT_F32, .rank = 1, .shape = {3}, .data = bd};
}

/* A file with the given header and data bytes, the header length taken as is. */
static const char *raw_file(const char *name, const char *header, size_t ndata) {
    static char p[512];
    tmp_path(p, sizeof p, ts_dir, name);
    size_t hl = strlen(header);
    uint8_t *buf = calloc(8 + hl + ndata, 1);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    write_bytes(p, buf, 8 + hl + ndata);
    free(buf);
    return p;
}

/* tensors() over wd and bd with every value 7, so that what a load leaves untouched shows. */
static void tensors_of_sevens(RtTensor ts[2], float *wd, float *bd) {
    for (int i = 0; i < 12; i++)
        wd[i] = 7;
    for (int i = 0; i < 3; i++)
        bd[i] = 7;
    tensors(ts, wd, bd);
}

/* Loads path into fresh buffers filled with 7; returns the status and checks nothing was written on error. */
static int load(const char *path, RtErr *e) {
    float wd[12], bd[3];
    RtTensor ts[2];
    tensors_of_sevens(ts, wd, bd);
    int rc = rt_st_load(path, ts, 2, NULL, 0, NULL, e);
    if (rc != RT_OK) {
        for (int i = 0; i < 12; i++)
            assert_true(wd[i] == 7);
        for (int i = 0; i < 3; i++)
            assert_true(bd[i] == 7);
    }
    return rc;
}

static void test_safetensors_round_trip(void **state) {
    char p[512];
    RtTensor ts[2];
    tensors(ts, w, b);
    json_t *meta = json_pack("{s:s, s:s}", "epoch", "3", "hash", "abc");
    RtErr e;
    assert_int_equal(rt_st_save(tmp_path(p, sizeof p, ts_dir, "rt.safetensors"), ts, 2, meta, &e), RT_OK);
    json_decref(meta);
    float wd[12] = {0}, bd[3] = {0};
    RtTensor back[2];
    tensors(back, wd, bd);
    json_t *got = NULL;
    assert_int_equal(rt_st_load(p, back, 2, NULL, 0, &got, &e), RT_OK);
    assert_memory_equal(wd, w, sizeof w);
    assert_memory_equal(bd, b, sizeof b);
    assert_string_equal(json_string_value(json_object_get(got, "epoch")), "3");
    json_decref(got);
}

static void test_safetensors_header_layout(void **state) {
    char p[512];
    RtTensor ts[2];
    tensors(ts, w, b);
    RtErr e;
    assert_int_equal(rt_st_save(tmp_path(p, sizeof p, ts_dir, "layout.safetensors"), ts, 2, NULL, &e), RT_OK);
    char *text = read_text(p);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++)
        hl |= (uint64_t)(uint8_t)text[i] << (8 * i);
    assert_int_equal(hl % 8, 0);
    struct stat st;
    stat(p, &st);
    assert_int_equal((uint64_t)st.st_size, 8 + hl + 60);
    char *head = strndup(text + 8, hl);
    assert_contains(head, "\"w\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]}");
    assert_contains(head, "\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[48,60]}");
    assert_memory_equal(text + 8 + hl, w, sizeof w);
    free(head);
    free(text);
}

static void test_safetensors_rejects_tiny_file(void **state) {
    char p[512];
    write_bytes(tmp_path(p, sizeof p, ts_dir, "tiny"), "abcd", 4);
    RtErr e;
    assert_int_equal(load(p, &e), RT_ERR);
    assert_contains(e.msg, "too small");
}

static void test_safetensors_rejects_header_longer_than_file(void **state) {
    char p[512];
    uint8_t bytes[16] = {0xe8, 0x03}; /* 1000 */
    write_bytes(tmp_path(p, sizeof p, ts_dir, "longhead"), bytes, sizeof bytes);
    RtErr e;
    assert_int_equal(load(p, &e), RT_ERR);
    assert_contains(e.msg, "header length 1000");
}

static void test_safetensors_rejects_header_over_100mb(void **state) {
    char p[512];
    uint64_t hl = 150000000;
    uint8_t bytes[8];
    for (int i = 0; i < 8; i++)
        bytes[i] = (uint8_t)(hl >> (8 * i));
    write_bytes(tmp_path(p, sizeof p, ts_dir, "bighead"), bytes, 8);
    assert_int_equal(truncate(p, (off_t)(8 + hl)), 0); /* sparse */
    RtErr e;
    assert_int_equal(load(p, &e), RT_ERR);
    assert_contains(e.msg, "exceeds the limit");
}

static void test_safetensors_rejects_invalid_json(void **state) {
    RtErr e;
    assert_int_equal(load(raw_file("badjson", "{\"w\": {\"dtype\": ", 60), &e), RT_ERR);
    assert_contains(e.msg, "invalid JSON header");
}

#define W_OK_ENTRY "\"w\": {\"dtype\": \"F32\", \"shape\": [3, 4], \"data_offsets\": [0, 48]}"
#define B_OK_ENTRY "\"b\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [48, 60]}"

static void test_safetensors_rejects_wrong_dtype(void **state) {
    RtErr e;
    const char *h = "{\"w\": {\"dtype\": \"F64\", \"shape\": [3, 4], \"data_offsets\": [0, 96]}, " B_OK_ENTRY "}";
    assert_int_equal(load(raw_file("dtype", h, 108), &e), RT_ERR);
    assert_contains(e.msg, "'w' has dtype F64");
}

static void test_safetensors_rejects_wrong_shape(void **state) {
    RtErr e;
    const char *h = "{\"w\": {\"dtype\": \"F32\", \"shape\": [4, 3], \"data_offsets\": [0, 48]}, " B_OK_ENTRY "}";
    assert_int_equal(load(raw_file("shape", h, 60), &e), RT_ERR);
    assert_contains(e.msg, "'w' has shape [4, 3], the model's parameter is [3, 4]");
}

static void test_safetensors_rejects_offsets_out_of_bounds(void **state) {
    RtErr e;
    const char *h = "{" W_OK_ENTRY ", \"b\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [60, 72]}}";
    assert_int_equal(load(raw_file("oob", h, 60), &e), RT_ERR);
    assert_contains(e.msg, "out of bounds");
}

static void test_safetensors_rejects_offsets_inconsistent_with_shape(void **state) {
    RtErr e;
    const char *h = "{\"w\": {\"dtype\": \"F32\", \"shape\": [3, 4], \"data_offsets\": [0, 44]}, " B_OK_ENTRY "}";
    assert_int_equal(load(raw_file("incons", h, 60), &e), RT_ERR);
    assert_contains(e.msg, "hold 44 bytes, its shape needs 48");
}

static void test_safetensors_rejects_overlap(void **state) {
    RtErr e;
    const char *h = "{" W_OK_ENTRY ", \"b\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [40, 52]}}";
    assert_int_equal(load(raw_file("overlap", h, 60), &e), RT_ERR);
    assert_contains(e.msg, "overlap");
}

static void test_safetensors_rejects_missing_tensor(void **state) {
    RtErr e;
    assert_int_equal(load(raw_file("missing", "{" W_OK_ENTRY "}", 48), &e), RT_ERR);
    assert_contains(e.msg, "missing tensor 'b'");
}

static void test_safetensors_rejects_unexpected_tensor(void **state) {
    RtErr e;
    const char *h = "{" W_OK_ENTRY ", " B_OK_ENTRY
                    ", \"c\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [60, 64]}}";
    assert_int_equal(load(raw_file("unexpected", h, 64), &e), RT_ERR);
    assert_contains(e.msg, "unexpected tensor 'c'");
}

static void test_safetensors_accepts_hand_written_file(void **state) {
    RtErr e;
    /* spaces after the JSON are allowed, as the format pads with them */
    assert_int_equal(load(raw_file("hand", "{" W_OK_ENTRY ", " B_OK_ENTRY "}   ", 60), &e), RT_OK);
}

static void test_safetensors_optional_tensors(void **state) {
    char p[512];
    float mom[3] = {9, 8, 7};
    RtTensor ts[3];
    tensors(ts, w, b);
    ts[2] = (RtTensor){.name = "b.momentum", .dtype = RT_F32, .rank = 1, .shape = {3}, .data = mom};
    RtErr e;
    assert_int_equal(rt_st_save(tmp_path(p, sizeof p, ts_dir, "opt.safetensors"), ts, 3, NULL, &e), RT_OK);
    float wd[12], bd[3], md[3] = {0};
    RtTensor req[2], opt = ts[2];
    tensors(req, wd, bd);
    opt.data = md;
    assert_int_equal(rt_st_load(p, req, 2, &opt, 1, NULL, &e), RT_OK);
    assert_memory_equal(md, mom, sizeof mom); /* present: loaded */
    assert_int_equal(rt_st_load(p, req, 2, NULL, 0, NULL, &e), RT_ERR); /* not asked for: unexpected */
    assert_non_null(strstr(e.msg, "unexpected tensor 'b.momentum'"));
    assert_int_equal(rt_st_save(p, ts, 2, NULL, &e), RT_OK);
    md[0] = 0;
    assert_int_equal(rt_st_load(p, req, 2, &opt, 1, NULL, &e), RT_OK); /* absent: fine, untouched */
    assert_true(md[0] == 0);
}

static int count_entries(const char *d) {
    DIR *dp = opendir(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dp)))
        n += de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."));
    closedir(dp);
    return n;
}

static void test_safetensors_save_leaves_no_temp_file(void **state) {
    char sub[512], p[600];
    tmp_path(sub, sizeof sub, ts_dir, "ckpt");
    mkdir(sub, 0755);
    RtTensor ts[2];
    tensors(ts, w, b);
    RtErr e;
    snprintf(p, sizeof p, "%s/last.safetensors", sub);
    assert_int_equal(rt_st_save(p, ts, 2, NULL, &e), RT_OK);
    assert_int_equal(rt_st_save(p, ts, 2, NULL, &e), RT_OK); /* overwrite */
    assert_int_equal(count_entries(sub), 1);
}

static void test_safetensors_save_into_missing_folder_fails(void **state) {
    char p[600];
    snprintf(p, sizeof p, "%s/no/such/last.safetensors", ts_dir);
    RtTensor ts[2];
    tensors(ts, w, b);
    RtErr e;
    assert_int_equal(rt_st_save(p, ts, 2, NULL, &e), RT_ERR);
    assert_contains(e.msg, "/no/such/.last.safetensors.tmp-");
    assert_contains(e.msg, strerror(ENOENT));
}

static void test_safetensors_failed_write_keeps_previous_file(void **state) {
    char sub[512], p[600];
    tmp_path(sub, sizeof sub, ts_dir, "full");
    mkdir(sub, 0755);
    snprintf(p, sizeof p, "%s/last.safetensors", sub);
    RtTensor ts[2];
    tensors(ts, w, b);
    RtErr e;
    assert_int_equal(rt_st_save(p, ts, 2, NULL, &e), RT_OK);
    char *before = read_text(p);
    /* a file size limit makes the next write fail with EFBIG, even for root */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 64;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    float big[1000] = {0};
    RtTensor bt = {.name = "w", .dtype = RT_F32, .rank = 1, .shape = {1000}, .data = big};
    int rc = rt_st_save(p, &bt, 1, NULL, &e);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    assert_int_equal(rc, RT_ERR);
    assert_contains(e.msg, ".last.safetensors.tmp-");
    assert_contains(e.msg, strerror(EFBIG));
    assert_int_equal(count_entries(sub), 1);
    char *after = read_text(p);
    assert_string_equal(before, after);
    assert_int_equal(load(p, &e), RT_OK);
    free(before);
    free(after);
}

static void test_safetensors_save_into_read_only_folder_fails(void **state) {
    if (geteuid() == 0)
        skip(); /* root writes anyway; the file size limit test above covers failing writes */
    char sub[512], p[600];
    tmp_path(sub, sizeof sub, ts_dir, "ro");
    mkdir(sub, 0555);
    snprintf(p, sizeof p, "%s/last.safetensors", sub);
    RtTensor ts[2];
    tensors(ts, w, b);
    RtErr e;
    assert_int_equal(rt_st_save(p, ts, 2, NULL, &e), RT_ERR);
    assert_contains(e.msg, strerror(EACCES));
    chmod(sub, 0755);
}

/* --init-from: a file saved from another model (a PyTorch backbone with another head and an F16 tensor the
   model lacks) loads the tensors it shares by name, through a prefix rule, and reports the rest. */
static void test_safetensors_init_from_partial_with_prefix_rule(void **state) {
    /* the file: backbone.w (F32 [3, 4], 48 bytes), head.w (F32 [2, 4], 32 bytes), extra (F16 [2], 4 bytes) */
    const char *h = "{\"backbone.w\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]},"
                    "\"head.w\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[48,80]},"
                    "\"extra\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[80,84]}}";
    const char *p = raw_file("init.safetensors", h, 84);
    float wd[12], bd[3];
    RtTensor ts[2];
    tensors_of_sevens(ts, wd, bd);
    const char *from[] = {"backbone."}, *to[] = {""};
    RtStInit init = {.nmap = 1, .from = from, .to = to};
    RtErr e;
    assert_int_equal(rt_st_init_from(p, ts, 2, &init, &e), RT_OK);
    assert_int_equal(init.loaded, 1);
    assert_true(wd[0] == 0 && wd[11] == 0); /* the file's zeros */
    assert_true(bd[0] == 7);                /* b is missing: untouched */
    assert_string_equal(init.missing, "b");
    assert_string_equal(init.unexpected, "head.w, extra");
    rt_st_init_free(&init);
    /* without the rule nothing matches: all reported, nothing loaded */
    RtStInit plain = {0};
    assert_int_equal(rt_st_init_from(p, ts, 2, &plain, &e), RT_OK);
    assert_int_equal(plain.loaded, 0);
    assert_string_equal(plain.missing, "w, b");
    rt_st_init_free(&plain);
}

/* A shared name of another shape is an error (PyTorch's size mismatch), and an unexpected tensor's byte range
   is checked as any other's: nothing is loaded from such a file. */
static void test_safetensors_init_from_checks_everything(void **state) {
    float wd[12], bd[3] = {7, 7, 7};
    RtTensor ts[2];
    tensors(ts, wd, bd);
    RtStInit init = {0};
    RtErr e;
    const char *p = raw_file("shape.safetensors", "{\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16);
    assert_int_equal(rt_st_init_from(p, ts, 2, &init, &e), RT_ERR);
    assert_contains(e.msg, "tensor 'b' has shape [4], the model's parameter is [3]");
    p = raw_file("range.safetensors", "{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                                      "\"x\":{\"dtype\":\"F16\",\"shape\":[8],\"data_offsets\":[12,20]}}", 20);
    assert_int_equal(rt_st_init_from(p, ts, 2, &init, &e), RT_ERR);
    assert_contains(e.msg, "tensor 'x': data_offsets [12, 20] hold 8 bytes, its dtype and shape need 16");
    assert_true(bd[0] == 7);
    assert_null(init.missing);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safetensors_round_trip),
        cmocka_unit_test(test_safetensors_header_layout),
        cmocka_unit_test(test_safetensors_rejects_tiny_file),
        cmocka_unit_test(test_safetensors_rejects_header_longer_than_file),
        cmocka_unit_test(test_safetensors_rejects_header_over_100mb),
        cmocka_unit_test(test_safetensors_rejects_invalid_json),
        cmocka_unit_test(test_safetensors_rejects_wrong_dtype),
        cmocka_unit_test(test_safetensors_rejects_wrong_shape),
        cmocka_unit_test(test_safetensors_rejects_offsets_out_of_bounds),
        cmocka_unit_test(test_safetensors_rejects_offsets_inconsistent_with_shape),
        cmocka_unit_test(test_safetensors_rejects_overlap),
        cmocka_unit_test(test_safetensors_rejects_missing_tensor),
        cmocka_unit_test(test_safetensors_rejects_unexpected_tensor),
        cmocka_unit_test(test_safetensors_accepts_hand_written_file),
        cmocka_unit_test(test_safetensors_optional_tensors),
        cmocka_unit_test(test_safetensors_save_leaves_no_temp_file),
        cmocka_unit_test(test_safetensors_save_into_missing_folder_fails),
        cmocka_unit_test(test_safetensors_failed_write_keeps_previous_file),
        cmocka_unit_test(test_safetensors_save_into_read_only_folder_fails),
        cmocka_unit_test(test_safetensors_init_from_partial_with_prefix_rule),
        cmocka_unit_test(test_safetensors_init_from_checks_everything),
    };
    return cmocka_run_group_tests(tests, setup, ts_teardown_dir);
}
