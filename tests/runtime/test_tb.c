/* test_tb.c: TensorBoard event files (runtime/tb.c): CRC-32C against the iSCSI vectors (RFC 3720) and its
   mask, a file written and read back record by record (every length and CRC checked, every Event decoded by
   protobuf-c's generated unpack), NaN written as it is, histograms in TensorFlow's buckets, an epoch's events
   from the JSON log, and the messages of an unwritable folder and a full disk. */
#include "support.h"

#include "tb.h"
#include "tensorboard.pb-c.h"

#include <dirent.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_EVENTS 64

typedef struct Events {
    int n;
    Tensorflow__Event *ev[MAX_EVENTS];
} Events;

static uint64_t get_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Reads every record of path, checking both masked CRCs, and decodes each with the generated unpack. */
static void read_events(const char *path, Events *out) {
    uint8_t *data;
    int64_t size;
    RtErr e = {{0}};
    if (rt_read_file(path, 1 << 24, &data, &size, &e) != RT_OK)
        fail_msg("%s", e.msg);
    out->n = 0;
    int64_t at = 0;
    while (at < size) {
        if (size - at < 12)
            fail_msg("%s: a record header cut at byte %lld", path, (long long)at);
        uint64_t len = get_le(data + at, 8);
        assert_int_equal(get_le(data + at + 8, 4), rt_crc32c_mask(rt_crc32c(data + at, 8)));
        if ((uint64_t)(size - at - 12) < len + 4)
            fail_msg("%s: a record of %llu bytes cut at byte %lld", path, (unsigned long long)len, (long long)at);
        const uint8_t *ev = data + at + 12;
        assert_int_equal(get_le(ev + len, 4), rt_crc32c_mask(rt_crc32c(ev, len)));
        assert_true(out->n < MAX_EVENTS);
        out->ev[out->n] = tensorflow__event__unpack(NULL, len, ev);
        if (!out->ev[out->n])
            fail_msg("%s: the event at byte %lld does not decode", path, (long long)at);
        out->n++;
        at += 12 + (int64_t)len + 4;
    }
    free(data);
}

static void free_events(Events *evs) {
    for (int i = 0; i < evs->n; i++)
        tensorflow__event__free_unpacked(evs->ev[i], NULL);
    evs->n = 0;
}

/* The names of the event files in dir (at most max), sorted. */
static int event_files(const char *dir, char names[][512], int max) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "events.out.tfevents.", 20) != 0)
            continue;
        assert_true(n < max);
        snprintf(names[n++], 512, "%s/%s", dir, de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, 512, (int (*)(const void *, const void *))strcmp);
    return n;
}

/* The one value of event ev's summary, checked to carry tag and step. */
static const Tensorflow__Summary__Value *value_of(const Tensorflow__Event *ev, const char *tag, int64_t step) {
    assert_int_equal(ev->what_case, TENSORFLOW__EVENT__WHAT_SUMMARY);
    assert_int_equal(ev->summary->n_value, 1);
    const Tensorflow__Summary__Value *v = ev->summary->value[0];
    assert_string_equal(v->tag, tag);
    assert_int_equal(ev->step, step);
    return v;
}

static void check_scalar(const Tensorflow__Event *ev, const char *tag, int64_t step, float value) {
    const Tensorflow__Summary__Value *v = value_of(ev, tag, step);
    assert_int_equal(v->value_case, TENSORFLOW__SUMMARY__VALUE__VALUE_SIMPLE_VALUE);
    if (isnan(value))
        assert_true(isnan(v->simple_value));
    else
        assert_true(v->simple_value == value);
}

static void assert_near(double got, double want, double tol) {
    if (!(fabs(got - want) <= tol))
        fail_msg("%.17g is not %.17g (within %g)", got, want, tol);
}

/* The count of the bucket that holds x: limit[i - 1] <= x < limit[i]. */
static double bucket_count(const Tensorflow__HistogramProto *h, double x) {
    for (size_t i = 0; i < h->n_bucket_limit; i++)
        if (x < h->bucket_limit[i])
            return h->bucket[i];
    return -1;
}

