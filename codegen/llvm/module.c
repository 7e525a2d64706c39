/* module.c: the LLVM module of a compiled program. A graph entry computes the address of every node's buffer
   from its MemLoc, calls one kernel per compute node in node order, then does the copies the memory plan
   left to the end: plain outputs first, then parameter updates that could not be done in place. */
#include "cg_llvm.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/ErrorHandling.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include <stdlib.h>
#include <string.h>

/* What LLVM's fatal errors are reported through: the Diag and CPU of the module being built. */
static struct {
    Diag *d;
    char cpu[64];
} fatal;

/* LLVM aborts on a fatal error, such as a --cpu that lacks 64-bit mode; this makes it one message and an
   ordinary exit instead, whose atexit handlers remove what was half-written (the CLI's object file). */
static void on_fatal_error(const char *reason) {
    diag_error(fatal.d, (Loc){0}, "LLVM cannot generate code for CPU '%s': %s", fatal.cpu, reason);
    exit(1);
}

static void init_targets(void) {
    static bool done;
    if (done)
        return;
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    LLVMInitializeNativeAsmParser();
    LLVMInstallFatalErrorHandler(on_fatal_error);
    done = true;
}

bool cg_llvm_ctx_init(CgCtx *c, const CgOptions *o, const char *module_name, Diag *d) {
    memset(c, 0, sizeof *c);
    c->d = d;
    init_targets();
    char *triple = LLVMGetDefaultTargetTriple();
    LLVMTargetRef target;
    char *err = NULL;
    if (LLVMGetTargetFromTriple(triple, &target, &err)) {
        diag_error(d, (Loc){0}, "no LLVM target for %s: %s", triple, err);
        LLVMDisposeMessage(err);
        LLVMDisposeMessage(triple);
        cg_llvm_ctx_dispose(c);
        return false;
    }
    const char *cpu = o && o->cpu ? o->cpu : "native";
    if (strcmp(cpu, "native") == 0) {
        c->cpu = LLVMGetHostCPUName();
        c->features = LLVMGetHostCPUFeatures();
    } else {
        c->cpu = LLVMCreateMessage(cpu);
        c->features = LLVMCreateMessage("");
    }
    fatal.d = d;
    snprintf(fatal.cpu, sizeof fatal.cpu, "%s", c->cpu);
    c->opt_level = o ? o->opt_level : 3;
    if (c->opt_level < 0)
        c->opt_level = 0;
    if (c->opt_level > 3)
        c->opt_level = 3;
    LLVMCodeGenOptLevel cgl = c->opt_level == 0 ? LLVMCodeGenLevelNone
                            : c->opt_level == 1 ? LLVMCodeGenLevelLess
                            : c->opt_level == 2 ? LLVMCodeGenLevelDefault : LLVMCodeGenLevelAggressive;
    /* PIC: Debian's cc links position-independent executables */
    c->tm = LLVMCreateTargetMachine(target, triple, c->cpu, c->features, cgl, LLVMRelocPIC, LLVMCodeModelDefault);
    if (!c->tm) {
        diag_error(d, (Loc){0}, "cannot create an LLVM target machine for %s (cpu %s)", triple, c->cpu);
        LLVMDisposeMessage(triple);
        cg_llvm_ctx_dispose(c);
        return false;
    }
    c->ctx = LLVMContextCreate();
    c->mod = LLVMModuleCreateWithNameInContext(module_name, c->ctx);
    LLVMSetTarget(c->mod, triple);
    LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(c->tm);
    LLVMSetModuleDataLayout(c->mod, dl);
    LLVMDisposeTargetData(dl);
    LLVMDisposeMessage(triple);
    c->b = LLVMCreateBuilderInContext(c->ctx);
    c->t_void = LLVMVoidTypeInContext(c->ctx);
    c->t_i8 = LLVMInt8TypeInContext(c->ctx);
    c->t_i32 = LLVMInt32TypeInContext(c->ctx);
    c->t_i64 = LLVMInt64TypeInContext(c->ctx);
    c->t_f32 = LLVMFloatTypeInContext(c->ctx);
    c->t_f64 = LLVMDoubleTypeInContext(c->ctx);
    c->t_ptr = LLVMPointerType(c->t_i8, 0);
    return true;
}

