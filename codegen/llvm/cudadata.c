/* cudadata.c: the data object of a --target cuda executable. It holds what the runtime's GPU side reads
   (runtime/cuda.h): the launch plan's JSON, the PTX, the cubins' archs and a table of the cubins, as
   constant globals of an object file built for the host through the LLVM C API like the model's object. */
#include "cg_llvm.h"
#include "../cuda/nvrtc.h"

#include <string.h>

/* A constant global named name (private when name is NULL) holding len bytes, NUL-terminated when nul. */
static LLVMValueRef constant_bytes(CgCtx *c, const char *name, const void *bytes, size_t len, bool nul) {
    LLVMValueRef init = LLVMConstStringInContext(c->ctx, bytes, (unsigned)len, !nul);
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(init), name ? name : "");
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, true);
    LLVMSetLinkage(gv, name ? LLVMExternalLinkage : LLVMPrivateLinkage);
    LLVMSetAlignment(gv, 16);
    return gv;
}

/* lathe_cuda_cubins: {arch, bytes, size} per cubin, then {NULL, NULL, 0} (runtime/cuda.h's RtCudaCubin) */
static void cubin_table(CgCtx *c, const CgCudaBinary *bin) {
    LLVMTypeRef fields[] = {c->t_ptr, c->t_ptr, c->t_i64};
    LLVMTypeRef entry = LLVMStructTypeInContext(c->ctx, fields, 3, false);
    LLVMValueRef rows[CG_NVRTC_MAX_ARCHS + 1];
    for (int i = 0; i < bin->ncubins; i++) {
        const CgCudaImage *img = &bin->cubins[i];
        LLVMValueRef v[] = {
            LLVMConstPointerCast(constant_bytes(c, NULL, img->arch, strlen(img->arch), true), c->t_ptr),
            LLVMConstPointerCast(constant_bytes(c, NULL, img->bytes, img->size, false), c->t_ptr),
            LLVMConstInt(c->t_i64, img->size, false)};
        rows[i] = LLVMConstStructInContext(c->ctx, v, 3, false);
    }
    rows[bin->ncubins] = LLVMConstNull(entry);
    LLVMValueRef init = LLVMConstArray(entry, rows, (unsigned)bin->ncubins + 1);
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(init), "lathe_cuda_cubins");
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, true);
    LLVMSetLinkage(gv, LLVMExternalLinkage);
}

bool cg_llvm_emit_cuda_data(const CgOptions *o, const char *plan_json, const CgCudaBinary *bin, const char *archs,
                            const char *path, Diag *d) {
    CgCtx c;
    if (!cg_llvm_ctx_init(&c, o, "lathe_cuda", d))
        return false;
    constant_bytes(&c, "lathe_cuda_plan", plan_json, strlen(plan_json), true);
    constant_bytes(&c, "lathe_cuda_ptx", bin->ptx, bin->ptx_size, true);
    constant_bytes(&c, "lathe_cuda_archs", archs, strlen(archs), true);
    cubin_table(&c, bin);
    char *err = NULL;
    bool ok = !LLVMTargetMachineEmitToFile(c.tm, c.mod, (char *)path, LLVMObjectFile, &err);
    if (!ok)
        diag_error(d, (Loc){0}, "cannot write object file %s: %s", path, err ? err : "unknown error");
    if (err)
        LLVMDisposeMessage(err);
    cg_llvm_ctx_dispose(&c);
    return ok;
}
