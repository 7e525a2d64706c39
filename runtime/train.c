/* train.c: the training loop of a produced executable and the evaluation passes: batches in the epoch's
   order (gathered by the loader's workers while the previous step runs), the learning rate of each step from
   the schedule, the step itself (the fused train graph, or the grads graph and the runtime's optimizer), and
   the metrics of every batch. */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- scores */

/* Whether the labels are values (regression) rather than classes: the label input is a float. */
static bool regression_labels(const RtManifest *m) {
    const RtTensorSpec *y = rt_manifest_input(m, "label");
    return y && (y->dtype == RT_F32 || y->dtype == RT_F64);
}

int rt_scores_open(RtMetrics *s, const RtManifest *m, const json_t *recipe, RtErr *e) {
    memset(s, 0, sizeof *s);
    bool regression = regression_labels(m);
    int64_t classes = regression ? 0 : rt_manifest_classes(m);
    const RtGraph *g = m->eval.present ? &m->eval : m->grads.present ? &m->grads : &m->train;
    RtMetricSpec spec;
    if (rt_metrics_parse(recipe, classes, regression, g, &spec, e) != RT_OK)
        return RT_ERR;
    return rt_metrics_open(s, &spec, classes, regression, e);
}

void rt_scores_batch(RtMetrics *s, const RtBinding *b, int64_t n) {
    const RtTensorSpec *a = b->g->args;
    double loss = rt_output_scalar(b, b->loss_arg);
    if (b->logits_arg >= 0 && b->y_arg >= 0)
        rt_metrics_batch(s, &a[b->logits_arg], b->args[b->logits_arg], &a[b->y_arg], b->args[b->y_arg], n, loss);
    else
        rt_metrics_batch(s, NULL, NULL, NULL, NULL, n, loss);
    for (int i = 0; i < s->spec.n; i++) {
        if (s->spec.kind[i] != RT_METRIC_CUSTOM)
            continue;
        for (int k = 0; k < b->nmetric; k++)
            if (strcmp(a[b->metric_arg[k]].name + 7, s->spec.name[i]) == 0)
                rt_metrics_custom(s, i, rt_output_scalar(b, b->metric_arg[k]), n);
    }
}

void rt_evaluate_scores(RtBinding *b, RtModel *md, const RtDataset *d, const int64_t *subset, int64_t count,
                        int64_t batch, RtMetrics *s) {
    rt_metrics_reset(s);
    if (batch > b->max_n)
        batch = b->max_n;
    int64_t *idx = malloc((size_t)(batch > 0 ? batch : 1) * sizeof *idx);
    if (!idx)
        return; /* out of memory: no samples, NaN scores rather than made-up ones */
    /* several processes: each its contiguous share, the counts summed */
    int64_t lo, hi;
    rt_dist_share(count, &lo, &hi);
    for (int64_t start = lo; start < hi; start += batch) {
        int64_t n = hi - start < batch ? hi - start : batch;
        for (int64_t i = 0; i < n; i++)
            idx[i] = subset ? subset[start + i] : start + i;
        rt_run_batch(b, md, d, idx, n);
        rt_scores_batch(s, b, n);
    }
    free(idx);
    RtErr e;
    if (rt_dist_reduce_metrics(s, &e) != RT_OK) /* a timeout has ended the job; the other failure is memory */
        rt_metrics_reset(s);
}

