/* metrics.c: the recipe's metrics (metrics.h) read from the manifest's JSON, counted batch by batch from the
   logits and the labels, and reduced as torchmetrics' compute() reduces them: counts summed over the epoch,
   divided once at the end. */
#include "metrics.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define KEY "metrics"

static const char *const builtin_names[] = {"accuracy", "top_k", "precision", "recall", "f1", "confusion_matrix",
                                            "mae", "mse"};
static const RtMetricKind builtin_kinds[] = {RT_METRIC_ACCURACY, RT_METRIC_TOPK, RT_METRIC_PRECISION,
                                             RT_METRIC_RECALL, RT_METRIC_F1, RT_METRIC_CONFUSION, RT_METRIC_MAE,
                                             RT_METRIC_MSE};
#define NBUILTIN ((int)(sizeof builtin_names / sizeof *builtin_names))

/* ---------------------------------------------------------------- reading the recipe */

/* The graph's output "metric.NAME" for name, or NULL. */
static const char *custom_output(const RtGraph *g, const char *name) {
    for (int i = 0; g && i < g->nargs; i++) {
        const char *a = g->args[i].name;
        if (g->args[i].role == RT_ROLE_OUTPUT && strncmp(a, "metric.", 7) == 0 && strcmp(a + 7, name) == 0)
            return a;
    }
    return NULL;
}

/* The known name closest to name (a builtin or one of g's own metrics) when close enough to be a typo. */
static const char *closest(const char *name, const RtGraph *g) {
    const char *best = NULL;
    int best_d = 1000, limit = (int)strlen(name) / 3 + 1;
    for (int i = 0; i < NBUILTIN + (g ? g->nargs : 0); i++) {
        const char *cand = i < NBUILTIN ? builtin_names[i] : g->args[i - NBUILTIN].name;
        if (i >= NBUILTIN) {
            if (g->args[i - NBUILTIN].role != RT_ROLE_OUTPUT || strncmp(cand, "metric.", 7) != 0)
                continue;
            cand += 7;
        }
        int d = rt_edit_distance(name, cand);
        if (d < best_d && d <= limit) {
            best = cand;
            best_d = d;
        }
    }
    return best;
}

static bool is_regression_metric(RtMetricKind k) { return k == RT_METRIC_MAE || k == RT_METRIC_MSE; }

/* top_k(k): 1 <= k <= classes */
static int parse_top_k(const json_t *v, int64_t classes, int64_t *k, RtErr *e) {
    static const char *const known[] = {"k"};
    if (!json_is_object(v) || !rt_call_arg(v, "k", 0))
        return rt_errf(e, "recipe key " KEY ": top_k needs k, the number of largest logits: top_k(5)");
    if (rt_call_check(v, KEY, "top_k(k)", known, 1, 1, e) != RT_OK ||
        rt_call_int(v, KEY, "k", 0, 1, 1, k, e) != RT_OK)
        return RT_ERR;
    if (*k > classes)
        return rt_errf(e, "recipe key " KEY ": top_k(%lld) needs k of at most the %lld classes", (long long)*k,
                       (long long)classes);
    return RT_OK;
}

