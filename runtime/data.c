/* data.c: a dataset as the recipe's data source names it (idx here; text and csv in textdata.c), checked
   against the model's inputs, and the gathering of one batch into the input buffers of a graph (the order
   and the loader are in loader.c). IDX
   and text samples stay as bytes until gathered: four times less memory than floats. */
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

static int idx_load(RtDataset *d, RtErr *e) {
    RtIdx im, lb;
    if (rt_idx_read(d->images_path, 2, RT_IDX_MAX_DIMS, &im, e) != RT_OK)
        return RT_ERR;
    if (rt_idx_read(d->labels_path, 1, 1, &lb, e) != RT_OK) {
        rt_idx_free(&im);
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
        return rc;
    }
    d->count = im.count;
    d->per_sample = im.per_item;
    d->per_label = 1;
    d->images = im.data;
    d->labels = lb.data;
    return RT_OK;
}

int rt_dataset_load(RtDataset *d, const char *dir, const RtDataSpec *spec, RtErr *e) {
    memset(d, 0, sizeof *d);
    d->kind = spec->kind;
    d->scale = spec->scale;
    d->images_path = resolve(dir, spec->images);
    d->labels_path = resolve(dir, spec->kind == RT_DATA_IDX ? spec->labels : spec->images);
    if (!d->images_path || !d->labels_path) {
        rt_dataset_free(d);
        return rt_errf(e, "out of memory");
    }
    int rc = spec->kind == RT_DATA_TEXT ? rt_text_load(d, spec, e)
             : spec->kind == RT_DATA_CSV ? rt_csv_load(d, spec, e)
                                         : idx_load(d, e);
    if (rc != RT_OK)
        rt_dataset_free(d);
    return rc;
}

const RtTensorSpec *rt_manifest_input(const RtManifest *m, const char *name) {
    for (int i = 0; i < m->ninputs; i++)
        if (strcmp(m->inputs[i].name, name) == 0)
            return &m->inputs[i];
    return NULL;
}

static bool is_int_dtype(RtDType t) { return t == RT_I32 || t == RT_I64 || t == RT_U8; }

/* The labels must be class indices below the model's class count (the last dimension of its prediction): an
   index beyond it would be read as no class at all by the loss. */
static int check_classes(const RtDataset *d, int64_t classes, RtErr *e) {
    switch (d->kind) {
    case RT_DATA_IDX:
        for (int64_t i = 0; i < d->count; i++)
            if (d->labels[i] >= classes)
                return rt_errf(e, "%s: record %lld (byte offset %lld) has label %d, but the model has %lld classes",
                               d->labels_path, (long long)i, (long long)(8 + i), d->labels[i], (long long)classes);
        break;
    case RT_DATA_TEXT: {
        /* bytes are both inputs and labels: every byte a sample reads must be a token of the model */
        int64_t used = (d->count - 1) * d->stride + d->per_sample + 1;
        for (int64_t i = 0; i < used && i < d->size; i++)
            if (d->images[i] >= classes)
                return rt_errf(e, "%s: byte offset %lld holds byte %d, but the model has %lld tokens (0 to %lld)",
                               d->images_path, (long long)i, d->images[i], (long long)classes,
                               (long long)classes - 1);
        break;
    }
    case RT_DATA_CSV:
        if (d->regression)
            break;
        for (int64_t i = 0; i < d->count; i++)
            if (d->targets[i] >= (double)classes)
                return rt_errf(e, "%s:%lld: label %lld, but the model has %lld classes", d->images_path,
                               (long long)d->lines[i], (long long)d->targets[i], (long long)classes);
        break;
    }
    return RT_OK;
}

