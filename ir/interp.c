/* interp.c: the reference interpreter. Every value is a row-major array of doubles; after each op the
   result is rounded as its dtype would hold it (f32 to float, integers truncated and wrapped), so that the
   interpreter agrees with generated f32 code closely and with integer code exactly. Slow and simple on
   purpose: it is the oracle the tests compare everything else against. */
#include "ir.h"
#include "interp_window.h"
#include "../runtime/lathe_kern.h" /* lathe_philox_uniform: RANDOM must give the runtime's bits */

#include <math.h>
#include <string.h>

typedef struct Val {
    Shape shape; /* concrete */
    int64_t numel;
    double *data;
} Val;

typedef struct Interp {
    const Graph *g;
    Diag *d;
    int64_t n;
    Val *vals;
} Interp;

static double wrap_int(double v, double range, bool is_signed)
{
    if (isnan(v) || isinf(v))
        return 0;
    v = trunc(v);
    v = fmod(v, range);
    if (v < 0)
        v += range;
    if (is_signed && v >= range / 2)
        v -= range;
    return v;
}

/* C conversion of a double into dtype t, read back as a double. */
static double round_to(DType t, double v)
{
    switch (t) {
    case DT_F32: return (double)(float)v;
    case DT_F64: return v;
    case DT_I32: return wrap_int(v, 4294967296.0, true);
    case DT_U8: return wrap_int(v, 256.0, false);
    case DT_I64:
        if (isnan(v))
            return 0;
        v = trunc(v);
        return v < -9223372036854775808.0 ? -9223372036854775808.0 : v >= 9223372036854775808.0 ? 9223372036854775807.0 : v;
    default: LATHE_UNREACHABLE("round_to: bad dtype");
    }
}

static Shape concrete(const Shape *s, int64_t n)
{
    Shape r = *s;
    for (int i = 0; i < r.rank; i++)
        if (r.dim[i] == IR_DIM_N)
            r.dim[i] = n;
    return r;
}

/* Row-major strides of s, with stride 0 on the dims that broadcasting to out stretches or adds. */
static void bstrides(const Shape *s, const Shape *out, int64_t *st)
{
    int64_t acc = 1;
    for (int i = out->rank - 1; i >= 0; i--) {
        int j = s->rank - out->rank + i;
        if (j < 0) {
            st[i] = 0;
            continue;
        }
        st[i] = s->dim[j] == 1 && out->dim[i] != 1 ? 0 : acc;
        acc *= s->dim[j];
    }
}

/* Steps a multi-index over shape s; returns false after the last element. */
static bool next_index(const Shape *s, int64_t *idx)
{
    for (int i = s->rank - 1; i >= 0; i--) {
        if (++idx[i] < s->dim[i])
            return true;
        idx[i] = 0;
    }
    return false;
}

static int64_t offset(const int64_t *idx, const int64_t *st, int rank)
{
    int64_t o = 0;
    for (int i = 0; i < rank; i++)
        o += idx[i] * st[i];
    return o;
}

static double unary(Op op, double x)
{
    switch (op) {
    case OP_NEG: return -x;
    case OP_EXP: return exp(x);
    case OP_LOG: return log(x);
    case OP_SQRT: return sqrt(x);
    case OP_ABS: return fabs(x);
    case OP_RELU: return x < 0 ? 0 : x; /* NaN passes through, as in PyTorch */
    case OP_SIGMOID: return 1 / (1 + exp(-x));
    case OP_TANH: return tanh(x);
    case OP_ERF: return erf(x);
    case OP_RSQRT: return 1 / sqrt(x);
    case OP_CAST:
    case OP_BROADCAST: return x;
    default: LATHE_UNREACHABLE("unary: not a unary op");
    }
}

static double binary(Op op, DType t, double a, double b)
{
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV:
        if (ir_dtype_is_float(t))
            return a / b;
        return b == 0 ? 0 : trunc(a / b); /* C's division; x/0 (undefined in C) gives 0 here */
    case OP_MAX: return isnan(a) || isnan(b) ? NAN : a > b ? a : b;
    case OP_MIN: return isnan(a) || isnan(b) ? NAN : a < b ? a : b;
    case OP_POW: return pow(a, b);
    case OP_EQ: return a == b;
    case OP_NE: return a != b;
    case OP_LT: return a < b;
    case OP_LE: return a <= b;
    case OP_GT: return a > b;
    case OP_GE: return a >= b;
    default: LATHE_UNREACHABLE("binary: not a binary op");
    }
}

