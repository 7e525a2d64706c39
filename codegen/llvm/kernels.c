/* kernels.c: one LLVM function per compute node. Elementwise ops, broadcasts and transposes are a loop nest
   over the output with a stride per operand (0 on broadcast dims), simplified by dropping unit dims and
   merging dims that are contiguous in every operand, so that the innermost loop is as long as possible and
   unit-stride where the layouts allow: that is the loop the vectorizer turns into SIMD. Reductions either
   keep one accumulator per output (the innermost dim reduced) or add whole rows into the output (the
   innermost dim kept); matmul calls OpenBLAS, one GEMM per (broadcast) batch. Convolution, pooling, the
   data-movement ops and random call the runtime's kernels (lathe_kern.h) with a constant descriptor of the
   node. Sizes with N are computed from the n argument. */
#include "cg_llvm.h"

#include "../../runtime/lathe_kern.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A size c * n^p: every dimension is a constant or N, and products of them stay monomials. */
typedef struct Sym {
    int64_t c;
    int p;
} Sym;

static Sym sym_dim(int64_t d) {
    return d == IR_DIM_N ? (Sym){1, 1} : (Sym){d, 0};
}

static Sym sym_mul(Sym a, Sym b) {
    return (Sym){a.c * b.c, a.p + b.p};
}

static bool sym_eq(Sym a, Sym b) {
    return a.c == b.c && (a.c == 0 || a.p == b.p);
}

static bool sym_is_one(Sym a) {
    return a.c == 1 && a.p == 0;
}

enum { NEST_MAX_OPS = 4 };

/* A loop nest: dims outer to inner, and each operand's element stride per dim. */
typedef struct Nest {
    int rank, nops;
    Sym dim[IR_MAX_RANK];
    Sym stride[NEST_MAX_OPS][IR_MAX_RANK];
} Nest;

static void contiguous_strides(const Shape *s, Sym *st) {
    Sym acc = {1, 0};
    for (int i = s->rank - 1; i >= 0; i--) {
        st[i] = acc;
        acc = sym_mul(acc, sym_dim(s->dim[i]));
    }
}

/* Strides of an input of shape in read at the index of an output of shape out, numpy broadcasting. */
static void broadcast_strides(const Shape *in, const Shape *out, Sym *st) {
    Sym cs[IR_MAX_RANK] = {0};
    contiguous_strides(in, cs);
    int lead = out->rank - in->rank;
    for (int i = 0; i < out->rank; i++) {
        int j = i - lead;
        if (j < 0 || (in->dim[j] == 1 && out->dim[i] != 1))
            st[i] = (Sym){0, 0};
        else
            st[i] = cs[j];
    }
}

/* Drops unit dims and merges a dim into the inner one when that is contiguous in every operand. */
static void nest_simplify(Nest *ns) {
    Nest r = {.rank = 0, .nops = ns->nops};
    for (int i = ns->rank - 1; i >= 0; i--) {
        if (sym_is_one(ns->dim[i]))
            continue;
        if (r.rank > 0) {
            int last = r.rank - 1;
            bool merge = true;
            for (int op = 0; op < ns->nops; op++)
                if (!sym_eq(ns->stride[op][i], sym_mul(r.stride[op][last], r.dim[last])))
                    merge = false;
            if (merge) {
                r.dim[last] = sym_mul(r.dim[last], ns->dim[i]);
                continue;
            }
        }
        r.dim[r.rank] = ns->dim[i];
        for (int op = 0; op < ns->nops; op++)
            r.stride[op][r.rank] = ns->stride[op][i];
        r.rank++;
    }
    /* r was built inner to outer */
    ns->rank = r.rank;
    for (int i = 0; i < r.rank; i++) {
        ns->dim[i] = r.dim[r.rank - 1 - i];
        for (int op = 0; op < ns->nops; op++)
            ns->stride[op][i] = r.stride[op][r.rank - 1 - i];
    }
}

/* ---------------------------------------------------------------- building a kernel */

typedef struct Kern {
    CgCtx *c;
    LLVMBuilderRef b;
    LLVMValueRef fn, n;
    LLVMBasicBlockRef allocas; /* the entry block: allocas only, branches to the body at the end */
    const Node *nd;
    LLVMValueRef out;     /* typed pointer to the output's elements */
    LLVMValueRef in[IR_MAX_CONCAT];  /* typed pointers to the inputs' elements */
    LLVMValueRef imm[IR_MAX_CONCAT]; /* a folded constant input's value, else NULL */
} Kern;

static LLVMTypeRef elem_type(CgCtx *c, DType t) {
    switch (t) {
    case DT_F32: return c->t_f32;
    case DT_F64: return c->t_f64;
    case DT_I32: return c->t_i32;
    case DT_I64: return c->t_i64;
    case DT_U8: return c->t_i8;
    default: break;
    }
    LATHE_UNREACHABLE("unknown dtype");
}

static LLVMValueRef ci64(Kern *k, int64_t v) {
    return LLVMConstInt(k->c->t_i64, (unsigned long long)v, true);
}

static LLVMValueRef sym_value(Kern *k, Sym s) {
    LLVMValueRef v = ci64(k, s.c);
    for (int i = 0; i < s.p; i++)
        v = LLVMBuildMul(k->b, v, k->n, "");
    return v;
}

static LLVMValueRef k_alloca(Kern *k, LLVMTypeRef t) {
    LLVMBuilderRef ab = LLVMCreateBuilderInContext(k->c->ctx);
    LLVMPositionBuilderAtEnd(ab, k->allocas);
    LLVMValueRef v = LLVMBuildAlloca(ab, t, "");
    LLVMDisposeBuilder(ab);
    return v;
}

typedef struct Loop {
    LLVMValueRef var, iv;
    LLVMBasicBlockRef cond, exit;
} Loop;

/* for (iv = 0; iv < count; iv++): the counter lives in an alloca that mem2reg promotes. */
static Loop loop_begin(Kern *k, LLVMValueRef count) {
    Loop l;
    l.var = k_alloca(k, k->c->t_i64);
    LLVMBuildStore(k->b, ci64(k, 0), l.var);
    l.cond = LLVMAppendBasicBlockInContext(k->c->ctx, k->fn, "loop");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(k->c->ctx, k->fn, "body");
    l.exit = LLVMAppendBasicBlockInContext(k->c->ctx, k->fn, "done");
    LLVMBuildBr(k->b, l.cond);
    LLVMPositionBuilderAtEnd(k->b, l.cond);
    l.iv = LLVMBuildLoad2(k->b, k->c->t_i64, l.var, "i");
    LLVMBuildCondBr(k->b, LLVMBuildICmp(k->b, LLVMIntSLT, l.iv, count, ""), body, l.exit);
    LLVMPositionBuilderAtEnd(k->b, body);
    return l;
}

