/* loader.c: the order of the samples in an epoch, the batches, the validation split, the loader whose
   worker threads gather (and transform) the next batch while a step runs, and the recipe's loader keys. */
#include "rt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Shuffling streams: 0..2^62, one per epoch (parameters use the streams above, see rng.c). */
static void shuffle(int64_t *a, int64_t n, uint64_t seed, uint64_t stream) {
    RtRng r;
    rt_rng_seed(&r, seed, stream);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)rt_rng_below64(&r, (uint64_t)i + 1);
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

void rt_epoch_order_of(const int64_t *subset, int64_t n, bool shuffled, uint64_t seed, int64_t epoch,
                       int64_t *order) {
    for (int64_t i = 0; i < n; i++)
        order[i] = subset ? subset[i] : i;
    if (shuffled)
        shuffle(order, n, seed, (uint64_t)epoch);
}

void rt_epoch_order(int64_t n, bool shuffled, uint64_t seed, int64_t epoch, int64_t *order) {
    rt_epoch_order_of(NULL, n, shuffled, seed, epoch, order);
}

/* written without n + batch - 1, which overflows for a huge --batch */
int64_t rt_batch_count(int64_t n, int64_t batch) { return n / batch + (n % batch != 0); }

int64_t rt_batch_count_drop(int64_t n, int64_t batch, bool drop_last) {
    return drop_last ? n / batch : rt_batch_count(n, batch);
}

/* ---------------------------------------------------------------- the validation split */
/* The first nval of a permutation on the split's own stream go to validation: the split does not depend
   on the epochs' shuffling, and a sample's side depends on (n, fraction, seed) only. */
int rt_split(int64_t n, double fraction, uint64_t seed, int64_t **train, int64_t *ntrain, int64_t **val,
             int64_t *nval, RtErr *e) {
    *train = *val = NULL;
    *ntrain = *nval = 0;
    if (!(fraction > 0 && fraction < 1))
        return rt_errf(e, "a validation fraction must be above 0 and below 1, not %g", fraction);
    if (n < 2)
        return rt_errf(e, "a validation split needs at least 2 samples, not %lld", (long long)n);
    int64_t nv = (int64_t)llround((double)n * fraction);
    nv = nv < 1 ? 1 : nv > n - 1 ? n - 1 : nv;
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    int64_t *t = malloc((size_t)(n - nv) * sizeof *t), *v = malloc((size_t)nv * sizeof *v);
    bool *in_val = calloc((size_t)n, sizeof *in_val);
    if (!perm || !t || !v || !in_val) {
        free(perm), free(t), free(v), free(in_val);
        return rt_errf(e, "out of memory for a validation split of %lld samples", (long long)n);
    }
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    shuffle(perm, n, seed, RT_SPLIT_STREAM);
    for (int64_t i = 0; i < nv; i++)
        in_val[perm[i]] = true;
    int64_t kt = 0, kv = 0;
    for (int64_t i = 0; i < n; i++) {
        if (in_val[i])
            v[kv++] = i;
        else
            t[kt++] = i;
    }
    free(perm);
    free(in_val);
    *train = t, *ntrain = kt;
    *val = v, *nval = kv;
    return RT_OK;
}

/* ---------------------------------------------------------------- the loader */
/* Part p of the batch in slot: samples [n * p / parts, n * (p + 1) / parts), gathered and transformed. */
static void loader_part(RtLoader *l, const int64_t *idx, int64_t n, int64_t epoch, int slot, int p, int parts) {
    int64_t lo = n * p / parts, hi = n * (p + 1) / parts;
    if (lo == hi)
        return;
    int64_t per_x = l->d->per_sample, per_y = l->d->per_label;
    char *x = (char *)l->x[slot] + (size_t)(lo * per_x) * rt_dtype_size(l->xt);
    char *y = l->has_y ? (char *)l->y[slot] + (size_t)(lo * per_y) * rt_dtype_size(l->yt) : NULL;
    rt_dataset_gather(l->d, idx + lo, hi - lo, l->xt, x, l->yt, y);
    if (l->tf.n)
        rt_transforms_apply(&l->tf, l->train, l->xt, x, &l->xs, hi - lo, idx + lo, l->seed, epoch);
}

