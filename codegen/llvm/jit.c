/* jit.c: generated code run in this process. cg_llvm_jit compiles one graph with MCJIT, for the tests that
   run generated code against the interpreter; cg_llvm_jit_program links a whole program's object code
   through ORC's LLJIT, for `lathe run`. Both resolve what the code calls outside itself (OpenBLAS, libm, the
   runtime's kernels and hooks of lathe_kern.h) from one table of addresses, runtime_symbols, so that they
   resolve whether or not the executable's linker kept or exported them; ORC falls back on the process's
   exported symbols (the lathe executable is linked with -rdynamic) for anything the table lacks. */
#include "cg_llvm.h"

#include "../../runtime/lathe_kern.h"

#include <llvm-c/ExecutionEngine.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Support.h>

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- what generated code links against */

typedef void (*SymbolFn)(const char *name, void *addr, void *ctx);

/* Calls fn on every symbol that generated code may reference outside itself. A new runtime function or
   global that codegen emits a reference to belongs here. */
static void runtime_symbols(SymbolFn fn, void *ctx) {
    static const struct {
        const char *name;
        void *addr;
    } fixed[] = {
        {"cblas_sgemm", (void *)cblas_sgemm},
        {"cblas_dgemm", (void *)cblas_dgemm},
        {"lathe_run_kernel", (void *)lathe_run_kernel},
        {"lathe_parallel_for", (void *)lathe_parallel_for},
        {"lathe_check_finite", (void *)lathe_check_finite},
        {"lathe_anomaly_on", (void *)&lathe_anomaly_on},
        {"lathe_output_ready_hook", (void *)&lathe_output_ready_hook},
        {"lathe_profile_kernel", (void *)lathe_profile_kernel},
        {"lathe_profile_on", (void *)&lathe_profile_on},
        {"lathe_profile_on", (void *)&lathe_profile_on},
        {"lathe_profile_kernel", (void *)lathe_profile_kernel},
        {"expf", (void *)expf},
        {"exp", (void *)exp},
        {"logf", (void *)logf},
        {"log", (void *)log},
        {"tanhf", (void *)tanhf},
        {"tanh", (void *)tanh},
        {"powf", (void *)powf},
        {"pow", (void *)pow},
        {"fmodf", (void *)fmodf},
        {"fmod", (void *)fmod},
        {"sqrtf", (void *)sqrtf},
        {"sqrt", (void *)sqrt},
        {"memcpy", (void *)memcpy},
        {"memmove", (void *)memmove},
        {"memset", (void *)memset},
        {"erff", (void *)erff},
        {"erf", (void *)erf},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        fn(fixed[i].name, fixed[i].addr, ctx);
    for (const LatheKernSymbol *s = lathe_kern_symbols; s->name; s++)
        fn(s->name, (void *)(uintptr_t)s->fn, ctx);
    for (const LatheKernRangeSymbol *s = lathe_kern_range_symbols; s->name; s++)
        fn(s->name, (void *)(uintptr_t)s->fn, ctx);
}

static void out_of_memory(void) {
    fprintf(stderr, "lathe: out of memory\n");
    exit(1);
}

/* ---------------------------------------------------------------- one graph, MCJIT */

struct CgJit {
    LLVMContextRef ctx;
    LLVMExecutionEngineRef ee;
    void (*entry)(void **args, int64_t n, uint8_t *arena);
};

static void add_mcjit_symbol(const char *name, void *addr, void *ctx) {
    LLVMAddSymbol(name, addr);
}

static void register_symbols(void) {
    static bool done;
    if (done)
        return;
    runtime_symbols(add_mcjit_symbol, NULL);
    /* and, after those, whatever the process exports (as ORC's generator below) */
    LLVMLoadLibraryPermanently(NULL);
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
    if (!j)
        out_of_memory();
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

/* ---------------------------------------------------------------- a whole program, ORC
   The object code is the very bytes `lathe compile` would link (cg_llvm_program_object, the same target
   machine and passes), so a run gives the same numbers as the produced executable. ORC's LLJIT links it in
   memory (RuntimeDyld) against runtime_symbols and, for anything else, the process's own symbols. */

struct CgJitProgram {
    LLVMOrcLLJITRef jit;
    char *session_error; /* the first error the session reported on its own, until the lookup that failed */
};

/* ORC reports errors that belong to no caller (a symbol that does not resolve while linking) here; the lookup
   that triggered the link then fails, and its message is the one shown. */
static void on_session_error(void *ctx, LLVMErrorRef e) {
    CgJitProgram *j = ctx;
    char *msg = LLVMGetErrorMessage(e);
    if (!j->session_error)
        j->session_error = strdup(msg);
    LLVMDisposeErrorMessage(msg);
}

/* e's message as a diagnostic (what; e's text) and e consumed; false, for returning. */
static bool jit_error(Diag *d, const char *what, LLVMErrorRef e) {
    char *msg = LLVMGetErrorMessage(e);
    diag_error(d, (Loc){0}, "%s: %s", what, msg);
    LLVMDisposeErrorMessage(msg);
    return false;
}

typedef struct SymbolList {
    LLVMOrcLLJITRef jit;
    LLVMJITCSymbolMapPair *pairs;
    size_t n, cap;
} SymbolList;

static void add_orc_symbol(const char *name, void *addr, void *ctx) {
    SymbolList *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        LLVMJITCSymbolMapPair *p = realloc(l->pairs, cap * sizeof *p);
        if (!p)
            out_of_memory();
        l->pairs = p;
        l->cap = cap;
    }
    LLVMJITSymbolFlags flags = {LLVMJITSymbolGenericFlagsExported, 0};
    l->pairs[l->n++] = (LLVMJITCSymbolMapPair){
        .Name = LLVMOrcLLJITMangleAndIntern(l->jit, name),
        .Sym = {.Address = (LLVMOrcExecutorAddress)(uintptr_t)addr, .Flags = flags}};
}

/* The main JITDylib sees runtime_symbols first, then whatever the process exports. */
static bool define_runtime(LLVMOrcLLJITRef jit, Diag *d) {
    LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(jit);
    SymbolList l = {.jit = jit};
    runtime_symbols(add_orc_symbol, &l);
    /* the unit owns the names from here on; the array is still ours */
    LLVMOrcMaterializationUnitRef mu = LLVMOrcAbsoluteSymbols(l.pairs, l.n);
    free(l.pairs);
    LLVMErrorRef e = LLVMOrcJITDylibDefine(jd, mu);
    if (e) {
        LLVMOrcDisposeMaterializationUnit(mu);
        return jit_error(d, "cannot define the runtime's symbols for the JIT", e);
    }
    LLVMOrcDefinitionGeneratorRef gen;
    e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(jit), NULL, NULL);
    if (e)
        return jit_error(d, "cannot search this process's symbols for the JIT", e);
    LLVMOrcJITDylibAddGenerator(jd, gen);
    return true;
}

