/* test_cg_ops.c: the CPU code generator against the reference interpreter. Each test builds a small graph
   with ir_make (odd sizes like 7x13, broadcasting both ways, N bound to 5), plans it with pass_memplan,
   JIT-compiles it, runs it on random inputs and compares every output (and every updated parameter) with
   ir_interp: relative 1e-5 for f32, 1e-12 for f64, exact for integers. */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../codegen/codegen.h"
#include "../../frontend/frontend.h"
#include "../../passes/passes.h"

#define N IR_DIM_N
#define N_BOUND 5

typedef struct Fx {
    double lo, hi; /* range of random floats */
    int ilo, ihi;  /* range of random integers */
    double tol;    /* relative tolerance for f32 */
    const CgOptions *opts;
    uint64_t rng;
} Fx;

static Fx fx;
static const Loc L = {"test_cg_ops", 1, 1};

static int setup(void **state) {
    memset(&fx, 0, sizeof fx);
    ts_open("train", stderr);
    fx.lo = -2;
    fx.hi = 2;
    fx.ilo = -5;
    fx.ihi = 5;
    fx.tol = 1e-5;
    fx.rng = 0x243f6a8885a308d3ULL;
    return 0;
}

static Node *in(const char *name, DType t, Shape s) {
    return ir_input(ts.g, L, name, t, s);
}

static Node *un(Op op, Node *x) {
    return ir_unary(ts.g, ts.d, L, op, x);
}

static Node *bin(Op op, Node *x, Node *y) {
    return ir_binary(ts.g, ts.d, L, op, x, y);
}

static void out(const char *name, Node *v) {
    assert_non_null(v);
    ir_add_output(ts.g, name, v, false);
}

static double random_value(DType t) {
    if (ir_dtype_is_float(t))
        return fx.lo + (fx.hi - fx.lo) * ts_rand_uniform(&fx.rng);
    int lo = t == DT_U8 && fx.ilo < 0 ? 0 : fx.ilo;
    return lo + (int)floor(ts_rand_uniform(&fx.rng) * (fx.ihi - lo + 1));
}

#define GUARD 64

/* 64-byte aligned, followed by GUARD bytes of a pattern that the generated code must not touch. */
static void *alloc64(size_t bytes) {
    uint8_t *p = aligned_alloc(64, (bytes + GUARD + 63) / 64 * 64);
    assert_non_null(p);
    memset(p + bytes, 0x5a, GUARD);
    return p;
}

static void check_guard(const void *buf, size_t bytes, const char *what) {
    const uint8_t *p = buf;
    for (size_t i = 0; i < GUARD; i++)
        if (p[bytes + i] != 0x5a)
            fail_msg("%s: written past its end (byte %zu)", what, bytes + i);
}

static int find_arg(const GraphArg *args, int nargs, const char *name, bool output) {
    for (int a = 0; a < nargs; a++)
        if ((args[a].role == ARG_OUTPUT) == output && strcmp(args[a].name, name) == 0)
            return a;
    fail_msg("no arg %s", name);
    return -1;
}

/* Plans, JITs and runs ts.g with N = n, then checks every output against the interpreter. */
static void run_check(int64_t n) {
    Graph *g = ts.g;
    assert_true(ir_verify(g, ts.d));
    assert_true(pass_memplan(g, ts.d));
    CgJit *j = cg_llvm_jit(g, fx.opts, ts.d);
    assert_non_null(j);

    int nargs = ir_graph_args(g, NULL);
    GraphArg *args = arena_alloc(ts.a, sizeof *args * (size_t)(nargs + 1));
    ir_graph_args(g, args);
    void **bufs = calloc((size_t)nargs + 1, sizeof *bufs);
    IBinding *bind = calloc((size_t)nargs + 1, sizeof *bind);
    int nbind = 0;
    for (int a = 0; a < nargs; a++) {
        const Node *v = args[a].node;
        int64_t numel = ir_shape_numel(&v->shape, n);
        bufs[a] = alloc64((size_t)numel * ir_dtype_size(v->dtype));
        if (args[a].role == ARG_OUTPUT) {
            memset(bufs[a], 0xcd, (size_t)numel * ir_dtype_size(v->dtype));
            continue;
        }
        ITensor t = {ts_shape_at(v->shape, n), arena_alloc(ts.a, sizeof(double) * (size_t)(numel + 1))};
        for (int64_t i = 0; i < numel; i++) {
            ts_elem_put(bufs[a], v->dtype, i, random_value(v->dtype));
            t.data[i] = ts_elem_get(bufs[a], v->dtype, i);
        }
        bind[nbind++] = (IBinding){args[a].name, t};
    }
    int64_t c, per_n;
    pass_memplan_size(g, &c, &per_n);
    size_t arena_bytes = (size_t)(c + per_n * n);
    uint8_t *arena = alloc64(arena_bytes);
    memset(arena, 0xab, arena_bytes); /* garbage: nothing may read the arena before writing it */

    cg_jit_entry(j)(bufs, n, arena);

    check_guard(arena, arena_bytes, "the arena");
    for (int a = 0; a < nargs; a++)
        check_guard(bufs[a], (size_t)ir_shape_numel(&args[a].node->shape, n) * ir_dtype_size(args[a].node->dtype), args[a].name);

    ITensor *ref = ir_interp(ts.a, g, n, bind, nbind, ts.d);
    assert_non_null(ref);
    for (int i = 0; i < g->noutputs; i++) {
        const Output *o = &g->outputs[i];
        int a = find_arg(args, nargs, o->name, !o->update);
        DType t = o->value->dtype;
        double tol = t == DT_F32 ? fx.tol : t == DT_F64 ? 1e-12 : 0;
        int64_t numel = ir_shape_numel(&o->value->shape, n);
        for (int64_t k = 0; k < numel; k++) {
            double x = ts_elem_get(bufs[a], t, k), r = ref[i].data[k];
            bool ok = (isnan(x) && isnan(r)) || x == r || fabs(x - r) <= tol * fmax(1.0, fabs(r));
            if (!ok)
                fail_msg("output %s[%lld]: generated %.9g, interpreter %.9g", o->name, (long long)k, x, r);
        }
    }
    for (int a = 0; a < nargs; a++)
        free(bufs[a]);
    free(bufs);
    free(bind);
    free(arena);
    cg_jit_free(j);
}

