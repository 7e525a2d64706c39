/* pointwise.c: the CUDA kernels of elementwise groups, reductions with their producers, argmax/argmin,
   one_hot and iota, and the epilogue code that gemm.c runs on a GEMM's outputs (cu_int.h).
   A kernel's members are computed inline at each index of its domain, as codegen/llvm/kernels.c computes
   them: every read of a buffer goes through a stride pattern over the domain (0 on broadcast dims, permuted
   for a transposed view), and each pattern's offset is unravelled from a flat index over dims that are
   merged where every pattern is contiguous across them. Elementwise kernels are grid-stride loops over the
   domain; a reduction gives each output a thread, a warp or a block by the sizes, and combines partial
   results in a fixed tree (no atomics), so that it is deterministic for a given block size. */
#include "cu_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BLOCK = 256, MAX_BLOCK = 1024, MAX_PATS = 64, MAX_ACCS = 2 * CG_MAX_BUFS };

static Sym sym_numel(const Shape *s) {
    return (Sym){ir_shape_numel_per_n(s), ir_shape_count_n(s)};
}

/* s as a C expression of type long long. */
static const char *sym_str(Sym s, char *buf, size_t size) {
    int len = snprintf(buf, size, s.p > 0 ? "(%lldLL" : "%lldLL", (long long)s.c);
    for (int i = 0; i < s.p && len > 0 && (size_t)len < size; i++)
        len += snprintf(buf + len, size - (size_t)len, " * n");
    if (s.p > 0 && len > 0 && (size_t)len < size)
        snprintf(buf + len, size - (size_t)len, ")");
    return buf;
}

/* The emitters' working sets are large (a pattern and an access per buffer): from the heap. */
static void *alloc_or_exit(size_t size) {
    void *p = malloc(size);
    if (!p) {
        fprintf(stderr, "lathe: out of memory\n");
        exit(1);
    }
    return p;
}

static void set_launch(CuKernel *ck, Sym items, int64_t per_block) {
    ck->items_c = items.c;
    ck->items_p = items.p;
    ck->per_block = per_block;
}

/* ---------------------------------------------------------------- a kernel's members over its domain */

/* A read of a buffer through a stride pattern. */
typedef struct Access {
    const Node *x;
    int buf, pat;
} Access;

typedef struct Pw {
    CuKernel *ck;
    const CgKernel *k;
    CuBuf *b;
    const Shape *domain;
    int npat;
    Sym pat[MAX_PATS][IR_MAX_RANK];
    bool used[MAX_PATS]; /* the patterns whose offsets the code reads */
    int nacc;
    Access acc[MAX_ACCS];
    int acc_of[CG_MAX_MEMBERS][3]; /* the access that member i's input j reads, -1: a member or folded */
    int out_buf[CG_MAX_MEMBERS];   /* the buffer a materialized member is stored into, -1: none */
} Pw;

static int add_pattern(Pw *w, const Sym *st) {
    int r = w->domain->rank;
    for (int p = 0; p < w->npat; p++) {
        bool same = true;
        for (int i = 0; i < r; i++)
            if (!sym_eq(w->pat[p][i], st[i]) || (st[i].c == 0) != (w->pat[p][i].c == 0))
                same = false;
        if (same)
            return p;
    }
    if (w->npat == MAX_PATS)
        LATHE_UNREACHABLE("a CUDA kernel has more stride patterns than MAX_PATS");
    memcpy(w->pat[w->npat], st, sizeof(Sym) * (size_t)r);
    return w->npat++;
}

static int add_access(Pw *w, const Node *x, const Sym *st) {
    int buf = cg_buf_index(w->k, x), pat = add_pattern(w, st);
    if (buf < 0)
        LATHE_UNREACHABLE("an external input of a kernel has no buffer");
    for (int a = 0; a < w->nacc; a++)
        if (w->acc[a].buf == buf && w->acc[a].pat == pat && w->acc[a].x->dtype == x->dtype)
            return a;
    if (w->nacc == MAX_ACCS)
        LATHE_UNREACHABLE("a CUDA kernel has more reads than MAX_ACCS");
    w->acc[w->nacc] = (Access){x, buf, pat};
    w->used[pat] = true;
    return w->nacc++;
}

static bool is_reduce_root(const Node *n) {
    return ir_op_kind(n->op) == K_REDUCE || n->op == OP_ARGMAX || n->op == OP_ARGMIN;
}

/* Pattern 0 is the domain's own layout, where materialized members are stored; the reads follow. The
   anchor's value is the caller's (gemm.c) and a reduction's root is stored by the reduction. */
