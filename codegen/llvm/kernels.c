/* kernels.c: one LLVM function per kernel, a lone compute node or a fusion group (ir.h), with lathe_kern.h's
   ABI: k(bufs, n, lo, hi) computes the part [lo, hi) of its outer range, and any split gives the same bits.
   Pointwise members are one loop nest over the domain with a stride pattern per operand (0 on broadcast
   dims, permuted for a transposed view), each member's value computed inline once per index, simplified by
   dropping unit dims and merging dims that are contiguous in every pattern, so that the innermost loop is
   as long as possible and unit-stride where the layouts allow: the loop the vectorizer turns into SIMD (every
   distinct buffer is noalias). Reductions of an inline expression either keep one accumulator per output
   (the innermost dim reduced) or add whole rows into the output (the innermost dim kept), split over kept
   dims only. Epilogues run an anchor's rows (a GEMM through OpenBLAS, a convolution's range kernel) and then
   their members over those rows. Pooling, the data-movement ops and random call the runtime's kernels
   (lathe_kern.h) with a constant descriptor of the node. Sizes with N are computed from the n argument. */
#include "cg_llvm.h"

#include "../../runtime/lathe_kern.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { NEST_MAX_OPS = 64 };

/* A loop nest: dims outer to inner, and each operand's element stride per dim. An operand here is a stride
   pattern over the kernel's domain: every buffer read or written with the same strides shares one offset.
   Level split (-1: none) runs over the kernel's range only: [lo * scale, min(hi * scale, dim)). */
typedef struct Nest {
    int rank, nops;
    Sym dim[IR_MAX_RANK];
    Sym stride[NEST_MAX_OPS][IR_MAX_RANK];
    int split;
    Sym scale;
} Nest;

/* Drops unit dims and merges a dim into the inner one when that is contiguous in every operand. The split
   dim is never dropped, and no dim outer to it merges into it (the range then would cover more than its
   own dim); it may absorb the dims inside it, the range's scale growing by their size. */
static void nest_simplify(Nest *ns) {
    Nest r = {.rank = 0, .nops = ns->nops, .split = -1, .scale = ns->scale};
    if (ns->split < 0)
        r.scale = (Sym){1, 0};
    for (int i = ns->rank - 1; i >= 0; i--) {
        if (sym_is_one(ns->dim[i]) && i != ns->split)
            continue;
        if (r.rank > 0 && !(r.split == r.rank - 1)) {
            int last = r.rank - 1;
            bool merge = true;
            for (int op = 0; op < ns->nops; op++)
                if (!sym_eq(ns->stride[op][i], sym_mul(r.stride[op][last], r.dim[last])))
                    merge = false;
            if (merge) {
                if (i == ns->split) {
                    r.scale = sym_mul(r.scale, r.dim[last]);
                    r.split = last;
                }
                r.dim[last] = sym_mul(r.dim[last], ns->dim[i]);
                continue;
            }
        }
        if (i == ns->split)
            r.split = r.rank;
        r.dim[r.rank] = ns->dim[i];
        for (int op = 0; op < ns->nops; op++)
            r.stride[op][r.rank] = ns->stride[op][i];
        r.rank++;
    }
    /* r was built inner to outer */
    ns->rank = r.rank;
    ns->split = r.split < 0 ? -1 : r.rank - 1 - r.split;
    ns->scale = r.scale;
    for (int i = 0; i < r.rank; i++) {
        ns->dim[i] = r.dim[r.rank - 1 - i];
        for (int op = 0; op < ns->nops; op++)
            ns->stride[op][i] = r.stride[op][r.rank - 1 - i];
    }
}

/* ---------------------------------------------------------------- building a kernel */

/* A read of a buffer at the domain's index through a stride pattern. */
typedef struct Access {
    const Node *x;
    int buf, pat;
} Access;

enum { MAX_ACCESSES = 2 * CG_MAX_BUFS };

