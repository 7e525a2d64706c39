/* test_passes_optimizer.c: pass_optimizer lowers SGD into update outputs with lr an INPUT: plain SGD,
   momentum (a STATE per parameter, updated in place), dampening (the first step selected through the INPUT
   "step"), nesterov, weight decay and maximize, each checked over several steps against torch.optim.SGD's
   rule written out in C; and it refuses what torch refuses with a diagnostic at the argument's location. */
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
    expect_error(sgd(-1), "SGD: lr must not be negative", 20, 24);
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

/* ---- momentum, dampening, nesterov, weight decay, maximize */

/* SGD(lr = lr, keys[i] = vals[i], ...): "nesterov" and "maximize" become booleans */
static RVal *sgd_with(double lr, int n, const char *const *keys, const double *vals) {
    const char **k = arena_alloc(ts.a, (size_t)(n + 1) * sizeof *k);
    RVal **v = arena_alloc(ts.a, (size_t)(n + 1) * sizeof *v);
    k[0] = "lr";
    v[0] = num(lr, 20, 24);
    for (int i = 0; i < n; i++) {
        k[i + 1] = keys[i];
        v[i + 1] = num(vals[i], 20, 30 + 10 * i);
        if (!strcmp(keys[i], "nesterov") || !strcmp(keys[i], "maximize"))
            v[i + 1]->kind = RV_BOOL;
    }
    return call("SGD", n + 1, k, v);
}

/* torch.optim.SGD's step (torch/optim/sgd.py) on one tensor, in double */
typedef struct Ref {
    double lr, momentum, dampening, weight_decay;
    bool nesterov, maximize;
} Ref;

static void ref_step(const Ref *r, double *p, double *buf, const double *grad, int n, int64_t step) {
    for (int i = 0; i < n; i++) {
        double d = grad[i] + r->weight_decay * p[i];
        if (r->momentum != 0) {
            buf[i] = step == 0 ? d : r->momentum * buf[i] + (1 - r->dampening) * d;
            d = r->nesterov ? d + r->momentum * buf[i] : buf[i];
        }
        p[i] += r->maximize ? r->lr * d : -r->lr * d;
    }
}

static int output_index(const char *name) {
    for (int i = 0; i < ts.g->noutputs; i++)
        if (!strcmp(ts.g->outputs[i].name, name))
            return i;
    fail_msg("no output %s", name);
    return -1;
}

/* Runs the lowered graph of build() for three steps through the interpreter, feeding parameters and momentum
   buffers back as the runtime does, and compares every step with ref_step (grad.p = 2 p, grad.q = q). The
   interpreter rounds f32 values to f32, so the hyperparameters are chosen exact in binary. */
static void expect_matches_torch(const Ref *r, int n, const char *const *keys, const double *vals) {
    build(sgd_with(r->lr, n, keys, vals));
    assert_true(pass_optimizer(ts.g, ts.d));
    assert_true(ir_verify(ts.g, ts.d));
    double p[6] = {1, -2, 3, 0.5, 4, -1}, q[3] = {1, 2, 3}, bp[6] = {0}, bq[3] = {0};
    double rp[6], rq[3], rbp[6] = {0}, rbq[3] = {0}, lr = r->lr, step = 0;
    memcpy(rp, p, sizeof p);
    memcpy(rq, q, sizeof q);
    for (int64_t k = 0; k < 3; k++) {
        step = (double)k;
        IBinding b[] = {
            {"p", {ts_shape(2, 2, 3), p}},
            {"q", {ts_shape(1, 3), q}},
            {"lr", {ir_shape_scalar(), &lr}},
            {"step", {ir_shape_scalar(), &step}},
            {"optimizer.p.momentum_buffer", {ts_shape(2, 2, 3), bp}},
            {"optimizer.q.momentum_buffer", {ts_shape(1, 3), bq}},
        };
        ITensor *out = ir_interp(ts.a, ts.g, 1, b, 6, ts.d);
        assert_non_null(out);
        double gp[6], gq[3];
        for (int i = 0; i < 6; i++)
            gp[i] = 2 * rp[i];
        memcpy(gq, rq, sizeof gq);
        ref_step(r, rp, rbp, gp, 6, k);
        ref_step(r, rq, rbq, gq, 3, k);
        memcpy(p, out[output_index("p")].data, sizeof p);
        memcpy(q, out[output_index("q")].data, sizeof q);
        if (r->momentum != 0) {
            memcpy(bp, out[output_index("optimizer.p.momentum_buffer")].data, sizeof bp);
            memcpy(bq, out[output_index("optimizer.q.momentum_buffer")].data, sizeof bq);
        }
        for (int i = 0; i < 6; i++)
            if (fabs(p[i] - rp[i]) > 1e-12 || fabs(bp[i] - rbp[i]) > 1e-12)
                fail_msg("step %d p[%d]: %g (buffer %g), torch's rule gives %g (buffer %g)", (int)k, i, p[i], bp[i],
                         rp[i], rbp[i]);
        for (int i = 0; i < 3; i++)
            if (fabs(q[i] - rq[i]) > 1e-12 || fabs(bq[i] - rbq[i]) > 1e-12)
                fail_msg("step %d q[%d]: %g, torch's rule gives %g", (int)k, i, q[i], rq[i]);
    }
}

