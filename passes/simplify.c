/* simplify.c: local rewrites that leave fewer nodes for the later passes: constant folding, chains of
   transposes, reshapes, slices and pads collapse, elementwise ops read a broadcast's input directly,
   identities (x*1, x+0, x-0, x/1, x*0 on integers, neg(neg x), a cast, reshape or broadcast to the same
   type, a slice or pad that moves nothing, a concat of one tensor) disappear, x / 2^k becomes x * 2^-k and
   pow(x, 2) becomes x*x; a CONST operand of a commutative op or a comparison goes second, the form later
   passes match.
   The numerics rule: every rewrite gives the generated code's results bit for bit (NaN payloads aside), so
   folding computes as the kernels do (codegen/llvm/kernels.c: a CONST is value * n^npow evaluated in
   double, then converted to its dtype; f32 arithmetic rounds each op to float). Only exactly rounded
   operations fold; exp, log, tanh and the like would need libm's exact answer and stay.
   Nodes are rewritten in place or replaced by earlier ones, so the order stays topological; the few new
   constants are placed before their first user at the end; what becomes unused is left for dce. Moving
   transposes into matmul flags is pass_layout's work. */
#include "passes.h"

#include <assert.h>
#include <math.h>
#include <string.h>

static bool is_identity_perm(const Node *t) {
    for (int i = 0; i < t->shape.rank; i++)
        if (t->attr.perm[i] != i)
            return false;
    return true;
}

typedef struct Simp {
    Graph *g;
    int nold;      /* nodes before the pass; ids from nold on are constants the pass made */
    Node **before; /* by id - nold: the old node a new constant must precede */
    int cap;       /* of before */
} Simp;

/* A node's inputs are rewritten through a copy: the array may be shared with the node it was built from. */
static void set_input(Simp *s, Node *n, int i, Node *x) {
    if (n->inputs[i] == x)
        return;
    Node **in = arena_alloc(s->g->arena, (size_t)n->ninputs * sizeof(Node *));
    for (int j = 0; j < n->ninputs; j++)
        in[j] = n->inputs[j];
    in[i] = x;
    n->inputs = in;
}

/* n becomes the constant value * N^npow of its own dtype and shape, in place */
static void make_const(Node *n, double value, int npow) {
    Attr a = {0};
    a.value = value;
    a.npow = npow;
    a.dtype = n->dtype;
    a.shape = n->shape;
    n->op = OP_CONST;
    n->ninputs = 0;
    n->inputs = NULL;
    n->attr = a;
}

/* A new constant for n's use, placed before n when the pass ends. */
static Node *new_const(Simp *s, Node *n, DType t, Shape shape, double value) {
    Node *c = ir_const(s->g, n->loc, t, shape, value);
    int k = c->id - s->nold;
    if (k == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        s->before = arena_realloc(s->g->arena, s->before, sizeof(Node *) * (size_t)s->cap, sizeof(Node *) * (size_t)cap);
        s->cap = cap;
    }
    s->before[k] = n;
    return c;
}

/* ---------------------------------------------------------------- constant folding
   Values as the kernels hold them: a float CONST is its value rounded to the dtype; an integer one is the
   kernels' conversion of the double (truncate; i32 and u8 wrap; i64 saturates). Integer results fold only
   while a double holds them exactly (|v| <= 2^53), since Attr.value is a double. */

static double to_float(DType t, double v) {
    return t == DT_F32 ? (double)(float)v : v;
}

/* the kernels' float-to-integer conversion (codegen/llvm/kernels.c float_to_int) */
static int64_t float_to_int(double v, DType to) {
    if (to != DT_I64)
        v = fmod(v, to == DT_U8 ? 256.0 : 4294967296.0);
    int64_t r;
    if (isnan(v))
        r = 0;
    else if (v >= 9223372036854775808.0)
        r = INT64_MAX;
    else if (v <= -9223372036854775808.0)
        r = INT64_MIN;
    else
        r = (int64_t)v;
    return to == DT_I32 ? (int64_t)(int32_t)(uint32_t)(uint64_t)r : to == DT_U8 ? (int64_t)(uint8_t)r : r;
}

/* an integer result of dtype t, wrapped as the kernels' arithmetic wraps */
static int64_t wrap_int(int64_t v, DType t) {
    return t == DT_I32 ? (int64_t)(int32_t)(uint32_t)(uint64_t)v : t == DT_U8 ? (int64_t)(uint8_t)(uint64_t)v : v;
}

