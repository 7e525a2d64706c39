/* autodiff.c: reverse-mode differentiation of the train graph. The gradient of the "loss" output flows
   back through one vector-Jacobian rule per primitive (vjp below), each building IR at the forward node's
   location; every trainable PARAM gets an output "grad.NAME". Frozen PARAMs (buffers too) get none, and
   update outputs already in the graph (a buffer's new running statistics) are left as they are: only
   "loss" is differentiated. Constants are folded as they are built (a gradient of 1 multiplies nothing, a
   broadcast constant stays a constant) because every node emitted here runs once per training step. */
#include "passes.h"

#include <assert.h>
#include <string.h>

typedef struct AD {
    Graph *g;
    Diag *d;
    int nfwd;       /* forward nodes: ids 0 .. nfwd-1 */
    Node **grad;    /* by forward id: the gradient summed so far; NULL while it is zero */
    bool *needs;    /* by forward id: the value depends on a trainable parameter */
    Node **consts;  /* constants built by this pass, reused when asked for again */
    int nconsts, consts_cap;
    bool failed;
} AD;

/* ---------------------------------------------------------------- builders that fold constants */

/* The constant value * N^npow of type t and shape s, built once per pass. */
static Node *cst(AD *ad, Loc loc, DType t, Shape s, double value, int npow) {
    if (value == 0)
        npow = 0;
    for (int i = 0; i < ad->nconsts; i++) {
        Node *c = ad->consts[i];
        if (c->dtype == t && ir_shape_eq(&c->shape, &s) && c->attr.value == value && c->attr.npow == npow)
            return c;
    }
    Node *c = ir_const_npow(ad->g, loc, t, s, value, npow);
    if (!c) {
        ad->failed = true;
        return NULL;
    }
    if (ad->nconsts == ad->consts_cap) {
        int cap = ad->consts_cap ? 2 * ad->consts_cap : 16;
        ad->consts = arena_realloc(ad->g->arena, ad->consts, ad->consts_cap * sizeof(Node *),
                                   cap * sizeof(Node *));
        ad->consts_cap = cap;
    }
    ad->consts[ad->nconsts++] = c;
    return c;
}

static Node *scalar(AD *ad, Loc loc, DType t, double value) {
    return cst(ad, loc, t, ir_shape_scalar(), value, 0);
}

static Node *check(AD *ad, Node *n) {
    if (!n)
        ad->failed = true;
    return n;
}

static Node *unary(AD *ad, Loc loc, Op op, Node *x) {
    if (!x)
        return NULL;
    if (op == OP_NEG && x->op == OP_CONST)
        return cst(ad, loc, x->dtype, x->shape, -x->attr.value, x->attr.npow);
    return check(ad, ir_unary(ad->g, ad->d, loc, op, x));
}

static Node *binary(AD *ad, Loc loc, Op op, Node *a, Node *b) {
    if (!a || !b)
        return NULL;
    Shape s;
    if (!ir_shape_broadcast(&a->shape, &b->shape, &s))
        LATHE_UNREACHABLE("autodiff built a binary op on shapes that do not broadcast");
    if (op == OP_MUL) {
        if (ir_is_const(a, 1) && ir_shape_eq(&b->shape, &s))
            return b;
        if (ir_is_const(b, 1) && ir_shape_eq(&a->shape, &s))
            return a;
        if (a->op == OP_CONST && b->op == OP_CONST)
            return cst(ad, loc, a->dtype, s, a->attr.value * b->attr.value, a->attr.npow + b->attr.npow);
    }
    if (op == OP_ADD && a->op == OP_CONST && b->op == OP_CONST && a->attr.npow == b->attr.npow)
        return cst(ad, loc, a->dtype, s, a->attr.value + b->attr.value, a->attr.npow);
    return check(ad, ir_binary(ad->g, ad->d, loc, op, a, b));
}

/* x * c * N^npow */
static Node *scale(AD *ad, Loc loc, Node *x, double c, int npow) {
    if (!x || (c == 1 && npow == 0))
        return x;
    if (x->op == OP_CONST)
        return cst(ad, loc, x->dtype, x->shape, x->attr.value * c, x->attr.npow + npow);
    return binary(ad, loc, OP_MUL, x, cst(ad, loc, x->dtype, ir_shape_scalar(), c, npow));
}

