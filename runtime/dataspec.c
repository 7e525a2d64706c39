/* dataspec.c: the recipe's data sources (data = idx(...), test = csv(...)) read from the manifest's JSON into
   an RtDataSpec; rt_dataset_load then loads the files. The model's input fills in what a source leaves to
   it: text's context, and the height and width every image of images(folder) must have. */
#include "rt.h"
#include "rexpr.h"

#include <math.h>
#include <string.h>

/* The file (or folder) argument arg; what names it in messages ("file name"). */
static int file_arg(const json_t *v, const char *key, const char *source, const char *arg, const char *what,
                    const char **out, RtErr *e) {
    json_t *f = rt_call_arg(v, arg, 0);
    if (!json_is_string(f))
        return rt_errf(e, "recipe key %s: %s needs the %s as a string", key, source, what);
    *out = json_string_value(f);
    return RT_OK;
}

/* An argument that may be any number (a scale). */
static int number_arg(const json_t *v, const char *key, const char *arg, int pos, double dflt, double *out, RtErr *e) {
    json_t *a = rt_call_arg(v, arg, pos);
    *out = dflt;
    if (!a)
        return RT_OK;
    if (!json_is_number(a))
        return rt_errf(e, "recipe key %s: %s must be a number", key, arg);
    *out = json_number_value(a);
    return RT_OK;
}

static int idx_spec(const json_t *v, const char *key, RtDataSpec *d, RtErr *e) {
    static const char *const known[] = {"images", "labels", "scale"};
    if (rt_call_check(v, key, "idx(images, labels, scale = 1)", known, 3, 3, e) != RT_OK)
        return RT_ERR;
    json_t *im = rt_call_arg(v, "images", 0), *lb = rt_call_arg(v, "labels", 1);
    if (!json_is_string(im) || !json_is_string(lb))
        return rt_errf(e, "recipe key %s: idx needs the images and labels files as strings", key);
    d->images = json_string_value(im);
    d->labels = json_string_value(lb);
    return number_arg(v, key, "scale", 2, 1.0, &d->scale, e);
}

/* context defaults to the model's tokens per sample: x i64[N, T] */
static int text_spec(const json_t *v, const char *key, const RtManifest *m, RtDataSpec *d, RtErr *e) {
    static const char *const known[] = {"file", "context", "stride", "tokens", "lines", "pad"};
    if (rt_call_check(v, key, "text(file, context = T, stride = T, tokens = \"bytes\", lines = false, pad = 0)",
                      known, 6, 3, e) != RT_OK)
        return RT_ERR;
    if (file_arg(v, key, "text", "file", "file name", &d->images, e) != RT_OK)
        return RT_ERR;
    int64_t model_t = 0;
    if (m->ninputs > 0 && !rt_numel(&m->inputs[0], 1, &model_t))
        model_t = 0;
    if (rt_call_int(v, key, "context", 1, model_t, 1, &d->context, e) != RT_OK)
        return RT_ERR;
    if (d->context < 1)
        return rt_errf(e, "recipe key %s: text needs context = T (the model's input gives none)", key);
    json_t *tokens = rt_call_arg(v, "tokens", -1);
    const char *tk = tokens ? json_string_value(tokens) : "bytes";
    if (!tk || (strcmp(tk, "bytes") != 0 && strcmp(tk, "chars") != 0))
        return rt_errf(e, "recipe key %s: text's tokens must be \"bytes\" or \"chars\"", key);
    d->chars = strcmp(tk, "chars") == 0;
    if (rt_call_bool(v, key, "lines", -1, false, &d->lines, e) != RT_OK ||
        rt_call_int(v, key, "pad", -1, 0, 0, &d->pad, e) != RT_OK)
        return RT_ERR;
    if (d->lines && rt_call_arg(v, "stride", 2))
        return rt_errf(e, "recipe key %s: text(..., lines = true) reads one sample a line and takes no stride", key);
    if (!d->lines && rt_call_arg(v, "pad", -1))
        return rt_errf(e, "recipe key %s: text's pad fills short lines and needs lines = true", key);
    return rt_call_int(v, key, "stride", 2, d->context, 1, &d->stride, e);
}

