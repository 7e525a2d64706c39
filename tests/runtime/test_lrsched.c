/* test_lrsched.c: the learning-rate schedules (runtime/lrsched.c): each schedule's values over 20 epochs against
   its formula worked out here (PyTorch's recursive form where it has one), every argument set away from its
   default so that ignoring it fails, OneCycleLR step by step, warmup, the text, and the parse errors. */
#include "support.h"

#include "lrsched.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Parses the recipe text into s; the recipe is kept in *keep (LambdaLR borrows from it). */
static void parse_ok(const char *text, RtSched *s, json_t **keep) {
    RtErr e = {{0}};
    *keep = ts_json(text);
    if (rt_sched_parse(*keep, s, &e) != RT_OK)
        fail_msg("'%s' refused: %s", text, e.msg);
}

static void expect_error(const char *text, const char *part) {
    RtSched s;
    RtErr e = {{0}};
    json_t *r = ts_json(text);
    assert_int_equal(rt_sched_parse(r, &s, &e), RT_ERR);
    if (!strstr(e.msg, part))
        fail_msg("'%s': message '%s' does not contain '%s'", text, e.msg, part);
    if (strncmp(e.msg, "recipe key ", 11) != 0)
        fail_msg("'%s': message '%s' does not name the recipe key", text, e.msg);
    json_decref(r);
}

static double lr_at(const RtSched *s, double base, int64_t epoch, int64_t step, int64_t steps_per_epoch,
                    int64_t epochs) {
    double lr = NAN;
    RtErr e = {{0}};
    if (rt_sched_lr(s, base, epoch, step, steps_per_epoch, epochs, &lr, &e) != RT_OK)
        fail_msg("rt_sched_lr failed at epoch %lld step %lld: %s", (long long)epoch, (long long)step, e.msg);
    return lr;
}

static void expect_close(double got, double want, const char *what, int64_t at) {
    if (!(fabs(got - want) <= 1e-12 * fabs(want) + 1e-300))
        fail_msg("%s at %lld: got %.17g, want %.17g", what, (long long)at, got, want);
}

/* An epoch schedule's values for epochs 0..19 against want[]; one step per epoch, 20 epochs. */
static void expect_epochs(const char *text, double base, const double *want) {
    RtSched s;
    json_t *r;
    parse_ok(text, &s, &r);
    for (int64_t ep = 0; ep < 20; ep++) {
        expect_close(lr_at(&s, base, ep, ep, 1, 20), want[ep], text, ep);
        /* the same all through a longer epoch */
        expect_close(lr_at(&s, base, ep, ep * 50 + 49, 50, 20), want[ep], text, ep);
    }
    assert_false(rt_sched_per_step(&s));
    json_decref(r);
}

static void test_sched_absent_is_the_base_lr(void **state) {
    double want[20];
    for (int i = 0; i < 20; i++)
        want[i] = 0.05;
    expect_epochs("{}", 0.05, want);
    expect_epochs("{\"schedule\": null}", 0.05, want);
}

static void test_sched_steplr(void **state) {
    double want[20], lr = 0.1;
    for (int ep = 0; ep < 20; ep++) { /* PyTorch's StepLR.get_lr: times gamma every step_size epochs */
        if (ep > 0 && ep % 3 == 0)
            lr *= 0.5;
        want[ep] = lr;
    }
    expect_epochs("{\"schedule\": {\"call\": \"StepLR\", \"args\": [3], \"kwargs\": {\"gamma\": 0.5}}}", 0.1, want);
    /* positionally, and gamma's default 0.1 */
    expect_epochs("{\"schedule\": {\"call\": \"StepLR\", \"args\": [3, 0.5]}}", 0.1, want);
    for (int ep = 0; ep < 20; ep++)
        want[ep] = 2.0 * pow(0.1, ep / 7);
    expect_epochs("{\"schedule\": {\"call\": \"StepLR\", \"kwargs\": {\"step_size\": 7}}}", 2.0, want);
}

