/* lib.c: see cu_int.h (a stub until its code lands). */
#include "cu_int.h"

bool cu_emit_callout(CuKernel *ck) {
    diag_error(ck->d, ck->k->root->loc, "CUDA: no code for '%s' yet", ir_op_name(ck->k->root->op));
    return false;
}

void cu_library_source(CuBuf *b) { (void)b; }
