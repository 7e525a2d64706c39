/* rt_optim_probe: runs the runtime's optimizers (runtime/optim.c) on given parameters and gradients, for
   tests/e2e/torch_optim.py to compare with torch.optim step by step.

       rt_optim_probe CASE.json CASE.bin OUT.json OUT.bin [THREADS]

   CASE.json is a manifest (lathe_rt.h) of params only, with the recipe keys the optimizer reads, and
       "feeds": F          batches of gradients to feed
       "lrs": [[...], ...] optional: per feed, the learning rate of each group (a schedule's values)
   CASE.bin holds every parameter's initial value (manifest order, its dtype, row-major), then per feed the
   gradient of each trained parameter. After each step (and the final flush) the probe appends to OUT.bin
   the trained parameters, then the state tensors; OUT.json lists the steps (the feed after which each was
   taken, the gradient norm) and the state tensors' names, dtypes and shapes. */
#include "optim.h"

#include "lathe_kern.h"

#include <stdlib.h>
#include <string.h>

static void die(const char *msg) {
    fprintf(stderr, "rt_optim_probe: %s\n", msg);
    exit(1);
}

static size_t bytes_of(const RtTensorSpec *t) {
    int64_t n;
    if (!rt_numel(t, 1, &n))
        die("a parameter is too large");
    return (size_t)n * rt_dtype_size(t->dtype);
}

static void read_exact(FILE *f, void *p, size_t n) {
    if (fread(p, 1, n, f) != n)
        die("CASE.bin is shorter than the parameters and gradients it must hold");
}

static void write_exact(FILE *f, const void *p, size_t n) {
    if (fwrite(p, 1, n, f) != n)
        die("cannot write OUT.bin");
}

static void write_step(FILE *out, const RtOptim *o, void **params) {
    for (int i = 0; i < o->m->nparams; i++)
        if (o->group[i] >= 0)
            write_exact(out, params[i], bytes_of(&o->m->params[i].t));
    for (int t = 0; t < o->ntensors; t++) {
        RtTensorSpec spec = {.dtype = o->tensors[t].dtype, .rank = o->tensors[t].rank};
        memcpy(spec.shape, o->tensors[t].shape, sizeof spec.shape);
        write_exact(out, o->tensors[t].data, bytes_of(&spec));
    }
}

int main(int argc, char **argv) {
    if (argc < 5)
        die("usage: rt_optim_probe CASE.json CASE.bin OUT.json OUT.bin [THREADS]");
    lathe_pool_init(argc > 5 ? atoi(argv[5]) : 1);
    json_error_t je;
    json_t *root = json_load_file(argv[1], 0, &je);
    char *text = root ? json_dumps(root, 0) : NULL;
    if (!text)
        die("CASE.json is not valid JSON");
    json_decref(root);
    RtErr e;
    RtManifest m;
    if (rt_manifest_parse(&m, text, &e) != RT_OK)
        die(e.msg);
    free(text);
    RtOptimSpec spec;
    RtOptim o;
    if (rt_optim_spec_parse(m.recipe, &spec, &e) != RT_OK || rt_optim_open(&o, &spec, &m, &e) != RT_OK)
        die(e.msg);
    o.track_norm = true; /* grad_norm of every step, as clip_grad_norm_ would return it */
    int64_t feeds = json_integer_value(json_object_get(m.root, "feeds"));
    const json_t *lrs = json_object_get(m.root, "lrs");

    FILE *in = fopen(argv[2], "rb"), *out = fopen(argv[4], "wb");
    if (!in || !out)
        die("cannot open CASE.bin or OUT.bin");
    void **params = calloc((size_t)m.nparams + 1, sizeof *params), **grads = calloc((size_t)m.nparams + 1, sizeof *grads);
    for (int i = 0; i < m.nparams; i++) {
        params[i] = malloc(bytes_of(&m.params[i].t) + 1);
        read_exact(in, params[i], bytes_of(&m.params[i].t));
        if (o.group[i] >= 0)
            grads[i] = malloc(bytes_of(&m.params[i].t) + 1);
    }
    json_t *steps = json_array();
    double group_lr[RT_OPT_MAX_GROUPS];
    for (int64_t f = 0; f <= feeds; f++) {
        const json_t *row = json_array_get(lrs, (size_t)(f < feeds ? f : feeds - 1));
        for (int g = 0; g < spec.ngroups; g++)
            group_lr[g] = row ? json_number_value(json_array_get(row, (size_t)g)) : spec.groups[g].h.lr;
        bool stepped;
        if (f < feeds) {
            for (int i = 0; i < m.nparams; i++)
                if (grads[i])
                    read_exact(in, grads[i], bytes_of(&m.params[i].t));
            stepped = rt_optim_feed(&o, params, grads, group_lr);
        } else {
            stepped = rt_optim_flush(&o, params, group_lr);
        }
        if (stepped) {
            json_array_append_new(steps, json_pack("{s:I, s:f}", "after_feed", (json_int_t)f,
                                                   "grad_norm", rt_optim_last_grad_norm(&o)));
            write_step(out, &o, params);
        }
    }
    json_t *state = json_array();
    for (int t = 0; t < o.ntensors; t++) {
        json_t *shape = json_array();
        for (int k = 0; k < o.tensors[t].rank; k++)
            json_array_append_new(shape, json_integer(o.tensors[t].shape[k]));
        json_array_append_new(state, json_pack("{s:s, s:s, s:o}", "name", o.tensors[t].name, "dtype",
                                               rt_dtype_name(o.tensors[t].dtype), "shape", shape));
    }
    json_t *report = json_pack("{s:o, s:o}", "steps", steps, "state", state);
    if (json_dump_file(report, argv[3], 0) != 0 || fclose(out) != 0)
        die("cannot write OUT.json or OUT.bin");
    json_decref(report);
    fclose(in);
    for (int i = 0; i < m.nparams; i++)
        free(params[i]), free(grads[i]);
    free(params);
    free(grads);
    rt_optim_close(&o);
    rt_manifest_free(&m);
    return 0;
}