static void eval_elementwise(const Node *nd, Val *out, Val *const *in)
{
    int64_t idx[IR_MAX_RANK] = {0}, st[3][IR_MAX_RANK];
    for (int k = 0; k < nd->ninputs; k++)
        bstrides(&in[k]->shape, &out->shape, st[k]);
    if (out->numel == 0)
        return;
    int rank = out->shape.rank;
    int64_t i = 0;
    do {
        double a = in[0]->data[offset(idx, st[0], rank)];
        double r;
        if (nd->ninputs == 1) {
            r = unary(nd->op, a);
        } else if (nd->op == OP_SELECT) {
            double p = in[1]->data[offset(idx, st[1], rank)], q = in[2]->data[offset(idx, st[2], rank)];
            r = a != 0 ? p : q;
        } else {
            r = binary(nd->op, nd->inputs[0]->dtype, a, in[1]->data[offset(idx, st[1], rank)]);
        }
        out->data[i++] = r;
    } while (next_index(&out->shape, idx));
}

static void eval_reduce(const Node *nd, Val *out, const Val *x)
{
    /* Walk the input; each element lands in the output cell with the reduced dims dropped (or set to 0). */
    Shape kept = x->shape;
    int64_t count = 1;
    for (int i = 0; i < kept.rank; i++) {
        if (nd->attr.axes & (1u << i)) {
            count *= kept.dim[i];
            kept.dim[i] = 1;
        }
    }
    double init = nd->op == OP_REDUCE_MAX ? -INFINITY : nd->op == OP_REDUCE_MIN ? INFINITY : 0;
    for (int64_t i = 0; i < out->numel; i++)
        out->data[i] = init;
    if (x->numel > 0) {
        int64_t idx[IR_MAX_RANK] = {0}, st[IR_MAX_RANK];
        bstrides(&kept, &x->shape, st);
        int64_t i = 0;
        do {
            double v = x->data[i++], *o = &out->data[offset(idx, st, x->shape.rank)];
            if (nd->op == OP_REDUCE_SUM || nd->op == OP_REDUCE_MEAN)
                *o += v;
            else if (isnan(v) || (nd->op == OP_REDUCE_MAX ? v > *o : v < *o))
                *o = isnan(*o) ? *o : v; /* NaN wins, as in PyTorch */
        } while (next_index(&x->shape, idx));
    }
    if (nd->op == OP_REDUCE_MEAN)
        for (int64_t i = 0; i < out->numel; i++)
            out->data[i] /= (double)count;
}

/* argmax and argmin: the first extreme along the axis; a NaN counts as the extreme, as in PyTorch */
static void eval_argmax(const Node *nd, Val *out, const Val *x)
{
    bool is_min = nd->op == OP_ARGMIN;
    int ax = nd->attr.axis;
    int64_t outer = 1, len = x->shape.dim[ax], inner = 1;
    for (int i = 0; i < ax; i++)
        outer *= x->shape.dim[i];
    for (int i = ax + 1; i < x->shape.rank; i++)
        inner *= x->shape.dim[i];
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t in = 0; in < inner; in++) {
            const double *p = x->data + o * len * inner + in;
            int64_t best = 0;
            for (int64_t k = 1; k < len; k++)
                if ((is_min ? p[k * inner] < p[best * inner] : p[k * inner] > p[best * inner]) ||
                    (isnan(p[k * inner]) && !isnan(p[best * inner])))
                    best = k;
            out->data[o * inner + in] = (double)best;
        }
    }
}

/* The batch dims (all but the last two) broadcast: each output matrix reads the matrices of a and b that
   its batch index maps to (stride 0 along stretched or missing dims). */
static void eval_matmul(const Node *nd, Val *out, const Val *a, const Val *b)
{
    bool ta = nd->attr.transpose_a, tb = nd->attr.transpose_b;
    int ra = a->shape.rank, rb = b->shape.rank, ro = out->shape.rank;
    int64_t m = out->shape.dim[ro - 2], p = out->shape.dim[ro - 1];
    int64_t k = ta ? a->shape.dim[ra - 2] : a->shape.dim[ra - 1];
    Shape ob = ir_shape(ro - 2, out->shape.dim), ab = ir_shape(ra - 2, a->shape.dim);
    Shape bb = ir_shape(rb - 2, b->shape.dim);
    int64_t sa[IR_MAX_RANK], sb[IR_MAX_RANK], idx[IR_MAX_RANK] = {0};
    bstrides(&ab, &ob, sa);
    bstrides(&bb, &ob, sb);
    if (out->numel == 0)
        return;
    int64_t bi = 0;
    do {
        const double *A = a->data + offset(idx, sa, ob.rank) * m * k;
        const double *B = b->data + offset(idx, sb, ob.rank) * k * p;
        double *C = out->data + bi++ * m * p;
        for (int64_t i = 0; i < m; i++) {
            for (int64_t j = 0; j < p; j++) {
                double s = 0;
                for (int64_t l = 0; l < k; l++)
                    s += (ta ? A[l * m + i] : A[i * k + l]) * (tb ? B[j * k + l] : B[l * p + j]);
                C[i * p + j] = s;
            }
        }
    } while (next_index(&ob, idx));
}

