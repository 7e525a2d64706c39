/* support.h: what the runtime tests share: the fake model (support_fake_model.c) and helpers for
   temporary folders, small files, manifests and JSON (support_files.c). */
#ifndef LATHE_RT_TEST_SUPPORT_H
#define LATHE_RT_TEST_SUPPORT_H

#include "rt.h"

#include <stdbool.h>
#include <stdint.h>

/* The fake model (support_fake_model.c) defines lathe_manifest, lathe_train, lathe_grads, lathe_eval and
   lathe_predict of lathe_rt.h: softmax regression of x f32[N,4] into 3 classes, trained with SGD (fused in
   the train graph) or by the runtime's optimizer on the grads graph's gradients, in plain C. */
extern int64_t fake_calls; /* graph calls so far */

/* The folder of a test group (or of each test): ts_setup_dir makes a fresh one, ts_teardown_dir removes it
   with everything in it; as cmocka's setup and teardown. */
extern char *ts_dir;
int ts_setup_dir(void **state);
int ts_teardown_dir(void **state);
/* ts_setup_dir, then the fake model's data in it: train-* (300 samples, gzip) and test-* (60, plain). */
int ts_setup_fake_data(void **state);
/* Writes text to ts_dir/name; returns the path (a static buffer, overwritten by the next call). */
const char *ts_write_text(const char *name, const char *text);

/* A fresh folder under /tmp, removed with everything in it by tmp_remove. */
char *tmp_dir(void);
void tmp_remove(char *dir);
/* dir/name into buf */
const char *tmp_path(char *buf, size_t n, const char *dir, const char *name);

/* Writes an IDX file (u8, magic 0x800 + ndims), plain or gzip. */
void write_idx(const char *path, int ndims, const uint32_t *dims, const uint8_t *data, bool gz);
void write_bytes(const char *path, const void *data, size_t n);
/* Samples of the fake model's task: class i % 3, the pixel of that class bright. Writes
   dir/{prefix}-images and dir/{prefix}-labels (gzip when gz). */
void write_fake_dataset(const char *dir, const char *prefix, int count, bool gz);

/* Runs the whole driver on the fake model with argv (argv[0] filled in); captures stdout and stderr into
   *out and *err (malloc'd, may be NULL). Returns the exit status. */
int run_driver(char **out, char **err, const char *const *args);
/* The same with another model: its manifest and graph entries. */
int run_driver_with(const char *manifest, LatheGraphFn train, LatheGraphFn eval, LatheGraphFn predict, char **out,
                    char **err, const char *const *args);
char *read_text(const char *path);

/* A manifest with the inputs x and label and a predict graph from x to logits; each argument is the JSON
   members of a tensor's type, such as "\"dtype\": \"f32\", \"shape\": [-1, 4]". Fails the running test
   unless it parses; free with rt_manifest_free. */
RtManifest ts_model(const char *x, const char *label, const char *logits);
/* Checks d against ts_model(x, label, logits): fails the running test unless the check fails with a message
   containing msg. */
void ts_expect_check_error(const RtDataset *d, const char *x, const char *label, const char *logits, const char *msg);
/* The JSON text parsed; fails the running test on bad JSON. */
json_t *ts_json(const char *text);
/* How many of a[0..n) and b[0..n) differ. */
int ts_differ(const int64_t *a, const int64_t *b, int64_t n);

/* Fails the running cmocka test unless s (which may be NULL) contains part. */
void assert_contains(const char *s, const char *part);

#endif