static void loop_end(Kern *k, Loop *l) {
    LLVMBuildStore(k->b, LLVMBuildNSWAdd(k->b, l->iv, ci64(k, 1), ""), l->var);
    LLVMBuildBr(k->b, l->cond);
    LLVMPositionBuilderAtEnd(k->b, l->exit);
}

typedef void (*NestBody)(Kern *k, LLVMValueRef *offs, void *user);

/* Emits the loops of ns from level on; offs holds each operand's element offset so far. */
static void emit_nest(Kern *k, const Nest *ns, int level, LLVMValueRef *offs, NestBody body, void *user) {
    if (level == ns->rank) {
        body(k, offs, user);
        return;
    }
    Loop l = loop_begin(k, sym_value(k, ns->dim[level]));
    LLVMValueRef next[NEST_MAX_OPS];
    for (int op = 0; op < ns->nops; op++) {
        Sym st = ns->stride[op][level];
        if (st.c == 0)
            next[op] = offs[op];
        else if (sym_is_one(st))
            next[op] = LLVMBuildNSWAdd(k->b, offs[op], l.iv, "");
        else
            next[op] = LLVMBuildNSWAdd(k->b, offs[op], LLVMBuildNSWMul(k->b, l.iv, sym_value(k, st), ""), "");
    }
    emit_nest(k, ns, level + 1, next, body, user);
    loop_end(k, &l);
}

static void run_nest(Kern *k, Nest *ns, NestBody body, void *user) {
    LLVMValueRef offs[NEST_MAX_OPS];
    for (int i = 0; i < NEST_MAX_OPS; i++)
        offs[i] = ci64(k, 0);
    nest_simplify(ns);
    emit_nest(k, ns, 0, offs, body, user);
}

static LLVMValueRef load_at(Kern *k, LLVMValueRef ptr, DType t, LLVMValueRef off) {
    LLVMTypeRef et = elem_type(k->c, t);
    LLVMValueRef p = LLVMBuildInBoundsGEP2(k->b, et, ptr, &off, 1, "");
    return LLVMBuildLoad2(k->b, et, p, "");
}

static void store_at(Kern *k, LLVMValueRef ptr, DType t, LLVMValueRef off, LLVMValueRef v) {
    LLVMValueRef p = LLVMBuildInBoundsGEP2(k->b, elem_type(k->c, t), ptr, &off, 1, "");
    LLVMBuildStore(k->b, v, p);
}

/* ---------------------------------------------------------------- scalar operations */

static LLVMValueRef declare_fn(CgCtx *c, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, int np) {
    LLVMValueRef f = LLVMGetNamedFunction(c->mod, name);
    if (!f) {
        f = LLVMAddFunction(c->mod, name, LLVMFunctionType(ret, params, np, false));
        LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                                LLVMCreateEnumAttribute(c->ctx, LLVMGetEnumAttributeKindForName("nounwind", 8), 0));
    }
    return f;
}

static LLVMValueRef call(Kern *k, LLVMValueRef f, LLVMValueRef *args, int nargs) {
    return LLVMBuildCall2(k->b, LLVMGlobalGetValueType(f), f, args, nargs, "");
}

/* A math function of float type t: the llvm.NAME intrinsic when there is one, else libm's. */
static LLVMValueRef math1(Kern *k, const char *name, bool intrinsic, DType t, LLVMValueRef x) {
    char buf[64];
    LLVMTypeRef ft = elem_type(k->c, t);
    if (intrinsic)
        snprintf(buf, sizeof buf, "llvm.%s.%s", name, t == DT_F32 ? "f32" : "f64");
    else
        snprintf(buf, sizeof buf, "%s%s", name, t == DT_F32 ? "f" : "");
    return call(k, declare_fn(k->c, buf, ft, &ft, 1), &x, 1);
}

static LLVMValueRef fconst(Kern *k, DType t, double v) {
    return LLVMConstReal(elem_type(k->c, t), v);
}

static bool is_unsigned(DType t) {
    return t == DT_U8;
}

/* Float to integer as the interpreter defines it (C's conversion is undefined out of range): truncate,
   NaN gives 0, i64 saturates, narrower types wrap. The wrap takes the remainder modulo 2^bits first, which
   is exact and keeps v's sign, so that any finite v converts; an infinity's remainder is NaN, hence 0. */
static LLVMValueRef float_to_int(Kern *k, LLVMValueRef v, DType from, DType to) {
    char name[40];
    LLVMTypeRef ft = elem_type(k->c, from);
    if (to != DT_I64)
        v = LLVMBuildFRem(k->b, v, fconst(k, from, to == DT_U8 ? 256.0 : 4294967296.0), "");
    snprintf(name, sizeof name, "llvm.fptosi.sat.i64.%s", from == DT_F32 ? "f32" : "f64");
    LLVMValueRef r = call(k, declare_fn(k->c, name, k->c->t_i64, &ft, 1), &v, 1);
    return to == DT_I64 ? r : LLVMBuildTrunc(k->b, r, elem_type(k->c, to), "");
}

/* Converts a value between dtypes as the interpreter does: C's conversions, defined everywhere. */
static LLVMValueRef convert(Kern *k, LLVMValueRef v, DType from, DType to) {
    if (from == to)
        return v;
    LLVMTypeRef tt = elem_type(k->c, to);
    bool ff = ir_dtype_is_float(from), tf = ir_dtype_is_float(to);
    if (ff && tf)
        return ir_dtype_size(to) > ir_dtype_size(from) ? LLVMBuildFPExt(k->b, v, tt, "") : LLVMBuildFPTrunc(k->b, v, tt, "");
    if (ff)
        return float_to_int(k, v, from, to);
    if (tf)
        return is_unsigned(from) ? LLVMBuildUIToFP(k->b, v, tt, "") : LLVMBuildSIToFP(k->b, v, tt, "");
    if (ir_dtype_size(to) < ir_dtype_size(from))
        return LLVMBuildTrunc(k->b, v, tt, "");
    return is_unsigned(from) ? LLVMBuildZExt(k->b, v, tt, "") : LLVMBuildSExt(k->b, v, tt, "");
}

