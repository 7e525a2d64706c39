/* transforms.c: the recipe's transforms (scale, normalize, random_crop, random_hflip, as torchvision's),
   read from the recipe and applied in place to each gathered sample. The random ones draw from a
   generator keyed by (seed, epoch, sample index), so that a sample's values depend on nothing else. */
#include "rt.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

static const char *const TF_NAMES[] = {"scale", "normalize", "random_crop", "random_hflip"};
static const char *const TF_SIGS[] = {"scale(factor)", "normalize(mean, std)", "random_crop(size, padding = 0)",
                                      "random_hflip(p = 0.5)"};
/* names from torchvision and elsewhere that a user may write, for "did you mean" */
static const struct {
    const char *alias;
    RtTransformKind kind;
} TF_ALIASES[] = {
    {"Normalize", RT_TF_NORMALIZE},           {"RandomCrop", RT_TF_RANDOM_CROP},
    {"RandomHorizontalFlip", RT_TF_RANDOM_HFLIP}, {"hflip", RT_TF_RANDOM_HFLIP},
    {"random_horizontal_flip", RT_TF_RANDOM_HFLIP}, {"crop", RT_TF_RANDOM_CROP},
    {"mul", RT_TF_SCALE},                     {"multiply", RT_TF_SCALE},
};
#define NKINDS 4
#define MAX_PADDING 65536

static int unknown_transform(const char *name, RtErr *e) {
    int best = -1, bestd = 1 << 30;
    for (int k = 0; k < NKINDS; k++) {
        int d = rt_edit_distance(name, TF_NAMES[k]);
        if (d < bestd)
            best = k, bestd = d;
    }
    for (size_t k = 0; k < sizeof TF_ALIASES / sizeof TF_ALIASES[0]; k++) {
        int d = rt_edit_distance(name, TF_ALIASES[k].alias);
        if (d < bestd)
            best = (int)TF_ALIASES[k].kind, bestd = d;
    }
    int len = (int)strlen(name);
    if (bestd <= (len < 6 ? 1 : len / 3))
        return rt_errf(e, "recipe key transforms: unknown transform '%s' (did you mean %s?)", name,
                       TF_SIGS[best]);
    return rt_errf(e, "recipe key transforms: unknown transform '%s'; the transforms: scale, normalize, "
                   "random_crop, random_hflip", name);
}

/* The geometry of one sample of x: channels (dimension 1) and values per channel; the image's planes, H, W
   (the last two dimensions). */
typedef struct Geometry {
    int64_t per, channels, inner, planes, h, w;
} Geometry;

static Geometry geometry(const RtTensorSpec *x) {
    Geometry g = {1, 1, 1, 1, 0, 0};
    rt_numel(x, 1, &g.per);
    if (x->rank >= 2 && x->shape[1] > 0) {
        g.channels = x->shape[1];
        g.inner = g.per / g.channels;
    } else {
        g.inner = g.per;
    }
    if (x->rank >= 3 && x->shape[x->rank - 2] > 0 && x->shape[x->rank - 1] > 0) {
        g.h = x->shape[x->rank - 2];
        g.w = x->shape[x->rank - 1];
        g.planes = g.per / (g.h * g.w);
    }
    return g;
}

/* "'x' f32[N, 1, 28, 28]" for messages */
static const char *input_text(const RtTensorSpec *x, char *buf, size_t n) {
    char s[128];
    rt_shape_text(x->shape, x->rank, s, sizeof s);
    snprintf(buf, n, "'%s' %s%s", x->name ? x->name : "x", rt_dtype_name(x->dtype), s);
    return buf;
}