/* ---------------------------------------------------------------- the recipe */
int rt_early_stop_parse(const json_t *recipe, RtEarlyStop *es, RtErr *e) {
    memset(es, 0, sizeof *es);
    const json_t *v = json_object_get(recipe, "early_stop");
    if (!v || json_is_null(v))
        return RT_OK;
    static const char *const known[] = {"monitor", "patience", "min_delta", "mode"};
    if (!json_is_string(json_object_get(v, "call")) || strcmp(json_string_value(json_object_get(v, "call")),
                                                              "early_stop") != 0)
        return rt_errf(e, "recipe key early_stop: expected early_stop(monitor = val_loss, patience = 3, min_delta = 0)");
    if (rt_call_check(v, "early_stop", "early_stop(monitor, patience = 3, min_delta = 0, mode = \"min\")", known, 4, 2,
                      e) != RT_OK ||
        rt_call_int(v, "early_stop", "patience", 1, 3, 0, &es->patience, e) != RT_OK ||
        rt_call_num(v, "early_stop", "min_delta", 2, 0, 0, INFINITY, &es->min_delta, e) != RT_OK)
        return RT_ERR;
    const json_t *mon = rt_call_arg(v, "monitor", 0);
    es->monitor = json_is_string(mon) ? json_string_value(mon) : json_string_value(json_object_get(mon, "ident"));
    if (!es->monitor || (strncmp(es->monitor, "train_", 6) && strncmp(es->monitor, "val_", 4) &&
                         strncmp(es->monitor, "test_", 5)))
        return rt_errf(e, "recipe key early_stop: monitor must name a score of a pass: train_loss, val_loss, "
                          "test_accuracy, ...");
    const json_t *mode = rt_call_arg(v, "mode", -1);
    const char *name = strchr(es->monitor, '_') + 1;
    es->maximize = strcmp(name, "loss") && strcmp(name, "mae") && strcmp(name, "mse");
    if (mode) {
        const char *m = json_string_value(mode);
        if (!m || (strcmp(m, "min") && strcmp(m, "max")))
            return rt_errf(e, "recipe key early_stop: mode must be \"min\" or \"max\"");
        es->maximize = !strcmp(m, "max");
    }
    es->present = true;
    return RT_OK;
}

static bool has_source(const json_t *recipe, const char *key) {
    const json_t *v = json_object_get(recipe, key);
    return v && !json_is_null(v);
}

/* early_stop's monitor names a pass that runs and a score that pass computes: otherwise its value would be
   NaN at every epoch and training would stop after `patience` epochs for no reason. */
static int check_monitor(const RtEarlyStop *es, const json_t *recipe, const RtMetrics *met, RtErr *e) {
    if (!es->present)
        return RT_OK;
    const char *mon = es->monitor;
    if (!strncmp(mon, "val_", 4) && !has_source(recipe, "validation"))
        return rt_errf(e, "recipe key early_stop: monitor %.80s needs a validation set (validation = 0.1, or a data "
                       "source)", mon);
    if (!strncmp(mon, "test_", 5) && !has_source(recipe, "test"))
        return rt_errf(e, "recipe key early_stop: monitor %.80s needs a test set (recipe key test)", mon);
    const char *name = strchr(mon, '_') + 1;
    if (!rt_metrics_computes(met, name)) {
        char names[512];
        rt_metrics_names(met, names, sizeof names);
        return rt_errf(e, "recipe key early_stop: monitor %.80s names a score that is not computed (the scores: %s; "
                       "recipe key metrics adds others)", mon, names);
    }
    return RT_OK;
}

int rt_recipe_check(const RtManifest *m, const json_t *recipe, RtErr *e) {
    RtOptimSpec os;
    RtSched sched;
    RtMetrics met;
    RtLoaderRecipe lr;
    RtEarlyStop es;
    RtDataSpec ds;
    if (rt_optim_spec_parse(recipe, &os, e) != RT_OK || rt_sched_parse(recipe, &sched, e) != RT_OK ||
        rt_loader_recipe(recipe, m->ninputs ? &m->inputs[0] : NULL, &lr, e) != RT_OK ||
        rt_early_stop_parse(recipe, &es, e) != RT_OK)
        return RT_ERR;
    static const char *const sources[] = {"data", "test", "validation"};
    for (int i = 0; i < 3; i++) {
        const json_t *v = json_object_get(recipe, sources[i]);
        if (v && !json_is_null(v) && !(i == 2 && json_is_number(v)) &&
            rt_data_spec_parse(v, m, sources[i], &ds, e) != RT_OK)
            return RT_ERR;
    }
    if (rt_scores_open(&met, m, recipe, e) != RT_OK)
        return RT_ERR;
    int rc = check_monitor(&es, recipe, &met, e);
    rt_metrics_close(&met);
    return rc;
}

/* ---------------------------------------------------------------- the memory plan */