static bool int_fits_double(int64_t v) {
    return v >= -((int64_t)1 << 53) && v <= ((int64_t)1 << 53);
}

/* max and min as the kernels compute them: NaN from either side propagates, equal values give x */
static double float_max(double x, double y, bool is_max) {
    if (isnan(y))
        return y;
    if (isnan(x))
        return x;
    return (is_max ? x >= y : x <= y) ? x : y;
}

static bool compare(Op op, double a, double b) {
    switch (op) {
    case OP_EQ: return a == b;
    case OP_NE: return a != b;
    case OP_LT: return a < b;
    case OP_LE: return a <= b;
    case OP_GT: return a > b;
    case OP_GE: return a >= b;
    default: LATHE_UNREACHABLE("compare: not a comparison");
    }
}

/* op over float values x (already of dtype t); false when it does not fold exactly */
static bool fold_float(const Node *n, DType t, const double *x, double *out) {
    double a = x[0], b = n->ninputs > 1 ? x[1] : 0, r;
    switch (n->op) {
    case OP_NEG: r = -a; break;
    case OP_ABS: r = fabs(a); break;
    case OP_RELU: r = a < 0 ? 0 : a; break;
    /* +, -, *, / and sqrt in double, then rounded to float, equal float's own correctly rounded result
       (a double holds more than twice float's precision plus two bits) */
    case OP_SQRT: r = sqrt(a); break;
    case OP_ADD: r = a + b; break;
    case OP_SUB: r = a - b; break;
    case OP_MUL: r = a * b; break;
    case OP_DIV: r = a / b; break;
    case OP_MAX: r = float_max(a, b, true); break;
    case OP_MIN: r = float_max(a, b, false); break;
    case OP_EQ: case OP_NE: case OP_LT: case OP_LE: case OP_GT: case OP_GE:
        *out = compare(n->op, a, b);
        return true;
    case OP_CAST:
        if (ir_dtype_is_float(n->dtype)) {
            *out = to_float(n->dtype, a);
            return true;
        } else {
            int64_t v = float_to_int(a, n->dtype);
            *out = (double)v;
            return int_fits_double(v);
        }
    default: return false;
    }
    *out = to_float(t, r);
    return true;
}

/* op over integer values x of dtype t */
static bool fold_int(const Node *n, DType t, const int64_t *x, double *out) {
    int64_t a = x[0], b = n->ninputs > 1 ? x[1] : 0;
    uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
    int64_t r;
    /* an i64 overflow wraps in the kernels but saturates in the interpreter: leave it to both */
    if (t == DT_I64 && ((n->op == OP_ADD && __builtin_add_overflow(a, b, &r)) ||
                        (n->op == OP_SUB && __builtin_sub_overflow(a, b, &r)) ||
                        (n->op == OP_MUL && __builtin_mul_overflow(a, b, &r))))
        return false;
    switch (n->op) {
    case OP_NEG: r = (int64_t)(0 - ua); break;
    case OP_ABS: r = a < 0 ? (int64_t)(0 - ua) : a; break;
    case OP_ADD: r = (int64_t)(ua + ub); break;
    case OP_SUB: r = (int64_t)(ua - ub); break;
    case OP_MUL: r = (int64_t)(ua * ub); break;
    /* truncating; x / 0 is 0 and x / -1 wraps, as the kernels define it */
    case OP_DIV: r = b == 0 ? 0 : b == -1 ? (int64_t)(0 - ua) : a / b; break;
    case OP_MAX: r = a > b ? a : b; break;
    case OP_MIN: r = a < b ? a : b; break;
    case OP_EQ: case OP_NE: case OP_LT: case OP_LE: case OP_GT: case OP_GE:
        /* values are normalized (u8 in 0..255, i32 sign-extended), so int64 order is the dtype's */
        *out = compare(n->op, (double)a, (double)b);
        return true;
    case OP_CAST:
        if (ir_dtype_is_float(n->dtype)) {
            *out = to_float(n->dtype, (double)a);
            return true;
        }
        r = a;
        t = n->dtype;
        break;
    default: return false;
    }
    r = wrap_int(r, t);
    *out = (double)r;
    return int_fits_double(r);
}

