/* test_reader_limits.c: the limits that keep a hostile data file or checkpoint cheap (issue 10), each a clear
   error before any allocation the file's claims would ask for: a rank past the reader's bound, dimensions
   whose product overflows or passes the size limit (safetensors' header length limit: test_safetensors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "support.h"

/* A .npy file of version 1.0 with the given header dict (padded to 64 bytes) and no data. */
static const char *npy_with(const char *dict) {
    char buf[128];
    memset(buf, ' ', sizeof buf);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = 118, buf[9] = 0;
    memcpy(buf + 10, dict, strlen(dict));
    buf[127] = '\n';
    const char *path = ts_write_text("a.npy", "");
    write_bytes(path, buf, sizeof buf);
    return path;
}

static void test_npy_rank_past_8(void **state) {
    RtNpy a;
    RtErr e = {{0}};
    const char *p = npy_with("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }");
    assert_int_equal(rt_npy_read(p, &a, &e), RT_ERR);
    assert_contains(e.msg, "shape has more than 8 dimensions");
}

static void test_npy_dimension_overflow(void **state) {
    RtNpy a;
    RtErr e = {{0}};
    const char *p = npy_with("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }");
    assert_int_equal(rt_npy_read(p, &a, &e), RT_ERR);
    assert_contains(e.msg, "dimension too large in shape");
}

/* Four dimensions of 2^32 - 1: their product overflows 64 bits; the reader stops at the size limit. */
static void test_idx_dimension_product(void **state) {
    static const uint8_t head[] = {0, 0, 8, 4, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
                                   255, 255};
    const char *p = ts_write_text("a.idx", "");
    write_bytes(p, head, sizeof head);
    RtIdx x;
    RtErr e = {{0}};
    assert_int_equal(rt_idx_read(p, 2, 5, &x, &e), RT_ERR);
    assert_contains(e.msg, "makes the data larger than 17179869184 bytes");
}

/* A safetensors file whose header is the given JSON, padded to 8 bytes, and no data. */
static const char *st_with(const char *json) {
    char buf[512];
    size_t n = strlen(json), padded = (n + 7) / 8 * 8;
    uint64_t len = padded;
    memcpy(buf, &len, 8);
    memset(buf + 8, ' ', padded);
    memcpy(buf + 8, json, n);
    const char *path = ts_write_text("a.safetensors", "");
    write_bytes(path, buf, 8 + padded);
    return path;
}

static void test_safetensors_shape_size_overflow(void **state) {
    json_t *meta = NULL;
    RtErr e = {{0}};
    const char *p = st_with("{\"w\": {\"dtype\": \"F64\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 0]}}");
    assert_int_equal(rt_st_read_meta(p, &meta, &e), RT_ERR);
    assert_contains(e.msg, "tensor 'w': the shape's size in bytes overflows 64 bits");
    json_decref(meta);
}

static void test_safetensors_rank_past_8(void **state) {
    float w[1] = {0};
    RtTensor t = {"w", RT_F32, 1, {1}, w};
    RtErr e = {{0}};
    const char *p = st_with("{\"w\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}");
    assert_int_equal(rt_st_load(p, &t, 1, NULL, 0, NULL, &e), RT_ERR);
    assert_contains(e.msg, "tensor 'w' has shape");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_rank_past_8),
        cmocka_unit_test(test_npy_dimension_overflow),
        cmocka_unit_test(test_idx_dimension_product),
        cmocka_unit_test(test_safetensors_shape_size_overflow),
        cmocka_unit_test(test_safetensors_rank_past_8),
    };
    return cmocka_run_group_tests(tests, ts_setup_dir, ts_teardown_dir);
}
