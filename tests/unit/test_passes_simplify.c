/* test_passes_simplify.c: pass_simplify's rewrites (transposes into matmul flags, transpose, reshape, slice
   and pad chains, broadcasts read through, identities), each checked for its shape of the graph and for
   unchanged values through the interpreter. */
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

/* Every leaf bound to fixed pseudo-random values, N = 2; returns the outputs. */
static ITensor *run(void) {
    IBinding b[16];
    int nb = 0;
    uint64_t r = 12345;
    for (int i = 0; i < ts.g->nnodes && nb < 16; i++) {
        Node *n = ts.g->nodes[i];
        if (n->op != OP_INPUT && n->op != OP_PARAM)
            continue;
        ITensor t = {ts_shape_at(n->shape, 2), NULL};
        int64_t cnt = ir_shape_numel(&n->shape, 2);
        t.data = arena_alloc(ts.a, (size_t)cnt * sizeof(double) + 8);
        for (int64_t k = 0; k < cnt; k++) {
            t.data[k] = (double)(ts_rand_next(&r) >> 40) / (double)(1 << 24) - 0.5;
        }
        b[nb++] = (IBinding){n->attr.name, t};
    }
    ITensor *out = ir_interp(ts.a, ts.g, 2, b, nb, ts.d);
    assert_non_null(out);
    return out;
}

/* simplify, verify, and compare every output's values with those before */
static void simplify_keeps_values(void) {
    ITensor *before = run();
    int nout = ts.g->noutputs;
    assert_true(pass_simplify(ts.g, ts.d));
    assert_true(ir_verify(ts.g, ts.d));
    assert_int_equal(ts.g->noutputs, nout);
    ITensor *after = run();
    for (int i = 0; i < nout; i++) {
        assert_true(ir_shape_eq(&before[i].shape, &after[i].shape));
        int64_t cnt = ir_shape_numel(&before[i].shape, 2);
        for (int64_t k = 0; k < cnt; k++)
            assert_true(fabs(before[i].data[k] - after[i].data[k]) < 1e-12);
    }
}

static int count_op(Op op) {
    int k = 0;
    for (int i = 0; i < ts.g->nnodes; i++) {
        Node *n = ts.g->nodes[i];
        /* count only nodes something still uses */
        bool used = false;
        for (int o = 0; o < ts.g->noutputs; o++)
            used |= ts.g->outputs[o].value == n;
        for (int j = 0; j < ts.g->nnodes && !used; j++)
            for (int k2 = 0; k2 < ts.g->nodes[j]->ninputs; k2++)
                used |= ts.g->nodes[j]->inputs[k2] == n;
        k += used && n->op == op;
    }
    return k;
}

static void test_transpose_folds_into_matmul_transpose_b(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(2, N, 4));
    Node *w = param("w", ts_shape(2, 3, 4));
    Node *t = ir_transpose(ts.g, ts.d, L, w, (int[]){1, 0});
    Node *y = ir_matmul(ts.g, ts.d, L, x, t, false, false);
    ir_add_output(ts.g, "y", y, false);
    simplify_keeps_values();
    assert_ptr_equal(ts.g->outputs[0].value, y);
    assert_ptr_equal(y->inputs[1], w);
    assert_false(y->attr.transpose_a);
    assert_true(y->attr.transpose_b);
    assert_int_equal(count_op(OP_TRANSPOSE), 0);
}

static void test_transpose_folds_into_both_flags_batched(void **s) {
    (void)s;
    Node *a = param("a", ts_shape(3, 2, 4, 3));
    Node *b = param("b", ts_shape(3, 2, 5, 4));
    Node *ta = ir_transpose(ts.g, ts.d, L, a, (int[]){0, 2, 1});
    Node *tb = ir_transpose(ts.g, ts.d, L, b, (int[]){0, 2, 1});
    Node *y = ir_matmul(ts.g, ts.d, L, ta, tb, false, false);
    ir_add_output(ts.g, "y", y, false);
    simplify_keeps_values();
    assert_ptr_equal(y->inputs[0], a);
    assert_ptr_equal(y->inputs[1], b);
    assert_true(y->attr.transpose_a);
    assert_true(y->attr.transpose_b);
}

/* a transpose that is not of the last two dims stays */
static void test_batch_transpose_stays_before_matmul(void **s) {
    (void)s;
    Node *a = param("a", ts_shape(3, 3, 2, 4));
    Node *b = param("b", ts_shape(3, 2, 4, 5));
    Node *ta = ir_transpose(ts.g, ts.d, L, a, (int[]){1, 0, 2});
    Node *y = ir_matmul(ts.g, ts.d, L, ta, b, false, false);
    ir_add_output(ts.g, "y", y, false);
    simplify_keeps_values();
    assert_ptr_equal(y->inputs[0], ta);
    assert_false(y->attr.transpose_a);
}