static void plan_members(Pw *w, CuKernel *ck, const Shape *domain) {
    memset(w, 0, sizeof *w);
    w->ck = ck;
    w->k = ck->k;
    w->b = ck->src;
    w->domain = domain;
    const CgKernel *k = w->k;
    Sym st[IR_MAX_RANK] = {{0, 0}};
    cg_contiguous_strides(domain, st);
    add_pattern(w, st);
    for (int i = 0; i < k->nmembers; i++) {
        const Node *m = k->members[i];
        w->out_buf[i] = -1;
        w->acc_of[i][0] = w->acc_of[i][1] = w->acc_of[i][2] = -1;
        if (m == k->anchor)
            continue;
        if (k->materialized[i] && !(m == k->root && is_reduce_root(m))) {
            w->out_buf[i] = cg_buf_index(k, m);
            w->used[0] = true;
        }
        if (m->op == OP_CONST)
            continue;
        if (m->op == OP_TRANSPOSE) {
            Sym cs[IR_MAX_RANK] = {{0, 0}}, ts[IR_MAX_RANK];
            cg_contiguous_strides(&m->inputs[0]->shape, cs);
            for (int d = 0; d < domain->rank; d++)
                ts[d] = cs[m->attr.perm[d]];
            w->acc_of[i][0] = add_access(w, m->inputs[0], ts);
            continue;
        }
        for (int j = 0; j < m->ninputs && j < 3; j++) {
            const Node *x = m->inputs[j];
            if (cg_is_member(k, x) || (x->op == OP_CONST && cg_folds_const(m)))
                continue;
            Sym bs[IR_MAX_RANK];
            cg_broadcast_strides(&x->shape, domain, bs);
            w->acc_of[i][j] = add_access(w, x, bs);
        }
    }
}

/* Some of the domain's dims with every pattern's strides, outer to inner. */
typedef struct Nest {
    int rank;
    Sym dim[IR_MAX_RANK];
    Sym st[MAX_PATS][IR_MAX_RANK];
} Nest;

/* The dims of the domain in mask, without unit dims, a dim merged into the next inner one where every used
   pattern is contiguous across the two. */
static void nest_of(const Pw *w, uint32_t mask, Nest *ns) {
    ns->rank = 0;
    for (int i = 0; i < w->domain->rank; i++) {
        Sym d = sym_dim(w->domain->dim[i]);
        if (!(mask & (1u << i)) || sym_is_one(d))
            continue;
        ns->dim[ns->rank] = d;
        for (int p = 0; p < w->npat; p++)
            ns->st[p][ns->rank] = w->pat[p][i];
        ns->rank++;
    }
    for (int i = ns->rank - 2; i >= 0; i--) {
        bool merge = true;
        for (int p = 0; p < w->npat; p++)
            if (w->used[p] && !sym_eq(ns->st[p][i], sym_mul(ns->st[p][i + 1], ns->dim[i + 1])))
                merge = false;
        if (!merge)
            continue;
        ns->dim[i] = sym_mul(ns->dim[i], ns->dim[i + 1]);
        for (int p = 0; p < w->npat; p++)
            ns->st[p][i] = ns->st[p][i + 1];
        for (int j = i + 1; j + 1 < ns->rank; j++) {
            ns->dim[j] = ns->dim[j + 1];
            for (int p = 0; p < w->npat; p++)
                ns->st[p][j] = ns->st[p][j + 1];
        }
        ns->rank--;
    }
}

/* Declares `long long VAR<p> = INIT<p>` (or 0) for every used pattern. */
static void declare_offsets(Pw *w, const char *ind, const char *var, const char *init) {
    bool first = true;
    for (int p = 0; p < w->npat; p++) {
        if (!w->used[p])
            continue;
        if (init)
            cu_printf(w->b, "%s%s%s%d = %s%d", first ? ind : "", first ? "long long " : ", ", var, p, init, p);
        else
            cu_printf(w->b, "%s%s%s%d = 0", first ? ind : "", first ? "long long " : ", ", var, p);
        first = false;
    }
    if (!first)
        cu_printf(w->b, ";\n");
}

/* Adds to each used pattern's VAR<p> its offset at the flat index `flat` over the nest's dims. */
static void emit_unravel(Pw *w, const Nest *ns, const char *ind, const char *flat, const char *var) {
    char db[64], sb[64];
    bool any = false;
    for (int d = 0; d < ns->rank; d++)
        for (int p = 0; p < w->npat; p++)
            any = any || (w->used[p] && ns->st[p][d].c != 0);
    if (!any)
        return;
    cu_printf(w->b, "%s{\n%s    long long q = %s, t;\n", ind, ind, flat);
    for (int d = ns->rank - 1; d >= 0; d--) {
        const char *ds = sym_str(ns->dim[d], db, sizeof db);
        if (d == 0)
            cu_printf(w->b, "%s    t = q;\n", ind);
        else
            cu_printf(w->b, "%s    t = q %% %s;\n%s    q /= %s;\n", ind, ds, ind, ds);
        for (int p = 0; p < w->npat; p++) {
            Sym st = ns->st[p][d];
            if (!w->used[p] || st.c == 0)
                continue;
            if (sym_is_one(st))
                cu_printf(w->b, "%s    %s%d += t;\n", ind, var, p);
            else
                cu_printf(w->b, "%s    %s%d += t * %s;\n", ind, var, p, sym_str(st, sb, sizeof sb));
        }
    }
    cu_printf(w->b, "%s}\n", ind);
}

