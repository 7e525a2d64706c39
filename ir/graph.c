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

/* Rank >= 2 each; the dims before the last two are batch dims, broadcast by numpy rules. */
static bool infer_matmul(Node *x, Node *y, const Attr *a, DType *dt, Shape *sh, Err *e)
{
    const Shape *p = &x->shape, *q = &y->shape;
    const char *ta = a->transpose_a ? ".T" : "", *tb = a->transpose_b ? ".T" : "";
    if (x->dtype != y->dtype)
        return fail(e, "matmul: dtypes differ: %s%s @ %s%s", ntype(x), ta, ntype(y), tb);
    if (!ir_dtype_is_float(x->dtype))
        return fail(e, "matmul: needs a float dtype: %s%s @ %s%s", ntype(x), ta, ntype(y), tb);
    if (p->rank < 2 || q->rank < 2)
        return fail(e, "matmul: operands must be of rank 2 or more: %s%s @ %s%s", ntype(x), ta, ntype(y), tb);
    int ra = p->rank, rb = q->rank;
    int64_t m = a->transpose_a ? p->dim[ra - 1] : p->dim[ra - 2];
    int64_t ka = a->transpose_a ? p->dim[ra - 2] : p->dim[ra - 1];
    int64_t kb = a->transpose_b ? q->dim[rb - 1] : q->dim[rb - 2];
    int64_t n = a->transpose_b ? q->dim[rb - 2] : q->dim[rb - 1];
    if (ka != kb)
        return fail(e, "matmul: inner dimensions differ: %s%s @ %s%s", ntype(x), ta, ntype(y), tb);
    Shape pb = ir_shape(ra - 2, p->dim), qb = ir_shape(rb - 2, q->dim), r;
    if (!ir_shape_broadcast(&pb, &qb, &r))
        return fail(e, "matmul: batch dimensions differ: %s%s @ %s%s", ntype(x), ta, ntype(y), tb);
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

/* ---------------------------------------------------------------- the layers issue's shape rules */

/* "[a,b]" for the (h, w) pairs of window attributes in messages */
static const char *pair(const int *v)
{
    static _Thread_local char ring[4][32];
    static _Thread_local int next;
    char *b = ring[next++ & 3];
    snprintf(b, 32, "[%d,%d]", v[0], v[1]);
    return b;
}

static bool infer_argmin_max(Op op, Node *x, const Attr *a, DType *dt, Shape *sh, Err *e)
{
    if (a->axis < 0 || a->axis >= x->shape.rank)
        return fail(e, "%s: axis %d out of range for %s", ir_op_name(op), a->axis, ntype(x));
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

static bool infer_iota(const Attr *a, DType *dt, Shape *sh, Err *e)
{
    if ((unsigned)a->dtype >= DT__COUNT)
        return fail(e, "iota: invalid dtype");
    if (!ir_shape_valid(&a->shape))
        return fail(e, "iota: invalid shape %s", tstr(a->dtype, &a->shape));
    if (a->axis < 0 || a->axis >= a->shape.rank)
        return fail(e, "iota: axis %d out of range for %s", a->axis, tstr(a->dtype, &a->shape));
    *dt = a->dtype;
    *sh = a->shape;
    return true;
}

static bool infer_random(Node *seed, Node *step, const Attr *a, DType *dt, Shape *sh, Err *e)
{
    if (seed->dtype != DT_I64 || seed->shape.rank != 0 || step->dtype != DT_I64 || step->shape.rank != 0)
        return fail(e, "random: seed and step must be i64[], not %s and %s", ntype(seed), ntype(step));
    if (!ir_shape_valid(&a->shape))
        return fail(e, "random: invalid shape %s", tstr(DT_F32, &a->shape));
    *dt = DT_F32;
    *sh = a->shape;
    return true;
}

/* Window ops take NCHW: rank 4, N at most in dim 0, H and W small enough that the output size arithmetic
   cannot overflow. what names the operand in the message ("input", "gradient"). */
static bool check_nchw(const char *name, const char *what, DType t, const Shape *s, Err *e)
{
    if (s->rank != 4)
        return fail(e, "%s: %s %s must be of rank 4 (N, C, H, W)", name, what, tstr(t, s));
    for (int i = 1; i < 4; i++)
        if (s->dim[i] == IR_DIM_N)
            return fail(e, "%s: %s %s has the batch dim N outside dim 0", name, what, tstr(t, s));
    if (s->dim[2] > ((int64_t)1 << 40) || s->dim[3] > ((int64_t)1 << 40))
        return fail(e, "%s: %s %s is too large", name, what, tstr(t, s));
    return true;
}

/* PyTorch's pooling_output_shape: floor((size + 2 pad - dilation (window - 1) - 1 [+ stride - 1 with
   ceil_mode]) / stride) + 1, and with ceil_mode the last window must start inside the input or the left
   padding. */
static int64_t window_out(int64_t size, int window, int stride, int pad, int dilation, bool ceil_mode)
{
    int64_t num = size + 2 * (int64_t)pad - (int64_t)dilation * (window - 1) - 1 + (ceil_mode ? stride - 1 : 0);
    int64_t q = num / stride;
    if (num % stride != 0 && num < 0)
        q--; /* floor, not truncation */
    int64_t out = q + 1;
    if (ceil_mode && (out - 1) * stride >= size + pad)
        out--;
    return out;
}

/* The attributes every window op reads: window (unless the weight gives it), stride, pad, dilation. */
static bool check_window_attrs(const char *name, const Attr *a, bool has_window, Err *e)
{
    for (int i = 0; i < 2; i++) {
        if (has_window && a->window[i] < 1)
            return fail(e, "%s: window %s must be >= 1", name, pair(a->window));
        if (a->stride[i] < 1)
            return fail(e, "%s: stride %s must be >= 1", name, pair(a->stride));
        if (a->dilation[i] < 1)
            return fail(e, "%s: dilation %s must be >= 1", name, pair(a->dilation));
        if (a->pad[i] < 0)
            return fail(e, "%s: pad %s must be >= 0", name, pair(a->pad));
        if (a->window[i] > (1 << 20) || a->stride[i] > (1 << 20) || a->dilation[i] > (1 << 20) ||
            a->pad[i] > (1 << 20))
            return fail(e, "%s: window attributes too large", name);
    }
    return true;
}

/* conv2d's output shape for an input of shape xs and a weight of shape ws (dtype t for messages). */
static bool conv_shape(const char *name, DType t, const Shape *xs, const Shape *ws, const Attr *a, Shape *out,
                       Err *e)
{
    if (!check_nchw(name, "input", t, xs, e) || !check_window_attrs(name, a, false, e))
        return false;
    if (ws->rank != 4)
        return fail(e, "%s: weight %s must be of rank 4 (out, in / groups, kh, kw)", name, tstr(t, ws));
    if (ir_shape_has_n(ws))
        return fail(e, "%s: weight %s cannot have the batch dim N", name, tstr(t, ws));
    if (a->groups < 1)
        return fail(e, "%s: groups %d must be >= 1", name, a->groups);
    int64_t c = xs->dim[1], o = ws->dim[0];
    if (c % a->groups != 0 || o % a->groups != 0)
        return fail(e, "%s: groups %d must divide the channels of input %s and weight %s", name, a->groups,
                    tstr(t, xs), tstr(t, ws));
    if (ws->dim[1] != c / a->groups)
        return fail(e, "%s: input %s has %lld channels but weight %s expects %lld (groups %d)", name, tstr(t, xs),
                    (long long)c, tstr(t, ws), (long long)(ws->dim[1] * a->groups), a->groups);
    if (ws->dim[2] < 1 || ws->dim[3] < 1 || ws->dim[2] > (1 << 20) || ws->dim[3] > (1 << 20))
        return fail(e, "%s: weight %s has an empty or too large window", name, tstr(t, ws));
    Shape r = {.rank = 4, .dim = {xs->dim[0], o}};
    for (int i = 0; i < 2; i++) {
        r.dim[2 + i] = window_out(xs->dim[2 + i], (int)ws->dim[2 + i], a->stride[i], a->pad[i], a->dilation[i],
                                  false);
        if (r.dim[2 + i] < 1)
            return fail(e, "%s: input %s is too small for weight %s (stride %s, pad %s, dilation %s)", name,
                        tstr(t, xs), tstr(t, ws), pair(a->stride), pair(a->pad), pair(a->dilation));
    }
    *out = r;
    return true;
}

/* A pooling op's output shape for an input of shape xs. */
static bool pool_shape(Op op, DType t, const Shape *xs, const Attr *attr, Shape *out, Err *e)
{
    const char *name = ir_op_name(op);
    bool is_max = op == OP_MAX_POOL2D || op == OP_MAX_POOL2D_BWD;
    Attr with_dilation;
    const Attr *a = attr;
    if (!is_max) { /* average pooling has no dilation attribute: read it as 1 */
        with_dilation = *attr;
        with_dilation.dilation[0] = with_dilation.dilation[1] = 1;
        a = &with_dilation;
    }
    if (!check_nchw(name, "input", t, xs, e) || !check_window_attrs(name, a, true, e))
        return false;
    for (int i = 0; i < 2; i++)
        if (a->pad[i] > a->window[i] / 2)
            return fail(e, "%s: pad %s must be at most half the window %s", name, pair(a->pad), pair(a->window));
    Shape r = *xs;
    for (int i = 0; i < 2; i++) {
        r.dim[2 + i] = window_out(xs->dim[2 + i], a->window[i], a->stride[i], a->pad[i], a->dilation[i],
                                  a->ceil_mode);
        if (r.dim[2 + i] < 1)
            return fail(e, "%s: input %s is too small for window %s (stride %s, pad %s, dilation %s)", name,
                        tstr(t, xs), pair(a->window), pair(a->stride), pair(a->pad), pair(a->dilation));
    }
    *out = r;
    return true;
}

static bool same_shape_or_fail(const char *name, const char *what, Node *given, DType t, const Shape *want,
                               Err *e)
{
    if (!ir_shape_eq(&given->shape, want))
        return fail(e, "%s: %s %s does not match the forward's output %s", name, what, ntype(given),
                    tstr(t, want));
    return true;
}

static bool infer_window(Op op, Node *const *in, const Attr *a, DType *dt, Shape *sh, Err *e)
{
    const char *name = ir_op_name(op);
    Node *x = in[0];
    Shape fwd;
    if (!ir_dtype_is_float(x->dtype))
        return fail(e, "%s: needs a float dtype, not %s", name, ntype(x));
    if (ir_op_arity(op) == 2 && in[1]->dtype != x->dtype)
        return fail(e, "%s: dtypes differ: %s and %s", name, ntype(x), ntype(in[1]));
    *dt = x->dtype;
    switch (op) {
    case OP_CONV2D:
        return conv_shape(name, x->dtype, &x->shape, &in[1]->shape, a, sh, e);
    case OP_CONV2D_BWD_INPUT: /* (gy, w): gx of attr.shape, whose conv2d with w gives gy */
        if (!conv_shape(name, x->dtype, &a->shape, &in[1]->shape, a, &fwd, e) ||
            !same_shape_or_fail(name, "gradient", x, x->dtype, &fwd, e))
            return false;
        *sh = a->shape;
        return true;
    case OP_CONV2D_BWD_WEIGHT: /* (x, gy): gw of attr.shape, such that conv2d(x, gw) gives gy */
        if (!conv_shape(name, x->dtype, &x->shape, &a->shape, a, &fwd, e) ||
            !same_shape_or_fail(name, "gradient", in[1], x->dtype, &fwd, e))
            return false;
        *sh = a->shape;
        return true;
    case OP_MAX_POOL2D:
    case OP_AVG_POOL2D:
        return pool_shape(op, x->dtype, &x->shape, a, sh, e);
    case OP_MAX_POOL2D_BWD: /* (x, gy) -> gx like x */
        if (!pool_shape(op, x->dtype, &x->shape, a, &fwd, e) ||
            !same_shape_or_fail(name, "gradient", in[1], x->dtype, &fwd, e))
            return false;
        *sh = x->shape;
        return true;
    case OP_AVG_POOL2D_BWD: /* gy -> gx of attr.shape */
        if (!pool_shape(op, x->dtype, &a->shape, a, &fwd, e) ||
            !same_shape_or_fail(name, "gradient", x, x->dtype, &fwd, e))
            return false;
        *sh = a->shape;
        return true;
    case OP_ADAPTIVE_AVG_POOL2D:
    case OP_ADAPTIVE_AVG_POOL2D_BWD: {
        /* forward: x -> attr.shape; backward: gy -> attr.shape, gy shaped as the forward's output */
        bool bwd = op == OP_ADAPTIVE_AVG_POOL2D_BWD;
        const Shape *big = bwd ? &a->shape : &x->shape, *small = bwd ? &x->shape : &a->shape;
        if (!check_nchw(name, "input", x->dtype, &x->shape, e) ||
            !check_nchw(name, bwd ? "result" : "output", x->dtype, &a->shape, e))
            return false;
        if (big->dim[0] != small->dim[0] || big->dim[1] != small->dim[1])
            return fail(e, "%s: %s and %s differ in batch or channels", name, ntype(x),
                        tstr(x->dtype, &a->shape));
        if (big->dim[2] < 1 || big->dim[3] < 1 || small->dim[2] < 1 || small->dim[3] < 1)
            return fail(e, "%s: empty spatial dims in %s or %s", name, ntype(x), tstr(x->dtype, &a->shape));
        *sh = a->shape;
        return true;
    }
    default:
        LATHE_UNREACHABLE("infer_window: not a window op");
    }
}

/* SLICE (x -> attr.shape, y[i] = x[start + i step]) and PAD (x -> attr.shape, y[start + i step] = x[i]):
   the same rule with the roles of the small and the big tensor swapped. */
static bool infer_slice_pad(Op op, Node *x, const Attr *a, DType *dt, Shape *sh, Err *e)
{
    const char *name = ir_op_name(op);
    const Shape *r = &a->shape;
    if (!ir_shape_valid(r))
        return fail(e, "%s: invalid result shape %s", name, tstr(x->dtype, r));
    if (r->rank != x->shape.rank)
        return fail(e, "%s: result %s and input %s differ in rank", name, tstr(x->dtype, r), ntype(x));
    bool is_slice = op == OP_SLICE;
    for (int d = 0; d < r->rank; d++) {
        int64_t big = is_slice ? x->shape.dim[d] : r->dim[d], small = is_slice ? r->dim[d] : x->shape.dim[d];
        int64_t start = a->start[d], step = a->step[d], last;
        if (start < 0 || step < 1)
            return fail(e, "%s: start %lld and step %lld of dim %d must be >= 0 and >= 1", name, (long long)start,
                        (long long)step, d);
        if (big == IR_DIM_N || small == IR_DIM_N) {
            if (big != small || start != 0 || step != 1)
                return fail(e, "%s: dim %d of %s to %s: the batch dim N must stay whole (start 0, step 1)", name,
                            d, ntype(x), tstr(x->dtype, r));
            continue;
        }
        if (small == 0 ? start > big
                       : ir_mul_overflows(small - 1, step, &last) || last > big - 1 - start)
            return fail(e, "%s: dim %d of %s to %s: start %lld, step %lld go out of range", name, d, ntype(x),
                        tstr(x->dtype, r), (long long)start, (long long)step);
    }
    *dt = x->dtype;
    *sh = *r;
    return true;
}

static bool infer_concat(int nin, Node *const *in, const Attr *a, DType *dt, Shape *sh, Err *e)
{
    if (nin < 1 || nin > IR_MAX_CONCAT)
        return fail(e, "concat: takes 1 to %d inputs, not %d", IR_MAX_CONCAT, nin);
    Node *x = in[0];
    int ax = a->axis;
    if (ax < 0 || ax >= x->shape.rank)
        return fail(e, "concat: axis %d out of range for %s", ax, ntype(x));
    Shape r = x->shape;
    r.dim[ax] = 0;
    for (int k = 0; k < nin; k++) {
        Node *y = in[k];
        if (y->dtype != x->dtype)
            return fail(e, "concat: dtypes differ: %s and %s", ntype(x), ntype(y));
        if (y->shape.rank != x->shape.rank)
            return fail(e, "concat: ranks differ: %s and %s", ntype(x), ntype(y));
        for (int d = 0; d < r.rank; d++)
            if (d != ax && y->shape.dim[d] != x->shape.dim[d])
                return fail(e, "concat: dims other than axis %d differ: %s and %s", ax, ntype(x), ntype(y));
        if (y->shape.dim[ax] == IR_DIM_N)
            return fail(e, "concat: cannot concatenate along the batch dim N: %s (axis %d)", ntype(y), ax);
        if (y->shape.dim[ax] > INT64_MAX / 2 - r.dim[ax])
            return fail(e, "concat: result too large");
        r.dim[ax] += y->shape.dim[ax];
    }
    *dt = x->dtype;
    *sh = r;
    return true;
}

/* GATHER (x, index) -> index's shape, and SCATTER_ADD (index, src) -> attr.shape: `data` is x or the result,
   the tensor that index points into along axis. */
static bool check_indexing(const char *name, Node *index, DType t, const Shape *data, int axis, Err *e)
{
    if (index->dtype != DT_I32 && index->dtype != DT_I64)
        return fail(e, "%s: index %s must be i32 or i64", name, ntype(index));
    if (index->shape.rank != data->rank)
        return fail(e, "%s: index %s and %s differ in rank", name, ntype(index), tstr(t, data));
    if (axis < 0 || axis >= data->rank)
        return fail(e, "%s: axis %d out of range for %s", name, axis, tstr(t, data));
    for (int d = 0; d < data->rank; d++) {
        int64_t i = index->shape.dim[d], n = data->dim[d];
        if ((i == IR_DIM_N) != (n == IR_DIM_N))
            return fail(e, "%s: index %s and %s must agree on the batch dim N (dim %d)", name, ntype(index),
                        tstr(t, data), d);
        if (d != axis && i != IR_DIM_N && i > n)
            return fail(e, "%s: index %s is larger than %s in dim %d", name, ntype(index), tstr(t, data), d);
    }
    return true;
}

static bool infer_gather(Node *x, Node *index, const Attr *a, DType *dt, Shape *sh, Err *e)
{
    if (!check_indexing("gather", index, x->dtype, &x->shape, a->axis, e))
        return false;
    *dt = x->dtype;
    *sh = index->shape;
    return true;
}

static bool infer_scatter_add(Node *index, Node *src, const Attr *a, DType *dt, Shape *sh, Err *e)
{
    if (!ir_shape_valid(&a->shape))
        return fail(e, "scatter_add: invalid result shape %s", tstr(src->dtype, &a->shape));
    if (!ir_shape_eq(&index->shape, &src->shape))
        return fail(e, "scatter_add: index %s and source %s differ in shape", ntype(index), ntype(src));
    if (!check_indexing("scatter_add", index, src->dtype, &a->shape, a->axis, e))
        return false;
    *dt = src->dtype;
    *sh = a->shape;
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
    case OP_ARGMAX:
    case OP_ARGMIN:
        return infer_argmin_max(op, x, a, dt, sh, e);
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
    case OP_IOTA:
        return infer_iota(a, dt, sh, e);
    case OP_RANDOM:
        return infer_random(x, y, a, dt, sh, e);
    case OP_CONV2D:
    case OP_CONV2D_BWD_INPUT:
    case OP_CONV2D_BWD_WEIGHT:
    case OP_MAX_POOL2D:
    case OP_MAX_POOL2D_BWD:
    case OP_AVG_POOL2D:
    case OP_AVG_POOL2D_BWD:
    case OP_ADAPTIVE_AVG_POOL2D:
    case OP_ADAPTIVE_AVG_POOL2D_BWD:
        return infer_window(op, in, a, dt, sh, e);
    case OP_SLICE:
    case OP_PAD:
        return infer_slice_pad(op, x, a, dt, sh, e);
    case OP_CONCAT:
        return infer_concat(nin, in, a, dt, sh, e);
    case OP_GATHER:
        return infer_gather(x, y, a, dt, sh, e);
    case OP_SCATTER_ADD:
        return infer_scatter_add(x, y, a, dt, sh, e);
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
    case OP_REDUCE_MIN:
        r.axes = a->axes;
        r.keepdim = a->keepdim;
        break;
    case OP_ARGMAX:
    case OP_ARGMIN:
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
    case OP_IOTA:
        r.dtype = a->dtype;
        r.shape = a->shape;
        r.axis = a->axis;
        break;
    case OP_RANDOM:
        r.shape = a->shape;
        r.stream = a->stream;
        break;
    case OP_CONV2D:
    case OP_CONV2D_BWD_INPUT:
    case OP_CONV2D_BWD_WEIGHT:
        memcpy(r.stride, a->stride, sizeof r.stride);
        memcpy(r.pad, a->pad, sizeof r.pad);
        memcpy(r.dilation, a->dilation, sizeof r.dilation);
        r.groups = a->groups;
        if (op != OP_CONV2D)
            r.shape = a->shape;
        break;
    case OP_MAX_POOL2D:
    case OP_MAX_POOL2D_BWD:
    case OP_AVG_POOL2D:
    case OP_AVG_POOL2D_BWD:
        memcpy(r.window, a->window, sizeof r.window);
        memcpy(r.stride, a->stride, sizeof r.stride);
        memcpy(r.pad, a->pad, sizeof r.pad);
        r.ceil_mode = a->ceil_mode;
        if (op == OP_MAX_POOL2D || op == OP_MAX_POOL2D_BWD) {
            memcpy(r.dilation, a->dilation, sizeof r.dilation);
        } else {
            /* average pooling has no dilation; 1 so that a kernel may treat every pool alike */
            r.dilation[0] = r.dilation[1] = 1;
            r.count_include_pad = a->count_include_pad;
        }
        if (op == OP_AVG_POOL2D_BWD)
            r.shape = a->shape;
        break;
    case OP_ADAPTIVE_AVG_POOL2D:
    case OP_ADAPTIVE_AVG_POOL2D_BWD: r.shape = a->shape; break;
    case OP_SLICE:
    case OP_PAD:
        for (int i = 0; i < rank && i < IR_MAX_RANK; i++) {
            r.start[i] = a->start[i];
            r.step[i] = a->step[i];
        }
        r.shape = a->shape;
        if (op == OP_PAD)
            r.value = a->value;
        break;
    case OP_CONCAT:
    case OP_GATHER: r.axis = a->axis; break;
    case OP_SCATTER_ADD:
        r.axis = a->axis;
        r.shape = a->shape;
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

Node *ir_argmin(Graph *g, Diag *d, Loc loc, Node *x, int axis, bool keepdim)
{
    Attr a = {.axis = axis, .keepdim = keepdim};
    return ir_make(g, d, loc, OP_ARGMIN, 1, &x, &a);
}

Node *ir_iota(Graph *g, Loc loc, DType t, Shape s, int axis)
{
    Attr a = {.dtype = t, .shape = s, .axis = axis};
    return ir_make(g, NULL, loc, OP_IOTA, 0, NULL, &a);
}

Node *ir_random(Graph *g, Diag *d, Loc loc, Node *seed, Node *step, Shape s, uint32_t stream)
{
    Node *in[2] = {seed, step};
    Attr a = {.shape = s, .stream = stream};
    return ir_make(g, d, loc, OP_RANDOM, 2, in, &a);
}

bool ir_op_is_window(Op op)
{
    switch (op) {
    case OP_CONV2D:
    case OP_CONV2D_BWD_INPUT:
    case OP_CONV2D_BWD_WEIGHT:
    case OP_MAX_POOL2D:
    case OP_MAX_POOL2D_BWD:
    case OP_AVG_POOL2D:
    case OP_AVG_POOL2D_BWD:
    case OP_ADAPTIVE_AVG_POOL2D:
    case OP_ADAPTIVE_AVG_POOL2D_BWD: return true;
    default: return false;
    }
}

Node *ir_window(Graph *g, Diag *d, Loc loc, Op op, int ninputs, Node *const *inputs, const Attr *attr)
{
    if (!ir_op_is_window(op))
        LATHE_UNREACHABLE("ir_window: not a window op");
    return ir_make(g, d, loc, op, ninputs, inputs, attr);
}

static Node *slice_or_pad(Graph *g, Diag *d, Loc loc, Op op, Node *x, const int64_t *start, const int64_t *step,
                          Shape s, double value)
{
    Attr a = {.shape = s, .value = value};
    for (int i = 0; i < s.rank && i < IR_MAX_RANK; i++) {
        a.start[i] = start[i];
        a.step[i] = step[i];
    }
    return ir_make(g, d, loc, op, 1, &x, &a);
}

Node *ir_slice(Graph *g, Diag *d, Loc loc, Node *x, const int64_t *start, const int64_t *step, Shape s)
{
    return slice_or_pad(g, d, loc, OP_SLICE, x, start, step, s, 0);
}

Node *ir_pad(Graph *g, Diag *d, Loc loc, Node *x, const int64_t *start, const int64_t *step, Shape s, double value)
{
    return slice_or_pad(g, d, loc, OP_PAD, x, start, step, s, value);
}

Node *ir_concat(Graph *g, Diag *d, Loc loc, int n, Node *const *xs, int axis)
{
    Attr a = {.axis = axis};
    return ir_make(g, d, loc, OP_CONCAT, n, xs, &a);
}

Node *ir_gather(Graph *g, Diag *d, Loc loc, Node *x, Node *index, int axis)
{
    Node *in[2] = {x, index};
    Attr a = {.axis = axis};
    return ir_make(g, d, loc, OP_GATHER, 2, in, &a);
}

Node *ir_scatter_add(Graph *g, Diag *d, Loc loc, Node *index, Node *src, int axis, Shape s)
{
    Node *in[2] = {index, src};
    Attr a = {.axis = axis, .shape = s};
    return ir_make(g, d, loc, OP_SCATTER_ADD, 2, in, &a);
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
    /* groups name their root by id: old id -> new id (or -1 when the root was removed) */
    int maxid = -1;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i] && g->nodes[i]->id > maxid)
            maxid = g->nodes[i]->id;
    int *to = arena_alloc(g->arena, sizeof(int) * (size_t)(maxid + 2));
    for (int i = 0; i <= maxid; i++)
        to[i] = -1;
    int k = 0;
    for (int i = 0; i < g->nnodes; i++) {
        if (!g->nodes[i])
            continue; /* a pass may have cleared the slots of removed nodes */
        g->nodes[k] = g->nodes[i];
        if (g->nodes[k]->id >= 0)
            to[g->nodes[k]->id] = k;
        g->nodes[k]->id = k;
        k++;
    }
    g->nnodes = k;
    for (int i = 0; i < k; i++) {
        Node *n = g->nodes[i];
        if (n->group >= 0)
            n->group = n->group <= maxid ? to[n->group] : -1;
    }
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