static LLVMValueRef unary_float(Kern *k, Op op, DType t, LLVMValueRef x) {
    LLVMBuilderRef b = k->b;
    switch (op) {
    case OP_NEG: return LLVMBuildFNeg(b, x, "");
    case OP_EXP: return math1(k, "exp", true, t, x);
    case OP_LOG: return math1(k, "log", true, t, x);
    case OP_SQRT: return math1(k, "sqrt", true, t, x);
    case OP_ABS: return math1(k, "fabs", true, t, x);
    case OP_TANH: return math1(k, "tanh", false, t, x);
    case OP_ERF: return math1(k, "erf", false, t, x);
    case OP_RSQRT: return LLVMBuildFDiv(b, fconst(k, t, 1), math1(k, "sqrt", true, t, x), "");
    case OP_RELU:
        /* x < 0 ? 0 : x: NaN passes through, as in PyTorch and the interpreter */
        return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOLT, x, fconst(k, t, 0), ""), fconst(k, t, 0), x, "");
    case OP_SIGMOID: {
        LLVMValueRef e = math1(k, "exp", true, t, LLVMBuildFNeg(b, x, ""));
        return LLVMBuildFDiv(b, fconst(k, t, 1), LLVMBuildFAdd(b, fconst(k, t, 1), e, ""), "");
    }
    default: break;
    }
    LATHE_UNREACHABLE("not a float unary op");
}

static LLVMValueRef unary_op(Kern *k, Op op, DType t, LLVMValueRef x) {
    if (ir_dtype_is_float(t))
        return unary_float(k, op, t, x);
    LLVMBuilderRef b = k->b;
    LLVMValueRef zero = LLVMConstInt(elem_type(k->c, t), 0, false);
    switch (op) {
    case OP_NEG: return LLVMBuildSub(b, zero, x, "");
    case OP_ABS:
        if (is_unsigned(t))
            return x;
        return LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, x, zero, ""), LLVMBuildSub(b, zero, x, ""), x, "");
    default:
        break;
    }
    LATHE_UNREACHABLE("the shape rule admits only neg and abs on integers");
}

static LLVMValueRef binary_op(Kern *k, Op op, DType t, LLVMValueRef x, LLVMValueRef y) {
    LLVMBuilderRef b = k->b;
    if (ir_dtype_is_float(t)) {
        switch (op) {
        case OP_ADD: return LLVMBuildFAdd(b, x, y, "");
        case OP_SUB: return LLVMBuildFSub(b, x, y, "");
        case OP_MUL: return LLVMBuildFMul(b, x, y, "");
        case OP_DIV: return LLVMBuildFDiv(b, x, y, "");
        /* NaN propagates from either side, as fmax does not */
        case OP_MAX:
            return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealUGE, x, y, ""),
                                   LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealUNO, y, y, ""), y, x, ""), y, "");
        case OP_MIN:
            return LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealULE, x, y, ""),
                                   LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealUNO, y, y, ""), y, x, ""), y, "");
        case OP_POW: {
            char buf[32];
            LLVMTypeRef ft = elem_type(k->c, t), ps[2] = {ft, ft};
            snprintf(buf, sizeof buf, "llvm.pow.%s", t == DT_F32 ? "f32" : "f64");
            LLVMValueRef args[2] = {x, y};
            return call(k, declare_fn(k->c, buf, ft, ps, 2), args, 2);
        }
        default: break;
        }
        LATHE_UNREACHABLE("not a binary op");
    }
    bool u = is_unsigned(t);
    LLVMTypeRef it = elem_type(k->c, t);
    switch (op) {
    case OP_ADD: return LLVMBuildAdd(b, x, y, "");
    case OP_SUB: return LLVMBuildSub(b, x, y, "");
    case OP_MUL: return LLVMBuildMul(b, x, y, "");
    case OP_DIV: {
        /* integer division truncates; x / 0 gives 0 and INT_MIN / -1 wraps, instead of trapping */
        LLVMValueRef zero = LLVMConstInt(it, 0, false);
        LLVMValueRef is0 = LLVMBuildICmp(b, LLVMIntEQ, y, zero, "");
        LLVMValueRef safe = LLVMBuildSelect(b, is0, LLVMConstInt(it, 1, false), y, "");
        LLVMValueRef q;
        if (u) {
            q = LLVMBuildUDiv(b, x, safe, "");
        } else {
            LLVMValueRef m1 = LLVMBuildICmp(b, LLVMIntEQ, safe, LLVMConstAllOnes(it), "");
            safe = LLVMBuildSelect(b, m1, LLVMConstInt(it, 1, false), safe, "");
            q = LLVMBuildSDiv(b, x, safe, "");
            q = LLVMBuildSelect(b, m1, LLVMBuildSub(b, zero, x, ""), q, "");
        }
        return LLVMBuildSelect(b, is0, zero, q, "");
    }
    case OP_MAX:
        return LLVMBuildSelect(b, LLVMBuildICmp(b, u ? LLVMIntUGT : LLVMIntSGT, x, y, ""), x, y, "");
    case OP_MIN:
        return LLVMBuildSelect(b, LLVMBuildICmp(b, u ? LLVMIntULT : LLVMIntSLT, x, y, ""), x, y, "");
    case OP_POW:
        return convert(k, binary_op(k, OP_POW, DT_F64, convert(k, x, t, DT_F64), convert(k, y, t, DT_F64)), DT_F64, t);
    default: break;
    }
    LATHE_UNREACHABLE("not a binary op");
}

static LLVMValueRef compare_op(Kern *k, Op op, DType t, LLVMValueRef x, LLVMValueRef y) {
    LLVMValueRef r;
    if (ir_dtype_is_float(t)) {
        LLVMRealPredicate p = op == OP_EQ ? LLVMRealOEQ : op == OP_NE ? LLVMRealUNE : op == OP_LT ? LLVMRealOLT
                            : op == OP_LE ? LLVMRealOLE : op == OP_GT ? LLVMRealOGT : LLVMRealOGE;
        r = LLVMBuildFCmp(k->b, p, x, y, "");
    } else {
        bool u = is_unsigned(t);
        LLVMIntPredicate p = op == OP_EQ ? LLVMIntEQ : op == OP_NE ? LLVMIntNE
                           : op == OP_LT ? (u ? LLVMIntULT : LLVMIntSLT) : op == OP_LE ? (u ? LLVMIntULE : LLVMIntSLE)
                           : op == OP_GT ? (u ? LLVMIntUGT : LLVMIntSGT) : (u ? LLVMIntUGE : LLVMIntSGE);
        r = LLVMBuildICmp(k->b, p, x, y, "");
    }
    return LLVMBuildZExt(k->b, r, k->c->t_i8, "");
}

/* The value of a CONST node, value * n^npow, computed in double from the run-time n. */
static LLVMValueRef const_value(Kern *k, const Node *cn, DType t) {
    LLVMValueRef v = LLVMConstReal(k->c->t_f64, cn->attr.value);
    if (cn->attr.npow != 0) {
        LLVMValueRef nf = LLVMBuildSIToFP(k->b, k->n, k->c->t_f64, "");
        for (int i = 0; i < abs(cn->attr.npow); i++)
            v = cn->attr.npow > 0 ? LLVMBuildFMul(k->b, v, nf, "") : LLVMBuildFDiv(k->b, v, nf, "");
    }
    return convert(k, v, DT_F64, t);
}

