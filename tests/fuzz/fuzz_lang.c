/* fuzz_lang.c: the model language end to end, as `lathe compile` reads a model file: fe_compile (lexer,
   parser, name resolution, shape inference, lowering), ir_verify on each graph it makes, then every pass of
   the pipeline (which verifies after each). Any input must end in a Program or in a reported error, never in
   a crash, a hang, a leak or invalid IR. */
#include "frontend/frontend.h"
#include "passes/passes.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The IR verifier's messages start with "verify:": a program that the front end accepted and then fails
   verification (after lowering or after a pass) is a compiler bug, not a bad model file. */
static void check_no_verify_error(Diag *d, const char *after) {
    if (strncmp(diag_first_message(d), "verify:", 7) == 0) {
        fprintf(stderr, "invalid IR after %s: %s\n", after, diag_first_message(d));
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    Arena *a = arena_new();
    Diag *d = diag_new(NULL);
    Program *p = fe_compile(a, d, "fuzz.lathe", text);
    if (p) {
        Graph *gs[4];
        int n = program_graphs(p, gs);
        for (int i = 0; i < n; i++)
            if (!ir_verify(gs[i], d))
                check_no_verify_error(d, "lowering");
        if (!pass_pipeline(p, NULL, NULL, d))
            check_no_verify_error(d, "a pass");
    }
    if (!p && diag_error_count(d) == 0) {
        fprintf(stderr, "fe_compile failed without reporting an error\n");
        abort();
    }
    diag_free(d);
    arena_free(a);
    free(text);
    return 0;
}
