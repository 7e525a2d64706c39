/* data.c: a dataset as the recipe's data source names it (idx here; text and csv in textdata.c, npy in npy.c,
   images in imgdir.c, generate in gendata.c), checked against the model's inputs, and the gathering of one
   batch into the input buffers of a graph (the order and the loader are in loader.c). Samples stay in the
   dtype of their file until gathered: IDX images as bytes take four times less memory than floats. */
#include "rt.h"
#include "budget.h"

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
    d->images_dtype = d->labels_dtype = RT_U8;
    d->labels_offset = 8;
    return RT_OK;
}

/* generate has no file: its "path" in messages is the call */
static char *describe_generate(const RtDataSpec *spec) {
    char buf[128];
    snprintf(buf, sizeof buf, "generate(n = %lld)", (long long)spec->n);
    return strdup(buf);
}

static int load_source(RtDataset *d, const char *dir, const RtDataSpec *spec, RtErr *e) {
    d->kind = spec->kind;
    d->scale = spec->scale;
    if (spec->kind == RT_DATA_GENERATE) {
        d->images_path = describe_generate(spec);
        d->labels_path = describe_generate(spec);
    } else if (!spec->images) {
        return rt_errf(e, "internal error: a data source without a file");
    } else {
        bool two = (spec->kind == RT_DATA_IDX || spec->kind == RT_DATA_NPY) && spec->labels;
        d->images_path = resolve(dir, spec->images);
        d->labels_path = resolve(dir, two ? spec->labels : spec->images);
    }
    if (!d->images_path || !d->labels_path) {
        rt_dataset_free(d);
        return rt_errf(e, "out of memory");
    }
    int rc;
    switch (spec->kind) {
    case RT_DATA_IDX: rc = spec->labels ? idx_load(d, e) : rt_errf(e, "idx needs a labels file"); break;
    case RT_DATA_TEXT: rc = rt_text_load(d, spec, e); break;
    case RT_DATA_CSV: rc = rt_csv_load(d, spec, e); break;
    case RT_DATA_NPY: rc = rt_npy_load(d, spec, e); break;
    case RT_DATA_IMAGES: rc = rt_images_load(d, spec, e); break;
    case RT_DATA_GENERATE: rc = rt_generate_load(d, spec, e); break;
    default: rc = rt_errf(e, "internal error: data source kind %d", (int)spec->kind); break;
    }
    if (rc != RT_OK)
        rt_dataset_free(d);
    return rc;
}

/* The files of one data source, its labels with it, are one load of the readers' budget (budget.h). */
int rt_dataset_load(RtDataset *d, const char *dir, const RtDataSpec *spec, RtErr *e) {
    memset(d, 0, sizeof *d);
    RtBudget b;
    if (rt_budget_begin(&b, "data set", e) != RT_OK)
        return RT_ERR;
    int rc = load_source(d, dir, spec, e);
    rt_budget_end(&b);
    return rc;
}

const RtTensorSpec *rt_manifest_input(const RtManifest *m, const char *name) {
    for (int i = 0; i < m->ninputs; i++)
        if (strcmp(m->inputs[i].name, name) == 0)
            return &m->inputs[i];
    return NULL;
}

static bool is_int_dtype(RtDType t) { return t == RT_I32 || t == RT_I64 || t == RT_U8; }

static int64_t text_token(const RtDataset *d, int64_t j) {
    return d->images_dtype == RT_U8 ? d->images[j] : ((const int32_t *)d->images)[j];
}

/* ---------------------------------------------------------------- checks against the model */

