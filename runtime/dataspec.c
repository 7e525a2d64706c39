/* dataspec.c: the recipe's data sources (data = idx(...), test = csv(...)) read from the manifest's JSON into
   an RtDataSpec; rt_dataset_load then loads the files. */
#include "rt.h"

#include <string.h>

static int idx_spec(const json_t *v, const char *key, RtDataSpec *d, RtErr *e) {
    static const char *const known[] = {"images", "labels", "scale"};
    if (rt_call_check(v, key, "idx(images, labels, scale = 1)", known, 3, 3, e) != RT_OK)
        return RT_ERR;
    json_t *im = rt_call_arg(v, "images", 0), *lb = rt_call_arg(v, "labels", 1), *scale = rt_call_arg(v, "scale", 2);
    if (!json_is_string(im) || !json_is_string(lb))
        return rt_errf(e, "recipe key %s: idx needs the images and labels files as strings", key);
    d->images = json_string_value(im);
    d->labels = json_string_value(lb);
    d->scale = 1.0;
    if (scale) {
        if (!json_is_number(scale))
            return rt_errf(e, "recipe key %s: scale must be a number", key);
        d->scale = json_number_value(scale);
    }
    return RT_OK;
}

/* context defaults to the model's tokens per sample: x i64[N, T] */
static int text_spec(const json_t *v, const char *key, const RtManifest *m, RtDataSpec *d, RtErr *e) {
    static const char *const known[] = {"file", "context", "stride"};
    if (rt_call_check(v, key, "text(file, context = T, stride = T)", known, 3, 3, e) != RT_OK)
        return RT_ERR;
    json_t *file = rt_call_arg(v, "file", 0);
    if (!json_is_string(file))
        return rt_errf(e, "recipe key %s: text needs the file name as a string", key);
    d->images = json_string_value(file);
    int64_t model_t = 0;
    if (m->ninputs > 0 && !rt_numel(&m->inputs[0], 1, &model_t))
        model_t = 0;
    if (rt_call_int(v, key, "context", 1, model_t, 1, &d->context, e) != RT_OK)
        return RT_ERR;
    if (d->context < 1)
        return rt_errf(e, "recipe key %s: text needs context = T (the model's input gives none)", key);
    return rt_call_int(v, key, "stride", 2, d->context, 1, &d->stride, e);
}

static int csv_spec(const json_t *v, const char *key, RtDataSpec *d, RtErr *e) {
    static const char *const known[] = {"file", "header", "label_column", "regression"};
    if (rt_call_check(v, key, "csv(file, header = true, label_column = -1, regression = false)", known, 4, 4, e) != RT_OK)
        return RT_ERR;
    json_t *file = rt_call_arg(v, "file", 0);
    if (!json_is_string(file))
        return rt_errf(e, "recipe key %s: csv needs the file name as a string", key);
    d->images = json_string_value(file);
    if (rt_call_bool(v, key, "header", 1, true, &d->header, e) != RT_OK ||
        rt_call_int(v, key, "label_column", 2, -1, INT32_MIN, &d->label_column, e) != RT_OK ||
        rt_call_bool(v, key, "regression", 3, false, &d->regression, e) != RT_OK)
        return RT_ERR;
    return RT_OK;
}

int rt_data_spec_parse(const json_t *v, const RtManifest *m, const char *key, RtDataSpec *d, RtErr *e) {
    memset(d, 0, sizeof *d);
    if (!v)
        return RT_OK;
    const char *call = json_string_value(json_object_get(v, "call"));
    int rc;
    if (call && strcmp(call, "idx") == 0) {
        d->kind = RT_DATA_IDX;
        rc = idx_spec(v, key, d, e);
    } else if (call && strcmp(call, "text") == 0) {
        d->kind = RT_DATA_TEXT;
        rc = text_spec(v, key, m, d, e);
    } else if (call && strcmp(call, "csv") == 0) {
        d->kind = RT_DATA_CSV;
        rc = csv_spec(v, key, d, e);
    } else {
        return rt_errf(e, "recipe key %s: the runtime reads idx(images, labels, scale = S), text(file, context = T, "
                       "stride = T) and csv(file, header = true, label_column = -1, regression = false)", key);
    }
    d->present = rc == RT_OK;
    return rc;
}

