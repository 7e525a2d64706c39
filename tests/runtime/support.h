/* support.h: what the runtime tests share: the fake model (support_fake_model.c) and helpers for
   temporary folders and small IDX files (support_files.c). */
#ifndef LATHE_RT_TEST_SUPPORT_H
#define LATHE_RT_TEST_SUPPORT_H

#include "rt.h"

#include <stdbool.h>
#include <stdint.h>

/* The fake model (support_fake_model.c) defines lathe_manifest, lathe_train, lathe_grads, lathe_eval and
   lathe_predict of lathe_rt.h: softmax regression of x f32[N,4] into 3 classes, trained with SGD (fused in
   the train graph) or by the runtime's optimizer on the grads graph's gradients, in plain C. */
extern int64_t fake_calls; /* graph calls so far */

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

/* Fails the running cmocka test unless s (which may be NULL) contains part. */
void assert_contains(const char *s, const char *part);

#endif
