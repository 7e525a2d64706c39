/* test_profile.c: --profile (runtime/profile.c) on the fake model, whose train and eval entries here call
   two kernels the way generated code does (through lathe_profile_kernel while profiling is on): the trace
   is JSON with the traced steps, the model lines escaped; the table is sorted by time; the file is written
   by rename, nothing left beside it; a path that cannot be written fails before any step. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "lathe_kern.h"
#include "profile.h"
#include "support.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* The slow kernel's model line: a file name that needs escaping in JSON. */
#define SLOW_LINE "we\\\"ird\\\\dir.lathe:7"
#define SLOW_LINE_TEXT "we\"ird\\dir.lathe:7"

static const char kernel_list[] =
    "\"kernel_list\": ["
    " {\"node\": 5, \"name\": \"k0 matmul+add\", \"lines\": [\"" SLOW_LINE "\", \"fake.lathe:3\"],"
    "  \"share\": [0.75, 0.25], \"flops\": [0, 24, 0], \"bytes\": [60, 28, 0]},"
    " {\"node\": 9, \"name\": \"k1 reduce_sum\", \"lines\": [\"fake.lathe:9\"], \"share\": [1],"
    "  \"flops\": [0, 3, 0], \"bytes\": [4, 12, 0]}], ";

static char *manifest; /* the fake model's, with kernel_list in its train and eval graphs */

static void spin(uint8_t **bufs, int64_t n, int64_t lo, int64_t hi) {
    (void)bufs, (void)n, (void)lo, (void)hi;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 1000000L);
}

static void quick(uint8_t **bufs, int64_t n, int64_t lo, int64_t hi) { (void)bufs, (void)n, (void)lo, (void)hi; }

/* what a graph entry does for each kernel (lathe_kern.h) */
static void call(int graph, int node, lathe_kernel_fn k, int64_t n) {
    if (lathe_profile_on)
        lathe_profile_kernel(graph, node, k, NULL, n, 1, 1);
    else
        lathe_run_kernel(k, NULL, n, 1, 1);
}

static void train_entry(void **args, int64_t n, uint8_t *arena) {
    call(0, 5, spin, n);
    call(0, 9, quick, n);
    lathe_train(args, n, arena);
}

static void eval_entry(void **args, int64_t n, uint8_t *arena) {
    call(2, 5, spin, n);
    call(2, 9, quick, n);
    lathe_eval(args, n, arena);
}

static char *insert_after(const char *text, const char *at, const char *what) {
    const char *p = strstr(text, at);
    assert_non_null(p);
    size_t head = (size_t)(p - text) + strlen(at);
    char *out = malloc(strlen(text) + strlen(what) + 1);
    assert_non_null(out);
    memcpy(out, text, head);
    strcpy(out + head, what);
    strcat(out, text + head);
    return out;
}

static int setup(void **state) {
    ts_setup_fake_data(state);
    char *m1 = insert_after(lathe_manifest, "\"train\": {", kernel_list);
    manifest = insert_after(m1, "\"eval\": {", kernel_list);
    free(m1);
    return 0;
}

static int teardown(void **state) {
    free(manifest);
    manifest = NULL;
    return ts_teardown_dir(state);
}

static int run(char **out, char **err, const char *const *args) {
    return run_driver_with(manifest, train_entry, eval_entry, lathe_predict, out, err, args);
}

/* The events of a trace with ph X, cat cat and graph graph. */
static int count_events(json_t *trace, const char *cat, const char *graph) {
    json_t *ev = json_object_get(trace, "traceEvents"), *e;
    size_t i;
    int n = 0;
    json_array_foreach(ev, i, e) {
        const char *c = json_string_value(json_object_get(e, "cat"));
        const char *g = json_string_value(json_object_get(json_object_get(e, "args"), "graph"));
        n += c && g && strcmp(json_string_value(json_object_get(e, "ph")), "X") == 0 && strcmp(c, cat) == 0 &&
             strcmp(g, graph) == 0;
    }
    return n;
}

static void test_json_string_escapes_quotes_backslashes_and_controls(void **state) {
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    rt_profile_json_string(f, "a\"b\\c\nd\te\x01" "f\xc3\xa9");
    fclose(f);
    assert_string_equal(buf, "\"a\\\"b\\\\c\\nd\\te\\u0001f\xc3\xa9\"");
    json_error_t je; /* and JSON reads it back to the same string */
    json_t *j = json_loads(buf, JSON_DECODE_ANY, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(j), "a\"b\\c\nd\te\x01" "f\xc3\xa9");
    json_decref(j);
    free(buf);
}