/* ---------------------------------------------------------------- the kernel cache
   A kernel's code depends on its members' ops, dtypes, shapes and attributes, on how they read one another
   and their buffers, on the values of the constants they fold, and on which buffers coincide; nothing
   else. Kernels that agree on all of that call one function: a ResNet's blocks of one stage repeat the same
   few dozen kernels, and LLVM's optimization time grows with the number of functions. */
typedef struct KernelCache {
    char **keys;
    LLVMValueRef *fns;
    CgCount *counts;
    int n, cap; /* open addressing over cap (a power of two) slots */
} KernelCache;

static uint64_t key_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void out_of_memory(void) {
    fprintf(stderr, "lathe: out of memory\n");
    exit(1);
}

/* The cached kernel for k, emitting it on a miss; NULL after an error. */
static LLVMValueRef cached_kernel(CgCtx *c, const CgKernel *k, CgCount *count) {
    KernelCache *kc = c->kcache;
    if (!kc) {
        kc = c->kcache = calloc(1, sizeof *kc);
        if (!kc)
            out_of_memory();
    }
    if (2 * (kc->n + 1) > kc->cap) {
        KernelCache grown = {.cap = kc->cap ? 2 * kc->cap : 256, .n = kc->n};
        grown.keys = calloc((size_t)grown.cap, sizeof *grown.keys);
        grown.fns = calloc((size_t)grown.cap, sizeof *grown.fns);
        grown.counts = calloc((size_t)grown.cap, sizeof *grown.counts);
        if (!grown.keys || !grown.fns || !grown.counts)
            out_of_memory();
        for (int i = 0; i < kc->cap; i++) {
            if (!kc->keys[i])
                continue;
            size_t j = key_hash(kc->keys[i]) & (size_t)(grown.cap - 1);
            while (grown.keys[j])
                j = (j + 1) & (size_t)(grown.cap - 1);
            grown.keys[j] = kc->keys[i];
            grown.fns[j] = kc->fns[i];
            grown.counts[j] = kc->counts[i];
        }
        free(kc->keys);
        free(kc->fns);
        free(kc->counts);
        *kc = grown;
    }
    char *key = cg_kernel_key(k);
    size_t j = key_hash(key) & (size_t)(kc->cap - 1);
    while (kc->keys[j]) {
        if (strcmp(kc->keys[j], key) == 0) {
            free(key);
            *count = kc->counts[j];
            return kc->fns[j];
        }
        j = (j + 1) & (size_t)(kc->cap - 1);
    }
    LLVMValueRef fn = cg_llvm_kernel(c, k, count);
    if (!fn) {
        free(key);
        return NULL;
    }
    kc->keys[j] = key;
    kc->fns[j] = fn;
    kc->counts[j] = *count;
    kc->n++;
    return fn;
}

static void kernel_cache_free(KernelCache *kc) {
    if (!kc)
        return;
    for (int i = 0; i < kc->cap; i++)
        free(kc->keys[i]);
    free(kc->keys);
    free(kc->fns);
    free(kc->counts);
    free(kc);
}

void cg_llvm_ctx_dispose(CgCtx *c) {
    kernel_cache_free(c->kcache);
    if (c->b)
        LLVMDisposeBuilder(c->b);
    if (c->mod)
        LLVMDisposeModule(c->mod);
    if (c->ctx)
        LLVMContextDispose(c->ctx);
    if (c->tm)
        LLVMDisposeTargetMachine(c->tm);
    if (c->cpu)
        LLVMDisposeMessage(c->cpu);
    if (c->features)
        LLVMDisposeMessage(c->features);
    memset(c, 0, sizeof *c);
}

void cg_llvm_function_attrs(CgCtx *c, LLVMValueRef fn) {
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(c->ctx, LLVMGetEnumAttributeKindForName("nounwind", 8), 0));
    /* on every function, so that a JIT whose own target machine is generic still uses the host's SIMD */
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(c->ctx, "target-cpu", 10, c->cpu, (unsigned)strlen(c->cpu)));
    if (c->features[0])
        LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                                LLVMCreateStringAttribute(c->ctx, "target-features", 15, c->features,
                                                          (unsigned)strlen(c->features)));
    /* LLVM's AVX-512 CPUs prefer 256-bit vectors (against Intel's clock drop on wide ones); Zen 4 runs
       512-bit ones at full clock in half the instructions. Targets without AVX-512 keep their widest. */
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(c->ctx, "prefer-vector-width", 19, "512", 3));
}

