/* graph.c: the graph builder. ir_infer holds the shape rule of every primitive (the verifier runs the
   same rule again); ir_make appends a node after checking it; the wrappers and ir_sum_to build on it. */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

#define TYPE_BUF 256

Graph *ir_graph_new(Arena *a, const char *name)
{
    Graph *g = arena_alloc(a, sizeof(Graph));
    g->arena = a;
    g->name = arena_strdup(a, name ? name : "");
    return g;
}

/* ---------------------------------------------------------------- shape rules */

typedef struct Err {
    char *buf;
    size_t size;
} Err;

static bool fail(Err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(Err *e, const char *fmt, ...)
{
    if (e->size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->buf, e->size, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* Type strings for messages; a ring of buffers so that one message may show several. */
static const char *tstr(DType t, const Shape *s)
{
    static _Thread_local char ring[4][TYPE_BUF];
    static _Thread_local int next;
    char *b = ring[next++ & 3];
    return ir_type_str(t, s, b, TYPE_BUF);
}

static const char *ntype(const Node *n)
{
    return tstr(n->dtype, &n->shape);
}

static bool infer_leaf(Op op, const Attr *a, DType *dt, Shape *sh, Err *e)
{
    const char *name = ir_op_name(op);
    if (op != OP_CONST && (!a || !a->name))
        return fail(e, "%s: missing name", name);
    if (!a)
        return fail(e, "%s: missing attributes", name);
    if ((unsigned)a->dtype >= DT__COUNT)
        return fail(e, "%s: invalid dtype", name);
    if (!ir_shape_valid(&a->shape))
        return fail(e, "%s: invalid shape %s", name, tstr(a->dtype, &a->shape));
    *dt = a->dtype;
    *sh = a->shape;
    return true;
}

static bool infer_broadcast2(Op op, Node *x, Node *y, Shape *sh, Err *e)
{
    if (!ir_shape_broadcast(&x->shape, &y->shape, sh))
        return fail(e, "%s: cannot broadcast %s and %s", ir_op_name(op), ntype(x), ntype(y));
    return true;
}

static bool infer_reduce(Op op, Node *x, const Attr *a, Shape *sh, Err *e)
{
    const char *name = ir_op_name(op);
    if (a->axes == 0)
        return fail(e, "%s: no axes to reduce over in %s", name, ntype(x));
    if (x->shape.rank < 32 && (a->axes >> x->shape.rank) != 0)
        return fail(e, "%s: axes out of range for %s", name, ntype(x));
    Shape r = {0};
    for (int i = 0; i < x->shape.rank; i++) {
        if (a->axes & (1u << i)) {
            if (a->keepdim)
                r.dim[r.rank++] = 1;
        } else {
            r.dim[r.rank++] = x->shape.dim[i];
        }
    }
    *sh = r;
    return true;
}

static bool infer_matmul(Node *x, Node *y, const Attr *a, DType *dt, Shape *sh, Err *e)
{
    const Shape *p = &x->shape, *q = &y->shape;
    const char *ta = a->transpose_a ? ".T" : "", *tb = a->transpose_b ? ".T" : "";
    if (x->dtype != y->dtype)
        return fail(e, "matmul: dtypes differ: %s%s @ %s%s", ntype(x), ta, ntype(y), tb);
    if (!ir_dtype_is_float(x->dtype))
        return fail(e, "matmul: needs a float dtype: %s%s @ %s%s", ntype(x), ta, ntype(y), tb);
    if (p->rank < 2 || p->rank > 3 || q->rank < 2 || q->rank > 3)
        return fail(e, "matmul: operands must be of rank 2 or 3: %s%s @ %s%s", ntype(x), ta, ntype(y), tb);
    int ra = p->rank, rb = q->rank;
    int64_t m = a->transpose_a ? p->dim[ra - 1] : p->dim[ra - 2];
    int64_t ka = a->transpose_a ? p->dim[ra - 2] : p->dim[ra - 1];
    int64_t kb = a->transpose_b ? q->dim[rb - 1] : q->dim[rb - 2];
    int64_t n = a->transpose_b ? q->dim[rb - 2] : q->dim[rb - 1];
    if (ka != kb)
        return fail(e, "matmul: inner dimensions differ: %s%s @ %s%s", ntype(x), ta, ntype(y), tb);
    if (ra == 3 && rb == 3 && p->dim[0] != q->dim[0])
        return fail(e, "matmul: batch dimensions differ: %s%s @ %s%s", ntype(x), ta, ntype(y), tb);
    Shape r = {0};
    if (ra == 3 || rb == 3)
        r.dim[r.rank++] = ra == 3 ? p->dim[0] : q->dim[0];
    r.dim[r.rank++] = m;
    r.dim[r.rank++] = n;
    *dt = x->dtype;
    *sh = r;
    return true;
}

static bool infer_reshape(Node *x, const Attr *a, Shape *sh, Err *e)
{
    const Shape *t = &a->shape;
    if (!ir_shape_valid(t))
        return fail(e, "reshape: invalid target shape %s", tstr(x->dtype, t));
    /* Element counts are c * N^k; both c and k must agree, so N never hides inside a constant. */
    if (ir_shape_count_n(t) != ir_shape_count_n(&x->shape) ||
        ir_shape_numel_per_n(t) != ir_shape_numel_per_n(&x->shape))
        return fail(e, "reshape: cannot reshape %s to %s", ntype(x), tstr(x->dtype, t));
    *sh = *t;
    return true;
}

static bool infer_transpose(Node *x, const Attr *a, Shape *sh, Err *e)
{
    int rank = x->shape.rank;
    bool seen[IR_MAX_RANK] = {0};
    Shape r = {.rank = rank};
    for (int i = 0; i < rank; i++) {
        int p = a->perm[i];
        if (p < 0 || p >= rank || seen[p]) {
            char buf[64];
            size_t n = 0;
            buf[0] = '\0';
            for (int j = 0; j < rank && n < sizeof buf - 16; j++)
                n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%d", j ? "," : "", a->perm[j]);
            return fail(e, "transpose: perm [%s] is not a permutation of the dims of %s", buf, ntype(x));
        }
        seen[p] = true;
        r.dim[i] = x->shape.dim[p];
    }
    *sh = r;
    return true;
}

static bool infer_broadcast_to(Node *x, const Attr *a, Shape *sh, Err *e)
{
    Shape r;
    if (!ir_shape_valid(&a->shape))
        return fail(e, "broadcast: invalid target shape %s", tstr(x->dtype, &a->shape));
    if (!ir_shape_broadcast(&x->shape, &a->shape, &r) || !ir_shape_eq(&r, &a->shape))
        return fail(e, "broadcast: cannot broadcast %s to %s", ntype(x), tstr(x->dtype, &a->shape));
    *sh = r;
    return true;
}

static bool infer_one_hot(Node *x, const Attr *a, DType *dt, Shape *sh, Err *e)
{
    if (!ir_dtype_is_int(x->dtype))
        return fail(e, "one_hot: needs an integer input: %s", ntype(x));
    if (a->classes < 1)
        return fail(e, "one_hot: classes must be positive, not %lld", (long long)a->classes);
    if (x->shape.rank >= IR_MAX_RANK)
        return fail(e, "one_hot: rank of %s too large", ntype(x));
    if ((unsigned)a->dtype >= DT__COUNT)
        return fail(e, "one_hot: invalid dtype");
    Shape r = x->shape;
    r.dim[r.rank++] = a->classes;
    *dt = a->dtype;
    *sh = r;
    return true;
}

static bool infer(Op op, int nin, Node *const *in, const Attr *a, DType *dt, Shape *sh, Err *e)
{
    static const Attr none;
    const char *name = ir_op_name(op);
    if ((unsigned)op >= OP__COUNT)
        return fail(e, "unknown op %d", (int)op);
    if (ir_op_arity(op) >= 0 && nin != ir_op_arity(op))
        return fail(e, "%s: takes %d input%s, not %d", name, ir_op_arity(op), ir_op_arity(op) == 1 ? "" : "s",
                    nin);
    if (!a)
        a = &none;
    Node *x = nin > 0 ? in[0] : NULL, *y = nin > 1 ? in[1] : NULL;
    switch (ir_op_kind(op)) {
    case K_LEAF:
        return infer_leaf(op, a, dt, sh, e);
    case K_UNARY:
        if (op == OP_CAST) {
            if ((unsigned)a->dtype >= DT__COUNT)
                return fail(e, "cast: invalid dtype");
            *dt = a->dtype;
        } else {
            if (op != OP_NEG && op != OP_ABS && !ir_dtype_is_float(x->dtype))
                return fail(e, "%s: needs a float dtype, not %s", name, ntype(x));
            *dt = x->dtype;
        }
        *sh = x->shape;
        return true;
    case K_BINARY:
    case K_COMPARE:
        if (x->dtype != y->dtype)
            return fail(e, "%s: dtypes differ: %s and %s", name, ntype(x), ntype(y));
        *dt = ir_op_kind(op) == K_COMPARE ? DT_U8 : x->dtype;
        return infer_broadcast2(op, x, y, sh, e);
    case K_REDUCE:
        *dt = x->dtype;
        return infer_reduce(op, x, a, sh, e);
    case K_OTHER:
        break;
    }
    switch (op) {
    case OP_SELECT: {
        Node *c = in[0], *p = in[1], *q = in[2];
        Shape s1;
        if (c->dtype != DT_U8)
            return fail(e, "select: condition must be u8, not %s", ntype(c));
        if (p->dtype != q->dtype)
            return fail(e, "select: dtypes differ: %s and %s", ntype(p), ntype(q));
        if (!ir_shape_broadcast(&c->shape, &p->shape, &s1) || !ir_shape_broadcast(&s1, &q->shape, sh))
            return fail(e, "select: cannot broadcast %s, %s and %s", ntype(c), ntype(p), ntype(q));
        *dt = p->dtype;
        return true;
    }
    case OP_ARGMAX: {
        if (a->axis < 0 || a->axis >= x->shape.rank)
            return fail(e, "argmax: axis %d out of range for %s", a->axis, ntype(x));
        Shape r = {0};
        for (int i = 0; i < x->shape.rank; i++) {
            if (i != a->axis)
                r.dim[r.rank++] = x->shape.dim[i];
            else if (a->keepdim)
                r.dim[r.rank++] = 1;
        }
        *dt = DT_I64;
        *sh = r;
        return true;
    }
    case OP_MATMUL:
        return infer_matmul(x, y, a, dt, sh, e);
    case OP_RESHAPE:
        *dt = x->dtype;
        return infer_reshape(x, a, sh, e);
    case OP_TRANSPOSE:
        *dt = x->dtype;
        return infer_transpose(x, a, sh, e);
    case OP_BROADCAST:
        *dt = x->dtype;
        return infer_broadcast_to(x, a, sh, e);
    case OP_ONE_HOT:
        return infer_one_hot(x, a, dt, sh, e);
    default:
        LATHE_UNREACHABLE("infer: an op of kind K_OTHER without a shape rule");
    }
}

bool ir_infer(Op op, int ninputs, Node *const *inputs, const Attr *attr, DType *dtype, Shape *shape,
              char *err, size_t errsize)
{
    Err e = {err, errsize};
    if (errsize)
        err[0] = '\0';
    for (int i = 0; i < ninputs; i++)
        if (!inputs[i])
            return fail(&e, "%s: input %d is missing", ir_op_name(op), i);
    DType dt = DT_F32;
    Shape sh = {0};
    if (!infer(op, ninputs, inputs, attr, &dt, &sh, &e))
        return false;
    if (ir_shape_numel_per_n(&sh) < 0)
        return fail(&e, "%s: result has too many elements", ir_op_name(op));
    *dtype = dt;
    *shape = sh;
    return true;
}

/* Keeps only the fields op reads, so that equal nodes have equal attributes (for printing and cse). */
static Attr attr_for(Graph *g, Op op, const Attr *a, int rank)
{
    Attr r = {0};
    if (!a)
        return r;
    switch (op) {
    case OP_PARAM: r.frozen = a->frozen; /* fall through */
    case OP_INPUT:
    case OP_STATE:
        r.name = a->name ? arena_strdup(g->arena, a->name) : NULL;
        r.dtype = a->dtype;
        r.shape = a->shape;
        break;
    case OP_CONST:
        r.value = a->value;
        r.npow = a->npow;
        r.dtype = a->dtype;
        r.shape = a->shape;
        break;
    case OP_CAST: r.dtype = a->dtype; break;
    case OP_REDUCE_SUM:
    case OP_REDUCE_MEAN:
    case OP_REDUCE_MAX:
        r.axes = a->axes;
        r.keepdim = a->keepdim;
        break;
    case OP_ARGMAX:
        r.axis = a->axis;
        r.keepdim = a->keepdim;
        break;
    case OP_MATMUL:
        r.transpose_a = a->transpose_a;
        r.transpose_b = a->transpose_b;
        break;
    case OP_RESHAPE:
    case OP_BROADCAST: r.shape = a->shape; break;
    case OP_TRANSPOSE:
        for (int i = 0; i < rank && i < IR_MAX_RANK; i++)
            r.perm[i] = a->perm[i];
        break;
    case OP_ONE_HOT:
        r.classes = a->classes;
        r.dtype = a->dtype;
        break;
    default: break;
    }
    return r;
}

static void append(Graph *g, Node *n)
{
    if (g->nnodes == g->cap) {
        int cap = g->cap ? g->cap * 2 : 64;
        g->nodes = arena_realloc(g->arena, g->nodes, sizeof(Node *) * (size_t)g->cap, sizeof(Node *) * (size_t)cap);
        g->cap = cap;
    }
    n->id = g->nnodes;
    g->nodes[g->nnodes++] = n;
}

Node *ir_make(Graph *g, Diag *d, Loc loc, Op op, int ninputs, Node *const *inputs, const Attr *attr)
{
    for (int i = 0; i < ninputs; i++)
        if (!inputs[i])
            return NULL;
    char err[512];
    DType dt = DT_F32;
    Shape sh = {0};
    if (!ir_infer(op, ninputs, inputs, attr, &dt, &sh, err, sizeof err)) {
        diag_error(d, loc, "%s", err);
        return NULL;
    }
    Node *n = arena_alloc(g->arena, sizeof(Node));
    n->op = op;
    n->dtype = dt;
    n->shape = sh;
    n->ninputs = ninputs;
    if (ninputs > 0) {
        n->inputs = arena_alloc(g->arena, sizeof(Node *) * (size_t)ninputs);
        memcpy(n->inputs, inputs, sizeof(Node *) * (size_t)ninputs);
    }
    n->attr = attr_for(g, op, attr, ninputs > 0 ? inputs[0]->shape.rank : 0);
    n->loc = loc;
    n->mem.kind = MEM_NONE;
    n->group = -1;
    append(g, n);
    return n;
}

/* ---------------------------------------------------------------- wrappers */

static Node *leaf(Graph *g, Loc loc, Op op, const char *name, DType t, Shape s)
{
    Attr a = {.name = name, .dtype = t, .shape = s};
    return ir_make(g, NULL, loc, op, 0, NULL, &a);
}

Node *ir_input(Graph *g, Loc loc, const char *name, DType t, Shape s)
{
    return leaf(g, loc, OP_INPUT, name, t, s);
}

Node *ir_param(Graph *g, Loc loc, const char *name, DType t, Shape s)
{
    return leaf(g, loc, OP_PARAM, name, t, s);
}

Node *ir_state(Graph *g, Loc loc, const char *name, DType t, Shape s)
{
    return leaf(g, loc, OP_STATE, name, t, s);
}

Node *ir_const_npow(Graph *g, Loc loc, DType t, Shape s, double value, int npow)
{
    Attr a = {.value = value, .npow = npow, .dtype = t, .shape = s};
    return ir_make(g, NULL, loc, OP_CONST, 0, NULL, &a);
}

Node *ir_const(Graph *g, Loc loc, DType t, Shape s, double value)
{
    return ir_const_npow(g, loc, t, s, value, 0);
}

Node *ir_unary(Graph *g, Diag *d, Loc loc, Op op, Node *x)
{
    return ir_make(g, d, loc, op, 1, &x, NULL);
}

Node *ir_binary(Graph *g, Diag *d, Loc loc, Op op, Node *a, Node *b)
{
    Node *in[2] = {a, b};
    return ir_make(g, d, loc, op, 2, in, NULL);
}

Node *ir_select(Graph *g, Diag *d, Loc loc, Node *cond, Node *a, Node *b)
{
    Node *in[3] = {cond, a, b};
    return ir_make(g, d, loc, OP_SELECT, 3, in, NULL);
}

Node *ir_cast(Graph *g, Loc loc, Node *x, DType t)
{
    Attr a = {.dtype = t};
    return ir_make(g, NULL, loc, OP_CAST, 1, &x, &a);
}

Node *ir_reduce(Graph *g, Diag *d, Loc loc, Op op, Node *x, uint32_t axes, bool keepdim)
{
    Attr a = {.axes = axes, .keepdim = keepdim};
    return ir_make(g, d, loc, op, 1, &x, &a);
}

Node *ir_argmax(Graph *g, Diag *d, Loc loc, Node *x, int axis, bool keepdim)
{
    Attr a = {.axis = axis, .keepdim = keepdim};
    return ir_make(g, d, loc, OP_ARGMAX, 1, &x, &a);
}

Node *ir_matmul(Graph *g, Diag *d, Loc loc, Node *a, Node *b, bool transpose_a, bool transpose_b)
{
    Node *in[2] = {a, b};
    Attr at = {.transpose_a = transpose_a, .transpose_b = transpose_b};
    return ir_make(g, d, loc, OP_MATMUL, 2, in, &at);
}

Node *ir_reshape(Graph *g, Diag *d, Loc loc, Node *x, Shape s)
{
    Attr a = {.shape = s};
    return ir_make(g, d, loc, OP_RESHAPE, 1, &x, &a);
}

Node *ir_transpose(Graph *g, Diag *d, Loc loc, Node *x, const int *perm)
{
    Attr a = {0};
    int rank = x ? x->shape.rank : 0;
    for (int i = 0; i < rank; i++)
        a.perm[i] = perm[i];
    return ir_make(g, d, loc, OP_TRANSPOSE, 1, &x, &a);
}

Node *ir_broadcast(Graph *g, Diag *d, Loc loc, Node *x, Shape s)
{
    Attr a = {.shape = s};
    return ir_make(g, d, loc, OP_BROADCAST, 1, &x, &a);
}

Node *ir_one_hot(Graph *g, Diag *d, Loc loc, Node *x, int64_t classes, DType t)
{
    Attr a = {.classes = classes, .dtype = t};
    return ir_make(g, d, loc, OP_ONE_HOT, 1, &x, &a);
}

/* The adjoint of broadcasting: sum over the leading dims that broadcasting added and over the dims it
   stretched from 1 (keeping them as 1), then reshape to s to drop the added leading dims. */
Node *ir_sum_to(Graph *g, Diag *d, Loc loc, Node *x, Shape s)
{
    if (!x)
        return NULL;
    if (ir_shape_eq(&x->shape, &s))
        return x;
    int r = x->shape.rank, lead = r - s.rank;
    uint32_t axes = 0;
    for (int i = 0; i < r; i++) {
        if (i < lead || (s.dim[i - lead] == 1 && x->shape.dim[i] != 1))
            axes |= 1u << i;
    }
    Node *y = x;
    if (axes)
        y = ir_reduce(g, d, loc, OP_REDUCE_SUM, x, axes, true);
    if (y && !ir_shape_eq(&y->shape, &s))
        y = ir_reshape(g, d, loc, y, s);
    return y;
}

void ir_add_output(Graph *g, const char *name, Node *value, bool update)
{
    if (g->noutputs == g->outputs_cap) {
        int cap = g->outputs_cap ? g->outputs_cap * 2 : 8;
        g->outputs = arena_realloc(g->arena, g->outputs, sizeof(Output) * (size_t)g->outputs_cap,
                                   sizeof(Output) * (size_t)cap);
        g->outputs_cap = cap;
    }
    Output *o = &g->outputs[g->noutputs++];
    o->name = arena_strdup(g->arena, name);
    o->value = value;
    o->update = update;
}

Node *ir_find_leaf(const Graph *g, Op op, const char *name)
{
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        if (n && n->op == op && n->attr.name && strcmp(n->attr.name, name) == 0)
            return n;
    }
    return NULL;
}

void ir_renumber(Graph *g)
{
    int k = 0;
    for (int i = 0; i < g->nnodes; i++) {
        if (!g->nodes[i])
            continue; /* a pass may have cleared the slots of removed nodes */
        g->nodes[k] = g->nodes[i];
        g->nodes[k]->id = k;
        k++;
    }
    g->nnodes = k;
}

int ir_graph_args(const Graph *g, GraphArg *out)
{
    int k = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        ArgRole role;
        if (n->op == OP_INPUT)
            role = ARG_INPUT;
        else if (n->op == OP_PARAM)
            role = ARG_PARAM;
        else if (n->op == OP_STATE)
            role = ARG_STATE;
        else
            continue;
        if (out)
            out[k] = (GraphArg){n->attr.name, role, n};
        k++;
    }
    for (int i = 0; i < g->noutputs; i++) {
        if (g->outputs[i].update)
            continue;
        if (out)
            out[k] = (GraphArg){g->outputs[i].name, ARG_OUTPUT, g->outputs[i].value};
        k++;
    }
    return k;
}