/* Text tokens are both inputs and labels: every token a sample reads must be a token of the model. */
static int check_text_tokens(const RtDataset *d, int64_t classes, RtErr *e) {
    if (d->vocab) {
        if (d->nvocab > classes)
            return rt_errf(e, "%s: text(..., tokens = \"chars\") finds %lld distinct characters, but the model has "
                           "%lld tokens", d->images_path, (long long)d->nvocab, (long long)classes);
    } else if (d->offsets) {
        for (int64_t i = 0; i < d->count; i++)
            for (int64_t j = d->offsets[i]; j < d->offsets[i + 1]; j++)
                if (text_token(d, j) >= classes)
                    return rt_errf(e, "%s:%lld: byte %lld of the line is %lld, but the model has %lld tokens (0 to "
                                   "%lld)", d->images_path, (long long)d->lines[i], (long long)(j - d->offsets[i]),
                                   (long long)text_token(d, j), (long long)classes, (long long)classes - 1);
    } else {
        int64_t used = (d->count - 1) * d->stride + d->per_sample + 1;
        for (int64_t i = 0; i < used && i < d->size; i++)
            if (d->images[i] >= classes)
                return rt_errf(e, "%s: byte offset %lld holds byte %d, but the model has %lld tokens (0 to %lld)",
                               d->images_path, (long long)i, d->images[i], (long long)classes,
                               (long long)classes - 1);
    }
    if (d->offsets && (d->pad < 0 || d->pad >= classes))
        return rt_errf(e, "%s: text(..., pad = %lld): the pad token is not one of the model's %lld tokens",
                       d->images_path, (long long)d->pad, (long long)classes);
    return RT_OK;
}

/* Stored labels (idx, npy, images) must be class indices in [0, classes): an index beyond would be read as no
   class at all by the loss. */
static int check_stored_classes(const RtDataset *d, int64_t classes, RtErr *e) {
    int64_t total = d->count * d->per_label;
    size_t size = rt_dtype_size(d->labels_dtype);
    for (int64_t i = 0; i < total; i++) {
        double v = rt_load(d->labels_dtype, d->labels, i);
        if (v >= 0 && v < (double)classes)
            continue;
        int64_t rec = i / (d->per_label ? d->per_label : 1);
        if (d->kind == RT_DATA_IMAGES)
            return rt_errf(e, "%s: class folder %lld ('%s') is beyond the model's %lld classes", d->images_path,
                           (long long)v, d->class_names && v < d->nclass_names ? d->class_names[(int64_t)v] : "?",
                           (long long)classes);
        return rt_errf(e, "%s: record %lld (byte offset %lld) has label %lld, but the model has %lld classes (0 to "
                       "%lld)", d->labels_path, (long long)rec, (long long)(d->labels_offset + i * (int64_t)size),
                       (long long)v, (long long)classes, (long long)classes - 1);
    }
    return RT_OK;
}

static int check_classes(const RtDataset *d, int64_t classes, RtErr *e) {
    switch (d->kind) {
    case RT_DATA_TEXT: return check_text_tokens(d, classes, e);
    case RT_DATA_CSV:
        if (d->regression)
            break;
        for (int64_t i = 0; i < d->count; i++)
            if (d->targets[i] >= (double)classes)
                return rt_errf(e, "%s:%lld: label %lld, but the model has %lld classes", d->images_path,
                               (long long)d->lines[i], (long long)d->targets[i], (long long)classes);
        break;
    case RT_DATA_GENERATE: break;
    default:
        if (d->labels && !d->regression)
            return check_stored_classes(d, classes, e);
        break;
    }
    return RT_OK;
}

static int check_per_sample(const RtDataset *d, const RtTensorSpec *x, int64_t per, RtErr *e) {
    char s[128];
    rt_shape_text(x->shape, x->rank, s, sizeof s);
    const char *dt = rt_dtype_name(x->dtype);
    long long got = (long long)d->per_sample, want = (long long)per;
    switch (d->kind) {
    case RT_DATA_TEXT:
        return rt_errf(e, "%s: text(..., context = %lld) gives %lld tokens per sample, but the model's input '%s' "
                       "%s%s takes %lld", d->images_path, got, got, x->name, dt, s, want);
    case RT_DATA_CSV:
        return rt_errf(e, "%s: %lld feature columns per record (the columns less the label), but the model's input "
                       "'%s' %s%s takes %lld values per sample", d->images_path, got, x->name, dt, s, want);
    case RT_DATA_IMAGES:
        return rt_errf(e, "%s: its images give %lld values each, but the model's input '%s' %s%s takes %lld per "
                       "sample", d->images_path, got, x->name, dt, s, want);
    case RT_DATA_GENERATE:
        return rt_errf(e, "%s gives x f32[N, 1], but the model's input '%s' is %s%s", d->images_path, x->name, dt, s);
    default:
        return rt_errf(e, "%s: %lld values per sample, but the model's input '%s' %s%s takes %lld per sample",
                       d->images_path, got, x->name, dt, s, want);
    }
}