/* Whether a run with recipe trains through the fused train graph (the compiled optimizer). */
static bool runs_fused(const RtManifest *m, const RtOptimSpec *run) {
    RtOptimSpec compiled;
    RtErr ignored;
    return m->train.present && rt_optim_spec_parse(m->recipe, &compiled, &ignored) == RT_OK &&
           rt_optim_is_fused(run, &compiled);
}

static bool bytes_at(int64_t c, int64_t per_n, int64_t n, int64_t *out) {
    return !__builtin_mul_overflow(per_n, n, out) && !__builtin_add_overflow(*out, c, out);
}

int rt_plan_peak(const RtManifest *m, const json_t *recipe, int64_t n, RtPeak *out, RtErr *e) {
    memset(out, 0, sizeof *out);
    RtOptimSpec spec;
    if (rt_optim_spec_parse(recipe, &spec, e) != RT_OK)
        return RT_ERR;
    bool fused = runs_fused(m, &spec);
    const RtGraph *g = fused ? &m->train : &m->grads;
    if (!g->present)
        return rt_errf(e, "the model has no train or grads graph");
    out->graph = g->name;
    json_t *mem = json_object_get(json_object_get(json_object_get(m->root, "graphs"), g->name), "memory");
    json_t *in = json_object_get(mem, "inputs");
    if (!json_is_integer(json_object_get(mem, "params")) || !json_is_integer(json_object_get(mem, "state")) ||
        !json_is_integer(json_array_get(in, 0)) || !json_is_integer(json_array_get(in, 1)))
        return rt_errf(e, "manifest: graph '%s' has no memory plan", g->name);
    out->params = json_integer_value(json_object_get(mem, "params"));
    out->state = fused ? json_integer_value(json_object_get(mem, "state")) : rt_optim_state_bytes(&spec, m);
    for (int i = 0; !fused && i < g->nargs; i++) {
        int64_t k;
        if (g->args[i].role == RT_ROLE_OUTPUT && !strncmp(g->args[i].name, "grad.", 5) && rt_numel(&g->args[i], n, &k))
            out->grads += k * (int64_t)rt_dtype_size(g->args[i].dtype);
    }
    if (!bytes_at(g->arena_const, g->arena_per_n, n, &out->arena) ||
        !bytes_at(json_integer_value(json_array_get(in, 0)), json_integer_value(json_array_get(in, 1)), n,
                  &out->inputs) ||
        __builtin_add_overflow(out->arena, out->params, &out->total) ||
        __builtin_add_overflow(out->total, out->state, &out->total) ||
        __builtin_add_overflow(out->total, out->grads, &out->total) ||
        __builtin_add_overflow(out->total, out->inputs, &out->total))
        return rt_errf(e, "the train step's memory at batch %lld passes 2^63 bytes", (long long)n);
    return RT_OK;
}

void rt_peak_print(FILE *f, const RtPeak *p, int64_t n) {
    fprintf(f, "peak: %lld bytes at batch %lld (arena %lld, parameters %lld, optimizer state %lld, batch inputs %lld",
            (long long)p->total, (long long)n, (long long)p->arena, (long long)p->params, (long long)p->state,
            (long long)p->inputs);
    if (p->grads)
        fprintf(f, ", gradients %lld", (long long)p->grads);
    fprintf(f, ")\n");
}

/* ---------------------------------------------------------------- the trainer */

volatile sig_atomic_t rt_stop_signal;

/* --lr replaces the optimizer's learning rate: that of every group that takes the optimizer's own. */
static void apply_lr_flag(RtOptimSpec *s, const RtConfig *cfg) {
    if (!cfg->has_lr) /* the recipe's lr (after --set) or --lr */
        return;
    double own = s->groups[0].h.lr;
    for (int g = 0; g < s->ngroups; g++)
        if (s->groups[g].h.lr == own)
            s->groups[g].h.lr = cfg->lr;
}