/* An elementwise op, cast or select whose inputs are all constants independent of N becomes a constant. */
static bool fold_constants(Node *n) {
    OpKind k = ir_op_kind(n->op);
    if (n->ninputs == 0 || !(k == K_UNARY || k == K_BINARY || k == K_COMPARE || n->op == OP_SELECT))
        return false;
    for (int i = 0; i < n->ninputs; i++)
        if (n->inputs[i]->op != OP_CONST || n->inputs[i]->attr.npow != 0)
            return false;
    if (n->op == OP_SELECT) {
        /* the chosen operand converted as a constant of the result's dtype */
        Node *c = n->inputs[0];
        int64_t cond = float_to_int(c->attr.value, c->dtype);
        double v = n->inputs[cond != 0 ? 1 : 2]->attr.value;
        if (ir_dtype_is_float(n->dtype)) {
            make_const(n, to_float(n->dtype, v), 0);
            return true;
        }
        int64_t iv = float_to_int(v, n->dtype);
        if (!int_fits_double(iv))
            return false;
        make_const(n, (double)iv, 0);
        return true;
    }
    DType t = n->inputs[0]->dtype;
    double r;
    bool ok;
    if (ir_dtype_is_float(t)) {
        double x[2] = {0, 0};
        for (int i = 0; i < n->ninputs; i++)
            x[i] = to_float(t, n->inputs[i]->attr.value);
        ok = fold_float(n, t, x, &r);
    } else {
        int64_t x[2] = {0, 0};
        for (int i = 0; i < n->ninputs; i++)
            x[i] = float_to_int(n->inputs[i]->attr.value, t);
        ok = fold_int(n, t, x, &r);
    }
    if (!ok)
        return false;
    make_const(n, r, 0);
    return true;
}

/* k when v = 2^k exactly (v > 0), else INT32_MIN */
static int log2_exact(double v) {
    int e;
    if (!(v > 0) || isinf(v) || frexp(v, &e) != 0.5)
        return INT32_MIN;
    return e - 1;
}

/* Constants that depend on N (value * N^npow, the kernels evaluate it in double at run time, then convert)
   fold only where the folded constant gives the same bits for every N:
     -(c N^p) = (-c) N^p: negation commutes with every rounding;
     (c N^p) * 2^k = (c 2^k) N^p, and / 2^k: scaling by a power of two is exact while every value stays
       a normal float; with |c|, |c 2^k| in [2^-60, 2^60], |p| <= 1 and 1 <= N <= 2^31 it does (f32's
       normal range is 2^-126..2^128);
     f64 (c N^p) cast to f32 is (c N^p) of f32: the kernels convert the same double;
     integers with p >= 0: c N^p + d N^p, c N^p - d N^p, c N^p * d N^q are exact in integers, and the
       kernels' double holds them exactly while |c|, |d| <= 2^20 and p + q <= 1 (N < 2^32).
   Anything else (c N^p * d N^q in floats, c N^-1 in integers) depends on how N rounds, and stays. */
static bool fold_npow(Node *n) {
    if (n->ninputs == 0 || n->ninputs > 2)
        return false;
    OpKind k = ir_op_kind(n->op);
    if (k != K_UNARY && k != K_BINARY)
        return false;
    Node *a = n->inputs[0], *b = n->ninputs > 1 ? n->inputs[1] : NULL;
    if (a->op != OP_CONST || (b && b->op != OP_CONST) || (a->attr.npow == 0 && (!b || b->attr.npow == 0)))
        return false; /* constants independent of N are fold_constants' */
    double ca = a->attr.value, cb = b ? b->attr.value : 0;
    int pa = a->attr.npow, pb = b ? b->attr.npow : 0;
    if (ir_dtype_is_float(a->dtype)) {
        if (n->op == OP_NEG) {
            make_const(n, -ca, pa);
            return true;
        }
        if (n->op == OP_CAST) {
            if (a->dtype == DT_F64 && n->dtype == DT_F32) {
                make_const(n, ca, pa);
                return true;
            }
            return false;
        }
        if (n->op != OP_MUL && n->op != OP_DIV)
            return false;
        /* the power of two is b (or a, for a product) */
        double c = ca, d = cb;
        int p = pa, q = pb;
        if (n->op == OP_MUL && pb != 0) {
            c = cb, d = ca, p = pb, q = pa;
        }
        if (q != 0 || p < -1 || p > 1)
            return false;
        int e = log2_exact(fabs(d));
        if (e == INT32_MIN || (d != to_float(a->dtype, d)))
            return false;
        double r = n->op == OP_MUL ? c * d : c / d;
        double lo = 0x1p-60, hi = 0x1p60;
        if (!(fabs(c) >= lo && fabs(c) <= hi && fabs(r) >= lo && fabs(r) <= hi))
            return false;
        make_const(n, r, p);
        return true;
    }
    /* integers */
    double lim = 1 << 20;
    if (pa < 0 || pb < 0 || ca != trunc(ca) || cb != trunc(cb) || fabs(ca) > lim || fabs(cb) > lim)
        return false;
    switch (n->op) {
    case OP_NEG: make_const(n, -ca, pa); return true;
    case OP_ADD:
    case OP_SUB:
        if (pa != pb || pa > 1)
            return false;
        make_const(n, n->op == OP_ADD ? ca + cb : ca - cb, pa);
        return true;
    case OP_MUL:
        if (pa + pb > 1)
            return false;
        make_const(n, ca * cb, pa + pb);
        return true;
    default: return false;
    }
}