/* ---------------------------------------------------------------- graph entries */

typedef struct Entry {
    CgCtx *c;
    LLVMValueRef fn, args, n, arena;
    LLVMValueRef *addr; /* i8* of each node's buffer, by id (NULL: a fused member has none) */
    LLVMValueRef run_kernel;
    LLVMValueRef anomaly_on, check_finite; /* lathe_kern.h's non-finite check */
    int *check_of;      /* each node's index in the graph's checks (cg_anomaly_checks), by id; -1: none */
    int graph_code;     /* lathe_check_finite's graph: 0 train, 1 grads, 2 eval, 3 predict, -1 another */
    LLVMValueRef ready_hook; /* lathe_output_ready_hook, a global function pointer */
    int *ready_arg;     /* by node id: the output argument whose last write the node's kernel is, or -1 */
    bool *signaled;     /* by argument: its ready call is emitted */
} Entry;

static LLVMValueRef arg_addr(Entry *e, int arg) {
    LLVMValueRef idx = LLVMConstInt(e->c->t_i64, (unsigned long long)arg, false);
    LLVMValueRef p = LLVMBuildInBoundsGEP2(e->c->b, e->c->t_ptr, e->args, &idx, 1, "");
    return LLVMBuildLoad2(e->c->b, e->c->t_ptr, p, "");
}

static LLVMValueRef node_addr(Entry *e, const Node *nd) {
    CgCtx *c = e->c;
    switch (nd->mem.kind) {
    case MEM_ARG:
        return arg_addr(e, nd->mem.arg);
    case MEM_ALIAS:
        return e->addr[nd->inputs[0]->id];
    case MEM_ARENA: {
        LLVMValueRef off = LLVMBuildAdd(c->b, LLVMConstInt(c->t_i64, (unsigned long long)nd->mem.offset_c, false),
                                        LLVMBuildMul(c->b, LLVMConstInt(c->t_i64, (unsigned long long)nd->mem.offset_n, false), e->n, ""), "");
        return LLVMBuildInBoundsGEP2(c->b, c->t_i8, e->arena, &off, 1, "");
    }
    case MEM_NONE:
    case MEM_FUSED:
        break;
    }
    LATHE_UNREACHABLE("code generation needs a planned graph (pass_memplan)");
}

static LLVMValueRef byte_size(Entry *e, const Node *nd) {
    CgCtx *c = e->c;
    int64_t per = ir_shape_numel_per_n(&nd->shape) * (int64_t)ir_dtype_size(nd->dtype);
    LLVMValueRef v = LLVMConstInt(c->t_i64, (unsigned long long)per, false);
    return ir_shape_has_n(&nd->shape) ? LLVMBuildMul(c->b, v, e->n, "") : v;
}

static void copy_bytes(Entry *e, LLVMValueRef dst, LLVMValueRef src, LLVMValueRef size) {
    LLVMBuildMemCpy(e->c->b, dst, 1, src, 1, size);
}

static LLVMValueRef size_value(Entry *e, int64_t c, int p) {
    LLVMValueRef v = LLVMConstInt(e->c->t_i64, (unsigned long long)c, true);
    for (int i = 0; i < p; i++)
        v = LLVMBuildMul(e->c->b, v, e->n, "");
    return v;
}

/* A global of the runtime (lathe_kern.h) that the entries read, declared once per module. */
static LLVMValueRef extern_global(CgCtx *c, LLVMTypeRef t, const char *name) {
    LLVMValueRef v = LLVMGetNamedGlobal(c->mod, name);
    if (v)
        return v;
    v = LLVMAddGlobal(c->mod, t, name);
    LLVMSetLinkage(v, LLVMExternalLinkage);
    return v;
}

static LLVMValueRef declare_profile_on(CgCtx *c) { return extern_global(c, c->t_i32, "lathe_profile_on"); }

