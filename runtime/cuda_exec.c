/* cuda_exec.c: the executor of a CUDA launch plan (cuda.h): reads the plan's JSON (codegen/cuda/cuda.h,
   cg_cuda_plan_json), and runs one graph on a driver as the CPU entry runs it: the host arguments copied in,
   the kernels launched on device addresses (an argument's buffer or the arena plus offset_c + offset_n * n),
   the copies done, and the written arguments copied back. The device buffers are kept between runs and
   grown with n. */
#include "cuda.h"

#include <stdlib.h>
#include <string.h>

typedef struct ExecBuf {
    int arg; /* >= 0: the argument's buffer; else the arena at offset_c + offset_n * n */
    int64_t offset_c, offset_n;
} ExecBuf;

typedef struct ExecLaunch {
    const char *name;
    int node, block, items_p, nbufs;
    int64_t items_c, per_block;
    ExecBuf *bufs;
} ExecLaunch;

typedef struct ExecCopy {
    ExecBuf dst, src;
    int64_t bytes_c;
    int bytes_p;
} ExecCopy;

typedef struct ExecGraph {
    const char *name;
    int nargs;
    int64_t arena_c, arena_n;
    int nlaunches, ncopies;
    ExecLaunch *launches;
    ExecCopy *copies;
    bool *written; /* per argument: a kernel or a copy may write it, so the run copies it back */
} ExecGraph;

enum { EXEC_MAX_GRAPHS = 4, EXEC_MAX_BLOCK = 1024, EXEC_MAX_POWER = 4 };

struct RtCudaExec {
    const RtCudaDriver *drv;
    json_t *root; /* the plan, whose strings the graphs borrow */
    int ngraphs;
    ExecGraph graphs[EXEC_MAX_GRAPHS];
    /* the device buffers: the arena and one per argument, with their bytes */
    uint64_t arena;
    size_t arena_bytes;
    int nbufs;
    uint64_t *bufs;
    size_t *buf_bytes;
};

/* ---------------------------------------------------------------- reading the plan */

/* [c, p] of two non-negative integers into *c and *p. */
static bool int_pair(json_t *j, int64_t *c, int64_t *p) {
    if (!json_is_array(j) || json_array_size(j) != 2 || !json_is_integer(json_array_get(j, 0)) ||
        !json_is_integer(json_array_get(j, 1)))
        return false;
    *c = json_integer_value(json_array_get(j, 0));
    *p = json_integer_value(json_array_get(j, 1));
    return *c >= 0 && *p >= 0;
}

static int parse_buf(json_t *j, const ExecGraph *g, ExecBuf *b, const char *where, RtErr *e) {
    json_t *arg = json_object_get(j, "arg"), *arena = json_object_get(j, "arena");
    if (json_is_integer(arg)) {
        json_int_t a = json_integer_value(arg);
        if (a < 0 || a >= g->nargs)
            return rt_errf(e, "CUDA plan: graph '%s': %s: argument %lld out of range (the graph has %d)", g->name,
                           where, (long long)a, g->nargs);
        *b = (ExecBuf){(int)a, 0, 0};
        return RT_OK;
    }
    if (!int_pair(arena, &b->offset_c, &b->offset_n))
        return rt_errf(e, "CUDA plan: graph '%s': %s: a buffer is neither {\"arg\": i} nor {\"arena\": [c, per_n]}",
                       g->name, where);
    b->arg = -1;
    return RT_OK;
}

