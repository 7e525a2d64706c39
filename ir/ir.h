/* ir.h: the interface of Lathe's IR and of what every stage of the compiler shares: arenas, source
   locations and diagnostics, dtypes and shapes, the graph of tensor operations with its builder, verifier,
   text printer and parser, the reference interpreter, and the Program that the frontend hands to the passes
   and the code generators. Folders other than ir/ include this header only. */
#ifndef LATHE_IR_H
#define LATHE_IR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h> /* abort, for LATHE_UNREACHABLE */

#define LATHE_VERSION "0.1.0"

/* ---------------------------------------------------------------- arena (ir/arena.c)
   All memory of one compilation (AST, IR, strings) comes from one arena, released at once. Allocation
   failure prints a message and exits: the compiler cannot go on without memory. */
typedef struct Arena Arena;
Arena *arena_new(void);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t size);            /* zeroed, aligned for any type */
void *arena_realloc(Arena *a, void *p, size_t old_size, size_t new_size);
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checked size arithmetic: returns true on overflow (then *out is 0), false and the product otherwise. */
bool ir_mul_overflows(int64_t a, int64_t b, int64_t *out);

/* ---------------------------------------------------------------- locations and diagnostics (ir/diag.c) */
typedef struct Loc {
    const char *file; /* NULL: no location */
    int line, col;    /* 1-based */
} Loc;

/* A Diag collects errors of one stage. Each error prints as clang does:
       file:line:col: error: message
           source line
                ^
   The source line and caret are printed when the file's text was registered with diag_add_source.
   The first error is also kept (message and location) so that tests can check it. */
typedef struct Diag Diag;
Diag *diag_new(FILE *out); /* out may be NULL: record only */
void diag_free(Diag *d);
void diag_add_source(Diag *d, const char *file, const char *text, size_t len);
/* Passing d == NULL to diag_error/diag_verror means the caller promised no error can happen: an error then
   aborts as an internal error (the builder wrappers without a Diag rely on this). */