/* ---------------------------------------------------------------- scalar code */

/* C's conversion of v into an integer dtype as ir/interp.c's round_to defines it. */
static int64_t int_of(double v, DType t) {
    if (isnan(v) || (isinf(v) && t != DT_I64))
        return 0;
    v = trunc(v);
    if (t == DT_I64)
        return v < -9223372036854775808.0 ? INT64_MIN : v >= 9223372036854775808.0 ? INT64_MAX : (int64_t)v;
    double range = t == DT_U8 ? 256.0 : 4294967296.0;
    v = fmod(v, range);
    if (v < 0)
        v += range;
    if (t == DT_I32 && v >= range / 2)
        v -= range;
    return (int64_t)v;
}

/* A literal of dtype t with value v (as C converts v to t). */
static void literal(CuBuf *e, DType t, double v) {
    if (ir_dtype_is_float(t)) {
        const char *f = t == DT_F32 ? "F" : "D";
        if (isnan(v)) {
            cu_printf(e, "LATHE_%s_NAN", f);
            return;
        }
        if (t == DT_F32)
            v = (float)v;
        if (isinf(v)) {
            cu_printf(e, "(%sLATHE_%s_INF)", v < 0 ? "-" : "", f);
            return;
        }
        char buf[64];
        snprintf(buf, sizeof buf, t == DT_F32 ? "%.9g" : "%.17g", v);
        cu_printf(e, "%s%s%s%s%s", v < 0 ? "(" : "", buf, strpbrk(buf, ".e") ? "" : ".0", t == DT_F32 ? "f" : "",
                  v < 0 ? ")" : "");
        return;
    }
    int64_t i = int_of(v, t);
    if (t == DT_I64)
        cu_printf(e, i == INT64_MIN ? "LATHE_I64_MIN" : "(%lldLL)", (long long)i);
    else if (t == DT_I32)
        cu_printf(e, i == INT32_MIN ? "LATHE_I32_MIN" : "((int)%lld)", (long long)i);
    else
        cu_printf(e, "((unsigned char)%lld)", (long long)i);
}

/* x converted from dtype `from` to `to` as the interpreter converts. */
static void convert(CuBuf *e, DType from, DType to, const char *x) {
    if (from == to)
        cu_printf(e, "%s", x);
    else if (ir_dtype_is_float(from) && !ir_dtype_is_float(to))
        cu_printf(e, "lathe_f2%s((double)(%s))", to == DT_I32 ? "i32" : to == DT_I64 ? "i64" : "u8", x);
    else
        cu_printf(e, "((%s)(%s))", cu_type(to), x);
}

/* A CONST's value, value * n^npow computed in double from n as the interpreter does, in dtype t. */
static void const_value(CuBuf *e, const Node *cn, DType t) {
    if (cn->attr.npow == 0) {
        literal(e, t, cn->attr.value);
        return;
    }
    CuBuf v = {0};
    cu_printf(&v, "(");
    literal(&v, DT_F64, cn->attr.value);
    for (int i = 0; i < abs(cn->attr.npow); i++)
        cu_printf(&v, cn->attr.npow > 0 ? " * (double)n" : " / (double)n");
    cu_printf(&v, ")");
    convert(e, DT_F64, t, v.s);
    cu_free(&v);
}

/* The name (or literal) of member i's input j at the current index. */
static void input_value(Pw *w, int i, int j, CuBuf *e) {
    const Node *x = w->k->members[i]->inputs[j];
    int mi = cg_member_index(w->k, x);
    if (mi >= 0)
        cu_printf(e, "v%d", mi);
    else if (w->acc_of[i][j] >= 0)
        cu_printf(e, "a%d", w->acc_of[i][j]);
    else
        const_value(e, x, x->dtype);
}

static const char *float_fn(Op op) {
    switch (op) {
    case OP_EXP: return "exp";
    case OP_LOG: return "log";
    case OP_SQRT: return "sqrt";
    case OP_ABS: return "fabs";
    case OP_TANH: return "tanh";
    case OP_ERF: return "erf";
    default: return NULL;
    }
}

