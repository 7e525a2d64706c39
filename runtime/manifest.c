/* manifest.c: reads the JSON manifest that `lathe compile` embeds (lathe_rt.h documents it) into plain
   structs once at start-up, and the small dtype helpers everything else uses. */
#include "rt.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int rt_errf(RtErr *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return RT_ERR;
}

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [RT_F32] = {"f32", 4}, [RT_F64] = {"f64", 8}, [RT_I32] = {"i32", 4}, [RT_I64] = {"i64", 8}, [RT_U8] = {"u8", 1},
};

size_t rt_dtype_size(RtDType t) { return dtypes[t].size; }
const char *rt_dtype_name(RtDType t) { return dtypes[t].name; }

int rt_dtype_parse(const char *s, RtDType *out) {
    for (int i = 0; i < (int)(sizeof dtypes / sizeof dtypes[0]); i++)
        if (strcmp(s, dtypes[i].name) == 0) {
            *out = (RtDType)i;
            return RT_OK;
        }
    return RT_ERR;
}

bool rt_numel(const RtTensorSpec *t, int64_t n, int64_t *out) {
    int64_t k = 1;
    for (int i = 0; i < t->rank; i++) {
        int64_t d = t->shape[i] < 0 ? n : t->shape[i];
        if (__builtin_mul_overflow(k, d, &k))
            return false;
    }
    *out = k;
    return true;
}

void rt_shape_text(const int64_t *shape, int rank, char *buf, size_t n) {
    int k = snprintf(buf, n, "[");
    for (int i = 0; i < rank && k >= 0 && (size_t)k < n; i++)
        k += shape[i] < 0 ? snprintf(buf + k, n - (size_t)k, "%sN", i ? ", " : "")
                          : snprintf(buf + k, n - (size_t)k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k >= 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, "]");
}

double rt_load(RtDType t, const void *p, int64_t i) {
    switch (t) {
    case RT_F32: return ((const float *)p)[i];
    case RT_F64: return ((const double *)p)[i];
    case RT_I32: return ((const int32_t *)p)[i];
    case RT_I64: return (double)((const int64_t *)p)[i];
    case RT_U8: return ((const uint8_t *)p)[i];
    }
    return NAN;
}

void rt_store(RtDType t, void *p, int64_t i, double v) {
    switch (t) {
    case RT_F32: ((float *)p)[i] = (float)v; break;
    case RT_F64: ((double *)p)[i] = v; break;
    case RT_I32: ((int32_t *)p)[i] = (int32_t)v; break;
    case RT_I64: ((int64_t *)p)[i] = (int64_t)v; break;
    case RT_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    }
}

