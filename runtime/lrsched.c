/* lrsched.c: the learning-rate schedules of torch.optim.lr_scheduler as closed formulas of the epoch and the
   step (lrsched.h): the recipe's schedule call read into an RtSched, its value at any step, and its text. */
#include "lrsched.h"

#include "rexpr.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define KEY "schedule"

typedef struct SchedInfo {
    const char *name, *sig;
    RtSchedKind kind;
    int nargs;
    const char *args[7]; /* in PyTorch's positional order, the optimizer left out */
} SchedInfo;

static const SchedInfo scheds[] = {
    {"StepLR", "StepLR(step_size, gamma = 0.1)", RT_SCHED_STEP, 2, {"step_size", "gamma"}},
    {"MultiStepLR", "MultiStepLR(milestones, gamma = 0.1)", RT_SCHED_MULTISTEP, 2, {"milestones", "gamma"}},
    {"ExponentialLR", "ExponentialLR(gamma)", RT_SCHED_EXPONENTIAL, 1, {"gamma"}},
    {"CosineAnnealingLR", "CosineAnnealingLR(T_max, eta_min = 0)", RT_SCHED_COSINE, 2, {"T_max", "eta_min"}},
    {"OneCycleLR", "OneCycleLR(max_lr = lr, total_steps = none, pct_start = 0.3, anneal_strategy = \"cos\", "
                   "div_factor = 25, final_div_factor = 1e4, three_phase = false)",
     RT_SCHED_ONECYCLE, 7,
     {"max_lr", "total_steps", "pct_start", "anneal_strategy", "div_factor", "final_div_factor", "three_phase"}},
    {"LinearLR", "LinearLR(start_factor = 1 / 3, end_factor = 1, total_iters = 5)", RT_SCHED_LINEAR, 3,
     {"start_factor", "end_factor", "total_iters"}},
    {"ConstantLR", "ConstantLR(factor = 1 / 3, total_iters = 5)", RT_SCHED_CONSTANT_FACTOR, 2,
     {"factor", "total_iters"}},
    {"LambdaLR", "LambdaLR(lr_lambda)", RT_SCHED_LAMBDA, 1, {"lr_lambda"}},
};
#define NSCHEDS ((int)(sizeof scheds / sizeof *scheds))

/* the variables of LambdaLR's expression */
static const char *const lambda_names[] = {"epoch", "step"};

/* ---------------------------------------------------------------- reading the recipe */

/* Every keyword of the call is an argument of the schedule (else the closest is suggested), and there are
   no more positional arguments than it has. */
static int check_call(const json_t *call, const SchedInfo *si, RtErr *e) {
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(call, "kwargs"), k, v) {
        int i = 0;
        while (i < si->nargs && strcmp(si->args[i], k) != 0)
            i++;
        if (i < si->nargs)
            continue;
        const char *near = rt_closest(k, si->args, si->nargs);
        if (near)
            return rt_errf(e, "recipe key " KEY ": %s has no argument '%s' (did you mean '%s'?)", si->name, k, near);
        return rt_errf(e, "recipe key " KEY ": %s has no argument '%s': %s", si->name, k, si->sig);
    }
    return rt_call_check(call, KEY, si->sig, si->args, si->nargs, si->nargs, e);
}

/* A required argument: present, or an error giving the signature. */
static int need(const json_t *call, const SchedInfo *si, int pos, RtErr *e) {
    if (rt_call_arg(call, si->args[pos], pos))
        return RT_OK;
    return rt_errf(e, "recipe key " KEY ": %s needs %s: %s", si->name, si->args[pos], si->sig);
}

static int num(const json_t *call, const SchedInfo *si, int pos, double dflt, double min, double max, double *out,
               RtErr *e) {
    return rt_call_num(call, KEY, si->args[pos], pos, dflt, min, max, out, e);
}

static int positive(const json_t *call, const SchedInfo *si, int pos, double dflt, double *out, RtErr *e) {
    if (num(call, si, pos, dflt, 0, HUGE_VAL, out, e) != RT_OK)
        return RT_ERR;
    if (!(*out > 0) || isinf(*out))
        return rt_errf(e, "recipe key " KEY ": %s's %s must be a positive number", si->name, si->args[pos]);
    return RT_OK;
}

