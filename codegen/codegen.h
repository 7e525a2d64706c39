/* codegen.h: from a Program whose graphs have been through the pipeline to machine code. CPU code goes
   through the LLVM C API (codegen/llvm/), and the object is linked with the runtime into an executable
   (codegen/link.c). */
#ifndef LATHE_CODEGEN_H
#define LATHE_CODEGEN_H

#include "../ir/ir.h"

typedef struct CgOptions {
    const char *cpu;      /* "native" (default when NULL), or an LLVM CPU name */
    int opt_level;        /* 0..3; default 3 */
    /* --emit lib|shared: the entries and manifest are named PREFIX_lathe_* with internal linkage, and the
       object defines the library API PREFIX_open, PREFIX_predict, ... (codegen/llvm/libwrap.c); NULL: the
       executable's lathe_* entries */
    const char *prefix;
} CgOptions;

/* The manifest that the runtime reads (runtime/lathe_rt.h describes it), as JSON text in a; NULL after
   reporting a recipe value that JSON cannot hold. */
char *cg_manifest(Arena *a, const Program *p, Diag *d);
/* The float kernel outputs of g that --detect-anomaly checks, in the order of their ids (the indices of the
   manifest's "checks" of g); into out when not NULL. Returns how many. */
int cg_anomaly_checks(const Graph *g, const Node **out);

/* Writes an object file defining lathe_manifest, lathe_train, lathe_eval and lathe_predict. */
bool cg_llvm_emit_object(const Program *p, const CgOptions *o, const char *path, Diag *d);

/* Compiles one graph in memory (LLVM's MCJIT) and returns its entry, with the signature of
   lathe_rt.h's graph entries; for the tests that check generated code against the interpreter. The
   returned handle keeps the code alive until cg_jit_free. */
typedef struct CgJit CgJit;
CgJit *cg_llvm_jit(const Graph *g, const CgOptions *o, Diag *d);
void (*cg_jit_entry(CgJit *j))(void **args, int64_t n, uint8_t *arena);
void cg_jit_free(CgJit *j);
/* Compiles a whole program in memory, the object code of cg_llvm_emit_object linked by LLVM's ORC JIT into
   this process (for `lathe run`), and fills code with its manifest text and graph entries, which live until
   cg_jit_program_free. NULL on error (reported). */
typedef void (*CgEntryFn)(void **args, int64_t n, uint8_t *arena);
typedef struct CgProgramCode {
    const char *manifest;
    CgEntryFn train, grads, eval, predict; /* an entry whose graph the program lacks does nothing */
} CgProgramCode;
typedef struct CgJitProgram CgJitProgram;
CgJitProgram *cg_llvm_jit_program(const Program *p, const CgOptions *o, CgProgramCode *code, Diag *d);
void cg_jit_program_free(CgJitProgram *j);
/* The optimized assembly text of one graph's entry and kernels (malloc'd; NULL on error, reported), to
   check what the vectorizer made of a kernel. */
char *cg_llvm_graph_asm(const Graph *g, const CgOptions *o, Diag *d);

/* Links object + the runtime library into an executable, running the system C compiler directly (no
   shell). Finds liblathe_rt.a beside the lathe executable (build tree) or in PREFIX/lib/lathe. */
bool cg_link(const char *object, const char *output, Diag *d);
/* cg_link with the runtime's Open MPI backend (liblathe_rt_mpi.a beside liblathe_rt.a, and libmpi): an
   executable that joins an mpirun job (runtime/dist.h). An error where this lathe was built without MPI. */
bool cg_link_mpi(const char *object, const char *output, Diag *d);
/* cg_link of a --target cuda executable: object and the GPU data object (codegen/cuda/nvrtc.h) with the runtime */
bool cg_link_cuda(const char *object, const char *cuda_object, const char *output, Diag *d);
/* The runtime library file name (liblathe_rt.a, liblathe_rt_mpi.a, liblathe_rt_pic.a): $LATHE_RUNTIME for
   liblathe_rt.a and its folder for the others, else beside the lathe executable (build tree: bin/../lib;
   installed: bin/../lib/lathe), else the configured install folder. False when the file is not there. */
bool cg_find_runtime_file(const char *name, char *out, size_t size);
/* Runs argv (argv[0] looked up on PATH) without a shell and waits; false with a message naming what it was
   to do ("link OUT") when it cannot start or fails. */
bool cg_run_tool(const char *const *argv, const char *what, Diag *d);

/* ---------------------------------------------------------------- --emit (codegen/llvm/module.c, link_lib.c) */
typedef enum { CG_FILE_OBJECT, CG_FILE_ASSEMBLY, CG_FILE_LLVM_IR } CgFileKind;
/* The whole program (cg_llvm_emit_object's) as an object file, assembly text or LLVM IR text. */
bool cg_llvm_emit_file(const Program *p, const CgOptions *o, CgFileKind kind, const char *path, Diag *d);

typedef enum { CG_LIB_STATIC, CG_LIB_SHARED } CgLibKind;
/* Whether name is usable as a library prefix: a C identifier that is no C or C++ keyword. */
bool cg_lib_prefix_ok(const char *name);
/* The prefix that an output path gives: its base name without lib, .a, .so or .h, lower-cased, every other
   character than [a-z0-9_] made '_' (FashionMLP -> fashionmlp, fashion-mlp.a -> fashion_mlp), in a. */
char *cg_lib_prefix_of(Arena *a, const char *output);
/* Writes DIR/BASE.h and DIR/libBASE.a (static) or DIR/libBASE.so (shared) for output DIR/BASE: object (compiled
   with CgOptions.prefix = prefix) merged with the runtime and its static libraries into one relocatable object
   whose only global symbols are the API's (PREFIX_*), so that several models link into one program. Each file
   is written under a temporary name and renamed: a failure leaves none behind. */
bool cg_link_library(const Program *p, const char *object, CgLibKind kind, const char *output, const char *prefix,
                     Diag *d);

#endif