/* ---------------------------------------------------------------- elementwise */

static void unary_all(DType t) {
    static const Op ops[] = {OP_NEG, OP_EXP, OP_ABS, OP_RELU, OP_SIGMOID, OP_TANH, OP_ERF};
    Node *x = in("x", t, ts_shape(2, 7, 13));
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        out(ir_op_name(ops[i]), un(ops[i], x));
    Node *ax = un(OP_ABS, x); /* log and sqrt of |x| + 0.5, away from 0 */
    Node *pos = bin(OP_ADD, ax, ir_const(ts.g, L, t, ts_shape(0), 0.5));
    out("log", un(OP_LOG, pos));
    out("sqrt", un(OP_SQRT, pos));
    out("rsqrt", un(OP_RSQRT, pos));
    run_check(N_BOUND);
}

static void test_unary_f32(void **state) {
    unary_all(DT_F32);
}

static void test_unary_f64(void **state) {
    unary_all(DT_F64);
}

static void binary_all(DType t, Shape sa, Shape sb) {
    static const Op ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAX, OP_MIN};
    Node *x = in("x", t, sa), *y = in("y", t, sb);
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        out(ir_op_name(ops[i]), bin(ops[i], x, y));
    if (ir_dtype_is_float(t)) {
        Node *base = bin(OP_ADD, un(OP_ABS, x), ir_const(ts.g, L, t, ts_shape(0), 0.5));
        out("pow", bin(OP_POW, base, y));
    } else {
        out("pow", bin(OP_POW, x, y)); /* 0^-1 is infinite, which converts to 0 */
    }
    run_check(N_BOUND);
}

static void test_binary_broadcast_both_ways_f32(void **state) {
    binary_all(DT_F32, ts_shape(2, 7, 1), ts_shape(2, 1, 13));
}

static void test_binary_broadcast_row_over_batch_f32(void **state) {
    binary_all(DT_F32, ts_shape(2, N, 13), ts_shape(1, 13));
}

static void test_binary_broadcast_batch_rhs_f64(void **state) {
    binary_all(DT_F64, ts_shape(1, 13), ts_shape(3, 3, N, 13));
}

static void test_binary_same_shape_rank3_f32(void **state) {
    binary_all(DT_F32, ts_shape(3, N, 7, 13), ts_shape(3, N, 7, 13));
}

static void test_binary_middle_broadcast_f32(void **state) {
    binary_all(DT_F32, ts_shape(3, 7, 1, 13), ts_shape(3, 7, 5, 13));
}

static void test_binary_i32_with_zero_divisors(void **state) {
    binary_all(DT_I32, ts_shape(2, N, 13), ts_shape(2, 1, 13));
}

static void test_binary_i64(void **state) {
    binary_all(DT_I64, ts_shape(2, 7, 13), ts_shape(0));
}

static void test_binary_u8(void **state) {
    fx.ihi = 200;
    binary_all(DT_U8, ts_shape(2, 7, 13), ts_shape(2, 7, 1));
}

/* Float inputs are rounded to integers first (through a cast to i32), so that equality happens. */
static Node *integral(Node *x) {
    return ir_dtype_is_float(x->dtype) ? ir_cast(ts.g, L, ir_cast(ts.g, L, x, DT_I32), x->dtype) : x;
}

static void compare_all(DType t, Shape sa, Shape sb) {
    static const Op ops[] = {OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE};
    Node *x = integral(in("x", t, sa)), *y = integral(in("y", t, sb));
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        out(ir_op_name(ops[i]), bin(ops[i], x, y));
    run_check(N_BOUND);
}

static void test_compare_f32_broadcast(void **state) {
    compare_all(DT_F32, ts_shape(2, N, 13), ts_shape(1, 13));
}

static void test_compare_u8(void **state) {
    fx.ihi = 3;
    compare_all(DT_U8, ts_shape(2, 7, 13), ts_shape(2, 7, 13));
}

static void test_compare_i64(void **state) {
    compare_all(DT_I64, ts_shape(2, 7, 1), ts_shape(2, 1, 13));
}

static void test_select_broadcast_three_ways(void **state) {
    fx.ihi = 1;
    Node *c = in("c", DT_U8, ts_shape(2, 7, 1));
    Node *a = in("a", DT_F32, ts_shape(2, 1, 13)), *b = in("b", DT_F32, ts_shape(1, 13));
    out("sel", ir_select(ts.g, ts.d, L, c, a, b));
    out("sel_const", ir_select(ts.g, ts.d, L, c, a, ir_const(ts.g, L, DT_F32, ts_shape(0), -1.5)));
    run_check(N_BOUND);
}

static void test_cast_between_dtypes(void **state) {
    fx.lo = -100;
    fx.hi = 100;
    Node *x = in("x", DT_F32, ts_shape(2, 7, 13));
    Node *i = in("i", DT_I32, ts_shape(2, N, 3));
    Node *u = in("u", DT_U8, ts_shape(1, 17));
    static const DType all[] = {DT_F32, DT_F64, DT_I32, DT_I64};
    for (int k = 0; k < 4; k++) {
        char *nx = arena_printf(ts.a, "x_%s", ir_dtype_name(all[k]));
        char *ni = arena_printf(ts.a, "i_%s", ir_dtype_name(all[k]));
        char *nu = arena_printf(ts.a, "u_%s", ir_dtype_name(all[k]));
        out(nx, ir_cast(ts.g, L, x, all[k]));
        out(ni, ir_cast(ts.g, L, i, all[k]));
        out(nu, ir_cast(ts.g, L, u, all[k]));
    }
    out("i_u8", ir_cast(ts.g, L, i, DT_U8));
    out("x_u8", ir_cast(ts.g, L, x, DT_U8));
    /* out of range, infinite and NaN values convert as the interpreter defines (C leaves them undefined) */
    Node *e = un(OP_EXP, x), *l = un(OP_LOG, x);
    Node *big = ir_cast(ts.g, L, bin(OP_MUL, x, ir_const(ts.g, L, DT_F32, ts_shape(0), 1e18f)), DT_F64);
    static const DType ints[] = {DT_I32, DT_I64, DT_U8};
    for (int k = 0; k < 3; k++) {
        out(arena_printf(ts.a, "exp_%s", ir_dtype_name(ints[k])), ir_cast(ts.g, L, e, ints[k]));
        out(arena_printf(ts.a, "log_%s", ir_dtype_name(ints[k])), ir_cast(ts.g, L, l, ints[k]));
        out(arena_printf(ts.a, "big_%s", ir_dtype_name(ints[k])), ir_cast(ts.g, L, big, ints[k]));
    }
    run_check(N_BOUND);
}