static void test_trace_holds_steps_2_to_6_with_model_lines(void **state) {
    (void)state;
    char path[512], *out = NULL, *err = NULL;
    tmp_path(path, sizeof path, ts_dir, "t.json");
    const char *args[] = {"train", "--data", ts_dir, "--epochs", "1", "--profile", path, NULL};
    assert_int_equal(run(&out, &err, args), 0);
    char *text = read_text(path);
    json_t *trace = ts_json(text);
    /* 300 samples in batches of 8: 38 train calls; 60 test samples: 8 eval calls; 2..6 of each traced */
    assert_int_equal(count_events(trace, "step", "train"), 5);
    assert_int_equal(count_events(trace, "kernel", "train"), 10);
    assert_int_equal(count_events(trace, "kernel", "eval"), 10);
    assert_string_equal(json_string_value(json_object_get(trace, "displayTimeUnit")), "ms");
    json_t *ev = json_object_get(trace, "traceEvents"), *e;
    size_t i;
    bool seen = false;
    json_array_foreach(ev, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        if (!name || strcmp(name, "k0 matmul+add") != 0)
            continue;
        json_t *a = json_object_get(e, "args");
        assert_string_equal(json_string_value(json_array_get(json_object_get(a, "lines"), 0)), SLOW_LINE_TEXT);
        assert_int_equal(json_integer_value(json_object_get(a, "flops")), 24 * 8);
        assert_true(json_number_value(json_object_get(e, "dur")) >= 1000.0); /* us: the kernel spins 1 ms */
        int64_t step = json_integer_value(json_object_get(a, "step"));
        assert_true(step >= 2 && step <= 6);
        seen = true;
    }
    assert_true(seen);
    json_decref(trace);
    free(text);
    /* the table: the slow kernel's lines first, split 3:1, the quick one's last */
    const char *l1 = strstr(err, SLOW_LINE_TEXT), *l2 = strstr(err, "fake.lathe:3"), *l3 = strstr(err, "fake.lathe:9");
    assert_non_null(strstr(err, "time by model line"));
    assert_non_null(l1);
    assert_non_null(l2);
    assert_non_null(l3);
    assert_true(l1 < l2 && l2 < l3);
    assert_non_null(strstr(err, "37 train calls"));
    free(out);
    free(err);
}

static void test_trace_written_by_rename_nothing_left_beside(void **state) {
    (void)state;
    char dir[512], path[600];
    tmp_path(dir, sizeof dir, ts_dir, "only");
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/t.json", dir);
    const char *args[] = {"train", "--data", ts_dir, "--epochs", "1", "--profile", path, NULL};
    assert_int_equal(run(NULL, NULL, args), 0);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int files = 0;
    for (struct dirent *de; (de = readdir(d));)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            assert_string_equal(de->d_name, "t.json");
            files++;
        }
    closedir(d);
    assert_int_equal(files, 1);
}

static void test_unwritable_path_fails_before_training(void **state) {
    (void)state;
    char path[512], *out = NULL, *err = NULL;
    tmp_path(path, sizeof path, ts_dir, "no-such-folder/t.json");
    int64_t calls = fake_calls;
    const char *args[] = {"train", "--data", ts_dir, "--epochs", "1", "--profile", path, NULL};
    assert_int_equal(run(&out, &err, args), 1);
    assert_int_equal(fake_calls, calls); /* no step ran */
    assert_non_null(strstr(err, "--profile: cannot write"));
    assert_non_null(strstr(err, "No such file or directory"));
    assert_null(strstr(out, "Epoch"));
    free(out);
    free(err);
    /* a folder is not a file name */
    const char *args2[] = {"train", "--data", ts_dir, "--epochs", "1", "--profile", ts_dir, NULL};
    assert_int_equal(run(NULL, &err, args2), 1);
    assert_int_equal(fake_calls, calls);
    assert_non_null(strstr(err, "is a folder"));
    free(err);
}

static void test_profile_steps_chooses_the_traced_calls(void **state) {
    (void)state;
    char path[512];
    tmp_path(path, sizeof path, ts_dir, "steps.json");
    const char *args[] = {"train", "--data", ts_dir, "--epochs", "1", "--profile", path, "--profile-steps", "1:3",
                          NULL};
    assert_int_equal(run(NULL, NULL, args), 0);
    char *text = read_text(path);
    json_t *trace = ts_json(text);
    assert_int_equal(count_events(trace, "step", "train"), 3);
    assert_int_equal(count_events(trace, "kernel", "eval"), 6);
    json_decref(trace);
    free(text);
}

static void test_bad_profile_flags_named(void **state) {
    (void)state;
    char *err = NULL;
    const char *a1[] = {"train", "--data", ts_dir, "--profile", "x.json", "--profile-steps", "3", NULL};
    assert_int_equal(run(NULL, &err, a1), 2);
    assert_non_null(strstr(err, "--profile-steps: expected A:B"));
    free(err);
    const char *a2[] = {"train", "--data", ts_dir, "--profile", "x.json", "--profile-steps", "5:2", NULL};
    assert_int_equal(run(NULL, &err, a2), 2);
    assert_non_null(strstr(err, "--profile-steps: must be at least 5"));
    free(err);
    const char *a3[] = {"train", "--data", ts_dir, "--profile-steps", "2:4", NULL};
    assert_int_equal(run(NULL, &err, a3), 2);
    assert_non_null(strstr(err, "goes with --profile"));
    free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_string_escapes_quotes_backslashes_and_controls),
        cmocka_unit_test(test_trace_holds_steps_2_to_6_with_model_lines),
        cmocka_unit_test(test_trace_written_by_rename_nothing_left_beside),
        cmocka_unit_test(test_unwritable_path_fails_before_training),
        cmocka_unit_test(test_profile_steps_chooses_the_traced_calls),
        cmocka_unit_test(test_bad_profile_flags_named),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