typedef struct Kern {
    CgCtx *c;
    LLVMBuilderRef b;
    LLVMValueRef fn, n, lo, hi;
    LLVMBasicBlockRef allocas; /* the entry block: allocas only, branches to the body at the end */
    const CgKernel *ks;
    const Node *nd;                  /* the root */
    LLVMValueRef buf[CG_MAX_BUFS];   /* i8* of each buffer */
    /* a lone node's kernel of its own (one_hot, iota, the call-outs) */
    LLVMValueRef out;                /* typed pointer to the output's elements */
    LLVMValueRef in[IR_MAX_CONCAT];  /* typed pointers to the inputs' elements */
    /* the members' code: the domain, its stride patterns, the reads of external values and where each
       member's value is stored */
    const Shape *domain;
    int npat;
    Sym pat[NEST_MAX_OPS][IR_MAX_RANK];
    int nacc;
    Access acc[MAX_ACCESSES];
    int acc_of[CG_MAX_MEMBERS][3];   /* the access that member i's input j reads, -1: a member or folded */
    int out_buf[CG_MAX_MEMBERS];     /* the buffer a materialized member is stored into, -1: none */
    /* at the index being emitted: each pattern's offset, and the values computed so far */
    LLVMValueRef *offs;
    LLVMValueRef val[CG_MAX_MEMBERS], accv[MAX_ACCESSES];
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

/* for (iv = from; iv < to; iv++): the counter lives in an alloca that mem2reg promotes. */
static Loop loop_from(Kern *k, LLVMValueRef from, LLVMValueRef to) {
    Loop l;
    l.var = k_alloca(k, k->c->t_i64);
    LLVMBuildStore(k->b, from, l.var);
    l.cond = LLVMAppendBasicBlockInContext(k->c->ctx, k->fn, "loop");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(k->c->ctx, k->fn, "body");
    l.exit = LLVMAppendBasicBlockInContext(k->c->ctx, k->fn, "done");
    LLVMBuildBr(k->b, l.cond);
    LLVMPositionBuilderAtEnd(k->b, l.cond);
    l.iv = LLVMBuildLoad2(k->b, k->c->t_i64, l.var, "i");
    LLVMBuildCondBr(k->b, LLVMBuildICmp(k->b, LLVMIntSLT, l.iv, to, ""), body, l.exit);
    LLVMPositionBuilderAtEnd(k->b, body);
    return l;
}

static Loop loop_begin(Kern *k, LLVMValueRef count) {
    return loop_from(k, ci64(k, 0), count);
}

static void loop_end(Kern *k, Loop *l) {
    LLVMBuildStore(k->b, LLVMBuildNSWAdd(k->b, l->iv, ci64(k, 1), ""), l->var);
    LLVMBuildBr(k->b, l->cond);
    LLVMPositionBuilderAtEnd(k->b, l->exit);
}

static LLVMValueRef min_i64(Kern *k, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildSelect(k->b, LLVMBuildICmp(k->b, LLVMIntSLT, a, b, ""), a, b, "");
}

static LLVMValueRef max_i64(Kern *k, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildSelect(k->b, LLVMBuildICmp(k->b, LLVMIntSGT, a, b, ""), a, b, "");
}

typedef void (*NestBody)(Kern *k, LLVMValueRef *offs, void *user);

/* Emits the loops of ns from level on; offs holds each operand's element offset so far. */
static void emit_nest(Kern *k, const Nest *ns, int level, LLVMValueRef *offs, NestBody body, void *user) {
    if (level == ns->rank) {
        body(k, offs, user);
        return;
    }
    LLVMValueRef dim = sym_value(k, ns->dim[level]);
    Loop l;
    if (level == ns->split) {
        LLVMValueRef sc = sym_value(k, ns->scale);
        l = loop_from(k, LLVMBuildNSWMul(k->b, k->lo, sc, ""), min_i64(k, LLVMBuildNSWMul(k->b, k->hi, sc, ""), dim));
    } else {
        l = loop_begin(k, dim);
    }
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

/* Runs the (simplified) nest from offsets 0. */
static void run_nest(Kern *k, const Nest *ns, NestBody body, void *user) {
    LLVMValueRef offs[NEST_MAX_OPS];
    for (int i = 0; i < NEST_MAX_OPS; i++)
        offs[i] = ci64(k, 0);
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

/* ---------------------------------------------------------------- the members' code
   A kernel computes its members at each index of its domain: a pointwise member from its inputs' values at
   that index (a member's value computed once, an external value loaded through its stride pattern, a folded
   constant an immediate), a materialized member then stored. */

static int add_pattern(Kern *k, const Sym *st) {
    int r = k->domain->rank;
    for (int p = 0; p < k->npat; p++) {
        bool same = true;
        for (int i = 0; i < r; i++)
            if (!sym_eq(k->pat[p][i], st[i]) || (st[i].c == 0) != (k->pat[p][i].c == 0))
                same = false;
        if (same)
            return p;
    }
    if (k->npat == NEST_MAX_OPS)
        LATHE_UNREACHABLE("a kernel has more stride patterns than NEST_MAX_OPS");
    for (int i = 0; i < r; i++)
        k->pat[k->npat][i] = st[i];
    return k->npat++;
}

static int add_access(Kern *k, const Node *x, const Sym *st) {
    int buf = cg_buf_index(k->ks, x), pat = add_pattern(k, st);
    assert(buf >= 0 && "an external input has a buffer");
    for (int a = 0; a < k->nacc; a++)
        if (k->acc[a].buf == buf && k->acc[a].pat == pat && k->acc[a].x->dtype == x->dtype)
            return a;
    if (k->nacc == MAX_ACCESSES)
        LATHE_UNREACHABLE("a kernel has more reads than MAX_ACCESSES");
    k->acc[k->nacc] = (Access){x, buf, pat};
    return k->nacc++;
}

static int member_index(const Kern *k, const Node *x) {
    for (int i = 0; i < k->ks->nmembers; i++)
        if (k->ks->members[i] == x)
            return i;
    return -1;
}

static bool is_reduce_root(const Node *n) {
    return ir_op_kind(n->op) == K_REDUCE || n->op == OP_ARGMAX || n->op == OP_ARGMIN;
}

/* Pattern 0 is the domain's own (contiguous) layout; the reads follow. */
static void plan_members(Kern *k) {
    const CgKernel *ks = k->ks;
    const Shape *D = k->domain;
    Sym st[IR_MAX_RANK] = {{0, 0}};
    cg_contiguous_strides(D, st);
    add_pattern(k, st);
    for (int i = 0; i < ks->nmembers; i++) {
        const Node *m = ks->members[i];
        k->out_buf[i] = -1;
        k->acc_of[i][0] = k->acc_of[i][1] = k->acc_of[i][2] = -1;
        if (m == ks->anchor) {
            k->acc_of[i][0] = add_access(k, m, st); /* the epilogue reads the anchor's result back */
            continue;
        }
        if (ks->materialized[i] && !(m == ks->root && is_reduce_root(m)))
            k->out_buf[i] = cg_buf_index(ks, m);
        if (m->op == OP_CONST)
            continue;
        if (m->op == OP_TRANSPOSE) {
            Sym cs[IR_MAX_RANK] = {{0, 0}}, ts[IR_MAX_RANK];
            cg_contiguous_strides(&m->inputs[0]->shape, cs);
            for (int d = 0; d < D->rank; d++)
                ts[d] = cs[m->attr.perm[d]];
            k->acc_of[i][0] = add_access(k, m->inputs[0], ts);
            continue;
        }
        for (int j = 0; j < m->ninputs && j < 3; j++) {
            const Node *x = m->inputs[j];
            if (member_index(k, x) >= 0 || (x->op == OP_CONST && cg_folds_const(m)))
                continue;
            Sym bs[IR_MAX_RANK];
            cg_broadcast_strides(&x->shape, D, bs);
            k->acc_of[i][j] = add_access(k, x, bs);
        }
    }
}

static LLVMValueRef typed_buf(Kern *k, int buf, DType t) {
    return LLVMBuildBitCast(k->b, k->buf[buf], LLVMPointerType(elem_type(k->c, t), 0), "");
}

static LLVMValueRef access_value(Kern *k, int a) {
    if (!k->accv[a]) {
        const Access *ac = &k->acc[a];
        k->accv[a] = load_at(k, typed_buf(k, ac->buf, ac->x->dtype), ac->x->dtype, k->offs[ac->pat]);
    }
    return k->accv[a];
}

static LLVMValueRef member_value(Kern *k, int i);

/* The value of member i's input j at the current index. */
static LLVMValueRef input_value(Kern *k, int i, int j) {
    const Node *x = k->ks->members[i]->inputs[j];
    int mi = member_index(k, x);
    if (mi >= 0)
        return member_value(k, mi);
    if (k->acc_of[i][j] >= 0)
        return access_value(k, k->acc_of[i][j]);
    return const_value(k, x, x->dtype);
}

static LLVMValueRef pointwise(Kern *k, int i) {
    const Node *m = k->ks->members[i];
    if (m->op == OP_CONST)
        return const_value(k, m, m->dtype);
    if (m->op == OP_BROADCAST || m->op == OP_TRANSPOSE)
        return m->op == OP_TRANSPOSE ? access_value(k, k->acc_of[i][0]) : input_value(k, i, 0);
    LLVMValueRef x = input_value(k, i, 0);
    DType t = m->inputs[0]->dtype;
    switch (ir_op_kind(m->op)) {
    case K_UNARY:
        return m->op == OP_CAST ? convert(k, x, t, m->dtype) : unary_op(k, m->op, t, x);
    case K_BINARY:
        return binary_op(k, m->op, t, x, input_value(k, i, 1));
    case K_COMPARE:
        return compare_op(k, m->op, t, x, input_value(k, i, 1));
    default:
        break;
    }
    if (m->op != OP_SELECT)
        LATHE_UNREACHABLE("not a pointwise member");
    LLVMValueRef c = LLVMBuildICmp(k->b, LLVMIntNE, x, LLVMConstInt(elem_type(k->c, t), 0, false), "");
    return LLVMBuildSelect(k->b, c, input_value(k, i, 1), input_value(k, i, 2), "");
}

/* Member i's value at the current index, computed (and stored, when materialized) once. */
static LLVMValueRef member_value(Kern *k, int i) {
    if (k->val[i])
        return k->val[i];
    const Node *m = k->ks->members[i];
    LLVMValueRef v = m == k->ks->anchor ? access_value(k, k->acc_of[i][0]) : pointwise(k, i);
    if (k->out_buf[i] >= 0)
        store_at(k, typed_buf(k, k->out_buf[i], m->dtype), m->dtype, k->offs[0], v);
    k->val[i] = v;
    return v;
}

/* Starts a new index: nothing computed yet. */
static void at_index(Kern *k, LLVMValueRef *offs) {
    k->offs = offs;
    memset(k->val, 0, sizeof k->val);
    memset(k->accv, 0, sizeof k->accv);
}

/* Computes every materialized member but the root of a reduction (and the anchor, already written). */
static void store_members(Kern *k) {
    for (int i = 0; i < k->ks->nmembers; i++)
        if (k->out_buf[i] >= 0)
            member_value(k, i);
}

/* The domain's nest with every pattern's strides. */
static Nest domain_nest(Kern *k) {
    Nest ns = {.rank = k->domain->rank, .nops = k->npat, .split = -1, .scale = {1, 0}};
    for (int i = 0; i < ns.rank; i++) {
        ns.dim[i] = sym_dim(k->domain->dim[i]);
        for (int p = 0; p < k->npat; p++)
            ns.stride[p][i] = k->pat[p][i];
    }
    return ns;
}

static Sym nest_numel(const Nest *ns, int from) {
    Sym s = {1, 0};
    for (int i = from; i < ns->rank; i++)
        s = sym_mul(s, ns->dim[i]);
    return s;
}

static void set_count(CgCount *cnt, Sym dim, Sym scale, Sym cost) {
    *cnt = (CgCount){.dim_c = dim.c, .dim_p = dim.p, .scale_c = scale.c, .scale_p = scale.p,
                     .cost_c = cost.c < 1 ? 1 : cost.c, .cost_p = cost.p};
}

/* ---------------------------------------------------------------- elementwise kernels
   One nest over the domain, simplified over every pattern. The range is the outermost dim left; a nest
   that merged into one dim is cut into blocks of ELEM_BLOCK elements. */
enum { ELEM_BLOCK = 4096 };

static void elementwise_body(Kern *k, LLVMValueRef *offs, void *user) {
    at_index(k, offs);
    store_members(k);
}

static void emit_elementwise(Kern *k, CgCount *cnt) {
    Nest ns = domain_nest(k);
    nest_simplify(&ns);
    Sym cost = {k->ks->nmembers, 0};
    if (ns.rank == 0) {
        set_count(cnt, (Sym){1, 0}, (Sym){1, 0}, cost);
    } else {
        ns.split = 0;
        ns.scale = ns.rank == 1 ? (Sym){ELEM_BLOCK, 0} : (Sym){1, 0};
        set_count(cnt, ns.dim[0], ns.scale, sym_mul(cost, ns.rank == 1 ? ns.scale : nest_numel(&ns, 1)));
    }
    run_nest(k, &ns, elementwise_body, NULL);
}

/* ---------------------------------------------------------------- reductions and argmax
   The root reduces an expression of its pointwise members over the domain (its input's shape). Only kept
   dims are split into ranges, so that every output is reduced in one order whatever the split. */

/* A sum over a long innermost reduced dim keeps REDUCE_LANES accumulators, element i adding into lane
   i mod REDUCE_LANES, combined pairwise at the end: independent chains the SLP vectorizer packs into one
   vector register, where one accumulator is a chain of dependent adds (4 cycles each). The order depends
   on the shape only, never on the range split. */
enum { REDUCE_LANES = 8 };

typedef struct Reduce {
    Nest inner;             /* the reduced dims, over the domain */
    LLVMValueRef acc;       /* alloca of the accumulator */
    LLVMValueRef lanes[REDUCE_LANES]; /* allocas of the lanes, when lanes is set */
    bool lanes_on;
    LLVMTypeRef acc_type;
    DType acc_dt;
    Sym count;              /* elements reduced into each output */
    int out_pat;            /* the output's pattern over the domain */
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
/* How the reduction combines two values. */
static Op reduce_combine(const Node *nd) {
    return nd->op == OP_REDUCE_MAX ? OP_MAX : nd->op == OP_REDUCE_MIN ? OP_MIN : OP_ADD;
}

/* The value reduced at the current index: the root's input. */
static LLVMValueRef reduced_value(Kern *k, DType to) {
    const Node *root = k->ks->root;
    int ri = member_index(k, root);
    store_members(k);
    return convert(k, input_value(k, ri, 0), root->inputs[0]->dtype, to);
}

static LLVMValueRef root_out(Kern *k) {
    return typed_buf(k, cg_buf_index(k->ks, k->ks->root), k->nd->dtype);
}

static void reduce_inner_body(Kern *k, LLVMValueRef *offs, void *user) {
    Reduce *r = user;
    at_index(k, offs);
    LLVMValueRef x = reduced_value(k, r->acc_dt);
    LLVMValueRef a = LLVMBuildLoad2(k->b, r->acc_type, r->acc, "");
    LLVMBuildStore(k->b, binary_op(k, reduce_combine(k->nd), r->acc_dt, a, x), r->acc);
}

static LLVMValueRef mean_of(Kern *k, LLVMValueRef a, DType t, Sym count) {
    if (ir_dtype_is_float(t))
        return LLVMBuildFDiv(k->b, a, LLVMBuildSIToFP(k->b, sym_value(k, count), elem_type(k->c, t), ""), "");
    return binary_op(k, OP_DIV, t, a, convert(k, sym_value(k, count), DT_I64, t));
}

/* The innermost reduced dim in REDUCE_LANES lanes (the outer reduced dims are looped around it). */
static void reduce_lanes_body(Kern *k, LLVMValueRef *offs, void *user) {
    Reduce *r = user;
    const Nest *in = &r->inner;
    int last = in->rank - 1;
    LLVMValueRef len = sym_value(k, in->dim[last]);
    LLVMValueRef chunks = LLVMBuildSDiv(k->b, len, ci64(k, REDUCE_LANES), "");
    LLVMValueRef at[NEST_MAX_OPS];
    Loop l = loop_begin(k, chunks);
    for (int j = 0; j < REDUCE_LANES; j++) {
        LLVMValueRef i = LLVMBuildNSWAdd(k->b, LLVMBuildNSWMul(k->b, l.iv, ci64(k, REDUCE_LANES), ""), ci64(k, j), "");
        for (int p = 0; p < in->nops; p++)
            at[p] = LLVMBuildNSWAdd(k->b, offs[p], LLVMBuildNSWMul(k->b, i, sym_value(k, in->stride[p][last]), ""), "");
        at_index(k, at);
        LLVMValueRef x = reduced_value(k, r->acc_dt);
        LLVMValueRef a = LLVMBuildLoad2(k->b, r->acc_type, r->lanes[j], "");
        LLVMBuildStore(k->b, binary_op(k, OP_ADD, r->acc_dt, a, x), r->lanes[j]);
    }
    loop_end(k, &l);
    Loop t = loop_from(k, LLVMBuildNSWMul(k->b, chunks, ci64(k, REDUCE_LANES), ""), len);
    for (int p = 0; p < in->nops; p++)
        at[p] = LLVMBuildNSWAdd(k->b, offs[p], LLVMBuildNSWMul(k->b, t.iv, sym_value(k, in->stride[p][last]), ""), "");
    at_index(k, at);
    LLVMValueRef x = reduced_value(k, r->acc_dt);
    LLVMValueRef a = LLVMBuildLoad2(k->b, r->acc_type, r->lanes[0], "");
    LLVMBuildStore(k->b, binary_op(k, OP_ADD, r->acc_dt, a, x), r->lanes[0]);
    loop_end(k, &t);
}

static void reduce_outer_body(Kern *k, LLVMValueRef *offs, void *user) {
    Reduce *r = user;
    if (r->lanes_on) {
        for (int j = 0; j < REDUCE_LANES; j++)
            LLVMBuildStore(k->b, reduce_identity(k, r->acc_dt), r->lanes[j]);
        Nest outer_dims = r->inner;
        outer_dims.rank--;
        emit_nest(k, &outer_dims, 0, offs, reduce_lanes_body, r);
        LLVMValueRef v[REDUCE_LANES];
        for (int j = 0; j < REDUCE_LANES; j++)
            v[j] = LLVMBuildLoad2(k->b, r->acc_type, r->lanes[j], "");
        for (int w = 1; w < REDUCE_LANES; w *= 2) /* pairwise: (l0+l1)+(l2+l3) ... */
            for (int j = 0; j + w < REDUCE_LANES; j += 2 * w)
                v[j] = binary_op(k, OP_ADD, r->acc_dt, v[j], v[j + w]);
        LLVMBuildStore(k->b, v[0], r->acc);
    } else {
        LLVMBuildStore(k->b, reduce_identity(k, r->acc_dt), r->acc);
        emit_nest(k, &r->inner, 0, offs, reduce_inner_body, r);
    }
    LLVMValueRef a = LLVMBuildLoad2(k->b, r->acc_type, r->acc, "");
    if (k->nd->op == OP_REDUCE_MEAN)
        a = mean_of(k, a, r->acc_dt, r->count);
    store_at(k, root_out(k), k->nd->dtype, offs[r->out_pat], convert(k, a, r->acc_dt, k->nd->dtype));
}

static void fill_body(Kern *k, LLVMValueRef *offs, void *user) {
    store_at(k, root_out(k), k->nd->dtype, offs[0], (LLVMValueRef)user);
}

static void accumulate_body(Kern *k, LLVMValueRef *offs, void *user) {
    Reduce *r = user;
    DType t = k->nd->dtype;
    at_index(k, offs);
    LLVMValueRef x = reduced_value(k, t);
    LLVMValueRef out = root_out(k), a = load_at(k, out, t, offs[r->out_pat]);
    store_at(k, out, t, offs[r->out_pat], binary_op(k, reduce_combine(k->nd), t, a, x));
}

static void mean_body(Kern *k, LLVMValueRef *offs, void *user) {
    Reduce *r = user;
    DType t = k->nd->dtype;
    LLVMValueRef out = root_out(k);
    store_at(k, out, t, offs[0], mean_of(k, load_at(k, out, t, offs[0]), t, r->count));
}

/* The output's strides over the domain: 0 on the reduced dims (axes). */
static void reduce_out_strides(const Node *root, uint32_t axes, bool keepdim, Sym *st) {
    const Shape *is = &root->inputs[0]->shape;
    Sym os[IR_MAX_RANK] = {{0, 0}};
    cg_contiguous_strides(&root->shape, os);
    int oi = 0;
    for (int i = 0; i < is->rank; i++) {
        if (axes & (1u << i)) {
            st[i] = (Sym){0, 0};
            if (keepdim)
                oi++;
        } else {
            st[i] = os[oi++];
        }
    }
}

/* Reduces into the output in place, walking the domain in its own order: when the innermost dim is kept
   (a sum over the batch), the inner loop adds a contiguous row into the output, which vectorizes, where
   one accumulator per output would walk a column. Accumulates in the output's dtype, as PyTorch does. The
   range is the outermost kept dim that is not 1, in the walk and in the fill and mean over the output. */
static void emit_reduce_rows(Kern *k, Reduce *r, CgCount *cnt) {
    const Node *nd = k->nd;
    const Shape *is = k->domain;
    uint32_t axes = nd->attr.axes;
    int split = -1;
    for (int i = 0; i < is->rank && split < 0; i++)
        if (!(axes & (1u << i)) && !sym_is_one(sym_dim(is->dim[i])))
            split = i;
    Nest walk = domain_nest(k), kept = {.nops = 1, .split = -1, .scale = {1, 0}};
    walk.split = split;
    for (int i = 0; i < is->rank; i++) {
        if (axes & (1u << i))
            continue;
        if (i == split)
            kept.split = kept.rank;
        kept.dim[kept.rank] = walk.dim[i];
        kept.stride[0][kept.rank++] = k->pat[r->out_pat][i];
    }
    nest_simplify(&walk);
    nest_simplify(&kept);
    set_count(cnt, kept.dim[kept.split], kept.scale, sym_mul(r->count, sym_mul(kept.scale, nest_numel(&kept, kept.split + 1))));
    run_nest(k, &kept, fill_body, reduce_identity(k, nd->dtype));
    run_nest(k, &walk, accumulate_body, r);
    if (nd->op == OP_REDUCE_MEAN)
        run_nest(k, &kept, mean_body, r);
}

static void emit_reduce(Kern *k, CgCount *cnt) {
    const Node *nd = k->nd;
    const Shape *is = k->domain;
    Sym ost[IR_MAX_RANK];
    reduce_out_strides(nd, nd->attr.axes, nd->attr.keepdim, ost);
    Reduce r = {.inner = {.nops = k->npat, .split = -1, .scale = {1, 0}}, .count = {1, 0}};
    r.out_pat = add_pattern(k, ost);
    r.inner.nops = k->npat;
    Nest outer = {.nops = k->npat, .split = -1, .scale = {1, 0}};
    int last = -1; /* the innermost dim of the domain that is not 1 */
    for (int i = 0; i < is->rank; i++) {
        Sym d = sym_dim(is->dim[i]);
        if (!sym_is_one(d))
            last = i;
        Nest *ns = nd->attr.axes & (1u << i) ? &r.inner : &outer;
        if (ns == &r.inner)
            r.count = sym_mul(r.count, d);
        ns->dim[ns->rank] = d;
        for (int p = 0; p < k->npat; p++)
            ns->stride[p][ns->rank] = k->pat[p][i];
        ns->rank++;
    }
    if (last >= 0 && !(nd->attr.axes & (1u << last))) {
        emit_reduce_rows(k, &r, cnt);
        return;
    }
    nest_simplify(&r.inner);
    nest_simplify(&outer);
    if (outer.rank > 0) {
        outer.split = 0;
        set_count(cnt, outer.dim[0], (Sym){1, 0}, sym_mul(r.count, nest_numel(&outer, 1)));
    } else {
        set_count(cnt, (Sym){1, 0}, (Sym){1, 0}, r.count);
    }
    /* one accumulator per output; float sums accumulate in double, as exact as the interpreter */
    DType t = nd->dtype;
    r.acc_dt = reduce_combine(nd) == OP_ADD && ir_dtype_is_float(t) ? DT_F64 : t;
    r.acc_type = elem_type(k->c, r.acc_dt);
    r.acc = k_alloca(k, r.acc_type);
    /* lanes where the innermost reduced dim is long (N counts as long) */
    if (reduce_combine(nd) == OP_ADD && r.inner.rank > 0) {
        Sym len = r.inner.dim[r.inner.rank - 1];
        r.lanes_on = len.p > 0 || len.c >= 4 * REDUCE_LANES;
        for (int j = 0; r.lanes_on && j < REDUCE_LANES; j++)
            r.lanes[j] = k_alloca(k, r.acc_type);
    }
    run_nest(k, &outer, reduce_outer_body, &r);
}

typedef struct Argmax {
    int axis, out_pat;
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
    Loop l = loop_begin(k, sym_value(k, sym_dim(k->domain->dim[a->axis])));
    LLVMValueRef at[NEST_MAX_OPS];
    for (int p = 0; p < k->npat; p++)
        at[p] = LLVMBuildNSWAdd(k->b, offs[p], LLVMBuildNSWMul(k->b, l.iv, sym_value(k, k->pat[p][a->axis]), ""), "");
    at_index(k, at);
    LLVMValueRef x = reduced_value(k, t);
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
    store_at(k, root_out(k), DT_I64, offs[a->out_pat], LLVMBuildLoad2(k->b, k->c->t_i64, a->best_i, ""));
}

static void emit_argmax(Kern *k, CgCount *cnt) {
    const Node *nd = k->nd;
    const Shape *is = k->domain;
    int axis = nd->attr.axis; /* the shape rule keeps it in [0, rank) */
    Sym ost[IR_MAX_RANK];
    reduce_out_strides(nd, 1u << axis, nd->attr.keepdim, ost);
    Argmax a = {.axis = axis, .min = nd->op == OP_ARGMIN};
    a.out_pat = add_pattern(k, ost);
    a.best = k_alloca(k, elem_type(k->c, nd->inputs[0]->dtype));
    a.best_i = k_alloca(k, k->c->t_i64);
    Nest outer = {.nops = k->npat, .split = -1, .scale = {1, 0}};
    for (int i = 0; i < is->rank; i++) {
        if (i == axis)
            continue;
        outer.dim[outer.rank] = sym_dim(is->dim[i]);
        for (int p = 0; p < k->npat; p++)
            outer.stride[p][outer.rank] = k->pat[p][i];
        outer.rank++;
    }
    nest_simplify(&outer);
    Sym len = sym_dim(is->dim[axis]);
    if (outer.rank > 0) {
        outer.split = 0;
        set_count(cnt, outer.dim[0], (Sym){1, 0}, sym_mul(len, nest_numel(&outer, 1)));
    } else {
        set_count(cnt, (Sym){1, 0}, (Sym){1, 0}, len);
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
    Nest ns = {.rank = 1, .nops = 2, .split = -1, .scale = {1, 0}};
    ns.dim[0] = sym_mul((Sym){ir_shape_numel_per_n(is), 0}, ir_shape_has_n(is) ? (Sym){1, 1} : (Sym){1, 0});
    ns.stride[0][0] = ns.stride[1][0] = (Sym){1, 0};
    /* the output offset is recomputed from the input's in the body */
    run_nest(k, &ns, one_hot_body, NULL);
}

/* ---------------------------------------------------------------- epilogue kernels
   The anchor computes rows [lo, hi) of its result, then the members run over those rows while they are in
   cache. A matmul's rows are its output's rows, its batch dims flattened before them (one GEMM per batch
   that meets the range, on the rows of it inside the range; OpenBLAS single-threaded); a convolution's are
   samples (conv2d, conv2d_bwd_input) or output channels (conv2d_bwd_weight), dim 0 of its result. */

typedef struct Mm {
    Sym m, nn, kk;           /* C is m x nn, the sum runs over kk */
    Sym lda, ldb;
    bool ta, tb;
} Mm;

/* C = alpha op(A) op(B) + beta C for `rows` rows of C, through cblas_?gemm. */
static void gemm_call(Kern *k, DType t, const Mm *mm, LLVMValueRef rows, LLVMValueRef alpha, LLVMValueRef beta,
                      LLVMValueRef a, LLVMValueRef bm, LLVMValueRef cm) {
    CgCtx *c = k->c;
    LLVMTypeRef ft = elem_type(c, t), fp = LLVMPointerType(ft, 0), i32 = c->t_i32;
    LLVMTypeRef ps[14] = {i32, i32, i32, i32, i32, i32, ft, fp, i32, fp, i32, ft, fp, i32};
    LLVMValueRef f = declare_fn(c, t == DT_F32 ? "cblas_sgemm" : "cblas_dgemm", c->t_void, ps, 14);
    /* leading dims of at least 1, as BLAS requires even for empty matrices */
    LLVMValueRef one = ci64(k, 1);
#define I32(v) LLVMBuildTrunc(k->b, (v), i32, "")
#define LD(s) I32(max_i64(k, sym_value(k, s), one))
    LLVMValueRef args[14] = {
        LLVMConstInt(i32, 101, false), LLVMConstInt(i32, mm->ta ? 112 : 111, false),
        LLVMConstInt(i32, mm->tb ? 112 : 111, false), I32(rows), I32(sym_value(k, mm->nn)),
        I32(sym_value(k, mm->kk)), alpha, a, LD(mm->lda), bm, LD(mm->ldb), beta, cm, LD(mm->nn)};
#undef LD
#undef I32
    call(k, f, args, 14);
}

/* The batch dims of s (all but the last two). */
static Shape batch_shape(const Shape *s) {
    Shape b = {.rank = s->rank - 2};
    for (int i = 0; i < b.rank; i++)
        b.dim[i] = s->dim[i];
    return b;
}

static LLVMValueRef elem_ptr(Kern *k, DType t, LLVMValueRef p, LLVMValueRef off) {
    return LLVMBuildInBoundsGEP2(k->b, elem_type(k->c, t), p, &off, 1, "");
}

/* The value s of an in-place update P - s * anchor: an immediate or the scalar in s's buffer. */
static LLVMValueRef sgd_scale(Kern *k, const Node *mul) {
    const Node *s = mul->inputs[mul->inputs[0] == k->ks->anchor ? 1 : 0];
    LLVMValueRef v;
    if (s->op == OP_CONST)
        v = const_value(k, s, s->dtype);
    else
        v = load_at(k, typed_buf(k, cg_buf_index(k->ks, s), s->dtype), s->dtype, ci64(k, 0));
    return LLVMBuildFNeg(k->b, v, "");
}

/* C[b] = op(A[b]) op(B[b]) for the rows [lo, hi) of C's flattened (batch, M) rows, A's and B's batch dims
   broadcast to C's. When B has no batch dims and A is not transposed, A's batch dims fold into M: [..., M,
   K] @ [K, N] is one [prod(...) M, K] @ [K, N] GEMM (a Linear on [N, T, C]). */
static void emit_gemm(Kern *k, CgCount *cnt) {
    const CgKernel *ks = k->ks;
    const Node *nd = ks->anchor;
    DType t = nd->dtype;
    const Shape *as = &nd->inputs[0]->shape, *bs = &nd->inputs[1]->shape, *cs = &nd->shape;
    int ar = as->rank, br = bs->rank;
    Mm mm = {.ta = nd->attr.transpose_a, .tb = nd->attr.transpose_b};
    Sym a0 = sym_dim(as->dim[ar - 2]), a1 = sym_dim(as->dim[ar - 1]);
    Sym b0 = sym_dim(bs->dim[br - 2]), b1 = sym_dim(bs->dim[br - 1]);
    mm.m = mm.ta ? a1 : a0;
    mm.kk = mm.ta ? a0 : a1;
    mm.nn = mm.tb ? b0 : b1;
    mm.lda = a1;
    mm.ldb = b1;
    assert(ir_dtype_is_float(t) && "matmul's shape rule admits float dtypes only");
    Shape ab = batch_shape(as), bb = batch_shape(bs), cb = batch_shape(cs);
    if (br == 2 && !mm.ta && ab.rank > 0) {
        int64_t rows = ir_shape_numel_per_n(&ab), m;
        /* the constant part of the folded M must fit BLAS's int, as every dim does */
        if (rows >= 0 && !ir_mul_overflows(rows, mm.m.c, &m) && m <= INT_MAX) {
            for (int i = 0; i < ab.rank; i++)
                mm.m = sym_mul(mm.m, sym_dim(ab.dim[i]));
            cb.rank = 0;
        }
    }
    Sym batches = {1, 0};
    for (int i = 0; i < cb.rank; i++)
        batches = sym_mul(batches, sym_dim(cb.dim[i]));
    set_count(cnt, sym_mul(batches, mm.m), (Sym){1, 0}, sym_mul((Sym){2, 0}, sym_mul(mm.nn, mm.kk)));

    LLVMValueRef pa = typed_buf(k, cg_buf_index(ks, nd->inputs[0]), t);
    LLVMValueRef pb = typed_buf(k, cg_buf_index(ks, nd->inputs[1]), t);
    LLVMValueRef pc, alpha = fconst(k, t, 1), beta = fconst(k, t, 0);
    if (ks->sgd_gemm) {
        const Node *root = ks->root;
        pc = typed_buf(k, cg_buf_index(ks, root), t);
        alpha = sgd_scale(k, root->inputs[1]);
        beta = fconst(k, t, 1);
    } else {
        pc = typed_buf(k, cg_buf_index(ks, nd), t);
    }
    LLVMValueRef M = sym_value(k, mm.m), lda = sym_value(k, mm.lda), nn = sym_value(k, mm.nn);
    if (cb.rank == 0) {
        LLVMValueRef a_row = mm.ta ? k->lo : LLVMBuildNSWMul(k->b, k->lo, lda, "");
        gemm_call(k, t, &mm, LLVMBuildNSWSub(k->b, k->hi, k->lo, ""), alpha, beta, elem_ptr(k, t, pa, a_row), pb,
                  elem_ptr(k, t, pc, LLVMBuildNSWMul(k->b, k->lo, nn, "")));
        return;
    }
    Sym sa[IR_MAX_RANK], sb[IR_MAX_RANK], sc[IR_MAX_RANK];
    cg_broadcast_strides(&ab, &cb, sa);
    cg_broadcast_strides(&bb, &cb, sb);
    cg_contiguous_strides(&cb, sc);
    Sym mats[3] = {sym_mul(a0, a1), sym_mul(b0, b1), sym_mul(mm.m, mm.nn)};
    /* the batches that meet [lo, hi): lo / M .. ceil(hi / M) */
    LLVMValueRef first = LLVMBuildSDiv(k->b, k->lo, M, "");
    LLVMValueRef end = LLVMBuildSDiv(k->b, LLVMBuildNSWAdd(k->b, k->hi, LLVMBuildNSWSub(k->b, M, ci64(k, 1), ""), ""), M, "");
    Loop l = loop_from(k, first, end);
    LLVMValueRef base = LLVMBuildNSWMul(k->b, l.iv, M, "");
    LLVMValueRef r0 = max_i64(k, LLVMBuildNSWSub(k->b, k->lo, base, ""), ci64(k, 0));
    LLVMValueRef r1 = min_i64(k, LLVMBuildNSWSub(k->b, k->hi, base, ""), M);
    LLVMValueRef rem = l.iv, off[3] = {ci64(k, 0), ci64(k, 0), ci64(k, 0)};
    for (int i = cb.rank - 1; i >= 0; i--) {
        LLVMValueRef d = sym_value(k, sym_dim(cb.dim[i]));
        LLVMValueRef idx = i == 0 ? rem : LLVMBuildSRem(k->b, rem, d, "");
        if (i > 0)
            rem = LLVMBuildSDiv(k->b, rem, d, "");
        Sym st[3] = {sym_mul(sa[i], mats[0]), sym_mul(sb[i], mats[1]), sym_mul(sc[i], mats[2])};
        for (int o = 0; o < 3; o++)
            if (st[o].c != 0)
                off[o] = LLVMBuildNSWAdd(k->b, off[o], LLVMBuildNSWMul(k->b, idx, sym_value(k, st[o]), ""), "");
    }
    LLVMValueRef a_row = mm.ta ? r0 : LLVMBuildNSWMul(k->b, r0, lda, "");
    gemm_call(k, t, &mm, LLVMBuildNSWSub(k->b, r1, r0, ""), alpha, beta,
              elem_ptr(k, t, pa, LLVMBuildNSWAdd(k->b, off[0], a_row, "")), elem_ptr(k, t, pb, off[1]),
              elem_ptr(k, t, pc, LLVMBuildNSWAdd(k->b, off[2], LLVMBuildNSWMul(k->b, r0, nn, ""), "")));
    loop_end(k, &l);
}

/* The members over rows [lo, hi) of the domain's first lead dims (flattened); an inner nest over the rest. */
static void emit_epilogue(Kern *k, int lead) {
    const Shape *D = k->domain;
    Nest inner = {.rank = D->rank - lead, .nops = k->npat, .split = -1, .scale = {1, 0}};
    for (int i = lead; i < D->rank; i++) {
        inner.dim[i - lead] = sym_dim(D->dim[i]);
        for (int p = 0; p < k->npat; p++)
            inner.stride[p][i - lead] = k->pat[p][i];
    }
    nest_simplify(&inner);
    Loop l = loop_from(k, k->lo, k->hi);
    LLVMValueRef offs[NEST_MAX_OPS], rem = l.iv;
    for (int p = 0; p < k->npat; p++)
        offs[p] = ci64(k, 0);
    for (int i = lead - 1; i >= 0; i--) {
        LLVMValueRef d = sym_value(k, sym_dim(D->dim[i]));
        LLVMValueRef idx = i == 0 ? rem : LLVMBuildSRem(k->b, rem, d, "");
        if (i > 0)
            rem = LLVMBuildSDiv(k->b, rem, d, "");
        for (int p = 0; p < k->npat; p++)
            if (k->pat[p][i].c != 0)
                offs[p] = LLVMBuildNSWAdd(k->b, offs[p], LLVMBuildNSWMul(k->b, idx, sym_value(k, k->pat[p][i]), ""), "");
    }
    emit_nest(k, &inner, 0, offs, elementwise_body, NULL);
    loop_end(k, &l);
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

/* A private constant: the descriptor of nd. */
static LLVMValueRef desc_global(Kern *k, const Node *nd) {
    CgCtx *c = k->c;
    int64_t d[CG_DESC_MAX];
    int len = cg_build_desc(nd, d);
    LLVMValueRef vals[CG_DESC_MAX];
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
    return LLVMConstBitCast(gv, LLVMPointerType(c->t_i64, 0));
}

/* An array on the stack of nd's input addresses. */
static LLVMValueRef input_array(Kern *k, const Node *nd) {
    CgCtx *c = k->c;
    LLVMTypeRef pp = LLVMPointerType(c->t_ptr, 0);
    LLVMValueRef ins = k_alloca(k, LLVMArrayType(c->t_ptr, (unsigned)nd->ninputs));
    LLVMValueRef ins_p = LLVMBuildBitCast(k->b, ins, pp, "");
    for (int i = 0; i < nd->ninputs; i++) {
        LLVMValueRef idx = ci64(k, i);
        LLVMBuildStore(k->b, k->buf[cg_buf_index(k->ks, nd->inputs[i])], LLVMBuildInBoundsGEP2(k->b, c->t_ptr, ins_p, &idx, 1, ""));
    }
    return ins_p;
}

/* lathe_k_<op>_<dtype>(out, in, n, desc): the whole node in one call (the runtime parallelizes inside). */
static void emit_callout(Kern *k) {
    CgCtx *c = k->c;
    const Node *nd = k->nd;
    LLVMValueRef desc = desc_global(k, nd), ins = input_array(k, nd);
    char fname[96];
    snprintf(fname, sizeof fname, "lathe_k_%s_%s", ir_op_name(nd->op), ir_dtype_name(nd->op == OP_RANDOM ? DT_F32 : nd->dtype));
    LLVMTypeRef ps[4] = {c->t_ptr, LLVMPointerType(c->t_ptr, 0), c->t_i64, LLVMPointerType(c->t_i64, 0)};
    LLVMValueRef f = declare_fn(c, fname, c->t_void, ps, 4);
    LLVMValueRef args[4] = {k->buf[cg_buf_index(k->ks, nd)], ins, k->n, desc};
    call(k, f, args, 4);
}

/* A convolution anchor's rows [lo, hi): lathe_k_<op>_<dtype>_range (runtime/kern_window.c). */
static void emit_conv_range(Kern *k, CgCount *cnt) {
    CgCtx *c = k->c;
    const Node *an = k->ks->anchor;
    LLVMValueRef desc = desc_global(k, an), ins = input_array(k, an);
    char fname[96];
    snprintf(fname, sizeof fname, "lathe_k_%s_%s_range", ir_op_name(an->op), ir_dtype_name(an->dtype));
    LLVMTypeRef ps[6] = {c->t_ptr, LLVMPointerType(c->t_ptr, 0), c->t_i64, LLVMPointerType(c->t_i64, 0), c->t_i64, c->t_i64};
    LLVMValueRef f = declare_fn(c, fname, c->t_void, ps, 6);
    LLVMValueRef args[6] = {k->buf[cg_buf_index(k->ks, an)], ins, k->n, desc, k->lo, k->hi};
    call(k, f, args, 6);
    /* per row: each output element costs a window over the weight's other dims */
    const Shape *ws = &an->inputs[1]->shape;
    Sym row = {1, 0}, wpart = {1, 0};
    for (int i = 1; i < an->shape.rank; i++)
        row = sym_mul(row, sym_dim(an->shape.dim[i]));
    for (int i = 1; i < ws->rank; i++)
        wpart = sym_mul(wpart, sym_dim(ws->dim[i]));
    set_count(cnt, sym_dim(an->shape.dim[0]), (Sym){1, 0}, sym_mul((Sym){2, 0}, sym_mul(row, wpart)));
}

/* ---------------------------------------------------------------- the kernel function */

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

/* The code of k over its range [lo, hi), into the body function fn. */
static void emit_body(Kern *k, CgCount *cnt) {
    const CgKernel *ks = k->ks;
    const Node *nd = ks->root;
    set_count(cnt, (Sym){1, 0}, (Sym){1, 0}, (Sym){1, 0});
    if (ks->anchor) {
        k->domain = &ks->anchor->shape;
        plan_members(k);
        if (ks->anchor->op == OP_MATMUL)
            emit_gemm(k, cnt);
        else
            emit_conv_range(k, cnt);
        if (ks->nmembers > 1 && !ks->sgd_gemm)
            emit_epilogue(k, ks->anchor->op == OP_MATMUL ? k->domain->rank - 1 : 1);
        return;
    }
    if (is_reduce_root(nd)) {
        k->domain = &nd->inputs[0]->shape;
        plan_members(k);
        if (nd->op == OP_ARGMAX || nd->op == OP_ARGMIN)
            emit_argmax(k, cnt);
        else
            emit_reduce(k, cnt);
        return;
    }
    if (cg_is_pointwise(nd)) {
        k->domain = &nd->shape;
        plan_members(k);
        emit_elementwise(k, cnt);
        return;
    }
    /* a lone node with a kernel of its own, run as one item */
    k->out = typed_buf(k, cg_buf_index(ks, nd), nd->dtype);
    for (int i = 0; i < nd->ninputs; i++)
        k->in[i] = typed_buf(k, cg_buf_index(ks, nd->inputs[i]), nd->inputs[i]->dtype);
    switch (nd->op) {
    case OP_IOTA: emit_iota(k); break;
    case OP_ONE_HOT: emit_one_hot(k); break;
    default:
        if (!cg_is_callout(nd->op))
            LATHE_UNREACHABLE("no kernel for this op");
        emit_callout(k);
        break;
    }
}

LLVMValueRef cg_llvm_kernel(CgCtx *c, const CgKernel *ks, CgCount *cnt) {
    const Node *nd = ks->root;
    if (ks->anchor && ks->anchor->op == OP_MATMUL && !gemm_dims_fit(c, ks->anchor))
        return NULL;
    assert(ks->nbufs <= CG_MAX_BUFS);
    /* the body: `void (i8 *noalias buf..., i64 n, i64 lo, i64 hi)`; distinct buffers never overlap */
    int np = ks->nbufs + 3;
    LLVMTypeRef ps[CG_MAX_BUFS + 3];
    for (int i = 0; i < ks->nbufs; i++)
        ps[i] = c->t_ptr;
    ps[np - 3] = ps[np - 2] = ps[np - 1] = c->t_i64;
    char name[64];
    snprintf(name, sizeof name, "k%d_%s", nd->id, ir_op_name(nd->op));
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, LLVMFunctionType(c->t_void, ps, (unsigned)np, false));
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    cg_llvm_function_attrs(c, fn);
    unsigned na = LLVMGetEnumAttributeKindForName("noalias", 7);
    for (int i = 0; i < ks->nbufs; i++)
        LLVMAddAttributeAtIndex(fn, (unsigned)i + 1, LLVMCreateEnumAttribute(c->ctx, na, 0));

    Kern k = {.c = c, .b = c->b, .fn = fn, .nd = nd, .ks = ks};
    k.allocas = LLVMAppendBasicBlockInContext(c->ctx, fn, "entry");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, fn, "start");
    LLVMPositionBuilderAtEnd(c->b, body);
    for (int i = 0; i < ks->nbufs; i++)
        k.buf[i] = LLVMGetParam(fn, (unsigned)i);
    k.n = LLVMGetParam(fn, (unsigned)np - 3);
    k.lo = LLVMGetParam(fn, (unsigned)np - 2);
    k.hi = LLVMGetParam(fn, (unsigned)np - 1);
    emit_body(&k, cnt);
    LLVMBuildRetVoid(c->b);
    LLVMPositionBuilderAtEnd(c->b, k.allocas);
    LLVMBuildBr(c->b, body);

    /* the ABI's function (lathe_kern.h): unpacks bufs into the body's arguments */
    LLVMTypeRef ws[4] = {LLVMPointerType(c->t_ptr, 0), c->t_i64, c->t_i64, c->t_i64};
    snprintf(name, sizeof name, "k%d_%s.run", nd->id, ir_op_name(nd->op));
    LLVMValueRef wrap = LLVMAddFunction(c->mod, name, LLVMFunctionType(c->t_void, ws, 4, false));
    LLVMSetLinkage(wrap, LLVMInternalLinkage);
    cg_llvm_function_attrs(c, wrap);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, wrap, "entry"));
    LLVMValueRef args[CG_MAX_BUFS + 3];
    for (int i = 0; i < ks->nbufs; i++) {
        LLVMValueRef idx = LLVMConstInt(c->t_i64, (unsigned long long)i, false);
        args[i] = LLVMBuildLoad2(c->b, c->t_ptr, LLVMBuildInBoundsGEP2(c->b, c->t_ptr, LLVMGetParam(wrap, 0), &idx, 1, ""), "");
    }
    for (int i = 0; i < 3; i++)
        args[ks->nbufs + i] = LLVMGetParam(wrap, (unsigned)i + 1);
    LLVMBuildCall2(c->b, LLVMGlobalGetValueType(fn), fn, args, (unsigned)np, "");
    LLVMBuildRetVoid(c->b);
    return wrap;
}