static int open_step(RtTrainer *t, RtErr *e) {
    RtModel *md = t->md;
    const RtManifest *m = md->m;
    const RtConfig *cfg = t->cfg;
    if (rt_optim_spec_parse(cfg->recipe, &t->ospec, e) != RT_OK)
        return RT_ERR;
    apply_lr_flag(&t->ospec, cfg);
    /* several processes average their gradients before the update: the runtime's optimizer */
    t->fused = !rt_dist_on() && m->train.fn && runs_fused(m, &t->ospec);
    if (!t->fused && !(m->grads.present && m->grads.fn))
        return rt_errf(e, "this executable was compiled without a grads graph, so it trains only with the optimizer "
                          "it was compiled with");
    int64_t max_n = cfg->batch < t->count ? cfg->batch : t->count;
    max_n = (max_n + rt_dist.size - 1) / rt_dist.size; /* a rank's share of a batch */
    if (rt_bind(&t->b, md, t->fused ? &m->train : &m->grads, cfg, max_n > 0 ? max_n : 1, e) != RT_OK)
        return RT_ERR;
    t->ngroups = t->ospec.ngroups;
    for (int g = 0; g < t->ngroups; g++)
        t->base_lr[g] = t->lr[g] = t->ospec.groups[g].h.lr;
    if (t->fused)
        return RT_OK;
    if (rt_optim_open(&t->opt, &t->ospec, m, e) != RT_OK)
        return RT_ERR;
    t->has_opt = true;
    md->opt_tensors = t->opt.tensors;
    md->nopt_tensors = t->opt.ntensors;
    t->grads = calloc((size_t)m->nparams + 1, sizeof *t->grads);
    if (!t->grads)
        return rt_errf(e, "out of memory");
    if (rt_dist_on()) { /* moves the gradient outputs into buckets: before they are taken below */
        t->has_sync = true;
        if (rt_gradsync_open(&t->sync, &t->b, m, e) != RT_OK)
            return RT_ERR;
    }
    for (int p = 0; p < m->nparams; p++) {
        if (t->b.grad_arg[p] >= 0)
            t->grads[p] = t->b.args[t->b.grad_arg[p]];
        else if (t->opt.group[p] >= 0)
            return rt_errf(e, "manifest: the grads graph gives no gradient of the trained parameter '%s'",
                           m->params[p].t.name);
    }
    return RT_OK;
}

int rt_trainer_open(RtTrainer *t, RtModel *md, const RtConfig *cfg, const RtDataset *d, const int64_t *subset,
                    int64_t count, RtErr *e) {
    memset(t, 0, sizeof *t);
    t->md = md;
    t->cfg = cfg;
    t->d = d;
    t->subset = subset;
    t->count = count;
    const RtManifest *m = md->m;
    RtLoaderRecipe lr;
    if (open_step(t, e) != RT_OK || rt_sched_parse(cfg->recipe, &t->sched, e) != RT_OK ||
        rt_scores_open(&t->scores, m, cfg->recipe, e) != RT_OK)
        return RT_ERR;
    const RtTensorSpec *x = t->b.x_arg >= 0 ? &t->b.g->args[t->b.x_arg] : NULL;
    if (rt_loader_recipe(cfg->recipe, x, &lr, e) != RT_OK)
        return RT_ERR;
    t->drop_last = lr.drop_last;
    t->tf = lr.tf;
    /* optimizer steps: one per `accumulate` batches, and one for a partial group at the end of an epoch */
    int64_t nb = rt_batch_count_drop(count, cfg->batch, t->drop_last), k = t->ospec.accumulate > 0 ? t->ospec.accumulate : 1;
    t->steps_per_epoch = nb / k + (nb % k != 0);
    if (x) {
        RtLoaderOpts o = {.workers = lr.workers, .tf = &t->tf, .train = true, .seed = cfg->seed};
        if (rt_loader_open_opts(&t->ld, d, x, t->b.y_arg >= 0 ? &t->b.g->args[t->b.y_arg] : NULL, t->b.max_n, &o,
                                e) != RT_OK)
            return RT_ERR;
        t->has_ld = true;
    }
    return RT_OK;
}