/* features: a non-empty list of column indices and header names */
static int csv_features(const json_t *v, const char *key, RtDataSpec *d, RtErr *e) {
    json_t *f = rt_call_arg(v, "features", 4);
    if (!f)
        return RT_OK;
    bool ok = json_is_array(f) && json_array_size(f) > 0;
    size_t i;
    json_t *item;
    json_array_foreach(f, i, item) {
        ok = ok && (json_is_integer(item) || json_is_string(item));
        if (json_is_string(item) && !d->header)
            return rt_errf(e, "recipe key %s: csv's features name the column '%s', which needs header = true (or "
                           "give the column's index)", key, json_string_value(item));
    }
    if (!ok)
        return rt_errf(e, "recipe key %s: csv's features must be a list of column indices (negative from the end) "
                       "and header names, such as [0, 2] or [\"sepal_length\", \"petal_width\"]", key);
    d->features = f;
    return RT_OK;
}

static int csv_spec(const json_t *v, const char *key, RtDataSpec *d, RtErr *e) {
    static const char *const known[] = {"file", "header", "label_column", "regression", "features", "labels",
                                        "delimiter"};
    if (rt_call_check(v, key, "csv(file, header = true, label_column = -1, regression = false, features = all but "
                      "the label, labels = \"auto\", delimiter = \",\")", known, 7, 7, e) != RT_OK)
        return RT_ERR;
    if (file_arg(v, key, "csv", "file", "file name", &d->images, e) != RT_OK ||
        rt_call_bool(v, key, "header", 1, true, &d->header, e) != RT_OK ||
        rt_call_bool(v, key, "regression", 3, false, &d->regression, e) != RT_OK)
        return RT_ERR;
    json_t *lc = rt_call_arg(v, "label_column", 2);
    if (json_is_string(lc)) {
        d->label_name = json_string_value(lc);
        if (!d->header)
            return rt_errf(e, "recipe key %s: csv's label_column = \"%s\" names a column, which needs header = true "
                           "(or give the column's index)", key, d->label_name);
    } else if (rt_call_int(v, key, "label_column", 2, -1, INT32_MIN, &d->label_column, e) != RT_OK) {
        return RT_ERR;
    }
    if (csv_features(v, key, d, e) != RT_OK)
        return RT_ERR;
    json_t *lb = rt_call_arg(v, "labels", 5);
    const char *kind = lb ? json_string_value(lb) : "auto";
    static const char *const kinds[] = {"auto", "numeric", "categorical"};
    int k = 0;
    while (k < 3 && !(kind && strcmp(kind, kinds[k]) == 0))
        k++;
    if (k == 3)
        return rt_errf(e, "recipe key %s: csv's labels must be \"auto\", \"numeric\" or \"categorical\"", key);
    d->labels_kind = (RtLabelsKind)k; /* the enum's order */
    if (d->regression && d->labels_kind == RT_LABELS_CATEGORICAL)
        return rt_errf(e, "recipe key %s: csv(..., regression = true) reads numbers as labels, not labels = "
                       "\"categorical\"", key);
    json_t *dl = rt_call_arg(v, "delimiter", 6);
    const char *delim = dl ? json_string_value(dl) : ",";
    if (!delim || strlen(delim) != 1 || (dl && json_string_length(dl) != 1) || strchr("\"\n\r", *delim))
        return rt_errf(e, "recipe key %s: csv's delimiter must be one byte such as \",\", \";\" or \"\\t\" (not a "
                       "quote or a line end)", key);
    d->delimiter = *delim;
    return RT_OK;
}

/* regression and label_shape type the model's labels for the compiler (which cannot read y's dtype):
   regression = true reads y as values whatever its dtype; a float y is values anyway. label_shape is checked
   as the model's label against y's shape. */