/* One value or a list of them into out[0..*count); a count other than 1 must be the channel count. */
static int read_values(const json_t *call, const char *arg, int pos, const RtTensorSpec *x, int64_t channels,
                       double *out, int *count, RtErr *e) {
    json_t *v = rt_call_arg(call, arg, pos);
    char in[192];
    if (!v)
        return rt_errf(e, "recipe key transforms: normalize: %s is missing (normalize(mean = [0.5], std = [0.5]))",
                       arg);
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (json_is_array(v) && n == 0)
        return rt_errf(e, "recipe key transforms: normalize: %s is an empty list", arg);
    if (n != 1 && (int64_t)n != channels)
        return rt_errf(e, "recipe key transforms: normalize: %s has %zu values, but the input %s has %lld "
                       "channel%s (dimension 1): give one value, or one per channel", arg, n,
                       input_text(x, in, sizeof in), (long long)channels, channels == 1 ? "" : "s");
    if (n > RT_TF_MAX_CHANNELS)
        return rt_errf(e, "recipe key transforms: normalize: %s has %zu values; at most %d channels take their "
                       "own", arg, n, RT_TF_MAX_CHANNELS);
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_number(a) || !isfinite(json_number_value(a)))
            return rt_errf(e, "recipe key transforms: normalize: %s must be a number or a list of numbers", arg);
        out[i] = json_number_value(a);
        if (strcmp(arg, "std") == 0 && out[i] == 0)
            return rt_errf(e, "recipe key transforms: normalize: std %s0 would divide by zero",
                           n > 1 ? "holds " : "is ");
    }
    *count = (int)n;
    return RT_OK;
}

static int parse_normalize(const json_t *call, const RtTensorSpec *x, RtTransform *t, RtErr *e) {
    static const char *const known[] = {"mean", "std"};
    if (rt_call_check(call, "transforms", TF_SIGS[RT_TF_NORMALIZE], known, 2, 2, e) != RT_OK)
        return RT_ERR;
    int64_t channels = geometry(x).channels;
    int nm, ns;
    double mean[RT_TF_MAX_CHANNELS], std[RT_TF_MAX_CHANNELS];
    if (read_values(call, "mean", 0, x, channels, mean, &nm, e) != RT_OK ||
        read_values(call, "std", 1, x, channels, std, &ns, e) != RT_OK)
        return RT_ERR;
    t->nch = nm > ns ? nm : ns;
    for (int c = 0; c < t->nch; c++) {
        t->mean[c] = mean[nm == 1 ? 0 : c];
        t->std[c] = std[ns == 1 ? 0 : c];
    }
    return RT_OK;
}

static int parse_scale(const json_t *call, RtTransform *t, RtErr *e) {
    static const char *const known[] = {"factor"};
    if (rt_call_check(call, "transforms", TF_SIGS[RT_TF_SCALE], known, 1, 1, e) != RT_OK)
        return RT_ERR;
    json_t *v = rt_call_arg(call, "factor", 0);
    if (!v || !json_is_number(v) || !isfinite(json_number_value(v)))
        return rt_errf(e, "recipe key transforms: scale: factor must be a number (scale(1 / 255))");
    t->scale = json_number_value(v);
    return RT_OK;
}

static int need_image(const char *name, const RtTensorSpec *x, RtErr *e) {
    char in[192];
    if (x->rank < 3 || x->rank > 4 || geometry(x).h <= 0)
        return rt_errf(e, "recipe key transforms: %s needs an image input [N, C, H, W] or [N, H, W], but the "
                       "model's input is %s", name, input_text(x, in, sizeof in));
    return RT_OK;
}

static int parse_crop(const json_t *call, const RtTensorSpec *x, RtTransform *t, RtErr *e) {
    static const char *const known[] = {"size", "padding"};
    if (rt_call_check(call, "transforms", TF_SIGS[RT_TF_RANDOM_CROP], known, 2, 2, e) != RT_OK ||
        need_image("random_crop", x, e) != RT_OK)
        return RT_ERR;
    json_t *v = rt_call_arg(call, "size", 0);
    bool pair = json_is_array(v) && json_array_size(v) == 2;
    json_t *vh = pair ? json_array_get(v, 0) : v, *vw = pair ? json_array_get(v, 1) : v;
    if (!json_is_integer(vh) || !json_is_integer(vw) || json_integer_value(vh) < 1 || json_integer_value(vw) < 1)
        return rt_errf(e, "recipe key transforms: random_crop: size must be a positive integer or [height, width] "
                       "(random_crop(28, padding = 4))");
    t->size_h = json_integer_value(vh);
    t->size_w = json_integer_value(vw);
    Geometry g = geometry(x);
    char in[192];
    if (t->size_h != g.h || t->size_w != g.w)
        return rt_errf(e, "recipe key transforms: random_crop: size %lld x %lld differs from the input %s: the "
                       "crop must keep the input's height and width (pad with padding = ...)",
                       (long long)t->size_h, (long long)t->size_w, input_text(x, in, sizeof in));
    if (rt_call_int(call, "transforms: random_crop", "padding", 1, 0, 0, &t->padding, e) != RT_OK)
        return RT_ERR;
    if (t->padding > MAX_PADDING)
        return rt_errf(e, "recipe key transforms: random_crop: padding %lld is above %d", (long long)t->padding,
                       MAX_PADDING);
    return RT_OK;
}