static void test_sched_multisteplr(void **state) {
    /* milestones in any order, a repeated one decaying twice (PyTorch counts them) */
    double want[20], lr = 1.0;
    for (int ep = 0; ep < 20; ep++) {
        if (ep == 2 || ep == 9)
            lr *= 0.5;
        if (ep == 5)
            lr *= 0.25;
        want[ep] = lr;
    }
    expect_epochs("{\"schedule\": {\"call\": \"MultiStepLR\", \"args\": [[9, 2, 5, 5]], \"kwargs\": {\"gamma\": 0.5}}}",
                  1.0, want);
    for (int ep = 0; ep < 20; ep++)
        want[ep] = ep < 4 ? 1.0 : ep < 12 ? 0.1 : 0.1 * 0.1;
    expect_epochs("{\"schedule\": {\"call\": \"MultiStepLR\", \"kwargs\": {\"milestones\": [4, 12]}}}", 1.0, want);
}

static void test_sched_exponentiallr(void **state) {
    double want[20], lr = 0.3;
    for (int ep = 0; ep < 20; ep++) {
        want[ep] = lr;
        lr *= 0.9;
    }
    expect_epochs("{\"schedule\": {\"call\": \"ExponentialLR\", \"args\": [0.9]}}", 0.3, want);
}

static void test_sched_cosineannealinglr(void **state) {
    /* past T_max the closed form rises again, as PyTorch's does */
    double want[20], eta_min = 0.01, base = 0.1;
    for (int ep = 0; ep < 20; ep++)
        want[ep] = eta_min + (base - eta_min) * (1 + cos(M_PI * ep / 7)) / 2;
    expect_epochs("{\"schedule\": {\"call\": \"CosineAnnealingLR\", \"args\": [7], \"kwargs\": {\"eta_min\": 0.01}}}",
                  base, want);
    assert_true(fabs(want[7] - eta_min) < 1e-15 && fabs(want[14] - base) < 1e-15);
    for (int ep = 0; ep < 20; ep++)
        want[ep] = base * (1 + cos(M_PI * ep / 4)) / 2;
    expect_epochs("{\"schedule\": {\"call\": \"CosineAnnealingLR\", \"kwargs\": {\"T_max\": 4}}}", base, want);
    assert_true(want[4] == 0 && want[2] == base / 2 + base / 2 * cos(M_PI / 2));
}

static void test_sched_linearlr(void **state) {
    /* start 1/4 to end 3/4 over 4 epochs */
    double want[20];
    const double f[5] = {0.25, 0.375, 0.5, 0.625, 0.75};
    for (int ep = 0; ep < 20; ep++)
        want[ep] = 2.0 * f[ep < 4 ? ep : 4];
    expect_epochs("{\"schedule\": {\"call\": \"LinearLR\", \"kwargs\": {\"start_factor\": 0.25, \"end_factor\": 0.75, "
                  "\"total_iters\": 4}}}", 2.0, want);
    expect_epochs("{\"schedule\": {\"call\": \"LinearLR\", \"args\": [0.25, 0.75, 4]}}", 2.0, want);
    /* the defaults: 1/3 to 1 over 5 epochs */
    for (int ep = 0; ep < 20; ep++)
        want[ep] = 3.0 * (1.0 / 3 + (1 - 1.0 / 3) * (ep < 5 ? ep : 5) / 5);
    expect_epochs("{\"schedule\": {\"call\": \"LinearLR\"}}", 3.0, want);
    assert_true(fabs(want[0] - 1.0) < 1e-15 && fabs(want[5] - 3.0) < 1e-15);
}

static void test_sched_constantlr(void **state) {
    double want[20];
    for (int ep = 0; ep < 20; ep++)
        want[ep] = ep < 3 ? 0.5 : 1.0;
    expect_epochs("{\"schedule\": {\"call\": \"ConstantLR\", \"kwargs\": {\"factor\": 0.5, \"total_iters\": 3}}}", 1.0,
                  want);
    for (int ep = 0; ep < 20; ep++)
        want[ep] = ep < 5 ? 1.0 / 3 : 1.0;
    expect_epochs("{\"schedule\": {\"call\": \"ConstantLR\"}}", 1.0, want);
}