static LLVMValueRef declare_profile_kernel(CgCtx *c) {
    LLVMValueRef f = LLVMGetNamedFunction(c->mod, "lathe_profile_kernel");
    if (f)
        return f;
    LLVMTypeRef ps[7] = {c->t_i32, c->t_i32, c->t_ptr, LLVMPointerType(c->t_ptr, 0), c->t_i64, c->t_i64, c->t_i64};
    f = LLVMAddFunction(c->mod, "lathe_profile_kernel", LLVMFunctionType(c->t_void, ps, 7, false));
    /* cold: the profiled calls stay out of the way of the plain ones */
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(c->ctx, LLVMGetEnumAttributeKindForName("cold", 4), 0));
    return f;
}

/* lathe_run_kernel(args), or, while lathe_profile_on is set (--profile), the same call through
   lathe_profile_kernel(graph, root node id, args), which times it: one load and branch more per kernel. */
static void run_or_profile(Entry *e, const CgKernel *k, LLVMValueRef *args) {
    CgCtx *c = e->c;
    LLVMBasicBlockRef prof = LLVMAppendBasicBlockInContext(c->ctx, e->fn, "profile");
    LLVMBasicBlockRef plain = LLVMAppendBasicBlockInContext(c->ctx, e->fn, "run");
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, e->fn, "next");
    LLVMValueRef on = LLVMBuildLoad2(c->b, c->t_i32, declare_profile_on(c), "profile_on");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntNE, on, LLVMConstInt(c->t_i32, 0, false), ""), prof, plain);
    LLVMPositionBuilderAtEnd(c->b, prof);
    LLVMValueRef pf = declare_profile_kernel(c);
    LLVMValueRef pargs[7] = {LLVMConstInt(c->t_i32, (unsigned long long)(int64_t)e->graph_code, true),
                             LLVMConstInt(c->t_i32, (unsigned long long)k->root->id, false),
                             args[0], args[1], args[2], args[3], args[4]};
    LLVMBuildCall2(c->b, LLVMGlobalGetValueType(pf), pf, pargs, 7, "");
    LLVMBuildBr(c->b, next);
    LLVMPositionBuilderAtEnd(c->b, plain);
    LLVMBuildCall2(c->b, LLVMGlobalGetValueType(e->run_kernel), e->run_kernel, args, 5, "");
    LLVMBuildBr(c->b, next);
    LLVMPositionBuilderAtEnd(c->b, next);
}

/* bufs on the stack, then lathe_run_kernel(k, bufs, n, count, cost) (or its profiled twin). */
static void call_kernel(Entry *e, const CgKernel *k, LLVMValueRef fn, const CgCount *cnt) {
    CgCtx *c = e->c;
    LLVMValueRef arr = LLVMBuildArrayAlloca(c->b, c->t_ptr, LLVMConstInt(c->t_i64, (unsigned long long)k->nbufs, false), "bufs");
    for (int i = 0; i < k->nbufs; i++) {
        LLVMValueRef idx = LLVMConstInt(c->t_i64, (unsigned long long)i, false);
        LLVMValueRef a = e->addr[k->bufs[i]->id];
        if (!a)
            LATHE_UNREACHABLE("a kernel's buffer belongs to a fused member");
        LLVMBuildStore(c->b, a, LLVMBuildInBoundsGEP2(c->b, c->t_ptr, arr, &idx, 1, ""));
    }
    LLVMValueRef dim = size_value(e, cnt->dim_c, cnt->dim_p), scale = size_value(e, cnt->scale_c, cnt->scale_p);
    LLVMValueRef count = LLVMBuildSDiv(c->b, LLVMBuildAdd(c->b, dim, LLVMBuildSub(c->b, scale, LLVMConstInt(c->t_i64, 1, false), ""), ""), scale, "");
    LLVMValueRef args[5] = {LLVMBuildBitCast(c->b, fn, c->t_ptr, ""), arr, e->n, count, size_value(e, cnt->cost_c, cnt->cost_p)};
    run_or_profile(e, k, args);
}