static int parse_hflip(const json_t *call, const RtTensorSpec *x, RtTransform *t, RtErr *e) {
    static const char *const known[] = {"p"};
    if (rt_call_check(call, "transforms", TF_SIGS[RT_TF_RANDOM_HFLIP], known, 1, 1, e) != RT_OK ||
        need_image("random_hflip", x, e) != RT_OK)
        return RT_ERR;
    return rt_call_num(call, "transforms: random_hflip", "p", 0, 0.5, 0, 1, &t->p, e);
}

static int parse_one(const json_t *call, const RtTensorSpec *x, RtTransform *t, RtErr *e) {
    const char *name = json_string_value(json_object_get(call, "call"));
    int k = 0;
    while (k < NKINDS && strcmp(TF_NAMES[k], name) != 0)
        k++;
    if (k == NKINDS)
        return unknown_transform(name, e);
    memset(t, 0, sizeof *t);
    t->kind = (RtTransformKind)k;
    switch (t->kind) {
    case RT_TF_SCALE: return parse_scale(call, t, e);
    case RT_TF_NORMALIZE: return parse_normalize(call, x, t, e);
    case RT_TF_RANDOM_CROP: return parse_crop(call, x, t, e);
    case RT_TF_RANDOM_HFLIP: return parse_hflip(call, x, t, e);
    }
    return RT_OK;
}

static bool is_call(const json_t *v) { return json_is_object(v) && json_is_string(json_object_get(v, "call")); }

int rt_transforms_parse(const json_t *recipe, const RtTensorSpec *x, RtTransforms *t, RtErr *e) {
    memset(t, 0, sizeof *t);
    json_t *v = json_object_get(recipe, "transforms");
    if (!v || json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0))
        return RT_OK;
    if (!is_call(v) && !json_is_array(v))
        return rt_errf(e, "recipe key transforms: must be a list of transforms, such as [random_crop(28, "
                       "padding = 4), normalize(mean = [0.5], std = [0.5])]");
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (n > RT_MAX_TRANSFORMS)
        return rt_errf(e, "recipe key transforms: %zu transforms; at most %d", n, RT_MAX_TRANSFORMS);
    char in[192];
    if (x->dtype != RT_F32 && x->dtype != RT_F64)
        return rt_errf(e, "recipe key transforms: the model's input %s is not a float tensor; transforms take f32 "
                       "or f64 inputs", input_text(x, in, sizeof in));
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_is_array(v) ? json_array_get(v, i) : v;
        if (!is_call(c))
            return rt_errf(e, "recipe key transforms: entry %zu is not a transform such as random_hflip(p = 0.5)",
                           i + 1);
        if (parse_one(c, x, &t->t[i], e) != RT_OK) {
            memset(t, 0, sizeof *t);
            return RT_ERR;
        }
    }
    t->n = (int)n;
    return RT_OK;
}

/* ---------------------------------------------------------------- applying them */
/* A factor 1/k divides by k, as ToTensor's x / 255 does, so that the values match PyTorch's bit for bit. */
static void scale(const RtTransform *t, RtDType xt, void *s, int64_t n) {
    double inv = 1.0 / t->scale;
    bool divide = t->scale != 0 && inv == nearbyint(inv) && fabs(inv) < 1e9;
    if (xt == RT_F32) {
        float *p = s, f = (float)t->scale, d = (float)inv;
        for (int64_t i = 0; i < n; i++)
            p[i] = divide ? p[i] / d : p[i] * f;
    } else {
        double *p = s;
        for (int64_t i = 0; i < n; i++)
            p[i] = divide ? p[i] / inv : p[i] * t->scale;
    }
}

/* (x - mean) / std in the input's precision, as torchvision's x.sub_(mean).div_(std) */
static void normalize(const RtTransform *t, RtDType xt, void *s, const Geometry *g) {
    for (int64_t c = 0; c < g->channels; c++) {
        int ch = t->nch == 1 ? 0 : (int)c;
        if (xt == RT_F32) {
            float *p = (float *)s + c * g->inner, m = (float)t->mean[ch], d = (float)t->std[ch];
            for (int64_t i = 0; i < g->inner; i++)
                p[i] = (p[i] - m) / d;
        } else {
            double *p = (double *)s + c * g->inner, m = t->mean[ch], d = t->std[ch];
            for (int64_t i = 0; i < g->inner; i++)
                p[i] = (p[i] - m) / d;
        }
    }
}