static void unary(CuBuf *e, Op op, DType t, const char *x) {
    const char *f = t == DT_F32 ? "f" : "", *one = t == DT_F32 ? "1.0f" : "1.0";
    if (ir_dtype_is_float(t)) {
        if (float_fn(op))
            cu_printf(e, "%s%s(%s)", float_fn(op), f, x);
        else if (op == OP_NEG)
            cu_printf(e, "-(%s)", x);
        else if (op == OP_RSQRT)
            cu_printf(e, "%s / sqrt%s(%s)", one, f, x);
        else if (op == OP_RELU) /* NaN passes through, as in PyTorch and the interpreter */
            cu_printf(e, "(%s < 0 ? (%s)0 : %s)", x, cu_type(t), x);
        else if (op == OP_SIGMOID)
            cu_printf(e, "%s / (%s + exp%s(-%s))", one, one, f, x);
        else
            LATHE_UNREACHABLE("not a float unary op");
        return;
    }
    if (op == OP_NEG)
        cu_printf(e, "lathe_sub((%s)0, %s)", cu_type(t), x);
    else if (op == OP_ABS && t == DT_U8)
        cu_printf(e, "%s", x);
    else if (op == OP_ABS)
        cu_printf(e, "(%s < 0 ? lathe_sub((%s)0, %s) : %s)", x, cu_type(t), x, x);
    else
        LATHE_UNREACHABLE("the shape rule admits only neg and abs on integers");
}

static void binary(CuBuf *e, Op op, DType t, const char *x, const char *y) {
    bool fl = ir_dtype_is_float(t);
    switch (op) {
    case OP_ADD: cu_printf(e, fl ? "%s + %s" : "lathe_add(%s, %s)", x, y); return;
    case OP_SUB: cu_printf(e, fl ? "%s - %s" : "lathe_sub(%s, %s)", x, y); return;
    case OP_MUL: cu_printf(e, fl ? "%s * %s" : "lathe_mul(%s, %s)", x, y); return;
    case OP_DIV: cu_printf(e, fl ? "%s / %s" : "lathe_div(%s, %s)", x, y); return;
    case OP_MAX: cu_printf(e, "lathe_max(%s, %s)", x, y); return;
    case OP_MIN: cu_printf(e, "lathe_min(%s, %s)", x, y); return;
    case OP_POW:
        if (fl) {
            cu_printf(e, "pow%s(%s, %s)", t == DT_F32 ? "f" : "", x, y);
        } else {
            char p[256];
            snprintf(p, sizeof p, "pow((double)%s, (double)%s)", x, y);
            convert(e, DT_F64, t, p);
        }
        return;
    default: break;
    }
    LATHE_UNREACHABLE("not a binary op");
}

static const char *compare_op(Op op) {
    switch (op) {
    case OP_EQ: return "==";
    case OP_NE: return "!="; /* true where either side is NaN, as the CPU's une */
    case OP_LT: return "<";
    case OP_LE: return "<=";
    case OP_GT: return ">";
    case OP_GE: return ">=";
    default: break;
    }
    LATHE_UNREACHABLE("not a comparison");
}

/* Member i's value at the current index, from its inputs' values. */
static void member_expr(Pw *w, int i, CuBuf *e) {
    const Node *m = w->k->members[i];
    if (m->op == OP_CONST) {
        const_value(e, m, m->dtype);
        return;
    }
    if (m->op == OP_TRANSPOSE) {
        cu_printf(e, "a%d", w->acc_of[i][0]);
        return;
    }
    CuBuf x = {0}, y = {0}, z = {0};
    input_value(w, i, 0, &x);
    if (m->ninputs > 1)
        input_value(w, i, 1, &y);
    if (m->ninputs > 2)
        input_value(w, i, 2, &z);
    DType t = m->inputs[0]->dtype;
    if (m->op == OP_BROADCAST)
        cu_printf(e, "%s", x.s);
    else if (m->op == OP_CAST)
        convert(e, t, m->dtype, x.s);
    else if (m->op == OP_SELECT)
        cu_printf(e, "%s != 0 ? %s : %s", x.s, y.s, z.s);
    else if (ir_op_kind(m->op) == K_UNARY)
        unary(e, m->op, t, x.s);
    else if (ir_op_kind(m->op) == K_BINARY)
        binary(e, m->op, t, x.s, y.s);
    else if (ir_op_kind(m->op) == K_COMPARE)
        cu_printf(e, "(unsigned char)(%s %s %s)", x.s, compare_op(m->op), y.s);
    else
        LATHE_UNREACHABLE("not a pointwise member");
    cu_free(&x);
    cu_free(&y);
    cu_free(&z);
}

/* At the index whose pattern offsets are o<p>: loads every read (all before any store, so that an
   in-place update reads the old value), then computes each member (the anchor's value is `anchor`; the
   reduction root, `skip`, is left to the caller) and stores the materialized ones. */