static void test_const_folded_and_npow(void **state) {
    Node *x = in("x", DT_F32, ts_shape(2, N, 13));
    Node *inv_n = ir_const_npow(ts.g, L, DT_F32, ts_shape(0), 3.0, -1);
    out("scaled", bin(OP_MUL, x, inv_n));
    out("inv_n", inv_n);                                               /* a CONST output: filled */
    out("big", ir_const_npow(ts.g, L, DT_F32, ts_shape(2, N, 3), 0.5, 1)); /* a CONST with N in its shape */
    out("ones_i", ir_const(ts.g, L, DT_I64, ts_shape(1, 7), 1));
    run_check(N_BOUND);
}

static void test_reshape_alias_feeds_kernel(void **state) {
    Node *x = in("x", DT_F32, ts_shape(4, N, 1, 7, 13));
    Node *r = ir_reshape(ts.g, ts.d, L, x, ts_shape(2, N, 91));
    Node *y = un(OP_RELU, r);
    out("y", ir_reshape(ts.g, ts.d, L, y, ts_shape(3, N, 7, 13)));
    out("r", r); /* an alias of an input as an output: copied */
    run_check(N_BOUND);
}

static void test_broadcast_materialized(void **state) {
    Node *x = in("x", DT_F64, ts_shape(2, 7, 1));
    out("b", ir_broadcast(ts.g, ts.d, L, x, ts_shape(3, N, 7, 13)));
    Node *i = in("i", DT_I32, ts_shape(1, 13));
    out("bi", ir_broadcast(ts.g, ts.d, L, i, ts_shape(2, 7, 13)));
    run_check(N_BOUND);
}

static void test_transpose_permutations(void **state) {
    Node *x = in("x", DT_F32, ts_shape(3, N, 7, 13));
    static const int perms[][3] = {{0, 2, 1}, {2, 0, 1}, {1, 0, 2}, {2, 1, 0}, {0, 1, 2}};
    for (int k = 0; k < 5; k++)
        out(arena_printf(ts.a, "t%d", k), ir_transpose(ts.g, ts.d, L, x, perms[k]));
    Node *y = in("y", DT_I64, ts_shape(2, 7, 13));
    out("ty", ir_transpose(ts.g, ts.d, L, y, (const int[]){1, 0}));
    run_check(N_BOUND);
}

/* ---------------------------------------------------------------- reductions and argmax */

static void reduce_all(DType t, Shape s, uint32_t axes) {
    Node *x = in("x", t, s);
    static const Op ops[] = {OP_REDUCE_SUM, OP_REDUCE_MEAN, OP_REDUCE_MAX, OP_REDUCE_MIN};
    for (int k = 0; k < 4; k++)
        for (int keep = 0; keep < 2; keep++)
            out(arena_printf(ts.a, "%s_%d", ir_op_name(ops[k]), keep),
                ir_reduce(ts.g, ts.d, L, ops[k], x, axes, keep));
    run_check(N_BOUND);
}

static void test_reduce_over_batch(void **state) {
    reduce_all(DT_F32, ts_shape(2, N, 13), 1u << 0);
}

static void test_reduce_over_last(void **state) {
    reduce_all(DT_F32, ts_shape(2, N, 13), 1u << 1);
}

static void test_reduce_over_all_rank3(void **state) {
    reduce_all(DT_F32, ts_shape(3, N, 7, 13), 7u);
}

static void test_reduce_outer_and_inner_f64(void **state) {
    reduce_all(DT_F64, ts_shape(3, 7, N, 13), (1u << 0) | (1u << 2));
}

static void test_reduce_middle_i32(void **state) {
    reduce_all(DT_I32, ts_shape(3, 7, N, 13), 1u << 1);
}

static void test_reduce_leading_dims_keep_inner_f64(void **state) {
    reduce_all(DT_F64, ts_shape(3, N, 7, 13), 3u);
}

/* An innermost reduced dim of 45 (>= 32): sums in 8 lanes, 5 left for the tail loop. */
static void test_reduce_long_inner_in_lanes(void **state) {
    reduce_all(DT_F32, ts_shape(3, N, 3, 45), 1u << 2);
}

/* The lanes over two reduced dims (the outer one looped around them) and in integers. */
static void test_reduce_lanes_two_dims_i64(void **state) {
    reduce_all(DT_I64, ts_shape(3, N, 5, 37), (1u << 1) | (1u << 2));
}

/* log of negative numbers: NaN propagates through max, min and reductions, relu passes it, argmax and
   argmin take the first NaN, and comparisons with NaN are false (ne true), as in the interpreter. */
static void test_nan_semantics(void **state) {
    Node *x = in("x", DT_F32, ts_shape(2, N, 13));
    Node *l = un(OP_LOG, x);
    out("relu", un(OP_RELU, l));
    out("max", bin(OP_MAX, l, x));
    out("min", bin(OP_MIN, x, l));
    out("rmax_rows", ir_reduce(ts.g, ts.d, L, OP_REDUCE_MAX, l, 2, false));
    out("rmax_cols", ir_reduce(ts.g, ts.d, L, OP_REDUCE_MAX, l, 1, false));
    out("argmax_rows", ir_argmax(ts.g, ts.d, L, l, 1, false));
    out("argmax_cols", ir_argmax(ts.g, ts.d, L, l, 0, true));
    out("rmin_rows", ir_reduce(ts.g, ts.d, L, OP_REDUCE_MIN, l, 2, false));
    out("rmin_cols", ir_reduce(ts.g, ts.d, L, OP_REDUCE_MIN, l, 1, false));
    out("argmin_rows", ir_argmin(ts.g, ts.d, L, l, 1, false));
    out("argmin_cols", ir_argmin(ts.g, ts.d, L, l, 0, true));
    out("lt", bin(OP_LT, l, x));
    out("ne", bin(OP_NE, l, l));
    run_check(N_BOUND);
}

