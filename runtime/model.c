/* model.c: the model at run time: its parameter and optimizer-state buffers, and the binding of a graph's
   args to buffers (train.c runs the bound graphs over a dataset). */
#include "rt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void *alloc_tensor(const RtTensorSpec *t, int64_t n, int64_t *bytes_out) {
    int64_t numel;
    size_t bytes;
    if (!rt_numel(t, n, &numel) || __builtin_mul_overflow((size_t)numel, rt_dtype_size(t->dtype), &bytes) ||
        bytes > SIZE_MAX - 64)
        return NULL;
    size_t padded = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, padded ? padded : 64);
    if (p)
        memset(p, 0, padded ? padded : 64);
    if (bytes_out)
        *bytes_out = (int64_t)bytes;
    return p;
}

int rt_model_init(RtModel *md, const RtManifest *m, uint64_t seed, RtErr *e) {
    memset(md, 0, sizeof *md);
    md->m = m;
    md->params = calloc((size_t)m->nparams + 1, sizeof *md->params);
    if (!md->params)
        return rt_errf(e, "out of memory");
    for (int i = 0; i < m->nparams; i++) {
        if (!(md->params[i] = alloc_tensor(&m->params[i].t, 1, NULL)))
            return rt_errf(e, "out of memory for parameter '%s'", m->params[i].t.name);
        rt_param_init(&m->params[i], i, seed, md->params[i]);
    }
    const RtGraph *g = &m->train;
    md->state = calloc((size_t)g->nargs + 1, sizeof *md->state);
    md->state_data = calloc((size_t)g->nargs + 1, sizeof *md->state_data);
    if (!md->state || !md->state_data)
        return rt_errf(e, "out of memory");
    for (int i = 0; i < g->nargs; i++) {
        if (g->args[i].role != RT_ROLE_STATE)
            continue;
        for (int k = 0; k < g->args[i].rank; k++)
            if (g->args[i].shape[k] < 0)
                return rt_errf(e, "manifest: state '%s' has a batch dimension", g->args[i].name);
        md->state[md->nstate] = g->args[i];
        if (!(md->state_data[md->nstate++] = alloc_tensor(&g->args[i], 1, NULL)))
            return rt_errf(e, "out of memory for state '%s'", g->args[i].name);
    }
    return RT_OK;
}

void rt_model_free(RtModel *md) {
    if (md->m)
        for (int i = 0; i < md->m->nparams; i++)
            free(md->params ? md->params[i] : NULL);
    for (int i = 0; i < md->nstate; i++)
        free(md->state_data[i]);
    free(md->params);
    free(md->state);
    free(md->state_data);
    memset(md, 0, sizeof *md);
}

static RtTensor as_tensor(const RtTensorSpec *s, void *data) {
    RtTensor t = {.name = s->name, .dtype = s->dtype, .rank = s->rank, .data = data};
    memcpy(t.shape, s->shape, sizeof t.shape);
    return t;
}

RtTensor *rt_model_tensors(const RtModel *md) {
    const RtManifest *m = md->m;
    RtTensor *ts = calloc((size_t)(m->nparams + md->nstate + md->nopt_tensors) + 1, sizeof *ts);
    if (!ts)
        return NULL;
    for (int i = 0; i < m->nparams; i++)
        ts[i] = as_tensor(&m->params[i].t, md->params[i]);
    for (int i = 0; i < md->nstate; i++)
        ts[m->nparams + i] = as_tensor(&md->state[i], md->state_data[i]);
    for (int i = 0; i < md->nopt_tensors; i++)
        ts[m->nparams + md->nstate + i] = md->opt_tensors[i];
    return ts;
}

