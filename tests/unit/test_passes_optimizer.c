/* test_passes_optimizer.c: pass_optimizer lowers SGD(lr) into update outputs p - lr * grad with lr an
   INPUT, and refuses what it does not implement yet with a diagnostic at the recipe's location. */
#include "support.h"

#include <math.h>
#include <string.h>

#include "../../passes/passes.h"


static int setup(void **s) {
    (void)s;
    ts_open("train", NULL);
    return 0;
}

static RVal *num(double v, int line, int col) {
    RVal *r = arena_alloc(ts.a, sizeof *r);
    r->kind = RV_NUM;
    r->num = v;
    r->loc = (Loc){"m.lathe", line, col};
    return r;
}

/* callee(keys[0] = vals[0], ...); a NULL key is a positional argument */
static RVal *call(const char *callee, int n, const char **keys, RVal **vals) {
    RVal *c = arena_alloc(ts.a, sizeof *c);
    c->kind = RV_CALL;
    c->str = callee;
    c->nitems = n;
    c->items = vals;
    c->keys = keys;
    c->loc = (Loc){"m.lathe", 20, 17};
    return c;
}

/* p f32[2,3], q f64[3]; loss = sum(p) ; grad.p = 2 p, grad.q = q */
static void build(const RVal *opt) {
    Loc l = {"m.lathe", 5, 3};
    Node *p = ir_param(ts.g, l, "p", DT_F32, ts_shape(2, 2, 3));
    Node *q = ir_param(ts.g, l, "q", DT_F64, ts_shape(1, 3));
    Node *two = ir_const(ts.g, l, DT_F32, ir_shape_scalar(), 2);
    ir_add_output(ts.g, "loss", ir_reduce(ts.g, ts.d, l, OP_REDUCE_SUM, p, 3, false), false);
    ir_add_output(ts.g, "grad.p", ir_binary(ts.g, ts.d, l, OP_MUL, p, two), false);
    ir_add_output(ts.g, "grad.q", q, false);
    ts.g->optimizer = opt;
}

static RVal *sgd(double lr) {
    static const char *keys[] = {"lr"};
    RVal **v = arena_alloc(ts.a, sizeof(RVal *));
    v[0] = num(lr, 20, 24);
    return call("SGD", 1, keys, v);
}

static void test_sgd_updates_param_minus_lr_grad(void **s) {
    (void)s;
    build(sgd(0.5));
    assert_true(pass_optimizer(ts.g, ts.d));
    assert_true(ir_verify(ts.g, ts.d));
    Node *lr = ir_find_leaf(ts.g, OP_INPUT, "lr");
    assert_non_null(lr);
    assert_int_equal(lr->dtype, DT_F32);
    assert_int_equal(lr->shape.rank, 0);
    assert_int_equal(ts.g->noutputs, 3);
    assert_string_equal(ts.g->outputs[0].name, "loss");
    assert_false(ts.g->outputs[0].update);
    assert_string_equal(ts.g->outputs[1].name, "p");
    assert_true(ts.g->outputs[1].update);
    assert_string_equal(ts.g->outputs[2].name, "q");
    assert_true(ts.g->outputs[2].update);

    double pv[6] = {1, -2, 3, 0.5, 4, -1}, qv[3] = {1, 2, 3}, lrv = 0.125; /* exact in f32 */
    IBinding b[] = {
        {"p", {ts_shape(2, 2, 3), pv}},
        {"q", {ts_shape(1, 3), qv}},
        {"lr", {ir_shape_scalar(), &lrv}},
    };
    ITensor *out = ir_interp(ts.a, ts.g, 1, b, 3, ts.d);
    assert_non_null(out);
    for (int i = 0; i < 6; i++) /* p - lr * 2p */
        assert_true(fabs(out[1].data[i] - 0.75 * pv[i]) < 1e-6);
    for (int i = 0; i < 3; i++) /* q - lr * q */
        assert_true(fabs(out[2].data[i] - 0.875 * qv[i]) < 1e-12);
}

static void test_sgd_casts_lr_for_f64_params(void **s) {
    (void)s;
    build(sgd(0.5));
    assert_true(pass_optimizer(ts.g, ts.d));
    int casts = 0;
    for (int i = 0; i < ts.g->nnodes; i++)
        if (ts.g->nodes[i]->op == OP_CAST) {
            casts++;
            assert_int_equal(ts.g->nodes[i]->dtype, DT_F64);
            assert_string_equal(ts.g->nodes[i]->inputs[0]->attr.name, "lr");
        }
    assert_int_equal(casts, 1);
    assert_int_equal(ts.g->outputs[2].value->dtype, DT_F64);
}

static void test_sgd_positional_lr_and_neutral_momentum(void **s) {
    (void)s;
    static const char *keys[] = {NULL, "momentum", "nesterov"};
    RVal **v = arena_alloc(ts.a, 3 * sizeof(RVal *));
    v[0] = num(0.01, 20, 21);
    v[1] = num(0, 20, 38);
    v[2] = num(0, 20, 50);
    v[2]->kind = RV_BOOL;
    build(call("SGD", 3, keys, v));
    assert_true(pass_optimizer(ts.g, ts.d));
    assert_int_equal(diag_error_count(ts.d), 0);
}

