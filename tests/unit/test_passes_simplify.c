/* test_passes_simplify.c: pass_simplify's rewrites (transpose, reshape, slice and pad chains, broadcasts
   read through, identities, constant folding, the rules for constants that depend on N, strength reduction,
   constants second), each checked for its shape of the graph and for unchanged values through the
   interpreter, bit for bit where the rule promises it. */
#include "support.h"

#include <math.h>
#include <string.h>

#include "../../passes/passes.h"

#define N IR_DIM_N

static const Loc L = {"s.lathe", 1, 1};

static int setup(void **s) {
    (void)s;
    ts_open("eval", stderr);
    return 0;
}

static Node *param(const char *name, Shape s) { return ir_param(ts.g, L, name, DT_F64, s); }


static void test_transpose_of_transpose_composes(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(3, 2, 3, 4));
    Node *t1 = ir_transpose(ts.g, ts.d, L, x, (int[]){2, 0, 1});  /* [4,2,3] */
    Node *t2 = ir_transpose(ts.g, ts.d, L, t1, (int[]){0, 2, 1}); /* [4,3,2] */
    ir_add_output(ts.g, "y", t2, false);
    ts_pass_keeps_values(pass_simplify);
    assert_ptr_equal(t2->inputs[0], x);
    assert_int_equal(t2->attr.perm[0], 2);
    assert_int_equal(t2->attr.perm[1], 1);
    assert_int_equal(t2->attr.perm[2], 0);
}

static void test_transpose_of_transpose_to_identity_disappears(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(3, 2, 3, 4));
    Node *t1 = ir_transpose(ts.g, ts.d, L, x, (int[]){2, 0, 1});
    Node *t2 = ir_transpose(ts.g, ts.d, L, t1, (int[]){1, 2, 0});
    ir_add_output(ts.g, "y", ir_unary(ts.g, ts.d, L, OP_EXP, t2), false);
    ts_pass_keeps_values(pass_simplify);
    assert_ptr_equal(ts.g->outputs[0].value->inputs[0], x);
    assert_int_equal(ts_count_used_op(ts.g, OP_TRANSPOSE), 0);
}

static void test_reshape_of_reshape_collapses(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(2, N, 6));
    Node *r1 = ir_reshape(ts.g, ts.d, L, x, ts_shape(3, N, 2, 3));
    Node *r2 = ir_reshape(ts.g, ts.d, L, r1, ts_shape(3, N, 3, 2));
    ir_add_output(ts.g, "y", r2, false);
    ts_pass_keeps_values(pass_simplify);
    assert_ptr_equal(r2->inputs[0], x);
    assert_int_equal(ts_count_used_op(ts.g, OP_RESHAPE), 1);
}

static void test_reshape_back_to_same_shape_disappears(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(2, N, 6));
    Node *r1 = ir_reshape(ts.g, ts.d, L, x, ts_shape(3, N, 2, 3));
    Node *r2 = ir_reshape(ts.g, ts.d, L, r1, ts_shape(2, N, 6));
    ir_add_output(ts.g, "y", r2, false);
    ts_pass_keeps_values(pass_simplify);
    assert_ptr_equal(ts.g->outputs[0].value, x);
}

static void test_mul_by_one_and_add_zero_disappear(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(2, N, 3));
    Node *one = ir_const(ts.g, L, DT_F64, ir_shape_scalar(), 1);
    Node *zero = ir_const(ts.g, L, DT_F64, ts_shape(1, 3), 0);
    Node *m = ir_binary(ts.g, ts.d, L, OP_MUL, one, x);
    Node *a = ir_binary(ts.g, ts.d, L, OP_ADD, m, zero);
    Node *e = ir_unary(ts.g, ts.d, L, OP_EXP, a);
    ir_add_output(ts.g, "y", e, false);
    ir_add_output(ts.g, "a", a, false);
    ts_pass_keeps_values(pass_simplify);
    assert_ptr_equal(e->inputs[0], x);
    assert_ptr_equal(ts.g->outputs[1].value, x);
    assert_int_equal(ts_count_used_op(ts.g, OP_MUL), 0);
    assert_int_equal(ts_count_used_op(ts.g, OP_ADD), 0);
}