static void test_sched_lambdalr_of_epoch(void **state) {
    double want[20];
    for (int ep = 0; ep < 20; ep++)
        want[ep] = 0.2 * pow(0.95, ep);
    expect_epochs("{\"schedule\": {\"call\": \"LambdaLR\", \"args\": [{\"call\": \"pow\", \"args\": [0.95, "
                  "{\"ident\": \"epoch\"}]}]}}", 0.2, want);
}

static void test_sched_lambdalr_of_step_is_per_step(void **state) {
    RtSched s;
    json_t *r;
    parse_ok("{\"schedule\": {\"call\": \"LambdaLR\", \"kwargs\": {\"lr_lambda\": {\"call\": \"div\", \"args\": [1, "
             "{\"call\": \"add\", \"args\": [1, {\"ident\": \"step\"}]}]}}}}", &s, &r);
    assert_true(rt_sched_per_step(&s));
    for (int64_t step = 0; step < 20; step++)
        expect_close(lr_at(&s, 0.5, step / 7, step, 7, 3), 0.5 / (1 + step), "1 / (1 + step)", step);
    json_decref(r);
}

static void test_sched_lambdalr_without_a_finite_value_is_an_error(void **state) {
    /* log(2 - epoch): -inf at epoch 2 */
    RtSched s;
    json_t *r;
    parse_ok("{\"schedule\": {\"call\": \"LambdaLR\", \"args\": [{\"call\": \"log\", \"args\": [{\"call\": \"sub\", "
             "\"args\": [2, {\"ident\": \"epoch\"}]}]}]}}", &s, &r);
    double lr;
    RtErr e = {{0}};
    assert_int_equal(rt_sched_lr(&s, 0.1, 1, 1, 1, 20, &lr, &e), RT_OK);
    expect_close(lr, 0.1 * log(1.0), "log(2 - epoch)", 1);
    assert_int_equal(rt_sched_lr(&s, 0.1, 2, 2, 1, 20, &lr, &e), RT_ERR);
    if (!strstr(e.msg, "recipe key schedule: LambdaLR's lr_lambda") || !strstr(e.msg, "epoch 2"))
        fail_msg("message '%s' does not name the key and the epoch", e.msg);
    json_decref(r);
}

/* OneCycleLR's value at step, worked phase by phase here: the phases end at pct * total - 1 (and 2 pct total
   - 2), annealing initial -> max -> (initial ->) min. */
static double anneal(bool cos_strategy, double from, double to, double pct) {
    return cos_strategy ? to + (from - to) * (1 + cos(M_PI * pct)) / 2 : from + (to - from) * pct;
}

static double onecycle_want(double max_lr, int64_t total, double pct_start, bool cos_strategy, double div,
                            double final_div, bool three, int64_t step) {
    double initial = max_lr / div, min_lr = initial / final_div, s = (double)step;
    double up = pct_start * (double)total - 1, last = (double)(total - 1);
    if (s <= up)
        return anneal(cos_strategy, initial, max_lr, s / up);
    if (!three)
        return anneal(cos_strategy, max_lr, min_lr, (s - up) / (last - up));
    double down = 2 * pct_start * (double)total - 2;
    if (s <= down)
        return anneal(cos_strategy, max_lr, initial, (s - up) / (down - up));
    return anneal(cos_strategy, initial, min_lr, (s - down) / (last - down));
}

