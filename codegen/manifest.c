/* manifest.c: the JSON manifest embedded in every produced executable, which tells the runtime what the
   generated graph entries expect (runtime/lathe_rt.h documents the format). */
#include "codegen.h"
#include "../passes/passes.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static json_t *shape_json(const Shape *s) {
    json_t *a = json_array();
    for (int i = 0; i < s->rank; i++)
        json_array_append_new(a, json_integer(s->dim[i] == IR_DIM_N ? -1 : s->dim[i]));
    return a;
}

static json_t *typed(const char *name, DType t, const Shape *s) {
    return json_pack("{s:s, s:s, s:o}", "name", name, "dtype", ir_dtype_name(t), "shape", shape_json(s));
}

/* A recipe value as JSON, or NULL after reporting a string that JSON cannot hold: jansson takes UTF-8 only,
   and would otherwise drop such a string (a Latin-1 file name) from the manifest without a word. */
static json_t *rval_json(const RVal *v, Diag *d) {
    switch (v->kind) {
    case RV_NUM:
        return v->is_int ? json_integer((json_int_t)v->num) : json_real(v->num);
    case RV_STR: {
        json_t *s = json_string(v->str);
        if (!s)
            diag_error(d, v->loc, "this string is not valid UTF-8, which the compiled program's manifest needs");
        return s;
    }
    case RV_BOOL:
        return json_boolean(v->num != 0);
    case RV_NONE:
        return json_null();
    case RV_IDENT:
        return json_pack("{s:s}", "ident", v->str);
    case RV_LIST:
    case RV_CALL: {
        json_t *args = json_array(), *kwargs = json_object();
        for (int i = 0; i < v->nitems; i++) {
            json_t *item = rval_json(v->items[i], d);
            if (!item) {
                json_decref(args);
                json_decref(kwargs);
                return NULL;
            }
            if (v->kind == RV_CALL && v->keys && v->keys[i])
                json_object_set_new(kwargs, v->keys[i], item);
            else
                json_array_append_new(args, item);
        }
        if (v->kind == RV_LIST) {
            json_decref(kwargs);
            return args;
        }
        return json_pack("{s:s, s:o, s:o}", "call", v->str, "args", args, "kwargs", kwargs);
    }
    }
    LATHE_UNREACHABLE("unknown recipe value kind");
}

/* The model file's name as given, for `info`: bytes that are not ASCII become '?' when the name is not
   UTF-8, rather than failing a compile over a file name. */
static json_t *source_json(const char *path) {
    json_t *s = json_string(path ? path : "");
    if (s)
        return s;
    char *ascii = strdup(path);
    if (!ascii)
        LATHE_UNREACHABLE("out of memory");
    for (char *c = ascii; *c; c++)
        if ((unsigned char)*c >= 0x80)
            *c = '?';
    s = json_string(ascii);
    free(ascii);
    return s;
}

static const char *init_kind_name(InitKind k) {
    switch (k) {
    case INIT_ZEROS: return "zeros";
    case INIT_ONES: return "ones";
    case INIT_CONST: return "const";
    case INIT_UNIFORM: return "uniform";
    case INIT_NORMAL: return "normal";
    }
    LATHE_UNREACHABLE("unknown init kind");
}

/* 64-bit FNV-1a of the printed train graph without its location comments, so that the same model compiled
   from another folder or with comments edited keeps its hash: what a checkpoint's "hash" is compared with. */
static char *graph_hash(Arena *a, const Graph *g) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) /* a constant hash would let any model's checkpoint load into any other */
        LATHE_UNREACHABLE("out of memory");
    ir_print(f, g);
    fclose(f);
    uint64_t h = 1469598103934665603ull;
    bool in_comment = false;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '#')
            in_comment = true;
        else if (text[i] == '\n')
            in_comment = false;
        if (in_comment)
            continue;
        h ^= (unsigned char)text[i];
        h *= 1099511628211ull;
    }
    free(text);
    return arena_printf(a, "%016llx", (unsigned long long)h);
}

/* A fusion group is one kernel. */
static int kernel_count(const Graph *g) {
    int k = 0;
    for (int i = 0; i < g->nnodes; i++)
        k += ir_is_kernel(g->nodes[i]) && (g->nodes[i]->group < 0 || g->nodes[i]->group == i);
    return k;
}

/* ---------------------------------------------------------------- the checks of --detect-anomaly
   The float kernel outputs that have a buffer, in node order: the graph entry checks each after its kernel
   (module.c) and passes its index here, which the runtime maps back to the node through the manifest. */
int cg_anomaly_checks(const Graph *g, const Node **out) {
    int k = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (!ir_is_kernel(n) || !ir_dtype_is_float(n->dtype) || n->mem.kind == MEM_FUSED ||
            n->mem.kind == MEM_NONE || (n->group >= 0 && !ir_group_materialized(g, n)))
            continue;
        if (out)
            out[k] = n;
        k++;
    }
    return k;
}

/* {"node": "%42", "op": "matmul", "name": "grad.fc1.weight", "loc": "fashion_mlp.lathe:9:9"}: name where an
   output (or a parameter's update) is the node, loc with the model file's base name where it has one. */
