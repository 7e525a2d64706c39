/* cse.c: (placeholder; the CPU-speed issue fills it in) */
#include "passes.h"

bool pass_cse(Graph *g, Diag *d) {
    (void)g;
    (void)d;
    return true;
}
