/* support_files.c: temporary folders, small IDX files, manifests, JSON and a way to run the whole driver
   in-process with its output captured, for the runtime tests. */
#define _XOPEN_SOURCE 700
#include "support.h"

#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

char *tmp_dir(void) {
    char *d = strdup("/tmp/lathe-rt-test-XXXXXX");
    if (!d || !mkdtemp(d)) {
        perror("mkdtemp");
        abort();
    }
    return d;
}

char *ts_dir;

int ts_setup_dir(void **state) {
    ts_dir = tmp_dir();
    return 0;
}

int ts_teardown_dir(void **state) {
    tmp_remove(ts_dir);
    ts_dir = NULL;
    return 0;
}

int ts_setup_fake_data(void **state) {
    ts_setup_dir(state);
    write_fake_dataset(ts_dir, "train", 300, true);
    write_fake_dataset(ts_dir, "test", 60, false);
    return 0;
}

const char *ts_write_text(const char *name, const char *text) {
    static char p[512];
    write_bytes(tmp_path(p, sizeof p, ts_dir, name), text, strlen(text));
    return p;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

void tmp_remove(char *dir) {
    nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

const char *tmp_path(char *buf, size_t n, const char *dir, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
    return buf;
}

void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

void write_idx(const char *path, int ndims, const uint32_t *dims, const uint8_t *data, bool gz) {
    size_t count = 1, head = 4 + 4 * (size_t)ndims;
    for (int i = 0; i < ndims; i++)
        count *= dims[i];
    uint8_t *buf = malloc(head + count);
    buf[0] = buf[1] = 0;
    buf[2] = 8;
    buf[3] = (uint8_t)ndims;
    for (int i = 0; i < ndims; i++)
        for (int k = 0; k < 4; k++)
            buf[4 + 4 * i + k] = (uint8_t)(dims[i] >> (24 - 8 * k));
    if (count)
        memcpy(buf + head, data, count);
    if (!gz) {
        write_bytes(path, buf, head + count);
    } else {
        gzFile f = gzopen(path, "wb");
        if (!f || gzwrite(f, buf, (unsigned)(head + count)) != (int)(head + count) || gzclose(f) != Z_OK)
            abort();
    }
    free(buf);
}

void write_fake_dataset(const char *dir, const char *prefix, int count, bool gz) {
    uint8_t *img = malloc((size_t)count * 4), *lab = malloc((size_t)count);
    uint32_t seed = 12345;
    for (int i = 0; i < count; i++) {
        lab[i] = (uint8_t)(i % 3);
        for (int k = 0; k < 4; k++) {
            seed = seed * 1103515245u + 12345u;
            img[i * 4 + k] = (uint8_t)((seed >> 16) % 60);
        }
        img[i * 4 + lab[i]] += 150;
    }
    char path[512], name[128];
    uint32_t dims[3] = {(uint32_t)count, 2, 2};
    snprintf(name, sizeof name, "%s-images", prefix);
    write_idx(tmp_path(path, sizeof path, dir, name), 3, dims, img, gz);
    snprintf(name, sizeof name, "%s-labels", prefix);
    write_idx(tmp_path(path, sizeof path, dir, name), 1, dims, lab, gz);
    free(img);
    free(lab);
}

char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = 0;
    fclose(f);
    return s;
}

static int redirect(int fd, const char *path) {
    int saved = dup(fd);
    int t = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(t, fd);
    close(t);
    return saved;
}

static void restore(int fd, int saved) {
    dup2(saved, fd);
    close(saved);
}

int run_driver(char **out, char **err, const char *const *args) {
    return run_driver_with(lathe_manifest, lathe_train, lathe_eval, lathe_predict, out, err, args);
}

int run_driver_with(const char *manifest, LatheGraphFn train, LatheGraphFn eval, LatheGraphFn predict, char **out,
                    char **err, const char *const *args) {
    int argc = 1;
    while (args[argc - 1])
        argc++;
    char **argv = calloc((size_t)argc + 1, sizeof *argv);
    argv[0] = strdup("fake_model");
    for (int i = 1; i < argc; i++)
        argv[i] = strdup(args[i - 1]);
    char *dir = tmp_dir(), opath[512], epath[512];
    tmp_path(opath, sizeof opath, dir, "stdout");
    tmp_path(epath, sizeof epath, dir, "stderr");
    fflush(stdout);
    fflush(stderr);
    int so = redirect(1, opath), se = redirect(2, epath);
    int status = rt_run(manifest, train, eval, predict, argc, argv);
    fflush(stdout);
    fflush(stderr);
    restore(1, so);
    restore(2, se);
    char *o = read_text(opath), *e = read_text(epath);
    if (out)
        *out = o;
    else
        free(o);
    if (err)
        *err = e;
    else
        free(e);
    tmp_remove(dir);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    free(argv);
    return status;
}

RtManifest ts_model(const char *x, const char *label, const char *logits) {
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

void ts_expect_check_error(const RtDataset *d, const char *x, const char *label, const char *logits, const char *msg) {
    RtManifest m = ts_model(x, label, logits);
    RtErr e;
    assert_int_equal(rt_dataset_check(d, &m, "data", &e), RT_ERR);
    assert_contains(e.msg, msg);
    rt_manifest_free(&m);
}

json_t *ts_json(const char *text) {
    json_error_t je;
    json_t *r = json_loads(text, 0, &je);
    if (!r)
        fail_msg("bad test JSON '%s': %s", text, je.text);
    return r;
}

int ts_differ(const int64_t *a, const int64_t *b, int64_t n) {
    int d = 0;
    for (int64_t i = 0; i < n; i++)
        d += a[i] != b[i];
    return d;
}

void assert_contains(const char *s, const char *part) {
    if (!s || !strstr(s, part))
        fail_msg("'%s' does not contain '%s'", s ? s : "(null)", part);
}