static void expect_error(const RVal *opt, const char *msg, int line, int col) {
    build(opt);
    int before = ts.g->nnodes;
    assert_false(pass_optimizer(ts.g, ts.d));
    assert_int_equal(diag_error_count(ts.d), 1);
    if (!strstr(diag_first_message(ts.d), msg))
        fail_msg("got \"%s\", want \"%s\"", diag_first_message(ts.d), msg);
    assert_int_equal(diag_first_loc(ts.d).line, line);
    assert_int_equal(diag_first_loc(ts.d).col, col);
    assert_int_equal(ts.g->nnodes, before);
}

static void test_sgd_momentum_is_not_supported_yet(void **s) {
    (void)s;
    static const char *keys[] = {"lr", "momentum"};
    RVal **v = arena_alloc(ts.a, 2 * sizeof(RVal *));
    v[0] = num(0.1, 20, 24);
    v[1] = num(0.9, 20, 40);
    expect_error(call("SGD", 2, keys, v), "SGD: momentum is not supported yet", 20, 40);
}

static void test_sgd_weight_decay_is_not_supported_yet(void **s) {
    (void)s;
    static const char *keys[] = {"lr", "weight_decay"};
    RVal **v = arena_alloc(ts.a, 2 * sizeof(RVal *));
    v[0] = num(0.1, 20, 24);
    v[1] = num(1e-4, 20, 44);
    expect_error(call("SGD", 2, keys, v), "SGD: weight_decay is not supported yet", 20, 44);
}

static void test_sgd_unknown_argument_is_error(void **s) {
    (void)s;
    static const char *keys[] = {"lr", "betas"};
    RVal **v = arena_alloc(ts.a, 2 * sizeof(RVal *));
    v[0] = num(0.1, 20, 24);
    v[1] = num(0.9, 20, 33);
    expect_error(call("SGD", 2, keys, v), "SGD: unknown argument betas", 20, 33);
}

static void test_sgd_missing_lr_is_error(void **s) {
    (void)s;
    expect_error(call("SGD", 0, NULL, NULL), "SGD: missing the learning rate", 20, 17);
}

static void test_sgd_negative_lr_is_error(void **s) {
    (void)s;
    expect_error(sgd(-1), "SGD: lr must be a positive number", 20, 24);
}

static void test_other_optimizer_is_not_supported_yet(void **s) {
    (void)s;
    static const char *keys[] = {"lr"};
    RVal **v = arena_alloc(ts.a, sizeof(RVal *));
    v[0] = num(1e-3, 20, 25);
    expect_error(call("Adam", 1, keys, v), "optimizer Adam is not supported yet", 20, 17);
}

static void test_missing_optimizer_is_error(void **s) {
    (void)s;
    build(NULL);
    assert_false(pass_optimizer(ts.g, ts.d));
    assert_non_null(strstr(diag_first_message(ts.d), "no optimizer"));
}

/* p f32[2,3] (frozen when asked) with "grad.p" of type t; the update must be refused, not aborted on. */
static void expect_gradient_error(DType t, Shape s, bool frozen, const char *msg) {
    Loc l = {"m.lathe", 7, 9};
    Node *p = ir_param(ts.g, l, "p", DT_F32, ts_shape(2, 2, 3));
    p->attr.frozen = frozen;
    ir_add_output(ts.g, "loss", ir_reduce(ts.g, ts.d, l, OP_REDUCE_SUM, p, 3, false), false);
    ir_add_output(ts.g, "grad.p", ir_const(ts.g, l, t, s, 1), false);
    ts.g->optimizer = sgd(0.5);
    int before = ts.g->nnodes;
    assert_false(pass_optimizer(ts.g, ts.d));
    assert_int_equal(diag_error_count(ts.d), 1);
    if (!strstr(diag_first_message(ts.d), msg))
        fail_msg("got \"%s\", want \"%s\"", diag_first_message(ts.d), msg);
    assert_int_equal(diag_first_loc(ts.d).line, 7);
    assert_int_equal(ts.g->nnodes, before);
}

static void test_gradient_of_another_shape_is_error(void **s) {
    (void)s;
    expect_gradient_error(DT_F32, ts_shape(1, 5), false, "output grad.p is f32[5], its parameter is f32[2,3]");
}

static void test_gradient_of_another_dtype_is_error(void **s) {
    (void)s;
    expect_gradient_error(DT_F64, ts_shape(2, 2, 3), false, "output grad.p is f64[2,3], its parameter is f32[2,3]");
}

static void test_gradient_of_frozen_param_is_error(void **s) {
    (void)s;
    expect_gradient_error(DT_F32, ts_shape(2, 2, 3), true, "gradient of the frozen parameter p");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sgd_updates_param_minus_lr_grad, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_casts_lr_for_f64_params, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_positional_lr_and_neutral_momentum, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_momentum_is_not_supported_yet, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_weight_decay_is_not_supported_yet, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_unknown_argument_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_missing_lr_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_negative_lr_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_other_optimizer_is_not_supported_yet, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_missing_optimizer_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_gradient_of_another_shape_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_gradient_of_another_dtype_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_gradient_of_frozen_param_is_error, setup, ts_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