/* After kernel k: if (lathe_anomaly_on) lathe_check_finite(out, count, dtype, graph, check) for each of its
   checked outputs, so that with checking off a kernel costs one more load and branch. An SGD-fused GEMM
   writes its root alone (its anchor's buffer stays unwritten). */
static void check_outputs(Entry *e, const CgKernel *k) {
    CgCtx *c = e->c;
    const Node *outs[CG_MAX_MEMBERS];
    int nouts = 0;
    for (int i = 0; i < k->nmembers; i++) {
        const Node *m = k->members[i];
        if (k->materialized[i] && e->check_of[m->id] >= 0 && e->addr[m->id] && (!k->sgd_gemm || m == k->root))
            outs[nouts++] = m;
    }
    if (nouts == 0)
        return;
    LLVMBasicBlockRef check = LLVMAppendBasicBlockInContext(c->ctx, e->fn, "check");
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, e->fn, "next");
    LLVMValueRef on = LLVMBuildLoad2(c->b, c->t_i32, e->anomaly_on, "anomaly_on");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntNE, on, LLVMConstInt(c->t_i32, 0, false), ""), check, next);
    LLVMPositionBuilderAtEnd(c->b, check);
    for (int i = 0; i < nouts; i++) {
        const Node *m = outs[i];
        LLVMValueRef count = LLVMConstInt(c->t_i64, (unsigned long long)ir_shape_numel_per_n(&m->shape), false);
        if (ir_shape_has_n(&m->shape))
            count = LLVMBuildMul(c->b, count, e->n, "");
        LLVMValueRef args[5] = {e->addr[m->id], count, LLVMConstInt(c->t_i32, (unsigned long long)m->dtype, false),
                                LLVMConstInt(c->t_i32, (unsigned long long)(int64_t)e->graph_code, true),
                                LLVMConstInt(c->t_i32, (unsigned long long)e->check_of[m->id], false)};
        LLVMBuildCall2(c->b, LLVMGlobalGetValueType(e->check_finite), e->check_finite, args, 5, "");
    }
    LLVMBuildBr(c->b, next);
    LLVMPositionBuilderAtEnd(c->b, next);
}

static LLVMValueRef declare_check_finite(CgCtx *c) {
    LLVMValueRef f = LLVMGetNamedFunction(c->mod, "lathe_check_finite");
    if (f)
        return f;
    LLVMTypeRef ps[5] = {c->t_ptr, c->t_i64, c->t_i32, c->t_i32, c->t_i32};
    f = LLVMAddFunction(c->mod, "lathe_check_finite", LLVMFunctionType(c->t_void, ps, 5, false));
    /* cold: the checks' blocks stay out of the way of the kernel calls */
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(c->ctx, LLVMGetEnumAttributeKindForName("cold", 4), 0));
    return f;
}

static LLVMValueRef declare_anomaly_on(CgCtx *c) { return extern_global(c, c->t_i32, "lathe_anomaly_on"); }

/* lathe_check_finite's graph number of a graph named name */
static int graph_code(const char *name) {
    static const char *names[4] = {"train", "grads", "eval", "predict"};
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

static LLVMValueRef declare_run_kernel(CgCtx *c) {
    LLVMValueRef f = LLVMGetNamedFunction(c->mod, "lathe_run_kernel");
    if (f)
        return f;
    LLVMTypeRef ps[5] = {c->t_ptr, LLVMPointerType(c->t_ptr, 0), c->t_i64, c->t_i64, c->t_i64};
    return LLVMAddFunction(c->mod, "lathe_run_kernel", LLVMFunctionType(c->t_void, ps, 5, false));
}

static LLVMValueRef declare_ready_hook(CgCtx *c) { return extern_global(c, c->t_ptr, "lathe_output_ready_hook"); }

/* if (lathe_output_ready_hook) lathe_output_ready_hook(graph, arg) */
static void call_ready(Entry *e, int arg) {
    CgCtx *c = e->c;
    LLVMTypeRef ps[2] = {c->t_i32, c->t_i32};
    LLVMTypeRef ft = LLVMFunctionType(c->t_void, ps, 2, false);
    LLVMValueRef hook = LLVMBuildLoad2(c->b, c->t_ptr, e->ready_hook, "ready_hook");
    LLVMBasicBlockRef call = LLVMAppendBasicBlockInContext(c->ctx, e->fn, "ready");
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->ctx, e->fn, "next");
    LLVMBuildCondBr(c->b, LLVMBuildIsNotNull(c->b, hook, ""), call, next);
    LLVMPositionBuilderAtEnd(c->b, call);
    LLVMValueRef args[2] = {LLVMConstInt(c->t_i32, (unsigned long long)(int64_t)e->graph_code, true),
                            LLVMConstInt(c->t_i32, (unsigned long long)arg, false)};
    LLVMValueRef callee = LLVMBuildBitCast(c->b, hook, LLVMPointerType(ft, 0), ""); /* typed pointers (LLVM 14) */
    LLVMBuildCall2(c->b, ft, callee, args, 2, "");
    LLVMBuildBr(c->b, next);
    LLVMPositionBuilderAtEnd(c->b, next);
}