/* out[y][x] = in[y + dy][x + dx], zero outside: the window of the zero-padded image at (p + dy, p + dx). In
   place, rows in the order that reads each source row before it is overwritten. */
static void shift_plane(char *pl, int64_t h, int64_t w, size_t es, int64_t dy, int64_t dx) {
    size_t row = (size_t)w * es;
    int64_t x0 = dx < 0 ? -dx : 0, x1 = dx > 0 ? w - dx : w; /* the x whose source x + dx is inside */
    for (int64_t k = 0; k < h; k++) {
        int64_t y = dy > 0 ? k : h - 1 - k, sy = y + dy;
        char *dst = pl + (size_t)y * row;
        if (sy < 0 || sy >= h || x1 <= x0) {
            memset(dst, 0, row);
            continue;
        }
        memmove(dst + (size_t)x0 * es, pl + (size_t)sy * row + (size_t)(x0 + dx) * es, (size_t)(x1 - x0) * es);
        memset(dst, 0, (size_t)x0 * es);
        memset(dst + (size_t)x1 * es, 0, (size_t)(w - x1) * es);
    }
}

static void hflip_plane(char *pl, int64_t h, int64_t w, size_t es) {
    char tmp[8];
    for (int64_t y = 0; y < h; y++) {
        char *r = pl + (size_t)(y * w) * es;
        for (int64_t a = 0, b = w - 1; a < b; a++, b--) {
            memcpy(tmp, r + (size_t)a * es, es);
            memcpy(r + (size_t)a * es, r + (size_t)b * es, es);
            memcpy(r + (size_t)b * es, tmp, es);
        }
    }
}

/* torchvision's RandomCrop draws the top offset, then the left one, each uniform in [0, 2 * padding], and
   draws nothing when the padded image is the crop's size. */
static void random_crop(const RtTransform *t, RtRng *r, char *s, const Geometry *g, size_t es) {
    if (t->padding == 0)
        return;
    uint32_t span = (uint32_t)(2 * t->padding + 1);
    int64_t dy = (int64_t)rt_rng_below(r, span) - t->padding;
    int64_t dx = (int64_t)rt_rng_below(r, span) - t->padding;
    if (dy == 0 && dx == 0)
        return;
    for (int64_t p = 0; p < g->planes; p++)
        shift_plane(s + (size_t)(p * g->h * g->w) * es, g->h, g->w, es, dy, dx);
}

static void random_hflip(const RtTransform *t, RtRng *r, char *s, const Geometry *g, size_t es) {
    if (!(rt_rng_unit(r) < t->p))
        return;
    for (int64_t p = 0; p < g->planes; p++)
        hflip_plane(s + (size_t)(p * g->h * g->w) * es, g->h, g->w, es);
}

void rt_transforms_apply(const RtTransforms *t, bool train, RtDType xt, void *x, const RtTensorSpec *xs,
                         int64_t n, const int64_t *ids, uint64_t seed, int64_t epoch) {
    if (!t || t->n == 0 || (xt != RT_F32 && xt != RT_F64))
        return;
    Geometry g = geometry(xs);
    size_t es = rt_dtype_size(xt);
    const uint64_t low40 = (1ull << 40) - 1, low20 = (1ull << 20) - 1;
    for (int64_t k = 0; k < n; k++) {
        char *s = (char *)x + (size_t)(k * g.per) * es;
        RtRng r;
        rt_rng_seed(&r, seed, RT_TRANSFORM_STREAM + (((uint64_t)epoch & low20) << 40) + ((uint64_t)ids[k] & low40));
        for (int i = 0; i < t->n; i++) {
            const RtTransform *tf = &t->t[i];
            switch (tf->kind) {
            case RT_TF_SCALE: scale(tf, xt, s, g.per); break;
            case RT_TF_NORMALIZE: normalize(tf, xt, s, &g); break;
            case RT_TF_RANDOM_CROP:
                if (train)
                    random_crop(tf, &r, s, &g, es);
                break;
            case RT_TF_RANDOM_HFLIP:
                if (train)
                    random_hflip(tf, &r, s, &g, es);
                break;
            }
        }
    }
}