/* ---------------------------------------------------------------- algebraic rewrites */

/* Elementwise ops broadcast their operands themselves, so an operand that is a broadcast whose input
   gives the same result shape reads its input directly (no materialized copy; autodiff makes these from
   the gradients of sums). */
static void fold_broadcast_operands(Simp *s, Node *n) {
    for (int i = 0; i < n->ninputs; i++) {
        Node *b = n->inputs[i];
        if (b->op != OP_BROADCAST)
            continue;
        Shape r = b->inputs[0]->shape, t;
        for (int j = 0; j < n->ninputs; j++) {
            if (j == i)
                continue;
            if (!ir_shape_broadcast(&r, &n->inputs[j]->shape, &t))
                LATHE_UNREACHABLE("simplify: the operands of an elementwise op do not broadcast");
            r = t;
        }
        if (ir_shape_eq(&r, &n->shape))
            set_input(s, n, i, b->inputs[0]);
    }
}

/* x op c is x when c is the op's identity and x already has the result's type */
static Node *identity_operand(const Node *n) {
    if (n->ninputs != 2)
        return NULL;
    Node *a = n->inputs[0], *b = n->inputs[1];
    double unit = n->op == OP_MUL || n->op == OP_DIV ? 1 : 0;
    bool commutes = n->op == OP_MUL || n->op == OP_ADD;
    if (ir_is_const(b, unit) && ir_shape_eq(&a->shape, &n->shape) && a->dtype == n->dtype)
        return a;
    if (commutes && ir_is_const(a, unit) && ir_shape_eq(&b->shape, &n->shape) && b->dtype == n->dtype)
        return b;
    return NULL;
}

/* Ops whose operands may swap with the same bits: float max and min may not (max(+0, -0) gives its first
   operand), integer ones may. */
static bool commutes(const Node *n) {
    switch (n->op) {
    case OP_ADD: case OP_MUL: case OP_EQ: case OP_NE: return true;
    case OP_MAX: case OP_MIN: return !ir_dtype_is_float(n->dtype);
    default: return false;
    }
}

/* The comparison that gives the same answer with its operands swapped (c < x is x > c, NaN or not). */
static Op mirrored(Op op) {
    switch (op) {
    case OP_LT: return OP_GT;
    case OP_LE: return OP_GE;
    case OP_GT: return OP_LT;
    case OP_GE: return OP_LE;
    default: return op;
    }
}

/* The canonical form: a constant operand of a commutative op or a comparison goes second (in a copy of the
   inputs array, which may be shared). */
static void const_second(Simp *s, Node *n) {
    bool cmp = ir_op_kind(n->op) == K_COMPARE;
    if (n->ninputs != 2 || !(commutes(n) || cmp) || n->inputs[0]->op != OP_CONST || n->inputs[1]->op == OP_CONST)
        return;
    Node **in = arena_alloc(s->g->arena, 2 * sizeof(Node *));
    in[0] = n->inputs[1];
    in[1] = n->inputs[0];
    n->inputs = in;
    n->op = mirrored(n->op);
}