/* x[3] * ones[2,3] broadcasts x: the result's shape differs from x's, so the multiplication stays */
static void test_mul_by_one_that_broadcasts_stays(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(1, 3));
    Node *one = ir_const(ts.g, L, DT_F64, ts_shape(2, 2, 3), 1);
    Node *m = ir_binary(ts.g, ts.d, L, OP_MUL, x, one);
    ir_add_output(ts.g, "y", m, false);
    ts_pass_keeps_values(pass_simplify);
    assert_ptr_equal(ts.g->outputs[0].value, m);
    assert_int_equal(ts_count_used_op(ts.g, OP_MUL), 1);
}

/* ---------------------------------------------------------------- slice, pad, concat */

static Node *slice(Node *x, const int64_t *start, const int64_t *step, Shape sh) {
    Node *y = ir_slice(ts.g, ts.d, L, x, start, step, sh);
    assert_non_null(y);
    return y;
}

static Node *pad(Node *x, const int64_t *start, const int64_t *step, Shape sh, double v) {
    Node *y = ir_pad(ts.g, ts.d, L, x, start, step, sh, v);
    assert_non_null(y);
    return y;
}

static void test_slice_of_slice_composes(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(2, N, 20));
    Node *a = slice(x, (int64_t[]){0, 1}, (int64_t[]){1, 2}, ts_shape(2, N, 9)); /* 1, 3, ..., 17 */
    Node *b = slice(a, (int64_t[]){0, 2}, (int64_t[]){1, 3}, ts_shape(2, N, 3)); /* a[2, 5, 8]: 5, 11, 17 */
    ir_add_output(ts.g, "y", b, false);
    ts_pass_keeps_values(pass_simplify);
    assert_ptr_equal(b->inputs[0], x);
    assert_int_equal(b->attr.start[1], 5);
    assert_int_equal(b->attr.step[1], 6);
    assert_int_equal(b->attr.start[0], 0);
    assert_int_equal(b->attr.step[0], 1);
}

static void test_pad_of_pad_same_value_composes(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(2, N, 3));
    Node *a = pad(x, (int64_t[]){0, 1}, (int64_t[]){1, 2}, ts_shape(2, N, 7), 0.5); /* x at 1, 3, 5 */
    Node *b = pad(a, (int64_t[]){0, 2}, (int64_t[]){1, 1}, ts_shape(2, N, 10), 0.5);
    ir_add_output(ts.g, "y", b, false);
    ts_pass_keeps_values(pass_simplify);
    assert_ptr_equal(b->inputs[0], x);
    assert_int_equal(b->attr.start[1], 3);
    assert_int_equal(b->attr.step[1], 2);
}

static void test_pad_of_pad_other_value_stays(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(2, N, 3));
    Node *a = pad(x, (int64_t[]){0, 1}, (int64_t[]){1, 1}, ts_shape(2, N, 5), 0);
    Node *b = pad(a, (int64_t[]){0, 1}, (int64_t[]){1, 1}, ts_shape(2, N, 6), 1);
    ir_add_output(ts.g, "y", b, false);
    ts_pass_keeps_values(pass_simplify);
    assert_ptr_equal(b->inputs[0], a);
    assert_int_equal(ts_count_used_op(ts.g, OP_PAD), 2);
}

static void test_whole_slice_pad_and_single_concat_disappear(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(3, N, 2, 3));
    int64_t zero[] = {0, 0, 0}, one[] = {1, 1, 1};
    Node *a = slice(x, zero, one, x->shape);
    Node *b = pad(a, zero, one, x->shape, 7);
    Node *c = ir_concat(ts.g, ts.d, L, 1, &b, 2);
    assert_non_null(c);
    Node *e = ir_unary(ts.g, ts.d, L, OP_EXP, c);
    ir_add_output(ts.g, "y", e, false);
    ts_pass_keeps_values(pass_simplify);
    assert_ptr_equal(e->inputs[0], x);
    assert_int_equal(ts_count_used_op(ts.g, OP_SLICE) + ts_count_used_op(ts.g, OP_PAD) + ts_count_used_op(ts.g, OP_CONCAT), 0);
}