int rt_dataset_check(const RtDataset *d, const RtManifest *m, const char *what, RtErr *e) {
    if (m->ninputs < 1)
        return rt_errf(e, "the model declares no inputs to feed the %s data to", what);
    const RtTensorSpec *x = &m->inputs[0];
    int64_t per = 1;
    rt_numel(x, 1, &per);
    if (per != d->per_sample)
        return check_per_sample(d, x, per, e);
    const RtTensorSpec *y = m->ninputs > 1 ? &m->inputs[1] : NULL;
    char s[128];
    if (y) {
        int64_t per_y = 1;
        rt_numel(y, 1, &per_y);
        rt_shape_text(y->shape, y->rank, s, sizeof s);
        if (d->kind == RT_DATA_NPY && !d->labels)
            return rt_errf(e, "%s: npy(x) without y gives no labels, but the model takes '%s' %s%s", d->images_path,
                           y->name, rt_dtype_name(y->dtype), s);
        if (per_y != d->per_label)
            return rt_errf(e, "%s: %lld label%s per sample, but the model's '%s' %s%s takes %lld per sample",
                           d->labels_path, (long long)d->per_label, d->per_label == 1 ? "" : "s", y->name,
                           rt_dtype_name(y->dtype), s, (long long)per_y);
        if (d->regression && is_int_dtype(y->dtype)) {
            const char *why = d->kind == RT_DATA_CSV ? "csv(..., regression = true) gives"
                              : d->kind == RT_DATA_NPY ? "npy's y holds"
                                                       : "generate gives";
            return rt_errf(e, "%s: %s real-valued labels, but the model's '%s' is %s%s%s", d->labels_path, why,
                           y->name, rt_dtype_name(y->dtype), s,
                           d->kind == RT_DATA_NPY ? " (npy(..., regression = true) types it as values)" : "");
        }
    }
    /* classes only where labels are class indices: idx and images labels, and integer labels of the others */
    int64_t classes = rt_manifest_classes(m);
    bool indices = d->kind == RT_DATA_IDX || d->kind == RT_DATA_IMAGES || (y && is_int_dtype(y->dtype));
    if (classes > 0 && indices)
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
    free(d->offsets);
    free(d->vocab);
    free(d->features);
    free(d->targets);
    free(d->lines);
    for (int i = 0; i < d->nclass_names; i++)
        free(d->class_names[i]);
    free(d->class_names);
    free(d->images_path);
    free(d->labels_path);
    memset(d, 0, sizeof *d);
}

/* text lines: the label of position k is the token after it, RT_IGNORE_LABEL past the line's end */
static int64_t line_label(const RtDataset *d, int64_t i, int64_t k) {
    int64_t start = d->offsets[i], len = d->offsets[i + 1] - start;
    return k + 1 < len ? text_token(d, start + k + 1) : RT_IGNORE_LABEL;
}

double rt_dataset_label(const RtDataset *d, int64_t i, int64_t k) {
    switch (d->kind) {
    case RT_DATA_TEXT:
        return (double)(d->offsets ? line_label(d, i, k) : text_token(d, i * d->stride + k + 1));
    case RT_DATA_CSV: return d->targets[i];
    default: return d->labels ? rt_load(d->labels_dtype, d->labels, i * d->per_label + k) : NAN;
    }
}

/* ---------------------------------------------------------------- gathering a batch */

/* A scale of 1/k is applied as a division by k, as torchvision's ToTensor does (x / 255), so that the inputs
   match PyTorch's bit for bit; a value is first rounded to the destination's precision. */
static double scaled(double v, double scale, bool divide, double inv, bool f32) {
    if (f32)
        return divide ? (float)v / (float)inv : (float)((float)v * scale);
    return divide ? v / inv : v * scale;
}