static Node *select3(AD *ad, Loc loc, Node *cond, Node *a, Node *b) {
    if (!cond || !a || !b)
        return NULL;
    return check(ad, ir_select(ad->g, ad->d, loc, cond, a, b));
}

static Node *broadcast_to(AD *ad, Loc loc, Node *x, Shape s) {
    if (!x || ir_shape_eq(&x->shape, &s))
        return x;
    if (x->op == OP_CONST)
        return cst(ad, loc, x->dtype, s, x->attr.value, x->attr.npow);
    return check(ad, ir_broadcast(ad->g, ad->d, loc, x, s));
}

static Node *reshape_to(AD *ad, Loc loc, Node *x, Shape s) {
    if (!x || ir_shape_eq(&x->shape, &s))
        return x;
    if (x->op == OP_CONST)
        return cst(ad, loc, x->dtype, s, x->attr.value, x->attr.npow);
    return check(ad, ir_reshape(ad->g, ad->d, loc, x, s));
}

/* Sums x (of a broadcast shape) back to shape s. A constant c summed over k elements is the constant c*k,
   with one more power of N for each batch dimension among those summed. */
static Node *sum_to(AD *ad, Loc loc, Node *x, Shape s) {
    if (!x || ir_shape_eq(&x->shape, &s))
        return x;
    if (x->op == OP_CONST) {
        int64_t to = ir_shape_numel_per_n(&s);
        double k = to > 0 ? (double)ir_shape_numel_per_n(&x->shape) / (double)to : 0;
        int dn = ir_shape_count_n(&x->shape) - ir_shape_count_n(&s);
        return cst(ad, loc, x->dtype, s, x->attr.value * k, x->attr.npow + dn);
    }
    /* one reduction when only leading dims go (a bias) or only stretched dims are kept as 1 */
    int r = x->shape.rank, lead = r - s.rank;
    uint32_t axes = 0;
    bool stretched = false;
    for (int i = 0; i < r; i++) {
        if (i < lead) {
            axes |= 1u << i;
        } else if (s.dim[i - lead] == 1 && x->shape.dim[i] != 1) {
            axes |= 1u << i;
            stretched = true;
        }
    }
    if (!stretched || lead == 0)
        return check(ad, ir_reduce(ad->g, ad->d, loc, OP_REDUCE_SUM, x, axes, stretched));
    return check(ad, ir_sum_to(ad->g, ad->d, loc, x, s));
}

static Node *matmul(AD *ad, Loc loc, Node *a, Node *b, bool ta, bool tb) {
    if (!a || !b)
        return NULL;
    return check(ad, ir_matmul(ad->g, ad->d, loc, a, b, ta, tb));
}

/* A window op's backward node: op over inputs with the forward node's attributes and the result shape s. */
static Node *window_bwd(AD *ad, Loc loc, Op op, const Node *fwd, int ninputs, Node *const *inputs, Shape s) {
    for (int i = 0; i < ninputs; i++)
        if (!inputs[i])
            return NULL;
    Attr a = fwd->attr;
    a.shape = s;
    return check(ad, ir_window(ad->g, ad->d, loc, op, ninputs, inputs, &a));
}

/* y[i] = x[start + i step]; a slice of a constant is that constant in the slice's shape */
static Node *slice_of(AD *ad, Loc loc, Node *x, const int64_t *start, const int64_t *step, Shape s) {
    if (!x)
        return NULL;
    if (x->op == OP_CONST)
        return cst(ad, loc, x->dtype, s, x->attr.value, x->attr.npow);
    return check(ad, ir_slice(ad->g, ad->d, loc, x, start, step, s));
}

/* ---------------------------------------------------------------- gradient bookkeeping */

/* Adds contribution c (of x's shape, or one that sums to it) to the gradient of x. */
static void accumulate(AD *ad, Loc loc, Node *x, Node *c) {
    if (!c || !ad->needs[x->id])
        return;
    c = sum_to(ad, loc, c, x->shape);
    if (!c)
        return;
    assert(c->dtype == x->dtype && "a gradient has its value's dtype");
    Node *old = ad->grad[x->id];
    ad->grad[x->id] = old ? binary(ad, loc, OP_ADD, old, c) : c;
}