static void test_argmax_axes_and_ties(void **state) {
    Node *x = in("x", DT_F32, ts_shape(3, N, 7, 13));
    for (int ax = 0; ax < 3; ax++)
        for (int keep = 0; keep < 2; keep++)
            out(arena_printf(ts.a, "am%d_%d", ax, keep), ir_argmax(ts.g, ts.d, L, x, ax, keep));
    fx.ihi = 2; /* few values: ties, where the first maximum must win */
    Node *y = in("y", DT_I32, ts_shape(2, N, 13));
    out("ties", ir_argmax(ts.g, ts.d, L, y, 1, false));
    run_check(N_BOUND);
}

/* An empty axis gives index 0, as in the interpreter, without reading: the kernel once left the output
   of a constant 0-long axis unwritten. */
static void test_argmax_empty_axis_is_zero(void **state) {
    Node *x = in("x", DT_F32, ts_shape(2, 7, 0));
    out("am", ir_argmax(ts.g, ts.d, L, x, 1, false));
    Node *y = in("y", DT_U8, ts_shape(3, N, 0, 3));
    out("am_keep", ir_argmax(ts.g, ts.d, L, y, 1, true));
    run_check(N_BOUND);
}

/* ---------------------------------------------------------------- matmul, one_hot */

static void matmul_case(DType t, bool ta, bool tb) {
    /* C[7,13] = op(A) op(B) with K = 5 */
    Node *a = in("a", t, ta ? ts_shape(2, 5, 7) : ts_shape(2, 7, 5));
    Node *b = in("b", t, tb ? ts_shape(2, 13, 5) : ts_shape(2, 5, 13));
    out("c", ir_matmul(ts.g, ts.d, L, a, b, ta, tb));
    run_check(N_BOUND);
}

static void test_matmul_nn_f32(void **state) {
    matmul_case(DT_F32, false, false);
}

static void test_matmul_transpose_a_f32(void **state) {
    matmul_case(DT_F32, true, false);
}

static void test_matmul_transpose_b_f32(void **state) {
    matmul_case(DT_F32, false, true);
}

static void test_matmul_transpose_both_f64(void **state) {
    matmul_case(DT_F64, true, true);
}

static void test_matmul_linear_forward_and_grads(void **state) {
    Node *x = in("x", DT_F32, ts_shape(2, N, 13)), *w = in("w", DT_F32, ts_shape(2, 7, 13));
    Node *dy = in("dy", DT_F32, ts_shape(2, N, 7));
    out("y", ir_matmul(ts.g, ts.d, L, x, w, false, true));    /* x @ w.T */
    out("dw", ir_matmul(ts.g, ts.d, L, dy, x, true, false));  /* dY^T X: K is N */
    out("dx", ir_matmul(ts.g, ts.d, L, dy, w, false, false)); /* dY W */
    run_check(N_BOUND);
}

static void test_matmul_batched_rank3(void **state) {
    Node *a = in("a", DT_F32, ts_shape(3, 3, 7, 5)), *b = in("b", DT_F32, ts_shape(3, 3, 5, 13));
    Node *bt = in("bt", DT_F32, ts_shape(3, 3, 13, 5)), *w = in("w", DT_F64, ts_shape(2, 5, 4));
    Node *ad = in("ad", DT_F64, ts_shape(3, N, 7, 5));
    out("ab", ir_matmul(ts.g, ts.d, L, a, b, false, false));
    out("abt", ir_matmul(ts.g, ts.d, L, a, bt, false, true));
    out("atb", ir_matmul(ts.g, ts.d, L, b, b, true, false));
    out("aw", ir_matmul(ts.g, ts.d, L, ad, w, false, false)); /* rank 3 @ rank 2, batch N */
    run_check(N_BOUND);
}

static void test_one_hot_out_of_range_is_zero(void **state) {
    fx.ilo = -2;
    fx.ihi = 12;
    Node *l = in("label", DT_I64, ts_shape(1, N));
    out("oh", ir_one_hot(ts.g, ts.d, L, l, 10, DT_F32));
    Node *l2 = in("l2", DT_U8, ts_shape(2, 3, 4));
    out("oh2", ir_one_hot(ts.g, ts.d, L, l2, 7, DT_I32));
    run_check(N_BOUND);
}

/* ---------------------------------------------------------------- the layers issue's ops */

/* Builds a graph with build, checks it with N bound to 3, then builds it afresh and checks it with N = 1. */
static void check_n3_and_n1(void (*build)(void)) {
    build();
    run_check(3);
    ts.g = ir_graph_new(ts.a, "train");
    build();
    run_check(1);
}

static void build_argmin(void) {
    Node *x = in("x", DT_F64, ts_shape(3, N, 7, 13));
    for (int ax = 0; ax < 3; ax++)
        out(arena_printf(ts.a, "am%d", ax), ir_argmin(ts.g, ts.d, L, x, ax, ax == 1));
    Node *y = in("y", DT_U8, ts_shape(2, N, 13));
    out("ties", ir_argmin(ts.g, ts.d, L, y, 1, false));
    out("ties_col", ir_argmin(ts.g, ts.d, L, y, 0, true));
}

static void test_argmin_axes_and_ties(void **state) {
    fx.ihi = 2; /* few values: ties, where the first minimum must win */
    check_n3_and_n1(build_argmin);
}

static void build_iota(void) {
    out("f32_ax1", ir_iota(ts.g, L, DT_F32, ts_shape(3, N, 3, 5), 1));
    out("i64_ax0", ir_iota(ts.g, L, DT_I64, ts_shape(2, N, 4), 0));
    out("i64_last", ir_iota(ts.g, L, DT_I64, ts_shape(2, 4, N), 1));
    out("i32_rank1", ir_iota(ts.g, L, DT_I32, ts_shape(1, 17), 0));
    out("u8_ax2", ir_iota(ts.g, L, DT_U8, ts_shape(3, 2, 3, 300), 2)); /* wraps past 255 as a cast does */
    out("f64_ax0", ir_iota(ts.g, L, DT_F64, ts_shape(3, 7, 1, 2), 0));
}