static void test_crc32c_known_vectors(void **state) {
    (void)state;
    assert_int_equal(rt_crc32c("123456789", 9), 0xe3069283u);
    assert_int_equal(rt_crc32c("", 0), 0);
    uint8_t b[32];
    memset(b, 0, sizeof b); /* RFC 3720, B.4 */
    assert_int_equal(rt_crc32c(b, 32), 0x8a9136aau);
    memset(b, 0xff, sizeof b);
    assert_int_equal(rt_crc32c(b, 32), 0x62a8ab43u);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    assert_int_equal(rt_crc32c(b, 32), 0x46dd794eu);
}

static void test_crc32c_mask(void **state) {
    (void)state;
    assert_int_equal(rt_crc32c_mask(0), 0xa282ead8u);
    assert_int_equal(rt_crc32c_mask(0xe3069283u), 0xc78ab0e5u);
    assert_int_equal(rt_crc32c_mask(0xffffffffu), 0xa282ead7u); /* the sum wraps */
}

static void test_tb_file_read_back(void **state) {
    (void)state;
    char *root = tmp_dir(), dir[512];
    tmp_path(dir, sizeof dir, root, "runs/exp1"); /* the parents are created too */
    double t0 = (double)time(NULL);
    RtTb tb;
    RtErr e = {{0}};
    if (rt_tb_open(&tb, dir, &e) != RT_OK)
        fail_msg("%s", e.msg);
    for (int s = 1; s <= 3; s++)
        assert_int_equal(rt_tb_scalar(&tb, "train/loss", s, 1.0 / s, &e), RT_OK);
    assert_int_equal(rt_tb_scalar(&tb, "train/loss", 4, NAN, &e), RT_OK);
    assert_int_equal(rt_tb_scalar(&tb, "lr", 4, INFINITY, &e), RT_OK);
    float w[] = {0.5f, 0.5f, 2.0f, -1.0f, 0.0f, NAN, 3e-5f, -INFINITY};
    assert_int_equal(rt_tb_histogram(&tb, "fc1.weight", 4, RT_F32, w, 8, &e), RT_OK);
    int64_t ids[] = {3, 3, 3, 1000000};
    assert_int_equal(rt_tb_histogram(&tb, "ids", 5, RT_I64, ids, 4, &e), RT_OK);
    if (rt_tb_close(&tb, &e) != RT_OK)
        fail_msg("%s", e.msg);
    double t1 = (double)time(NULL) + 1;

    char names[4][512];
    assert_int_equal(event_files(dir, names, 4), 1);
    const char *base = strrchr(names[0], '/') + 1;
    char host[256] = "", want[512];
    gethostname(host, sizeof host);
    long long secs;
    assert_int_equal(sscanf(base, "events.out.tfevents.%lld.", &secs), 1);
    assert_true(secs >= (long long)t0 && secs <= (long long)t1);
    snprintf(want, sizeof want, "events.out.tfevents.%010lld.%s.%d.", secs, host, (int)getpid());
    if (strncmp(base, want, strlen(want)) != 0)
        fail_msg("file %s is not named %s<counter>", base, want);

    Events evs;
    read_events(names[0], &evs);
    assert_int_equal(evs.n, 8);
    assert_int_equal(evs.ev[0]->what_case, TENSORFLOW__EVENT__WHAT_FILE_VERSION);
    assert_string_equal(evs.ev[0]->file_version, "brain.Event:2");
    for (int i = 0; i < evs.n; i++)
        assert_true(evs.ev[i]->wall_time >= t0 && evs.ev[i]->wall_time <= t1);
    check_scalar(evs.ev[1], "train/loss", 1, 1.0f);
    check_scalar(evs.ev[2], "train/loss", 2, 0.5f);
    check_scalar(evs.ev[3], "train/loss", 3, (float)(1.0 / 3));
    check_scalar(evs.ev[4], "train/loss", 4, NAN);
    check_scalar(evs.ev[5], "lr", 4, INFINITY);

    const Tensorflow__Summary__Value *v = value_of(evs.ev[6], "fc1.weight", 4);
    assert_int_equal(v->value_case, TENSORFLOW__SUMMARY__VALUE__VALUE_HISTO);
    const Tensorflow__HistogramProto *h = v->histo;
    assert_true(h->num == 6); /* NaN and -inf left out */
    assert_true(h->min == -1.0 && h->max == 2.0);
    assert_near(h->sum, 2.0 + (double)3e-5f, 1e-12);
    assert_near(h->sum_squares, 5.5 + (double)3e-5f * (double)3e-5f, 1e-12);
    assert_int_equal(h->n_bucket, h->n_bucket_limit);
    double total = 0;
    for (size_t i = 0; i < h->n_bucket; i++) {
        total += h->bucket[i];
        if (i > 0)
            assert_true(h->bucket_limit[i] > h->bucket_limit[i - 1]);
        if (i > 0 && h->bucket[i] == 0) /* runs of empty buckets are written as one */
            assert_true(h->bucket[i - 1] != 0);
    }
    assert_true(total == 6);
    assert_true(h->bucket_limit[h->n_bucket_limit - 1] == DBL_MAX);
    assert_true(bucket_count(h, 0.5) == 2);
    assert_true(bucket_count(h, 2.0) == 1);
    assert_true(bucket_count(h, -1.0) == 1);
    assert_true(bucket_count(h, 0.0) == 1);
    assert_true(bucket_count(h, 3e-5f) == 1);
    /* TensorFlow's exponential buckets: a non-empty bucket away from 0 spans 10% */
    for (size_t i = 1; i < h->n_bucket; i++)
        if (h->bucket[i] > 0 && h->bucket_limit[i - 1] > 0)
            assert_near(h->bucket_limit[i] / h->bucket_limit[i - 1], 1.1, 1e-9);

    v = value_of(evs.ev[7], "ids", 5);
    h = v->histo;
    assert_true(h->num == 4 && h->min == 3 && h->max == 1e6 && h->sum == 1000009);
    assert_true(bucket_count(h, 3) == 3 && bucket_count(h, 1e6) == 1);
    free_events(&evs);
    tmp_remove(root);
}

