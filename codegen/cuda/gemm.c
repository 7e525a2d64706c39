/* gemm.c: see cu_int.h (a stub until its code lands). */
#include "cu_int.h"

bool cu_emit_gemm(CuKernel *ck) {
    diag_error(ck->d, ck->k->root->loc, "CUDA: no code for '%s' yet", ir_op_name(ck->k->root->op));
    return false;
}