static void test_iota_every_dtype_and_axis(void **state) {
    check_n3_and_n1(build_iota);
}

static void matmul_broadcast(DType t) {
    /* [2,1,3,4] @ [5,4,2] -> [2,5,3,2]: A's batch dim 1 and B's missing one broadcast */
    Node *a = in("a", t, ts_shape(4, 2, 1, 3, 4)), *b = in("b", t, ts_shape(3, 5, 4, 2));
    out("ab", ir_matmul(ts.g, ts.d, L, a, b, false, false));
    Node *at = in("at", t, ts_shape(4, 2, 1, 4, 3)), *bt = in("bt", t, ts_shape(3, 5, 2, 4));
    out("atbt", ir_matmul(ts.g, ts.d, L, at, bt, true, true));
    /* A without batch dims against a batched B, and both with N */
    Node *w = in("w", t, ts_shape(2, 3, 4)), *xb = in("xb", t, ts_shape(3, N, 4, 5));
    out("wx", ir_matmul(ts.g, ts.d, L, w, xb, false, false));
    Node *p = in("p", t, ts_shape(4, N, 1, 3, 4)), *q = in("q", t, ts_shape(4, 1, 2, 4, 5));
    out("pq", ir_matmul(ts.g, ts.d, L, p, q, false, false));
}

static void build_matmul_broadcast_f32(void) {
    matmul_broadcast(DT_F32);
}

static void build_matmul_broadcast_f64(void) {
    matmul_broadcast(DT_F64);
}

static void test_matmul_broadcast_batch_dims_f32(void **state) {
    check_n3_and_n1(build_matmul_broadcast_f32);
}

static void test_matmul_broadcast_batch_dims_f64(void **state) {
    check_n3_and_n1(build_matmul_broadcast_f64);
}

/* [N,T,C] @ [C,V]: A's batch dims fold into M (one GEMM); also with B transposed (a Linear), and the cases
   that cannot fold (A transposed) computed per batch. */
static void build_matmul_folded(void) {
    Node *x = in("x", DT_F32, ts_shape(3, N, 5, 7)), *w = in("w", DT_F32, ts_shape(2, 7, 11));
    Node *wt = in("wt", DT_F32, ts_shape(2, 11, 7)), *x4 = in("x4", DT_F64, ts_shape(4, 2, N, 5, 7));
    Node *w64 = in("w64", DT_F64, ts_shape(2, 7, 3));
    out("xw", ir_matmul(ts.g, ts.d, L, x, w, false, false));
    out("xwt", ir_matmul(ts.g, ts.d, L, x, wt, false, true));
    out("x4w", ir_matmul(ts.g, ts.d, L, x4, w64, false, false));
    Node *xt = in("xt", DT_F32, ts_shape(3, N, 7, 5));
    out("xtw", ir_matmul(ts.g, ts.d, L, xt, w, true, false));
}

static void test_matmul_batch_folded_into_m(void **state) {
    check_n3_and_n1(build_matmul_folded);
}

static void build_slice(void) {
    Node *x = in("x", DT_F32, ts_shape(3, N, 7, 13));
    out("strided", ir_slice(ts.g, ts.d, L, x, (const int64_t[]){0, 1, 2}, (const int64_t[]){1, 2, 3},
                            ts_shape(3, N, 3, 4)));
    out("rows", ir_slice(ts.g, ts.d, L, x, (const int64_t[]){0, 2, 0}, (const int64_t[]){1, 1, 1},
                         ts_shape(3, N, 4, 13))); /* contiguous runs: memcpy */
    out("empty", ir_slice(ts.g, ts.d, L, x, (const int64_t[]){0, 7, 0}, (const int64_t[]){1, 1, 1},
                          ts_shape(3, N, 0, 13)));
    Node *i = in("i", DT_I64, ts_shape(2, 9, N));
    out("i64", ir_slice(ts.g, ts.d, L, i, (const int64_t[]){8, 0}, (const int64_t[]){1, 1}, ts_shape(2, 1, N)));
    Node *u = in("u", DT_U8, ts_shape(1, 17));
    out("u8", ir_slice(ts.g, ts.d, L, u, (const int64_t[]){3}, (const int64_t[]){5}, ts_shape(1, 3)));
    Node *f = in("f", DT_F64, ts_shape(4, 2, 3, 4, 5));
    out("f64", ir_slice(ts.g, ts.d, L, f, (const int64_t[]){1, 0, 1, 0}, (const int64_t[]){1, 2, 2, 1},
                        ts_shape(4, 1, 2, 2, 5)));
    Node *s = in("s", DT_I32, ts_shape(0));
    out("scalar", ir_slice(ts.g, ts.d, L, s, (const int64_t[]){0}, (const int64_t[]){1}, ts_shape(0)));
}

static void test_slice_strided_and_contiguous(void **state) {
    fx.ihi = 300;
    check_n3_and_n1(build_slice);
}

static void build_pad(void) {
    Node *x = in("x", DT_F32, ts_shape(3, N, 3, 4));
    out("interior", ir_pad(ts.g, ts.d, L, x, (const int64_t[]){0, 1, 2}, (const int64_t[]){1, 2, 3},
                           ts_shape(3, N, 7, 13), -1.5));
    out("zeros", ir_pad(ts.g, ts.d, L, x, (const int64_t[]){0, 2, 0}, (const int64_t[]){1, 1, 1},
                        ts_shape(3, N, 6, 4), 0));
    Node *i = in("i", DT_I32, ts_shape(2, 2, N));
    out("i32", ir_pad(ts.g, ts.d, L, i, (const int64_t[]){1, 0}, (const int64_t[]){2, 1}, ts_shape(2, 5, N), 7));
    Node *u = in("u", DT_U8, ts_shape(1, 3));
    out("u8", ir_pad(ts.g, ts.d, L, u, (const int64_t[]){2}, (const int64_t[]){3}, ts_shape(1, 9), 300));
    Node *f = in("f", DT_F64, ts_shape(2, 0, 3));
    out("from_empty", ir_pad(ts.g, ts.d, L, f, (const int64_t[]){1, 1}, (const int64_t[]){1, 1}, ts_shape(2, 2, 5),
                             -INFINITY));
    Node *l = in("l", DT_I64, ts_shape(1, 4));
    out("i64", ir_pad(ts.g, ts.d, L, l, (const int64_t[]){0}, (const int64_t[]){1}, ts_shape(1, 6), -3));
}