static void emit_members(Pw *w, const char *ind, const char *anchor, const Node *skip) {
    const CgKernel *k = w->k;
    for (int a = 0; a < w->nacc; a++) {
        const Access *ac = &w->acc[a];
        cu_printf(w->b, "%sconst %s a%d = b%d[o%d];\n", ind, cu_type(ac->x->dtype), a, ac->buf, ac->pat);
    }
    for (int i = 0; i < k->nmembers; i++) {
        const Node *m = k->members[i];
        if (m == skip)
            continue;
        cu_line(w->ck, m);
        if (m == k->anchor) {
            cu_printf(w->b, "%sconst %s v%d = %s;\n", ind, cu_type(m->dtype), i, anchor);
            continue;
        }
        CuBuf e = {0};
        member_expr(w, i, &e);
        cu_printf(w->b, "%sconst %s v%d = %s;\n", ind, cu_type(m->dtype), i, e.s);
        cu_free(&e);
        if (w->out_buf[i] >= 0)
            cu_printf(w->b, "%sb%d[o0] = v%d;\n", ind, w->out_buf[i], i);
    }
}

void cu_emit_members_at(CuKernel *ck, const char *index, const char *value) {
    Pw *w = alloc_or_exit(sizeof *w);
    Nest *ns = alloc_or_exit(sizeof *ns);
    plan_members(w, ck, &ck->k->anchor->shape);
    nest_of(w, ~0u, ns);
    const Node *an = ck->k->anchor;
    /* index and value first, before any name of the block can shadow the caller's */
    cu_printf(w->b, "            {\n                const long long ep_index = %s;\n", index);
    cu_printf(w->b, "                const %s ep_value = %s;\n", cu_type(an->dtype), value);
    declare_offsets(w, "                ", "o", NULL);
    emit_unravel(w, ns, "                ", "ep_index", "o");
    emit_members(w, "                ", "ep_value", NULL);
    cu_printf(w->b, "            }\n");
    free(ns);
    free(w);
}

/* ---------------------------------------------------------------- elementwise kernels */

static const char grid_stride[] =
    "    for (long long ix = (long long)blockIdx.x * blockDim.x + threadIdx.x; ix < total;\n"
    "         ix += (long long)gridDim.x * blockDim.x) {\n";

bool cu_emit_pointwise(CuKernel *ck) {
    Pw *w = alloc_or_exit(sizeof *w);
    Nest *ns = alloc_or_exit(sizeof *ns);
    const Shape *dom = &ck->k->root->shape;
    plan_members(w, ck, dom);
    nest_of(w, ~0u, ns);
    char sb[64];
    Sym total = sym_numel(dom);
    cu_signature(ck, BLOCK);
    cu_printf(w->b, "    const long long total = %s;\n%s", sym_str(total, sb, sizeof sb), grid_stride);
    declare_offsets(w, "        ", "o", NULL);
    emit_unravel(w, ns, "        ", "ix", "o");
    emit_members(w, "        ", NULL, NULL);
    cu_printf(w->b, "    }\n}\n");
    set_launch(ck, total, BLOCK);
    free(ns);
    free(w);
    return true;
}

/* ---------------------------------------------------------------- reductions and argmax/argmin
   Each output reduces the root's input over the reduced dims (the domain is the input's shape). Who
   reduces one output, by the sizes:
     - where the innermost dim is kept (a sum over the batch), neighbouring outputs are neighbouring
       elements: a thread per output over a small extent; else a block per 32 outputs, lane l of every warp
       on output l, the warps on interleaved rows, their sums added in warp order (columns);
     - where it is reduced: a thread per output over a small extent, a warp over a moderate one, a block
       (shared memory between its warps) over a large one or one that grows with N. */

typedef enum { BY_THREAD, BY_COLUMNS, BY_WARP, BY_BLOCK } Reducer;

static Reducer choose_reducer(const Shape *dom, uint32_t axes, Sym r) {
    int last = -1;
    for (int i = 0; i < dom->rank; i++)
        if (dom->dim[i] != 1)
            last = i;
    bool small = r.p == 0 && r.c <= (last >= 0 && !(axes & (1u << last)) ? 32 : 16);
    if (small)
        return BY_THREAD;
    if (last >= 0 && !(axes & (1u << last)))
        return BY_COLUMNS;
    if (r.p == 0 && r.c <= 2048)
        return BY_WARP;
    return BY_BLOCK;
}

/* The accumulator's type: float sums in double, as exact as the interpreter; u8 in unsigned. */
static const char *acc_type(const Node *root) {
    DType t = root->inputs[0]->dtype;
    bool arg = root->op == OP_ARGMAX || root->op == OP_ARGMIN;
    if (t == DT_F32)
        return arg || root->op == OP_REDUCE_MAX || root->op == OP_REDUCE_MIN ? "float" : "double";
    if (arg && !ir_dtype_is_float(t))
        return "long long";
    return t == DT_U8 ? "unsigned" : cu_type(t);
}