int rt_dataset_check(const RtDataset *d, const RtManifest *m, const char *what, RtErr *e) {
    if (m->ninputs < 1)
        return rt_errf(e, "the model declares no inputs to feed the %s data to", what);
    const RtTensorSpec *x = &m->inputs[0];
    int64_t per = 1;
    rt_numel(x, 1, &per);
    char s[128];
    rt_shape_text(x->shape, x->rank, s, sizeof s);
    if (per != d->per_sample) {
        switch (d->kind) {
        case RT_DATA_IDX:
            return rt_errf(e, "%s: %lld values per sample, but the model's input '%s' %s%s takes %lld per sample",
                           d->images_path, (long long)d->per_sample, x->name, rt_dtype_name(x->dtype), s,
                           (long long)per);
        case RT_DATA_TEXT:
            return rt_errf(e, "%s: text(..., context = %lld) gives %lld tokens per sample, but the model's input "
                           "'%s' %s%s takes %lld", d->images_path, (long long)d->per_sample,
                           (long long)d->per_sample, x->name, rt_dtype_name(x->dtype), s, (long long)per);
        case RT_DATA_CSV:
            return rt_errf(e, "%s: %lld feature columns per record (the columns less the label), but the model's "
                           "input '%s' %s%s takes %lld values per sample", d->images_path,
                           (long long)d->per_sample, x->name, rt_dtype_name(x->dtype), s, (long long)per);
        }
    }
    const RtTensorSpec *y = m->ninputs > 1 ? &m->inputs[1] : NULL;
    if (y) {
        int64_t per_y = 1;
        rt_numel(y, 1, &per_y);
        rt_shape_text(y->shape, y->rank, s, sizeof s);
        if (per_y != d->per_label)
            return rt_errf(e, "%s: %lld label%s per sample, but the model's '%s' %s%s takes %lld per sample",
                           d->labels_path, (long long)d->per_label, d->per_label == 1 ? "" : "s", y->name,
                           rt_dtype_name(y->dtype), s, (long long)per_y);
        if (d->kind == RT_DATA_CSV && d->regression && is_int_dtype(y->dtype))
            return rt_errf(e, "%s: csv(..., regression = true) gives real-valued labels, but the model's '%s' is "
                           "%s%s", d->labels_path, y->name, rt_dtype_name(y->dtype), s);
    }
    /* classes only where labels are class indices: idx labels, and integer labels of text and csv */
    int64_t classes = rt_manifest_classes(m);
    if (classes > 0 && (d->kind == RT_DATA_IDX || (y && is_int_dtype(y->dtype))))
        return check_classes(d, classes, e);
    return RT_OK;
}

void rt_dataset_limit(RtDataset *d, int64_t limit) {
    if (limit >= 0 && limit < d->count)
        d->count = limit;
}

void rt_dataset_free(RtDataset *d) {
    free(d->images);
    free(d->labels);
    free(d->features);
    free(d->targets);
    free(d->lines);
    free(d->images_path);
    free(d->labels_path);
    memset(d, 0, sizeof *d);
}

double rt_dataset_label(const RtDataset *d, int64_t i, int64_t k) {
    switch (d->kind) {
    case RT_DATA_IDX: return d->labels[i];
    case RT_DATA_TEXT: return d->images[i * d->stride + k + 1];
    case RT_DATA_CSV: return d->targets[i];
    }
    return NAN;
}

static void gather_idx(const RtDataset *d, const int64_t *idx, int64_t n, RtDType xt, void *x) {
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
    }
}

/* bytes[0..t) of each sample's window into out (tokens as t's dtype); shift 1 gives the labels */
static void gather_text(const RtDataset *d, const int64_t *idx, int64_t n, int64_t shift, RtDType t, void *out) {
    int64_t len = d->per_sample;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *src = d->images + idx[i] * d->stride + shift;
        if (t == RT_I64) {
            int64_t *dst = (int64_t *)out + i * len;
            for (int64_t k = 0; k < len; k++)
                dst[k] = src[k];
        } else {
            for (int64_t k = 0; k < len; k++)
                rt_store(t, out, i * len + k, src[k]);
        }
    }
}

void rt_dataset_gather(const RtDataset *d, const int64_t *idx, int64_t n, RtDType xt, void *x, RtDType yt,
                       void *y) {
    switch (d->kind) {
    case RT_DATA_IDX:
        gather_idx(d, idx, n, xt, x);
        break;
    case RT_DATA_TEXT:
        gather_text(d, idx, n, 0, xt, x);
        if (y)
            gather_text(d, idx, n, 1, yt, y);
        return;
    case RT_DATA_CSV:
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < d->per_sample; k++)
                rt_store(xt, x, i * d->per_sample + k, d->features[idx[i] * d->per_sample + k]);
        break;
    }
    if (y)
        for (int64_t i = 0; i < n; i++)
            rt_store(yt, y, i, rt_dataset_label(d, idx[i], 0));
}