/* One item of the list into s (once: a repeated metric is kept where first written). */
static int parse_item(const json_t *v, size_t index, int64_t classes, bool regression, const RtGraph *g,
                      RtMetricSpec *s, RtErr *e) {
    const char *name = json_string_value(json_object_get(v, "ident"));
    bool call = false;
    if (!name)
        name = json_string_value(json_object_get(v, "call")), call = true;
    if (!name)
        return rt_errf(e, "recipe key " KEY ": item %zu must be a metric such as accuracy or top_k(5)", index + 1);
    int b = 0;
    while (b < NBUILTIN && strcmp(builtin_names[b], name) != 0)
        b++;
    RtMetricKind kind;
    int64_t k = 0;
    if (b < NBUILTIN) {
        kind = builtin_kinds[b];
        if (is_regression_metric(kind) != regression)
            return rt_errf(e, "recipe key " KEY ": %s is a %s metric, and this model's labels are %s", name,
                           regression ? "classification" : "regression", regression ? "values" : "classes");
        if (kind == RT_METRIC_TOPK) {
            if (parse_top_k(call ? v : NULL, classes, &k, e) != RT_OK)
                return RT_ERR;
        } else if (call) {
            return rt_errf(e, "recipe key " KEY ": %s takes no arguments", name);
        }
    } else if (!call && custom_output(g, name)) {
        kind = RT_METRIC_CUSTOM;
    } else {
        const char *near = closest(name, g);
        if (near)
            return rt_errf(e, "recipe key " KEY ": unknown metric '%s' (did you mean '%s'?)", name, near);
        return rt_errf(e, "recipe key " KEY ": unknown metric '%s' (the runtime computes accuracy, top_k(k), "
                       "precision, recall, f1, confusion_matrix, mae and mse)", name);
    }
    if (kind == RT_METRIC_CONFUSION && classes > RT_METRICS_MAX_CONFUSION)
        return rt_errf(e, "recipe key " KEY ": confusion_matrix is kept for at most %d classes, this model has %lld",
                       RT_METRICS_MAX_CONFUSION, (long long)classes);
    for (int i = 0; i < s->n; i++)
        if (s->kind[i] == kind && s->k[i] == k && (kind != RT_METRIC_CUSTOM || strcmp(s->name[i], name) == 0))
            return RT_OK;
    if (s->n == RT_MAX_METRICS)
        return rt_errf(e, "recipe key " KEY ": at most %d metrics", RT_MAX_METRICS);
    s->kind[s->n] = kind;
    s->k[s->n] = k;
    s->name[s->n] = kind == RT_METRIC_CUSTOM ? name : builtin_names[b];
    s->n++;
    return RT_OK;
}

int rt_metrics_parse(const json_t *recipe, int64_t classes, bool regression, const RtGraph *g, RtMetricSpec *s,
                     RtErr *e) {
    memset(s, 0, sizeof *s);
    const json_t *list = json_object_get(recipe, KEY);
    if (!list || json_is_null(list)) {
        s->n = 1;
        s->kind[0] = regression ? RT_METRIC_MAE : RT_METRIC_ACCURACY;
        s->name[0] = regression ? "mae" : "accuracy";
        return RT_OK;
    }
    if (!json_is_array(list))
        return rt_errf(e, "recipe key " KEY ": must be a list such as [accuracy, top_k(5)]");
    if (!regression && classes < 1)
        return rt_errf(e, "recipe key " KEY ": the model's logits give no number of classes");
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
        if (parse_item(v, i, classes, regression, g, s, e) != RT_OK)
            return RT_ERR;
    return RT_OK;
}

/* ---------------------------------------------------------------- counting */

static bool has(const RtMetricSpec *s, RtMetricKind k) {
    for (int i = 0; i < s->n; i++)
        if (s->kind[i] == k)
            return true;
    return false;
}

int rt_metrics_open(RtMetrics *m, const RtMetricSpec *s, int64_t classes, bool regression, RtErr *e) {
    memset(m, 0, sizeof *m);
    m->spec = *s;
    m->classes = classes;
    m->regression = regression;
    if (regression || classes < 1)
        return RT_OK;
    bool per_class = has(s, RT_METRIC_PRECISION) || has(s, RT_METRIC_RECALL) || has(s, RT_METRIC_F1) ||
                     has(s, RT_METRIC_CONFUSION);
    if (per_class) {
        m->tp = calloc((size_t)classes, sizeof *m->tp);
        m->true_count = calloc((size_t)classes, sizeof *m->true_count);
        m->pred_count = calloc((size_t)classes, sizeof *m->pred_count);
    }
    if (has(s, RT_METRIC_CONFUSION) && classes <= RT_METRICS_MAX_CONFUSION)
        m->confusion = calloc((size_t)(classes * classes), sizeof *m->confusion);
    if ((per_class && (!m->tp || !m->true_count || !m->pred_count)) || (has(s, RT_METRIC_CONFUSION) && !m->confusion)) {
        rt_metrics_close(m);
        return rt_errf(e, "out of memory for the metrics of %lld classes", (long long)classes);
    }
    return RT_OK;
}

