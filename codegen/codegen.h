/* codegen.h: from a Program whose graphs have been through the pipeline to machine code. CPU code goes
   through the LLVM C API (codegen/llvm/), and the object is linked with the runtime into an executable
   (codegen/link.c). */
#ifndef LATHE_CODEGEN_H
#define LATHE_CODEGEN_H

#include "../ir/ir.h"

typedef struct CgOptions {
    const char *cpu;      /* "native" (default when NULL), or an LLVM CPU name */
    int opt_level;        /* 0..3; default 3 */
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
/* The optimized assembly text of one graph's entry and kernels (malloc'd; NULL on error, reported), to
   check what the vectorizer made of a kernel. */
char *cg_llvm_graph_asm(const Graph *g, const CgOptions *o, Diag *d);

/* Links object + the runtime library into an executable, running the system C compiler directly (no
   shell). Finds liblathe_rt.a beside the lathe executable (build tree) or in PREFIX/lib/lathe. */
bool cg_link(const char *object, const char *output, Diag *d);

#endif
