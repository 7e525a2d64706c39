/* fuzz_npy.c: NumPy .npy arrays, plain or gzip (npy(x, y)): rt_npy_read, and the whole source with the input
   as x alone, as x beside a valid y, and as y beside a valid x. */
#include "fuzz_data.h"

/* A .npy header: magic, version 1.0, the header's length (little-endian), the dict padded to 64 bytes. */
static void write_npy(const char *name, const char *dict, const void *values, size_t nbytes) {
    uint8_t buf[256];
    size_t hl = 64 - 10;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)hl, buf[9] = 0;
    memset(buf + 10, ' ', hl);
    memcpy(buf + 10, dict, strlen(dict));
    buf[10 + hl - 1] = '\n';
    memcpy(buf + 64, values, nbytes);
    fuzz_write(name, buf, 64 + nbytes);
}

static void fixed_files(void) {
    static int done;
    if (done)
        return;
    static const float x[6] = {0.5f, 1, 2, 3, 4, 5};
    static const int64_t y[3] = {0, 1, 2};
    write_npy("x.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", x, sizeof x);
    write_npy("y.npy", "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", y, sizeof y);
    done = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fixed_files();
    const char *path = fuzz_write("input.npy", data, size);
    RtNpy a;
    RtErr e = {{0}};
    if (rt_npy_read(path, &a, &e) == RT_OK)
        free(a.data);
    RtDataSpec spec = {.present = true, .kind = RT_DATA_NPY, .scale = 1};
    spec.images = "input.npy";
    fuzz_load(&spec);
    spec.labels = "y.npy";
    fuzz_load(&spec);
    spec.images = "x.npy", spec.labels = "input.npy";
    fuzz_load(&spec);
    return 0;
}