static void test_pad_with_value_and_interior(void **state) {
    fx.ihi = 200;
    check_n3_and_n1(build_pad);
}

static void build_concat(void) {
    Node *a = in("a", DT_F32, ts_shape(3, N, 2, 5)), *b = in("b", DT_F32, ts_shape(3, N, 3, 5));
    Node *c = in("c", DT_F32, ts_shape(3, N, 1, 5));
    out("mid", ir_concat(ts.g, ts.d, L, 3, (Node *[]){a, b, c}, 1));
    out("last", ir_concat(ts.g, ts.d, L, 2, (Node *[]){a, a}, 2));
    Node *p = in("p", DT_F64, ts_shape(2, 2, 3)), *q = in("q", DT_F64, ts_shape(2, 4, 3));
    out("first", ir_concat(ts.g, ts.d, L, 2, (Node *[]){p, q}, 0));
    Node *e = in("e", DT_F64, ts_shape(2, 0, 3));
    out("with_empty", ir_concat(ts.g, ts.d, L, 3, (Node *[]){e, p, e}, 0));
    Node *u = in("u", DT_U8, ts_shape(2, N, 3)), *v = in("v", DT_U8, ts_shape(2, N, 1));
    out("u8", ir_concat(ts.g, ts.d, L, 2, (Node *[]){u, v}, 1));
    /* IR_MAX_CONCAT inputs: the kernel's widest signature */
    Node *xs[IR_MAX_CONCAT];
    for (int k = 0; k < IR_MAX_CONCAT; k++)
        xs[k] = in(arena_printf(ts.a, "x%d", k), DT_I64, ts_shape(2, N, 1 + k % 3));
    out("many", ir_concat(ts.g, ts.d, L, IR_MAX_CONCAT, xs, 1));
    Node *s = in("s", DT_I32, ts_shape(1, 4));
    out("one", ir_concat(ts.g, ts.d, L, 1, &s, 0));
}

static void test_concat_axes_and_max_inputs(void **state) {
    fx.ihi = 100;
    check_n3_and_n1(build_concat);
}

/* Indices from -2 to 8 along dims of 5 to 7: some fall outside, which reads 0 (gather) or adds nothing
   (scatter_add); repeated indices add up. */
static void build_gather(void) {
    Node *x = in("x", DT_F32, ts_shape(3, N, 7, 5)), *i = in("i", DT_I64, ts_shape(3, N, 4, 5));
    out("ax1", ir_gather(ts.g, ts.d, L, x, i, 1));
    Node *j = in("j", DT_I32, ts_shape(3, N, 7, 3));
    out("ax2_i32", ir_gather(ts.g, ts.d, L, x, j, 2));
    Node *k = in("k", DT_I64, ts_shape(3, N, 2, 2)); /* smaller than x in dims other than axis */
    out("smaller", ir_gather(ts.g, ts.d, L, x, k, 2));
    Node *y = in("y", DT_I64, ts_shape(2, 6, 4)), *yi = in("yi", DT_I32, ts_shape(2, 9, 4));
    out("i64_ax0", ir_gather(ts.g, ts.d, L, y, yi, 0));
    Node *u = in("u", DT_U8, ts_shape(1, 8)), *ui = in("ui", DT_I64, ts_shape(1, 11));
    out("u8", ir_gather(ts.g, ts.d, L, u, ui, 0));
    Node *f = in("f", DT_F64, ts_shape(2, N, 7)), *fi = in("fi", DT_I64, ts_shape(2, N, 1));
    out("f64_pick", ir_gather(ts.g, ts.d, L, f, fi, 1)); /* the nll_loss pattern: one class per row */
}

static void test_gather_out_of_range_reads_zero(void **state) {
    fx.ilo = -2;
    fx.ihi = 8;
    check_n3_and_n1(build_gather);
}

static void build_scatter_add(void) {
    Node *i = in("i", DT_I64, ts_shape(3, N, 4, 5)), *s = in("s", DT_F32, ts_shape(3, N, 4, 5));
    out("ax1", ir_scatter_add(ts.g, ts.d, L, i, s, 1, ts_shape(3, N, 7, 5)));
    Node *j = in("j", DT_I32, ts_shape(3, N, 2, 9)), *t = in("t", DT_F64, ts_shape(3, N, 2, 9));
    out("ax2_f64", ir_scatter_add(ts.g, ts.d, L, j, t, 2, ts_shape(3, N, 3, 6)));
    Node *e = in("e", DT_I64, ts_shape(2, 13, 3)), *g = in("g", DT_I32, ts_shape(2, 13, 3));
    out("i32_ax0", ir_scatter_add(ts.g, ts.d, L, e, g, 0, ts_shape(2, 6, 4))); /* the embedding pattern */
    Node *u = in("u", DT_I64, ts_shape(1, 9)), *v = in("v", DT_U8, ts_shape(1, 9));
    out("u8", ir_scatter_add(ts.g, ts.d, L, u, v, 0, ts_shape(1, 5)));
    Node *w = in("w", DT_I64, ts_shape(1, 9)), *z = in("z", DT_I64, ts_shape(1, 9));
    out("i64", ir_scatter_add(ts.g, ts.d, L, w, z, 0, ts_shape(1, 7)));
}

static void test_scatter_add_out_of_range_adds_nothing(void **state) {
    fx.ilo = -2;
    fx.ihi = 8;
    check_n3_and_n1(build_scatter_add);
}