/* The identity of the reduction in its accumulator: 0, or the lowest value for max, the highest for min. */
static void reduce_identity(CuBuf *e, const Node *root) {
    DType t = root->inputs[0]->dtype;
    bool max = root->op == OP_REDUCE_MAX || root->op == OP_ARGMAX, min = root->op == OP_REDUCE_MIN || root->op == OP_ARGMIN;
    bool arg = root->op == OP_ARGMAX || root->op == OP_ARGMIN;
    const char *lo = "0", *hi = "0";
    if (ir_dtype_is_float(t)) {
        lo = t == DT_F32 ? "-LATHE_F_INF" : "-LATHE_D_INF";
        hi = t == DT_F32 ? "LATHE_F_INF" : "LATHE_D_INF";
    } else if (t == DT_I64 || arg) {
        lo = "LATHE_I64_MIN";
        hi = "LATHE_I64_MAX";
    } else if (t == DT_I32) {
        lo = "LATHE_I32_MIN";
        hi = "LATHE_I32_MAX";
    } else {
        hi = "255u";
    }
    cu_printf(e, "(%s)(%s)", acc_type(root), max ? lo : min ? hi : "0");
}

/* acc = acc combined with x */
static void emit_combine(Pw *w, const char *ind, const Node *root, const char *x, const char *xi) {
    bool fl = ir_dtype_is_float(root->inputs[0]->dtype);
    switch (root->op) {
    case OP_REDUCE_SUM:
    case OP_REDUCE_MEAN: cu_printf(w->b, fl ? "%sacc = acc + %s;\n" : "%sacc = lathe_add(acc, %s);\n", ind, x); break;
    case OP_REDUCE_MAX: cu_printf(w->b, "%sacc = lathe_max(acc, %s);\n", ind, x); break;
    case OP_REDUCE_MIN: cu_printf(w->b, "%sacc = lathe_min(acc, %s);\n", ind, x); break;
    default:
        cu_printf(w->b, "%sif (lathe_arg_better(acc, acc_i, %s, %s, %s)) {\n%s    acc = %s;\n%s    acc_i = %s;\n%s}\n", ind, x,
                  xi, root->op == OP_ARGMIN ? "true" : "false", ind, x, ind, xi, ind);
        break;
    }
}

/* acc (and acc_i) combined with lane (lane + s) of the warp, for s = 16 .. 1: lane 0 ends with the
   warp's result. */
static void emit_warp_reduce(Pw *w, const char *ind, const Node *root) {
    const char *at = acc_type(root);
    bool arg = root->op == OP_ARGMAX || root->op == OP_ARGMIN;
    cu_printf(w->b, "%sfor (int s = 16; s > 0; s >>= 1) {\n", ind);
    cu_printf(w->b, "%s    const %s other = __shfl_down_sync(LATHE_FULL_MASK, acc, s);\n", ind, at);
    if (arg)
        cu_printf(w->b, "%s    const long long other_i = __shfl_down_sync(LATHE_FULL_MASK, acc_i, s);\n", ind);
    char ind2[32];
    snprintf(ind2, sizeof ind2, "%s    ", ind);
    emit_combine(w, ind2, root, "other", "other_i");
    cu_printf(w->b, "%s}\n", ind);
}

/* Stores the output ox from acc: the mean's division, the dtype's conversion, argmax's empty axis. */
static void emit_store_result(Pw *w, const char *ind, const Node *root, Sym count) {
    DType t = root->dtype;
    char sb[64];
    const char *r = sym_str(count, sb, sizeof sb);
    CuBuf e = {0};
    int ob = cg_buf_index(w->k, root);
    if (root->op == OP_ARGMAX || root->op == OP_ARGMIN) {
        cu_printf(w->b, "%sb%d[ox] = acc_i == LATHE_I64_MAX ? 0 : acc_i;\n", ind, ob);
        return;
    }
    if (root->op == OP_REDUCE_MEAN && ir_dtype_is_float(t)) {
        char q[128];
        snprintf(q, sizeof q, "acc / (double)%s", r);
        convert(&e, DT_F64, t, q);
    } else if (root->op == OP_REDUCE_MEAN) {
        cu_printf(&e, "(%s)lathe_div(acc, (%s)%s)", cu_type(t), acc_type(root), r);
    } else {
        cu_printf(&e, "(%s)acc", cu_type(t));
    }
    cu_printf(w->b, "%sb%d[ox] = %s;\n", ind, ob, e.s);
    cu_free(&e);
}

