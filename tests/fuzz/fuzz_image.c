/* fuzz_image.c: image folders (images(folder, ...)): the input as a PNG and as a PGM file of a class folder,
   beside a second class holding a valid 2 x 2 PGM, read in grayscale and in RGB. */
#include "fuzz_data.h"

#include <sys/stat.h>

static void fixed_files(void) {
    static int done;
    if (done)
        return;
    static const char *dirs[] = {"png", "png/a", "png/b", "pgm", "pgm/a", "pgm/b"};
    for (int i = 0; i < 6; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", fuzz_folder(), dirs[i]);
        if (mkdir(path, 0700) != 0)
            abort();
    }
    static const uint8_t pgm[] = "P5\n2 2\n255\n\x01\x02\x03\x04";
    fuzz_write("png/b/z.pgm", pgm, sizeof pgm - 1);
    fuzz_write("pgm/b/z.pgm", pgm, sizeof pgm - 1);
    done = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fixed_files();
    fuzz_write("png/a/x.png", data, size);
    fuzz_write("pgm/a/x.pgm", data, size);
    RtDataSpec spec = {.present = true, .kind = RT_DATA_IMAGES, .scale = 1.0 / 255, .grayscale = true};
    spec.images = "png";
    fuzz_load(&spec);
    spec.images = "pgm";
    fuzz_load(&spec);
    spec.grayscale = false;
    fuzz_load(&spec);
    spec.images = "png";
    fuzz_load(&spec);
    return 0;
}