/* (ts.a B)^T = B^T ts.a^T: how the weight gradient of x @ w.T comes out of autodiff */
static void test_transpose_of_matmul_swaps_operands(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(2, N, 4));
    Node *g = param("g", ts_shape(2, N, 3));
    Node *m = ir_matmul(ts.g, ts.d, L, x, g, true, false); /* [4,3] */
    Node *t = ir_transpose(ts.g, ts.d, L, m, (int[]){1, 0});
    ir_add_output(ts.g, "gw", t, false);
    simplify_keeps_values();
    Node *v = ts.g->outputs[0].value;
    assert_int_equal(v->op, OP_MATMUL);
    assert_ptr_equal(v->inputs[0], g);
    assert_ptr_equal(v->inputs[1], x);
    assert_true(v->attr.transpose_a);
    assert_false(v->attr.transpose_b);
    assert_int_equal(count_op(OP_TRANSPOSE), 0);
    assert_int_equal(count_op(OP_MATMUL), 1);
}

static void test_transpose_of_shared_matmul_stays(void **s) {
    (void)s;
    Node *a = param("a", ts_shape(2, 3, 4));
    Node *b = param("b", ts_shape(2, 4, 5));
    Node *m = ir_matmul(ts.g, ts.d, L, a, b, false, false);
    Node *t = ir_transpose(ts.g, ts.d, L, m, (int[]){1, 0});
    ir_add_output(ts.g, "m", m, false);
    ir_add_output(ts.g, "t", t, false);
    simplify_keeps_values();
    assert_int_equal(ts.g->outputs[1].value->op, OP_TRANSPOSE);
    assert_int_equal(count_op(OP_MATMUL), 1);
}

static void test_transpose_of_transpose_composes(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(3, 2, 3, 4));
    Node *t1 = ir_transpose(ts.g, ts.d, L, x, (int[]){2, 0, 1});  /* [4,2,3] */
    Node *t2 = ir_transpose(ts.g, ts.d, L, t1, (int[]){0, 2, 1}); /* [4,3,2] */
    ir_add_output(ts.g, "y", t2, false);
    simplify_keeps_values();
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
    simplify_keeps_values();
    assert_ptr_equal(ts.g->outputs[0].value->inputs[0], x);
    assert_int_equal(count_op(OP_TRANSPOSE), 0);
}

static void test_reshape_of_reshape_collapses(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(2, N, 6));
    Node *r1 = ir_reshape(ts.g, ts.d, L, x, ts_shape(3, N, 2, 3));
    Node *r2 = ir_reshape(ts.g, ts.d, L, r1, ts_shape(3, N, 3, 2));
    ir_add_output(ts.g, "y", r2, false);
    simplify_keeps_values();
    assert_ptr_equal(r2->inputs[0], x);
    assert_int_equal(count_op(OP_RESHAPE), 1);
}

static void test_reshape_back_to_same_shape_disappears(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(2, N, 6));
    Node *r1 = ir_reshape(ts.g, ts.d, L, x, ts_shape(3, N, 2, 3));
    Node *r2 = ir_reshape(ts.g, ts.d, L, r1, ts_shape(2, N, 6));
    ir_add_output(ts.g, "y", r2, false);
    simplify_keeps_values();
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
    simplify_keeps_values();
    assert_ptr_equal(e->inputs[0], x);
    assert_ptr_equal(ts.g->outputs[1].value, x);
    assert_int_equal(count_op(OP_MUL), 0);
    assert_int_equal(count_op(OP_ADD), 0);
}

/* x[3] * ones[2,3] broadcasts x: the result's shape differs from x's, so the multiplication stays */
static void test_mul_by_one_that_broadcasts_stays(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(1, 3));
    Node *one = ir_const(ts.g, L, DT_F64, ts_shape(2, 2, 3), 1);
    Node *m = ir_binary(ts.g, ts.d, L, OP_MUL, x, one);
    ir_add_output(ts.g, "y", m, false);
    simplify_keeps_values();
    assert_ptr_equal(ts.g->outputs[0].value, m);
    assert_int_equal(count_op(OP_MUL), 1);
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
    simplify_keeps_values();
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
    simplify_keeps_values();
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
    simplify_keeps_values();
    assert_ptr_equal(b->inputs[0], a);
    assert_int_equal(count_op(OP_PAD), 2);
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
    simplify_keeps_values();
    assert_ptr_equal(e->inputs[0], x);
    assert_int_equal(count_op(OP_SLICE) + count_op(OP_PAD) + count_op(OP_CONCAT), 0);
}

/* a slice with step 1 from 0 that drops the end is not the whole tensor */
static void test_prefix_slice_stays(void **s) {
    (void)s;
    Node *x = param("x", ts_shape(2, N, 5));
    Node *a = slice(x, (int64_t[]){0, 0}, (int64_t[]){1, 1}, ts_shape(2, N, 4));
    ir_add_output(ts.g, "y", a, false);
    simplify_keeps_values();
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
    simplify_keeps_values();
    assert_ptr_equal(m->inputs[0], x);
    assert_ptr_equal(gt->inputs[1], x);
    assert_ptr_equal(a->inputs[0], bc);
    assert_int_equal(count_op(OP_BROADCAST), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_transpose_folds_into_matmul_transpose_b, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_transpose_folds_into_both_flags_batched, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_batch_transpose_stays_before_matmul, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_transpose_of_matmul_swaps_operands, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_transpose_of_shared_matmul_stays, setup, ts_teardown),
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