void rt_metrics_reset(RtMetrics *m) {
    m->loss_sum = 0;
    m->samples = m->counted = m->correct = m->values = 0;
    m->abs_sum = m->sq_sum = 0;
    memset(m->topk_correct, 0, sizeof m->topk_correct);
    memset(m->custom_sum, 0, sizeof m->custom_sum);
    memset(m->custom_samples, 0, sizeof m->custom_samples);
    size_t c = (size_t)(m->classes > 0 ? m->classes : 0);
    if (m->tp) {
        memset(m->tp, 0, c * sizeof *m->tp);
        memset(m->true_count, 0, c * sizeof *m->true_count);
        memset(m->pred_count, 0, c * sizeof *m->pred_count);
    }
    if (m->confusion)
        memset(m->confusion, 0, c * c * sizeof *m->confusion);
}

void rt_metrics_close(RtMetrics *m) {
    free(m->tp);
    free(m->true_count);
    free(m->pred_count);
    free(m->confusion);
    m->tp = m->true_count = m->pred_count = m->confusion = NULL;
}

/* Whether logit a of class i ranks above logit b of class j: larger first, NaN above every number (as
   torch.topk and torch.argmax take it), the lower class first among equals. */
static bool ranks_above(double a, int64_t i, double b, int64_t j) {
    if (isnan(a))
        return !isnan(b) || i < j;
    if (isnan(b))
        return false;
    return a > b || (a == b && i < j);
}

/* The logits of one position, read as doubles whatever their dtype. */
static void load_row(RtDType t, const void *p, int64_t first, int64_t c, double *row) {
    if (t == RT_F32) {
        const float *f = (const float *)p + first;
        for (int64_t j = 0; j < c; j++)
            row[j] = f[j];
    } else if (t == RT_F64) {
        memcpy(row, (const double *)p + first, (size_t)c * sizeof *row);
    } else {
        for (int64_t j = 0; j < c; j++)
            row[j] = rt_load(t, p, first + j);
    }
}

static void count_classes(RtMetrics *m, const RtTensorSpec *ls, const void *logits, const RtTensorSpec *ys,
                          const void *labels, int64_t n) {
    int64_t nl, ny, c = m->classes;
    if (ls->rank < 1 || ls->shape[ls->rank - 1] != c || !rt_numel(ls, n, &nl) || !rt_numel(ys, n, &ny))
        return;
    int64_t positions = nl / c < ny ? nl / c : ny;
    bool topk = has(&m->spec, RT_METRIC_TOPK);
    double *row = malloc((size_t)c * sizeof *row);
    if (!row)
        return;
    for (int64_t p = 0; p < positions; p++) {
        double y = rt_load(ys->dtype, labels, p);
        if (!(y >= 0 && y < (double)c) || y != floor(y))
            continue; /* an ignored label (-100), or no class at all */
        int64_t label = (int64_t)y;
        load_row(ls->dtype, logits, p * c, c, row);
        int64_t pred = 0;
        for (int64_t j = 1; j < c; j++)
            if (ranks_above(row[j], j, row[pred], pred))
                pred = j;
        m->counted++;
        m->correct += pred == label;
        if (topk) {
            int64_t above = 0; /* the label's rank among the logits */
            for (int64_t j = 0; j < c; j++)
                above += j != label && ranks_above(row[j], j, row[label], label);
            for (int i = 0; i < m->spec.n; i++)
                if (m->spec.kind[i] == RT_METRIC_TOPK)
                    m->topk_correct[i] += above < m->spec.k[i];
        }
        if (m->tp) {
            m->tp[label] += pred == label;
            m->true_count[label]++;
            m->pred_count[pred]++;
        }
        if (m->confusion)
            m->confusion[label * c + pred]++;
    }
    free(row);
}