/* ---------------------------------------------------------------- elementwise, broadcast, transpose */

static LLVMValueRef input_at(Kern *k, int i, LLVMValueRef off) {
    if (k->imm[i])
        return k->imm[i];
    return load_at(k, k->in[i], k->nd->inputs[i]->dtype, off);
}

static void elementwise_body(Kern *k, LLVMValueRef *offs, void *user) {
    const Node *nd = k->nd;
    LLVMValueRef r;
    LLVMValueRef x = input_at(k, 0, offs[1]);
    DType t = nd->inputs[0]->dtype;
    switch (ir_op_kind(nd->op)) {
    case K_UNARY:
        r = nd->op == OP_CAST ? convert(k, x, t, nd->dtype) : unary_op(k, nd->op, t, x);
        break;
    case K_BINARY:
        r = binary_op(k, nd->op, t, x, input_at(k, 1, offs[2]));
        break;
    case K_COMPARE:
        r = compare_op(k, nd->op, t, x, input_at(k, 1, offs[2]));
        break;
    default:
        if (nd->op == OP_SELECT) {
            LLVMValueRef c = LLVMBuildICmp(k->b, LLVMIntNE, x, LLVMConstInt(elem_type(k->c, t), 0, false), "");
            r = LLVMBuildSelect(k->b, c, input_at(k, 1, offs[2]), input_at(k, 2, offs[3]), "");
        } else { /* BROADCAST, TRANSPOSE: a copy */
            r = x;
        }
        break;
    }
    store_at(k, k->out, nd->dtype, offs[0], r);
}

static void emit_elementwise(Kern *k) {
    const Node *nd = k->nd;
    Nest ns = {.rank = nd->shape.rank, .nops = 1 + nd->ninputs};
    for (int i = 0; i < nd->shape.rank; i++)
        ns.dim[i] = sym_dim(nd->shape.dim[i]);
    contiguous_strides(&nd->shape, ns.stride[0]);
    for (int i = 0; i < nd->ninputs; i++)
        broadcast_strides(&nd->inputs[i]->shape, &nd->shape, ns.stride[1 + i]);
    run_nest(k, &ns, elementwise_body, NULL);
}

static void emit_transpose(Kern *k) {
    const Node *nd = k->nd;
    Sym cs[IR_MAX_RANK] = {0};
    Nest ns = {.rank = nd->shape.rank, .nops = 2};
    for (int i = 0; i < nd->shape.rank; i++)
        ns.dim[i] = sym_dim(nd->shape.dim[i]);
    contiguous_strides(&nd->shape, ns.stride[0]);
    contiguous_strides(&nd->inputs[0]->shape, cs);
    for (int i = 0; i < nd->shape.rank; i++)
        ns.stride[1][i] = cs[nd->attr.perm[i]];
    run_nest(k, &ns, elementwise_body, NULL);
}

static void fill_body(Kern *k, LLVMValueRef *offs, void *user) {
    store_at(k, k->out, k->nd->dtype, offs[0], (LLVMValueRef)user);
}

static void emit_const(Kern *k) {
    Nest ns = {.rank = 1, .nops = 1};
    ns.dim[0] = sym_mul((Sym){ir_shape_numel_per_n(&k->nd->shape), 0},
                        ir_shape_has_n(&k->nd->shape) ? (Sym){1, 1} : (Sym){1, 0});
    ns.stride[0][0] = (Sym){1, 0};
    run_nest(k, &ns, fill_body, const_value(k, k->nd, k->nd->dtype));
}

/* ---------------------------------------------------------------- reductions and argmax */

typedef struct Reduce {
    Nest inner;             /* the reduced dims, over the input */
    LLVMValueRef acc;       /* alloca of the accumulator */
    LLVMTypeRef acc_type;
    DType acc_dt;
    Sym count;              /* elements reduced into each output */
} Reduce;

/* The lowest value of dtype t: no value is greater than it. */
static LLVMValueRef lowest_value(Kern *k, DType t) {
    LLVMTypeRef et = elem_type(k->c, t);
    if (ir_dtype_is_float(t))
        return fconst(k, t, -INFINITY);
    if (t == DT_U8)
        return LLVMConstInt(et, 0, false);
    return LLVMConstInt(et, t == DT_I32 ? (unsigned long long)(int64_t)INT32_MIN : (unsigned long long)INT64_MIN, true);
}

/* The highest value of dtype t: no value is less than it. */
static LLVMValueRef highest_value(Kern *k, DType t) {
    LLVMTypeRef et = elem_type(k->c, t);
    if (ir_dtype_is_float(t))
        return fconst(k, t, INFINITY);
    if (t == DT_U8)
        return LLVMConstInt(et, 255, false);
    return LLVMConstInt(et, t == DT_I32 ? (unsigned long long)INT32_MAX : (unsigned long long)INT64_MAX, false);
}

/* The identity of the reduction in dtype t: 0, or the lowest value for max, the highest for min. */
static LLVMValueRef reduce_identity(Kern *k, DType t) {
    if (k->nd->op == OP_REDUCE_MAX)
        return lowest_value(k, t);
    if (k->nd->op == OP_REDUCE_MIN)
        return highest_value(k, t);
    return ir_dtype_is_float(t) ? fconst(k, t, 0) : LLVMConstInt(elem_type(k->c, t), 0, false);
}

/* How the reduction combines two values. */
static Op reduce_combine(const Node *nd) {
    return nd->op == OP_REDUCE_MAX ? OP_MAX : nd->op == OP_REDUCE_MIN ? OP_MIN : OP_ADD;
}

static void reduce_inner_body(Kern *k, LLVMValueRef *offs, void *user) {
    Reduce *r = user;
    DType t = k->nd->inputs[0]->dtype;
    LLVMValueRef x = convert(k, load_at(k, k->in[0], t, offs[0]), t, r->acc_dt);
    LLVMValueRef a = LLVMBuildLoad2(k->b, r->acc_type, r->acc, "");
    LLVMValueRef v = binary_op(k, reduce_combine(k->nd), r->acc_dt, a, x);
    LLVMBuildStore(k->b, v, r->acc);
}

static void reduce_outer_body(Kern *k, LLVMValueRef *offs, void *user) {
    Reduce *r = user;
    DType t = k->nd->dtype;
    LLVMBuildStore(k->b, reduce_identity(k, r->acc_dt), r->acc);
    LLVMValueRef in_off[NEST_MAX_OPS] = {offs[1]};
    emit_nest(k, &r->inner, 0, in_off, reduce_inner_body, r);
    LLVMValueRef a = LLVMBuildLoad2(k->b, r->acc_type, r->acc, "");
    if (k->nd->op == OP_REDUCE_MEAN) {
        if (ir_dtype_is_float(r->acc_dt)) {
            a = LLVMBuildFDiv(k->b, a, LLVMBuildSIToFP(k->b, sym_value(k, r->count), r->acc_type, ""), "");
        } else {
            LLVMValueRef cnt = convert(k, sym_value(k, r->count), DT_I64, r->acc_dt);
            a = binary_op(k, OP_DIV, r->acc_dt, a, cnt);
        }
    }
    store_at(k, k->out, t, offs[0], convert(k, a, r->acc_dt, t));
}

