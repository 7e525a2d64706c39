/* emit.h: `lathe compile --emit KIND` (emit.c): what compile writes besides the default executable. */
#ifndef LATHE_CLI_EMIT_H
#define LATHE_CLI_EMIT_H

#include "../codegen/codegen.h"
#include "../codegen/cuda/cuda.h"
#include "../codegen/cuda/nvrtc.h"

/* Checks --emit KIND and --prefix before any work: -1 when they are fine, else the exit status after the
   message (2 for bad usage). */
int cli_emit_check(const char *emit, const char *prefix, bool mpi);
/* Whether --emit KIND asks for something other than the executable. */
bool cli_emit_other(const char *emit);
/* Writes what --emit KIND asks for (obj, asm, llvm, lib, shared) for output: obj, asm and llvm into output
   itself (with a prefix, the library's object: its API functions over internal entries), lib and shared into
   OUTPUT.h and libOUTPUT.a or .so (codegen.h's cg_link_library). prefix: --prefix, or NULL for the output's
   base name. false after reporting an error; nothing half-written is left. */
bool cli_emit(Arena *a, const Program *p, const CgOptions *cg, const char *emit, const char *output,
              const char *prefix, Diag *d);

/* --emit cuda: the CUDA C of every graph (codegen/cuda/cuda.h) into output, written under a temporary name
   and renamed. false after reporting an error. */
bool cli_emit_cuda(Arena *a, const Program *p, const CgCudaOptions *co, const char *output, Diag *d);
/* --target cuda: the CUDA C of every graph compiled by NVRTC for archs (codegen/cuda/nvrtc.h) and written as
   the data object at path that the executable links beside the model's object. Prints NVRTC's time to
   stderr when LATHE_CUDA_TIMES is set. false after reporting an error. */
bool cli_cuda_object(Arena *a, const Program *p, const CgCudaOptions *co, const CgCudaArchs *archs,
                     const CgOptions *cg, const char *name, const char *path, Diag *d);

#endif