static void eval_transpose(const Node *nd, Val *out, const Val *x)
{
    /* out[idx] = x[idx'] where idx'[perm[i]] = idx[i] */
    int rank = out->shape.rank;
    int64_t xst[IR_MAX_RANK] = {0}, st[IR_MAX_RANK], idx[IR_MAX_RANK] = {0}; /* xst zeroed: perm is verified */
    int64_t acc = 1;
    for (int i = rank - 1; i >= 0; i--) {
        xst[i] = acc;
        acc *= x->shape.dim[i];
    }
    for (int i = 0; i < rank; i++)
        st[i] = xst[nd->attr.perm[i]];
    if (out->numel == 0)
        return;
    int64_t i = 0;
    do
        out->data[i++] = x->data[offset(idx, st, rank)];
    while (next_index(&out->shape, idx));
}

static void eval_one_hot(const Node *nd, Val *out, const Val *x)
{
    int64_t c = nd->attr.classes;
    memset(out->data, 0, sizeof(double) * (size_t)out->numel);
    for (int64_t i = 0; i < x->numel; i++) {
        double v = x->data[i];
        if (v >= 0 && v < (double)c)
            out->data[i * c + (int64_t)v] = 1;
    }
}

/* Row-major strides of a concrete shape. */
static void strides(const Shape *s, int64_t *st)
{
    int64_t acc = 1;
    for (int i = s->rank - 1; i >= 0; i--) {
        st[i] = acc;
        acc *= s->dim[i];
    }
}

static void eval_iota(const Node *nd, Val *out)
{
    int64_t idx[IR_MAX_RANK] = {0}, i = 0;
    if (out->numel == 0)
        return;
    do
        out->data[i++] = (double)idx[nd->attr.axis];
    while (next_index(&out->shape, idx));
}

static void eval_random(const Node *nd, Val *out, const Val *seed, const Val *step)
{
    /* the doubles hold i64 values exactly (up to 2^53); the runtime reads the same integers */
    uint64_t sd = (uint64_t)(int64_t)seed->data[0], st = (uint64_t)(int64_t)step->data[0];
    for (int64_t i = 0; i < out->numel; i++)
        out->data[i] = lathe_philox_uniform(sd, nd->attr.stream, st, (uint64_t)i);
}

/* slice: out[i] = x[start + i step]; pad: out = value, then out[start + i step] = x[i]. One walk over the
   smaller tensor serves both. */
static void eval_slice_pad(const Node *nd, Val *out, const Val *x)
{
    bool is_pad = nd->op == OP_PAD;
    const Val *small = is_pad ? x : out, *big = is_pad ? out : x;
    int rank = out->shape.rank;
    int64_t bst[IR_MAX_RANK], idx[IR_MAX_RANK] = {0};
    strides(&big->shape, bst);
    if (is_pad)
        for (int64_t i = 0; i < out->numel; i++)
            out->data[i] = nd->attr.value;
    if (small->numel == 0)
        return;
    int64_t i = 0;
    do {
        int64_t o = 0;
        for (int d = 0; d < rank; d++)
            o += (nd->attr.start[d] + idx[d] * nd->attr.step[d]) * bst[d];
        if (is_pad)
            out->data[o] = x->data[i++];
        else
            out->data[i++] = x->data[o];
    } while (next_index(&small->shape, idx));
}

static void eval_concat(const Node *nd, Val *out, Val *const *in)
{
    int ax = nd->attr.axis;
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < ax; i++)
        outer *= out->shape.dim[i];
    for (int i = ax + 1; i < out->shape.rank; i++)
        inner *= out->shape.dim[i];
    double *o = out->data;
    for (int64_t r = 0; r < outer; r++) {
        for (int k = 0; k < nd->ninputs; k++) {
            int64_t chunk = in[k]->shape.dim[ax] * inner;
            if (chunk > 0)
                memcpy(o, in[k]->data + r * chunk, sizeof(double) * (size_t)chunk);
            o += chunk;
        }
    }
}

