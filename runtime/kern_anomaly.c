/* kern_anomaly.c: --detect-anomaly. The graph entries call lathe_check_finite on every float kernel output
   while lathe_anomaly_on is set; the first NaN or Inf of a step is kept here until the driver takes it and
   names the node from the manifest's "checks". Also the plain check of the loss and of gradients. */
#include "lathe_kern.h"
#include "rt.h"

#include <math.h>
#include <string.h>

int lathe_anomaly_on;
void (*lathe_output_ready_hook)(int32_t graph, int32_t arg);

static struct {
    bool enabled; /* what lathe_anomaly_on returns to after a take */
    bool hit;
    RtAnomaly first;
} anomaly;

/* The index of the first non-finite value of p[0..n), or -1. A value is non-finite when its exponent bits
   are all ones, and exactly then does adding one to the exponent carry into the sign bit: the OR of that sum
   over a block (and, add and or, which vectorize with plain SSE2) tells whether the block has one, and only
   such a block is searched value by value. */
#define FIRST_NONFINITE(name, T, U, EXP, ONE, SIGN)                                                      \
    static int64_t name(const T *p, int64_t n) {                                                         \
        enum { BLOCK = 4096 };                                                                           \
        for (int64_t lo = 0; lo < n; lo += BLOCK) {                                                      \
            int64_t hi = n - lo < BLOCK ? n : lo + BLOCK;                                                \
            U any = 0;                                                                                   \
            for (int64_t i = lo; i < hi; i++) {                                                          \
                U bits;                                                                                  \
                memcpy(&bits, &p[i], sizeof bits);                                                       \
                any |= (bits & EXP) + ONE;                                                               \
            }                                                                                            \
            if (!(any & SIGN))                                                                           \
                continue;                                                                                \
            for (int64_t i = lo; i < hi; i++)                                                            \
                if (!isfinite(p[i]))                                                                     \
                    return i;                                                                            \
        }                                                                                                \
        return -1;                                                                                       \
    }

FIRST_NONFINITE(first_nonfinite_f32, float, uint32_t, 0x7f800000u, 0x00800000u, 0x80000000u)
FIRST_NONFINITE(first_nonfinite_f64, double, uint64_t, 0x7ff0000000000000ull, 0x0010000000000000ull,
                0x8000000000000000ull)

/* p's first non-finite index and value for the float dtypes (RtDType and ir.h's DType agree on them). */
static int64_t first_nonfinite(RtDType t, const void *p, int64_t n, double *value) {
    int64_t i = -1;
    if (t == RT_F32 && (i = first_nonfinite_f32(p, n)) >= 0)
        *value = ((const float *)p)[i];
    else if (t == RT_F64 && (i = first_nonfinite_f64(p, n)) >= 0)
        *value = ((const double *)p)[i];
    return i;
}

void lathe_check_finite(const void *p, int64_t count, int32_t dtype, int32_t graph, int32_t check) {
    if (anomaly.hit)
        return;
    double value = 0;
    int64_t i = first_nonfinite((RtDType)dtype, p, count, &value);
    if (i < 0)
        return;
    anomaly.hit = true;
    anomaly.first = (RtAnomaly){.graph = graph, .check = check, .index = i, .value = value, .step = -1};
    lathe_anomaly_on = 0;
}

void rt_anomaly_enable(bool on) {
    anomaly.enabled = on;
    anomaly.hit = false;
    lathe_anomaly_on = on;
}

bool rt_anomaly_take(RtAnomaly *out) {
    if (!anomaly.hit)
        return false;
    if (out)
        *out = anomaly.first;
    anomaly.hit = false;
    lathe_anomaly_on = anomaly.enabled;
    return true;
}

bool rt_all_finite(RtDType t, const void *p, int64_t n) {
    double value;
    return first_nonfinite(t, p, n, &value) < 0;
}

static const char *graph_names[4] = {"train", "grads", "eval", "predict"};

static const RtGraph *graph_named(const RtManifest *m, const char *name) {
    const RtGraph *gs[4] = {&m->train, &m->grads, &m->eval, &m->predict};
    for (int i = 0; i < 4; i++)
        if (strcmp(graph_names[i], name) == 0)
            return gs[i];
    return NULL;
}