static void test_sgd_momentum_matches_torch_over_three_steps(void **s) {
    (void)s;
    static const char *keys[] = {"momentum"};
    expect_matches_torch(&(Ref){.lr = 0.125, .momentum = 0.875}, 1, keys, (double[]){0.875});
}

static void test_sgd_dampening_takes_the_gradient_on_the_first_step(void **s) {
    (void)s;
    static const char *keys[] = {"momentum", "dampening"};
    expect_matches_torch(&(Ref){.lr = 0.125, .momentum = 0.5, .dampening = 0.25}, 2, keys, (double[]){0.5, 0.25});
    Node *step = ir_find_leaf(ts.g, OP_INPUT, "step");
    assert_non_null(step);
    assert_int_equal(step->dtype, DT_I64);
    assert_int_equal(step->shape.rank, 0);
}

static void test_sgd_nesterov_with_weight_decay_matches_torch(void **s) {
    (void)s;
    static const char *keys[] = {"momentum", "nesterov", "weight_decay"};
    expect_matches_torch(&(Ref){.lr = 0.25, .momentum = 0.75, .nesterov = true, .weight_decay = 0.125}, 3, keys,
                         (double[]){0.75, 1, 0.125});
}

static void test_sgd_weight_decay_without_momentum_matches_torch(void **s) {
    (void)s;
    static const char *keys[] = {"weight_decay"};
    expect_matches_torch(&(Ref){.lr = 0.25, .weight_decay = 0.5}, 1, keys, (double[]){0.5});
    for (int i = 0; i < ts.g->nnodes; i++) /* no momentum: no state */
        assert_int_not_equal(ts.g->nodes[i]->op, OP_STATE);
}

static void test_sgd_maximize_ascends(void **s) {
    (void)s;
    static const char *keys[] = {"momentum", "maximize"};
    expect_matches_torch(&(Ref){.lr = 0.125, .momentum = 0.5, .maximize = true}, 2, keys, (double[]){0.5, 1});
}

static void test_sgd_momentum_state_is_named_and_updated_in_place(void **s) {
    (void)s;
    static const char *keys[] = {"momentum"};
    build(sgd_with(0.1, 1, keys, (double[]){0.9}));
    assert_true(pass_optimizer(ts.g, ts.d));
    Node *buf = ir_find_leaf(ts.g, OP_STATE, "optimizer.p.momentum_buffer");
    assert_non_null(buf);
    assert_int_equal(buf->dtype, DT_F32);
    Shape want = ts_shape(2, 2, 3);
    assert_true(ir_shape_eq(&buf->shape, &want));
    assert_non_null(ir_find_leaf(ts.g, OP_STATE, "optimizer.q.momentum_buffer"));
    int k = output_index("optimizer.p.momentum_buffer");
    assert_true(ts.g->outputs[k].update);
    /* dampening 0: a zero buffer already gives the gradient on the first step, so no "step" input */
    assert_null(ir_find_leaf(ts.g, OP_INPUT, "step"));
}

static void test_sgd_frozen_param_gets_no_state(void **s) {
    (void)s;
    Loc l = {"m.lathe", 5, 3};
    static const char *keys[] = {"momentum"};
    Node *p = ir_param(ts.g, l, "p", DT_F32, ts_shape(1, 3));
    Node *f = ir_param(ts.g, l, "running_mean", DT_F32, ts_shape(1, 3));
    f->attr.frozen = true;
    ir_add_output(ts.g, "loss", ir_reduce(ts.g, ts.d, l, OP_REDUCE_SUM, ir_binary(ts.g, ts.d, l, OP_MUL, p, f), 1,
                                          false), false);
    ir_add_output(ts.g, "grad.p", f, false);
    ts.g->optimizer = sgd_with(0.1, 1, keys, (double[]){0.9});
    assert_true(pass_optimizer(ts.g, ts.d));
    assert_non_null(ir_find_leaf(ts.g, OP_STATE, "optimizer.p.momentum_buffer"));
    assert_null(ir_find_leaf(ts.g, OP_STATE, "optimizer.running_mean.momentum_buffer"));
    assert_int_equal(ts.g->noutputs, 3); /* loss, p, p's buffer */
}

