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

/* ---------------------------------------------------------------- the kernel list of --profile
   Every node that may get a kernel call, in call order: a fusion group's root or a lone kernel node (and a
   lone CONST, whose fill the graph entry may skip; the runtime finds kernels by "node", so an entry never
   called does no harm). For each: a name, the model lines of its members with the share of its time the
   profile gives each, and its FLOPs and bytes as polynomials in the batch n (ir/cost.c). */
#define PROFILE_MEMBERS_MAX 4096
#define PROFILE_NAME_OPS 5

/* The members of the kernel rooted at root, in node order, into out (at most PROFILE_MEMBERS_MAX). */
static int kernel_members(const Graph *g, const Node *root, const Node **out) {
    if (root->group < 0) {
        out[0] = root;
        return 1;
    }
    int k = 0;
    for (int i = 0; i <= root->id && k < PROFILE_MEMBERS_MAX; i++)
        if (g->nodes[i]->group == root->id)
            out[k++] = g->nodes[i];
    return k;
}

/* Bytes of x's value at batch n, added to *total; false on overflow. */
static bool add_bytes(int64_t *total, const Node *x, int64_t n) {
    int64_t numel = ir_shape_numel(&x->shape, n), b;
    return numel >= 0 && !__builtin_mul_overflow(numel, (int64_t)ir_dtype_size(x->dtype), &b) &&
           !__builtin_add_overflow(*total, b, total);
}

/* Whether x, read by member i as its input j, is read by an earlier member or input, or is a member. */
static bool read_before(const Node **m, int nm, int i, int j) {
    const Node *x = m[i]->inputs[j];
    for (int k = 0; k < nm; k++)
        if (m[k] == x)
            return true;
    for (int i2 = 0; i2 <= i; i2++)
        for (int j2 = 0; j2 < (i2 < i ? m[i2]->ninputs : j); j2++)
            if (m[i2]->inputs[j2] == x)
                return true;
    return false;
}

/* What the kernel reads and writes: its materialized members' buffers and, once each, the buffers of the
   nodes outside it that its members read (constants folded into the code aside); -1 on overflow. */
static int64_t kernel_bytes(const Graph *g, const Node **m, int nm, int64_t n) {
    if (nm == 1)
        return ir_node_bytes(m[0], n);
    int64_t total = 0;
    for (int i = 0; i < nm; i++) {
        if (ir_group_materialized(g, m[i]) && !add_bytes(&total, m[i], n))
            return -1;
        for (int j = 0; j < m[i]->ninputs; j++)
            if (m[i]->inputs[j]->op != OP_CONST && !read_before(m, nm, i, j) &&
                !add_bytes(&total, m[i]->inputs[j], n))
                return -1;
    }
    return total;
}

static int64_t kernel_flops(const Node **m, int nm, int64_t n) {
    int64_t total = 0;
    for (int i = 0; i < nm; i++)
        if (__builtin_add_overflow(total, ir_node_flops(m[i], n), &total))
            return -1;
    return total;
}

/* [c0, c1, c2] with f(n) = c0 + c1 n + c2 n^2 through f(1), f(2), f(3) (a [N, N] value makes a square);
   [-1, 0, 0] when a count saturated. */
static json_t *poly_json(int64_t f1, int64_t f2, int64_t f3) {
    if (f1 < 0 || f2 < 0 || f3 < 0 || f1 > INT64_MAX / 8 || f2 > INT64_MAX / 8 || f3 > INT64_MAX / 8)
        return json_pack("[I,I,I]", (json_int_t)-1, (json_int_t)0, (json_int_t)0);
    int64_t c2 = (f3 - 2 * f2 + f1) / 2, c1 = f2 - f1 - 3 * c2, c0 = f1 - c1 - c2;
    return json_pack("[I,I,I]", (json_int_t)c0, (json_int_t)c1, (json_int_t)c2);
}

/* "fashion_cnn.lathe:12" of n (the model file's base name), or "" without a location. */
static void line_of(const Node *n, char *buf, size_t size) {
    buf[0] = 0;
    if (n->loc.file) {
        const char *base = strrchr(n->loc.file, '/');
        snprintf(buf, size, "%s:%d", base ? base + 1 : n->loc.file, n->loc.line);
    }
}