static const char *value_name(double v) {
    return isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
}

/* " in step 31 of" or " in" */
static void step_text(int64_t step, char *buf, size_t n) {
    if (step >= 0)
        snprintf(buf, n, " in step %lld of", (long long)step);
    else
        snprintf(buf, n, " in");
}

void rt_anomaly_message(const RtManifest *m, const char *graph, const RtAnomaly *a, char *buf, size_t n) {
    if (!graph)
        graph = a->graph >= 0 && a->graph < 4 ? graph_names[a->graph] : "?";
    const RtGraph *g = m ? graph_named(m, graph) : NULL;
    const RtCheck *c = g && a->check >= 0 && a->check < g->nchecks ? &g->checks[a->check] : NULL;
    char step[48];
    step_text(a->step, step, sizeof step);
    if (!c) { /* a manifest without checks */
        snprintf(buf, n, "a non-finite value (%s) first appeared in the output of kernel check %d, element %lld,%s "
                 "the %s graph", value_name(a->value), a->check, (long long)a->index, step, graph);
        return;
    }
    char name[256] = "", at[256] = "";
    if (c->name)
        snprintf(name, sizeof name, " (%s)", c->name);
    if (c->loc)
        snprintf(at, sizeof at, " at %s", c->loc);
    snprintf(buf, n, "a non-finite value (%s) first appeared in %s %s%s%s, element %lld,%s the %s graph",
             value_name(a->value), c->node, c->op, name, at, (long long)a->index, step, graph);
}

/* The first non-finite element of output arg of b's graph, or -1. */
static int64_t output_nonfinite(const RtBinding *b, int arg, double *value) {
    const RtTensorSpec *t = &b->g->args[arg];
    int64_t count = 1;
    for (int i = 0; i < t->rank; i++)
        count *= t->shape[i] < 0 ? b->max_n : t->shape[i]; /* grads and loss have no N; else at most max_n */
    return first_nonfinite(t->dtype, b->args[arg], count, value);
}

/* " (fashion_mlp.lathe:29:17)": the model line of g's output named name, from the manifest's checks; "". */
static void line_of(const RtGraph *g, const char *name, char *buf, size_t n) {
    buf[0] = 0;
    for (int i = 0; i < g->nchecks; i++)
        if (g->checks[i].name && g->checks[i].loc && strcmp(g->checks[i].name, name) == 0) {
            snprintf(buf, n, " (%s)", g->checks[i].loc);
            return;
        }
}

int rt_anomaly_check_run(const RtBinding *b, const RtModel *md, int64_t step, bool loss, bool grads, RtErr *e) {
    RtAnomaly a;
    char msg[sizeof e->msg], at[48];
    if (rt_anomaly_take(&a)) {
        a.step = step;
        rt_anomaly_message(md->m, NULL, &a, msg, sizeof msg);
    } else {
        step_text(step, at, sizeof at);
        double v;
        int64_t i;
        if (loss && b->loss_arg >= 0 && output_nonfinite(b, b->loss_arg, &v) >= 0) {
            char line[300];
            line_of(b->g, "loss", line, sizeof line);
            snprintf(msg, sizeof msg, "the loss%s became %s%s the %s graph (--detect-anomaly names the first "
                     "kernel that made a non-finite value)", line, value_name(v), at, b->g->name);
        } else {
            int p = 0;
            for (i = -1; grads && b->grad_arg && p < md->m->nparams; p++)
                if (b->grad_arg[p] >= 0 && (i = output_nonfinite(b, b->grad_arg[p], &v)) >= 0)
                    break;
            if (i < 0)
                return RT_OK;
            snprintf(msg, sizeof msg, "the gradient of '%s' became %s at element %lld%s the %s graph "
                     "(--detect-anomaly names the first kernel that made a non-finite value)",
                     md->m->params[p].t.name, value_name(v), (long long)i, at, b->g->name);
        }
    }
    if (e)
        snprintf(e->msg, sizeof e->msg, "%s", msg);
    return RT_ERR;
}