/* Which outputs are final when their own kernel returns: an output written in place (its buffer is the
   argument) that no later node reads. Those get their ready call after that kernel; the others after the
   copies at the end of the entry. ready_arg[id] = the argument, or -1. */
static void plan_ready(const Graph *g, const GraphArg *args, int nargs, int *ready_arg) {
    for (int i = 0; i < g->nnodes; i++)
        ready_arg[i] = -1;
    for (int a = 0; a < nargs; a++) {
        const Node *v = args[a].node;
        if (args[a].role != ARG_OUTPUT || v->mem.kind != MEM_ARG || v->mem.arg != a)
            continue;
        bool read_later = false;
        for (int i = v->id + 1; i < g->nnodes && !read_later; i++)
            for (int k = 0; k < g->nodes[i]->ninputs; k++)
                read_later |= cg_same_buffer(g->nodes[i]->inputs[k], v);
        if (!read_later)
            ready_arg[v->id] = a;
    }
}

/* After kernel k: the ready calls of the outputs it finishes. */
static void ready_outputs(Entry *e, const CgKernel *k) {
    for (int i = 0; i < k->nmembers; i++) {
        int a = e->ready_arg[k->members[i]->id];
        if (k->materialized[i] && a >= 0 && !e->signaled[a]) {
            call_ready(e, a);
            e->signaled[a] = true;
        }
    }
}