static void accumulate_body(Kern *k, LLVMValueRef *offs, void *user) {
    DType t = k->nd->dtype;
    LLVMValueRef a = load_at(k, k->out, t, offs[0]), x = load_at(k, k->in[0], t, offs[1]);
    store_at(k, k->out, t, offs[0], binary_op(k, reduce_combine(k->nd), t, a, x));
}

static void mean_body(Kern *k, LLVMValueRef *offs, void *user) {
    DType t = k->nd->dtype;
    store_at(k, k->out, t, offs[0], binary_op(k, OP_DIV, t, load_at(k, k->out, t, offs[0]), (LLVMValueRef)user));
}

/* Reduces into the output in place, walking the input in its own order: when the innermost dim is kept
   (a sum over the batch), the inner loop adds a contiguous row into the output, which vectorizes, where
   one accumulator per output would walk a column. Accumulates in the output's dtype, as PyTorch does. */
static void emit_reduce_rows(Kern *k, const Nest *in_nest, Sym count) {
    const Node *nd = k->nd;
    DType t = nd->dtype;
    Nest fill = {.rank = 1, .nops = 1};
    fill.dim[0] = sym_mul((Sym){ir_shape_numel_per_n(&nd->shape), 0}, ir_shape_has_n(&nd->shape) ? (Sym){1, 1} : (Sym){1, 0});
    fill.stride[0][0] = (Sym){1, 0};
    Nest again = fill;
    run_nest(k, &fill, fill_body, reduce_identity(k, t));
    Nest walk = *in_nest;
    run_nest(k, &walk, accumulate_body, NULL);
    if (nd->op == OP_REDUCE_MEAN)
        run_nest(k, &again, mean_body, convert(k, sym_value(k, count), DT_I64, t));
}

static void emit_reduce(Kern *k) {
    const Node *nd = k->nd;
    const Shape *is = &nd->inputs[0]->shape;
    Sym cs[IR_MAX_RANK], os[IR_MAX_RANK];
    contiguous_strides(is, cs);
    contiguous_strides(&nd->shape, os);
    Reduce r = {.inner = {.nops = 1}, .count = {1, 0}};
    Nest outer = {.nops = 2}, whole = {.rank = is->rank, .nops = 2};
    int oi = 0, last = -1; /* last: the innermost dim of the input that is not 1 */
    for (int i = 0; i < is->rank; i++) {
        Sym d = sym_dim(is->dim[i]);
        if (!sym_is_one(d))
            last = i;
        whole.dim[i] = d;
        whole.stride[1][i] = cs[i];
        if (nd->attr.axes & (1u << i)) {
            r.inner.dim[r.inner.rank] = d;
            r.inner.stride[0][r.inner.rank++] = cs[i];
            r.count = sym_mul(r.count, d);
            whole.stride[0][i] = (Sym){0, 0};
            if (nd->attr.keepdim)
                oi++;
        } else {
            whole.stride[0][i] = os[oi];
            outer.dim[outer.rank] = d;
            outer.stride[0][outer.rank] = os[oi++];
            outer.stride[1][outer.rank++] = cs[i];
        }
    }
    if (last >= 0 && !(nd->attr.axes & (1u << last))) {
        emit_reduce_rows(k, &whole, r.count);
        return;
    }
    nest_simplify(&r.inner);
    /* one accumulator per output; float sums accumulate in double, as exact as the interpreter */
    DType t = nd->dtype;
    r.acc_dt = reduce_combine(nd) == OP_ADD && ir_dtype_is_float(t) ? DT_F64 : t;
    r.acc_type = elem_type(k->c, r.acc_dt);
    r.acc = k_alloca(k, r.acc_type);
    run_nest(k, &outer, reduce_outer_body, &r);
}

typedef struct Argmax {
    Sym len, stride;
    LLVMValueRef best, best_i;
    bool min; /* argmin */
} Argmax;

static void argmax_body(Kern *k, LLVMValueRef *offs, void *user) {
    Argmax *a = user;
    DType t = k->nd->inputs[0]->dtype;
    LLVMTypeRef et = elem_type(k->c, t);
    /* starting below every value (above, for argmin) reads nothing before the loop, so an empty axis
       (constant 0, or N bound to 0) gives index 0 as the interpreter does; the first element then wins
       unless a later one is better */
    LLVMBuildStore(k->b, ci64(k, 0), a->best_i);
    LLVMBuildStore(k->b, a->min ? highest_value(k, t) : lowest_value(k, t), a->best);
    Loop l = loop_begin(k, sym_value(k, a->len));
    LLVMValueRef x = load_at(k, k->in[0], t, LLVMBuildNSWAdd(k->b, offs[1], LLVMBuildNSWMul(k->b, l.iv, sym_value(k, a->stride), ""), ""));
    LLVMValueRef best = LLVMBuildLoad2(k->b, et, a->best, "");
    /* the first maximum (minimum) wins: only a strictly better value (or the first NaN) replaces it */
    LLVMValueRef gt;
    if (ir_dtype_is_float(t)) {
        LLVMValueRef best_nan = LLVMBuildFCmp(k->b, LLVMRealUNO, best, best, "");
        LLVMValueRef x_nan = LLVMBuildFCmp(k->b, LLVMRealUNO, x, x, "");
        gt = LLVMBuildOr(k->b, LLVMBuildFCmp(k->b, a->min ? LLVMRealOLT : LLVMRealOGT, x, best, ""), x_nan, "");
        gt = LLVMBuildAnd(k->b, gt, LLVMBuildNot(k->b, best_nan, ""), "");
    } else {
        LLVMIntPredicate p = a->min ? (is_unsigned(t) ? LLVMIntULT : LLVMIntSLT) : (is_unsigned(t) ? LLVMIntUGT : LLVMIntSGT);
        gt = LLVMBuildICmp(k->b, p, x, best, "");
    }
    LLVMBuildStore(k->b, LLVMBuildSelect(k->b, gt, x, best, ""), a->best);
    LLVMValueRef bi = LLVMBuildLoad2(k->b, k->c->t_i64, a->best_i, "");
    LLVMBuildStore(k->b, LLVMBuildSelect(k->b, gt, l.iv, bi, ""), a->best_i);
    loop_end(k, &l);
    store_at(k, k->out, DT_I64, offs[0], LLVMBuildLoad2(k->b, k->c->t_i64, a->best_i, ""));
}

