/* libwrap.c: the per-model functions of a model library (--emit lib|shared). Each API function of the
   generated header (fashion_mlp_open, fashion_mlp_predict, ...) is emitted here as one tail call of the
   runtime's generic lathe_lib_* (runtime/lathe_lib.h) with a constant LatheLibModel that names this model's
   manifest and graph entries. Emitting them as LLVM functions keeps the library free of C compiled at
   `lathe compile` time: only the linker runs. */
#include "cg_llvm.h"

#include <stdio.h>

/* One API function: PREFIX_suffix(params) returning ret, forwarding to target(model?, params). */
typedef enum { T_VOID, T_I32, T_I64, T_F64, T_PTR } WrapType;
typedef struct Wrapper {
    const char *suffix, *target;
    bool pass_model;
    WrapType ret;
    int nparams;
    WrapType params[5];
} Wrapper;

static const Wrapper wrappers[] = {
    {"open", "lathe_lib_open", true, T_PTR, 1, {T_PTR}},
    {"close", "lathe_lib_close", true, T_VOID, 1, {T_PTR}},
    {"last_error", "lathe_lib_last_error", false, T_PTR, 0, {0}},
    {"predict", "lathe_lib_predict", true, T_I32, 4, {T_PTR, T_PTR, T_I64, T_PTR}},
    {"train_step", "lathe_lib_train_step", true, T_I32, 5, {T_PTR, T_PTR, T_PTR, T_I64, T_PTR}},
    {"set_lr", "lathe_lib_set_lr", true, T_I32, 2, {T_PTR, T_F64}},
    {"save", "lathe_lib_save", true, T_I32, 2, {T_PTR, T_PTR}},
};

static LLVMTypeRef type_of(CgCtx *c, WrapType t) {
    switch (t) {
    case T_VOID: return c->t_void;
    case T_I32: return c->t_i32;
    case T_I64: return c->t_i64;
    case T_F64: return c->t_f64;
    case T_PTR: break;
    }
    return c->t_ptr;
}

static void emit_wrapper(CgCtx *c, const char *prefix, const Wrapper *w, LLVMValueRef model) {
    LLVMTypeRef ps[6];
    int np = 0;
    if (w->pass_model)
        ps[np++] = c->t_ptr;
    for (int i = 0; i < w->nparams; i++)
        ps[np++] = type_of(c, w->params[i]);
    LLVMTypeRef ret = type_of(c, w->ret);
    LLVMTypeRef target_type = LLVMFunctionType(ret, ps, (unsigned)np, false);
    LLVMValueRef target = LLVMGetNamedFunction(c->mod, w->target);
    if (!target)
        target = LLVMAddFunction(c->mod, w->target, target_type);
    char name[256];
    snprintf(name, sizeof name, "%s_%s", prefix, w->suffix);
    LLVMTypeRef fn_type = LLVMFunctionType(ret, ps + w->pass_model, (unsigned)w->nparams, false);
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, fn_type);
    LLVMSetLinkage(fn, LLVMExternalLinkage);
    cg_llvm_function_attrs(c, fn);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
    LLVMValueRef args[6];
    int na = 0;
    if (w->pass_model)
        args[na++] = model;
    for (int i = 0; i < w->nparams; i++)
        args[na++] = LLVMGetParam(fn, (unsigned)i);
    LLVMValueRef call = LLVMBuildCall2(c->b, target_type, target, args, (unsigned)na, "");
    LLVMSetTailCall(call, true);
    if (w->ret == T_VOID)
        LLVMBuildRetVoid(c->b);
    else
        LLVMBuildRet(c->b, call);
}

void cg_llvm_emit_lib_api(CgCtx *c, const char *prefix, LLVMValueRef manifest, const LLVMValueRef entries[4]) {
    /* LatheLibModel: {const char *manifest; LatheGraphFn train, grads, eval, predict;} */
    LLVMTypeRef fields[5] = {c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr, c->t_ptr};
    LLVMTypeRef st = LLVMStructTypeInContext(c->ctx, fields, 5, false);
    LLVMValueRef vals[5] = {LLVMConstBitCast(manifest, c->t_ptr)};
    for (int i = 0; i < 4; i++)
        vals[i + 1] = LLVMConstBitCast(entries[i], c->t_ptr);
    char name[256];
    snprintf(name, sizeof name, "%s_lathe_model", prefix);
    LLVMValueRef model = LLVMAddGlobal(c->mod, st, name);
    LLVMSetInitializer(model, LLVMConstStructInContext(c->ctx, vals, 5, false));
    LLVMSetGlobalConstant(model, true);
    LLVMSetLinkage(model, LLVMInternalLinkage);
    LLVMValueRef model_ptr = LLVMConstBitCast(model, c->t_ptr);
    for (size_t i = 0; i < sizeof wrappers / sizeof wrappers[0]; i++)
        emit_wrapper(c, prefix, &wrappers[i], model_ptr);
}
