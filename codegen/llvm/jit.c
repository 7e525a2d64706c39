/* jit.c: one graph compiled in memory with MCJIT, for the tests that run generated code against the
   interpreter. The functions the kernels call (OpenBLAS, libm, the runtime's kernels of lathe_kern.h) and
   the entries' anomaly check (lathe_check_finite and its switch lathe_anomaly_on) are registered by address,
   so they resolve whether or not the test executable's linker kept them. */
#include "cg_llvm.h"

#include "../../runtime/lathe_kern.h"

#include <llvm-c/ExecutionEngine.h>
#include <llvm-c/Support.h>

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct CgJit {
    LLVMContextRef ctx;
    LLVMExecutionEngineRef ee;
    void (*entry)(void **args, int64_t n, uint8_t *arena);
};

static void register_symbols(void) {
    static bool done;
    if (done)
        return;
    LLVMAddSymbol("cblas_sgemm", (void *)cblas_sgemm);
    LLVMAddSymbol("cblas_dgemm", (void *)cblas_dgemm);
    LLVMAddSymbol("lathe_run_kernel", (void *)lathe_run_kernel);
    LLVMAddSymbol("lathe_parallel_for", (void *)lathe_parallel_for);
    LLVMAddSymbol("lathe_check_finite", (void *)lathe_check_finite);
    LLVMAddSymbol("lathe_anomaly_on", (void *)&lathe_anomaly_on);
    LLVMAddSymbol("expf", (void *)expf);
    LLVMAddSymbol("exp", (void *)exp);
    LLVMAddSymbol("logf", (void *)logf);
    LLVMAddSymbol("log", (void *)log);
    LLVMAddSymbol("tanhf", (void *)tanhf);
    LLVMAddSymbol("tanh", (void *)tanh);
    LLVMAddSymbol("powf", (void *)powf);
    LLVMAddSymbol("pow", (void *)pow);
    LLVMAddSymbol("fmodf", (void *)fmodf);
    LLVMAddSymbol("fmod", (void *)fmod);
    LLVMAddSymbol("sqrtf", (void *)sqrtf);
    LLVMAddSymbol("sqrt", (void *)sqrt);
    LLVMAddSymbol("memcpy", (void *)memcpy);
    LLVMAddSymbol("memset", (void *)memset);
    LLVMAddSymbol("erff", (void *)erff);
    LLVMAddSymbol("erf", (void *)erf);
    for (const LatheKernSymbol *s = lathe_kern_symbols; s->name; s++)
        LLVMAddSymbol(s->name, (void *)(uintptr_t)s->fn);
    for (const LatheKernRangeSymbol *s = lathe_kern_range_symbols; s->name; s++)
        LLVMAddSymbol(s->name, (void *)(uintptr_t)s->fn);
    done = true;
}

CgJit *cg_llvm_jit(const Graph *g, const CgOptions *o, Diag *d) {
    CgCtx c;
    if (!cg_llvm_ctx_init(&c, o, g->name, d))
        return NULL;
    char name[128];
    snprintf(name, sizeof name, "lathe_%s", g->name);
    if (!cg_llvm_emit_entry(&c, g, name) || !cg_llvm_finish(&c)) {
        cg_llvm_ctx_dispose(&c);
        return NULL;
    }
    LLVMLinkInMCJIT();
    register_symbols();
    struct LLVMMCJITCompilerOptions opts;
    LLVMInitializeMCJITCompilerOptions(&opts, sizeof opts);
    opts.OptLevel = (unsigned)c.opt_level;
    LLVMExecutionEngineRef ee;
    char *err = NULL;
    /* the engine takes the module */
    if (LLVMCreateMCJITCompilerForModule(&ee, c.mod, &opts, sizeof opts, &err)) {
        diag_error(d, (Loc){0}, "cannot create the JIT: %s", err);
        LLVMDisposeMessage(err);
        cg_llvm_ctx_dispose(&c);
        return NULL;
    }
    c.mod = NULL;
    CgJit *j = calloc(1, sizeof *j);
    if (!j) {
        fprintf(stderr, "lathe: out of memory\n");
        exit(1);
    }
    j->ee = ee;
    j->entry = (void (*)(void **, int64_t, uint8_t *))(uintptr_t)LLVMGetFunctionAddress(ee, name);
    j->ctx = c.ctx;
    c.ctx = NULL;
    cg_llvm_ctx_dispose(&c);
    if (!j->entry) {
        diag_error(d, (Loc){0}, "internal error: the JIT did not produce %s", name);
        cg_jit_free(j);
        return NULL;
    }
    return j;
}

void (*cg_jit_entry(CgJit *j))(void **args, int64_t n, uint8_t *arena) {
    return j->entry;
}

void cg_jit_free(CgJit *j) {
    if (!j)
        return;
    LLVMDisposeExecutionEngine(j->ee);
    LLVMContextDispose(j->ctx);
    free(j);
}