static void emit_argmax(Kern *k) {
    const Node *nd = k->nd;
    const Shape *is = &nd->inputs[0]->shape;
    Sym cs[IR_MAX_RANK], os[IR_MAX_RANK];
    contiguous_strides(is, cs);
    contiguous_strides(&nd->shape, os);
    int axis = nd->attr.axis; /* the shape rule keeps it in [0, rank) */
    Argmax a = {.len = sym_dim(is->dim[axis]), .stride = cs[axis], .min = nd->op == OP_ARGMIN};
    a.best = k_alloca(k, elem_type(k->c, nd->inputs[0]->dtype));
    a.best_i = k_alloca(k, k->c->t_i64);
    Nest outer = {.nops = 2};
    int oi = 0;
    for (int i = 0; i < is->rank; i++) {
        if (i == axis) {
            if (nd->attr.keepdim)
                oi++;
            continue;
        }
        outer.dim[outer.rank] = sym_dim(is->dim[i]);
        outer.stride[0][outer.rank] = os[oi++];
        outer.stride[1][outer.rank++] = cs[i];
    }
    run_nest(k, &outer, argmax_body, &a);
}

/* ---------------------------------------------------------------- one_hot */

static void one_hot_body(Kern *k, LLVMValueRef *offs, void *user) {
    DType t = k->nd->inputs[0]->dtype;
    LLVMValueRef label = convert(k, load_at(k, k->in[0], t, offs[1]), t, DT_I64);
    LLVMValueRef base = LLVMBuildNSWMul(k->b, offs[1], ci64(k, k->nd->attr.classes), "");
    Loop l = loop_begin(k, ci64(k, k->nd->attr.classes));
    LLVMValueRef hit = LLVMBuildICmp(k->b, LLVMIntEQ, label, l.iv, "");
    LLVMValueRef v = convert(k, LLVMBuildZExt(k->b, hit, k->c->t_i8, ""), DT_U8, k->nd->dtype);
    store_at(k, k->out, k->nd->dtype, LLVMBuildNSWAdd(k->b, base, l.iv, ""), v);
    loop_end(k, &l);
}

static void emit_one_hot(Kern *k) {
    const Shape *is = &k->nd->inputs[0]->shape;
    Nest ns = {.rank = 1, .nops = 2};
    ns.dim[0] = sym_mul((Sym){ir_shape_numel_per_n(is), 0}, ir_shape_has_n(is) ? (Sym){1, 1} : (Sym){1, 0});
    ns.stride[0][0] = ns.stride[1][0] = (Sym){1, 0};
    /* the output offset is recomputed from the input's in the body */
    run_nest(k, &ns, one_hot_body, NULL);
}

/* ---------------------------------------------------------------- matmul */

typedef struct Mm {
    Sym m, nn, kk;           /* C is m x nn, the sum runs over kk */
    Sym lda, ldb;
    bool ta, tb;
} Mm;

/* C[b] = op(A[b]) op(B[b]) through cblas_?gemm, one call per batch. */
static void gemm_call(Kern *k, const Mm *mm, LLVMValueRef a, LLVMValueRef bm, LLVMValueRef cm) {
    CgCtx *c = k->c;
    DType t = k->nd->dtype;
    LLVMTypeRef ft = elem_type(c, t), fp = LLVMPointerType(ft, 0), i32 = c->t_i32;
    LLVMTypeRef ps[14] = {i32, i32, i32, i32, i32, i32, ft, fp, i32, fp, i32, ft, fp, i32};
    LLVMValueRef f = declare_fn(c, t == DT_F32 ? "cblas_sgemm" : "cblas_dgemm", c->t_void, ps, 14);
    /* leading dims of at least 1, as BLAS requires even for empty matrices */
    LLVMValueRef one = ci64(k, 1);
#define I32(v) LLVMBuildTrunc(k->b, (v), i32, "")
#define LD(s) I32(LLVMBuildSelect(k->b, LLVMBuildICmp(k->b, LLVMIntSLT, sym_value(k, s), one, ""), one, sym_value(k, s), ""))
    LLVMValueRef args[14] = {
        LLVMConstInt(i32, 101, false), LLVMConstInt(i32, mm->ta ? 112 : 111, false),
        LLVMConstInt(i32, mm->tb ? 112 : 111, false), I32(sym_value(k, mm->m)), I32(sym_value(k, mm->nn)),
        I32(sym_value(k, mm->kk)), LLVMConstReal(ft, 1.0), a, LD(mm->lda), bm, LD(mm->ldb),
        LLVMConstReal(ft, 0.0), cm, LD(mm->nn)};
#undef LD
#undef I32
    call(k, f, args, 14);
}

typedef struct MmBatch {
    Mm mm;
    DType t;
} MmBatch;

static void matmul_body(Kern *k, LLVMValueRef *offs, void *user) {
    MmBatch *mb = user;
    LLVMTypeRef et = elem_type(k->c, mb->t);
    LLVMValueRef pc = LLVMBuildInBoundsGEP2(k->b, et, k->out, &offs[0], 1, "");
    LLVMValueRef pa = LLVMBuildInBoundsGEP2(k->b, et, k->in[0], &offs[1], 1, "");
    LLVMValueRef pb = LLVMBuildInBoundsGEP2(k->b, et, k->in[1], &offs[2], 1, "");
    gemm_call(k, &mb->mm, pa, pb, pc);
}

/* The batch dims of s (all but the last two). */
static Shape batch_shape(const Shape *s) {
    Shape b = {.rank = s->rank - 2};
    for (int i = 0; i < b.rank; i++)
        b.dim[i] = s->dim[i];
    return b;
}

/* C[b] = op(A[b]) op(B[b]) for every index b of C's batch dims, A's and B's batch dims broadcast to them
   (stride 0 on a broadcast dim), one GEMM per batch; nest_simplify merges the batch dims that are
   contiguous in all three into one loop. When B has no batch dims and A is not transposed, A's batch
   dims fold into M: [..., M, K] @ [K, N] is one [prod(...) M, K] @ [K, N] GEMM (a Linear on [N, T, C]). */