static int npy_spec(const json_t *v, const char *key, RtDataSpec *d, RtErr *e) {
    static const char *const known[] = {"x", "y", "scale", "regression", "label_shape"};
    if (rt_call_check(v, key, "npy(x, y = none, scale = 1, regression = false, label_shape = [K])", known, 5, 3,
                      e) != RT_OK)
        return RT_ERR;
    if (rt_call_bool(v, key, "regression", -1, false, &d->regression, e) != RT_OK)
        return RT_ERR;
    json_t *ls = rt_call_arg(v, "label_shape", -1);
    if (ls && !json_is_array(ls))
        return rt_errf(e, "recipe key %s: npy's label_shape must be a list of ints such as [3]", key);
    if (file_arg(v, key, "npy", "x", "file name of x", &d->images, e) != RT_OK)
        return RT_ERR;
    json_t *y = rt_call_arg(v, "y", 1);
    if (y && !json_is_null(y) && !json_is_string(y))
        return rt_errf(e, "recipe key %s: npy's y must be a file name as a string, or none", key);
    d->labels = json_string_value(y); /* NULL for none */
    return number_arg(v, key, "scale", 2, 1.0, &d->scale, e);
}

/* The model's input fixes the images' size: [N, C, H, W] or [N, H, W]; a flat input takes any size whose
   values per image it matches. */
static int images_spec(const json_t *v, const char *key, const RtManifest *m, RtDataSpec *d, RtErr *e) {
    static const char *const known[] = {"folder", "scale", "grayscale"};
    if (rt_call_check(v, key, "images(folder, scale = 1 / 255, grayscale = true)", known, 3, 3, e) != RT_OK)
        return RT_ERR;
    if (file_arg(v, key, "images", "folder", "folder name", &d->images, e) != RT_OK ||
        number_arg(v, key, "scale", 1, 1.0 / 255, &d->scale, e) != RT_OK ||
        rt_call_bool(v, key, "grayscale", 2, true, &d->grayscale, e) != RT_OK)
        return RT_ERR;
    if (m->ninputs < 1)
        return RT_OK;
    const RtTensorSpec *x = &m->inputs[0];
    int64_t c = d->grayscale ? 1 : 3;
    char s[128];
    rt_shape_text(x->shape, x->rank, s, sizeof s);
    if ((x->rank == 4 && x->shape[1] != c) || (x->rank == 3 && c != 1))
        return rt_errf(e, "recipe key %s: images(..., grayscale = %s) gives %lld channel%s [N, %lld, H, W], but the "
                       "model's input '%s' is %s%s", key, d->grayscale ? "true" : "false", (long long)c,
                       c == 1 ? "" : "s", (long long)c, x->name, rt_dtype_name(x->dtype), s);
    if (x->rank == 3 || x->rank == 4) {
        d->height = x->shape[x->rank - 2];
        d->width = x->shape[x->rank - 1];
    }
    return RT_OK;
}

/* x = uniform(a, b) or normal(mean, std): a call of two numbers. */
static int distribution(const json_t *x, const char *key, RtDataSpec *d, RtErr *e) {
    const char *name = json_string_value(json_object_get(x, "call"));
    bool normal = name && strcmp(name, "normal") == 0;
    if (!name || (!normal && strcmp(name, "uniform") != 0))
        return rt_errf(e, "recipe key %s: generate's x must be uniform(a, b) or normal(mean, std)", key);
    static const char *const ukw[] = {"a", "b"}, *const nkw[] = {"mean", "std"};
    const char *const *kw = normal ? nkw : ukw;
    const char *sig = normal ? "normal(mean, std)" : "uniform(a, b)";
    if (rt_call_check(x, key, sig, kw, 2, 2, e) != RT_OK)
        return RT_ERR;
    for (int i = 0; i < 2; i++)
        if (!rt_call_arg(x, kw[i], i))
            return rt_errf(e, "recipe key %s: generate's x = %s needs its %s", key, sig, kw[i]);
    d->x_normal = normal;
    if (rt_call_num(x, key, kw[0], 0, 0, -1e300, 1e300, &d->xa, e) != RT_OK ||
        rt_call_num(x, key, kw[1], 1, 0, normal ? 0 : -1e300, 1e300, &d->xb, e) != RT_OK)
        return RT_ERR;
    if (!normal && d->xb < d->xa)
        return rt_errf(e, "recipe key %s: generate's x = uniform(%g, %g) needs a <= b", key, d->xa, d->xb);
    return RT_OK;
}