static int integer(const json_t *call, const SchedInfo *si, int pos, int64_t dflt, int64_t min, int64_t *out,
                   RtErr *e) {
    return rt_call_int(call, KEY, si->args[pos], pos, dflt, min, out, e);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int parse_milestones(const json_t *call, const SchedInfo *si, RtSched *s, RtErr *e) {
    const json_t *v = rt_call_arg(call, "milestones", 0);
    if (!json_is_array(v))
        return rt_errf(e, "recipe key " KEY ": MultiStepLR's milestones must be a list of epochs such as [30, 80]");
    if (json_array_size(v) > RT_SCHED_MAX_MILESTONES)
        return rt_errf(e, "recipe key " KEY ": MultiStepLR takes at most %d milestones, got %zu",
                       RT_SCHED_MAX_MILESTONES, json_array_size(v));
    size_t i;
    json_t *m;
    json_array_foreach(v, i, m) {
        if (!json_is_integer(m) || json_integer_value(m) < 0)
            return rt_errf(e, "recipe key " KEY ": MultiStepLR's milestone %zu must be an epoch (an integer of at "
                           "least 0)", i + 1);
        s->milestones[i] = json_integer_value(m);
    }
    s->nmilestones = (int)json_array_size(v);
    /* PyTorch counts the milestones (a Counter): a repeated one decays twice; their order does not matter */
    qsort(s->milestones, (size_t)s->nmilestones, sizeof *s->milestones, cmp_i64);
    return num(call, si, 1, 0.1, 0, HUGE_VAL, &s->gamma, e);
}

static int parse_onecycle(const json_t *call, const SchedInfo *si, RtSched *s, RtErr *e) {
    if (rt_call_arg(call, "max_lr", 0) && positive(call, si, 0, 0, &s->max_lr, e) != RT_OK)
        return RT_ERR;
    const json_t *total = rt_call_arg(call, "total_steps", 1);
    if (total && !json_is_null(total) && integer(call, si, 1, 0, 1, &s->total_steps, e) != RT_OK)
        return RT_ERR;
    if (num(call, si, 2, 0.3, 0, 1, &s->pct_start, e) != RT_OK)
        return RT_ERR;
    const json_t *strategy = rt_call_arg(call, "anneal_strategy", 3);
    const char *name = strategy ? json_string_value(strategy) : "cos";
    if (!name || (strcmp(name, "cos") != 0 && strcmp(name, "linear") != 0))
        return rt_errf(e, "recipe key " KEY ": OneCycleLR's anneal_strategy must be \"cos\" or \"linear\"");
    s->anneal_cos = strcmp(name, "cos") == 0;
    if (positive(call, si, 4, 25, &s->div_factor, e) != RT_OK ||
        positive(call, si, 5, 1e4, &s->final_div_factor, e) != RT_OK)
        return RT_ERR;
    return rt_call_bool(call, KEY, "three_phase", 6, false, &s->three_phase, e);
}

/* Whether the expression v reads the variable name. */
static bool reads(const json_t *v, const char *name) {
    const char *id = json_string_value(json_object_get(v, "ident"));
    if (id)
        return strcmp(id, name) == 0;
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(v, "args"), i, a)
        if (reads(a, name))
            return true;
    return false;
}

static int parse_lambda(const json_t *call, RtSched *s, RtErr *e) {
    s->lambda = rt_call_arg(call, "lr_lambda", 0);
    RtErr inner = {{0}};
    if (rt_rexpr_check(s->lambda, lambda_names, 2, &inner) != RT_OK)
        return rt_errf(e, "recipe key " KEY ": LambdaLR's lr_lambda: %s", inner.msg);
    s->lambda_reads_step = reads(s->lambda, "step");
    return RT_OK;
}