static void expect_onecycle(const char *text, double base, int64_t steps_per_epoch, int64_t epochs, double max_lr,
                            int64_t total, double pct_start, bool cos_strategy, double div, double final_div,
                            bool three) {
    RtSched s;
    json_t *r;
    parse_ok(text, &s, &r);
    assert_true(rt_sched_per_step(&s));
    for (int64_t step = 0; step < total; step++) {
        double want = onecycle_want(max_lr, total, pct_start, cos_strategy, div, final_div, three, step);
        expect_close(lr_at(&s, base, step / steps_per_epoch, step, steps_per_epoch, epochs), want, text, step);
    }
    /* past the end: the last value, where PyTorch would raise */
    double last = lr_at(&s, base, 0, total - 1, steps_per_epoch, epochs), min_lr = max_lr / div / final_div;
    if (!(fabs(last - min_lr) <= 1e-9 * min_lr)) /* the linear form's rounding: (min - max) * 1 + max */
        fail_msg("%s: the last step gives %.17g, not min_lr %.17g", text, last, min_lr);
    expect_close(lr_at(&s, base, 0, total + 5, steps_per_epoch, epochs), last, text, total + 5);
    json_decref(r);
}

static void test_sched_onecycle_defaults_per_step(void **state) {
    /* 3 epochs of 7 steps: total_steps 21 */
    expect_onecycle("{\"schedule\": {\"call\": \"OneCycleLR\", \"args\": [1.0]}}", 0.1, 7, 3, 1.0, 21, 0.3, true, 25,
                    1e4, false);
    RtSched s;
    json_t *r;
    parse_ok("{\"schedule\": {\"call\": \"OneCycleLR\", \"args\": [1.0]}}", &s, &r);
    expect_close(lr_at(&s, 0.1, 0, 0, 7, 3), 1.0 / 25, "the first step: max_lr / div_factor", 0);
    json_decref(r);
    /* max_lr defaults to the group's lr */
    expect_onecycle("{\"schedule\": {\"call\": \"OneCycleLR\"}}", 0.4, 7, 3, 0.4, 21, 0.3, true, 25, 1e4, false);
}

static void test_sched_onecycle_every_argument(void **state) {
    /* total_steps over epochs * steps_per_epoch; pct_start 0.25 of 20 steps puts the peak at step 4 */
    const char *text = "{\"schedule\": {\"call\": \"OneCycleLR\", \"kwargs\": {\"max_lr\": 0.5, \"total_steps\": 20, "
                       "\"pct_start\": 0.25, \"div_factor\": 10, \"final_div_factor\": 100}}}";
    expect_onecycle(text, 0.1, 7, 3, 0.5, 20, 0.25, true, 10, 100, false);
    RtSched s;
    json_t *r;
    parse_ok(text, &s, &r);
    expect_close(lr_at(&s, 0.1, 0, 4, 7, 3), 0.5, "the peak", 4);
    expect_close(lr_at(&s, 0.1, 0, 2, 7, 3), 0.05 + 0.45 / 2, "half way up", 2);
    json_decref(r);
    /* linear annealing */
    text = "{\"schedule\": {\"call\": \"OneCycleLR\", \"kwargs\": {\"max_lr\": 0.5, \"total_steps\": 20, \"pct_start\": "
           "0.25, \"anneal_strategy\": \"linear\"}}}";
    expect_onecycle(text, 0.1, 7, 3, 0.5, 20, 0.25, false, 25, 1e4, false);
    parse_ok(text, &s, &r);
    expect_close(lr_at(&s, 0.1, 0, 1, 7, 3), 0.02 + 0.48 / 4, "a quarter of the way up", 1);
    json_decref(r);
    /* three phases: up to step 4, down to step 8, then to the minimum at step 19 */
    text = "{\"schedule\": {\"call\": \"OneCycleLR\", \"args\": [0.5, 20, 0.25], \"kwargs\": {\"three_phase\": true}}}";
    expect_onecycle(text, 0.1, 7, 3, 0.5, 20, 0.25, true, 25, 1e4, true);
    parse_ok(text, &s, &r);
    expect_close(lr_at(&s, 0.1, 0, 8, 7, 3), 0.02, "back to the initial lr", 8);
    json_decref(r);
}