static void count_values(RtMetrics *m, const RtTensorSpec *ls, const void *outputs, const RtTensorSpec *ys,
                         const void *labels, int64_t n) {
    int64_t no, ny;
    if (!rt_numel(ls, n, &no) || !rt_numel(ys, n, &ny))
        return;
    int64_t count = no < ny ? no : ny;
    for (int64_t i = 0; i < count; i++) {
        double d = rt_load(ls->dtype, outputs, i) - rt_load(ys->dtype, labels, i);
        m->abs_sum += fabs(d);
        m->sq_sum += d * d;
    }
    m->values += count;
}

void rt_metrics_batch(RtMetrics *m, const RtTensorSpec *ls, const void *logits, const RtTensorSpec *ys,
                      const void *labels, int64_t n, double loss) {
    m->loss_sum += loss * (double)n;
    m->samples += n;
    if (!ls || !ys || !logits || !labels)
        return;
    if (m->regression)
        count_values(m, ls, logits, ys, labels, n);
    else if (m->classes > 0)
        count_classes(m, ls, logits, ys, labels, n);
}

void rt_metrics_custom(RtMetrics *m, int i, double value, int64_t n) {
    if (i < 0 || i >= m->spec.n)
        return;
    m->custom_sum[i] += value * (double)n;
    m->custom_samples[i] += n;
}

/* ---------------------------------------------------------------- reducing */

static double ratio(double num, double den) { return den != 0 ? num / den : 0.0; }

/* Class c's precision, recall or F1 (0 where 0 / 0). */
static double class_score(const RtMetrics *m, RtMetricKind k, int64_t c) {
    double tp = (double)m->tp[c], fp = (double)(m->pred_count[c] - m->tp[c]),
           fn = (double)(m->true_count[c] - m->tp[c]);
    if (k == RT_METRIC_PRECISION)
        return ratio(tp, tp + fp);
    if (k == RT_METRIC_RECALL)
        return ratio(tp, tp + fn);
    return ratio(2 * tp, 2 * tp + fp + fn);
}

/* The macro average: the mean over the classes that have a true or a predicted sample. */
static double macro(const RtMetrics *m, RtMetricKind k) {
    double sum = 0;
    int64_t present = 0;
    for (int64_t c = 0; c < m->classes; c++) {
        if (m->true_count[c] == 0 && m->pred_count[c] == 0)
            continue;
        sum += class_score(m, k, c);
        present++;
    }
    return ratio(sum, (double)present);
}

/* Spec index i's value; NAN where nothing was counted. */
static double spec_value(const RtMetrics *m, int i) {
    switch (m->spec.kind[i]) {
    case RT_METRIC_ACCURACY:
        return m->counted ? (double)m->correct / (double)m->counted : NAN;
    case RT_METRIC_TOPK:
        return m->counted ? (double)m->topk_correct[i] / (double)m->counted : NAN;
    case RT_METRIC_PRECISION:
    case RT_METRIC_RECALL:
    case RT_METRIC_F1:
        return m->counted && m->tp ? macro(m, m->spec.kind[i]) : NAN;
    case RT_METRIC_MAE:
        return m->values ? m->abs_sum / (double)m->values : NAN;
    case RT_METRIC_MSE:
        return m->values ? m->sq_sum / (double)m->values : NAN;
    case RT_METRIC_CUSTOM:
        return m->custom_samples[i] ? m->custom_sum[i] / (double)m->custom_samples[i] : NAN;
    case RT_METRIC_CONFUSION:
        break;
    }
    return NAN;
}

/* The name of spec index i as the JSON and the console show it ("top5_accuracy"). */
static const char *spec_name(const RtMetrics *m, int i, char *buf, size_t n) {
    if (m->spec.kind[i] != RT_METRIC_TOPK)
        return m->spec.name[i];
    snprintf(buf, n, "top%lld_accuracy", (long long)m->spec.k[i]);
    return buf;
}

