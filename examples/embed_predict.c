/* embed_predict.c: a C (or C++) program that predicts with a model compiled into a library, without the
   Lathe runtime's driver. It opens a checkpoint that the produced binary's `train` wrote, reads the first few
   images of FashionMNIST's test set and prints the class of each.

       lathe compile models/fashion_mlp.lathe --emit lib -o fashion_mlp
       ./fashion_mlp_exe train --data /usr/share/datasets/fashion-mnist --checkpoint-dir ckpt   (or any run)
       cc  examples/embed_predict.c -I. -L. -lfashion_mlp -lopenblas -lz -lm -lpthread -o embed_predict
       ./embed_predict ckpt/last.safetensors /usr/share/datasets/fashion-mnist 5

   The exact link line is in fashion_mlp.h's first comment. The program compiles as C and as C++. */
#include "fashion_mlp.h"

#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

/* The first count images of an IDX file of 28x28 bytes (gzip or plain), as the model's input: one channel,
   values scaled to [0, 1] as the recipe's idx(..., scale = 1 / 255) reads them. NULL on error (printed). */
static float *read_images(const char *path, int count) {
    gzFile f = gzopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return NULL;
    }
    unsigned char header[16];
    float *x = NULL;
    unsigned char *bytes = (unsigned char *)malloc((size_t)count * 784);
    if (gzread(f, header, 16) != 16 || header[2] != 0x08 || header[3] != 3) {
        fprintf(stderr, "%s: not an IDX file of images\n", path);
    } else if (!bytes || gzread(f, bytes, (unsigned)count * 784) != count * 784) {
        fprintf(stderr, "%s: fewer than %d images\n", path, count);
    } else if ((x = (float *)malloc((size_t)count * FASHION_MLP_INPUT_SIZE * sizeof *x))) {
        for (int i = 0; i < count * FASHION_MLP_INPUT_SIZE; i++)
            x[i] = (float)bytes[i] / 255.0f;
    }
    free(bytes);
    gzclose(f);
    return x;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s CHECKPOINT DATA_DIR [COUNT]\n", argv[0]);
        return 2;
    }
    int count = argc > 3 ? atoi(argv[3]) : 5;
    if (count < 1 || count > 10000) {
        fprintf(stderr, "COUNT must be 1 to 10000\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", argv[2]);
    float *images = read_images(path, count);
    if (!images)
        return 1;

    fashion_mlp *m = fashion_mlp_open(argv[1]);
    if (!m) {
        fprintf(stderr, "%s\n", fashion_mlp_last_error());
        free(images);
        return 1;
    }
    float *logits = (float *)malloc((size_t)count * FASHION_MLP_OUTPUT_SIZE * sizeof *logits);
    int rc = logits ? fashion_mlp_predict(m, images, count, logits) : FASHION_MLP_E_MEMORY;
    if (rc != FASHION_MLP_OK) {
        fprintf(stderr, "predict: %s\n", logits ? fashion_mlp_last_error() : "out of memory");
    } else {
        static const char *const names[] = FASHION_MLP_CLASS_NAMES;
        for (int i = 0; i < count; i++) {
            const float *row = logits + (size_t)i * FASHION_MLP_OUTPUT_SIZE;
            int best = 0;
            for (int k = 1; k < FASHION_MLP_OUTPUT_SIZE; k++)
                if (row[k] > row[best])
                    best = k;
            printf("%d: Predicted: \"%s\"\n", i, names[best]);
        }
    }
    free(logits);
    free(images);
    fashion_mlp_close(m);
    return rc == FASHION_MLP_OK ? 0 : 1;
}