static void emit_matmul(Kern *k) {
    const Node *nd = k->nd;
    const Shape *as = &nd->inputs[0]->shape, *bs = &nd->inputs[1]->shape, *cs = &nd->shape;
    int ar = as->rank, br = bs->rank;
    MmBatch mb = {.mm = {.ta = nd->attr.transpose_a, .tb = nd->attr.transpose_b}, .t = nd->dtype};
    Mm *mm = &mb.mm;
    Sym a0 = sym_dim(as->dim[ar - 2]), a1 = sym_dim(as->dim[ar - 1]);
    Sym b0 = sym_dim(bs->dim[br - 2]), b1 = sym_dim(bs->dim[br - 1]);
    mm->m = mm->ta ? a1 : a0;
    mm->kk = mm->ta ? a0 : a1;
    mm->nn = mm->tb ? b0 : b1;
    mm->lda = a1;
    mm->ldb = b1;
    assert(ir_dtype_is_float(nd->dtype) && "matmul's shape rule admits float dtypes only");

    Shape ab = batch_shape(as), bb = batch_shape(bs), cb = batch_shape(cs);
    Nest ns = {.rank = cb.rank, .nops = 3};
    for (int i = 0; i < cb.rank; i++)
        ns.dim[i] = sym_dim(cb.dim[i]);
    if (br == 2 && !mm->ta && ab.rank > 0) {
        int64_t rows = ir_shape_numel_per_n(&ab), m;
        /* the constant part of the folded M must fit BLAS's int, as every dim does */
        if (rows >= 0 && !ir_mul_overflows(rows, mm->m.c, &m) && m <= INT_MAX) {
            for (int i = 0; i < ab.rank; i++)
                mm->m = sym_mul(mm->m, sym_dim(ab.dim[i]));
            ns.rank = 0;
        }
    }
    if (ns.rank > 0) {
        Sym mats[3] = {sym_mul(mm->m, mm->nn), sym_mul(a0, a1), sym_mul(b0, b1)};
        contiguous_strides(&cb, ns.stride[0]);
        broadcast_strides(&ab, &cb, ns.stride[1]);
        broadcast_strides(&bb, &cb, ns.stride[2]);
        for (int op = 0; op < 3; op++)
            for (int i = 0; i < cb.rank; i++)
                ns.stride[op][i] = sym_mul(ns.stride[op][i], mats[op]);
    }
    run_nest(k, &ns, matmul_body, &mb);
}

/* ---------------------------------------------------------------- iota */

/* y[..., i, ...] = i along attr.axis: a loop over the dims before the axis, the axis, the dims after it. */
static void emit_iota(Kern *k) {
    const Node *nd = k->nd;
    const Shape *s = &nd->shape;
    if (s->rank == 0) {
        store_at(k, k->out, nd->dtype, ci64(k, 0), convert(k, ci64(k, 0), DT_I64, nd->dtype));
        return;
    }
    int axis = nd->attr.axis; /* the shape rule keeps it in [0, rank) */
    Sym outer = {1, 0}, len = sym_dim(s->dim[axis]), inner = {1, 0};
    for (int i = 0; i < s->rank; i++) {
        if (i < axis)
            outer = sym_mul(outer, sym_dim(s->dim[i]));
        else if (i > axis)
            inner = sym_mul(inner, sym_dim(s->dim[i]));
    }
    Loop lo = loop_begin(k, sym_value(k, outer));
    Loop lm = loop_begin(k, sym_value(k, len));
    LLVMValueRef v = convert(k, lm.iv, DT_I64, nd->dtype);
    LLVMValueRef row = LLVMBuildNSWAdd(k->b, LLVMBuildNSWMul(k->b, lo.iv, sym_value(k, len), ""), lm.iv, "");
    LLVMValueRef base = LLVMBuildNSWMul(k->b, row, sym_value(k, inner), "");
    Loop li = loop_begin(k, sym_value(k, inner));
    store_at(k, k->out, nd->dtype, LLVMBuildNSWAdd(k->b, base, li.iv, ""), v);
    loop_end(k, &li);
    loop_end(k, &lm);
    loop_end(k, &lo);
}

/* ---------------------------------------------------------------- call-outs to the runtime's kernels */

static bool is_callout(Op op) {
    switch (op) {
    case OP_CONV2D: case OP_CONV2D_BWD_INPUT: case OP_CONV2D_BWD_WEIGHT:
    case OP_MAX_POOL2D: case OP_MAX_POOL2D_BWD: case OP_AVG_POOL2D: case OP_AVG_POOL2D_BWD:
    case OP_ADAPTIVE_AVG_POOL2D: case OP_ADAPTIVE_AVG_POOL2D_BWD:
    case OP_SLICE: case OP_PAD: case OP_CONCAT: case OP_GATHER: case OP_SCATTER_ADD: case OP_RANDOM:
        return true;
    default:
        return false;
    }
}

enum { DESC_MAX = 10 + 9 * IR_MAX_CONCAT + LATHE_KA_SLICE_COUNT };

static int desc_shape(int64_t *d, const Shape *s) {
    d[0] = s->rank;
    for (int i = 0; i < LATHE_KD_MAX_RANK; i++)
        d[1 + i] = i < s->rank ? s->dim[i] : 0; /* IR_DIM_N is -1, as the descriptor writes N */
    return 1 + LATHE_KD_MAX_RANK;
}

/* The descriptor of lathe_kern.h: shapes, then the op's attributes. */
static int build_desc(const Node *nd, int64_t *d) {
    const Attr *at = &nd->attr;
    int len = 0;
    d[len++] = nd->ninputs;
    len += desc_shape(d + len, &nd->shape);
    for (int i = 0; i < nd->ninputs; i++)
        len += desc_shape(d + len, &nd->inputs[i]->shape);
    switch (nd->op) {
    case OP_SLICE: case OP_PAD: {
        for (int i = 0; i < LATHE_KD_MAX_RANK; i++) {
            d[len + LATHE_KA_START + i] = i < nd->shape.rank ? at->start[i] : 0;
            d[len + LATHE_KA_STEP + i] = i < nd->shape.rank ? at->step[i] : 1;
        }
        double v = nd->op == OP_PAD ? at->value : 0;
        memcpy(&d[len + LATHE_KA_VALUE], &v, sizeof v);
        len += LATHE_KA_SLICE_COUNT;
        break;
    }
    case OP_CONCAT: d[len++] = at->axis; break;
    case OP_GATHER:
        d[len++] = at->axis;
        d[len++] = nd->inputs[1]->dtype;
        break;
    case OP_SCATTER_ADD:
        d[len++] = at->axis;
        d[len++] = nd->inputs[0]->dtype;
        break;
    case OP_RANDOM: d[len++] = at->stream; break;
    default: { /* the window ops */
        int64_t *w = d + len;
        w[LATHE_KA_WINDOW_H] = at->window[0];
        w[LATHE_KA_WINDOW_W] = at->window[1];
        w[LATHE_KA_STRIDE_H] = at->stride[0];
        w[LATHE_KA_STRIDE_W] = at->stride[1];
        w[LATHE_KA_PAD_H] = at->pad[0];
        w[LATHE_KA_PAD_W] = at->pad[1];
        w[LATHE_KA_DILATION_H] = at->dilation[0];
        w[LATHE_KA_DILATION_W] = at->dilation[1];
        w[LATHE_KA_GROUPS] = at->groups;
        w[LATHE_KA_CEIL_MODE] = at->ceil_mode;
        w[LATHE_KA_COUNT_INCLUDE_PAD] = at->count_include_pad;
        len += LATHE_KA_WINDOW_COUNT;
        break;
    }
    }
    assert(len <= DESC_MAX);
    return len;
}

