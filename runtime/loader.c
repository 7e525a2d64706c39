/* loader.c: the order of the samples in an epoch, the batches, and the loader that gathers the next batch
   on its own thread while a step runs. */
#include "rt.h"

#include <stdlib.h>
#include <string.h>

/* Shuffling streams: 0..2^62, one per epoch (parameters use the streams above, see rng.c). */
void rt_epoch_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch, int64_t *order) {
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    if (!shuffle)
        return;
    RtRng r;
    rt_rng_seed(&r, seed, (uint64_t)epoch);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)rt_rng_below64(&r, (uint64_t)i + 1);
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* written without n + batch - 1, which overflows for a huge --batch */
int64_t rt_batch_count(int64_t n, int64_t batch) { return n / batch + (n % batch != 0); }

/* ---------------------------------------------------------------- the prefetching loader */
enum { LOADER_IDLE, LOADER_REQUESTED, LOADER_WORKING, LOADER_QUIT };

static void loader_gather(RtLoader *l, const int64_t *idx, int64_t n, int slot) {
    rt_dataset_gather(l->d, idx, n, l->xt, l->x[slot], l->yt, l->has_y ? l->y[slot] : NULL);
}

/* The gather is a copy of a few hundred kilobytes at most: the thread sleeps between batches instead of
   taking a core from the step. */
static void *loader_main(void *arg) {
    RtLoader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (l->state != LOADER_REQUESTED && l->state != LOADER_QUIT)
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->state == LOADER_QUIT)
            break;
        l->state = LOADER_WORKING;
        const int64_t *idx = l->idx;
        int64_t n = l->n;
        int slot = l->slot;
        pthread_mutex_unlock(&l->mu);
        loader_gather(l, idx, n, slot);
        pthread_mutex_lock(&l->mu);
        l->state = LOADER_IDLE;
        pthread_cond_broadcast(&l->cv);
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

int rt_loader_open(RtLoader *l, const RtDataset *d, const RtTensorSpec *x, const RtTensorSpec *y, int64_t max_n,
                   bool prefetch, RtErr *e) {
    memset(l, 0, sizeof *l);
    l->d = d;
    l->xt = x->dtype;
    l->has_y = y != NULL;
    l->yt = y ? y->dtype : RT_U8;
    for (int s = 0; s < 2; s++) {
        if (!(l->x[s] = alloc_batch(x, max_n)) || (y && !(l->y[s] = alloc_batch(y, max_n)))) {
            rt_loader_close(l);
            return rt_errf(e, "out of memory for two batches of %lld samples", (long long)max_n);
        }
    }
    if (prefetch && pthread_mutex_init(&l->mu, NULL) == 0) {
        if (pthread_cond_init(&l->cv, NULL) != 0)
            pthread_mutex_destroy(&l->mu);
        else if (pthread_create(&l->thread, NULL, loader_main, l) != 0) /* then gather on the caller */
            pthread_cond_destroy(&l->cv), pthread_mutex_destroy(&l->mu);
        else
            l->threaded = true;
    }
    return RT_OK;
}

void rt_loader_request(RtLoader *l, const int64_t *idx, int64_t n) {
    if (!l->threaded) {
        l->slot ^= 1;
        loader_gather(l, idx, n, l->slot);
        return;
    }
    pthread_mutex_lock(&l->mu);
    l->slot ^= 1;
    l->idx = idx;
    l->n = n;
    l->state = LOADER_REQUESTED;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

/* A request that the loader's thread has not started yet (it was not scheduled during the step, on a busy
   machine) is gathered here at once: the step never waits for the thread to be woken. */
void rt_loader_wait(RtLoader *l, void **x, void **y) {
    if (l->threaded) {
        pthread_mutex_lock(&l->mu);
        if (l->state == LOADER_REQUESTED) {
            l->state = LOADER_WORKING;
            pthread_mutex_unlock(&l->mu);
            loader_gather(l, l->idx, l->n, l->slot);
            pthread_mutex_lock(&l->mu);
            l->state = LOADER_IDLE;
        }
        while (l->state != LOADER_IDLE)
            pthread_cond_wait(&l->cv, &l->mu);
        pthread_mutex_unlock(&l->mu);
    }
    *x = l->x[l->slot];
    if (y)
        *y = l->y[l->slot];
}

void rt_loader_close(RtLoader *l) {
    if (l->threaded) {
        void *x, *y;
        rt_loader_wait(l, &x, &y); /* a request in flight finishes first: QUIT must not be overwritten */
        pthread_mutex_lock(&l->mu);
        l->state = LOADER_QUIT;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        pthread_cond_destroy(&l->cv);
        pthread_mutex_destroy(&l->mu);
    }
    for (int s = 0; s < 2; s++) {
        free(l->x[s]);
        free(l->y[s]);
    }
    memset(l, 0, sizeof *l);
}