static void build_random(void) {
    Node *seed = in("seed", DT_I64, ts_shape(0)), *step = in("step", DT_I64, ts_shape(0));
    out("r0", ir_random(ts.g, ts.d, L, seed, step, ts_shape(3, N, 3, 7), 0));
    out("r3", ir_random(ts.g, ts.d, L, seed, step, ts_shape(1, 5), 3));
    out("r_scalar", ir_random(ts.g, ts.d, L, seed, step, ts_shape(0), 1));
}

/* The generated code and the interpreter draw the very same floats. */
static void test_random_bit_for_bit(void **state) {
    fx.ilo = 0;
    fx.ihi = 1 << 30;
    fx.tol = 0;
    check_n3_and_n1(build_random);
}

/* ---- convolution and pooling, through runtime/kern_window.c */

static Attr window_attr(int kh, int kw, int stride, int pad, int dilation) {
    Attr a = {.window = {kh, kw}, .stride = {stride, stride}, .pad = {pad, pad}, .dilation = {dilation, dilation},
              .groups = 1};
    return a;
}

static Node *window(Op op, int nin, Node *const *ins, const Attr *a) {
    return ir_window(ts.g, ts.d, L, op, nin, ins, a);
}

static void conv_case(DType t) {
    Node *x = in("x", t, ts_shape(4, N, 3, 9, 8)), *w = in("w", t, ts_shape(4, 4, 3, 3, 3));
    Attr a = window_attr(0, 0, 2, 1, 1);
    Node *y = window(OP_CONV2D, 2, (Node *[]){x, w}, &a);
    out("y", y);
    Node *gy = in("gy", t, y->shape);
    a.shape = x->shape;
    out("gx", window(OP_CONV2D_BWD_INPUT, 2, (Node *[]){gy, w}, &a));
    a.shape = w->shape;
    out("gw", window(OP_CONV2D_BWD_WEIGHT, 2, (Node *[]){x, gy}, &a));
    /* grouped and dilated */
    Node *w2 = in("w2", t, ts_shape(4, 6, 1, 2, 3));
    Node *x2 = in("x2", t, ts_shape(4, N, 3, 7, 9));
    Attr g = window_attr(0, 0, 1, 0, 2);
    g.groups = 3;
    out("y2", window(OP_CONV2D, 2, (Node *[]){x2, w2}, &g));
}

static void build_conv_f32(void) {
    conv_case(DT_F32);
}

static void build_conv_f64(void) {
    conv_case(DT_F64);
}

static void test_conv2d_forward_and_backward_f32(void **state) {
    fx.tol = 1e-4; /* sums of 27 products in f32 */
    check_n3_and_n1(build_conv_f32);
}

static void test_conv2d_forward_and_backward_f64(void **state) {
    check_n3_and_n1(build_conv_f64);
}

static void build_pool(void) {
    Node *x = in("x", DT_F32, ts_shape(4, N, 2, 7, 9));
    Attr m = window_attr(3, 2, 2, 1, 1);
    m.ceil_mode = true;
    Node *mp = window(OP_MAX_POOL2D, 1, &x, &m);
    out("max", mp);
    Node *gy = in("gy", DT_F32, mp->shape);
    out("max_bwd", window(OP_MAX_POOL2D_BWD, 2, (Node *[]){x, gy}, &m));
    Attr v = window_attr(2, 3, 2, 1, 1);
    v.count_include_pad = true;
    Node *ap = window(OP_AVG_POOL2D, 1, &x, &v);
    out("avg", ap);
    Node *gav = in("gav", DT_F32, ap->shape);
    v.shape = x->shape;
    out("avg_bwd", window(OP_AVG_POOL2D_BWD, 1, &gav, &v));
    Attr ad = {.shape = ts_shape(4, N, 2, 3, 4)};
    out("adaptive", window(OP_ADAPTIVE_AVG_POOL2D, 1, &x, &ad));
    Node *gad = in("gad", DT_F32, ad.shape);
    ad.shape = x->shape;
    out("adaptive_bwd", window(OP_ADAPTIVE_AVG_POOL2D_BWD, 1, &gad, &ad));
    Node *x64 = in("x64", DT_F64, ts_shape(4, N, 1, 6, 6));
    Attr p = window_attr(2, 2, 2, 0, 1);
    out("max_f64", window(OP_MAX_POOL2D, 1, &x64, &p));
}

static void test_pooling_forward_and_backward(void **state) {
    check_n3_and_n1(build_pool);
}

/* ---------------------------------------------------------------- whole steps */

/* A Linear + softmax cross-entropy forward with an SGD update: in place for w, at the end for b (it is
   read after its update), and an output that is also an update. */
static void test_sgd_step_updates_params(void **state) {
    Graph *g = ts.g;
    Node *x = in("x", DT_F32, ts_shape(2, N, 13));
    Node *lr = in("lr", DT_F32, ts_shape(0));
    Node *w = ir_param(g, L, "w", DT_F32, ts_shape(2, 7, 13));
    Node *b = ir_param(g, L, "b", DT_F32, ts_shape(1, 7));
    Node *s = ir_state(g, L, "s", DT_F32, ts_shape(1, 7));
    Node *y = bin(OP_ADD, ir_matmul(g, ts.d, L, x, w, false, true), b);
    Node *m = ir_reduce(g, ts.d, L, OP_REDUCE_MAX, y, 2, true);
    Node *e = un(OP_EXP, bin(OP_SUB, y, m));
    Node *lse = bin(OP_ADD, un(OP_LOG, ir_reduce(g, ts.d, L, OP_REDUCE_SUM, e, 2, true)), m);
    Node *loss = ir_reduce(g, ts.d, L, OP_REDUCE_MEAN, bin(OP_SUB, lse, y), 3, false);
    Node *gw = ir_matmul(g, ts.d, L, y, x, true, false);
    Node *nw = bin(OP_SUB, w, bin(OP_MUL, lr, gw));
    Node *gb = ir_reduce(g, ts.d, L, OP_REDUCE_SUM, y, 1, false);
    Node *nb = bin(OP_SUB, b, bin(OP_MUL, lr, gb));
    Node *ns = bin(OP_ADD, s, ir_const(g, L, DT_F32, ts_shape(0), 1));
    out("loss", loss);
    ir_add_output(g, "w", nw, true);
    ir_add_output(g, "b", nb, true);
    ir_add_output(g, "s", ns, true);
    out("s_next", ns);
    out("b_sum", ir_reduce(g, ts.d, L, OP_REDUCE_SUM, b, 1, false)); /* reads b after nb */
    run_check(N_BOUND);
    assert_int_equal(nw->mem.kind, MEM_ARG);
    assert_int_equal(nb->mem.kind, MEM_ARENA);
    assert_int_equal(ns->mem.kind, MEM_ARENA);
}

