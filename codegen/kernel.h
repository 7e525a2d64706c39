/* kernel.h: what a kernel of a planned graph is, for every backend: the nodes that one generated function
   computes (a lone compute node or a fusion group, ir.h), the buffers it touches and in what order, and the
   constant descriptor that the window and data-movement kernels take (runtime/lathe_kern.h). Nothing here
   depends on LLVM or CUDA: codegen/llvm and codegen/cuda both build on it. */
#ifndef LATHE_CG_KERNEL_H
#define LATHE_CG_KERNEL_H

#include "../ir/ir.h"
#include "../runtime/lathe_kern.h"

/* One kernel: the nodes that one function computes, a lone node or a fusion group (ir.h), and the buffers
   it touches. cg_kernel_of fills it from the memory plan; each backend emits its code
   (codegen/llvm/kernels.c, codegen/cuda/). */
enum { CG_MAX_MEMBERS = 128, CG_MAX_BUFS = 128 }; /* pass_fuse makes groups of at most 64 */
typedef struct CgKernel {
    const Graph *g;
    const Node *root;             /* the group's root, or the lone node */
    GroupKind kind;               /* GROUP_NONE for a lone node */
    const Node *anchor;           /* an epilogue group's (or a lone matmul's) anchor, else NULL */
    int nmembers;
    const Node *members[CG_MAX_MEMBERS]; /* in id order; a lone node is its own one member */
    bool materialized[CG_MAX_MEMBERS];   /* member i has a buffer that the kernel writes */
    /* distinct buffers, outputs (the materialized members') first, then the external inputs': two nodes
       share one entry when the plan puts them in the same bytes (an in-place update), so that the code sees
       one pointer where there is one buffer and every pointer can be noalias */
    int nbufs, nouts;
    const Node *bufs[CG_MAX_BUFS];
    /* an epilogue root = P - s * anchor updating P in place: one GEMM with alpha = -s, beta = 1 into P */
    bool sgd_gemm;
} CgKernel;

/* A size c * n^p: every dimension is a constant or N, and products of them stay monomials. The backends
   describe loop extents, strides and launch counts with it. */
typedef struct Sym {
    int64_t c;
    int p;
} Sym;

static inline Sym sym_dim(int64_t d) { return d == IR_DIM_N ? (Sym){1, 1} : (Sym){d, 0}; }
static inline Sym sym_mul(Sym a, Sym b) { return (Sym){a.c * b.c, a.p + b.p}; }
static inline bool sym_eq(Sym a, Sym b) { return a.c == b.c && (a.c == 0 || a.p == b.p); }
static inline bool sym_is_one(Sym a) { return a.c == 1 && a.p == 0; }

/* The element strides of a row-major tensor of shape s, innermost 1. */
void cg_contiguous_strides(const Shape *s, Sym *st);
/* The strides of an input of shape in read at the index of an output of shape out (numpy broadcasting: a
   missing or size-1 dim of in is read with stride 0). */
void cg_broadcast_strides(const Shape *in, const Shape *out, Sym *st);

/* Whether root starts a kernel of g in node order: a lone compute node, a group's root, or a CONST whose
   buffer something reads (a user that does not fold it, or an output). The graph entries run one kernel per
   such node, in node order. */
bool cg_is_kernel_root(const Graph *g, const Node *root);
/* The kernel that computes root (cg_is_kernel_root): its group's, or the lone node's. */
void cg_kernel_of(const Graph *g, const Node *root, CgKernel *k);
/* Whether the plan puts a and b in the same bytes (through reshapes' aliases). */
bool cg_same_buffer(const Node *a, const Node *b);
/* The index in k->bufs of x's buffer, or -1. */
int cg_buf_index(const CgKernel *k, const Node *x);
/* The index of x in k->members, or -1. */
int cg_member_index(const CgKernel *k, const Node *x);
static inline bool cg_is_member(const CgKernel *k, const Node *x) { return cg_member_index(k, x) >= 0; }
/* A CONST read by this node is folded into its code as an immediate (its buffer is not read). */
bool cg_folds_const(const Node *user);
/* The nodes computed pointwise inside a kernel's loop nest: the foldable ops, transposes and constants. */
bool cg_is_pointwise(const Node *n);
/* The key of kernel k, malloc'd (exits on out of memory): each member (materialized into which buffer),
   each of its inputs as a member, a buffer or a folded constant, with its type. Two kernels with one key
   compute the same thing on their buffers, so a backend emits their code once. */
char *cg_kernel_key(const CgKernel *k);

/* A copy that ends a graph entry, after its last kernel: into output argument dst_arg (>= 0) from src, an
   output computed in a buffer of its own; or (dst_arg < 0) into the PARAM or STATE leaf dst from src, its
   update, where it was not done in place. The bytes copied are those of sized. */
typedef struct CgCopy {
    int dst_arg;
    const Node *dst, *src, *sized;
} CgCopy;
/* g's copies in order, outputs first, into out when not NULL (room for ir_graph_args(g, NULL) + g->noutputs
   entries); returns how many. */
int cg_end_copies(const Graph *g, CgCopy *out);

/* The ops that run as one call of a runtime kernel (lathe_kern.h): convolution, pooling, slice, pad, concat,
   gather, scatter_add, random. */
bool cg_is_callout(Op op);
/* lathe_kern.h's descriptor of nd (shapes with N as -1, then the op's attributes) into d, which has room for
   CG_DESC_MAX entries; returns its length. */
enum { CG_DESC_MAX = 10 + 9 * IR_MAX_CONCAT + LATHE_KA_SLICE_COUNT };
int cg_build_desc(const Node *nd, int64_t *d);

#endif
