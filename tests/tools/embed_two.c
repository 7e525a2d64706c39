/* embed_two.c: two model libraries in one program (tests/e2e/embed_lib.sh). fashion_mlp (fused SGD) and tiny
   (Adam, the runtime's optimizer) each train one epoch over the first COUNT FashionMNIST training samples in
   order, as their binaries' `train --limit COUNT --epochs 1` would, and save a checkpoint; a few calls that
   must fail check the error codes and messages. Compiled by the test with cc, linked with both libraries. */
#include "fashion_mlp.h"
#include "tiny.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static int failures;

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "FAIL: %s\n", what);
        failures++;
    }
}

/* count records of per bytes after an IDX header of hsize bytes */
static unsigned char *read_idx(const char *dir, const char *file, int hsize, int count, int per) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    gzFile f = gzopen(path, "rb");
    unsigned char header[16];
    unsigned char *data = (unsigned char *)malloc((size_t)count * (size_t)per);
    if (!f || !data || gzread(f, header, (unsigned)hsize) != hsize ||
        gzread(f, data, (unsigned)(count * per)) != count * per) {
        fprintf(stderr, "%s: cannot read %d records\n", path, count);
        exit(1);
    }
    gzclose(f);
    return data;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s DATA_DIR COUNT OUT_MLP OUT_TINY\n", argv[0]);
        return 2;
    }
    int count = atoi(argv[2]), batch = 64;
    unsigned char *pixels = read_idx(argv[1], "train-images-idx3-ubyte.gz", 16, count, 784);
    unsigned char *classes = read_idx(argv[1], "train-labels-idx1-ubyte.gz", 8, count, 1);
    float *x = (float *)malloc((size_t)count * 784 * sizeof *x);
    int64_t *y = (int64_t *)malloc((size_t)count * sizeof *y);
    for (int i = 0; i < count * 784; i++)
        x[i] = (float)pixels[i] / (float)255; /* the recipe's idx(..., scale = 1 / 255) */
    for (int i = 0; i < count; i++)
        y[i] = classes[i];

    fashion_mlp *a = fashion_mlp_open(NULL);
    tiny *b = tiny_open(NULL);
    check(a && b, "open without a checkpoint");
    if (!a || !b)
        return 1;
    check(fashion_mlp_set_lr(a, 0.05) == FASHION_MLP_OK, "set_lr");
    float first_a = 0, last_a = 0, first_b = 0, last_b = 0;
    for (int s = 0; s < count; s += batch) {
        int n = count - s < batch ? count - s : batch;
        float la = NAN, lb = NAN;
        check(fashion_mlp_train_step(a, x + (size_t)s * 784, y + s, n, &la) == FASHION_MLP_OK,
              "fashion_mlp train_step");
        check(tiny_train_step(b, x + (size_t)s * 784, y + s, n, &lb) == TINY_OK, "tiny train_step");
        if (s == 0) {
            first_a = la;
            first_b = lb;
        }
        last_a = la;
        last_b = lb;
    }
    printf("fashion_mlp loss %g -> %g, tiny loss %g -> %g\n", first_a, last_a, first_b, last_b);
    check(isfinite(last_a) && last_a < first_a, "fashion_mlp's loss falls");
    check(isfinite(last_b) && last_b < first_b, "tiny's loss falls");
    check(fashion_mlp_save(a, argv[3]) == FASHION_MLP_OK, "fashion_mlp save");
    check(tiny_save(b, argv[4]) == TINY_OK, "tiny save");

    /* what must fail, with a code and a message */
    float out[10];
    check(fashion_mlp_predict((fashion_mlp *)(void *)b, x, 1, out) == FASHION_MLP_E_ARGUMENT &&
              strstr(fashion_mlp_last_error(), "another model"), "a handle of another model is refused");
    check(fashion_mlp_predict(a, x, 0, out) == FASHION_MLP_E_ARGUMENT && strstr(fashion_mlp_last_error(), "batch"),
          "batch 0 is refused");
    check(fashion_mlp_open("/nonexistent/ckpt.safetensors") == NULL &&
              strstr(fashion_mlp_last_error(), "/nonexistent/ckpt.safetensors"), "a missing checkpoint names its path");
    check(tiny_open(argv[3]) == NULL && strstr(tiny_last_error(), argv[3]), "another model's checkpoint is refused");
    check(fashion_mlp_save(a, "/nonexistent/out.safetensors") == FASHION_MLP_E_IO, "an unwritable path");
    check(fashion_mlp_set_lr(a, -1) == FASHION_MLP_E_ARGUMENT, "a negative learning rate");

    fashion_mlp_close(a);
    tiny_close(b);
    free(x);
    free(y);
    free(pixels);
    free(classes);
    if (failures)
        return 1;
    printf("ok\n");
    return 0;
}