/* Rewrites of the arithmetic ops; returns the earlier node that replaces n, or NULL when n stays. */
static Node *simplify_arith(Simp *s, Node *n) {
    fold_broadcast_operands(s, n);
    Node *id = identity_operand(n);
    if (id)
        return id;
    Node *a = n->inputs[0], *b = n->inputs[1];
    DType t = n->dtype;
    /* x * 0 = 0 in integers; in floats NaN * 0 and inf * 0 are NaN, so it stays */
    if (n->op == OP_MUL && !ir_dtype_is_float(t) && (ir_is_const(a, 0) || ir_is_const(b, 0))) {
        make_const(n, 0, 0);
        return NULL;
    }
    /* x / 2^k = x * 2^-k exactly (both are the correctly rounded x 2^-k); a multiply is cheaper */
    if (n->op == OP_DIV && ir_dtype_is_float(t) && b->op == OP_CONST && b->attr.npow == 0) {
        double c = to_float(t, b->attr.value), inv = 1 / c;
        if (log2_exact(fabs(c)) != INT32_MIN && to_float(t, inv) == inv && isfinite(inv) && inv != 0) {
            set_input(s, n, 1, new_const(s, n, t, b->shape, inv)); /* cse merges equal ones */
            n->op = OP_MUL;
        }
    }
    return NULL;
}

/* pow(x, 2) = x * x: LLVM makes the same rewrite of llvm.pow, and x * x is exactly rounded */
static void square(Simp *s, Node *n) {
    Node *x = n->inputs[0], *e = n->inputs[1];
    if (!ir_dtype_is_float(n->dtype) || !ir_is_const(e, 2) || !ir_shape_eq(&x->shape, &n->shape))
        return;
    set_input(s, n, 1, x);
    n->op = OP_MUL;
}

/* A slice or pad that starts at 0 with step 1 in every dim and keeps the shape moves nothing. */
static bool is_identity_window(const Node *n) {
    const Node *x = n->inputs[0];
    if (!ir_shape_eq(&x->shape, &n->shape) || x->dtype != n->dtype)
        return false;
    for (int i = 0; i < n->shape.rank; i++)
        if (n->attr.start[i] != 0 || n->attr.step[i] != 1)
            return false;
    return true;
}

/* A slice of a slice is one slice: y[i] = m[s2 + i t2] = x[s1 + (s2 + i t2) t1]. A pad of a pad with the
   same value is one pad: y[s2 + (s1 + i t1) t2] = x[i], the value elsewhere. (Autodiff's concat and pad
   gradients make such chains.) */
static void compose_windows(Simp *s, Node *n) {
    Node *m = n->inputs[0];
    if (m->op != n->op || (n->op == OP_PAD && m->attr.value != n->attr.value))
        return;
    for (int i = 0; i < n->shape.rank; i++) {
        int64_t s1 = m->attr.start[i], t1 = m->attr.step[i], s2 = n->attr.start[i], t2 = n->attr.step[i];
        n->attr.start[i] = n->op == OP_SLICE ? s1 + s2 * t1 : s2 + s1 * t2;
        n->attr.step[i] = t1 * t2;
    }
    set_input(s, n, 0, m->inputs[0]);
}

/* A transpose of a transpose is one transpose: y dim i = t dim p2[i] = x dim p1[p2[i]]. */
static void compose_transposes(Simp *s, Node *n) {
    Node *in = n->inputs[0];
    if (in->op != OP_TRANSPOSE)
        return;
    int perm[IR_MAX_RANK];
    for (int i = 0; i < n->shape.rank; i++)
        perm[i] = in->attr.perm[n->attr.perm[i]];
    for (int i = 0; i < n->shape.rank; i++)
        n->attr.perm[i] = perm[i];
    set_input(s, n, 0, in->inputs[0]);
}

/* Whether every value of dtype from is a value of dtype to (so a cast there and back is the identity). */
static bool holds_exactly(DType to, DType from) {
    switch (from) {
    case DT_F32: return to == DT_F64;
    case DT_I32: return to == DT_I64 || to == DT_F64;
    case DT_U8: return to != DT_U8;
    default: return false;
    }
}