bool cg_llvm_emit_entry(CgCtx *c, const Graph *g, const char *name) {
    LLVMTypeRef ps[3] = {LLVMPointerType(c->t_ptr, 0), c->t_i64, c->t_ptr};
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, LLVMFunctionType(c->t_void, ps, 3, false));
    cg_llvm_function_attrs(c, fn);
    LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(c->ctx, fn, "entry");
    if (!g) { /* a program without this graph: the entry does nothing */
        LLVMPositionBuilderAtEnd(c->b, bb);
        LLVMBuildRetVoid(c->b);
        return true;
    }
    Entry e = {.c = c, .fn = fn, .args = LLVMGetParam(fn, 0), .n = LLVMGetParam(fn, 1), .arena = LLVMGetParam(fn, 2)};
    e.run_kernel = declare_run_kernel(c);
    e.check_finite = declare_check_finite(c);
    e.anomaly_on = declare_anomaly_on(c);
    e.graph_code = graph_code(g->name);
    e.ready_hook = declare_ready_hook(c);
    int nargs = ir_graph_args(g, NULL);
    GraphArg *args = calloc(nargs > 0 ? (size_t)nargs : 1, sizeof *args);
    e.ready_arg = malloc((g->nnodes > 0 ? (size_t)g->nnodes : 1) * sizeof *e.ready_arg);
    e.signaled = calloc(nargs > 0 ? (size_t)nargs : 1, sizeof *e.signaled);
    if (!args || !e.ready_arg || !e.signaled)
        out_of_memory();
    ir_graph_args(g, args);
    plan_ready(g, args, nargs, e.ready_arg);
    e.addr = calloc(g->nnodes > 0 ? (size_t)g->nnodes : 1, sizeof *e.addr);
    e.check_of = malloc((g->nnodes > 0 ? (size_t)g->nnodes : 1) * sizeof *e.check_of);
    const Node **checked = calloc(g->nnodes > 0 ? (size_t)g->nnodes : 1, sizeof *checked);
    if (!e.addr || !e.check_of || !checked)
        out_of_memory();
    for (int i = 0; i < g->nnodes; i++)
        e.check_of[i] = -1;
    for (int i = 0, nchecks = cg_anomaly_checks(g, checked); i < nchecks; i++)
        e.check_of[checked[i]->id] = i;
    free(checked);
    LLVMPositionBuilderAtEnd(c->b, bb);
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->mem.kind != MEM_FUSED)
            e.addr[i] = node_addr(&e, g->nodes[i]);

    for (int i = 0; i < g->nnodes; i++) {
        const Node *nd = g->nodes[i];
        if (!cg_is_kernel_root(g, nd))
            continue;
        CgKernel k;
        cg_kernel_of(g, nd, &k);
        CgCount cnt;
        LLVMValueRef kfn = cached_kernel(c, &k, &cnt);
        if (!kfn) {
            free(e.addr);
            free(e.check_of);
            free(e.ready_arg);
            free(e.signaled);
            free(args);
            return false;
        }
        LLVMPositionBuilderAtEnd(c->b, bb);
        call_kernel(&e, &k, kfn, &cnt);
        check_outputs(&e, &k);
        ready_outputs(&e, &k);
        bb = LLVMGetInsertBlock(c->b); /* where the next kernel's call goes */
    }
    LLVMPositionBuilderAtEnd(c->b, bb);

    int ncopies = cg_end_copies(g, NULL);
    CgCopy *copies = malloc(sizeof *copies * (size_t)(ncopies + 1));
    if (!copies)
        out_of_memory();
    cg_end_copies(g, copies);
    for (int i = 0; i < ncopies; i++) {
        const CgCopy *cp = &copies[i];
        LLVMValueRef dst = cp->dst_arg >= 0 ? arg_addr(&e, cp->dst_arg) : e.addr[cp->dst->id];
        copy_bytes(&e, dst, e.addr[cp->src->id], byte_size(&e, cp->sized));
    }
    free(copies);
    for (int a = 0; a < nargs; a++)
        if (args[a].role == ARG_OUTPUT && !e.signaled[a])
            call_ready(&e, a);
    free(args);
    free(e.addr);
    free(e.check_of);
    free(e.ready_arg);
    free(e.signaled);
    LLVMBuildRetVoid(c->b);
    return true;
}