/* Takes the parts nobody has taken yet, one at a time; called with mu held, returns with it held. */
static void take_parts(RtLoader *l) {
    while (l->next_part < l->nworkers) {
        int p = l->next_part++, parts = l->nworkers, slot = l->slot;
        const int64_t *idx = l->idx;
        int64_t n = l->n, epoch = l->req_epoch;
        pthread_mutex_unlock(&l->mu);
        loader_part(l, idx, n, epoch, slot, p, parts);
        pthread_mutex_lock(&l->mu);
        if (--l->parts_left == 0)
            pthread_cond_signal(&l->done);
    }
}

/* A gather is a copy of a few hundred kilobytes: the workers sleep between batches instead of spinning on a
   core that the step's kernels use. */
static void *loader_main(void *arg) {
    RtLoader *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->quit) {
        take_parts(l);
        if (!l->quit)
            pthread_cond_wait(&l->work, &l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void *alloc_batch(const RtTensorSpec *t, int64_t max_n) {
    int64_t numel;
    size_t bytes;
    if (!rt_numel(t, max_n, &numel) || __builtin_mul_overflow((size_t)numel, rt_dtype_size(t->dtype), &bytes) ||
        bytes > SIZE_MAX - 64)
        return NULL;
    bytes = bytes ? (bytes + 63) & ~(size_t)63 : 64;
    void *p = aligned_alloc(64, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

/* Starts up to want threads; those that cannot start leave the work to fewer (none: the caller). */
static void start_workers(RtLoader *l, int want) {
    if (want <= 0 || !(l->threads = malloc((size_t)want * sizeof *l->threads)))
        return;
    bool mu = pthread_mutex_init(&l->mu, NULL) == 0, work = mu && pthread_cond_init(&l->work, NULL) == 0,
         done = work && pthread_cond_init(&l->done, NULL) == 0;
    l->next_part = INT32_MAX; /* nothing to take until the first request */
    /* nworkers is also the part count of a request: it grows under mu, before any request */
    for (int i = 0; done && i < want && pthread_create(&l->threads[i], NULL, loader_main, l) == 0; i++) {
        pthread_mutex_lock(&l->mu);
        l->nworkers = i + 1;
        pthread_mutex_unlock(&l->mu);
    }
    if ((l->threaded = l->nworkers > 0))
        return;
    if (done)
        pthread_cond_destroy(&l->done);
    if (work)
        pthread_cond_destroy(&l->work);
    if (mu)
        pthread_mutex_destroy(&l->mu);
    free(l->threads), l->threads = NULL;
}

int rt_loader_open_opts(RtLoader *l, const RtDataset *d, const RtTensorSpec *x, const RtTensorSpec *y,
                        int64_t max_n, const RtLoaderOpts *o, RtErr *e) {
    memset(l, 0, sizeof *l);
    l->d = d;
    l->xs = *x;
    l->xt = x->dtype;
    l->has_y = y != NULL;
    l->yt = y ? y->dtype : RT_U8;
    l->train = o->train;
    l->seed = o->seed;
    if (o->tf && o->tf->n) {
        if (x->dtype != RT_F32 && x->dtype != RT_F64)
            return rt_errf(e, "recipe key transforms: the model's input '%s' is %s, but transforms take f32 or "
                           "f64 inputs", x->name ? x->name : "x", rt_dtype_name(x->dtype));
        int64_t per = 0;
        if (!rt_numel(x, 1, &per) || per != d->per_sample) /* the transforms walk x's shape */
            return rt_errf(e, "recipe key transforms: the data has %lld values per sample, but the model's input "
                           "'%s' takes %lld", (long long)d->per_sample, x->name ? x->name : "x", (long long)per);
        l->tf = *o->tf;
    }
    for (int s = 0; s < 2; s++) {
        if (!(l->x[s] = alloc_batch(x, max_n)) || (y && !(l->y[s] = alloc_batch(y, max_n)))) {
            rt_loader_close(l);
            return rt_errf(e, "out of memory for two batches of %lld samples", (long long)max_n);
        }
    }
    start_workers(l, o->workers);
    return RT_OK;
}

int rt_loader_open(RtLoader *l, const RtDataset *d, const RtTensorSpec *x, const RtTensorSpec *y, int64_t max_n,
                   bool prefetch, RtErr *e) {
    RtLoaderOpts o = {.workers = prefetch ? 1 : 0, .train = true};
    return rt_loader_open_opts(l, d, x, y, max_n, &o, e);
}

void rt_loader_set_epoch(RtLoader *l, int64_t epoch) { l->epoch = epoch; }

void rt_loader_request(RtLoader *l, const int64_t *idx, int64_t n) {
    if (!l->nworkers) {
        l->slot ^= 1;
        loader_part(l, idx, n, l->epoch, l->slot, 0, 1);
        return;
    }
    pthread_mutex_lock(&l->mu);
    l->slot ^= 1;
    l->idx = idx;
    l->n = n;
    l->req_epoch = l->epoch;
    l->next_part = 0;
    l->parts_left = l->nworkers;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
}

/* Parts that no worker has started yet (none was scheduled during the step, on a busy machine) are
   gathered here at once: the step never waits for a thread to be woken. */
void rt_loader_wait(RtLoader *l, void **x, void **y) {
    if (l->nworkers) {
        pthread_mutex_lock(&l->mu);
        take_parts(l);
        while (l->parts_left > 0)
            pthread_cond_wait(&l->done, &l->mu);
        pthread_mutex_unlock(&l->mu);
    }
    *x = l->x[l->slot];
    if (y)
        *y = l->y[l->slot];
}

void rt_loader_close(RtLoader *l) {
    if (l->nworkers) {
        void *x, *y;
        rt_loader_wait(l, &x, &y); /* a request in flight finishes before its buffers are freed */
        pthread_mutex_lock(&l->mu);
        l->quit = true;
        pthread_cond_broadcast(&l->work);
        pthread_mutex_unlock(&l->mu);
        for (int i = 0; i < l->nworkers; i++)
            pthread_join(l->threads[i], NULL);
        pthread_cond_destroy(&l->done);
        pthread_cond_destroy(&l->work);
        pthread_mutex_destroy(&l->mu);
    }
    free(l->threads);
    for (int s = 0; s < 2; s++) {
        free(l->x[s]);
        free(l->y[s]);
    }
    memset(l, 0, sizeof *l);
}

/* ---------------------------------------------------------------- the recipe's loader keys */
int rt_loader_recipe(const json_t *recipe, const RtTensorSpec *x, RtLoaderRecipe *out, RtErr *e) {
    memset(out, 0, sizeof *out);
    out->workers = 1;
    json_t *v = json_object_get(recipe, "workers");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > RT_MAX_WORKERS)
            return rt_errf(e, "recipe key workers: must be an integer from 0 to %d (0: load on the training "
                           "thread)", RT_MAX_WORKERS);
        out->workers = (int)json_integer_value(v);
    }
    v = json_object_get(recipe, "drop_last");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v))
            return rt_errf(e, "recipe key drop_last: must be true or false");
        out->drop_last = json_is_true(v);
    }
    v = json_object_get(recipe, "validation");
    if (v && !json_is_null(v)) {
        if (json_is_object(v) && json_object_get(v, "call")) {
            out->is_source = true;
        } else if (json_is_number(v) && json_number_value(v) > 0 && json_number_value(v) < 1) {
            out->has_fraction = true;
            out->fraction = json_number_value(v);
        } else {
            return rt_errf(e, "recipe key validation: must be a fraction of the training data above 0 and below 1 "
                           "(validation = 0.1), or a data source (validation = idx(...))");
        }
    }
    return rt_transforms_parse(recipe, x, &out->tf, e);
}