static const char *str_field(json_t *o, const char *key, const char *dflt) {
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

static int parse_tensor(json_t *j, RtTensorSpec *t, const char *where, RtErr *e) {
    memset(t, 0, sizeof *t);
    t->name = json_string_value(json_object_get(j, "name"));
    const char *dt = json_string_value(json_object_get(j, "dtype"));
    json_t *shape = json_object_get(j, "shape");
    if (!t->name || !dt || !json_is_array(shape))
        return rt_errf(e, "manifest: %s: an entry lacks name, dtype or shape", where);
    if (rt_dtype_parse(dt, &t->dtype) != RT_OK)
        return rt_errf(e, "manifest: %s '%s': unknown dtype '%s'", where, t->name, dt);
    if (json_array_size(shape) > RT_MAX_RANK)
        return rt_errf(e, "manifest: %s '%s': rank above %d", where, t->name, RT_MAX_RANK);
    t->rank = (int)json_array_size(shape);
    for (int i = 0; i < t->rank; i++) {
        json_t *d = json_array_get(shape, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < -1)
            return rt_errf(e, "manifest: %s '%s': bad dimension %d", where, t->name, i);
        t->shape[i] = json_integer_value(d);
    }
    const char *role = str_field(j, "role", "input");
    static const char *roles[] = {"input", "param", "state", "output"};
    for (int i = 0; i < 4; i++)
        if (strcmp(role, roles[i]) == 0) {
            t->role = (RtRole)i;
            return RT_OK;
        }
    return rt_errf(e, "manifest: %s '%s': unknown role '%s'", where, t->name, role);
}

/* The outputs that --detect-anomaly checks (kern_anomaly.c), by check id; none in a manifest without them. */
static int parse_checks(json_t *checks, RtGraph *g, RtErr *e) {
    if (!checks)
        return RT_OK;
    if (!json_is_array(checks))
        return rt_errf(e, "manifest: graph '%s': checks is not a list", g->name);
    g->nchecks = (int)json_array_size(checks);
    g->checks = calloc((size_t)g->nchecks + 1, sizeof *g->checks);
    if (!g->checks)
        return rt_errf(e, "out of memory");
    for (int i = 0; i < g->nchecks; i++) {
        json_t *c = json_array_get(checks, (size_t)i);
        if (!json_is_object(c))
            return rt_errf(e, "manifest: graph '%s': check %d is not an object", g->name, i);
        g->checks[i] = (RtCheck){.node = str_field(c, "node", "?"), .op = str_field(c, "op", "?"),
                                 .name = str_field(c, "name", NULL), .loc = str_field(c, "loc", NULL)};
    }
    return RT_OK;
}

static int parse_graph(json_t *graphs, const char *name, RtGraph *g, RtErr *e) {
    memset(g, 0, sizeof *g);
    g->name = name;
    json_t *j = json_object_get(graphs, name);
    if (!j)
        return RT_OK;
    json_t *arena = json_object_get(j, "arena"), *args = json_object_get(j, "args");
    if (!json_is_array(arena) || json_array_size(arena) != 2 || !json_is_array(args))
        return rt_errf(e, "manifest: graph '%s' lacks arena or args", name);
    g->arena_const = json_integer_value(json_array_get(arena, 0));
    g->arena_per_n = json_integer_value(json_array_get(arena, 1));
    if (g->arena_const < 0 || g->arena_per_n < 0)
        return rt_errf(e, "manifest: graph '%s': negative arena size", name);
    g->kernels = (int)json_integer_value(json_object_get(j, "kernels"));
    g->nargs = (int)json_array_size(args);
    g->args = calloc((size_t)g->nargs + 1, sizeof *g->args);
    if (!g->args)
        return rt_errf(e, "out of memory");
    for (int i = 0; i < g->nargs; i++)
        if (parse_tensor(json_array_get(args, (size_t)i), &g->args[i], name, e) != RT_OK)
            return RT_ERR;
    if (parse_checks(json_object_get(j, "checks"), g, e) != RT_OK)
        return RT_ERR;
    g->present = true;
    return RT_OK;
}

static int parse_params(RtManifest *m, json_t *params, RtErr *e) {
    static const char *kinds[] = {"zeros", "ones", "const", "uniform", "normal"};
    m->nparams = (int)json_array_size(params);
    m->params = calloc((size_t)m->nparams + 1, sizeof *m->params);
    if (!m->params)
        return rt_errf(e, "out of memory");
    for (int i = 0; i < m->nparams; i++) {
        json_t *j = json_array_get(params, (size_t)i);
        RtParam *p = &m->params[i];
        if (parse_tensor(j, &p->t, "params", e) != RT_OK)
            return RT_ERR;
        for (int k = 0; k < p->t.rank; k++)
            if (p->t.shape[k] < 0)
                return rt_errf(e, "manifest: parameter '%s' has a batch dimension", p->t.name);
        p->t.role = RT_ROLE_PARAM;
        json_t *init = json_object_get(j, "init");
        const char *kind = str_field(init, "kind", "zeros");
        int found = -1;
        for (int k = 0; k < 5; k++)
            if (strcmp(kind, kinds[k]) == 0)
                found = k;
        if (found < 0)
            return rt_errf(e, "manifest: parameter '%s': unknown init '%s'", p->t.name, kind);
        p->init = (RtInitKind)found;
        p->a = json_number_value(json_object_get(init, "a"));
        p->b = json_number_value(json_object_get(init, "b"));
        json_t *tr = json_object_get(j, "trainable");
        p->buffer = json_is_true(json_object_get(j, "buffer"));
        p->trainable = !p->buffer && (tr ? json_is_true(tr) : true);
    }
    return RT_OK;
}

int rt_manifest_parse(RtManifest *m, const char *text, RtErr *e) {
    memset(m, 0, sizeof *m);
    json_error_t je;
    m->root = json_loads(text, 0, &je);
    /* the compiler wrote the text, so what fails here is memory (jansson's lexer reports some of its failed
       allocations as odd tokens) or a damaged executable */
    if (!m->root && (json_error_code(&je) == json_error_out_of_memory || !je.text[0]))
        return rt_errf(e, "manifest: out of memory");
    if (!m->root)
        return rt_errf(e, "manifest: invalid JSON at line %d: %s (out of memory, or a damaged executable)",
                       je.line, je.text);
    if (!json_is_object(m->root))
        return rt_errf(e, "manifest: the top level is not a JSON object");
    m->lathe = str_field(m->root, "lathe", "?");
    m->model = str_field(m->root, "model", "model");
    m->source = str_field(m->root, "source", "");
    m->hash = str_field(m->root, "hash", "");

    json_t *inputs = json_object_get(m->root, "inputs");
    m->ninputs = (int)json_array_size(inputs);
    m->inputs = calloc((size_t)m->ninputs + 1, sizeof *m->inputs);
    if (!m->inputs)
        return rt_errf(e, "out of memory");
    for (int i = 0; i < m->ninputs; i++)
        if (parse_tensor(json_array_get(inputs, (size_t)i), &m->inputs[i], "inputs", e) != RT_OK)
            return RT_ERR;
    if (parse_params(m, json_object_get(m->root, "params"), e) != RT_OK)
        return RT_ERR;

    json_t *graphs = json_object_get(m->root, "graphs");
    if (parse_graph(graphs, "train", &m->train, e) != RT_OK || parse_graph(graphs, "grads", &m->grads, e) != RT_OK ||
        parse_graph(graphs, "eval", &m->eval, e) != RT_OK ||
        parse_graph(graphs, "predict", &m->predict, e) != RT_OK)
        return RT_ERR;

    m->recipe = json_object_get(m->root, "recipe");
    if (!json_is_object(m->recipe)) {
        json_object_set_new(m->root, "recipe", json_object());
        m->recipe = json_object_get(m->root, "recipe");
    }
    return RT_OK;
}

void rt_manifest_free(RtManifest *m) {
    free(m->inputs);
    free(m->params);
    RtGraph *gs[4] = {&m->train, &m->grads, &m->eval, &m->predict};
    for (int i = 0; i < 4; i++) {
        free(gs[i]->args);
        free(gs[i]->checks);
    }
    json_decref(m->root);
    memset(m, 0, sizeof *m);
}

int rt_manifest_param_index(const RtManifest *m, const char *name) {
    for (int i = 0; i < m->nparams; i++)
        if (strcmp(m->params[i].t.name, name) == 0)
            return i;
    return -1;
}

bool rt_arena_bytes(const RtGraph *g, int64_t n, size_t *out) {
    int64_t per, total;
    if (__builtin_mul_overflow(g->arena_per_n, n, &per) || __builtin_add_overflow(per, g->arena_const, &total) ||
        __builtin_add_overflow(total, 63, &total))
        return false;
    total &= ~(int64_t)63;
    *out = (size_t)(total > 0 ? total : 64);
    return true;
}

int64_t rt_manifest_classes(const RtManifest *m) {
    const RtGraph *g = &m->predict;
    for (int i = 0; i < g->nargs; i++)
        if (g->args[i].role == RT_ROLE_OUTPUT && g->args[i].rank >= 1)
            return g->args[i].shape[g->args[i].rank - 1];
    return 0;
}