/* gather: out[i] = x[i with i[axis] = index[i]]; scatter_add: out[i with i[axis] = index[i]] += src[i].
   An index outside [0, dim) reads 0 or adds nothing. data is x (gather) or out (scatter_add). */
static void eval_gather_scatter(const Node *nd, Val *out, const Val *a, const Val *b)
{
    bool gather = nd->op == OP_GATHER;
    const Val *index = gather ? b : a, *data = gather ? a : out;
    int ax = nd->attr.axis, rank = index->shape.rank;
    int64_t dst[IR_MAX_RANK], idx[IR_MAX_RANK] = {0};
    strides(&data->shape, dst);
    if (!gather)
        memset(out->data, 0, sizeof(double) * (size_t)out->numel);
    if (index->numel == 0)
        return;
    int64_t i = 0;
    do {
        double v = index->data[i];
        if (v >= 0 && v < (double)data->shape.dim[ax]) {
            int64_t o = 0;
            for (int d = 0; d < rank; d++)
                o += (d == ax ? (int64_t)v : idx[d]) * dst[d];
            if (gather)
                out->data[i] = a->data[o];
            else
                out->data[o] += b->data[i];
        } else if (gather) {
            out->data[i] = 0;
        }
        i++;
    } while (next_index(&index->shape, idx));
}

static void eval_window(const Node *nd, Val *out, Val *const *in)
{
    Shape shapes[2];
    const double *data[2];
    for (int k = 0; k < nd->ninputs && k < 2; k++) {
        shapes[k] = in[k]->shape;
        data[k] = in[k]->data;
    }
    ir_interp_window(nd, &out->shape, out->data, shapes, data);
}

static bool bind_leaf(Interp *it, const Node *nd, Val *out, const IBinding *bind, int nbind)
{
    char want[256], have[256];
    const IBinding *b = NULL;
    for (int i = 0; i < nbind && !b; i++)
        if (bind[i].name && strcmp(bind[i].name, nd->attr.name) == 0)
            b = &bind[i];
    if (!b) {
        diag_error(it->d, nd->loc, "interp: no value bound to %s \"%s\"", ir_op_name(nd->op), nd->attr.name);
        return false;
    }
    ir_shape_str(&nd->shape, want, sizeof want);
    ir_shape_str(&b->value.shape, have, sizeof have);
    bool ok = b->value.shape.rank == nd->shape.rank;
    for (int i = 0; ok && i < nd->shape.rank; i++) {
        int64_t got = b->value.shape.dim[i], dim = nd->shape.dim[i];
        if (dim != IR_DIM_N) {
            ok = got == dim;
        } else {
            ok = got == it->n;
        }
    }
    if (!ok) {
        diag_error(it->d, nd->loc, "interp: \"%s\" bound to a tensor of shape %s, expected %s (N = %lld)",
                   nd->attr.name, have, want, (long long)it->n);
        return false;
    }
    if (out->numel > 0 && !b->value.data) {
        diag_error(it->d, nd->loc, "interp: \"%s\" bound to a tensor without data", nd->attr.name);
        return false;
    }
    if (out->numel > 0)
        memcpy(out->data, b->value.data, sizeof(double) * (size_t)out->numel);
    return true;
}

/* When the caller gives no N, the first leaf with an N dim decides it from its binding; bind_leaf then
   checks every binding against that value. */
static void infer_n(Interp *it, const IBinding *bind, int nbind)
{
    for (int i = 0; i < it->g->nnodes && it->n < 0; i++) {
        const Node *nd = it->g->nodes[i];
        if (nd->op != OP_INPUT && nd->op != OP_PARAM && nd->op != OP_STATE)
            continue;
        for (int j = 0; j < nbind; j++) {
            if (!bind[j].name || strcmp(bind[j].name, nd->attr.name) != 0)
                continue;
            if (bind[j].value.shape.rank == nd->shape.rank)
                for (int k = 0; k < nd->shape.rank && it->n < 0; k++)
                    if (nd->shape.dim[k] == IR_DIM_N && bind[j].value.shape.dim[k] >= 0)
                        it->n = bind[j].value.shape.dim[k];
            break;
        }
    }
}

