/* cu_int.h: the internals of the CUDA generator, shared by its files:
     cuda.c       the translation unit and the launch plan: the preamble, one kernel per CgKernel of each
                  graph (deduplicated by cg_kernel_key), the plan, its JSON; dispatches each kernel by kind
     pointwise.c  elementwise groups, reductions with their producers (block-level), argmax/argmin, one_hot,
                  iota, constant fills; and cu_emit_members_at, the epilogue code that gemm.c calls
     gemm.c       matmul and the three convolution products (conv2d, conv2d_bwd_input, conv2d_bwd_weight),
                  lone or as an epilogue group's anchor: tiled kernels with shared-memory staging, TF32 wmma
                  or exact float32 FMA (CgCudaOptions.fp32), float64 FMA
     lib.c        the fixed device library (pooling and its backward, adaptive average pooling, slice, pad,
                  concat, gather, scatter_add, random) and the __global__ wrapper of each such call-out
   Every kernel is `extern "C" __global__ void NAME(T0 *__restrict__ b0, const T1 *__restrict__ b1, ...,
   long long n)`: the outputs (the first k->nouts buffers) writable, the inputs const, n the batch size. */
#ifndef LATHE_CG_CU_INT_H
#define LATHE_CG_CU_INT_H

#include "cuda.h"

#include <stdarg.h>
#include <stddef.h>

/* A growing text (malloc'd; exits with a message on out of memory). */
typedef struct CuBuf {
    char *s;
    size_t len, cap;
} CuBuf;
void cu_printf(CuBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cu_free(CuBuf *b);

/* The CUDA C type of a dtype: "float", "double", "int", "long long", "unsigned char". */
const char *cu_type(DType t);

/* The kernel being emitted. */
typedef struct CuKernel {
    const CgKernel *k;
    const CgCudaOptions *o;
    const char *name; /* the __global__ function's name */
    CuBuf *src;       /* the translation unit: the kernel's code is appended */
    Diag *d;
    /* set by the emitter: how to launch it (CgCudaLaunch's fields) */
    int block;
    int64_t items_c, per_block;
    int items_p;
} CuKernel;

/* Prints `extern "C" __global__ void __launch_bounds__(block) NAME(...params..., long long n) {` and sets
   ck->block; the emitter then prints the body and the closing brace. Buffer i is named b<i>. (cuda.c) */
void cu_signature(CuKernel *ck, int block);
/* Prints `#line LINE "FILE"` for nd's location when it has one. (cuda.c) */
void cu_line(CuKernel *ck, const Node *nd);

/* The emitters, one per kind of kernel; each appends one whole __global__ function and sets the launch
   fields. False after reporting (through ck->d, at the node's location) what it cannot generate. */
bool cu_emit_pointwise(CuKernel *ck); /* elementwise groups and lone pointwise nodes, CONST fills (pointwise.c) */
bool cu_emit_reduce(CuKernel *ck);    /* a reduction root (sum/mean/max/min, argmax/argmin) with its producers */
bool cu_emit_other(CuKernel *ck);     /* a lone iota or one_hot (pointwise.c) */
bool cu_emit_gemm(CuKernel *ck);      /* an anchor: matmul or a convolution, lone or with its epilogue (gemm.c) */
bool cu_emit_callout(CuKernel *ck);   /* any other cg_is_callout op (lib.c) */

/* Inside an anchor's kernel (gemm.c): prints statements that compute every member of ck->k other than the
   anchor at element `index` (a C expression of type long long: the flat, row-major index into the anchor's
   shape, N bound to n) given the anchor's value there as `value` (a C expression), and store the
   materialized ones. The anchor's own store is the caller's (none when k->sgd_gemm: then the root
   P - s * anchor is computed here from `value` and stored into P in place). Broadcast and transposed
   inputs are read through their strides. The statements are one { } block that evaluates `index` and
   `value` once, first, so that its own names (o0, a0, v0, q, t) never shadow the caller's. (pointwise.c) */
void cu_emit_members_at(CuKernel *ck, const char *index, const char *value);

/* The device library's source (lib.c), printed once into the translation unit before any kernel:
   __device__ functions lathe_cu_<op>_<dtype>(out, in0, ..., long long n, const long long *desc), each a
   grid-stride loop over the output's elements, with desc lathe_kern.h's descriptor (cg_build_desc). */
void cu_library_source(CuBuf *b);

#endif
