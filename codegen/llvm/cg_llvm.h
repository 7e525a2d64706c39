/* cg_llvm.h: the internals of the CPU code generator, shared by its files: module.c (target machine,
   module, graph entries, optimization, object and assembly output), kernels.c (one LLVM function per
   kernel: a lone compute node or a fusion group) and jit.c (MCJIT for the tests, ORC for lathe run). Everything here goes through LLVM's stable C API. */
#ifndef LATHE_CG_LLVM_H
#define LATHE_CG_LLVM_H

#include "../codegen.h"
#include "../kernel.h"

#include <llvm-c/Core.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>

/* One module being built. */
typedef struct CgCtx {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTargetMachineRef tm;
    char *cpu, *features; /* owned (LLVMDisposeMessage) */
    int opt_level;
    LLVMTypeRef t_void, t_i8, t_i32, t_i64, t_f32, t_f64, t_ptr; /* t_ptr: i8* */
    Diag *d;
    /* kernels already emitted, by what their code depends on (see kernel_key in module.c): identical kernels
       (the blocks of a ResNet stage, BatchNorm's arithmetic) share one function */
    struct KernelCache *kcache;
} CgCtx;

/* Creates the target machine for the host triple and a fresh context and module; false on error (reported). */
bool cg_llvm_ctx_init(CgCtx *c, const CgOptions *o, const char *module_name, Diag *d);
void cg_llvm_ctx_dispose(CgCtx *c); /* disposes what is still owned (the module unless taken) */

/* Defines `void NAME(i8 **args, i64 n, i8 *arena)` running graph g (planned by pass_memplan): one
   lathe_run_kernel call per kernel. */
bool cg_llvm_emit_entry(CgCtx *c, const Graph *g, const char *name);
/* The library API of --emit lib|shared (libwrap.c): PREFIX_open, PREFIX_predict, ..., each one call of
   runtime/lathe_lib.h's lathe_lib_* with a constant describing this model (its manifest global and its
   train, grads, eval and predict entries). */
void cg_llvm_emit_lib_api(CgCtx *c, const char *prefix, LLVMValueRef manifest, const LLVMValueRef entries[4]);
/* Verifies the module (a failure is an internal error, reported) and runs the new pass manager. */
bool cg_llvm_finish(CgCtx *c);

/* The object code of the whole program in memory: what cg_llvm_emit_object writes (lathe run's JIT links
   it); NULL on error (reported). */
LLVMMemoryBufferRef cg_llvm_program_object(const Program *p, const CgOptions *o, Diag *d);

/* Adds the attributes every generated function carries (nounwind, target cpu and features). */
void cg_llvm_function_attrs(CgCtx *c, LLVMValueRef fn);

/* How the graph entry runs a kernel: lathe_run_kernel over count = ceil(dim / scale) items of cost
   cost each, every size c * n^p (n the batch size). */
typedef struct CgCount {
    int64_t dim_c, scale_c, cost_c;
    int dim_p, scale_p, cost_p;
} CgCount;

/* The kernel k: an internal function `void (i8 **bufs, i64 n, i64 lo, i64 hi)` (lathe_kern.h's ABI) and
   how to run it. NULL after reporting what the generated code cannot compute (a matmul dimension past
   BLAS's int). */
LLVMValueRef cg_llvm_kernel(CgCtx *c, const CgKernel *k, CgCount *count);

#endif