/* a slice with step 1 from 0 that drops the end is not the whole tensor */
static void test_prefix_slice_stays(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(2, N, 5));
    Node *a = slice(x, (int64_t[]){0, 0}, (int64_t[]){1, 1}, ts_shape(2, N, 4));
    ir_add_output(ts.g, "y", a, false);
    ts_pass_keeps_values(pass_simplify);
    assert_ptr_equal(ts.g->outputs[0].value, a);
}

/* a broadcast feeding an elementwise op that broadcasts anyway is read through; one that makes the
   result's shape stays */
static void test_broadcast_operand_of_elementwise_folds(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(2, N, 1));
    Node *y = param("y", ts_shape(2, N, 4));
    Node *c = param("c", ts_shape(0));
    Node *bx = ir_broadcast(ts.g, ts.d, L, x, ts_shape(2, N, 4));
    Node *m = ir_binary(ts.g, ts.d, L, OP_MUL, bx, y);
    Node *bc = ir_broadcast(ts.g, ts.d, L, c, ts_shape(2, N, 4));
    Node *a = ir_binary(ts.g, ts.d, L, OP_ADD, bc, c); /* the broadcast makes the shape: it stays */
    Node *gt = ir_binary(ts.g, ts.d, L, OP_GT, y, bx);
    Node *sel = ir_select(ts.g, ts.d, L, gt, m, a);
    ir_add_output(ts.g, "y", sel, false);
    ts_pass_keeps_values(pass_simplify);
    assert_ptr_equal(m->inputs[0], x);
    assert_ptr_equal(gt->inputs[1], x);
    assert_ptr_equal(a->inputs[0], bc);
    assert_int_equal(ts_count_used_op(ts.g, OP_BROADCAST), 1);
}

/* ---------------------------------------------------------------- constant folding and the numerics rule */