static json_t *check_json(const Graph *g, const Node *n) {
    char id[24];
    snprintf(id, sizeof id, "%%%d", n->id);
    json_t *c = json_pack("{s:s, s:s}", "node", id, "op", ir_op_name(n->op));
    for (int i = 0; i < g->noutputs; i++)
        if (g->outputs[i].value == n) {
            json_t *name = json_string(g->outputs[i].name);
            if (name)
                json_object_set_new(c, "name", name);
            break;
        }
    if (n->loc.file) {
        const char *base = strrchr(n->loc.file, '/');
        char loc[512];
        snprintf(loc, sizeof loc, "%s:%d:%d", base ? base + 1 : n->loc.file, n->loc.line, n->loc.col);
        json_t *l = json_string(loc);
        if (l) /* a file name that is not UTF-8 goes without */
            json_object_set_new(c, "loc", l);
    }
    return c;
}

static json_t *checks_json(const Graph *g) {
    int n = cg_anomaly_checks(g, NULL);
    const Node **nodes = calloc((size_t)n + 1, sizeof *nodes);
    if (!nodes)
        LATHE_UNREACHABLE("out of memory");
    cg_anomaly_checks(g, nodes);
    json_t *list = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(list, check_json(g, nodes[i]));
    free(nodes);
    return list;
}

static json_t *graph_json(const Graph *g) {
    int64_t c = 0, per_n = 0;
    pass_memplan_size(g, &c, &per_n);
    int nargs = ir_graph_args(g, NULL);
    GraphArg *args = calloc((size_t)nargs + 1, sizeof *args);
    if (!args)
        LATHE_UNREACHABLE("out of memory");
    ir_graph_args(g, args);
    json_t *list = json_array();
    for (int i = 0; i < nargs; i++) {
        json_t *e = typed(args[i].name, args[i].node->dtype, &args[i].node->shape);
        json_object_set_new(e, "role", json_string(ir_arg_role_name(args[i].role)));
        json_array_append_new(list, e);
    }
    free(args);
    /* what `info` needs for the peak line of `lathe compile --mem-report`: B = arena + params + state +
       inputs at a batch, each c + per_n * N bytes */
    MemSizes ms;
    pass_memplan_sizes(g, &ms);
    json_t *memory = json_pack("{s:I, s:I, s:[I,I]}", "params", (json_int_t)ms.params, "state", (json_int_t)ms.state,
                               "inputs", (json_int_t)ms.inputs_c, (json_int_t)ms.inputs_n);
    return json_pack("{s:[I,I], s:i, s:o, s:o, s:o}", "arena", (json_int_t)c, (json_int_t)per_n, "kernels",
                     kernel_count(g), "args", list, "memory", memory, "checks", checks_json(g));
}

char *cg_manifest(Arena *a, const Program *p, Diag *d) {
    json_t *root = json_object();
    json_object_set_new(root, "lathe", json_string(LATHE_VERSION));
    json_object_set_new(root, "model", json_string(p->model_name));
    json_object_set_new(root, "source", source_json(p->source_file));
    /* of the grads graph, which every binary of the model has whatever its optimizer */
    json_object_set_new(root, "hash", json_string(graph_hash(a, p->grads ? p->grads : p->train)));

    json_t *inputs = json_array();
    for (int i = 0; i < p->ninputs; i++) {
        const Node *n = ir_find_leaf(p->eval, OP_INPUT, p->input_names[i]);
        if (!n)
            n = ir_find_leaf(program_train_graph(p), OP_INPUT, p->input_names[i]);
        if (n)
            json_array_append_new(inputs, typed(n->attr.name, n->dtype, &n->shape));
    }
    json_object_set_new(root, "inputs", inputs);

    json_t *params = json_array();
    for (int i = 0; i < p->nparams; i++) {
        const ParamInfo *pi = &p->params[i];
        json_t *e = typed(pi->name, pi->dtype, &pi->shape);
        json_object_set_new(e, "init", json_pack("{s:s, s:f, s:f}", "kind", init_kind_name(pi->init.kind), "a",
                                                 pi->init.a, "b", pi->init.b));
        json_object_set_new(e, "trainable", json_boolean(pi->trainable && !pi->buffer));
        if (pi->buffer) /* saved and loaded as a parameter, never trained; `info` lists it apart */
            json_object_set_new(e, "buffer", json_true());
        json_array_append_new(params, e);
    }
    json_object_set_new(root, "params", params);

    json_t *graphs = json_object();
    Graph *gs[4];
    for (int i = 0, ng = program_graphs(p, gs); i < ng; i++)
        json_object_set_new(graphs, gs[i]->name, graph_json(gs[i]));
    json_object_set_new(root, "graphs", graphs);

    json_t *recipe = json_object();
    json_object_set_new(root, "recipe", recipe);
    for (int i = 0; i < p->nrecipe; i++) {
        json_t *v = rval_json(p->recipe[i].value, d);
        if (!v) {
            json_decref(root);
            return NULL;
        }
        json_object_set_new(recipe, p->recipe[i].key, v);
    }

    char *text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(root);
    if (!text)
        LATHE_UNREACHABLE("cannot serialize the manifest");
    char *out = arena_strdup(a, text);
    free(text);
    return out;
}