static int generate_spec(const json_t *v, const char *key, RtDataSpec *d, RtErr *e) {
    static const char *const known[] = {"n", "x", "y", "noise", "seed"};
    if (rt_call_check(v, key, "generate(n, x = uniform(0, 10), y = 2 * x + 1, noise = 0, seed = 0)", known, 5, 5,
                      e) != RT_OK)
        return RT_ERR;
    if (!rt_call_arg(v, "n", 0))
        return rt_errf(e, "recipe key %s: generate needs the sample count n", key);
    int64_t seed;
    if (rt_call_int(v, key, "n", 0, 0, 1, &d->n, e) != RT_OK ||
        rt_call_num(v, key, "noise", 3, 0, 0, 1e300, &d->noise, e) != RT_OK ||
        rt_call_int(v, key, "seed", 4, 0, 0, &seed, e) != RT_OK)
        return RT_ERR;
    if (d->n > (1ll << 31))
        return rt_errf(e, "recipe key %s: generate's n must be at most 2^31", key);
    d->seed = (uint64_t)seed;
    json_t *x = rt_call_arg(v, "x", 1);
    d->xa = 0, d->xb = 10;
    if (x && distribution(x, key, d, e) != RT_OK)
        return RT_ERR;
    d->y_expr = rt_call_arg(v, "y", 2); /* NULL: 2 * x + 1 */
    if (d->y_expr) {
        static const char *const names[] = {"x"};
        RtErr why;
        if (rt_rexpr_check(d->y_expr, names, 1, &why) != RT_OK)
            return rt_errf(e, "recipe key %s: generate's y: %s", key, why.msg);
    }
    return RT_OK;
}

int rt_data_spec_parse(const json_t *v, const RtManifest *m, const char *key, RtDataSpec *d, RtErr *e) {
    memset(d, 0, sizeof *d);
    if (!v || json_is_null(v)) /* absent, or `none` (--set test=none): no such source */
        return RT_OK;
    static const struct {
        const char *name;
        RtDataKind kind;
    } sources[] = {{"idx", RT_DATA_IDX},       {"text", RT_DATA_TEXT},     {"csv", RT_DATA_CSV},
                   {"npy", RT_DATA_NPY},       {"images", RT_DATA_IMAGES}, {"generate", RT_DATA_GENERATE}};
    const char *call = json_string_value(json_object_get(v, "call"));
    size_t k = 0;
    while (k < sizeof sources / sizeof *sources && !(call && strcmp(call, sources[k].name) == 0))
        k++;
    if (k == sizeof sources / sizeof *sources)
        return rt_errf(e, "recipe key %s: the runtime reads idx(images, labels), text(file), csv(file), npy(x, y), "
                       "images(folder) and generate(n, x, y)%s%s", key, call ? ", not " : "", call ? call : "");
    d->kind = sources[k].kind;
    int rc;
    switch (d->kind) {
    case RT_DATA_IDX: rc = idx_spec(v, key, d, e); break;
    case RT_DATA_TEXT: rc = text_spec(v, key, m, d, e); break;
    case RT_DATA_CSV: rc = csv_spec(v, key, d, e); break;
    case RT_DATA_NPY: rc = npy_spec(v, key, d, e); break;
    case RT_DATA_IMAGES: rc = images_spec(v, key, m, d, e); break;
    default: rc = generate_spec(v, key, d, e); break;
    }
    d->present = rc == RT_OK;
    return rc;
}