static void test_sgd_reuses_existing_step_input(void **s) {
    (void)s;
    static const char *keys[] = {"momentum", "dampening"};
    Node *step = ir_input(ts.g, (Loc){0}, "step", DT_I64, ir_shape_scalar());
    build(sgd_with(0.1, 2, keys, (double[]){0.9, 0.1}));
    assert_true(pass_optimizer(ts.g, ts.d));
    int steps = 0;
    for (int i = 0; i < ts.g->nnodes; i++)
        steps += ts.g->nodes[i]->op == OP_INPUT && !strcmp(ts.g->nodes[i]->attr.name, "step");
    assert_int_equal(steps, 1);
    assert_ptr_equal(ir_find_leaf(ts.g, OP_INPUT, "step"), step);
}

static void test_sgd_step_input_of_wrong_type_is_error(void **s) {
    (void)s;
    static const char *keys[] = {"momentum", "dampening"};
    ir_input(ts.g, (Loc){"m.lathe", 2, 1}, "step", DT_F32, ir_shape_scalar());
    build(sgd_with(0.1, 2, keys, (double[]){0.9, 0.1}));
    assert_false(pass_optimizer(ts.g, ts.d));
    assert_non_null(strstr(diag_first_message(ts.d), "\"step\" must be i64[]"));
}

static void test_sgd_positional_arguments_follow_torch_order(void **s) {
    (void)s;
    RVal **v = arena_alloc(ts.a, 3 * sizeof(RVal *));
    v[0] = num(0.1, 20, 21);
    v[1] = num(0.9, 20, 26);
    v[2] = num(0.5, 20, 31);
    build(call("SGD", 3, NULL, v)); /* SGD(lr, momentum, dampening) */
    assert_true(pass_optimizer(ts.g, ts.d));
    assert_non_null(ir_find_leaf(ts.g, OP_STATE, "optimizer.p.momentum_buffer"));
    assert_non_null(ir_find_leaf(ts.g, OP_INPUT, "step"));
}

static void test_sgd_negative_momentum_is_error(void **s) {
    (void)s;
    static const char *keys[] = {"momentum"};
    expect_error(sgd_with(0.1, 1, keys, (double[]){-0.5}), "SGD: momentum must not be negative", 20, 30);
}

static void test_sgd_negative_weight_decay_is_error(void **s) {
    (void)s;
    static const char *keys[] = {"momentum", "weight_decay"};
    expect_error(sgd_with(0.1, 2, keys, (double[]){0.9, -1e-4}), "SGD: weight_decay must not be negative", 20, 40);
}

static void test_sgd_nesterov_without_momentum_is_error(void **s) {
    (void)s;
    static const char *keys[] = {"nesterov"};
    expect_error(sgd_with(0.1, 1, keys, (double[]){1}), "nesterov momentum requires a momentum and zero dampening",
                 20, 30);
}

static void test_sgd_nesterov_with_dampening_is_error(void **s) {
    (void)s;
    static const char *keys[] = {"momentum", "dampening", "nesterov"};
    expect_error(sgd_with(0.1, 3, keys, (double[]){0.9, 0.1, 1}),
                 "nesterov momentum requires a momentum and zero dampening", 20, 50);
}

static void test_sgd_nesterov_must_be_boolean(void **s) {
    (void)s;
    static const char *keys[] = {"momentum", "nesterov"};
    RVal *c = sgd_with(0.1, 2, keys, (double[]){0.9, 1});
    c->items[2]->kind = RV_NUM;
    expect_error(c, "SGD: nesterov must be true or false", 20, 40);
}

static void test_sgd_argument_by_position_and_keyword_is_error(void **s) {
    (void)s;
    static const char *keys[] = {NULL, "lr"};
    RVal **v = arena_alloc(ts.a, 2 * sizeof(RVal *));
    v[0] = num(0.1, 20, 21);
    v[1] = num(0.2, 20, 30);
    expect_error(call("SGD", 2, keys, v), "SGD: lr is given twice", 20, 30);
}


int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sgd_updates_param_minus_lr_grad, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_casts_lr_for_f64_params, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_positional_lr_and_neutral_momentum, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_unknown_argument_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_missing_lr_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_negative_lr_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_other_optimizer_is_not_supported_yet, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_missing_optimizer_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_gradient_of_another_shape_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_gradient_of_another_dtype_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_gradient_of_frozen_param_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_momentum_matches_torch_over_three_steps, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_dampening_takes_the_gradient_on_the_first_step, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_nesterov_with_weight_decay_matches_torch, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_weight_decay_without_momentum_matches_torch, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_maximize_ascends, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_momentum_state_is_named_and_updated_in_place, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_frozen_param_gets_no_state, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_reuses_existing_step_input, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_step_input_of_wrong_type_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_positional_arguments_follow_torch_order, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_negative_momentum_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_negative_weight_decay_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_nesterov_without_momentum_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_nesterov_with_dampening_is_error, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_nesterov_must_be_boolean, setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_sgd_argument_by_position_and_keyword_is_error, setup, ts_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