bool cg_llvm_finish(CgCtx *c) {
    char *err = NULL;
    if (LLVMVerifyModule(c->mod, LLVMReturnStatusAction, &err)) {
        diag_error(c->d, (Loc){0}, "internal error: generated LLVM module is invalid: %s", err);
        LLVMDisposeMessage(err);
        return false;
    }
    LLVMDisposeMessage(err);
    char passes[32];
    snprintf(passes, sizeof passes, "default<O%d>", c->opt_level);
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(po, c->opt_level >= 2);
    LLVMPassBuilderOptionsSetSLPVectorization(po, c->opt_level >= 2);
    LLVMErrorRef e = LLVMRunPasses(c->mod, passes, c->tm, po);
    LLVMDisposePassBuilderOptions(po);
    if (e) {
        char *msg = LLVMGetErrorMessage(e);
        diag_error(c->d, (Loc){0}, "internal error: LLVM passes failed: %s", msg);
        LLVMDisposeErrorMessage(msg);
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------- object files and assembly */

/* prefix (--emit lib|shared): PREFIX_lathe_manifest and PREFIX_lathe_train ..., internal, and the library's
   API functions over them (libwrap.c); NULL: the executable's lathe_manifest, lathe_train ... */
static bool emit_program(CgCtx *c, const Program *p, const char *prefix) {
    Arena *a = arena_new();
    char *manifest = cg_manifest(a, p, c->d);
    if (!manifest) {
        arena_free(a);
        return false;
    }
    LLVMValueRef str = LLVMConstStringInContext(c->ctx, manifest, (unsigned)strlen(manifest), false);
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(str),
                                    prefix ? arena_printf(a, "%s_lathe_manifest", prefix) : "lathe_manifest");
    LLVMSetInitializer(gv, str);
    LLVMSetGlobalConstant(gv, true);
    LLVMSetLinkage(gv, prefix ? LLVMInternalLinkage : LLVMExternalLinkage);
    const Graph *gs[4] = {p->train, p->grads, p->eval, p->predict};
    const char *names[4] = {"lathe_train", "lathe_grads", "lathe_eval", "lathe_predict"};
    LLVMValueRef entries[4];
    for (int i = 0; i < 4; i++) {
        const char *name = prefix ? arena_printf(a, "%s_%s", prefix, names[i]) : names[i];
        if (!cg_llvm_emit_entry(c, gs[i], name)) {
            arena_free(a);
            return false;
        }
        entries[i] = LLVMGetNamedFunction(c->mod, name);
        if (prefix)
            LLVMSetLinkage(entries[i], LLVMInternalLinkage);
    }
    arena_free(a);
    if (prefix)
        cg_llvm_emit_lib_api(c, prefix, gv, entries);
    return cg_llvm_finish(c);
}

bool cg_llvm_emit_object(const Program *p, const CgOptions *o, const char *path, Diag *d) {
    return cg_llvm_emit_file(p, o, CG_FILE_OBJECT, path, d);
}

bool cg_llvm_emit_file(const Program *p, const CgOptions *o, CgFileKind kind, const char *path, Diag *d) {
    CgCtx c;
    if (!cg_llvm_ctx_init(&c, o, p->model_name ? p->model_name : "lathe", d))
        return false;
    bool ok = emit_program(&c, p, o ? o->prefix : NULL);
    if (ok) {
        static const char *const what[] = {"object file", "assembly file", "LLVM IR file"};
        char *err = NULL;
        bool failed = kind == CG_FILE_LLVM_IR
                          ? LLVMPrintModuleToFile(c.mod, path, &err)
                          : LLVMTargetMachineEmitToFile(c.tm, c.mod, (char *)path,
                                                        kind == CG_FILE_OBJECT ? LLVMObjectFile : LLVMAssemblyFile, &err);
        if (failed) {
            diag_error(d, (Loc){0}, "cannot write %s %s: %s", what[kind], path, err ? err : "unknown error");
            ok = false;
        }
        if (err)
            LLVMDisposeMessage(err);
    }
    cg_llvm_ctx_dispose(&c);
    return ok;
}

LLVMMemoryBufferRef cg_llvm_program_object(const Program *p, const CgOptions *o, Diag *d) {
    CgCtx c;
    if (!cg_llvm_ctx_init(&c, o, p->model_name ? p->model_name : "lathe", d))
        return NULL;
    LLVMMemoryBufferRef buf = NULL;
    char *err = NULL;
    if (emit_program(&c, p, NULL) && LLVMTargetMachineEmitToMemoryBuffer(c.tm, c.mod, LLVMObjectFile, &err, &buf)) {
        diag_error(d, (Loc){0}, "cannot generate object code: %s", err);
        LLVMDisposeMessage(err);
        buf = NULL;
    }
    cg_llvm_ctx_dispose(&c);
    return buf;
}

char *cg_llvm_graph_asm(const Graph *g, const CgOptions *o, Diag *d) {
    CgCtx c;
    if (!cg_llvm_ctx_init(&c, o, g->name, d))
        return NULL;
    char *text = NULL;
    char name[128];
    snprintf(name, sizeof name, "lathe_%s", g->name);
    if (cg_llvm_emit_entry(&c, g, name) && cg_llvm_finish(&c)) {
        LLVMMemoryBufferRef buf;
        char *err = NULL;
        if (LLVMTargetMachineEmitToMemoryBuffer(c.tm, c.mod, LLVMAssemblyFile, &err, &buf)) {
            diag_error(d, (Loc){0}, "cannot emit assembly: %s", err);
            LLVMDisposeMessage(err);
        } else {
            size_t len = LLVMGetBufferSize(buf);
            text = malloc(len + 1);
            if (text) {
                memcpy(text, LLVMGetBufferStart(buf), len);
                text[len] = 0;
            }
            LLVMDisposeMemoryBuffer(buf);
        }
    }
    cg_llvm_ctx_dispose(&c);
    return text;
}