void diag_error(Diag *d, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_note(Diag *d, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_verror(Diag *d, Loc loc, const char *fmt, va_list ap);
int diag_error_count(const Diag *d);
const char *diag_first_message(const Diag *d); /* "" when none */
Loc diag_first_loc(const Diag *d);

#define LATHE_UNREACHABLE(msg)                                                                          \
    do {                                                                                                \
        fprintf(stderr, "%s:%d: internal error: %s\n", __FILE__, __LINE__, msg);                        \
        abort();                                                                                        \
    } while (0)

/* ---------------------------------------------------------------- dtypes and shapes (ir/types.c) */
typedef enum { DT_F32, DT_F64, DT_I32, DT_I64, DT_U8, DT__COUNT } DType;

const char *ir_dtype_name(DType t);           /* "f32" ... */
bool ir_dtype_parse(const char *s, DType *out);
size_t ir_dtype_size(DType t);
bool ir_dtype_is_float(DType t);
bool ir_dtype_is_int(DType t); /* i32, i64, u8 */

#define IR_MAX_RANK 8
#define IR_DIM_N (-1) /* the symbolic batch dimension, bound at run time */

/* Every dimension is a constant >= 0 or IR_DIM_N. Element counts are therefore c or c*N. */
typedef struct Shape {
    int rank;
    int64_t dim[IR_MAX_RANK];
} Shape;

Shape ir_shape(int rank, const int64_t *dims);
Shape ir_shape_scalar(void);
bool ir_shape_eq(const Shape *a, const Shape *b);
bool ir_shape_has_n(const Shape *s);
int ir_shape_count_n(const Shape *s);         /* how many dims are N */
/* rank in 0..IR_MAX_RANK, dims >= 0 or IR_DIM_N, constant product fits int64 */
bool ir_shape_valid(const Shape *s);
int64_t ir_shape_numel_per_n(const Shape *s);      /* product of the constant dims; -1 on overflow */
int64_t ir_shape_numel(const Shape *s, int64_t n); /* with N bound to n; -1 on overflow */
/* numpy broadcasting; N broadcasts with N and 1 only. false when incompatible. */
bool ir_shape_broadcast(const Shape *a, const Shape *b, Shape *out);
/* "f32[N,512]" into buf; returns buf */
char *ir_type_str(DType t, const Shape *s, char *buf, size_t size);
char *ir_shape_str(const Shape *s, char *buf, size_t size); /* "[N,512]" */

/* ---------------------------------------------------------------- ops (ir/ops.def) */
typedef enum {
#define OP(e, name, arity, kind) OP_##e,
#include "ops.def"
#undef OP
    OP__COUNT
} Op;

typedef enum { K_LEAF, K_UNARY, K_BINARY, K_COMPARE, K_REDUCE, K_OTHER } OpKind;

const char *ir_op_name(Op op);
int ir_op_arity(Op op);
OpKind ir_op_kind(Op op);
bool ir_op_parse(const char *s, Op *out);

/* Attributes: one struct for all ops; each op reads the fields its ops.def comment names. */
typedef struct Attr {
    const char *name;          /* INPUT, PARAM, STATE */
    bool frozen;               /* PARAM: no gradient, no update */
    double value;              /* CONST: the value is value * N^npow (npow 0: a plain constant; -1 for the
                                  1/N of a mean's gradient over the batch) */
    int npow;
    DType dtype;               /* CAST, ONE_HOT: the result dtype */
    Shape shape;               /* RESHAPE, BROADCAST: the result shape */
    uint32_t axes;             /* REDUCE_*: bit i set: reduce over dim i */
    bool keepdim;              /* REDUCE_*, ARGMAX */
    int axis;                  /* ARGMAX */
    int perm[IR_MAX_RANK];     /* TRANSPOSE */
    bool transpose_a, transpose_b; /* MATMUL */
    int64_t classes;           /* ONE_HOT */
    /* the layers issue's ops (see ops.def) */
    int64_t start[IR_MAX_RANK], step[IR_MAX_RANK]; /* SLICE, PAD */
    int window[2], stride[2], pad[2], dilation[2]; /* CONV2D*, *POOL2D*: (h, w) */
    int groups;                /* CONV2D* */
    bool ceil_mode, count_include_pad; /* *POOL2D* */
    uint32_t stream;           /* RANDOM: which random stream of the run (one per RANDOM node) */
} Attr;

#define IR_MAX_CONCAT 16 /* inputs of one CONCAT; the frontend chains longer lists */

/* Where a node's value lives in a compiled graph; set by the memplan pass. */
typedef enum {
    MEM_NONE,  /* not planned yet */
    MEM_ARG,   /* an argument of the graph entry: args[arg] (inputs, params, state, outputs) */
    MEM_ARENA, /* arena + offset_c + offset_n * N bytes */
    MEM_ALIAS, /* the same bytes as inputs[0] (a reshape) */
    MEM_FUSED, /* no buffer: a fusion group member computed inside its group's kernel and read by no one else */
} MemKind;

typedef struct MemLoc {
    MemKind kind;
    int arg;
    int64_t offset_c, offset_n;
} MemLoc;

typedef struct Node Node;
struct Node {
    int id;        /* index in Graph.nodes; printed as %id */
    Op op;
    DType dtype;
    Shape shape;
    int ninputs;
    Node **inputs;
    Attr attr;
    Loc loc;       /* the model-file location that produced the node */
    MemLoc mem;
    int group;     /* the id of the root of n's fusion group (see "fusion groups" below); -1 when none */
    void *aux;     /* scratch for a pass; each pass clears what it uses */
};

/* A graph output. An update output writes its value back into the PARAM or STATE of the same name, in
   place, at the end of the step (the optimizer's new parameters); a plain output is returned to the caller. */
typedef struct Output {
    const char *name;
    Node *value;
    bool update;
} Output;

/* ---------------------------------------------------------------- recipe values
   The values of a train block (data sources, batch, optimizer, classes, ...), kept as written so that the
   compiler checks them and the runtime interprets them: numbers, strings, booleans, identifiers, lists and
   calls with positional and keyword arguments. */
typedef enum { RV_NUM, RV_STR, RV_BOOL, RV_IDENT, RV_LIST, RV_CALL, RV_NONE } RValKind;

typedef struct RVal RVal;
struct RVal {
    RValKind kind;
    double num;        /* RV_NUM (and RV_BOOL: 0 or 1) */
    bool is_int;       /* RV_NUM written without a fraction or exponent, or folded to an integer */
    const char *str;   /* RV_STR text, RV_IDENT name, RV_CALL callee */
    int nitems;        /* RV_LIST items; RV_CALL arguments */
    RVal **items;
    const char **keys; /* RV_CALL: keyword of each argument, NULL for a positional one */
    Loc loc;
};

typedef struct RecipeEntry {
    const char *key;
    RVal *value;
    Loc loc;
} RecipeEntry;

/* RV_CALL helpers: the keyword argument `key` (or positional argument `pos` when pos >= 0), or NULL. */
const RVal *rval_arg(const RVal *call, const char *key, int pos);

/* ---------------------------------------------------------------- graphs (ir/graph.c) */
typedef struct Graph {
    Arena *arena;
    const char *name;  /* "train", "eval", "predict" */
    Node **nodes;      /* in a topological order: every input precedes its users */
    int nnodes, cap;
    Output *outputs;
    int noutputs, outputs_cap;
    const RVal *optimizer; /* train graphs: the recipe's optimizer call, read by pass_optimizer */
} Graph;

Graph *ir_graph_new(Arena *a, const char *name);

/* The one node constructor: checks the inputs against the op's shape rule, computes the result dtype and
   shape, appends the node and returns it. On a mismatch it reports through d at loc, naming the op and the
   shapes, and returns NULL. attr may be NULL for ops without attributes.
   When an input is NULL (an earlier failed build) it returns NULL without a new message, so that builds
   chain. d NULL: a failure is an internal error (abort). Leaves (INPUT, PARAM, STATE, CONST) take their
   dtype and shape from attr->dtype and attr->shape. The node keeps only the attribute fields its op reads
   (the rest zeroed), with attr->name copied into g->arena. */
Node *ir_make(Graph *g, Diag *d, Loc loc, Op op, int ninputs, Node *const *inputs, const Attr *attr);
/* The shape rule alone: the result dtype and shape of op over inputs, or false with the message
   ("matmul: inner dimensions differ: f32[N,784] @ f32[512,10]") in err. */
bool ir_infer(Op op, int ninputs, Node *const *inputs, const Attr *attr, DType *dtype, Shape *shape,
              char *err, size_t errsize);

/* Convenience wrappers over ir_make. */
Node *ir_input(Graph *g, Loc loc, const char *name, DType t, Shape s);
Node *ir_param(Graph *g, Loc loc, const char *name, DType t, Shape s);
Node *ir_state(Graph *g, Loc loc, const char *name, DType t, Shape s);
Node *ir_const(Graph *g, Loc loc, DType t, Shape s, double value);
Node *ir_const_npow(Graph *g, Loc loc, DType t, Shape s, double value, int npow); /* value * N^npow */
Node *ir_unary(Graph *g, Diag *d, Loc loc, Op op, Node *x);
Node *ir_binary(Graph *g, Diag *d, Loc loc, Op op, Node *a, Node *b);
Node *ir_select(Graph *g, Diag *d, Loc loc, Node *cond, Node *a, Node *b);
Node *ir_cast(Graph *g, Loc loc, Node *x, DType t);
Node *ir_reduce(Graph *g, Diag *d, Loc loc, Op op, Node *x, uint32_t axes, bool keepdim);
Node *ir_argmax(Graph *g, Diag *d, Loc loc, Node *x, int axis, bool keepdim);
Node *ir_matmul(Graph *g, Diag *d, Loc loc, Node *a, Node *b, bool transpose_a, bool transpose_b);
Node *ir_reshape(Graph *g, Diag *d, Loc loc, Node *x, Shape s);
Node *ir_transpose(Graph *g, Diag *d, Loc loc, Node *x, const int *perm);
Node *ir_broadcast(Graph *g, Diag *d, Loc loc, Node *x, Shape s);
Node *ir_one_hot(Graph *g, Diag *d, Loc loc, Node *x, int64_t classes, DType t);
/* The layers issue's ops; attributes as ops.def says. The window ops take a filled Attr (window, stride, pad,
   dilation, groups, ceil_mode, count_include_pad; attr->shape only for the _BWD ops and adaptive pooling). */
Node *ir_argmin(Graph *g, Diag *d, Loc loc, Node *x, int axis, bool keepdim);
Node *ir_iota(Graph *g, Loc loc, DType t, Shape s, int axis);
Node *ir_random(Graph *g, Diag *d, Loc loc, Node *seed, Node *step, Shape s, uint32_t stream);
Node *ir_window(Graph *g, Diag *d, Loc loc, Op op, int ninputs, Node *const *inputs, const Attr *attr);
bool ir_op_is_window(Op op); /* CONV2D*, *POOL2D* (adaptive included) */
Node *ir_slice(Graph *g, Diag *d, Loc loc, Node *x, const int64_t *start, const int64_t *step, Shape s);
Node *ir_pad(Graph *g, Diag *d, Loc loc, Node *x, const int64_t *start, const int64_t *step, Shape s, double value);
Node *ir_concat(Graph *g, Diag *d, Loc loc, int n, Node *const *xs, int axis);
Node *ir_gather(Graph *g, Diag *d, Loc loc, Node *x, Node *index, int axis);
Node *ir_scatter_add(Graph *g, Diag *d, Loc loc, Node *index, Node *src, int axis, Shape s);
/* Sum x over the dims that broadcasting added or stretched so that the result has shape s (for VJPs). */
Node *ir_sum_to(Graph *g, Diag *d, Loc loc, Node *x, Shape s);

void ir_add_output(Graph *g, const char *name, Node *value, bool update);

/* The arguments of a compiled graph's entry, in the order of its args array: every INPUT, PARAM and STATE
   node in node order, then every plain (not update) output in output order. out may be NULL to count. */
typedef enum { ARG_INPUT, ARG_PARAM, ARG_STATE, ARG_OUTPUT } ArgRole;
typedef struct GraphArg {
    const char *name;
    ArgRole role;
    const Node *node; /* the leaf, or the output's value */
} GraphArg;
int ir_graph_args(const Graph *g, GraphArg *out);
const char *ir_arg_role_name(ArgRole r); /* "input", "param", "state", "output" */
Node *ir_find_leaf(const Graph *g, Op op, const char *name); /* the INPUT/PARAM/STATE named so, or NULL */
/* Whether a compiled graph runs code for n: leaves are arguments or constants and a reshape is a view of
   its input; everything else is a kernel. (Constants get a fill kernel only where a user needs the buffer.) */
static inline bool ir_is_kernel(const Node *n) {
    return ir_op_kind(n->op) != K_LEAF && n->op != OP_RESHAPE;
}
/* Whether n is the constant v everywhere (a CONST whose value does not depend on N, unless it is 0). */
static inline bool ir_is_const(const Node *n, double v) {
    return n->op == OP_CONST && n->attr.value == v && (v == 0 || n->attr.npow == 0);
}

/* ---------------------------------------------------------------- fusion groups
   Set by pass_fuse; printed as " in %R" after a member's type, and read back by the parser. A group is a set
   of nodes that one kernel computes, at the position of its root R: the member with the highest id
   (R->group == R->id). Every member is a kernel node (ir_is_kernel) or a CONST. A group has one domain, the
   shape its loop nest runs over, and is of one of three kinds:
     - elementwise: every member is pointwise: elementwise (unary, binary, compare, select, cast), a CONST,
       or a BROADCAST or TRANSPOSE whose input is outside the group (read with strides); all of the root's
       shape, the domain.
     - reduce: the root is a REDUCE_* (or ARGMAX/ARGMIN); every other member is pointwise of the root's
       input's shape, the domain.
     - epilogue: exactly one member is an anchor (ir_op_is_anchor: MATMUL, CONV2D, CONV2D_BWD_INPUT,
       CONV2D_BWD_WEIGHT), every other one is pointwise of the anchor's shape, the domain, and reads the
       anchor's value directly or through members.
   A member that a node outside the group or a graph output reads is materialized: it has a buffer that the
   group's kernel writes (the anchor is always materialized); every other member is MEM_FUSED. Every reader
   outside the group of a member comes after the root. ir_verify checks these rules. */
typedef enum { GROUP_NONE, GROUP_ELEMENTWISE, GROUP_REDUCE, GROUP_EPILOGUE } GroupKind;
bool ir_op_is_anchor(Op op);
/* The kind of the group whose root is root; GROUP_NONE when root is not a root. */
GroupKind ir_group_kind(const Graph *g, const Node *root);
/* The anchor of an epilogue group, else NULL. */
const Node *ir_group_anchor(const Graph *g, const Node *root);
/* Whether n's value must have a buffer: n is in no group, or is the root, or something outside its group
   (or an output) reads it. */
bool ir_group_materialized(const Graph *g, const Node *n);

/* Renumbers ids after a pass removed or reordered nodes. */
void ir_renumber(Graph *g);

/* Checks the invariants (ids, topological order, arity, shapes against the shape rule, unique leaf names,
   outputs). Reports the first broken one through d; returns false then. */
bool ir_verify(const Graph *g, Diag *d);

/* ---------------------------------------------------------------- text IR (ir/print.c, ir/parse.c)
       graph train {
         %0 = input "x" : f32[N,1,28,28]                      # fashion_mlp.lathe:9:13
         %3 = matmul %2, %1 {transpose_b} : f32[N,512]       # fashion_mlp.lathe:9:17
         output "loss" = %20
         update "fc1.weight" = %31
       }
   A file may hold several graphs. Printing and parsing round-trip exactly. */
void ir_print(FILE *out, const Graph *g);
void ir_print_dot(FILE *out, const Graph *g);
void ir_print_node(FILE *out, const Node *n); /* one node's line, without indent or newline */
/* ir_print calling note(out, g, n), when not NULL, before each node's line: a hook for whole comment lines
   (pass_fuse_note prints the fusion group summaries), which the parser skips. */
typedef void (*IrNoteFn)(FILE *out, const Graph *g, const Node *n);
void ir_print_noted(FILE *out, const Graph *g, IrNoteFn note);
void ir_print_rval(FILE *out, const RVal *v);   /* SGD(lr = 0.001), as the text IR writes it */
/* Parses every graph of a text; returns their count (0 on error, reported through d) and the graphs. */
int ir_parse(Arena *a, Diag *d, const char *file, const char *text, Graph ***out);

/* ---------------------------------------------------------------- the work of a node (ir/cost.c)
   What `lathe ir --stats` sums and a profile divides by its time: floating-point operations (a multiply-add
   counts 2; a comparison, exp or division 1 each) and the bytes a kernel computing nd alone reads from its
   inputs and writes to its output, at batch n. Leaves (params, inputs, constants) and views cost 0. */
int64_t ir_node_flops(const Node *nd, int64_t n);
int64_t ir_node_bytes(const Node *nd, int64_t n);

/* ---------------------------------------------------------------- the reference interpreter (ir/interp.c)
   Runs a graph in double precision whatever the dtypes (integers are exact in a double up to 2^53), one
   primitive at a time, for tests: finite differences, and the generated code checked against it. */
typedef struct ITensor {
    Shape shape;  /* concrete: no IR_DIM_N */
    double *data; /* row-major */
} ITensor;

typedef struct IBinding {
    const char *name; /* an INPUT, PARAM or STATE name */
    ITensor value;
} IBinding;

/* Evaluates g with N bound to n. Returns an array of g->noutputs tensors (allocated in a), or NULL with the
   reason reported through d (a missing binding, a binding of the wrong shape). n < 0: N is taken from the
   first binding of a leaf with an N dim, and every other binding must agree. */
ITensor *ir_interp(Arena *a, const Graph *g, int64_t n, const IBinding *bind, int nbind, Diag *d);

/* ---------------------------------------------------------------- the program
   What the frontend produces from a model file: the parameters with their initialisers, the graphs and the
   train block's recipe. */
typedef enum { INIT_ZEROS, INIT_ONES, INIT_CONST, INIT_UNIFORM, INIT_NORMAL } InitKind;

typedef struct InitSpec {
    InitKind kind;
    double a, b; /* CONST: a; UNIFORM: [a, b); NORMAL: mean a, std b */
} InitSpec;

typedef struct ParamInfo {
    const char *name; /* PyTorch's state_dict name: "linear_relu_stack.0.weight" */
    DType dtype;
    Shape shape;      /* constant dims only */
    InitSpec init;
    bool trainable;   /* false: frozen (`freeze`), an integer dtype, or a buffer */
    bool buffer;      /* a non-trainable buffer (BatchNorm's running_mean): a frozen PARAM node that the train
                         graph may rewrite through an update output of the same name */
    Loc loc;
} ParamInfo;

typedef struct Program {
    Arena *arena;
    const char *model_name;  /* "NeuralNetwork" */
    const char *source_file; /* the model file as given */
    const char *source_text;
    ParamInfo *params;
    int nparams;
    /* Batch inputs in order (x, label); each also an INPUT of the graphs with the same name. */
    const char **input_names;
    int ninputs;
    /* As the frontend builds them: grads: batch inputs, params -> "loss", "logits", the in-graph metrics
       "metric.NAME" and the buffers' updates (autodiff then adds the gradients "grad.NAME", which the
       runtime's optimizer applies); train: the same graph again, which the optimizer pass turns into one
       fused step (the INPUT "lr" and the parameters' updates), built only for an optimizer that pass
       lowers (plain SGD), else NULL; eval: batch inputs, params -> "loss" (the batch mean), "logits", the
       metrics; predict: "x", params -> "logits". */
    Graph *train, *grads, *eval, *predict;
    Node *train_logits; /* the forward's result in the train graph (not an output), for tests that probe it */
    RecipeEntry *recipe;
    int nrecipe;
} Program;

const RVal *program_recipe(const Program *p, const char *key); /* NULL when the key is absent */
/* The program's graphs that exist, in the order train, grads, eval, predict; returns how many (at most 4). */
int program_graphs(const Program *p, Graph **out);
/* The graph that trains: the fused train graph where there is one, else grads. */
Graph *program_train_graph(const Program *p);

#endif