/* The address of name in j (linking the object on the first lookup); 0 after reporting. */
static uintptr_t lookup(CgJitProgram *j, const char *name, Diag *d) {
    LLVMOrcExecutorAddress addr = 0;
    LLVMErrorRef e = LLVMOrcLLJITLookup(j->jit, &addr, name);
    if (e) {
        char *msg = LLVMGetErrorMessage(e);
        diag_error(d, (Loc){0}, "cannot link the generated code in memory: %s", j->session_error ? j->session_error : msg);
        LLVMDisposeErrorMessage(msg);
        return 0;
    }
    if (!addr)
        diag_error(d, (Loc){0}, "internal error: the JIT has no %s", name);
    return (uintptr_t)addr;
}

CgJitProgram *cg_llvm_jit_program(const Program *p, const CgOptions *o, CgProgramCode *code, Diag *d) {
    memset(code, 0, sizeof *code);
    LLVMMemoryBufferRef obj = cg_llvm_program_object(p, o, d);
    if (!obj)
        return NULL;
    CgJitProgram *j = calloc(1, sizeof *j);
    if (!j)
        out_of_memory();
    LLVMErrorRef e = LLVMOrcCreateLLJIT(&j->jit, LLVMOrcCreateLLJITBuilder());
    if (e) {
        jit_error(d, "cannot create the JIT", e);
        LLVMDisposeMemoryBuffer(obj);
        free(j);
        return NULL;
    }
    LLVMOrcExecutionSessionSetErrorReporter(LLVMOrcLLJITGetExecutionSession(j->jit), on_session_error, j);
    if (!define_runtime(j->jit, d)) {
        LLVMDisposeMemoryBuffer(obj);
        cg_jit_program_free(j);
        return NULL;
    }
    /* the JIT takes the buffer */
    e = LLVMOrcLLJITAddObjectFile(j->jit, LLVMOrcLLJITGetMainJITDylib(j->jit), obj);
    if (e) {
        jit_error(d, "cannot load the generated code into the JIT", e);
        cg_jit_program_free(j);
        return NULL;
    }
    uintptr_t manifest = lookup(j, "lathe_manifest", d);
    uintptr_t fns[4] = {0};
    static const char *names[4] = {"lathe_train", "lathe_grads", "lathe_eval", "lathe_predict"};
    for (int i = 0; i < 4 && manifest; i++)
        if (!(fns[i] = lookup(j, names[i], d)))
            manifest = 0;
    if (!manifest) {
        cg_jit_program_free(j);
        return NULL;
    }
    code->manifest = (const char *)manifest;
    code->train = (CgEntryFn)fns[0];
    code->grads = (CgEntryFn)fns[1];
    code->eval = (CgEntryFn)fns[2];
    code->predict = (CgEntryFn)fns[3];
    return j;
}

void cg_jit_program_free(CgJitProgram *j) {
    if (!j)
        return;
    if (j->jit) {
        LLVMErrorRef e = LLVMOrcDisposeLLJIT(j->jit);
        if (e)
            LLVMConsumeError(e);
    }
    free(j->session_error);
    free(j);
}
