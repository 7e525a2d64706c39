/* libapi.c: a compiled model as a library (lathe_lib.h): open a checkpoint, predict, take training steps,
   save. It is the produced binary's runtime without the driver: the same manifest, model, bindings,
   optimizer and checkpoints, fed from the caller's buffers instead of a dataset. */
#include "lathe_lib.h"
#include "lathe_kern.h"
#include "train.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct LatheLib {
    const LatheLibModel *model;
    RtManifest m;
    RtModel md;
    RtConfig cfg;     /* the recipe's values that rt_bind reads: seed, lr */
    RtTransforms tf;  /* the recipe's transforms; their deterministic part applies */
    RtBinding pred, step;
    bool fused;       /* the train graph's own update, else grads + the runtime's optimizer */
    bool trains;      /* the model has a train or grads graph and an optimizer */
    char why_not[256]; /* why it does not train, for train_step's message */
    RtOptimSpec ospec;
    RtOptim opt;
    bool has_opt;
    void **grads;     /* per manifest param: the gradient output of the bound grads graph, or NULL */
    double lr[RT_OPT_MAX_GROUPS];
};

static _Thread_local char last_error[1024];

const char *lathe_lib_last_error(void) {
    return last_error;
}

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void start_pool(void) {
    const char *s = getenv("LATHE_THREADS");
    char *end;
    long n = s ? strtol(s, &end, 10) : 0;
    lathe_pool_init(s && *s && !*end && n > 0 && n < 4096 ? (int)n : 0);
}

/* The handle belongs to this model (a handle passed to another model's function is refused). */
static int check_handle(const LatheLibModel *model, const LatheLib *lib) {
    if (!lib)
        return fail(LATHE_LIB_E_ARGUMENT, "the model handle is NULL");
    if (lib->model != model)
        return fail(LATHE_LIB_E_ARGUMENT, "the handle was opened by another model's library");
    return LATHE_LIB_OK;
}

/* The recipe's values that a binding reads, as the binary's flags default them (runtime/flags.c). */
static void recipe_config(LatheLib *lib) {
    RtConfig *c = &lib->cfg;
    c->recipe = lib->m.recipe;
    json_t *seed = json_object_get(c->recipe, "seed");
    c->seed = json_is_integer(seed) && json_integer_value(seed) >= 0 ? (uint64_t)json_integer_value(seed) : 0;
    json_t *batch = json_object_get(c->recipe, "batch");
    c->batch = json_is_integer(batch) && json_integer_value(batch) > 0 ? json_integer_value(batch) : 64;
    c->epochs = 1;
    c->limit = -1;
}

/* The optimizer of the recipe and the step that trains with it, as runtime/train.c's open_step chooses:
   the fused train graph where the compiled optimizer is the recipe's (always, without --set), else the
   grads graph and the runtime's optimizer, whose state tensors exist from here on. */
static int open_optimizer(LatheLib *lib, RtErr *e) {
    const RtManifest *m = &lib->m;
    snprintf(lib->why_not, sizeof lib->why_not, "the model has no train or grads graph");
    if (!(m->train.present && m->train.fn) && !(m->grads.present && m->grads.fn))
        return RT_OK;
    /* a model without a usable optimizer still predicts */
    RtErr oe = {{0}};
    if (rt_optim_spec_parse(m->recipe, &lib->ospec, &oe) != RT_OK) {
        snprintf(lib->why_not, sizeof lib->why_not, "the model does not train: %.200s", oe.msg);
        return RT_OK;
    }
    lib->trains = true;
    lib->fused = m->train.present && m->train.fn && rt_optim_is_fused(&lib->ospec, &lib->ospec);
    for (int g = 0; g < lib->ospec.ngroups; g++)
        lib->lr[g] = lib->ospec.groups[g].h.lr;
    lib->cfg.lr = lib->lr[0];
    lib->cfg.has_lr = true;
    if (lib->fused)
        return RT_OK;
    if (!(m->grads.present && m->grads.fn))
        return rt_errf(e, "the model has no grads graph to train with its optimizer");
    if (rt_optim_open(&lib->opt, &lib->ospec, m, e) != RT_OK)
        return RT_ERR;
    lib->has_opt = true;
    lib->md.opt_tensors = lib->opt.tensors;
    lib->md.nopt_tensors = lib->opt.ntensors;
    return RT_OK;
}

/* The names of rt_st_init_from's lists ("a, b, c") one by one: the length of the name at *s, after moving
   *s past the separators before it; 0 at the end. */
static size_t next_name(const char **s) {
    while (**s == ',' || **s == ' ')
        (*s)++;
    return strcspn(*s, ",");
}