static bool needs(AD *ad, const Node *x) { return ad->needs[x->id]; }

/* The shape of a reduction's input with the reduced dims kept as 1. */
static Shape keepdim_shape(const Node *x, uint32_t axes) {
    Shape s = x->shape;
    for (int i = 0; i < s.rank; i++)
        if (axes & (1u << i))
            s.dim[i] = 1;
    return s;
}

/* A reduction's result (or its gradient) y, shaped so that it broadcasts against the input x: with the
   reduced dims as 1. Leading reduced dims need no reshape, since broadcasting adds them back. */
static Node *as_keepdim(AD *ad, Loc loc, const Node *red, Node *y) {
    const Node *x = red->inputs[0];
    uint32_t axes = red->attr.axes;
    if (red->attr.keepdim || (axes & (axes + 1)) == 0)
        return y;
    return reshape_to(ad, loc, y, keepdim_shape(x, axes));
}

/* ---------------------------------------------------------------- the VJP rules
   y = op(inputs), gy = dL/dy (y's shape); each rule adds dL/dx for every input x that needs one.
   Contributions of broadcasting ops have y's shape and are summed back to x's (accumulate). */
static void vjp(AD *ad, Node *n, Node *gy) {
    Loc loc = n->loc;
    Node *x = n->ninputs > 0 ? n->inputs[0] : NULL;
    Node *b = n->ninputs > 1 ? n->inputs[1] : NULL;
    DType t = n->dtype;
    switch (n->op) {
    case OP_NEG: /* dx = -gy */
        accumulate(ad, loc, x, unary(ad, loc, OP_NEG, gy));
        break;
    case OP_EXP: /* dx = gy * exp(x) = gy * y */
        accumulate(ad, loc, x, binary(ad, loc, OP_MUL, gy, n));
        break;
    case OP_LOG: /* dx = gy / x */
        accumulate(ad, loc, x, binary(ad, loc, OP_DIV, gy, x));
        break;
    case OP_SQRT: /* dx = gy / (2 sqrt(x)) = (gy / 2) / y */
        accumulate(ad, loc, x, binary(ad, loc, OP_DIV, scale(ad, loc, gy, 0.5, 0), n));
        break;
    case OP_ABS: /* dx = gy * sign(x); at x = 0 the subgradient 1 */
        accumulate(ad, loc, x,
                   select3(ad, loc, check(ad, ir_binary(ad->g, ad->d, loc, OP_LT, x, scalar(ad, loc, t, 0))),
                           unary(ad, loc, OP_NEG, gy), gy));
        break;
    case OP_RELU: /* dx = gy where x > 0, else 0 (0 at x = 0, as PyTorch) */
        accumulate(ad, loc, x,
                   select3(ad, loc, check(ad, ir_binary(ad->g, ad->d, loc, OP_GT, x, scalar(ad, loc, t, 0))),
                           gy, scalar(ad, loc, t, 0)));
        break;
    case OP_SIGMOID: /* dx = gy * y * (1 - y) */
        accumulate(ad, loc, x,
                   binary(ad, loc, OP_MUL, gy,
                          binary(ad, loc, OP_MUL, n, binary(ad, loc, OP_SUB, scalar(ad, loc, t, 1), n))));
        break;
    case OP_ERF: { /* dx = gy * 2/sqrt(pi) * exp(-x^2) */
        Node *e = unary(ad, loc, OP_EXP, unary(ad, loc, OP_NEG, binary(ad, loc, OP_MUL, x, x)));
        accumulate(ad, loc, x, binary(ad, loc, OP_MUL, scale(ad, loc, gy, 1.1283791670955126, 0), e));
        break;
    }
    case OP_RSQRT: /* y = x^(-1/2): dx = gy * (-1/2) x^(-3/2) = -0.5 gy y^3 */
        accumulate(ad, loc, x,
                   binary(ad, loc, OP_MUL, scale(ad, loc, gy, -0.5, 0),
                          binary(ad, loc, OP_MUL, binary(ad, loc, OP_MUL, n, n), n)));
        break;
    case OP_TANH: /* dx = gy * (1 - y^2) */
        accumulate(ad, loc, x,
                   binary(ad, loc, OP_MUL, gy,
                          binary(ad, loc, OP_SUB, scalar(ad, loc, t, 1), binary(ad, loc, OP_MUL, n, n))));
        break;
    case OP_CAST: /* float -> float: dx = cast(gy) back to x's dtype (integer casts carry no gradient) */
        if (gy->op == OP_CONST)
            accumulate(ad, loc, x, cst(ad, loc, x->dtype, gy->shape, gy->attr.value, gy->attr.npow));
        else
            accumulate(ad, loc, x, check(ad, ir_cast(ad->g, loc, gy, x->dtype)));
        break;
    case OP_ADD: /* da = gy, db = gy (each summed back over its broadcast dims) */
        accumulate(ad, loc, x, gy);
        accumulate(ad, loc, b, gy);
        break;
    case OP_SUB: /* da = gy, db = -gy; the negation after the sum, on the smaller tensor */
        accumulate(ad, loc, x, gy);
        if (needs(ad, b))
            accumulate(ad, loc, b, unary(ad, loc, OP_NEG, sum_to(ad, loc, gy, b->shape)));
        break;
    case OP_MUL: /* da = gy * b, db = gy * a; for a square x*x, dx = 2 gy x */
        if (x == b) {
            accumulate(ad, loc, x, binary(ad, loc, OP_MUL, scale(ad, loc, gy, 2, 0), x));
            break;
        }
        if (needs(ad, x))
            accumulate(ad, loc, x, binary(ad, loc, OP_MUL, gy, b));
        if (needs(ad, b))
            accumulate(ad, loc, b, binary(ad, loc, OP_MUL, gy, x));
        break;
    case OP_DIV: { /* y = a / b: da = gy / b, db = -gy a / b^2 = -(gy / b) * y */
        Node *q = binary(ad, loc, OP_DIV, gy, b);
        accumulate(ad, loc, x, q);
        if (needs(ad, b))
            accumulate(ad, loc, b, unary(ad, loc, OP_NEG, sum_to(ad, loc, binary(ad, loc, OP_MUL, q, n),
                                                                 b->shape)));
        break;
    }
    case OP_MAX:   /* da = gy where a >= b, db = gy elsewhere (ties go to a) */
    case OP_MIN: { /* da = gy where a <= b, db = gy elsewhere */
        Node *mask = check(ad, ir_binary(ad->g, ad->d, loc, n->op == OP_MAX ? OP_GE : OP_LE, x, b));
        Node *zero = scalar(ad, loc, t, 0);
        if (needs(ad, x))
            accumulate(ad, loc, x, select3(ad, loc, mask, gy, zero));
        if (needs(ad, b))
            accumulate(ad, loc, b, select3(ad, loc, mask, zero, gy));
        break;
    }
    case OP_POW: /* y = a^b: da = gy * b * a^(b-1), db = gy * y * log(a) */
        if (needs(ad, x)) {
            if (b->op == OP_CONST && b->attr.npow == 0) {
                /* the common a^c: c * a^(c-1) with the exponent folded */
                double c = b->attr.value;
                if (c != 0) {
                    Node *p = c == 1 ? NULL
                              : c == 2 ? x
                                       : binary(ad, loc, OP_POW, x, scalar(ad, loc, t, c - 1));
                    Node *gc = scale(ad, loc, gy, c, 0); /* a constant gy absorbs c */
                    accumulate(ad, loc, x, p ? binary(ad, loc, OP_MUL, gc, p) : gc);
                }
            } else {
                Node *p = binary(ad, loc, OP_POW, x, binary(ad, loc, OP_SUB, b, scalar(ad, loc, t, 1)));
                accumulate(ad, loc, x, binary(ad, loc, OP_MUL, binary(ad, loc, OP_MUL, gy, b), p));
            }
        }
        if (needs(ad, b))
            accumulate(ad, loc, b,
                       binary(ad, loc, OP_MUL, binary(ad, loc, OP_MUL, gy, n), unary(ad, loc, OP_LOG, x)));
        break;
    case OP_SELECT: { /* select(c, a, b): da = gy where c, db = gy where not c */
        Node *a = n->inputs[1], *bb = n->inputs[2];
        Node *zero = scalar(ad, loc, t, 0);
        if (needs(ad, a))
            accumulate(ad, loc, a, select3(ad, loc, x, gy, zero));
        if (needs(ad, bb))
            accumulate(ad, loc, bb, select3(ad, loc, x, zero, gy));
        break;
    }
    case OP_REDUCE_SUM: /* dx = broadcast(gy) */
        accumulate(ad, loc, x, broadcast_to(ad, loc, as_keepdim(ad, loc, n, gy), x->shape));
        break;
    case OP_REDUCE_MEAN: { /* dx = broadcast(gy) / count, count = the reduced elements (c * N^k) */
        double count = 1;
        int npow = 0;
        for (int i = 0; i < x->shape.rank; i++) {
            if (!(n->attr.axes & (1u << i)))
                continue;
            if (x->shape.dim[i] == IR_DIM_N)
                npow--;
            else
                count *= (double)x->shape.dim[i];
        }
        Node *s = scale(ad, loc, gy, 1 / count, npow);
        accumulate(ad, loc, x, broadcast_to(ad, loc, as_keepdim(ad, loc, n, s), x->shape));
        break;
    }
    case OP_REDUCE_MAX: { /* dx = gy at the positions equal to the max (every one of them), else 0 */
        Node *mask = check(ad, ir_binary(ad->g, ad->d, loc, OP_EQ, x, as_keepdim(ad, loc, n, n)));
        Node *g = select3(ad, loc, mask, as_keepdim(ad, loc, n, gy), scalar(ad, loc, t, 0));
        accumulate(ad, loc, x, broadcast_to(ad, loc, g, x->shape));
        break;
    }
    case OP_REDUCE_MIN: { /* as reduce_max: dx = gy at every position equal to the min, else 0 */
        Node *mask = check(ad, ir_binary(ad->g, ad->d, loc, OP_EQ, x, as_keepdim(ad, loc, n, n)));
        Node *g = select3(ad, loc, mask, as_keepdim(ad, loc, n, gy), scalar(ad, loc, t, 0));
        accumulate(ad, loc, x, broadcast_to(ad, loc, g, x->shape));
        break;
    }
    case OP_MATMUL: {
        /* Y = A B with A, B the logical operands; the stored a is A^T when ta, the stored b is B^T when tb.
           dA = gy B^T, dB = A^T gy; for the stored operands:
             ta=0: da = gy B^T      = matmul(gy, b, tb=!tb)      ta=1: da = B gy^T = matmul(b, gy, ta=tb, tb=1)
             tb=0: db = A^T gy      = matmul(a, gy, ta=!ta)      tb=1: db = gy^T A = matmul(gy, a, ta=1, tb=ta)
           so no transpose is ever materialized. With batch dims, each product has the broadcast batch
           shape and accumulate sums it back over the batch dims that broadcasting added or stretched. */
        bool ta = n->attr.transpose_a, tb = n->attr.transpose_b;
        if (needs(ad, x))
            accumulate(ad, loc, x, ta ? matmul(ad, loc, b, gy, tb, true) : matmul(ad, loc, gy, b, false, !tb));
        if (needs(ad, b)) {
            Node *a = x;
            if (b->shape.rank == 2 && x->shape.rank > 2 && !ta && gy->op != OP_CONST) {
                /* a shared 2-D b (a Linear weight on [..., in]): its gradient sums over every batch
                   element, which is one product when the batch dims fold into the rows of a and gy */
                Shape sa = x->shape;
                int64_t rows = ir_shape_numel_per_n(&sa) / sa.dim[sa.rank - 1];
                if (!ir_shape_has_n(&sa) && rows > 0) {
                    int64_t da[] = {rows, sa.dim[sa.rank - 1]};
                    int64_t dg[] = {rows, gy->shape.dim[gy->shape.rank - 1]};
                    a = reshape_to(ad, loc, x, ir_shape(2, da));
                    gy = reshape_to(ad, loc, gy, ir_shape(2, dg));
                }
            }
            accumulate(ad, loc, b, tb ? matmul(ad, loc, gy, a, true, ta) : matmul(ad, loc, a, gy, !ta, false));
        }
        break;
    }
    case OP_RESHAPE: /* dx = reshape(gy) back */
        accumulate(ad, loc, x, reshape_to(ad, loc, gy, x->shape));
        break;
    case OP_TRANSPOSE: { /* y dim i = x dim perm[i]: dx = transpose(gy, perm^-1) */
        int inv[IR_MAX_RANK];
        for (int i = 0; i < n->shape.rank; i++)
            inv[n->attr.perm[i]] = i;
        if (gy->op == OP_CONST)
            accumulate(ad, loc, x, cst(ad, loc, t, x->shape, gy->attr.value, gy->attr.npow));
        else
            accumulate(ad, loc, x, check(ad, ir_transpose(ad->g, ad->d, loc, gy, inv)));
        break;
    }
    case OP_BROADCAST: /* dx = gy summed back to x's shape */
        accumulate(ad, loc, x, gy);
        break;
    case OP_CONV2D: { /* the two adjoints of the convolution, each one kernel with conv2d's attributes */
        Node *in[2] = {gy, b};
        if (needs(ad, x))
            accumulate(ad, loc, x, window_bwd(ad, loc, OP_CONV2D_BWD_INPUT, n, 2, in, x->shape));
        in[0] = x;
        in[1] = gy;
        if (needs(ad, b))
            accumulate(ad, loc, b, window_bwd(ad, loc, OP_CONV2D_BWD_WEIGHT, n, 2, in, b->shape));
        break;
    }
    case OP_MAX_POOL2D: { /* dx: each gy added at its window's first maximum, found again from x */
        Node *in[2] = {x, gy};
        accumulate(ad, loc, x, window_bwd(ad, loc, OP_MAX_POOL2D_BWD, n, 2, in, x->shape));
        break;
    }
    case OP_AVG_POOL2D:            /* dx: each gy spread evenly over its window */
    case OP_ADAPTIVE_AVG_POOL2D: {
        Op bwd = n->op == OP_AVG_POOL2D ? OP_AVG_POOL2D_BWD : OP_ADAPTIVE_AVG_POOL2D_BWD;
        accumulate(ad, loc, x, window_bwd(ad, loc, bwd, n, 1, &gy, x->shape));
        break;
    }
    case OP_SLICE: /* y[i] = x[start + i step]: dx = gy at start + i step, 0 elsewhere: a pad */
        accumulate(ad, loc, x,
                   check(ad, ir_pad(ad->g, ad->d, loc, gy, n->attr.start, n->attr.step, x->shape, 0)));
        break;
    case OP_PAD: /* y[start + i step] = x[i]: dx = the slice of gy that x landed in */
        accumulate(ad, loc, x, slice_of(ad, loc, gy, n->attr.start, n->attr.step, x->shape));
        break;
    case OP_CONCAT: { /* dx_k = gy's slice along axis where x_k sits */
        int64_t start[IR_MAX_RANK] = {0}, step[IR_MAX_RANK];
        for (int i = 0; i < IR_MAX_RANK; i++)
            step[i] = 1;
        int axis = n->attr.axis;
        for (int k = 0; k < n->ninputs; k++) {
            Node *xk = n->inputs[k];
            if (needs(ad, xk))
                accumulate(ad, loc, xk, slice_of(ad, loc, gy, start, step, xk->shape));
            assert(xk->shape.dim[axis] >= 0 && "concat never joins along N");
            start[axis] += xk->shape.dim[axis];
        }
        break;
    }
    case OP_GATHER: /* y[..i..] = x[..index[..i..]..]: dx = scatter_add(index, gy), repeated indices adding */
        accumulate(ad, loc, x,
                   check(ad, ir_scatter_add(ad->g, ad->d, loc, b, gy, n->attr.axis, x->shape)));
        break;
    case OP_SCATTER_ADD: /* y[..index[..i..]..] += src[..i..]: dsrc = gather(gy, index); index: none */
        if (needs(ad, b))
            accumulate(ad, loc, b, check(ad, ir_gather(ad->g, ad->d, loc, gy, x, n->attr.axis)));
        break;
    case OP_CONV2D_BWD_INPUT: case OP_CONV2D_BWD_WEIGHT: case OP_MAX_POOL2D_BWD: case OP_AVG_POOL2D_BWD:
    case OP_ADAPTIVE_AVG_POOL2D_BWD:
        diag_error(ad->d, loc, "autodiff: second derivatives are not supported (%s on the gradient path)",
                   ir_op_name(n->op));
        ad->failed = true;
        break;
    default:
        diag_error(ad->d, loc, "autodiff: no gradient rule for %s", ir_op_name(n->op));
        ad->failed = true;
        break;
    }
}