double rt_metrics_value(const RtMetrics *m, const char *name) {
    if (strcmp(name, "loss") == 0)
        return m->samples ? m->loss_sum / (double)m->samples : NAN;
    char buf[48];
    for (int i = 0; i < m->spec.n; i++)
        if (m->spec.kind[i] != RT_METRIC_CONFUSION && strcmp(spec_name(m, i, buf, sizeof buf), name) == 0)
            return spec_value(m, i);
    return NAN;
}

bool rt_metrics_computes(const RtMetrics *m, const char *name) {
    if (strcmp(name, "loss") == 0)
        return true;
    char buf[48];
    for (int i = 0; i < m->spec.n; i++)
        if (m->spec.kind[i] != RT_METRIC_CONFUSION && strcmp(spec_name(m, i, buf, sizeof buf), name) == 0)
            return true;
    return false;
}

void rt_metrics_names(const RtMetrics *m, char *buf, size_t n) {
    if (n == 0)
        return;
    snprintf(buf, n, "loss");
    char name[48];
    for (int i = 0; i < m->spec.n; i++) {
        size_t len = strlen(buf);
        if (m->spec.kind[i] != RT_METRIC_CONFUSION && len < n)
            snprintf(buf + len, n - len, ", %s", spec_name(m, i, name, sizeof name));
    }
}

static json_t *number(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static void set(json_t *o, const char *prefix, const char *name, const char *suffix, json_t *v) {
    char key[128];
    snprintf(key, sizeof key, "%s%s%s", prefix, name, suffix);
    json_object_set_new(o, key, v);
}

void rt_metrics_json(const RtMetrics *m, json_t *o, const char *prefix) {
    set(o, prefix, "loss", "", number(rt_metrics_value(m, "loss")));
    char buf[48];
    for (int i = 0; i < m->spec.n; i++) {
        RtMetricKind k = m->spec.kind[i];
        const char *name = spec_name(m, i, buf, sizeof buf);
        if (k == RT_METRIC_CONFUSION) {
            json_t *rows = json_array();
            for (int64_t t = 0; m->confusion && t < m->classes; t++) {
                json_t *row = json_array();
                for (int64_t p = 0; p < m->classes; p++)
                    json_array_append_new(row, json_integer(m->confusion[t * m->classes + p]));
                json_array_append_new(rows, row);
            }
            set(o, prefix, name, "", rows);
            continue;
        }
        set(o, prefix, name, "", number(spec_value(m, i)));
        if ((k == RT_METRIC_PRECISION || k == RT_METRIC_RECALL || k == RT_METRIC_F1) && m->tp) {
            json_t *per = json_array();
            for (int64_t c = 0; c < m->classes; c++)
                json_array_append_new(per, m->counted ? number(class_score(m, k, c)) : json_null());
            set(o, prefix, name, "_per_class", per);
        }
    }
}

typedef struct Line {
    char *buf;
    size_t n, len;
} Line;

static void add(Line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(Line *l, const char *fmt, ...) {
    if (l->len + 1 >= l->n)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(l->buf + l->len, l->n - l->len, fmt, ap);
    va_end(ap);
    if (w > 0)
        l->len = l->len + (size_t)w < l->n ? l->len + (size_t)w : l->n - 1;
}

void rt_metrics_line(const RtMetrics *m, char *buf, size_t n) {
    if (n == 0)
        return;
    Line l = {buf, n, 0};
    buf[0] = 0;
    add(&l, "loss %.4f", rt_metrics_value(m, "loss"));
    char name[48];
    for (int i = 0; i < m->spec.n; i++) {
        RtMetricKind k = m->spec.kind[i];
        double v = spec_value(m, i);
        const char *s = spec_name(m, i, name, sizeof name);
        if (k == RT_METRIC_ACCURACY || k == RT_METRIC_TOPK)
            add(&l, ", %s %.1f%%", s, 100.0 * v);
        else if (k == RT_METRIC_PRECISION || k == RT_METRIC_RECALL || k == RT_METRIC_F1)
            add(&l, ", %s %.3f", s, v);
        else if (k != RT_METRIC_CONFUSION)
            add(&l, ", %s %.4g", s, v);
    }
}
