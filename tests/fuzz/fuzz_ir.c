/* fuzz_ir.c: the text IR parser (`lathe opt`'s reader): ir_parse, then ir_verify on each graph and the
   printer on each graph that verifies. */
#include "ir/ir.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static FILE *sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!sink && !(sink = fopen("/dev/null", "w")))
        abort();
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    Arena *a = arena_new();
    Diag *d = diag_new(NULL);
    Graph **graphs = NULL;
    int n = ir_parse(a, d, "fuzz.ir", text, &graphs);
    if (n == 0 && diag_error_count(d) == 0) {
        fprintf(stderr, "ir_parse returned no graph without reporting an error\n");
        abort();
    }
    for (int i = 0; i < n; i++)
        if (ir_verify(graphs[i], d))
            ir_print(sink, graphs[i]);
    diag_free(d);
    arena_free(a);
    free(text);
    return 0;
}