/* "conv2d+add+relu": the ops of the members but constants, the first few. */
static void kernel_name(const Node **m, int nm, int index, char *buf, size_t size) {
    int len = snprintf(buf, size, "k%d ", index), shown = 0, more = 0;
    for (int i = 0; i < nm; i++) {
        if (m[i]->op == OP_CONST && nm > 1)
            continue;
        if (shown == PROFILE_NAME_OPS) {
            more++;
            continue;
        }
        if (len >= 0 && (size_t)len < size)
            len += snprintf(buf + len, size - (size_t)len, "%s%s", shown ? "+" : "", ir_op_name(m[i]->op));
        shown++;
    }
    if (more && len >= 0 && (size_t)len < size)
        snprintf(buf + len, size - (size_t)len, "+%d more", more);
}

/* "lines" and "share": the distinct model lines of the members in order of appearance, each with its
   members' part of the kernel's FLOPs at a batch of 64 (else of its bytes; else an equal part). */
static void kernel_lines(json_t *k, const Node **m, int nm) {
    char (*lines)[512] = calloc((size_t)nm, sizeof *lines);
    double *flops = calloc((size_t)nm, sizeof *flops), *bytes = calloc((size_t)nm, sizeof *bytes);
    if (!lines || !flops || !bytes)
        LATHE_UNREACHABLE("out of memory");
    int nl = 0;
    double tf = 0, tb = 0;
    for (int i = 0; i < nm; i++) {
        char l[512];
        line_of(m[i], l, sizeof l);
        if (!l[0])
            continue;
        int at = 0;
        while (at < nl && strcmp(lines[at], l) != 0)
            at++;
        if (at == nl)
            snprintf(lines[nl++], sizeof lines[0], "%s", l);
        flops[at] += (double)ir_node_flops(m[i], 64);
        bytes[at] += (double)ir_node_bytes(m[i], 64);
        tf += (double)ir_node_flops(m[i], 64);
        tb += (double)ir_node_bytes(m[i], 64);
    }
    json_t *jl = json_array(), *js = json_array();
    for (int i = 0; i < nl; i++) {
        json_t *s = json_string(lines[i]);
        if (!s) /* a file name that is not UTF-8 */
            s = json_string("?");
        json_array_append_new(jl, s);
        json_array_append_new(js, json_real(tf > 0 ? flops[i] / tf : tb > 0 ? bytes[i] / tb : 1.0 / nl));
    }
    json_object_set_new(k, "lines", jl);
    json_object_set_new(k, "share", js);
    free(lines);
    free(flops);
    free(bytes);
}

static json_t *kernel_list_json(const Graph *g) {
    json_t *list = json_array();
    const Node **m = calloc(PROFILE_MEMBERS_MAX, sizeof *m);
    if (!m)
        LATHE_UNREACHABLE("out of memory");
    for (int i = 0, index = 0; i < g->nnodes; i++) {
        const Node *nd = g->nodes[i];
        if ((nd->group >= 0 && nd->group != nd->id) || (!ir_is_kernel(nd) && nd->op != OP_CONST))
            continue;
        int nm = kernel_members(g, nd, m);
        char name[256];
        if (nd->op == OP_CONST) /* a lone constant's fill, which few graphs run: left out of the numbering */
            snprintf(name, sizeof name, "fill const %%%d", nd->id);
        else
            kernel_name(m, nm, index++, name, sizeof name);
        json_t *k = json_pack("{s:i, s:s}", "node", nd->id, "name", name);
        kernel_lines(k, m, nm);
        json_object_set_new(k, "flops", poly_json(kernel_flops(m, nm, 1), kernel_flops(m, nm, 2),
                                                  kernel_flops(m, nm, 3)));
        json_object_set_new(k, "bytes", poly_json(kernel_bytes(g, m, nm, 1), kernel_bytes(g, m, nm, 2),
                                                  kernel_bytes(g, m, nm, 3)));
        json_array_append_new(list, k);
    }
    free(m);
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
    return json_pack("{s:[I,I], s:i, s:o, s:o, s:o, s:o}", "arena", (json_int_t)c, (json_int_t)per_n, "kernels",
                     kernel_count(g), "args", list, "memory", memory, "checks", checks_json(g), "kernel_list",
                     kernel_list_json(g));
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