static bool same_type(const RtTensorSpec *a, const RtTensorSpec *b) {
    if (a->dtype != b->dtype || a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

/* A scalar input that the recipe provides: a top-level number or a keyword of the optimizer call. */
static bool recipe_number(const RtConfig *cfg, const char *name, double *out) {
    json_t *v = json_object_get(cfg->recipe, name);
    if (!json_is_number(v))
        v = json_object_get(json_object_get(json_object_get(cfg->recipe, "optimizer"), "kwargs"), name);
    if (!json_is_number(v))
        return false;
    *out = json_number_value(v);
    return true;
}

/* rt_dataset_gather writes sample i at element i * (values per sample): a data input must have N as its
   first dimension and nowhere else, or a batch of n would run past its buffer. */
static bool batch_leading(const RtTensorSpec *a) {
    if (a->rank < 1 || a->shape[0] >= 0)
        return false;
    for (int k = 1; k < a->rank; k++)
        if (a->shape[k] < 0)
            return false;
    return true;
}

static void store_count(RtDType t, void *p, uint64_t v) {
    if (t == RT_I64)
        *(int64_t *)p = (int64_t)v;
    else
        *(int32_t *)p = (int32_t)v;
}

static int bind_input(RtBinding *b, const RtManifest *m, const RtConfig *cfg, int i, RtErr *e) {
    const RtTensorSpec *a = &b->g->args[i];
    if (!(b->owned[i] = b->args[i] = alloc_tensor(a, b->max_n, NULL)))
        return rt_errf(e, "out of memory for input '%s' of graph '%s'", a->name, b->g->name);
    if (m->ninputs > 0 && strcmp(a->name, m->inputs[0].name) == 0) {
        if (!same_type(a, &m->inputs[0]) || !batch_leading(a))
            return rt_errf(e, "manifest: graph '%s' input '%s' must be typed as the model's input, with the "
                              "batch dimension N first and only there", b->g->name, a->name);
        b->x_arg = i;
        return RT_OK;
    }
    if (m->ninputs > 1 && strcmp(a->name, m->inputs[1].name) == 0) {
        if (!same_type(a, &m->inputs[1]) || !batch_leading(a))
            return rt_errf(e, "manifest: graph '%s' input '%s' must be typed as the model's labels, with the batch "
                              "dimension N first and only there", b->g->name, a->name);
        b->y_arg = i;
        return RT_OK;
    }
    /* the run's counters: step (the steps done before this one) is written before each call; seed is the
       run's --seed, written whole, since a double would round a 64-bit seed */
    if (strcmp(a->name, "step") == 0 || strcmp(a->name, "seed") == 0) {
        if (a->rank != 0 || (a->dtype != RT_I64 && a->dtype != RT_I32))
            return rt_errf(e, "manifest: graph '%s' input '%s' must be i64[]", b->g->name, a->name);
        if (a->name[1] == 't') {
            b->step_arg = i;
        } else {
            b->seed_arg = i;
            store_count(a->dtype, b->args[i], cfg->seed);
        }
        return RT_OK;
    }
    double v;
    if (strcmp(a->name, "lr") == 0) {
        if (!cfg->has_lr)
            return rt_errf(e, "graph '%s' takes a learning rate but the recipe has none: pass --lr", b->g->name);
        b->lr_arg = i;
        v = cfg->lr;
    } else if (!recipe_number(cfg, a->name, &v)) {
        return rt_errf(e, "graph '%s' takes an input '%s' that neither the data nor the recipe provides",
                       b->g->name, a->name);
    }
    int64_t n = 0;
    rt_numel(a, b->max_n, &n);
    for (int64_t k = 0; k < n; k++)
        rt_store(a->dtype, b->args[i], k, v);
    return RT_OK;
}

int rt_bind(RtBinding *b, RtModel *md, const RtGraph *g, const RtConfig *cfg, int64_t max_n, RtErr *e) {
    memset(b, 0, sizeof *b);
    b->g = g;
    b->max_n = max_n;
    b->x_arg = b->y_arg = b->loss_arg = b->logits_arg = b->lr_arg = b->step_arg = b->seed_arg = -1;
    if (!g->present || !g->fn)
        return rt_errf(e, "the model has no %s graph", g->name);
    const RtManifest *m = md->m;
    b->args = calloc((size_t)g->nargs + 1, sizeof *b->args);
    b->owned = calloc((size_t)g->nargs + 1, sizeof *b->owned);
    b->grad_arg = malloc(((size_t)m->nparams + 1) * sizeof *b->grad_arg);
    if (!b->args || !b->owned || !b->grad_arg)
        return rt_errf(e, "out of memory");
    for (int p = 0; p < m->nparams; p++)
        b->grad_arg[p] = -1;
    for (int i = 0; i < g->nargs; i++) {
        const RtTensorSpec *a = &g->args[i];
        switch (a->role) {
        case RT_ROLE_INPUT:
            if (bind_input(b, m, cfg, i, e) != RT_OK)
                return RT_ERR;
            break;
        case RT_ROLE_PARAM: {
            int p = rt_manifest_param_index(m, a->name);
            if (p < 0 || !same_type(a, &m->params[p].t))
                return rt_errf(e, "manifest: graph '%s' takes parameter '%s' that the params list lacks or types "
                                  "differently", g->name, a->name);
            b->args[i] = md->params[p];
            break;
        }
        case RT_ROLE_STATE: {
            for (int s = 0; s < md->nstate; s++)
                if (strcmp(md->state[s].name, a->name) == 0 && same_type(a, &md->state[s]))
                    b->args[i] = md->state_data[s];
            if (!b->args[i])
                return rt_errf(e, "manifest: graph '%s' takes state '%s' that the train graph lacks", g->name,
                               a->name);
            break;
        }
        case RT_ROLE_OUTPUT:
            if (!(b->owned[i] = b->args[i] = alloc_tensor(a, max_n, NULL)))
                return rt_errf(e, "out of memory for output '%s' of graph '%s'", a->name, g->name);
            if (strcmp(a->name, "loss") == 0) {
                b->loss_arg = i;
            } else if (strncmp(a->name, "grad.", 5) == 0) {
                int p = rt_manifest_param_index(m, a->name + 5);
                if (p < 0 || !same_type(a, &m->params[p].t))
                    return rt_errf(e, "manifest: graph '%s' output '%s' is not the gradient of a parameter", g->name,
                                   a->name);
                b->grad_arg[p] = i;
            } else if (strncmp(a->name, "metric.", 7) == 0) {
                if (a->rank != 0 || b->nmetric == RT_MAX_GRAPH_METRICS)
                    return rt_errf(e, "manifest: graph '%s' output '%s': at most %d scalar metrics", g->name, a->name,
                                   RT_MAX_GRAPH_METRICS);
                b->metric_arg[b->nmetric++] = i;
            } else if (strcmp(a->name, "logits") == 0 || b->logits_arg < 0) {
                b->logits_arg = i;
            }
            break;
        }
    }
    size_t bytes;
    if (!rt_arena_bytes(g, max_n, &bytes) || !(b->arena = aligned_alloc(64, bytes)))
        return rt_errf(e, "out of memory for the arena of graph '%s' (batch %lld)", g->name, (long long)max_n);
    return RT_OK;
}

void rt_unbind(RtBinding *b) {
    if (b->g)
        for (int i = 0; i < b->g->nargs; i++)
            free(b->owned ? b->owned[i] : NULL);
    free(b->owned);
    free(b->args);
    free(b->grad_arg);
    free(b->arena);
    memset(b, 0, sizeof *b);
}

/* Runs b's graph over the batch of n samples already in its input buffers, at md's step. */
void rt_run_loaded(RtBinding *b, RtModel *md, int64_t n) {
    if (b->step_arg >= 0)
        store_count(b->g->args[b->step_arg].dtype, b->args[b->step_arg], (uint64_t)md->step);
    b->g->fn(b->args, n, b->arena);
}

void rt_run_batch(RtBinding *b, RtModel *md, const RtDataset *d, const int64_t *idx, int64_t n) {
    const RtTensorSpec *a = b->g->args;
    if (b->x_arg >= 0)
        rt_dataset_gather(d, idx, n, a[b->x_arg].dtype, b->args[b->x_arg], b->y_arg >= 0 ? a[b->y_arg].dtype : RT_U8,
                          b->y_arg >= 0 ? b->args[b->y_arg] : NULL);
    if (b->tf && b->x_arg >= 0)
        rt_transforms_apply(b->tf, false, a[b->x_arg].dtype, b->args[b->x_arg], &a[b->x_arg], n, idx, 0, 0);
    rt_run_loaded(b, md, n);
}

double rt_output_scalar(const RtBinding *b, int arg) {
    if (arg < 0)
        return NAN;
    return rt_load(b->g->args[arg].dtype, b->args[arg], 0);
}