static int parse_launch(json_t *j, ExecGraph *g, int i, RtErr *e) {
    ExecLaunch *l = &g->launches[i];
    char where[64];
    snprintf(where, sizeof where, "launch %d", i);
    json_t *bufs = json_object_get(j, "bufs"), *per_block = json_object_get(j, "per_block");
    l->name = json_string_value(json_object_get(j, "name"));
    l->node = (int)json_integer_value(json_object_get(j, "node"));
    l->block = (int)json_integer_value(json_object_get(j, "block"));
    int64_t p;
    if (!l->name || !l->name[0] || !json_is_array(bufs) || !json_is_integer(per_block) ||
        !int_pair(json_object_get(j, "items"), &l->items_c, &p) || p > EXEC_MAX_POWER)
        return rt_errf(e, "CUDA plan: graph '%s': %s lacks name, items, per_block or bufs", g->name, where);
    l->items_p = (int)p;
    l->per_block = json_integer_value(per_block);
    if (l->block < 1 || l->block > EXEC_MAX_BLOCK || l->per_block < 1)
        return rt_errf(e, "CUDA plan: graph '%s': kernel %s: block %d or per_block %lld out of range", g->name,
                       l->name, l->block, (long long)l->per_block);
    l->nbufs = (int)json_array_size(bufs);
    l->bufs = calloc((size_t)l->nbufs + 1, sizeof *l->bufs);
    if (!l->bufs)
        return rt_errf(e, "out of memory");
    for (int b = 0; b < l->nbufs; b++)
        if (parse_buf(json_array_get(bufs, (size_t)b), g, &l->bufs[b], where, e) != RT_OK)
            return RT_ERR;
    /* the outputs come first (cu_int.h); a plan that does not say how many may write any of them */
    json_t *nouts = json_object_get(j, "nouts");
    int outs = json_is_integer(nouts) ? (int)json_integer_value(nouts) : l->nbufs;
    for (int b = 0; b < outs && b < l->nbufs; b++)
        if (l->bufs[b].arg >= 0)
            g->written[l->bufs[b].arg] = true;
    return RT_OK;
}

static int parse_copy(json_t *j, ExecGraph *g, int i, RtErr *e) {
    ExecCopy *c = &g->copies[i];
    char where[64];
    snprintf(where, sizeof where, "copy %d", i);
    int64_t p;
    if (!json_is_object(j) || !int_pair(json_object_get(j, "bytes"), &c->bytes_c, &p) ||
        p > EXEC_MAX_POWER)
        return rt_errf(e, "CUDA plan: graph '%s': %s lacks bytes", g->name, where);
    c->bytes_p = (int)p;
    if (parse_buf(json_object_get(j, "dst"), g, &c->dst, where, e) != RT_OK ||
        parse_buf(json_object_get(j, "src"), g, &c->src, where, e) != RT_OK)
        return RT_ERR;
    if (c->dst.arg >= 0)
        g->written[c->dst.arg] = true;
    return RT_OK;
}

static int parse_graph(json_t *j, const char *name, ExecGraph *g, RtErr *e) {
    g->name = name;
    json_t *nargs = json_object_get(j, "nargs"), *launches = json_object_get(j, "launches");
    json_t *copies = json_object_get(j, "copies");
    if (!json_is_integer(nargs) || json_integer_value(nargs) < 0 || json_integer_value(nargs) > INT32_MAX ||
        !int_pair(json_object_get(j, "arena"), &g->arena_c, &g->arena_n) || !json_is_array(launches) ||
        (copies && !json_is_array(copies)))
        return rt_errf(e, "CUDA plan: graph '%s' lacks nargs, arena or launches", name);
    g->nargs = (int)json_integer_value(nargs);
    g->nlaunches = (int)json_array_size(launches);
    g->ncopies = (int)json_array_size(copies);
    g->launches = calloc((size_t)g->nlaunches + 1, sizeof *g->launches);
    g->copies = calloc((size_t)g->ncopies + 1, sizeof *g->copies);
    g->written = calloc((size_t)g->nargs + 1, sizeof *g->written);
    if (!g->launches || !g->copies || !g->written)
        return rt_errf(e, "out of memory");
    for (int i = 0; i < g->nlaunches; i++)
        if (parse_launch(json_array_get(launches, (size_t)i), g, i, e) != RT_OK)
            return RT_ERR;
    for (int i = 0; i < g->ncopies; i++)
        if (parse_copy(json_array_get(copies, (size_t)i), g, i, e) != RT_OK)
            return RT_ERR;
    return RT_OK;
}