/* The first name of the list that is a parameter of m (want_param) or that is not the optimizer's
   ("optimizer.*": its state, which a checkpoint of another optimizer holds otherwise), copied into out; false
   when none. */
static bool first_name(const char *list, const RtManifest *m, bool want_param, char *out, size_t n) {
    size_t len;
    for (const char *s = list; s && (len = next_name(&s)) > 0; s += len) {
        snprintf(out, n, "%.*s", (int)len, s);
        if (want_param ? rt_manifest_param_index(m, out) >= 0 : strncmp(out, "optimizer.", 10) != 0)
            return true;
    }
    return false;
}

static bool has_optimizer_name(const char *list) {
    size_t len;
    for (const char *s = list; s && (len = next_name(&s)) > 0; s += len)
        if (strncmp(s, "optimizer.", 10) == 0)
            return true;
    return false;
}

static int64_t meta_count(json_t *meta, const char *key, int64_t dflt) {
    const char *s = json_string_value(json_object_get(meta, key));
    char *end;
    long long v = s ? strtoll(s, &end, 10) : -1;
    return s && *s && !*end && v >= 0 ? (int64_t)v : dflt;
}

/* The checkpoint's parameters (each required) and whatever optimizer state of this model's recipe it holds;
   the state of another optimizer (a run with --set optimizer=...) is left out, and training starts it
   fresh. */
static int load_checkpoint(LatheLib *lib, const char *path, RtErr *e) {
    RtTensor *ts = rt_model_tensors(&lib->md);
    if (!ts)
        return rt_errf(e, "out of memory");
    json_t *meta = NULL;
    RtStInit init = {.meta = &meta};
    int n = lib->m.nparams + lib->md.nstate + lib->md.nopt_tensors;
    int rc = rt_st_init_from(path, ts, n, &init, e);
    free(ts);
    if (rc != RT_OK)
        return RT_ERR;
    char name[256];
    if (first_name(init.missing, &lib->m, true, name, sizeof name))
        rc = rt_errf(e, "%s: missing tensor '%s'", path, name);
    else if (first_name(init.unexpected, &lib->m, false, name, sizeof name))
        rc = rt_errf(e, "%s: unexpected tensor '%s' (the model has no parameter of that name)", path, name);
    if (rc == RT_OK) {
        lib->md.step = meta_count(meta, "step", 0);
        /* the optimizer's step count (Adam's bias correction) goes with its state, when all of it loaded */
        if (lib->has_opt && !has_optimizer_name(init.missing))
            lib->opt.steps = meta_count(meta, "optimizer_steps", lib->md.step);
    }
    rt_st_init_free(&init);
    json_decref(meta);
    return rc;
}

static int open_model(LatheLib *lib, const LatheLibModel *model, const char *path, RtErr *e) {
    lib->model = model;
    if (rt_manifest_parse(&lib->m, model->manifest, e) != RT_OK)
        return RT_ERR;
    lib->m.train.fn = model->train;
    lib->m.grads.fn = model->grads;
    lib->m.eval.fn = model->eval;
    lib->m.predict.fn = model->predict;
    recipe_config(lib);
    const RtTensorSpec *x = lib->m.ninputs ? &lib->m.inputs[0] : NULL;
    RtLoaderRecipe lr;
    if (rt_model_init(&lib->md, &lib->m, lib->cfg.seed, e) != RT_OK || open_optimizer(lib, e) != RT_OK ||
        rt_loader_recipe(lib->m.recipe, x, &lr, e) != RT_OK)
        return RT_ERR;
    lib->tf = lr.tf;
    return path ? load_checkpoint(lib, path, e) : RT_OK;
}

LatheLib *lathe_lib_open(const LatheLibModel *model, const char *path) {
    pthread_once(&pool_once, start_pool);
    LatheLib *lib = calloc(1, sizeof *lib);
    if (!lib) {
        fail(LATHE_LIB_E_MEMORY, "out of memory");
        return NULL;
    }
    RtErr e = {{0}};
    if (open_model(lib, model, path, &e) != RT_OK) {
        fail(LATHE_LIB_E_IO, "%s", e.msg);
        lathe_lib_close(model, lib);
        return NULL;
    }
    return lib;
}

void lathe_lib_close(const LatheLibModel *model, LatheLib *lib) {
    if (!lib || lib->model != model)
        return;
    rt_unbind(&lib->pred);
    rt_unbind(&lib->step);
    if (lib->has_opt) {
        lib->md.opt_tensors = NULL;
        lib->md.nopt_tensors = 0;
        rt_optim_close(&lib->opt);
    }
    free(lib->grads);
    rt_model_free(&lib->md);
    rt_manifest_free(&lib->m);
    free(lib);
}