static void test_sched_warmup(void **state) {
    /* ExponentialLR(0.5) with 3 steps an epoch and warmup = 4: (step + 1) / 4 over steps 0..3 */
    RtSched s;
    json_t *r;
    parse_ok("{\"schedule\": {\"call\": \"ExponentialLR\", \"args\": [0.5]}, \"warmup\": 4}", &s, &r);
    assert_true(rt_sched_per_step(&s));
    for (int64_t step = 0; step < 60; step++) {
        int64_t ep = step / 3;
        double want = 0.8 * pow(0.5, (double)ep) * (step < 4 ? (step + 1) / 4.0 : 1.0);
        expect_close(lr_at(&s, 0.8, ep, step, 3, 20), want, "warmup over ExponentialLR", step);
    }
    json_decref(r);
    /* alone */
    parse_ok("{\"warmup\": 10}", &s, &r);
    assert_true(rt_sched_per_step(&s));
    expect_close(lr_at(&s, 1.0, 0, 0, 100, 1), 0.1, "warmup alone", 0);
    expect_close(lr_at(&s, 1.0, 0, 4, 100, 1), 0.5, "warmup alone", 4);
    expect_close(lr_at(&s, 1.0, 0, 10, 100, 1), 1.0, "warmup alone", 10);
    json_decref(r);
}

static void expect_text(const char *recipe, const char *want) {
    RtSched s;
    json_t *r;
    parse_ok(recipe, &s, &r);
    char *t = rt_sched_text(&s);
    assert_non_null(t);
    assert_string_equal(t, want);
    free(t);
    json_decref(r);
}

static void test_sched_text(void **state) {
    expect_text("{}", "constant");
    expect_text("{\"schedule\": {\"call\": \"StepLR\", \"args\": [1, 0.7]}}", "StepLR(step_size = 1, gamma = 0.7)");
    expect_text("{\"schedule\": {\"call\": \"MultiStepLR\", \"args\": [[80, 30]]}, \"warmup\": 500}",
                "MultiStepLR(milestones = [30, 80], gamma = 0.1), warmup = 500");
    expect_text("{\"schedule\": {\"call\": \"LinearLR\"}}",
                "LinearLR(start_factor = 0.3333333333333333, end_factor = 1, total_iters = 5)");
    expect_text("{\"schedule\": {\"call\": \"ExponentialLR\", \"args\": [1e-05]}}", "ExponentialLR(gamma = 1e-5)");
    expect_text("{\"schedule\": {\"call\": \"LambdaLR\", \"args\": [{\"call\": \"pow\", \"args\": [0.95, "
                "{\"ident\": \"epoch\"}]}]}}", "LambdaLR(0.95 ** epoch)");
    expect_text("{\"schedule\": {\"call\": \"OneCycleLR\", \"args\": [0.1]}}",
                "OneCycleLR(max_lr = 0.1, pct_start = 0.3, anneal_strategy = \"cos\", div_factor = 25, "
                "final_div_factor = 10000, three_phase = false)");
}

