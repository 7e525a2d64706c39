/* fuzz_text.c: text files, plain or gzip (text(file, ...)): bytes as tokens, UTF-8 characters as tokens, and
   one sample per line. */
#include "fuzz_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write("input.txt", data, size);
    RtDataSpec spec = {.present = true, .kind = RT_DATA_TEXT, .images = "input.txt", .context = 4, .stride = 1};
    fuzz_load(&spec);
    spec.chars = true, spec.context = 3, spec.stride = 2;
    fuzz_load(&spec);
    spec.lines = true, spec.context = 8, spec.pad = 0;
    fuzz_load(&spec);
    return 0;
}
