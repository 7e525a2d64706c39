/* cg_llvm.h: the internals of the CPU code generator, shared by its files: module.c (target machine,
   module, graph entries, optimization, object and assembly output), kernels.c (one LLVM function per
   compute node) and jit.c (MCJIT for the tests). Everything here goes through LLVM's stable C API. */
#ifndef LATHE_CG_LLVM_H
#define LATHE_CG_LLVM_H

#include "../codegen.h"

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
    /* kernels already emitted, by what their code depends on (see kernel_key in module.c): identical nodes
       (the blocks of a ResNet stage, BatchNorm's arithmetic) share one function */
    struct KernelCache *kcache;
} CgCtx;

/* Creates the target machine for the host triple and a fresh context and module; false on error (reported). */
bool cg_llvm_ctx_init(CgCtx *c, const CgOptions *o, const char *module_name, Diag *d);
void cg_llvm_ctx_dispose(CgCtx *c); /* disposes what is still owned (the module unless taken) */

/* Defines `void NAME(i8 **args, i64 n, i8 *arena)` running graph g (planned by pass_memplan). */
bool cg_llvm_emit_entry(CgCtx *c, const Graph *g, const char *name);
/* Verifies the module (a failure is an internal error, reported) and runs the new pass manager. */
bool cg_llvm_finish(CgCtx *c);

/* Adds the attributes every generated function carries (nounwind, target cpu and features). */
void cg_llvm_function_attrs(CgCtx *c, LLVMValueRef fn);

/* The kernel of compute node nd: an internal function `void (i8 *out, i8 *in..., i64 n)` taking the
   address of nd's buffer, then one address per input (a folded constant's too), then n. noalias: the
   output buffer meets no input buffer. NULL after reporting a node the generated code cannot compute (a
   matmul dimension past BLAS's int). */
LLVMValueRef cg_llvm_kernel(CgCtx *c, const Node *nd, bool noalias);
/* A CONST read by this node is folded into its code as an immediate (its buffer is not read). */
bool cg_llvm_folds_const(const Node *user);

#endif