/* b bound to g for batches of at least n (rebound, larger, when a batch outgrows it). */
static int bind_for(LatheLib *lib, RtBinding *b, const RtGraph *g, int64_t n) {
    if (b->g && b->max_n >= n)
        return LATHE_LIB_OK;
    rt_unbind(b);
    RtErr e = {{0}};
    if (rt_bind(b, &lib->md, g, &lib->cfg, n, &e) != RT_OK) {
        rt_unbind(b);
        return fail(strstr(e.msg, "out of memory") ? LATHE_LIB_E_MEMORY : LATHE_LIB_E_MODEL, "%s", e.msg);
    }
    if (b->x_arg < 0 || b->g->args[b->x_arg].rank < 1) {
        rt_unbind(b);
        return fail(LATHE_LIB_E_MODEL, "the %s graph takes no batch input", g->name);
    }
    return LATHE_LIB_OK;
}

/* Bytes of n samples of a batch tensor (N first); 0 on overflow. */
static size_t batch_bytes(const RtTensorSpec *t, int64_t n) {
    int64_t numel;
    size_t bytes;
    if (!rt_numel(t, n, &numel) || __builtin_mul_overflow((size_t)numel, rt_dtype_size(t->dtype), &bytes))
        return 0;
    return bytes;
}

/* The caller's batch into b's input buffer, with the recipe's deterministic transforms. */
static int load_input(LatheLib *lib, RtBinding *b, const void *input, int64_t n) {
    const RtTensorSpec *xs = &b->g->args[b->x_arg];
    size_t bytes = batch_bytes(xs, n), one = batch_bytes(xs, 1);
    if (!bytes)
        return fail(LATHE_LIB_E_ARGUMENT, "a batch of %lld samples is too large", (long long)n);
    memcpy(b->args[b->x_arg], input, bytes);
    int64_t id = 0; /* the deterministic transforms draw nothing */
    for (int64_t k = 0; k < n; k++)
        rt_transforms_apply(&lib->tf, false, xs->dtype, (char *)b->args[b->x_arg] + (size_t)k * one, xs, 1, &id,
                            0, 0);
    return LATHE_LIB_OK;
}

static int check_batch(const void *a, const void *b, int64_t batch) {
    if (!a || !b)
        return fail(LATHE_LIB_E_ARGUMENT, "a data pointer is NULL");
    if (batch < 1)
        return fail(LATHE_LIB_E_ARGUMENT, "batch must be at least 1, not %lld", (long long)batch);
    return LATHE_LIB_OK;
}

int lathe_lib_predict(const LatheLibModel *model, LatheLib *lib, const void *input, int64_t batch, void *output) {
    int rc = check_handle(model, lib);
    if (rc == LATHE_LIB_OK)
        rc = check_batch(input, output, batch);
    if (rc != LATHE_LIB_OK)
        return rc;
    if (!lib->m.predict.present || !lib->m.predict.fn)
        return fail(LATHE_LIB_E_MODEL, "the model has no predict graph");
    if ((rc = bind_for(lib, &lib->pred, &lib->m.predict, batch)) != LATHE_LIB_OK ||
        (rc = load_input(lib, &lib->pred, input, batch)) != LATHE_LIB_OK)
        return rc;
    RtBinding *b = &lib->pred;
    if (b->logits_arg < 0)
        return fail(LATHE_LIB_E_MODEL, "the predict graph has no output");
    rt_run_loaded(b, &lib->md, batch);
    memcpy(output, b->args[b->logits_arg], batch_bytes(&b->g->args[b->logits_arg], batch));
    return LATHE_LIB_OK;
}

/* The step's binding, and for the runtime's optimizer the gradients it reads. */
static int bind_step(LatheLib *lib, int64_t n) {
    const RtManifest *m = &lib->m;
    bool bound = lib->step.g && lib->step.max_n >= n;
    int rc = bind_for(lib, &lib->step, lib->fused ? &m->train : &m->grads, n);
    if (rc != LATHE_LIB_OK || bound)
        return rc;
    RtBinding *b = &lib->step;
    if (b->lr_arg >= 0)
        rt_store(b->g->args[b->lr_arg].dtype, b->args[b->lr_arg], 0, lib->lr[0]);
    if (lib->fused)
        return LATHE_LIB_OK;
    free(lib->grads);
    if (!(lib->grads = calloc((size_t)m->nparams + 1, sizeof *lib->grads)))
        return fail(LATHE_LIB_E_MEMORY, "out of memory");
    for (int p = 0; p < m->nparams; p++) {
        if (b->grad_arg[p] >= 0)
            lib->grads[p] = b->args[b->grad_arg[p]];
        else if (lib->opt.group[p] >= 0)
            return fail(LATHE_LIB_E_MODEL, "the grads graph gives no gradient of the trained parameter '%s'",
                        m->params[p].t.name);
    }
    return LATHE_LIB_OK;
}