static void test_sched_parse_errors(void **state) {
    expect_error("{\"schedule\": {\"call\": \"StepLr\", \"args\": [1]}}", "unknown schedule 'StepLr' (did you mean 'StepLR'?)");
    expect_error("{\"schedule\": {\"call\": \"CosineAnnealing\", \"args\": [1]}}", "did you mean 'CosineAnnealingLR'?");
    expect_error("{\"schedule\": {\"call\": \"Plateau\"}}", "unknown schedule 'Plateau' (the schedules: StepLR");
    expect_error("{\"schedule\": 3}", "recipe key schedule: expected a schedule");
    expect_error("{\"schedule\": {\"call\": \"StepLR\", \"args\": [1], \"kwargs\": {\"gama\": 0.5}}}",
                 "recipe key schedule: StepLR has no argument 'gama' (did you mean 'gamma'?)");
    expect_error("{\"schedule\": {\"call\": \"StepLR\", \"kwargs\": {\"gamma\": 0.5}}}", "StepLR needs step_size");
    expect_error("{\"schedule\": {\"ident\": \"ExponentialLR\"}}", "ExponentialLR needs gamma");
    expect_error("{\"schedule\": {\"call\": \"StepLR\", \"args\": [0]}}", "step_size must be an integer of at least 1");
    expect_error("{\"schedule\": {\"call\": \"StepLR\", \"args\": [1, 0.1, 3]}}", "at most 2 positional arguments");
    expect_error("{\"schedule\": {\"call\": \"StepLR\", \"args\": [1, \"x\"]}}", "gamma must be a number");
    expect_error("{\"schedule\": {\"call\": \"MultiStepLR\", \"args\": [3]}}", "milestones must be a list");
    expect_error("{\"schedule\": {\"call\": \"MultiStepLR\", \"args\": [[3, -1]]}}", "milestone 2 must be an epoch");
    expect_error("{\"schedule\": {\"call\": \"CosineAnnealingLR\", \"args\": [0]}}", "T_max must be an integer");
    expect_error("{\"schedule\": {\"call\": \"CosineAnnealingLR\", \"args\": [5, -1]}}", "eta_min must be a number");
    expect_error("{\"schedule\": {\"call\": \"OneCycleLR\", \"args\": [0.1], \"kwargs\": {\"pct_start\": 1.5}}}",
                 "pct_start must be a number from 0 to 1");
    expect_error("{\"schedule\": {\"call\": \"OneCycleLR\", \"args\": [0.1], \"kwargs\": {\"anneal_strategy\": "
                 "\"cosine\"}}}", "anneal_strategy must be \"cos\" or \"linear\"");
    expect_error("{\"schedule\": {\"call\": \"OneCycleLR\", \"args\": [0]}}", "max_lr must be a positive number");
    expect_error("{\"schedule\": {\"call\": \"OneCycleLR\", \"args\": [0.1, 0]}}", "total_steps must be an integer");
    expect_error("{\"schedule\": {\"call\": \"OneCycleLR\", \"kwargs\": {\"div_factor\": 0}}}",
                 "div_factor must be a positive number");
    expect_error("{\"schedule\": {\"call\": \"OneCycleLR\", \"kwargs\": {\"three_phase\": 1}}}",
                 "three_phase must be true or false");
    expect_error("{\"schedule\": {\"call\": \"OneCycleLR\", \"kwargs\": {\"epochs\": 3}}}",
                 "OneCycleLR has no argument 'epochs'");
    expect_error("{\"schedule\": {\"call\": \"LinearLR\", \"args\": [1.5]}}", "start_factor must be a number from 0 to 1");
    expect_error("{\"schedule\": {\"call\": \"LinearLR\", \"kwargs\": {\"total_iters\": 0}}}", "total_iters must be");
    expect_error("{\"schedule\": {\"call\": \"ConstantLR\", \"args\": [2]}}", "factor must be a number from 0 to 1");
    expect_error("{\"schedule\": {\"call\": \"LambdaLR\"}}", "LambdaLR needs lr_lambda");
    expect_error("{\"schedule\": {\"call\": \"LambdaLR\", \"args\": [{\"ident\": \"epochs\"}]}}",
                 "recipe key schedule: LambdaLR's lr_lambda: ");
    expect_error("{\"warmup\": -1}", "recipe key warmup: must be a number of steps");
    expect_error("{\"warmup\": 2.5}", "recipe key warmup");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sched_absent_is_the_base_lr),
        cmocka_unit_test(test_sched_steplr),
        cmocka_unit_test(test_sched_multisteplr),
        cmocka_unit_test(test_sched_exponentiallr),
        cmocka_unit_test(test_sched_cosineannealinglr),
        cmocka_unit_test(test_sched_linearlr),
        cmocka_unit_test(test_sched_constantlr),
        cmocka_unit_test(test_sched_lambdalr_of_epoch),
        cmocka_unit_test(test_sched_lambdalr_of_step_is_per_step),
        cmocka_unit_test(test_sched_lambdalr_without_a_finite_value_is_an_error),
        cmocka_unit_test(test_sched_onecycle_defaults_per_step),
        cmocka_unit_test(test_sched_onecycle_every_argument),
        cmocka_unit_test(test_sched_warmup),
        cmocka_unit_test(test_sched_text),
        cmocka_unit_test(test_sched_parse_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