/* Rewrites n in place; returns the earlier node that replaces it, or NULL when n stays. */
static Node *simplify_node(Simp *s, Node *n) {
    if (fold_constants(n) || fold_npow(n))
        return NULL;
    /* a constant moved, reshaped or broadcast is the same constant of the new shape */
    if ((n->op == OP_BROADCAST || n->op == OP_RESHAPE || n->op == OP_TRANSPOSE) && n->inputs[0]->op == OP_CONST) {
        make_const(n, n->inputs[0]->attr.value, n->inputs[0]->attr.npow);
        return NULL;
    }
    switch (n->op) {
    case OP_TRANSPOSE:
        compose_transposes(s, n);
        return is_identity_perm(n) ? n->inputs[0] : NULL;
    case OP_RESHAPE:
        if (n->inputs[0]->op == OP_RESHAPE)
            set_input(s, n, 0, n->inputs[0]->inputs[0]);
        /* fallthrough */
    case OP_BROADCAST:
        return ir_shape_eq(&n->inputs[0]->shape, &n->shape) ? n->inputs[0] : NULL;
    case OP_CAST: {
        Node *x = n->inputs[0];
        if (x->dtype == n->dtype)
            return x;
        /* a cast back from a type that holds every value of the first exactly is the first value */
        if (x->op == OP_CAST && x->inputs[0]->dtype == n->dtype && holds_exactly(x->dtype, n->dtype))
            return x->inputs[0];
        return NULL;
    }
    case OP_NEG:
        return n->inputs[0]->op == OP_NEG ? n->inputs[0]->inputs[0] : NULL;
    case OP_MUL: case OP_ADD: case OP_SUB: case OP_DIV: {
        Node *r = simplify_arith(s, n);
        if (!r && n->op != OP_CONST)
            const_second(s, n);
        return r;
    }
    case OP_POW:
        fold_broadcast_operands(s, n);
        square(s, n);
        return NULL;
    case OP_SLICE: case OP_PAD:
        compose_windows(s, n);
        return is_identity_window(n) ? n->inputs[0] : NULL;
    case OP_CONCAT:
        return n->ninputs == 1 ? n->inputs[0] : NULL;
    default:
        if (ir_op_kind(n->op) == K_BINARY || ir_op_kind(n->op) == K_COMPARE || n->op == OP_SELECT)
            fold_broadcast_operands(s, n);
        const_second(s, n);
        return NULL;
    }
}

/* The constants the pass made go right before their first user; then ids are positions again. */
static void place_new_consts(Simp *s) {
    Graph *g = s->g;
    int nnew = g->nnodes - s->nold;
    if (nnew == 0)
        return;
    Node **order = arena_alloc(g->arena, sizeof(Node *) * (size_t)g->nnodes);
    int *first = arena_alloc(g->arena, sizeof(int) * (size_t)s->nold + 1); /* old id -> its new consts */
    int *next = arena_alloc(g->arena, sizeof(int) * (size_t)nnew);
    for (int i = 0; i < s->nold; i++)
        first[i] = -1;
    for (int k = nnew - 1; k >= 0; k--) {
        int at = s->before[k]->id;
        next[k] = first[at];
        first[at] = k;
    }
    int m = 0;
    for (int i = 0; i < s->nold; i++) {
        for (int k = first[i]; k >= 0; k = next[k])
            order[m++] = g->nodes[s->nold + k];
        order[m++] = g->nodes[i];
    }
    assert(m == g->nnodes && "every new constant has a place");
    memcpy(g->nodes, order, sizeof(Node *) * (size_t)m);
    ir_renumber(g);
}

bool pass_simplify(Graph *g, Diag *d) {
    int nold = g->nnodes;
    Simp s = {g, nold, NULL, 0};
    /* repl[id]: the node that stands for node id from now on (itself when it stays) */
    Node **repl = arena_alloc(g->arena, (size_t)nold * sizeof(Node *) + 1);
    for (int i = 0; i < nold; i++) {
        Node *n = g->nodes[i];
        assert(n->id == i && "node ids are positions");
        for (int j = 0; j < n->ninputs; j++)
            if (n->inputs[j]->id < nold)
                set_input(&s, n, j, repl[n->inputs[j]->id]);
        Node *r = simplify_node(&s, n);
        repl[i] = r ? r : n;
    }
    for (int i = 0; i < g->noutputs; i++)
        g->outputs[i].value = repl[g->outputs[i].value->id];
    place_new_consts(&s);
    return true;
}