int lathe_lib_train_step(const LatheLibModel *model, LatheLib *lib, const void *input, const void *labels,
                         int64_t batch, float *loss) {
    int rc = check_handle(model, lib);
    if (rc == LATHE_LIB_OK)
        rc = check_batch(input, labels, batch);
    if (rc != LATHE_LIB_OK)
        return rc;
    if (!lib->trains)
        return fail(LATHE_LIB_E_MODEL, "%s", lib->why_not);
    if ((rc = bind_step(lib, batch)) != LATHE_LIB_OK ||
        (rc = load_input(lib, &lib->step, input, batch)) != LATHE_LIB_OK)
        return rc;
    RtBinding *b = &lib->step;
    if (b->y_arg >= 0)
        memcpy(b->args[b->y_arg], labels, batch_bytes(&b->g->args[b->y_arg], batch));
    rt_run_loaded(b, &lib->md, batch);
    lib->md.step++;
    double l = rt_output_scalar(b, b->loss_arg);
    if (loss)
        *loss = (float)l;
    /* a non-finite loss stops before the runtime's optimizer applies its gradients, as the binary stops */
    RtErr e = {{0}};
    if (rt_anomaly_check_run(b, &lib->md, lib->md.step, true, false, &e) != RT_OK)
        return fail(LATHE_LIB_E_NONFINITE, "%s", e.msg);
    if (lib->has_opt)
        rt_optim_feed(&lib->opt, lib->md.params, lib->grads, lib->lr);
    return LATHE_LIB_OK;
}

int lathe_lib_set_lr(const LatheLibModel *model, LatheLib *lib, double lr) {
    int rc = check_handle(model, lib);
    if (rc != LATHE_LIB_OK)
        return rc;
    if (!isfinite(lr) || lr < 0)
        return fail(LATHE_LIB_E_ARGUMENT, "the learning rate must be a finite number >= 0, not %g", lr);
    /* every group at the same ratio to the optimizer's own rate, as a schedule scales them */
    double base = lib->ospec.groups[0].h.lr;
    for (int g = 0; g < lib->ospec.ngroups; g++)
        lib->lr[g] = base > 0 ? lib->ospec.groups[g].h.lr * (lr / base) : lr;
    lib->cfg.lr = lr;
    RtBinding *b = &lib->step;
    if (b->g && b->lr_arg >= 0)
        rt_store(b->g->args[b->lr_arg].dtype, b->args[b->lr_arg], 0, lr);
    return LATHE_LIB_OK;
}

static void meta_int(json_t *meta, const char *key, int64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    json_object_set_new(meta, key, json_string(buf));
}

int lathe_lib_save(const LatheLibModel *model, LatheLib *lib, const char *path) {
    int rc = check_handle(model, lib);
    if (rc != LATHE_LIB_OK)
        return rc;
    if (!path)
        return fail(LATHE_LIB_E_ARGUMENT, "the checkpoint path is NULL");
    /* the metadata of the binary's checkpoints (driver.c), at the start of an epoch */
    json_t *meta = json_object();
    if (!meta)
        return fail(LATHE_LIB_E_MEMORY, "out of memory");
    meta_int(meta, "epoch", 0);
    meta_int(meta, "batch", 0);
    meta_int(meta, "step", lib->md.step);
    meta_int(meta, "optimizer_steps", lib->has_opt ? lib->opt.steps : lib->md.step);
    meta_int(meta, "seed", (int64_t)lib->cfg.seed);
    json_object_set_new(meta, "model", json_string(lib->m.model));
    json_object_set_new(meta, "hash", json_string(lib->m.hash));
    json_object_set_new(meta, "lathe", json_string(RT_VERSION));
    RtTensor *ts = rt_model_tensors(&lib->md);
    RtErr e = {{0}};
    if (!ts)
        rc = fail(LATHE_LIB_E_MEMORY, "out of memory");
    else if (rt_st_save(path, ts, lib->m.nparams + lib->md.nstate + lib->md.nopt_tensors, meta, &e) != RT_OK)
        rc = fail(LATHE_LIB_E_IO, "%s", e.msg);
    free(ts);
    json_decref(meta);
    return rc;
}