/* lathe_k_<op>_<dtype>(out, in, n, desc): desc a private constant of this node, in an array of the input
   addresses on the stack. */
static void emit_callout(Kern *k) {
    CgCtx *c = k->c;
    const Node *nd = k->nd;
    int64_t d[DESC_MAX];
    int len = build_desc(nd, d);
    LLVMValueRef vals[DESC_MAX];
    for (int i = 0; i < len; i++)
        vals[i] = ci64(k, d[i]);
    LLVMValueRef init = LLVMConstArray(c->t_i64, vals, (unsigned)len);
    char name[64];
    snprintf(name, sizeof name, "desc.k%d", nd->id);
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(init), name);
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, true);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);

    LLVMTypeRef pp = LLVMPointerType(c->t_ptr, 0), pi64 = LLVMPointerType(c->t_i64, 0);
    LLVMValueRef ins = k_alloca(k, LLVMArrayType(c->t_ptr, (unsigned)nd->ninputs));
    LLVMValueRef ins_p = LLVMBuildBitCast(k->b, ins, pp, "");
    for (int i = 0; i < nd->ninputs; i++) {
        LLVMValueRef idx = ci64(k, i);
        LLVMBuildStore(k->b, LLVMGetParam(k->fn, (unsigned)i + 1), LLVMBuildInBoundsGEP2(k->b, c->t_ptr, ins_p, &idx, 1, ""));
    }
    char fname[96];
    snprintf(fname, sizeof fname, "lathe_k_%s_%s", ir_op_name(nd->op), ir_dtype_name(nd->op == OP_RANDOM ? DT_F32 : nd->dtype));
    LLVMTypeRef ps[4] = {c->t_ptr, pp, c->t_i64, pi64};
    LLVMValueRef f = declare_fn(c, fname, c->t_void, ps, 4);
    LLVMValueRef args[4] = {LLVMGetParam(k->fn, 0), ins_p, k->n, LLVMConstBitCast(gv, pi64)};
    call(k, f, args, 4);
}

/* ---------------------------------------------------------------- the kernel function */

bool cg_llvm_folds_const(const Node *user) {
    OpKind kind = ir_op_kind(user->op);
    return kind == K_UNARY || kind == K_BINARY || kind == K_COMPARE || user->op == OP_SELECT || user->op == OP_BROADCAST;
}

/* cblas takes int sizes: a larger constant dimension would be truncated into a wrong product, so it is an
   error here. N, bound at run time to a batch size, is not checked. */
static bool gemm_dims_fit(CgCtx *c, const Node *nd) {
    for (int i = 0; i < 2; i++) {
        const Shape *s = &nd->inputs[i]->shape;
        for (int j = s->rank - 2; j < s->rank; j++) {
            if (s->dim[j] > INT_MAX) {
                char buf[128];
                diag_error(c->d, nd->loc, "matmul: dimension %lld of %s is too large for BLAS (at most %d)",
                           (long long)s->dim[j], ir_type_str(nd->inputs[i]->dtype, s, buf, sizeof buf), INT_MAX);
                return false;
            }
        }
    }
    return true;
}

LLVMValueRef cg_llvm_kernel(CgCtx *c, const Node *nd, bool noalias) {
    if (nd->op == OP_MATMUL && !gemm_dims_fit(c, nd))
        return NULL;
    int np = 2 + nd->ninputs;
    LLVMTypeRef ps[2 + IR_MAX_CONCAT];
    assert(nd->ninputs <= IR_MAX_CONCAT && "kernels take at most IR_MAX_CONCAT inputs");
    for (int i = 0; i < np - 1; i++)
        ps[i] = c->t_ptr;
    ps[np - 1] = c->t_i64;
    char name[64];
    snprintf(name, sizeof name, "k%d_%s", nd->id, ir_op_name(nd->op));
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, LLVMFunctionType(c->t_void, ps, np, false));
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    cg_llvm_function_attrs(c, fn);
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(c->ctx, LLVMGetEnumAttributeKindForName("noinline", 8), 0));
    if (noalias) {
        unsigned na = LLVMGetEnumAttributeKindForName("noalias", 7);
        for (int i = 0; i < np - 1; i++)
            LLVMAddAttributeAtIndex(fn, (unsigned)i + 1, LLVMCreateEnumAttribute(c->ctx, na, 0));
    }

    Kern k = {.c = c, .b = c->b, .fn = fn, .nd = nd};
    k.allocas = LLVMAppendBasicBlockInContext(c->ctx, fn, "entry");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, fn, "start");
    LLVMPositionBuilderAtEnd(c->b, body);
    k.n = LLVMGetParam(fn, (unsigned)np - 1);
    k.out = LLVMBuildBitCast(c->b, LLVMGetParam(fn, 0), LLVMPointerType(elem_type(c, nd->dtype), 0), "out");
    for (int i = 0; i < nd->ninputs; i++) {
        const Node *in = nd->inputs[i];
        k.in[i] = LLVMBuildBitCast(c->b, LLVMGetParam(fn, (unsigned)i + 1), LLVMPointerType(elem_type(c, in->dtype), 0), "");
        if (in->op == OP_CONST && cg_llvm_folds_const(nd))
            k.imm[i] = const_value(&k, in, in->dtype);
    }

    switch (nd->op) {
    case OP_CONST: emit_const(&k); break;
    case OP_REDUCE_SUM: case OP_REDUCE_MEAN: case OP_REDUCE_MAX: case OP_REDUCE_MIN: emit_reduce(&k); break;
    case OP_ARGMAX: case OP_ARGMIN: emit_argmax(&k); break;
    case OP_IOTA: emit_iota(&k); break;
    case OP_MATMUL: emit_matmul(&k); break;
    case OP_TRANSPOSE: emit_transpose(&k); break;
    case OP_ONE_HOT: emit_one_hot(&k); break;
    case OP_BROADCAST: emit_elementwise(&k); break;
    default:
        if (is_callout(nd->op)) {
            emit_callout(&k);
            break;
        }
        if (!cg_llvm_folds_const(nd))
            LATHE_UNREACHABLE("no kernel for this op");
        emit_elementwise(&k);
        break;
    }
    LLVMBuildRetVoid(c->b);
    LLVMPositionBuilderAtEnd(c->b, k.allocas);
    LLVMBuildBr(c->b, body);
    return fn;
}
