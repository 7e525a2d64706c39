/* failalloc_plant.c: a target with a leak planted where its second allocation fails, so that a test shows
   that failalloc.c finds a leak on an error path (ctest fuzz_failalloc_finds_a_planted_leak). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size + 1), *scratch = malloc(64);
    if (!copy || !scratch) {
        free(scratch);
        return 0; /* the plant: copy is not freed when scratch fails */
    }
    memcpy(copy, data, size);
    free(scratch);
    free(copy);
    return 0;
}
