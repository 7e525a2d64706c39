/* fuzz_idx.c: IDX files, plain and gzip (idx(images, labels)): rt_idx_read as images (2 to 5 dimensions)
   and as labels (1), and the whole source with the input as the images beside a valid labels file and as
   the labels beside a valid images file. */
#include "fuzz_data.h"

static void fixed_files(void) {
    static int done;
    if (done)
        return;
    /* 3 images of 2 x 2 bytes and 3 labels */
    static const uint8_t images[] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    static const uint8_t labels[] = {0, 0, 8, 1, 0, 0, 0, 3, 0, 1, 2};
    fuzz_write("images.idx", images, sizeof images);
    fuzz_write("labels.idx", labels, sizeof labels);
    done = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fixed_files();
    const char *path = fuzz_write("input.idx", data, size);
    RtIdx x;
    RtErr e = {{0}};
    if (rt_idx_read(path, 2, 5, &x, &e) == RT_OK)
        rt_idx_free(&x);
    if (rt_idx_read(path, 1, 1, &x, &e) == RT_OK)
        rt_idx_free(&x);
    RtDataSpec spec = {.present = true, .kind = RT_DATA_IDX, .scale = 1.0 / 255};
    spec.images = "input.idx", spec.labels = "labels.idx";
    fuzz_load(&spec);
    spec.images = "images.idx", spec.labels = "input.idx";
    fuzz_load(&spec);
    return 0;
}