static void test_tb_two_files_in_one_folder(void **state) {
    (void)state;
    char *dir = tmp_dir(), names[4][512];
    RtTb a, b;
    RtErr e = {{0}};
    assert_int_equal(rt_tb_open(&a, dir, &e), RT_OK);
    assert_int_equal(rt_tb_open(&b, dir, &e), RT_OK);
    assert_string_not_equal(a.path, b.path);
    assert_int_equal(rt_tb_scalar(&b, "x", 7, 2.5, &e), RT_OK);
    assert_int_equal(rt_tb_close(&a, &e), RT_OK);
    assert_int_equal(rt_tb_close(&b, &e), RT_OK);
    assert_int_equal(event_files(dir, names, 4), 2);
    Events evs;
    read_events(a.path, &evs);
    assert_int_equal(evs.n, 1); /* the file version alone */
    free_events(&evs);
    read_events(b.path, &evs);
    assert_int_equal(evs.n, 2);
    check_scalar(evs.ev[1], "x", 7, 2.5f);
    free_events(&evs);
    tmp_remove(dir);
}

/* what the driver hands over after an epoch: the JSON log's object and the model */
static void test_tb_epoch_from_the_json_log(void **state) {
    (void)state;
    char *dir = tmp_dir();
    json_error_t je;
    json_t *o = json_loads("{\"epoch\": 3, \"lr\": 0.05, \"steps\": 30, \"train_loss\": 0.25, \"train_accuracy\": 0.875,"
                           " \"train_precision_per_class\": [1, 0.5], \"val_loss\": null, \"test_f1\": 0.5,"
                           " \"test_confusion_matrix\": [[1, 0], [0, 1]], \"seconds\": 1.5, \"samples_per_s\": 100}",
                           0, &je);
    assert_non_null(o);
    RtParam params[2] = {
        {.t = {.name = "fc.weight", .dtype = RT_F32, .rank = 2, .shape = {2, 3}}},
        {.t = {.name = "fc.bias", .dtype = RT_F64, .rank = 1, .shape = {2}}},
    };
    RtManifest m = {.nparams = 2, .params = params};
    float wt[6] = {1, 2, 3, 4, 5, 6};
    double bias[2] = {-1, 1};
    void *buffers[2] = {wt, bias};
    RtModel md = {.m = &m, .params = buffers};
    RtTb tb;
    RtErr e = {{0}};
    assert_int_equal(rt_tb_open(&tb, dir, &e), RT_OK);
    if (rt_tb_epoch(&tb, 3, o, &md, &e) != RT_OK)
        fail_msg("%s", e.msg);
    /* flushed: the events are in the file before it is closed */
    Events evs;
    read_events(tb.path, &evs);
    assert_int_equal(evs.n, 1 + 5 + 2);
    const char *tags[] = {"lr", "train/loss", "train/accuracy", "val/loss", "test/f1"};
    const float values[] = {0.05f, 0.25f, 0.875f, NAN, 0.5f};
    for (int t = 0; t < 5; t++) {
        int found = 0;
        for (int i = 1; i < evs.n; i++) {
            const Tensorflow__Summary__Value *v = evs.ev[i]->summary->value[0];
            if (strcmp(v->tag, tags[t]) == 0) {
                check_scalar(evs.ev[i], tags[t], 3, values[t]);
                found++;
            }
        }
        if (found != 1)
            fail_msg("tag %s written %d times", tags[t], found);
    }
    const Tensorflow__Summary__Value *w = value_of(evs.ev[6], "fc.weight", 3), *b = value_of(evs.ev[7], "fc.bias", 3);
    assert_true(w->histo->num == 6 && w->histo->sum == 21 && w->histo->max == 6);
    assert_true(b->histo->num == 2 && b->histo->min == -1 && b->histo->sum_squares == 2);
    free_events(&evs);
    assert_int_equal(rt_tb_close(&tb, &e), RT_OK);
    json_decref(o);
    tmp_remove(dir);
}