static int parse_args(const json_t *call, const SchedInfo *si, RtSched *s, RtErr *e) {
    switch (si->kind) {
    case RT_SCHED_STEP:
        if (need(call, si, 0, e) != RT_OK || integer(call, si, 0, 1, 1, &s->step_size, e) != RT_OK)
            return RT_ERR;
        return num(call, si, 1, 0.1, 0, HUGE_VAL, &s->gamma, e);
    case RT_SCHED_MULTISTEP:
        if (need(call, si, 0, e) != RT_OK)
            return RT_ERR;
        return parse_milestones(call, si, s, e);
    case RT_SCHED_EXPONENTIAL:
        if (need(call, si, 0, e) != RT_OK)
            return RT_ERR;
        return num(call, si, 0, 1, 0, HUGE_VAL, &s->gamma, e);
    case RT_SCHED_COSINE:
        if (need(call, si, 0, e) != RT_OK || integer(call, si, 0, 1, 1, &s->t_max, e) != RT_OK)
            return RT_ERR;
        return num(call, si, 1, 0, 0, HUGE_VAL, &s->eta_min, e);
    case RT_SCHED_ONECYCLE:
        return parse_onecycle(call, si, s, e);
    case RT_SCHED_LINEAR:
        if (num(call, si, 0, 1.0 / 3, 0, 1, &s->start_factor, e) != RT_OK ||
            num(call, si, 1, 1, 0, 1, &s->end_factor, e) != RT_OK)
            return RT_ERR;
        return integer(call, si, 2, 5, 1, &s->total_iters, e);
    case RT_SCHED_CONSTANT_FACTOR:
        if (num(call, si, 0, 1.0 / 3, 0, 1, &s->factor, e) != RT_OK)
            return RT_ERR;
        return integer(call, si, 1, 5, 1, &s->total_iters, e);
    case RT_SCHED_LAMBDA:
        if (need(call, si, 0, e) != RT_OK)
            return RT_ERR;
        return parse_lambda(call, s, e);
    case RT_SCHED_CONSTANT:
        break;
    }
    return RT_OK;
}

static int parse_warmup(const json_t *recipe, RtSched *s, RtErr *e) {
    const json_t *w = json_object_get(recipe, "warmup");
    if (!w || json_is_null(w))
        return RT_OK;
    if (!json_is_integer(w) || json_integer_value(w) < 0)
        return rt_errf(e, "recipe key warmup: must be a number of steps (an integer of at least 0)");
    s->warmup = json_integer_value(w);
    return RT_OK;
}

int rt_sched_parse(const json_t *recipe, RtSched *s, RtErr *e) {
    memset(s, 0, sizeof *s);
    s->kind = RT_SCHED_CONSTANT;
    if (parse_warmup(recipe, s, e) != RT_OK)
        return RT_ERR;
    const json_t *v = json_object_get(recipe, KEY);
    if (!v || json_is_null(v))
        return RT_OK;
    /* a bare name (schedule = ExponentialLR) reads as a call without arguments, so that the message says
       which argument it needs */
    const char *name = json_string_value(json_object_get(v, "call"));
    if (!name)
        name = json_string_value(json_object_get(v, "ident"));
    if (!name)
        return rt_errf(e, "recipe key " KEY ": expected a schedule such as StepLR(step_size = 1, gamma = 0.7)");
    const SchedInfo *si = NULL;
    for (int i = 0; i < NSCHEDS && !si; i++)
        if (strcmp(scheds[i].name, name) == 0)
            si = &scheds[i];
    if (!si) {
        const char *names[NSCHEDS];
        for (int i = 0; i < NSCHEDS; i++)
            names[i] = scheds[i].name;
        const char *near = rt_closest(name, names, NSCHEDS);
        if (near)
            return rt_errf(e, "recipe key " KEY ": unknown schedule '%s' (did you mean '%s'?)", name, near);
        return rt_errf(e, "recipe key " KEY ": unknown schedule '%s' (the schedules: StepLR, MultiStepLR, "
                       "ExponentialLR, CosineAnnealingLR, OneCycleLR, LinearLR, ConstantLR, LambdaLR)", name);
    }
    s->kind = si->kind;
    if (check_call(v, si, e) != RT_OK || parse_args(v, si, s, e) != RT_OK)
        return RT_ERR;
    return RT_OK;
}

/* ---------------------------------------------------------------- values */

/* PyTorch's OneCycleLR._annealing_cos and _annealing_linear, term for term */
static double anneal(bool cos_strategy, double start, double end, double pct) {
    if (cos_strategy)
        return end + (start - end) / 2.0 * (cos(M_PI * pct) + 1);
    return (end - start) * pct + start;
}

/* OneCycleLR.get_lr: phases that end at (fractional) steps, each annealing from its start value to its end
   value; the last phase takes every step after the others. */