/* The body of the loop over reduced elements rx: the domain's offsets, the members, the combine. */
static void emit_reduce_step(Pw *w, const Nest *red, const char *ind, const Node *root) {
    declare_offsets(w, ind, "o", "k");
    emit_unravel(w, red, ind, "rx", "o");
    emit_members(w, ind, NULL, root);
    CuBuf x = {0}, cx = {0};
    input_value(w, cg_member_index(w->k, root), 0, &x);
    cu_printf(&cx, "(%s)%s", acc_type(root), x.s);
    emit_combine(w, ind, root, cx.s, "rx");
    cu_free(&x);
    cu_free(&cx);
}

/* Threads per block: where a block's warps share outputs and there are few outputs but many elements
   each (batch norm's statistics: a channel each), 1024, so that the few blocks keep more of the GPU busy. */
static int reducer_block(Reducer by, Sym outs, Sym count) {
    bool shared = by == BY_BLOCK || by == BY_COLUMNS;
    bool few = outs.p == 0 && outs.c <= 512, many = count.p > 0 || count.c >= 4096;
    return shared && few && many ? MAX_BLOCK : BLOCK;
}

/* The loop over the outputs that one thread (warp, block) reduces, opened. */
static void open_outputs(Pw *w, Reducer by) {
    switch (by) {
    case BY_THREAD:
        cu_printf(w->b, "    for (long long ox = (long long)blockIdx.x * blockDim.x + threadIdx.x; ox < outs;\n"
                        "         ox += (long long)gridDim.x * blockDim.x) {\n");
        break;
    case BY_WARP:
        cu_printf(w->b, "    const int lane = threadIdx.x & 31;\n"
                        "    for (long long ox = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5; ox < outs;\n"
                        "         ox += ((long long)gridDim.x * blockDim.x) >> 5) {\n");
        break;
    case BY_COLUMNS:
        cu_printf(w->b, "    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;\n"
                        "    for (long long tile = blockIdx.x; tile * 32 < outs; tile += gridDim.x) {\n"
                        "        const long long ox = tile * 32 + lane;\n");
        break;
    case BY_BLOCK:
        cu_printf(w->b, "    for (long long ox = blockIdx.x; ox < outs; ox += gridDim.x) {\n");
        break;
    }
}

/* The partial results combined in a fixed order and the output stored. */
static void close_outputs(Pw *w, Reducer by, const Node *root, Sym count, const char *id) {
    bool arg = root->op == OP_ARGMAX || root->op == OP_ARGMIN;
    switch (by) {
    case BY_THREAD:
        emit_store_result(w, "        ", root, count);
        break;
    case BY_WARP:
        emit_warp_reduce(w, "        ", root);
        cu_printf(w->b, "        if (lane == 0)\n");
        emit_store_result(w, "            ", root, count);
        break;
    case BY_COLUMNS:
        cu_printf(w->b, "        part[warp][lane] = acc;\n%s        __syncthreads();\n",
                  arg ? "        part_i[warp][lane] = acc_i;\n" : "");
        cu_printf(w->b, "        if (warp == 0 && ox < outs) {\n            for (int v = 1; v < warps; v++) {\n");
        emit_combine(w, "                ", root, "part[v][lane]", "part_i[v][lane]");
        cu_printf(w->b, "            }\n");
        emit_store_result(w, "            ", root, count);
        cu_printf(w->b, "        }\n        __syncthreads(); /* part is reused by the next tile */\n");
        break;
    case BY_BLOCK:
        emit_warp_reduce(w, "        ", root);
        cu_printf(w->b, "        if ((threadIdx.x & 31) == 0) {\n            part[threadIdx.x >> 5] = acc;\n%s        }\n",
                  arg ? "            part_i[threadIdx.x >> 5] = acc_i;\n" : "");
        cu_printf(w->b, "        __syncthreads();\n        if (threadIdx.x < 32) {\n");
        cu_printf(w->b, "            acc = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : %s;\n", id);
        if (arg)
            cu_printf(w->b, "            acc_i = threadIdx.x < (blockDim.x >> 5) ? part_i[threadIdx.x] : LATHE_I64_MAX;\n");
        emit_warp_reduce(w, "            ", root);
        cu_printf(w->b, "            if (threadIdx.x == 0)\n");
        emit_store_result(w, "                ", root, count);
        cu_printf(w->b, "        }\n        __syncthreads(); /* part is reused by the next output */\n");
        break;
    }
}