static void test_tb_unwritable_folder_is_one_message(void **state) {
    (void)state;
    char *dir = tmp_dir(), file[512], sub[600];
    tmp_path(file, sizeof file, dir, "a-file");
    write_bytes(file, "x", 1);
    snprintf(sub, sizeof sub, "%s/logs", file);
    RtTb tb;
    RtErr e = {{0}};
    assert_int_equal(rt_tb_open(&tb, sub, &e), RT_ERR);
    assert_contains(e.msg, "cannot create folder");
    assert_contains(e.msg, file);
    assert_null(tb.f);
    assert_int_equal(rt_tb_close(&tb, NULL), RT_OK); /* nothing to release */
    assert_int_equal(rt_tb_open(&tb, "", &e), RT_ERR);
    tmp_remove(dir);
}

static void test_tb_full_disk_is_one_message_naming_the_file(void **state) {
    (void)state;
    FILE *full = fopen("/dev/full", "wb");
    if (!full)
        skip();
    char *dir = tmp_dir();
    RtTb tb;
    RtErr e = {{0}};
    assert_int_equal(rt_tb_open(&tb, dir, &e), RT_OK);
    fclose(tb.f);
    tb.f = full; /* every write from here on fails with ENOSPC */
    char path[sizeof tb.path];
    snprintf(path, sizeof path, "%s", tb.path);
    int rc = rt_tb_scalar(&tb, "train/loss", 1, 0.5, &e);
    if (rc == RT_OK)
        rc = rt_tb_flush(&tb, &e);
    assert_int_equal(rc, RT_ERR);
    assert_contains(e.msg, path);
    assert_contains(e.msg, "No space left");
    assert_int_equal(rt_tb_close(&tb, NULL), RT_ERR);
    assert_null(tb.f);
    tmp_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_known_vectors),
        cmocka_unit_test(test_crc32c_mask),
        cmocka_unit_test(test_tb_file_read_back),
        cmocka_unit_test(test_tb_two_files_in_one_folder),
        cmocka_unit_test(test_tb_epoch_from_the_json_log),
        cmocka_unit_test(test_tb_unwritable_folder_is_one_message),
        cmocka_unit_test(test_tb_full_disk_is_one_message_naming_the_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