static int parse_plan(RtCudaExec *x, const char *plan_json, RtErr *e) {
    json_error_t je;
    x->root = json_loads(plan_json, 0, &je);
    if (!x->root)
        return rt_errf(e, "CUDA plan: line %d: %s", je.line, je.text);
    json_t *graphs = json_object_get(x->root, "graphs"), *j;
    if (!json_is_object(graphs) || json_object_size(graphs) > EXEC_MAX_GRAPHS)
        return rt_errf(e, "CUDA plan: no \"graphs\" object of at most %d graphs", EXEC_MAX_GRAPHS);
    const char *name;
    json_object_foreach(graphs, name, j) {
        ExecGraph *g = &x->graphs[x->ngraphs++];
        if (parse_graph(j, name, g, e) != RT_OK)
            return RT_ERR;
        if (g->nargs > x->nbufs)
            x->nbufs = g->nargs;
    }
    x->bufs = calloc((size_t)x->nbufs + 1, sizeof *x->bufs);
    x->buf_bytes = calloc((size_t)x->nbufs + 1, sizeof *x->buf_bytes);
    if (!x->bufs || !x->buf_bytes)
        return rt_errf(e, "out of memory");
    return RT_OK;
}

RtCudaExec *rt_cuda_exec_new(const char *plan_json, const RtCudaDriver *drv, RtErr *e) {
    RtCudaExec *x = calloc(1, sizeof *x);
    if (!x) {
        rt_errf(e, "out of memory");
        return NULL;
    }
    x->drv = drv;
    if (parse_plan(x, plan_json, e) != RT_OK) {
        rt_cuda_exec_free(x);
        return NULL;
    }
    return x;
}

void rt_cuda_exec_free(RtCudaExec *x) {
    if (!x)
        return;
    for (int i = 0; i < x->ngraphs; i++) {
        ExecGraph *g = &x->graphs[i];
        for (int l = 0; l < g->nlaunches && g->launches; l++)
            free(g->launches[l].bufs);
        free(g->launches);
        free(g->copies);
        free(g->written);
    }
    for (int a = 0; a < x->nbufs && x->bufs; a++)
        if (x->bufs[a])
            x->drv->release(x->drv->ctx, x->bufs[a]);
    if (x->arena)
        x->drv->release(x->drv->ctx, x->arena);
    free(x->bufs);
    free(x->buf_bytes);
    json_decref(x->root);
    free(x);
}

/* ---------------------------------------------------------------- running a graph */

/* c * n^p, false on overflow past INT64_MAX. */
static bool scaled(int64_t c, int p, int64_t n, int64_t *out) {
    int64_t v = c;
    for (int i = 0; i < p; i++) {
        if (n != 0 && v > INT64_MAX / n)
            return false;
        v *= n;
    }
    *out = v;
    return true;
}

/* The device buffer *d of *bytes grown to at least want bytes (its contents not kept). */
static int grow(const RtCudaDriver *drv, uint64_t *d, size_t *bytes, size_t want, const char *graph,
                const char *what, RtErr *e) {
    if (want <= *bytes)
        return RT_OK;
    if (*d)
        drv->release(drv->ctx, *d);
    *d = 0;
    *bytes = 0;
    if (drv->alloc(drv->ctx, want, d) != 0)
        return rt_errf(e, "CUDA graph '%s': allocating %zu bytes for %s: %s", graph, want, what, drv->error(drv->ctx));
    *bytes = want;
    return RT_OK;
}

static uint64_t address(const RtCudaExec *x, const ExecBuf *b, int64_t n) {
    if (b->arg >= 0)
        return x->bufs[b->arg];
    return x->arena + (uint64_t)b->offset_c + (uint64_t)b->offset_n * (uint64_t)n;
}

static int launch(RtCudaExec *x, const ExecGraph *g, const ExecLaunch *l, int64_t n, RtErr *e) {
    enum { MAX_PARAMS = 256 };
    int64_t items;
    if (!scaled(l->items_c, l->items_p, n, &items))
        return rt_errf(e, "CUDA graph '%s': kernel %s (node %%%d): too many items for n = %lld", g->name, l->name,
                       l->node, (long long)n);
    int64_t blocks = items / l->per_block + (items % l->per_block != 0);
    unsigned grid = blocks < 1 ? 1 : blocks > INT32_MAX ? INT32_MAX : (unsigned)blocks;
    uint64_t addrs[MAX_PARAMS];
    void *params[MAX_PARAMS + 1];
    long long nn = n;
    if (l->nbufs > MAX_PARAMS)
        return rt_errf(e, "CUDA graph '%s': kernel %s has %d buffers (at most %d)", g->name, l->name, l->nbufs,
                       MAX_PARAMS);
    for (int b = 0; b < l->nbufs; b++) {
        addrs[b] = address(x, &l->bufs[b], n);
        params[b] = &addrs[b];
    }
    params[l->nbufs] = &nn;
    if (x->drv->launch(x->drv->ctx, l->name, grid, (unsigned)l->block, params) != 0)
        return rt_errf(e, "CUDA graph '%s': kernel %s (node %%%d, grid %u, block %d): %s", g->name, l->name, l->node,
                       grid, l->block, x->drv->error(x->drv->ctx));
    return RT_OK;
}