static bool same_bits(double a, double b) {
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* simplify, verify, and check every output bit for bit against the values before, with N bound to each
   of several batch sizes (the rules for constants of N must hold for all of them) */
static void simplify_keeps_bits(void) {
    static const int64_t ns[] = {1, 2, 3, 7, 64, 1000, 65537};
    enum { NN = sizeof ns / sizeof ns[0] };
    ITensor *before[NN];
    for (int k = 0; k < NN; k++)
        before[k] = ts_interp_random(ns[k]);
    int nout = ts.g->noutputs;
    assert_true(pass_simplify(ts.g, ts.d));
    assert_true(ir_verify(ts.g, ts.d));
    for (int k = 0; k < NN; k++) {
        ITensor *after = ts_interp_random(ns[k]);
        for (int i = 0; i < nout; i++) {
            int64_t cnt = ir_shape_numel(&before[k][i].shape, 0);
            bool fl = ir_dtype_is_float(ts.g->outputs[i].value->dtype); /* an integer 0 may read -0 */
            for (int64_t j = 0; j < cnt; j++)
                if (fl ? !same_bits(before[k][i].data[j], after[i].data[j]) : before[k][i].data[j] != after[i].data[j])
                    fail_msg("output %d, N = %lld: %.17g became %.17g", i, (long long)ns[k],
                             before[k][i].data[j], after[i].data[j]);
        }
    }
}

static Node *cst(DType t, double v) { return ir_const(ts.g, L, t, ir_shape_scalar(), v); }
static Node *cstn(DType t, double v, int npow) { return ir_const_npow(ts.g, L, t, ir_shape_scalar(), v, npow); }
static Node *bin(Op op, Node *a, Node *b) {
    Node *r = ir_binary(ts.g, ts.d, L, op, a, b);
    assert_non_null(r);
    return r;
}

static void out(const char *name, Node *v) { ir_add_output(ts.g, name, v, false); }

static void test_fold_f32_add_rounds_to_float(void **s) {
    (void)s;
    out("y", bin(OP_ADD, cst(DT_F32, 0.1), cst(DT_F32, 0.2)));
    simplify_keeps_bits();
    Node *y = ts.g->outputs[0].value;
    assert_int_equal(y->op, OP_CONST);
    assert_true(y->attr.value == (double)(0.1f + 0.2f));
    assert_true(y->attr.value != 0.1 + 0.2);
}

static void test_fold_i32_add_wraps(void **s) {
    (void)s;
    out("y", bin(OP_ADD, cst(DT_I32, 2147483647), cst(DT_I32, 1)));
    out("u", bin(OP_ADD, cst(DT_U8, 250), cst(DT_U8, 10)));
    simplify_keeps_bits();
    assert_true(ts.g->outputs[0].value->attr.value == -2147483648.0);
    assert_true(ts.g->outputs[1].value->attr.value == 4);
}

static void test_fold_int_div_truncates_and_by_zero_is_zero(void **s) {
    (void)s;
    out("a", bin(OP_DIV, cst(DT_I64, -7), cst(DT_I64, 2)));
    out("b", bin(OP_DIV, cst(DT_I32, 7), cst(DT_I32, 0)));
    out("c", bin(OP_DIV, cst(DT_I32, -2147483648.0), cst(DT_I32, -1)));
    simplify_keeps_bits();
    assert_true(ts.g->outputs[0].value->attr.value == -3);
    assert_true(ts.g->outputs[1].value->attr.value == 0);
    assert_true(ts.g->outputs[2].value->attr.value == -2147483648.0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ts.g->outputs[i].value->op, OP_CONST);
}

/* exp's result is libm's, not exactly rounded: folding it could differ from the kernel in the last bit */
static void test_fold_exp_of_const_stays(void **s) {
    (void)s;
    Node *e = ir_unary(ts.g, ts.d, L, OP_EXP, cst(DT_F32, 0.5));
    out("y", e);
    simplify_keeps_bits();
    assert_ptr_equal(ts.g->outputs[0].value, e);
    assert_int_equal(e->op, OP_EXP);
}

/* i64 results a double cannot hold exactly stay, and so do those that overflow */
static void test_fold_i64_beyond_2_53_stays(void **s) {
    (void)s;
    Node *m = bin(OP_MUL, cst(DT_I64, 1073741824.0), cst(DT_I64, 1073741824.0));
    Node *o = bin(OP_MUL, cst(DT_I64, 4294967296.0), cst(DT_I64, 4294967296.0));
    out("o", o);
    out("y", m);
    assert_true(pass_simplify(ts.g, ts.d));
    assert_int_equal(m->op, OP_MUL);
    assert_int_equal(o->op, OP_MUL);
}

static void test_fold_casts_as_the_kernels_convert(void **s) {
    (void)s;
    out("a", ir_cast(ts.g, L, cst(DT_F32, 300.75), DT_U8));      /* 300 wraps to 44 */
    out("b", ir_cast(ts.g, L, cst(DT_F64, -2.5), DT_I32));       /* truncates to -2 */
    out("c", ir_cast(ts.g, L, cst(DT_F64, 0.1), DT_F32));        /* rounds to float */
    out("d", ir_cast(ts.g, L, cst(DT_U8, 200), DT_F32));
    simplify_keeps_bits();
    assert_true(ts.g->outputs[0].value->attr.value == 44);
    assert_true(ts.g->outputs[1].value->attr.value == -2);
    assert_true(ts.g->outputs[2].value->attr.value == (double)0.1f);
    assert_true(ts.g->outputs[3].value->attr.value == 200);
}

static void test_fold_select_and_compare(void **s) {
    (void)s;
    Node *c = bin(OP_LT, cst(DT_F32, 1), cst(DT_F32, 2));
    Node *sel = ir_select(ts.g, ts.d, L, c, cst(DT_F32, 0.25), cst(DT_F32, 4));
    out("y", sel);
    simplify_keeps_bits();
    assert_int_equal(sel->op, OP_CONST);
    assert_true(sel->attr.value == 0.25);
}

/* Many constant expressions over every dtype: each folded value must be what the interpreter computes */
static void test_fold_random_expressions_keep_bits(void **s) {
    (void)s;
    static const Op ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_NEG, OP_ABS, OP_SQRT, OP_RELU,
                             OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_CAST};
    static const DType types[] = {DT_F32, DT_F64, DT_I32, DT_I64, DT_U8};
    static const double vals[] = {0, -0.0, 1, -1, 0.1, -2.5, 3, 7, 255, 1e30, -1e-30, 1000, INFINITY, NAN};
    uint64_t r = 99;
    char name[16];
    for (int i = 0; i < 400; i++) {
        Op op = ops[ts_rand_next(&r) % (sizeof ops / sizeof ops[0])];
        DType t = types[ts_rand_next(&r) % 5];
        if (!ir_dtype_is_float(t) && (op == OP_SQRT || op == OP_RELU))
            t = DT_F32;
        double va = vals[ts_rand_next(&r) % 14], vb = vals[ts_rand_next(&r) % 14];
        if (!ir_dtype_is_float(t)) { /* integer constants as written: integral and small */
            va = (isfinite(va) ? trunc(fmod(va, 1000)) : 3) + 0.0; /* + 0.0: no -0 */
            vb = (isfinite(vb) ? trunc(fmod(vb, 1000)) : -4) + 0.0;
        }
        Node *a = cst(t, va), *b = cst(t, vb), *y;
        if (op == OP_CAST)
            y = ir_cast(ts.g, L, a, types[ts_rand_next(&r) % 5]);
        else if (ir_op_arity(op) == 1)
            y = ir_unary(ts.g, ts.d, L, op, a);
        else
            y = bin(op, a, b);
        assert_non_null(y);
        snprintf(name, sizeof name, "y%d", i);
        out(name, y);
    }
    simplify_keeps_bits();
    int folded = 0;
    for (int i = 0; i < ts.g->noutputs; i++)
        folded += ts.g->outputs[i].value->op == OP_CONST;
    assert_true(folded > 300);
}