bool cu_emit_reduce(CuKernel *ck) {
    const Node *root = ck->k->root;
    bool arg = root->op == OP_ARGMAX || root->op == OP_ARGMIN;
    Pw *w = alloc_or_exit(sizeof *w);
    Nest *kept = alloc_or_exit(sizeof *kept), *red = alloc_or_exit(sizeof *red);
    const Shape *dom = &root->inputs[0]->shape;
    plan_members(w, ck, dom);
    uint32_t axes = arg ? 1u << root->attr.axis : root->attr.axes;
    nest_of(w, ~axes, kept);
    nest_of(w, axes, red);
    Sym outs = {1, 0}, count = {1, 0};
    for (int i = 0; i < dom->rank; i++) {
        if (axes & (1u << i))
            count = sym_mul(count, sym_dim(dom->dim[i]));
        else
            outs = sym_mul(outs, sym_dim(dom->dim[i]));
    }
    Reducer by = choose_reducer(dom, axes, count);
    char ob[64], cb[64];
    const char *at = acc_type(root);
    CuBuf id = {0};
    reduce_identity(&id, root);
    cu_signature(ck, reducer_block(by, outs, count));
    if (by == BY_BLOCK)
        cu_printf(w->b, "    __shared__ %s part[32];\n%s", at, arg ? "    __shared__ long long part_i[32];\n" : "");
    if (by == BY_COLUMNS)
        cu_printf(w->b, "    __shared__ %s part[32][32];\n%s", at, arg ? "    __shared__ long long part_i[32][32];\n" : "");
    cu_printf(w->b, "    const long long outs = %s, count = %s;\n", sym_str(outs, ob, sizeof ob), sym_str(count, cb, sizeof cb));
    open_outputs(w, by);
    const char *ind = by == BY_COLUMNS ? "            " : "        ";
    cu_printf(w->b, "        %s acc = %s;\n%s", at, id.s, arg ? "        long long acc_i = LATHE_I64_MAX;\n" : "");
    if (by == BY_COLUMNS)
        cu_printf(w->b, "        if (ox < outs) {\n");
    declare_offsets(w, ind, "k", NULL);
    emit_unravel(w, kept, ind, "ox", "k");
    static const char *const from[] = {"0", "warp", "lane", "threadIdx.x"}, *const step[] = {"1", "warps", "32", "blockDim.x"};
    cu_printf(w->b, "%sfor (long long rx = %s; rx < count; rx += %s) {\n", ind, from[by], step[by]);
    char ind2[32];
    snprintf(ind2, sizeof ind2, "%s    ", ind);
    emit_reduce_step(w, red, ind2, root);
    cu_printf(w->b, "%s}\n", ind);
    if (by == BY_COLUMNS)
        cu_printf(w->b, "        }\n");
    close_outputs(w, by, root, count, id.s);
    cu_printf(w->b, "    }\n}\n");
    static const int64_t per_block[] = {BLOCK, 32, BLOCK / 32, 1};
    set_launch(ck, outs, per_block[by]);
    cu_free(&id);
    free(red);
    free(kept);
    free(w);
    return true;
}

/* ---------------------------------------------------------------- one_hot and iota */

/* y[..., c] = (x[...] == c) for c < classes: a label outside [0, classes) gives a row of zeros. */
static void emit_one_hot(CuKernel *ck) {
    const Node *nd = ck->k->root;
    int in = cg_buf_index(ck->k, nd->inputs[0]), out = cg_buf_index(ck->k, nd);
    cu_line(ck, nd);
    cu_printf(ck->src, "        const long long label = (long long)b%d[ix / %lldLL];\n", in, (long long)nd->attr.classes);
    cu_printf(ck->src, "        b%d[ix] = (%s)(label == ix %% %lldLL ? 1 : 0);\n", out, cu_type(nd->dtype),
              (long long)nd->attr.classes);
}

/* y[..., i, ...] = i along attr.axis */
static void emit_iota(CuKernel *ck) {
    const Node *nd = ck->k->root;
    const Shape *s = &nd->shape;
    Sym len = {1, 0}, inner = {1, 0};
    if (s->rank > 0) {
        len = sym_dim(s->dim[nd->attr.axis]);
        for (int i = nd->attr.axis + 1; i < s->rank; i++)
            inner = sym_mul(inner, sym_dim(s->dim[i]));
    }
    char lb[64], ib[64];
    cu_line(ck, nd);
    cu_printf(ck->src, "        b%d[ix] = (%s)((ix / %s) %% %s);\n", cg_buf_index(ck->k, nd), cu_type(nd->dtype),
              sym_str(inner, ib, sizeof ib), sym_str(len, lb, sizeof lb));
}

bool cu_emit_other(CuKernel *ck) {
    const Node *nd = ck->k->root;
    if (nd->op != OP_ONE_HOT && nd->op != OP_IOTA) {
        diag_error(ck->d, nd->loc, "CUDA: '%s' is not a kernel of pointwise.c", ir_op_name(nd->op));
        return false;
    }
    char sb[64];
    Sym total = sym_numel(&nd->shape);
    cu_signature(ck, BLOCK);
    cu_printf(ck->src, "    const long long total = %s;\n%s", sym_str(total, sb, sizeof sb), grid_stride);
    if (nd->op == OP_ONE_HOT)
        emit_one_hot(ck);
    else
        emit_iota(ck);
    cu_printf(ck->src, "    }\n}\n");
    set_launch(ck, total, BLOCK);
    return true;
}
