/* cuda.h: the GPU code generator (DESIGN.md decision 7). Every kernel of a planned program (codegen/kernel.h:
   a lone compute node or a fusion group, the same kernels as the CPU backend's) becomes one extern "C"
   __global__ function of one CUDA C translation unit, with #line directives back to the model file. A launch
   plan says how a runtime runs each graph with the same arguments and arena as the CPU entry (lathe_rt.h):
   which kernel, on which buffers, with what grid, then which copies. Generating needs no CUDA: NVRTC
   compiles the source (nvrtc.c), and the tests also compile it for the host (tests/cuda/emu). */
#ifndef LATHE_CG_CUDA_H
#define LATHE_CG_CUDA_H

#include "../codegen.h"
#include "../kernel.h"

typedef struct CgCudaOptions {
    /* --precision fp32: float32 GEMMs and convolutions in exact float32 arithmetic; false (the default):
       TF32 tensor cores (wmma, sm_80 and later) for float32 GEMM and convolution products */
    bool fp32;
} CgCudaOptions;

/* Where a buffer is, per the memory plan (reshape aliases resolved to the bytes they share):
   args[arg] of the graph entry when arg >= 0, else arena + offset_c + offset_n * n. */
typedef struct CgCudaBuf {
    int arg;
    int64_t offset_c, offset_n;
} CgCudaBuf;

/* One launch: name<<<grid, block>>>(b0, b1, ..., n) with the kernel's buffers in CgKernel.bufs order
   (outputs first, then inputs) as typed device pointers and n, the batch size, as a long long.
   grid = ceil(items / per_block) clamped to [1, 2^31 - 1], items = items_c * n^items_p. Every kernel is
   correct for any grid >= 1 (grid-stride loops); the grid is only a matter of speed. Shared memory is static
   only (no dynamic shared memory). */
typedef struct CgCudaLaunch {
    const char *name; /* the extern "C" __global__ function */
    int node;         /* the kernel's root node id */
    int block;        /* threads per block, 32 .. 1024, a multiple of 32 */
    int64_t items_c, per_block;
    int items_p;
    int nbufs, nouts; /* bufs[0 .. nouts) are written, the rest only read */
    CgCudaBuf *bufs;
} CgCudaLaunch;

/* A copy after the last launch (outputs not computed in place, parameter updates not done in place, as
   codegen/llvm/module.c's entry does): bytes = bytes_c * n^bytes_p. */
typedef struct CgCudaCopy {
    CgCudaBuf dst, src;
    int64_t bytes_c;
    int bytes_p;
} CgCudaCopy;

typedef struct CgCudaGraph {
    const char *name; /* "train", "grads", "eval", "predict" (the graph's name) */
    int nargs;        /* the graph's arguments (ir_graph_args), as the manifest lists them */
    int64_t arena_c, arena_n; /* the arena's bytes: arena_c + arena_n * n */
    int nlaunches;
    CgCudaLaunch *launches;
    int ncopies;
    CgCudaCopy *copies;
} CgCudaGraph;

typedef struct CgCudaProgram {
    char *source; /* the translation unit, NUL-terminated, in the Arena given */
    int ngraphs;
    CgCudaGraph graphs[4];
} CgCudaProgram;

/* The CUDA C of every graph of p (program_graphs: train, grads, eval, predict that exist), which pass_memplan
   has planned, into out (allocated in a). Identical kernels (cg_kernel_key) are emitted once and launched
   under one name. False after reporting what cannot be generated. */
bool cg_cuda_generate(Arena *a, const Program *p, const CgCudaOptions *o, CgCudaProgram *out, Diag *d);
/* The same for one planned graph (tests): out->ngraphs is 1. */
bool cg_cuda_generate_graph(Arena *a, const Graph *g, const CgCudaOptions *o, CgCudaProgram *out, Diag *d);
/* The launch plan as JSON text in a, the form the runtime reads (runtime/cuda.h):
     {"graphs": {"train": {"nargs": 9, "arena": [c, per_n],
                           "launches": [{"name": "k12_add", "node": 12, "block": 256, "items": [c, p],
                                         "per_block": 256, "nouts": 1,
                                         "bufs": [{"arg": 3} | {"arena": [c, per_n]}, ...]}],
                           "copies": [{"dst": BUF, "src": BUF, "bytes": [c, p]}]}, ...}} */
char *cg_cuda_plan_json(Arena *a, const CgCudaProgram *cp);

#endif