/* (1/N) * 2 = 2/N and -(1/N) = -1/N for every N; (1/N) * 3 rounds differently for some N and stays */
static void test_npow_times_power_of_two_folds(void **s) {
    (void)s;
    Node *x = ir_input(ts.g, L, "x", DT_F32, ts_shape(1, N));
    Node *inv = cstn(DT_F32, 1, -1);
    Node *two = bin(OP_MUL, inv, cst(DT_F32, 2));
    Node *three = bin(OP_MUL, inv, cst(DT_F32, 3));
    Node *neg = ir_unary(ts.g, ts.d, L, OP_NEG, inv);
    Node *half = bin(OP_DIV, inv, cst(DT_F32, 2));
    out("two", bin(OP_MUL, x, two));
    out("three", bin(OP_MUL, x, three));
    out("neg", bin(OP_MUL, x, neg));
    out("half", bin(OP_MUL, x, half));
    simplify_keeps_bits();
    assert_int_equal(two->op, OP_CONST);
    assert_true(two->attr.value == 2 && two->attr.npow == -1);
    assert_int_equal(neg->op, OP_CONST);
    assert_true(neg->attr.value == -1 && neg->attr.npow == -1);
    assert_int_equal(half->op, OP_CONST);
    assert_true(half->attr.value == 0.5 && half->attr.npow == -1);
    assert_int_equal(three->op, OP_MUL);
}

/* c N^p * d N^q in floats rounds each factor first: it stays; in integers it is exact and folds */
static void test_npow_product_folds_in_integers_only(void **s) {
    (void)s;
    Node *x = ir_input(ts.g, L, "x", DT_F32, ts_shape(1, N));
    Node *f = bin(OP_MUL, cstn(DT_F32, 3, -1), cstn(DT_F32, 5, 1));
    Node *i = bin(OP_MUL, cstn(DT_I64, 3, 1), cst(DT_I64, 5));
    Node *a = bin(OP_ADD, cstn(DT_I64, 3, 1), cstn(DT_I64, 4, 1));
    Node *sq = bin(OP_MUL, cstn(DT_I64, 3, 1), cstn(DT_I64, 4, 1));
    out("f", bin(OP_MUL, x, f));
    out("i", i);
    out("a", a);
    out("sq", sq);
    simplify_keeps_bits();
    assert_int_equal(f->op, OP_MUL);
    assert_int_equal(i->op, OP_CONST);
    assert_true(i->attr.value == 15 && i->attr.npow == 1);
    assert_int_equal(a->op, OP_CONST);
    assert_true(a->attr.value == 7 && a->attr.npow == 1);
    assert_int_equal(sq->op, OP_MUL); /* N^2 could leave a double's exact range */
}