void rt_trainer_close(RtTrainer *t) {
    if (t->has_ld)
        rt_loader_close(&t->ld);
    if (t->has_opt) {
        t->md->opt_tensors = NULL;
        t->md->nopt_tensors = 0;
        rt_optim_close(&t->opt);
    }
    rt_metrics_close(&t->scores);
    if (t->has_sync)
        rt_gradsync_close(&t->sync);
    rt_unbind(&t->b);
    free(t->grads);
    memset(t, 0, sizeof *t);
}

const char *rt_trainer_kind(const RtTrainer *t) {
    static const char *const names[] = {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad"};
    static char buf[64];
    snprintf(buf, sizeof buf, "%s%s", names[t->ospec.kind], t->fused ? " (fused into the train step)" : "");
    return buf;
}

/* The learning rates of the next optimizer step: the schedule at (epoch, the optimizer steps so far). */
static int set_lr(RtTrainer *t, int64_t epoch, RtErr *e) {
    int64_t step = t->has_opt ? t->opt.steps : t->md->step;
    for (int g = 0; g < t->ngroups; g++)
        if (rt_sched_lr(&t->sched, t->base_lr[g], epoch, step, t->steps_per_epoch, t->cfg->epochs, &t->lr[g], e) !=
            RT_OK)
            return RT_ERR;
    if (t->b.lr_arg >= 0)
        rt_store(t->b.g->args[t->b.lr_arg].dtype, t->b.args[t->b.lr_arg], 0, t->lr[0]);
    return RT_OK;
}

/* One pass of batches over order[0..count): the loop that rt_trainer_epoch (with a trainer) and
   rt_train_epoch (without: the fused graph at a fixed lr) share. */
typedef struct Loop {
    RtTrainer *t; /* NULL: no schedule, optimizer or scores */
    RtBinding *b;
    RtModel *md;
    RtLoader *ld; /* NULL: gather on this thread */
    const RtDataset *d;
    const int64_t *order;
    int64_t count, nb, batch, epoch, k0; /* k0: the first batch (a resumed epoch starts later) */
    FILE *out;
    double loss_sum;
    bool bar;          /* out is a terminal: a progress bar */
    double t0, shown;  /* the epoch's start and the bar's last update, seconds */
} Loop;

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void clock_text(double s, char *buf, size_t n) {
    long v = s > 0 && s < 1e7 ? (long)s : 0;
    if (v >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", v / 3600, v / 60 % 60, v % 60);
    else
        snprintf(buf, n, "%02ld:%02ld", v / 60, v % 60);
}

/* Batch k (0-based) of the epoch is done: as tqdm draws it on a terminal, at most ten times a second,
    37%|███▋      | 347/938 [00:02<00:03, 160.2it/s, loss=0.5120]
   or Quickstart's line every 100 batches elsewhere. */
static void progress(Loop *L, int64_t k, int64_t start, int64_t n, double loss) {
    if (!L->out)
        return;
    if (!L->bar) {
        if (k % 100 == 0) {
            fprintf(L->out, "loss: %f  [%5lld/%5lld]\n", loss, (long long)(start + n), (long long)L->count);
            fflush(L->out);
        }
        return;
    }
    double now = seconds();
    bool last = k + 1 == L->nb;
    if (!last && now - L->shown < 0.1)
        return;
    L->shown = now;
    int64_t done = k + 1 - L->k0, total = L->nb - L->k0;
    double rate = now > L->t0 ? (double)done / (now - L->t0) : 0, frac = L->nb ? (double)(k + 1) / (double)L->nb : 1;
    char bar[64] = "", el[32], left[32];
    static const char *const eighths[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
    int cells = (int)(frac * 80); /* 10 cells of 8 eighths */
    size_t used = 0;
    for (int c = 0; c < 10; c++) {
        const char *s = cells >= 8 * (c + 1) ? "█" : cells > 8 * c ? eighths[cells - 8 * c] : " ";
        used += (size_t)snprintf(bar + used, sizeof bar - used, "%s", s);
    }
    clock_text(now - L->t0, el, sizeof el);
    clock_text(rate > 0 ? (double)(total - done) / rate : 0, left, sizeof left);
    fprintf(L->out, "\r%3d%%|%s| %lld/%lld [%s<%s, %.1fit/s, loss=%.4f]%s", (int)(frac * 100), bar, (long long)(k + 1),
            (long long)L->nb, el, left, rate, loss, last ? "\n" : "");
    fflush(L->out);
}

/* After the update of batch k: a checkpoint every `every` optimizer steps (never between the batches of one
   accumulated step, and not after the epoch's last batch, whose checkpoint the driver writes with the epoch's
   results). */
static int maybe_checkpoint(Loop *L, int64_t k, RtErr *e) {
    RtTrainer *t = L->t;
    if (!t->every || !t->checkpoint || k + 1 == L->nb || (t->has_opt && t->opt.pending))
        return RT_OK;
    int64_t steps = t->has_opt ? t->opt.steps : L->md->step;
    return steps % t->every == 0 ? t->checkpoint(t->ctx, L->epoch, k + 1, e) : RT_OK;
}

/* Batch k on this process: its positions [*ls, *ls + *ln) of the order (all of the batch alone, a rank's
   share with several processes: dist.h); returns the global batch's size. */
static int64_t local_batch(const Loop *L, int64_t k, int64_t *ls, int64_t *ln) {
    int64_t start = k * L->batch, n = L->count - start < L->batch ? L->count - start : L->batch, lo, hi;
    rt_dist_share(n, &lo, &hi);
    *ls = start + lo;
    *ln = hi - lo;
    return n;
}

/* Starts gathering batch k into the loader's free buffers; false when this process has no samples in it. */
static bool request(Loop *L, int64_t k) {
    int64_t ls, ln;
    local_batch(L, k, &ls, &ln);
    if (ln > 0)
        rt_loader_request(L->ld, L->order + ls, ln);
    return ln > 0;
}

/* The checks of a step, and its loss over the global batch. Alone: the loss (and with --detect-anomaly the
   kernels and gradients) of this process. With several processes each checks its own, and the loss, weighted
   by the rank's share w, and the verdict are summed, so that every rank stops at the same step. */
static int step_checks(Loop *L, bool ran, double w, double *loss, bool *stop, RtErr *e) {
    RtTrainer *t = L->t;
    int rc = ran ? rt_anomaly_check_run(L->b, L->md, L->md->step, true, t->check_grads, e) : RT_OK;
    *stop = rt_stop_signal != 0;
    if (!rt_dist_on())
        return rc;
    /* a signal that reached some ranks before this step and others after it stops them all here */
    double sum[3] = {ran ? *loss * w : 0.0, rc != RT_OK, *stop};
    if (rt_dist_allreduce(sum, 3, RT_DIST_F64, e) != RT_OK)
        return RT_ERR;
    *loss = sum[0];
    *stop = sum[2] > 0;
    if (sum[1] > 0 && rc == RT_OK)
        return rt_errf(e, "step %lld: another process stopped at a non-finite value (its message names it)",
                       (long long)L->md->step);
    return rc;
}

static int run_epoch(Loop *L, RtErr *e) {
    RtBinding *b = L->b;
    RtTrainer *t = L->t;
    bool per_step = t && rt_sched_per_step(&t->sched);
    bool sync = t && t->has_sync;
    L->bar = L->out && isatty(fileno(L->out));
    L->t0 = L->shown = seconds();
    int rc = t ? set_lr(t, L->epoch, e) : RT_OK;
    bool requested = false; /* a batch is being gathered into the loader's buffers */
    if (L->ld && L->k0 < L->nb && rc == RT_OK)
        requested = request(L, L->k0);
    for (int64_t k = L->k0; k < L->nb && rc == RT_OK; k++) {
        int64_t ls, ln, n = local_batch(L, k, &ls, &ln);
        bool ran = ln > 0; /* a rank may have no samples in the last batch */
        if (per_step && k > L->k0 && (rc = set_lr(t, L->epoch, e)) != RT_OK)
            break;
        if (sync)
            rt_gradsync_begin(&t->sync, (double)ln / (double)n);
        if (L->ld) {
            /* batch k's buffers in, then batch k + 1 requested while step k runs */
            if (requested) {
                void *x, *y = NULL;
                rt_loader_wait(L->ld, &x, &y);
                requested = false;
                b->args[b->x_arg] = x;
                if (b->y_arg >= 0)
                    b->args[b->y_arg] = y;
            }
            if (k + 1 < L->nb)
                requested = request(L, k + 1);
            if (ran)
                rt_run_loaded(b, L->md, ln);
        } else if (ran) {
            rt_run_batch(b, L->md, L->d, L->order + ls, ln);
        }
        if (sync && (rc = rt_gradsync_end(&t->sync, ran, e)) != RT_OK)
            break;
        L->md->step++;
        double loss = ran ? rt_output_scalar(b, b->loss_arg) : 0.0;
        /* a non-finite loss (or, with --detect-anomaly, kernel output or gradient) stops the run before the
           runtime's optimizer applies it */
        bool stop = false;
        if (t && (rc = step_checks(L, ran, (double)ln / (double)n, &loss, &stop, e)) != RT_OK)
            break;
        L->loss_sum += loss;
        if (t && t->has_opt)
            rt_optim_feed(&t->opt, L->md->params, t->grads, t->lr);
        if (t && ran)
            rt_scores_batch(&t->scores, b, ln);
        progress(L, k, k * L->batch, n, loss);
        if (t && (rc = maybe_checkpoint(L, k, e)) != RT_OK)
            break;
        if (stop && k + 1 < L->nb && !(t->has_opt && t->opt.pending)) {
            t->stop_batch = k + 1;
            rc = RT_STOPPED;
            break;
        }
    }
    if (requested) { /* stopped early: the batch in flight lands before its buffers go */
        void *x, *y;
        rt_loader_wait(L->ld, &x, &y);
    }
    if (t && t->has_opt && rc == RT_OK)
        rt_optim_flush(&t->opt, L->md->params, t->lr);
    if (L->ld) {
        b->args[b->x_arg] = b->owned[b->x_arg];
        if (b->y_arg >= 0)
            b->args[b->y_arg] = b->owned[b->y_arg];
    }
    /* the epoch's training metrics over every process's samples */
    if (t && rc == RT_OK)
        rc = rt_dist_reduce_metrics(&t->scores, e);
    return rc;
}

int rt_trainer_epoch(RtTrainer *t, int64_t epoch, FILE *out, RtErr *e) {
    int64_t *order = malloc((size_t)(t->count > 0 ? t->count : 1) * sizeof *order);
    if (!order)
        return rt_errf(e, "out of memory");
    rt_epoch_order_of(t->subset, t->count, t->cfg->shuffle, t->cfg->seed, epoch, order);
    rt_metrics_reset(&t->scores);
    if (t->has_ld)
        rt_loader_set_epoch(&t->ld, epoch);
    Loop L = {.t = t, .b = &t->b, .md = t->md, .ld = t->has_ld ? &t->ld : NULL, .d = t->d, .order = order,
              .count = t->count, .nb = rt_batch_count_drop(t->count, t->cfg->batch, t->drop_last),
              .batch = t->cfg->batch, .epoch = epoch, .k0 = t->start_batch, .out = out};
    t->start_batch = 0;
    int rc = run_epoch(&L, e);
    free(order);
    return rc;
}

/* ---------------------------------------------------------------- the bare epoch */

double rt_train_epoch(RtBinding *b, RtModel *md, RtLoader *ld, const RtDataset *d, const RtConfig *cfg,
                      int64_t epoch, FILE *out) {
    int64_t *order = malloc((size_t)(d->count > 0 ? d->count : 1) * sizeof *order);
    if (!order)
        return NAN;
    rt_epoch_order(d->count, cfg->shuffle, cfg->seed, epoch, order);
    Loop L = {.b = b, .md = md, .ld = b->x_arg >= 0 ? ld : NULL, .d = d, .order = order, .count = d->count,
              .nb = rt_batch_count(d->count, cfg->batch), .batch = cfg->batch, .epoch = epoch, .out = out};
    run_epoch(&L, NULL);
    free(order);
    return L.nb ? L.loss_sum / (double)L.nb : NAN;
}
