/* cost.c: the work of one node, as `lathe ir --stats` sums it and a profile divides by time: its
   floating-point operations and the bytes a kernel computing it alone moves (inputs read once, output
   written once). Counts are at batch n; one that passes 2^63 saturates at INT64_MAX, so that sums of
   saturated counts stay saturated rather than wrapping. */
#include "ir.h"

/* Saturating arithmetic: a count that overflows is INT64_MAX from then on. */
static int64_t sat_mul(int64_t a, int64_t b) {
    int64_t r;
    if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r))
        return INT64_MAX;
    return r;
}

static int64_t sat_add(int64_t a, int64_t b) {
    int64_t r;
    if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r))
        return INT64_MAX;
    return r;
}

/* Elements of s at batch n; INT64_MAX when that overflows. */
static int64_t numel(const Shape *s, int64_t n) {
    int64_t c = ir_shape_numel(s, n);
    return c < 0 ? INT64_MAX : c;
}

static int64_t bytes_of(const Node *nd, int64_t n) {
    return sat_mul(numel(&nd->shape, n), (int64_t)ir_dtype_size(nd->dtype));
}

/* The product of dims [from, rank) of s (constant dims of a weight or a window). */
static int64_t dims_from(const Shape *s, int from, int64_t n) {
    int64_t r = 1;
    for (int i = from; i < s->rank; i++)
        r = sat_mul(r, s->dim[i] == IR_DIM_N ? n : s->dim[i]);
    return r;
}

/* Adaptive pooling over an axis of size h into oh windows: the summed lengths of the windows
   [floor(i h / oh), ceil((i + 1) h / oh)), which overlap when oh does not divide h. */
static int64_t adaptive_span_sum(int64_t h, int64_t oh) {
    int64_t sum = 0;
    for (int64_t i = 0; i < oh; i++) {
        int64_t lo = i * h / oh, hi = ((i + 1) * h + oh - 1) / oh;
        sum = sat_add(sum, hi - lo);
    }
    return sum;
}

/* Adaptive pooling's additions between a big [.., H, W] side and a pooled [.., OH, OW] side: every
   element of every window, for each of the leading N*C planes. */
static int64_t adaptive_flops(const Shape *big, const Shape *pooled, int64_t n) {
    if (big->rank != 4 || pooled->rank != 4)
        return 0;
    int64_t planes = sat_mul(big->dim[0] == IR_DIM_N ? n : big->dim[0], big->dim[1]);
    int64_t hs = adaptive_span_sum(big->dim[2], pooled->dim[2]);
    int64_t ws = adaptive_span_sum(big->dim[3], pooled->dim[3]);
    return sat_mul(planes, sat_mul(hs, ws));
}

/* matmul: 2 M N K per batch of the output, K the inner dim of the first input. */
static int64_t matmul_flops(const Node *nd, int64_t n) {
    const Shape *a = &nd->inputs[0]->shape;
    int64_t k = a->dim[nd->attr.transpose_a ? a->rank - 2 : a->rank - 1];
    if (k == IR_DIM_N) /* a weight's gradient, x.T @ gy: the batch is the inner dim */
        k = n;
    return sat_mul(2, sat_mul(numel(&nd->shape, n), k));
}

/* Convolution and both of its gradients: 2 per multiply-add, out * (Cin/groups) * kh * kw of them, where
   "out" is the forward's output (y, or gy for the gradients) and Cin/groups * kh * kw are dims 1..3 of the
   weight (w, or the result gw). */
static int64_t conv_flops(const Node *nd, int64_t n) {
    const Node *y, *w;
    switch (nd->op) {
    case OP_CONV2D: y = nd, w = nd->inputs[1]; break;
    case OP_CONV2D_BWD_INPUT: y = nd->inputs[0], w = nd->inputs[1]; break;
    default: y = nd->inputs[1], w = nd; break; /* CONV2D_BWD_WEIGHT: (x, gy) -> gw */
    }
    return sat_mul(2, sat_mul(numel(&y->shape, n), dims_from(&w->shape, 1, n)));
}

int64_t ir_node_flops(const Node *nd, int64_t n) {
    if (!ir_is_kernel(nd))
        return 0;
    int64_t out = numel(&nd->shape, n);
    int64_t window = sat_mul(nd->attr.window[0], nd->attr.window[1]);
    switch (ir_op_kind(nd->op)) {
    case K_UNARY:
    case K_BINARY:
    case K_COMPARE: return out; /* one operation per element, exp and division included */
    case K_REDUCE: return numel(&nd->inputs[0]->shape, n);
    default: break;
    }
    switch (nd->op) {
    case OP_SELECT: return out;
    case OP_ARGMAX:
    case OP_ARGMIN: return numel(&nd->inputs[0]->shape, n); /* one comparison per input element */
    case OP_MATMUL: return matmul_flops(nd, n);
    case OP_CONV2D:
    case OP_CONV2D_BWD_INPUT:
    case OP_CONV2D_BWD_WEIGHT: return conv_flops(nd, n);
    case OP_MAX_POOL2D:
    case OP_AVG_POOL2D: return sat_mul(out, window); /* a comparison or an addition per window element */
    case OP_MAX_POOL2D_BWD:
    case OP_AVG_POOL2D_BWD: return sat_mul(numel(&nd->inputs[nd->op == OP_MAX_POOL2D_BWD]->shape, n), window);
    case OP_ADAPTIVE_AVG_POOL2D: return adaptive_flops(&nd->inputs[0]->shape, &nd->shape, n);
    case OP_ADAPTIVE_AVG_POOL2D_BWD: return adaptive_flops(&nd->shape, &nd->inputs[0]->shape, n);
    case OP_SCATTER_ADD: return numel(&nd->inputs[1]->shape, n); /* one addition per source element */
    default: return 0; /* data movement: transpose, broadcast, slice, pad, concat, gather, one_hot, iota, random */
    }
}

int64_t ir_node_bytes(const Node *nd, int64_t n) {
    if (!ir_is_kernel(nd))
        return 0;
    int64_t out = bytes_of(nd, n);
    int64_t read = 0;
    switch (nd->op) {
    case OP_SLICE: /* reads only the elements it keeps */
        read = sat_mul(numel(&nd->shape, n), (int64_t)ir_dtype_size(nd->inputs[0]->dtype));
        break;
    case OP_GATHER: /* the index, and one element of x per output element */
        read = sat_add(bytes_of(nd->inputs[1], n), out);
        break;
    default:
        for (int i = 0; i < nd->ninputs; i++)
            read = sat_add(read, bytes_of(nd->inputs[i], n));
    }
    return sat_add(read, out);
}