/* a tiny constant of N scaled by 2^-k could leave float's normal range for a large N: it stays */
static void test_npow_scaled_out_of_range_stays(void **s) {
    (void)s;
    Node *m = bin(OP_MUL, cstn(DT_F32, 0x1p-50, -1), cst(DT_F32, 0x1p-20));
    out("y", m);
    assert_true(pass_simplify(ts.g, ts.d));
    assert_int_equal(m->op, OP_MUL);
}

/* ---------------------------------------------------------------- strength reduction and identities */

static void test_div_by_power_of_two_becomes_mul(void **s) {
    (void)s;
    Node *x = ir_input(ts.g, L, "x", DT_F32, ts_shape(2, N, 5));
    Node *c = cst(DT_F32, 8);
    Node *d1 = bin(OP_DIV, x, c);
    Node *d2 = bin(OP_DIV, x, c); /* c is shared: the second gets a constant of its own */
    Node *d3 = bin(OP_DIV, x, cst(DT_F32, 10));
    Node *v = ir_input(ts.g, L, "v", DT_F32, ts_shape(1, 5));
    Node *d4 = bin(OP_DIV, v, ir_const(ts.g, L, DT_F32, ts_shape(2, N, 5), -2)); /* the constant broadcasts v */
    out("d", d4);
    out("a", d1);
    out("b", d2);
    out("c", d3);
    out("k", c);
    simplify_keeps_bits();
    assert_int_equal(d1->op, OP_MUL);
    assert_int_equal(ts.g->outputs[0].value->op, OP_MUL);
    assert_int_equal(d2->op, OP_MUL);
    assert_true(d1->inputs[1]->attr.value == 0.125);
    assert_true(d2->inputs[1]->attr.value == 0.125);
    assert_true(c->attr.value == 8); /* still read by the output */
    assert_true(d1->inputs[1]->id < d1->id);
    assert_int_equal(d3->op, OP_DIV);
    assert_int_equal(d4->op, OP_MUL);
    assert_true(d4->inputs[1]->attr.value == -0.5);
    assert_true(ir_shape_eq(&d4->inputs[1]->shape, &d4->shape));
}

static void test_int_div_by_power_of_two_stays(void **s) {
    (void)s;
    Node *x = ir_input(ts.g, L, "x", DT_I32, ts_shape(1, N));
    Node *d = bin(OP_DIV, x, cst(DT_I32, 4));
    out("y", d);
    assert_true(pass_simplify(ts.g, ts.d));
    assert_int_equal(d->op, OP_DIV);
}

static void test_pow_two_becomes_square(void **s) {
    (void)s;
    Node *x = ir_input(ts.g, L, "x", DT_F64, ts_shape(2, N, 3));
    Node *p = bin(OP_POW, x, cst(DT_F64, 2));
    Node *q = bin(OP_POW, x, cst(DT_F64, 3));
    out("p", p);
    out("q", q);
    simplify_keeps_bits();
    assert_int_equal(p->op, OP_MUL);
    assert_ptr_equal(p->inputs[0], x);
    assert_ptr_equal(p->inputs[1], x);
    assert_int_equal(q->op, OP_POW);
}

static void test_mul_by_zero_folds_in_integers_only(void **s) {
    (void)s;
    Node *k = ir_input(ts.g, L, "k", DT_I64, ts_shape(1, N));
    Node *x = ir_input(ts.g, L, "x", DT_F32, ts_shape(1, N));
    Node *mi = bin(OP_MUL, cst(DT_I64, 0), k);
    Node *mf = bin(OP_MUL, x, cst(DT_F32, 0));
    out("i", mi);
    out("f", mf);
    assert_true(pass_simplify(ts.g, ts.d));
    assert_true(ir_verify(ts.g, ts.d));
    assert_int_equal(mi->op, OP_CONST);
    assert_true(ir_shape_eq(&mi->shape, &k->shape));
    assert_int_equal(mf->op, OP_MUL);
}