/* Whether gradients flow from n to its inputs at all. Comparisons, argmax, argmin, one-hot and casts to or
   from integers are piecewise constant, and iota and random numbers depend on nothing differentiable: they
   stop the gradient. The backward ops of the window primitives pass it, so that one met on a gradient path
   reaches vjp and is reported there. */
static bool passes_gradient(const Node *n) {
    if (!ir_dtype_is_float(n->dtype))
        return false;
    switch (n->op) {
    case OP_INPUT: case OP_STATE: case OP_CONST: case OP_PARAM: case OP_ARGMAX: case OP_ARGMIN:
    case OP_ONE_HOT: case OP_IOTA: case OP_RANDOM:
        return false;
    case OP_CAST:
        return ir_dtype_is_float(n->inputs[0]->dtype);
    default:
        return ir_op_kind(n->op) != K_COMPARE;
    }
}

static bool trainable(const Node *n) {
    return n->op == OP_PARAM && !n->attr.frozen && ir_dtype_is_float(n->dtype);
}

/* Folding leaves behind the constants it folded (the seed 1, a 1/N before its broadcast); dropping them
   here keeps the dump after autodiff readable, without waiting for dce. */
static void drop_unused_consts(AD *ad) {
    Graph *g = ad->g;
    int *uses = arena_alloc(g->arena, (size_t)g->nnodes * sizeof(int) + 1);
    for (int i = ad->nfwd; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i]->ninputs; j++)
            uses[g->nodes[i]->inputs[j]->id]++;
    for (int i = 0; i < g->noutputs; i++)
        uses[g->outputs[i].value->id]++;
    bool any = false;
    for (int i = ad->nfwd; i < g->nnodes; i++) {
        if (g->nodes[i]->op == OP_CONST && uses[i] == 0) {
            g->nodes[i] = NULL; /* ir_renumber skips cleared slots */
            any = true;
        }
    }
    if (any)
        ir_renumber(g);
}