static int copy(RtCudaExec *x, const ExecGraph *g, const ExecCopy *c, int i, int64_t n, RtErr *e) {
    int64_t bytes;
    if (!scaled(c->bytes_c, c->bytes_p, n, &bytes))
        return rt_errf(e, "CUDA graph '%s': copy %d: too many bytes for n = %lld", g->name, i, (long long)n);
    if (bytes && x->drv->copy(x->drv->ctx, address(x, &c->dst, n), address(x, &c->src, n), (size_t)bytes) != 0)
        return rt_errf(e, "CUDA graph '%s': copy %d (%lld bytes): %s", g->name, i, (long long)bytes,
                       x->drv->error(x->drv->ctx));
    return RT_OK;
}

/* The device buffers sized for n and the arguments copied in. */
static int prepare(RtCudaExec *x, const ExecGraph *g, void **args, const size_t *sizes, int64_t n, RtErr *e) {
    const RtCudaDriver *drv = x->drv;
    int64_t arena;
    if (n < 0 || !scaled(g->arena_n, 1, n, &arena) || arena > INT64_MAX - g->arena_c)
        return rt_errf(e, "CUDA graph '%s': no arena for n = %lld", g->name, (long long)n);
    if (grow(drv, &x->arena, &x->arena_bytes, (size_t)(arena + g->arena_c), g->name, "the arena", e) != RT_OK)
        return RT_ERR;
    for (int a = 0; a < g->nargs; a++) {
        char what[32];
        snprintf(what, sizeof what, "argument %d", a);
        if (grow(drv, &x->bufs[a], &x->buf_bytes[a], sizes[a], g->name, what, e) != RT_OK)
            return RT_ERR;
        if (sizes[a] && drv->to_device(drv->ctx, x->bufs[a], args[a], sizes[a]) != 0)
            return rt_errf(e, "CUDA graph '%s': copying argument %d in: %s", g->name, a, drv->error(drv->ctx));
    }
    return RT_OK;
}

int rt_cuda_exec_run(RtCudaExec *x, const char *name, void **args, const size_t *sizes, int64_t n, RtErr *e) {
    const ExecGraph *g = NULL;
    for (int i = 0; i < x->ngraphs; i++)
        if (strcmp(x->graphs[i].name, name) == 0)
            g = &x->graphs[i];
    if (!g)
        return rt_errf(e, "CUDA plan: no graph '%s'", name);
    if (prepare(x, g, args, sizes, n, e) != RT_OK)
        return RT_ERR;
    for (int i = 0; i < g->nlaunches; i++)
        if (launch(x, g, &g->launches[i], n, e) != RT_OK)
            return RT_ERR;
    for (int i = 0; i < g->ncopies; i++)
        if (copy(x, g, &g->copies[i], i, n, e) != RT_OK)
            return RT_ERR;
    const RtCudaDriver *drv = x->drv;
    if (drv->sync(drv->ctx) != 0)
        return rt_errf(e, "CUDA graph '%s': %s", g->name, drv->error(drv->ctx));
    for (int a = 0; a < g->nargs; a++)
        if (g->written[a] && sizes[a] && drv->to_host(drv->ctx, args[a], x->bufs[a], sizes[a]) != 0)
            return rt_errf(e, "CUDA graph '%s': copying argument %d back: %s", g->name, a, drv->error(drv->ctx));
    return RT_OK;
}

bool rt_cuda_exec_arena(const RtCudaExec *x, const char *name, int64_t *arena_c, int64_t *per_n) {
    for (int i = 0; i < x->ngraphs; i++)
        if (strcmp(x->graphs[i].name, name) == 0) {
            *arena_c = x->graphs[i].arena_c;
            *per_n = x->graphs[i].arena_n;
            return true;
        }
    return false;
}