static double onecycle_lr(const RtSched *s, double base_lr, int64_t step, int64_t total) {
    double max_lr = s->max_lr > 0 ? s->max_lr : base_lr;
    double initial = max_lr / s->div_factor, min_lr = initial / s->final_div_factor;
    double pct_total = s->pct_start * (double)total;
    double end_step[3], start_lr[3], end_lr[3];
    int nphases;
    if (s->three_phase) {
        nphases = 3;
        end_step[0] = pct_total - 1, start_lr[0] = initial, end_lr[0] = max_lr;
        end_step[1] = 2 * s->pct_start * (double)total - 2, start_lr[1] = max_lr, end_lr[1] = initial;
        end_step[2] = (double)(total - 1), start_lr[2] = initial, end_lr[2] = min_lr;
    } else {
        nphases = 2;
        end_step[0] = pct_total - 1, start_lr[0] = initial, end_lr[0] = max_lr;
        end_step[1] = (double)(total - 1), start_lr[1] = max_lr, end_lr[1] = min_lr;
    }
    if (step > total - 1)
        step = total - 1;
    double start_step = 0;
    for (int i = 0;; i++) {
        if ((double)step <= end_step[i] || i == nphases - 1) {
            /* a phase of no length (pct_start * total_steps = 1) ends where it starts: its end value (PyTorch
               divides by zero there) */
            double span = end_step[i] - start_step;
            double pct = span != 0 ? ((double)step - start_step) / span : 1.0;
            return anneal(s->anneal_cos, start_lr[i], end_lr[i], pct);
        }
        start_step = end_step[i];
    }
}

/* The schedule's factor-free value at the epoch (all but OneCycleLR and LambdaLR): PyTorch's
   _get_closed_form_lr. */
static double epoch_lr(const RtSched *s, double base_lr, int64_t epoch) {
    double e = (double)epoch;
    switch (s->kind) {
    case RT_SCHED_STEP:
        return base_lr * pow(s->gamma, (double)(epoch / s->step_size));
    case RT_SCHED_MULTISTEP: {
        int passed = 0; /* bisect_right: the milestones at or before epoch */
        while (passed < s->nmilestones && s->milestones[passed] <= epoch)
            passed++;
        return base_lr * pow(s->gamma, passed);
    }
    case RT_SCHED_EXPONENTIAL:
        return base_lr * pow(s->gamma, e);
    case RT_SCHED_COSINE:
        return s->eta_min + (base_lr - s->eta_min) * (1 + cos(M_PI * e / (double)s->t_max)) / 2;
    case RT_SCHED_LINEAR: {
        double done = (double)(epoch < s->total_iters ? epoch : s->total_iters);
        return base_lr * (s->start_factor + (s->end_factor - s->start_factor) * done / (double)s->total_iters);
    }
    case RT_SCHED_CONSTANT_FACTOR:
        return base_lr * (s->factor + (epoch >= s->total_iters) * (1 - s->factor));
    default:
        return base_lr;
    }
}

int rt_sched_lr(const RtSched *s, double base_lr, int64_t epoch, int64_t step, int64_t steps_per_epoch,
                int64_t epochs, double *lr, RtErr *e) {
    double v;
    if (s->kind == RT_SCHED_ONECYCLE) {
        int64_t total = s->total_steps;
        if (total <= 0 && __builtin_mul_overflow(epochs, steps_per_epoch, &total))
            total = INT64_MAX; /* a run of more than 2^63 steps never reaches the end of the cycle */
        v = onecycle_lr(s, base_lr, step, total > 0 ? total : 1);
    } else if (s->kind == RT_SCHED_LAMBDA) {
        double vals[2] = {(double)epoch, (double)step}, f;
        RtErr inner = {{0}};
        if (rt_rexpr_eval(s->lambda, lambda_names, vals, 2, &f, &inner) != RT_OK)
            return rt_errf(e, "recipe key " KEY ": LambdaLR's lr_lambda at epoch %lld, step %lld: %s",
                           (long long)epoch, (long long)step, inner.msg);
        if (!isfinite(f))
            return rt_errf(e, "recipe key " KEY ": LambdaLR's lr_lambda gave %g at epoch %lld, step %lld", f,
                           (long long)epoch, (long long)step);
        v = base_lr * f;
    } else {
        v = epoch_lr(s, base_lr, epoch);
    }
    if (step < s->warmup)
        v *= (double)(step + 1) / (double)s->warmup;
    /* PyTorch would train on with a negative, infinite or NaN rate (and NaN weights after it); here it is a
       mistake of the recipe, named at the epoch where it happens */
    if (!(v >= 0) || isinf(v)) {
        char *text = rt_sched_text(s);
        int rc = rt_errf(e, "recipe key " KEY ": the learning rate at epoch = %lld, step = %lld is %g (%.200s from lr "
                         "%g); a learning rate must be a finite number of at least 0", (long long)epoch,
                         (long long)step, v, text ? text : "the schedule", base_lr);
        free(text);
        return rc;
    }
    *lr = v;
    return RT_OK;
}