static bool eval_node(Interp *it, const Node *nd, const IBinding *bind, int nbind)
{
    Val *out = &it->vals[nd->id];
    if ((ir_shape_has_n(&nd->shape) || (nd->op == OP_CONST && nd->attr.npow != 0)) && it->n < 0) {
        diag_error(it->d, nd->loc, "interp: N is not bound");
        return false;
    }
    out->shape = concrete(&nd->shape, it->n < 0 ? 0 : it->n);
    out->numel = ir_shape_numel(&out->shape, 0);
    if (out->numel < 0 || out->numel > ((int64_t)1 << 40) / (int64_t)sizeof(double)) {
        diag_error(it->d, nd->loc, "interp: %%%d is too large to interpret", nd->id);
        return false;
    }
    out->data = calloc((size_t)out->numel + 1, sizeof(double));
    if (!out->data) {
        diag_error(it->d, nd->loc, "interp: out of memory for %%%d", nd->id);
        return false;
    }
    Val *in[IR_MAX_CONCAT] = {0};
    for (int k = 0; k < nd->ninputs && k < IR_MAX_CONCAT; k++)
        in[k] = &it->vals[nd->inputs[k]->id];
    switch (nd->op) {
    case OP_INPUT:
    case OP_PARAM:
    case OP_STATE:
        if (!bind_leaf(it, nd, out, bind, nbind))
            return false;
        break;
    case OP_CONST: {
        /* repeated * or / n rather than pow(n, npow), as the generated code computes it, to the last bit */
        double v = nd->attr.value;
        for (int k = 0; k < abs(nd->attr.npow); k++)
            v = nd->attr.npow > 0 ? v * (double)it->n : v / (double)it->n;
        for (int64_t i = 0; i < out->numel; i++)
            out->data[i] = v;
        break;
    }
    case OP_REDUCE_SUM:
    case OP_REDUCE_MEAN:
    case OP_REDUCE_MAX:
    case OP_REDUCE_MIN: eval_reduce(nd, out, in[0]); break;
    case OP_ARGMAX:
    case OP_ARGMIN: eval_argmax(nd, out, in[0]); break;
    case OP_MATMUL: eval_matmul(nd, out, in[0], in[1]); break;
    case OP_RESHAPE: memcpy(out->data, in[0]->data, sizeof(double) * (size_t)out->numel); break;
    case OP_TRANSPOSE: eval_transpose(nd, out, in[0]); break;
    case OP_BROADCAST: eval_elementwise(nd, out, in); break; /* a unary identity under broadcasting */
    case OP_ONE_HOT: eval_one_hot(nd, out, in[0]); break;
    case OP_IOTA: eval_iota(nd, out); break;
    case OP_RANDOM: eval_random(nd, out, in[0], in[1]); break;
    case OP_CONV2D:
    case OP_CONV2D_BWD_INPUT:
    case OP_CONV2D_BWD_WEIGHT:
    case OP_MAX_POOL2D:
    case OP_MAX_POOL2D_BWD:
    case OP_AVG_POOL2D:
    case OP_AVG_POOL2D_BWD:
    case OP_ADAPTIVE_AVG_POOL2D:
    case OP_ADAPTIVE_AVG_POOL2D_BWD: eval_window(nd, out, in); break;
    case OP_SLICE:
    case OP_PAD: eval_slice_pad(nd, out, in[0]); break;
    case OP_CONCAT: eval_concat(nd, out, in); break;
    case OP_GATHER:
    case OP_SCATTER_ADD: eval_gather_scatter(nd, out, in[0], in[1]); break;
    default: eval_elementwise(nd, out, in); break;
    }
    for (int64_t i = 0; i < out->numel; i++)
        out->data[i] = round_to(nd->dtype, out->data[i]);
    return true;
}

ITensor *ir_interp(Arena *a, const Graph *g, int64_t n, const IBinding *bind, int nbind, Diag *d)
{
    Interp it = {g, d, n, calloc((size_t)g->nnodes + 1, sizeof(Val))};
    ITensor *res = NULL;
    if (!it.vals) {
        diag_error(d, (Loc){0}, "interp: out of memory");
        return NULL;
    }
    if (it.n < 0)
        infer_n(&it, bind, nbind);
    for (int i = 0; i < g->nnodes; i++)
        if (!eval_node(&it, g->nodes[i], bind, nbind))
            goto done;
    res = arena_alloc(a, sizeof(ITensor) * (size_t)(g->noutputs + 1));
    for (int i = 0; i < g->noutputs; i++) {
        const Val *v = &it.vals[g->outputs[i].value->id];
        res[i].shape = v->shape;
        res[i].data = arena_alloc(a, sizeof(double) * (size_t)(v->numel + 1));
        memcpy(res[i].data, v->data, sizeof(double) * (size_t)v->numel);
    }
done:
    for (int i = 0; i < g->nnodes; i++)
        free(it.vals[i].data);
    free(it.vals);
    return res;
}
