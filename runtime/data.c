/* data.c: a dataset of images and labels as the recipe's idx(images, labels, scale = S) names it, checked
   against the model's inputs; the per-epoch sample order and the gathering of one batch into the input
   buffers of a graph. Samples stay as bytes until gathered: four times less memory than floats. */
#include "rt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static char *resolve(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p)
        return NULL;
    if (name[0] == '/' || !dir[0])
        snprintf(p, n, "%s", name);
    else
        snprintf(p, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
    return p;
}

int rt_dataset_load(RtDataset *d, const char *dir, const RtDataSpec *spec, RtErr *e) {
    memset(d, 0, sizeof *d);
    d->scale = spec->scale;
    d->images_path = resolve(dir, spec->images);
    d->labels_path = resolve(dir, spec->labels);
    if (!d->images_path || !d->labels_path) {
        rt_dataset_free(d);
        return rt_errf(e, "out of memory");
    }
    RtIdx im, lb;
    if (rt_idx_read(d->images_path, 0x803, &im, e) != RT_OK) {
        rt_dataset_free(d);
        return RT_ERR;
    }
    if (rt_idx_read(d->labels_path, 0x801, &lb, e) != RT_OK) {
        rt_idx_free(&im);
        rt_dataset_free(d);
        return RT_ERR;
    }
    int rc = RT_OK;
    if (im.count != lb.count)
        rc = rt_errf(e, "%s has %lld images but %s has %lld labels (the counts at byte offset 4 differ)",
                     d->images_path, (long long)im.count, d->labels_path, (long long)lb.count);
    else if (im.count == 0)
        rc = rt_errf(e, "%s: no samples (the count at byte offset 4 is 0)", d->images_path);
    if (rc != RT_OK) {
        rt_idx_free(&im);
        rt_idx_free(&lb);
        rt_dataset_free(d);
        return rc;
    }
    d->count = im.count;
    d->per_sample = im.per_item;
    d->images = im.data;
    d->labels = lb.data;
    return RT_OK;
}

int rt_dataset_check(const RtDataset *d, const RtManifest *m, const char *what, RtErr *e) {
    if (m->ninputs < 1)
        return rt_errf(e, "the model declares no inputs to feed the %s data to", what);
    const RtTensorSpec *x = &m->inputs[0];
    int64_t per = 1;
    rt_numel(x, 1, &per);
    if (per != d->per_sample) {
        char s[128];
        rt_shape_text(x->shape, x->rank, s, sizeof s);
        return rt_errf(e, "%s: %lld values per sample, but the model's input '%s' %s%s takes %lld per sample",
                       d->images_path, (long long)d->per_sample, x->name, rt_dtype_name(x->dtype), s,
                       (long long)per);
    }
    int64_t classes = rt_manifest_classes(m);
    if (classes > 0)
        for (int64_t i = 0; i < d->count; i++)
            if (d->labels[i] >= classes)
                return rt_errf(e, "%s: record %lld (byte offset %lld) has label %d, but the model has %lld classes",
                               d->labels_path, (long long)i, (long long)(8 + i), d->labels[i], (long long)classes);
    return RT_OK;
}

void rt_dataset_limit(RtDataset *d, int64_t limit) {
    if (limit >= 0 && limit < d->count)
        d->count = limit;
}

void rt_dataset_free(RtDataset *d) {
    free(d->images);
    free(d->labels);
    free(d->images_path);
    free(d->labels_path);
    memset(d, 0, sizeof *d);
}

void rt_dataset_gather(const RtDataset *d, const int64_t *idx, int64_t n, RtDType xt, void *x, RtDType yt,
                       void *y) {
    /* A scale of 1/k is applied as a division by k, as torchvision's ToTensor does (x / 255), so that
       the inputs match PyTorch's bit for bit. */
    double table[256], inv = 1.0 / d->scale;
    bool divide = d->scale > 0 && inv == nearbyint(inv) && inv < 1e9;
    for (int v = 0; v < 256; v++) {
        if (xt == RT_F32)
            table[v] = divide ? (float)v / (float)inv : (float)(v * d->scale);
        else
            table[v] = divide ? v / inv : v * d->scale;
    }
    int64_t ps = d->per_sample;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *src = d->images + idx[i] * ps;
        if (xt == RT_F32) {
            float *dst = (float *)x + i * ps;
            for (int64_t k = 0; k < ps; k++)
                dst[k] = (float)table[src[k]];
        } else {
            for (int64_t k = 0; k < ps; k++)
                rt_store(xt, x, i * ps + k, table[src[k]]);
        }
        if (y)
            rt_store(yt, y, i, d->labels[idx[i]]);
    }
}

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