/* Samples stored as st (per values each) into out as t, times scale. */
static void gather_values(const uint8_t *src, RtDType st, int64_t per, double scale, const int64_t *idx, int64_t n,
                          RtDType t, void *out) {
    double inv = 1.0 / scale;
    bool divide = scale > 0 && scale != 1 && inv == nearbyint(inv) && inv < 1e9, f32 = t == RT_F32;
    size_t ss = rt_dtype_size(st), ts = rt_dtype_size(t);
    if (st == t && scale == 1) {
        for (int64_t i = 0; i < n; i++)
            memcpy((uint8_t *)out + (size_t)(i * per) * ts, src + (size_t)(idx[i] * per) * ss, (size_t)per * ss);
        return;
    }
    if (st == RT_U8) { /* a table of the 256 values */
        double table[256];
        for (int v = 0; v < 256; v++)
            table[v] = scale == 1 ? v : scaled(v, scale, divide, inv, f32);
        for (int64_t i = 0; i < n; i++) {
            const uint8_t *s = src + idx[i] * per;
            if (f32) {
                float *dst = (float *)out + i * per;
                for (int64_t k = 0; k < per; k++)
                    dst[k] = (float)table[s[k]];
            } else {
                for (int64_t k = 0; k < per; k++)
                    rt_store(t, out, i * per + k, table[s[k]]);
            }
        }
        return;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < per; k++) {
            double v = rt_load(st, src, idx[i] * per + k);
            rt_store(t, out, i * per + k, scale == 1 ? v : scaled(v, scale, divide, inv, f32));
        }
}

/* tokens [0..len) of each sample's window into out (as t); shift 1 gives the labels */
static void gather_text(const RtDataset *d, const int64_t *idx, int64_t n, int64_t shift, RtDType t, void *out) {
    int64_t len = d->per_sample;
    for (int64_t i = 0; i < n; i++) {
        int64_t start = idx[i] * d->stride + shift;
        if (t == RT_I64 && d->images_dtype == RT_U8) {
            const uint8_t *src = d->images + start;
            int64_t *dst = (int64_t *)out + i * len;
            for (int64_t k = 0; k < len; k++)
                dst[k] = src[k];
        } else {
            for (int64_t k = 0; k < len; k++)
                rt_store(t, out, i * len + k, (double)text_token(d, start + k));
        }
    }
}

/* text lines: each line's first T tokens, padded with pad; the labels the tokens after them */
static void gather_lines(const RtDataset *d, const int64_t *idx, int64_t n, RtDType xt, void *x, RtDType yt,
                         void *y) {
    int64_t t = d->per_sample;
    for (int64_t i = 0; i < n; i++) {
        int64_t start = d->offsets[idx[i]], len = d->offsets[idx[i] + 1] - start;
        for (int64_t k = 0; k < t; k++) {
            rt_store(xt, x, i * t + k, (double)(k < len ? text_token(d, start + k) : d->pad));
            if (y)
                rt_store(yt, y, i * t + k, (double)line_label(d, idx[i], k));
        }
    }
}

void rt_dataset_gather(const RtDataset *d, const int64_t *idx, int64_t n, RtDType xt, void *x, RtDType yt,
                       void *y) {
    switch (d->kind) {
    case RT_DATA_TEXT:
        if (d->offsets) {
            gather_lines(d, idx, n, xt, x, yt, y);
        } else {
            gather_text(d, idx, n, 0, xt, x);
            if (y)
                gather_text(d, idx, n, 1, yt, y);
        }
        return;
    case RT_DATA_CSV:
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < d->per_sample; k++)
                rt_store(xt, x, i * d->per_sample + k, d->features[idx[i] * d->per_sample + k]);
        if (y)
            for (int64_t i = 0; i < n; i++)
                rt_store(yt, y, i, d->targets[idx[i]]);
        return;
    default:
        gather_values(d->images, d->images_dtype, d->per_sample, d->scale, idx, n, xt, x);
        if (y && d->labels)
            gather_values(d->labels, d->labels_dtype, d->per_label, 1, idx, n, yt, y);
        return;
    }
}