bool pass_autodiff(Graph *g, Diag *d) {
    Node *loss = NULL;
    for (int i = 0; i < g->noutputs; i++)
        if (!g->outputs[i].update && strcmp(g->outputs[i].name, "loss") == 0)
            loss = g->outputs[i].value;
    if (!loss) {
        diag_error(d, (Loc){0}, "autodiff: graph %s has no output \"loss\"", g->name ? g->name : "?");
        return false;
    }
    if (loss->shape.rank != 0 || !ir_dtype_is_float(loss->dtype)) {
        char buf[64];
        diag_error(d, loss->loc, "autodiff: the loss must be a float scalar, not %s",
                   ir_type_str(loss->dtype, &loss->shape, buf, sizeof buf));
        return false;
    }

    AD ad = {.g = g, .d = d, .nfwd = g->nnodes};
    ad.grad = arena_alloc(g->arena, (size_t)ad.nfwd * sizeof(Node *) + 1);
    ad.needs = arena_alloc(g->arena, (size_t)ad.nfwd + 1);
    for (int i = 0; i < ad.nfwd; i++) {
        Node *n = g->nodes[i];
        assert(n->id == i && "node ids are positions before autodiff");
        bool any = trainable(n);
        if (passes_gradient(n))
            for (int j = 0; j < n->ninputs; j++)
                any |= ad.needs[n->inputs[j]->id];
        ad.needs[i] = any;
    }

    if (ad.needs[loss->id])
        ad.grad[loss->id] = scalar(&ad, loss->loc, loss->dtype, 1);
    for (int i = ad.nfwd - 1; i >= 0 && !ad.failed; i--) {
        Node *n = g->nodes[i];
        if (ad.grad[i] && passes_gradient(n))
            vjp(&ad, n, ad.grad[i]);
    }
    if (ad.failed)
        return false;

    for (int i = 0; i < ad.nfwd; i++) {
        Node *n = g->nodes[i];
        if (!trainable(n))
            continue;
        Node *gn = ad.grad[i] ? ad.grad[i] : cst(&ad, n->loc, n->dtype, n->shape, 0, 0);
        if (!gn)
            return false;
        ir_add_output(g, arena_printf(g->arena, "grad.%s", n->attr.name), gn, false);
    }
    drop_unused_consts(&ad);
    return true;
}