static void test_neg_of_neg_and_cast_round_trip_disappear(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(2, N, 3));
    Node *nn = ir_unary(ts.g, ts.d, L, OP_NEG, ir_unary(ts.g, ts.d, L, OP_NEG, x));
    Node *back = ir_cast(ts.g, L, ir_cast(ts.g, L, ir_cast(ts.g, L, nn, DT_F32), DT_F64), DT_F32);
    Node *same = ir_cast(ts.g, L, x, DT_F64);
    out("nn", nn);
    out("back", ir_unary(ts.g, ts.d, L, OP_EXP, back));
    out("same", same);
    ts_pass_keeps_values(pass_simplify);
    assert_ptr_equal(ts.g->outputs[0].value, x);
    assert_ptr_equal(ts.g->outputs[2].value, x);
    /* f64 -> f32 -> f64 loses bits: that cast pair stays */
    assert_int_equal(ts.g->outputs[1].value->inputs[0]->op, OP_CAST);
}

static void test_broadcast_of_constant_becomes_constant(void **s) {
    (void)s;
    Node *b = ir_broadcast(ts.g, ts.d, L, cstn(DT_F32, 2, -1), ts_shape(2, N, 4));
    Node *t = ir_transpose(ts.g, ts.d, L, b, (int[]){1, 0});
    out("t", t);
    simplify_keeps_bits();
    Node *y = ts.g->outputs[0].value;
    assert_int_equal(y->op, OP_CONST);
    assert_true(y->attr.value == 2 && y->attr.npow == -1);
    assert_true(ir_shape_eq(&y->shape, &t->shape));
    assert_true(ir_shape_eq(&y->attr.shape, &y->shape));
}

static void test_constant_operand_goes_second(void **s) {
    (void)s;
    Node *x = ir_input(ts.g, L, "x", DT_F32, ts_shape(1, N));
    Node *k = ir_input(ts.g, L, "k", DT_I32, ts_shape(1, N));
    Node *m = bin(OP_MUL, cst(DT_F32, 3), x);
    Node *e = bin(OP_EQ, cst(DT_F32, 3), x);
    Node *sub = bin(OP_SUB, cst(DT_F32, 3), x);
    Node *lt = bin(OP_LT, cst(DT_F32, 3), x);
    Node *ge = bin(OP_GE, cst(DT_F32, 3), x);
    Node *fmax = bin(OP_MAX, cst(DT_F32, 0), x);
    Node *imax = bin(OP_MAX, cst(DT_I32, 0), k);
    out("m", m);
    out("e", e);
    out("s", sub);
    out("fmax", fmax);
    out("lt", lt);
    out("ge", ge);
    out("imax", imax);
    ts_pass_keeps_values(pass_simplify);
    assert_ptr_equal(m->inputs[0], x);
    assert_ptr_equal(e->inputs[0], x);
    assert_int_equal(sub->inputs[0]->op, OP_CONST);  /* not commutative */
    assert_int_equal(fmax->inputs[0]->op, OP_CONST); /* max(+0, -0) gives its first operand */
    assert_ptr_equal(imax->inputs[0], k);
    assert_int_equal(lt->op, OP_GT); /* 3 < x is x > 3 */
    assert_ptr_equal(lt->inputs[0], x);
    assert_int_equal(ge->op, OP_LE);
    assert_ptr_equal(ge->inputs[0], x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_transpose_of_transpose_composes, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_transpose_of_transpose_to_identity_disappears, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_reshape_of_reshape_collapses, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_reshape_back_to_same_shape_disappears, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_mul_by_one_and_add_zero_disappear, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_mul_by_one_that_broadcasts_stays, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_slice_of_slice_composes, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_pad_of_pad_same_value_composes, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_pad_of_pad_other_value_stays, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_whole_slice_pad_and_single_concat_disappear, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_prefix_slice_stays, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_broadcast_operand_of_elementwise_folds, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_fold_f32_add_rounds_to_float, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_fold_i32_add_wraps, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_fold_int_div_truncates_and_by_zero_is_zero, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_fold_exp_of_const_stays, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_fold_i64_beyond_2_53_stays, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_fold_casts_as_the_kernels_convert, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_fold_select_and_compare, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_fold_random_expressions_keep_bits, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_npow_times_power_of_two_folds, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_npow_product_folds_in_integers_only, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_npow_scaled_out_of_range_stays, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_div_by_power_of_two_becomes_mul, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_int_div_by_power_of_two_stays, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_pow_two_becomes_square, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_mul_by_zero_folds_in_integers_only, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_neg_of_neg_and_cast_round_trip_disappear, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_broadcast_of_constant_becomes_constant, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_constant_operand_goes_second, setup, ts_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
