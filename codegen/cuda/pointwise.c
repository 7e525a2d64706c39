/* pointwise.c: see cu_int.h (a stub until its code lands). */
#include "cu_int.h"

static bool none(CuKernel *ck) {
    diag_error(ck->d, ck->k->root->loc, "CUDA: no code for '%s' yet", ir_op_name(ck->k->root->op));
    return false;
}
bool cu_emit_pointwise(CuKernel *ck) { return none(ck); }
bool cu_emit_reduce(CuKernel *ck) { return none(ck); }
bool cu_emit_other(CuKernel *ck) { return none(ck); }
void cu_emit_members_at(CuKernel *ck, const char *index, const char *value) { (void)ck, (void)index, (void)value; }