bool rt_sched_per_step(const RtSched *s) {
    return s->kind == RT_SCHED_ONECYCLE || s->warmup > 0 || (s->kind == RT_SCHED_LAMBDA && s->lambda_reads_step);
}

/* ---------------------------------------------------------------- text */

typedef struct Text {
    char *buf;
    size_t len, cap;
    bool failed;
} Text;

static void put(Text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(Text *t, const char *fmt, ...) {
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->len + (size_t)n + 1) * 2;
        char *b = realloc(t->buf, cap);
        if (!b) {
            t->failed = true;
            return;
        }
        t->buf = b, t->cap = cap;
    }
}

/* the shortest form of v that reads back as v, as the model language writes it: 10000, 0.3, 1e-5 */
static void put_num(Text *t, double v) {
    char s[40];
    if (v == floor(v) && fabs(v) < 1e15) {
        put(t, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, v);
        if (strtod(s, NULL) == v)
            break;
    }
    char *x = strchr(s, 'e');
    if (x) { /* 1e-05 -> 1e-5 */
        char *digits = x + 1 + (x[1] == '+' || x[1] == '-');
        char *from = digits;
        while (*from == '0' && from[1])
            from++;
        memmove(digits, from, strlen(from) + 1);
        if (x[1] == '+')
            memmove(x + 1, x + 2, strlen(x + 2) + 1);
    }
    put(t, "%s", s);
}

static void put_arg(Text *t, const char *sep, const char *name, double v) {
    put(t, "%s%s = ", sep, name);
    put_num(t, v);
}

char *rt_sched_text(const RtSched *s) {
    Text t = {.buf = malloc(64), .cap = 64};
    if (!t.buf)
        return NULL;
    t.buf[0] = 0;
    switch (s->kind) {
    case RT_SCHED_CONSTANT:
        put(&t, "constant");
        break;
    case RT_SCHED_STEP:
        put(&t, "StepLR(step_size = %lld", (long long)s->step_size);
        put_arg(&t, ", ", "gamma", s->gamma);
        put(&t, ")");
        break;
    case RT_SCHED_MULTISTEP:
        put(&t, "MultiStepLR(milestones = [");
        for (int i = 0; i < s->nmilestones; i++)
            put(&t, "%s%lld", i ? ", " : "", (long long)s->milestones[i]);
        put(&t, "]");
        put_arg(&t, ", ", "gamma", s->gamma);
        put(&t, ")");
        break;
    case RT_SCHED_EXPONENTIAL:
        put_arg(&t, "ExponentialLR(", "gamma", s->gamma);
        put(&t, ")");
        break;
    case RT_SCHED_COSINE:
        put(&t, "CosineAnnealingLR(T_max = %lld", (long long)s->t_max);
        put_arg(&t, ", ", "eta_min", s->eta_min);
        put(&t, ")");
        break;
    case RT_SCHED_ONECYCLE:
        put(&t, "OneCycleLR(");
        if (s->max_lr > 0)
            put_arg(&t, "", "max_lr", s->max_lr), put(&t, ", ");
        if (s->total_steps > 0)
            put(&t, "total_steps = %lld, ", (long long)s->total_steps);
        put_arg(&t, "", "pct_start", s->pct_start);
        put(&t, ", anneal_strategy = \"%s\"", s->anneal_cos ? "cos" : "linear");
        put_arg(&t, ", ", "div_factor", s->div_factor);
        put_arg(&t, ", ", "final_div_factor", s->final_div_factor);
        put(&t, ", three_phase = %s)", s->three_phase ? "true" : "false");
        break;
    case RT_SCHED_LINEAR:
        put_arg(&t, "LinearLR(", "start_factor", s->start_factor);
        put_arg(&t, ", ", "end_factor", s->end_factor);
        put(&t, ", total_iters = %lld)", (long long)s->total_iters);
        break;
    case RT_SCHED_CONSTANT_FACTOR:
        put_arg(&t, "ConstantLR(", "factor", s->factor);
        put(&t, ", total_iters = %lld)", (long long)s->total_iters);
        break;
    case RT_SCHED_LAMBDA: {
        char *expr = rt_rexpr_text(s->lambda);
        if (!expr)
            t.failed = true;
        put(&t, "LambdaLR(%s)", expr ? expr : "");
        free(expr);
        break;
    }
    }
    if (s->warmup > 0)
        put(&t, ", warmup = %lld", (long long)s->warmup);
    if (t.failed) {
        free(t.buf);
        return NULL;
    }
    return t.buf;
}