static void batch_graph(void) {
    Node *x = in("x", DT_F32, ts_shape(2, N, 13)), *w = in("w", DT_F32, ts_shape(2, 7, 13));
    Node *y = ir_matmul(ts.g, ts.d, L, x, w, false, true);
    out("y", un(OP_RELU, y));
    out("sum", ir_reduce(ts.g, ts.d, L, OP_REDUCE_SUM, y, 1, false));
    out("mean", ir_reduce(ts.g, ts.d, L, OP_REDUCE_MEAN, y, 2, false));
    out("dw", ir_matmul(ts.g, ts.d, L, y, x, true, false)); /* K = N: zeros when N is 0 */
}

/* The unoptimized code (lathe compile -O 0) computes the same. */
static void test_opt_level_0(void **state) {
    static const CgOptions o0 = {.cpu = NULL, .opt_level = 0};
    fx.opts = &o0;
    Node *x = in("x", DT_F32, ts_shape(2, N, 13)), *w = in("w", DT_F32, ts_shape(2, 7, 13));
    Node *y = un(OP_TANH, ir_matmul(ts.g, ts.d, L, x, w, false, true));
    out("y", y);
    out("s", ir_reduce(ts.g, ts.d, L, OP_REDUCE_MEAN, y, 1, true));
    out("a", ir_argmax(ts.g, ts.d, L, y, 1, false));
    out("cat", ir_concat(ts.g, ts.d, L, 2, (Node *[]){y, x}, 1)); /* a call-out */
    out("iota", ir_iota(ts.g, L, DT_I64, ts_shape(2, N, 3), 1));
    run_check(N_BOUND);
}

static void test_batch_of_one(void **state) {
    batch_graph();
    run_check(1);
}

static void test_batch_of_zero(void **state) {
    batch_graph();
    run_check(0);
}

/* ---------------------------------------------------------------- the seed model through the pipeline */

/* The Quickstart MLP as the frontend and the passes make it: every graph (the train step with its
   autodiff and SGD updates in place, eval, predict) agrees with the interpreter. */
static void test_fashion_mlp_graphs_match_interp(void **state) {
    Program *p = ts_compile_text(LATHE_SOURCE_DIR "/models/fashion_mlp.lathe", ts_read_model("fashion_mlp.lathe"));
    assert_non_null(p);
    assert_true(pass_pipeline(p, NULL, NULL, ts.d));
    fx.lo = -0.1;
    fx.hi = 0.1;
    fx.ilo = 0;
    fx.ihi = 9;
    fx.tol = 1e-4; /* sums over 784 products, in f32 in OpenBLAS, in double in the interpreter */
    Graph *gs[3] = {p->train, p->eval, p->predict};
    for (int i = 0; i < 3; i++) {
        assert_non_null(gs[i]);
        ts.g = gs[i];
        run_check(3);
    }
    /* SGD's updates read each parameter after its last other reader: all of them happen in place */
    for (int i = 0; i < p->train->noutputs; i++)
        if (p->train->outputs[i].update)
            assert_int_equal(p->train->outputs[i].value->mem.kind, MEM_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, ts_teardown)
        T(test_unary_f32),
        T(test_unary_f64),
        T(test_binary_broadcast_both_ways_f32),
        T(test_binary_broadcast_row_over_batch_f32),
        T(test_binary_broadcast_batch_rhs_f64),
        T(test_binary_same_shape_rank3_f32),
        T(test_binary_middle_broadcast_f32),
        T(test_binary_i32_with_zero_divisors),
        T(test_binary_i64),
        T(test_binary_u8),
        T(test_compare_f32_broadcast),
        T(test_compare_u8),
        T(test_compare_i64),
        T(test_select_broadcast_three_ways),
        T(test_cast_between_dtypes),
        T(test_const_folded_and_npow),
        T(test_reshape_alias_feeds_kernel),
        T(test_broadcast_materialized),
        T(test_transpose_permutations),
        T(test_reduce_over_batch),
        T(test_reduce_over_last),
        T(test_reduce_over_all_rank3),
        T(test_reduce_outer_and_inner_f64),
        T(test_reduce_middle_i32),
        T(test_reduce_leading_dims_keep_inner_f64),
        T(test_reduce_long_inner_in_lanes),
        T(test_reduce_lanes_two_dims_i64),
        T(test_nan_semantics),
        T(test_argmax_axes_and_ties),
        T(test_argmax_empty_axis_is_zero),
        T(test_matmul_nn_f32),
        T(test_matmul_transpose_a_f32),
        T(test_matmul_transpose_b_f32),
        T(test_matmul_transpose_both_f64),
        T(test_matmul_linear_forward_and_grads),
        T(test_matmul_batched_rank3),
        T(test_one_hot_out_of_range_is_zero),
        T(test_argmin_axes_and_ties),
        T(test_iota_every_dtype_and_axis),
        T(test_matmul_broadcast_batch_dims_f32),
        T(test_matmul_broadcast_batch_dims_f64),
        T(test_matmul_batch_folded_into_m),
        T(test_slice_strided_and_contiguous),
        T(test_pad_with_value_and_interior),
        T(test_concat_axes_and_max_inputs),
        T(test_gather_out_of_range_reads_zero),
        T(test_scatter_add_out_of_range_adds_nothing),
        T(test_random_bit_for_bit),
        T(test_conv2d_forward_and_backward_f32),
        T(test_conv2d_forward_and_backward_f64),
        T(test_pooling_forward_and_backward),
        T(test_sgd_step_updates_params),
        T(test_opt_level_0),
        T(test_batch_of_one),
        T(test_batch_of_zero),
        T(test_fashion_mlp_graphs_match_interp),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
