/* lower.c: fe_compile, the frontend's driver. Parses the standard library and the model file, instantiates
   the model that the train block names, names its parameters as PyTorch's state_dict does, builds the
   predict, eval and train graphs by running forward (and the loss) in the evaluator, and checks the train
   block's recipe. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fe.h"

extern const char fe_stdlib_text[];

/* A model file is a few kilobytes; the bound keeps token lengths and columns well inside an int. */
#define FE_MAX_FILE_BYTES (16 << 20)

static const char *const recipe_keys[] = {
    "data", "test", "classes", "batch", "epochs", "shuffle", "seed", "optimizer", "loss", "metrics",
};
static const char *const metric_names[] = {"accuracy"};

typedef struct Lower {
    Eval E;
    Program *p;
    const Decl *train;
    Value *model;
    Node *logits; /* the forward's result in the graph being built */
    int params_cap;
} Lower;

/* ---------------------------------------------------------------- parameter names */

static void add_param(Lower *L, ParamObj *po) {
    Program *p = L->p;
    if (p->nparams == L->params_cap) {
        int cap = L->params_cap ? 2 * L->params_cap : 16;
        p->params = arena_realloc(L->E.a, p->params, sizeof *p->params * L->params_cap, sizeof *p->params * cap);
        L->params_cap = cap;
    }
    p->params[p->nparams++] = (ParamInfo){
        .name = po->name, .dtype = po->dtype, .shape = po->shape, .init = po->init,
        /* autodiff gives integer parameters no gradient */
        .trainable = ir_dtype_is_float(po->dtype) && !po->frozen && !po->buffer,
        .buffer = po->buffer,
        .loc = po->loc,
    };
}

static void name_param(Lower *L, ParamObj *po, const char *prefix, const char *name) {
    if (po->name)
        return;
    po->name = arena_printf(L->E.a, "%s%s", prefix, name);
    add_param(L, po);
}

static void name_params(Lower *L, Instance *inst, const char *prefix);

/* A member's value that holds layers: a layer, or a list of them (ModuleList: children "0.", "1.", ...). */
static void name_value(Lower *L, Value *v, const char *prefix, const char *name) {
    if (v->kind == V_INSTANCE) {
        name_params(L, v->inst, arena_printf(L->E.a, "%s%s.", prefix, name));
    } else if (v->kind == V_LIST) {
        const char *p = arena_printf(L->E.a, "%s%s.", prefix, name);
        for (int i = 0; i < v->nitems; i++) {
            const char *k = arena_printf(L->E.a, "%d", i);
            if (v->items[i]->kind == V_PARAM)
                name_param(L, v->items[i]->param, p, k);
            else
                name_value(L, v->items[i], p, k);
        }
    }
}

/* As torch's state_dict: a module's own parameters first, then its buffers, then its children under
   "member." (or "0.", "1.", ... in a Sequential or a list of layers). An instance reachable twice is named
   once, at its first path. The tree's depth is bounded by the evaluator's depth limits, which built it. */
static void name_params(Lower *L, Instance *inst, const char *prefix) {
    if (inst->named)
        return;
    inst->named = true;
    /* the order members were declared in (a member may rebind a constructor parameter: Linear's bias), then
       the constructor's arguments that no member replaced (a layer passed in) */
    Scope *s = inst->scope;
    int n = 0;
    const char **names = arena_alloc(L->E.a, sizeof *names * (size_t)(s->n + 1));
    Value **values = arena_alloc(L->E.a, sizeof *values * (size_t)(s->n + 1));
    for (int i = 0; inst->members && i < inst->members->n; i++) {
        names[n] = inst->members->names[i];
        values[n] = sema_scope_get_local(s, names[n]);
        n++;
    }
    for (int i = 0; i < s->n; i++) {
        if (!inst->members || !sema_scope_get_local(inst->members, s->names[i])) {
            names[n] = s->names[i];
            values[n++] = s->values[i];
        }
    }
    for (int buffers = 0; buffers < 2; buffers++) {
        for (int i = 0; i < n; i++) {
            ParamObj *po = values[i]->kind == V_PARAM ? values[i]->param : NULL;
            if (po && po->buffer == buffers)
                name_param(L, po, prefix, names[i]);
        }
    }
    for (int i = 0; i < inst->nchildren; i++)
        name_params(L, inst->children[i]->inst, arena_printf(L->E.a, "%s%d.", prefix, i));
    for (int i = 0; i < n; i++)
        name_value(L, values[i], prefix, names[i]);
}

/* ---------------------------------------------------------------- the recipe */

/* Whether e reads a name (other than a call's callee): not a constant then. */
static bool mentions_names(const Expr *e) {
    if (!e)
        return false;
    if (e->kind == E_IDENT)
        return true;
    if (mentions_names(e->kind == E_CALL ? NULL : e->lhs) || mentions_names(e->rhs))
        return true;
    for (int i = 0; i < e->nitems; i++)
        if (mentions_names(e->items[i]))
            return true;
    return false;
}

static RVal *rval(Lower *L, const Expr *e, bool lenient) {
    Eval *E = &L->E;
    RVal *r = arena_alloc(E->a, sizeof *r);
    r->loc = e->loc;
    switch (e->kind) {
    case E_IDENT:
        r->kind = RV_IDENT;
        r->str = e->name;
        return r;
    case E_LIST:
    case E_CALL:
        if (e->kind == E_CALL && e->lhs->kind != E_IDENT)
            return sema_error(E, e->loc, "a call in a train block must name a function"), NULL;
        r->kind = e->kind == E_LIST ? RV_LIST : RV_CALL;
        r->str = e->kind == E_CALL ? e->lhs->name : NULL;
        r->nitems = e->nitems;
        r->items = arena_alloc(E->a, sizeof *r->items * (size_t)(e->nitems + 1));
        r->keys = arena_alloc(E->a, sizeof *r->keys * (size_t)(e->nitems + 1));
        for (int i = 0; i < e->nitems; i++) {
            if (!(r->items[i] = rval(L, e->items[i], lenient)))
                return NULL;
            r->keys[i] = e->kind == E_CALL ? e->keys[i] : NULL;
        }
        return r;
    default: break;
    }
    /* An argument of the loss may compute on logits or label (logits[:, 0]): the graphs evaluate it; the
       recipe keeps a placeholder. */
    if (lenient && mentions_names(e)) {
        r->kind = RV_IDENT;
        r->str = "(expression)";
        return r;
    }
    /* Anything else is a constant expression: a literal, or 1 / 255 that becomes a number. */
    Value *v = sema_eval(E, e, E->global);
    if (!v)
        return NULL;
    if (v->kind == V_INT || v->kind == V_FLOAT) {
        r->kind = RV_NUM;
        r->is_int = v->kind == V_INT;
        r->num = v->kind == V_INT ? (double)v->i : v->f;
    } else if (v->kind == V_BOOL) {
        r->kind = RV_BOOL;
        r->num = v->b;
    } else if (v->kind == V_STR) {
        r->kind = RV_STR;
        r->str = v->s;
    } else {
        return sema_error(E, e->loc, "a train setting must be a constant, got %s", sema_kind_name(E, v)), NULL;
    }
    return r;
}

static bool is_num(const RVal *v) { return v && v->kind == RV_NUM; }
static bool is_int(const RVal *v) { return is_num(v) && v->is_int; }

/* Keyword arguments of a call are limited to the names given. */
static bool check_keywords(Lower *L, const RVal *call, const char *const *names, int n) {
    for (int i = 0; i < call->nitems; i++) {
        const char *k = call->keys[i];
        if (!k)
            continue;
        int j;
        for (j = 0; j < n && strcmp(k, names[j]) != 0; j++)
            ;
        if (j == n) {
            const char *close = sema_closest(k, names, n);
            sema_error(&L->E, call->items[i]->loc, "'%s' has no argument '%s'%s", call->str, k,
                       sema_did_you_mean(&L->E, close));
            return false;
        }
    }
    return true;
}

static int positional(const RVal *call) {
    int n = 0;
    for (int i = 0; i < call->nitems; i++)
        n += call->keys[i] == NULL;
    return n;
}

/* A data source: idx(images, labels, scale = 1), text(file, context = T, stride = T) or csv(file, header =
   true, label_column = -1, regression = false). The positional arguments are file names. */
static bool check_source(Lower *L, const char *key, const RVal *v) {
    Eval *E = &L->E;
    static const struct {
        const char *name, *usage;
        int nfiles, nkw;
        const char *kw[4];
    } kinds[] = {
        {"idx", "idx(images, labels, scale = NUMBER)", 2, 1, {"scale"}},
        {"text", "text(file, context = INT, stride = INT)", 1, 2, {"context", "stride"}},
        {"csv", "csv(file, header = BOOL, label_column = INT, regression = BOOL)", 1, 3,
         {"header", "label_column", "regression"}},
    };
    int k = 0;
    while (k < 3 && (v->kind != RV_CALL || strcmp(v->str, kinds[k].name) != 0))
        k++;
    if (k == 3)
        return sema_error(E, v->loc, "'%s' must be idx(images, labels, scale = NUMBER), text(file, context = INT) or "
                          "csv(file)", key), false;
    if (positional(v) != kinds[k].nfiles)
        return sema_error(E, v->loc, "'%s' must be %s", key, kinds[k].usage), false;
    if (!check_keywords(L, v, kinds[k].kw, kinds[k].nkw))
        return false;
    for (int i = 0; i < kinds[k].nfiles; i++)
        if (rval_arg(v, NULL, i)->kind != RV_STR)
            return sema_error(E, rval_arg(v, NULL, i)->loc, "%s needs file names as strings", v->str), false;
    const RVal *a;
    if ((a = rval_arg(v, "scale", -1)) && !is_num(a))
        return sema_error(E, a->loc, "idx's scale must be a number"), false;
    if (k == 1) {
        if (!(a = rval_arg(v, "context", -1)))
            return sema_error(E, v->loc, "text needs the context length: text(file, context = INT)"), false;
        if (!is_int(a) || a->num < 1 || a->num > (1 << 24))
            return sema_error(E, a->loc, "text's context must be an int >= 1"), false;
        if ((a = rval_arg(v, "stride", -1)) && (!is_int(a) || a->num < 1 || a->num > (1 << 30)))
            return sema_error(E, a->loc, "text's stride must be an int >= 1"), false;
    }
    if ((a = rval_arg(v, "header", -1)) && a->kind != RV_BOOL)
        return sema_error(E, a->loc, "csv's header must be true or false"), false;
    if ((a = rval_arg(v, "regression", -1)) && a->kind != RV_BOOL)
        return sema_error(E, a->loc, "csv's regression must be true or false"), false;
    if ((a = rval_arg(v, "label_column", -1)) && (!is_int(a) || fabs(a->num) > (1 << 24)))
        return sema_error(E, a->loc, "csv's label_column must be an int (negative from the end)"), false;
    return true;
}

/* SGD(lr, momentum = 0, dampening = 0, nesterov = false, weight_decay = 0), as torch.optim.SGD. */
static bool check_sgd(Lower *L, const RVal *v) {
    Eval *E = &L->E;
    static const char *const kw[] = {"lr", "momentum", "dampening", "nesterov", "weight_decay"};
    if (v->kind != RV_CALL || strcmp(v->str, "SGD") != 0)
        return sema_error(E, v->loc, "unknown optimizer: 'optimizer' must be SGD(lr = NUMBER)"), false;
    if (!check_keywords(L, v, kw, 5))
        return false;
    const RVal *lr = rval_arg(v, "lr", 0);
    if (positional(v) > 1 || !is_num(lr) || lr->num <= 0)
        return sema_error(E, lr ? lr->loc : v->loc, "SGD needs a learning rate lr > 0"), false;
    static const char *const nums[] = {"momentum", "dampening", "weight_decay"};
    for (int i = 0; i < 3; i++) {
        const RVal *a = rval_arg(v, nums[i], -1);
        if (a && (!is_num(a) || a->num < 0))
            return sema_error(E, a->loc, "SGD's %s must be a number >= 0", nums[i]), false;
    }
    const RVal *nesterov = rval_arg(v, "nesterov", -1), *m = rval_arg(v, "momentum", -1),
               *damp = rval_arg(v, "dampening", -1);
    if (nesterov && nesterov->kind != RV_BOOL)
        return sema_error(E, nesterov->loc, "SGD's nesterov must be true or false"), false;
    if (nesterov && nesterov->num && (!m || m->num <= 0 || (damp && damp->num != 0)))
        return sema_error(E, nesterov->loc, "SGD with nesterov = true needs momentum > 0 and dampening = 0"), false;
    return true;
}

/* The type of the INPUT "label", from the `data` source: idx -> i64[N], text -> i64[N, context], csv ->
   i64[N] (a class) or f32[N, 1] with regression = true. */
static void source_label_type(const RVal *data, DType *t, Shape *s) {
    *t = DT_I64;
    *s = ir_shape(1, (int64_t[]){IR_DIM_N});
    if (!data)
        return;
    const RVal *a;
    if (!strcmp(data->str, "text") && (a = rval_arg(data, "context", -1)))
        *s = ir_shape(2, (int64_t[]){IR_DIM_N, (int64_t)a->num});
    if (!strcmp(data->str, "csv") && (a = rval_arg(data, "regression", -1)) && a->num) {
        *t = DT_F32;
        *s = ir_shape(2, (int64_t[]){IR_DIM_N, 1});
    }
}

static void label_type(const Program *p, DType *t, Shape *s) {
    source_label_type(program_recipe(p, "data"), t, s);
}

/* The data source fixes what the batch input holds: text gives token ids i64[N, context], csv the features
   f32[N, F]; forward must take that. */
static bool check_source_input(Lower *L, const RVal *data) {
    const Program *p = L->p;
    const Node *x = p->ninputs > 1 ? ir_find_leaf(p->predict, OP_INPUT, p->input_names[0]) : NULL;
    if (!data || !x)
        return true;
    const char *got = sema_type_str(&L->E, x->dtype, &x->shape), *want = NULL;
    if (!strcmp(data->str, "text")) {
        Shape s = ir_shape(2, (int64_t[]){IR_DIM_N, (int64_t)rval_arg(data, "context", -1)->num});
        if (x->dtype != DT_I64 || !ir_shape_eq(&x->shape, &s))
            want = sema_type_str(&L->E, DT_I64, &s);
    } else if (!strcmp(data->str, "csv")) {
        if (x->dtype != DT_F32 || x->shape.rank != 2 || x->shape.dim[0] != IR_DIM_N || x->shape.dim[1] == IR_DIM_N)
            want = "f32[N,FEATURES]";
    }
    if (want)
        return sema_error(&L->E, data->loc, "%s gives '%s' as %s, but forward takes %s", data->str,
                          p->input_names[0], want, got), false;
    return true;
}

/* Both sources feed the same graphs: `test` must give the batch input and the labels as `data` does. */
static bool check_input_type(Lower *L) {
    const RVal *data = program_recipe(L->p, "data"), *test = program_recipe(L->p, "test");
    if (data && test) {
        DType dt, tt;
        Shape ds, tsh;
        source_label_type(data, &dt, &ds);
        source_label_type(test, &tt, &tsh);
        if (strcmp(data->str, test->str) != 0 || dt != tt || !ir_shape_eq(&ds, &tsh))
            return sema_error(&L->E, test->loc, "'test' must be a source of the same kind and labels as 'data' "
                              "(%s with labels %s), got %s with labels %s", data->str,
                              sema_type_str(&L->E, dt, &ds), test->str, sema_type_str(&L->E, tt, &tsh)), false;
    }
    return check_source_input(L, data) && check_source_input(L, test);
}

static bool check_entry(Lower *L, const char *key, const RVal *v) {
    Eval *E = &L->E;
    if (!strcmp(key, "data") || !strcmp(key, "test")) {
        if (!check_source(L, key, v))
            return false;
    } else if (!strcmp(key, "classes")) {
        if (v->kind != RV_LIST)
            return sema_error(E, v->loc, "'classes' must be a list of strings"), false;
        for (int i = 0; i < v->nitems; i++)
            if (v->items[i]->kind != RV_STR)
                return sema_error(E, v->items[i]->loc, "'classes' must be a list of strings"), false;
    } else if (!strcmp(key, "batch")) {
        if (!is_int(v) || v->num < 1)
            return sema_error(E, v->loc, "'batch' must be an int >= 1"), false;
    } else if (!strcmp(key, "epochs")) {
        if (!is_int(v) || v->num < 0)
            return sema_error(E, v->loc, "'epochs' must be an int >= 0"), false;
    } else if (!strcmp(key, "seed")) {
        if (!is_int(v) || v->num < 0)
            return sema_error(E, v->loc, "'seed' must be an int >= 0"), false;
    } else if (!strcmp(key, "shuffle")) {
        if (v->kind != RV_BOOL)
            return sema_error(E, v->loc, "'shuffle' must be true or false"), false;
    } else if (!strcmp(key, "optimizer")) {
        if (!check_sgd(L, v))
            return false;
    } else if (!strcmp(key, "loss")) {
        if (v->kind != RV_CALL)
            return sema_error(E, v->loc, "'loss' must be a call such as cross_entropy(logits, label)"), false;
    } else if (!strcmp(key, "metrics")) {
        if (v->kind != RV_LIST)
            return sema_error(E, v->loc, "'metrics' must be a list such as [accuracy]"), false;
        for (int i = 0; i < v->nitems; i++) {
            const RVal *m = v->items[i];
            int n = sizeof metric_names / sizeof *metric_names, j;
            for (j = 0; m->kind == RV_IDENT && j < n && strcmp(m->str, metric_names[j]) != 0; j++)
                ;
            if (m->kind != RV_IDENT || j == n)
                return sema_error(E, m->loc, "unknown metric (known: accuracy)"), false;
        }
    }
    return true;
}

static bool recipe(Lower *L) {
    const Decl *t = L->train;
    Program *p = L->p;
    p->recipe = arena_alloc(L->E.a, sizeof *p->recipe * (size_t)(t->nentries + 1));
    for (int i = 0; i < t->nentries; i++) {
        const TrainEntry *e = &t->entries[i];
        int n = sizeof recipe_keys / sizeof *recipe_keys, j;
        for (j = 0; j < n && strcmp(e->key, recipe_keys[j]) != 0; j++)
            ;
        if (j == n) {
            const char *close = sema_closest(e->key, recipe_keys, n);
            sema_error(&L->E, e->loc, "unknown train setting '%s'%s", e->key, sema_did_you_mean(&L->E, close));
            return false;
        }
        RVal *v = rval(L, e->value, !strcmp(e->key, "loss"));
        if (!v || !check_entry(L, e->key, v))
            return false;
        p->recipe[p->nrecipe++] = (RecipeEntry){e->key, v, e->loc};
    }
    static const char *const required[] = {"loss", "optimizer"};
    for (int i = 0; i < 2; i++)
        if (!program_recipe(p, required[i]))
            return sema_error(&L->E, t->loc, "train block for '%s' has no '%s'", t->name, required[i]), false;
    return true;
}

/* ---------------------------------------------------------------- graphs */

/* INPUT nodes for forward's parameters, then forward inlined: the logits. */
static Node *build_forward(Lower *L, Graph *g) {
    Eval *E = &L->E;
    Instance *inst = L->model->inst;
    const Func *f = inst->forward;
    E->g = g;
    Args args = {.pos = arena_alloc(E->a, sizeof(Value *) * (size_t)(f->nparams + 1))};
    for (int i = 0; i < f->nparams; i++) {
        const Param *pm = &f->params[i];
        DType dt;
        Shape shape;
        if (!pm->type || pm->type->kind != TY_TENSOR)
            return sema_error(E, pm->loc, "forward's parameter '%s' of the trained model needs a tensor type",
                              pm->name), NULL;
        if (!sema_eval_type(E, pm->type, inst->scope, true, &dt, &shape))
            return NULL;
        /* the executable feeds batches of samples: N first and only there (a member `N = 3` shadows it) */
        if (shape.rank < 1 || shape.dim[0] != IR_DIM_N || ir_shape_count_n(&shape) != 1)
            return sema_error(E, pm->type->loc, "forward's parameter '%s' of the trained model needs the batch "
                              "dimension N first and only there, got %s", pm->name, sema_type_str(E, dt, &shape)), NULL;
        args.pos[args.npos++] = sema_tensor(E, ir_input(g, pm->loc, pm->name, dt, shape));
    }
    Value *v = sema_call(E, L->model, &args, f->loc);
    if (!v)
        return NULL;
    Node *n = sema_node(E, v, f->loc);
    if (!n && !E->failed)
        sema_error(E, f->loc, "forward of '%s' must return a tensor, got %s", inst->type_name, sema_kind_name(E, v));
    L->logits = n;
    return n;
}

static const TrainEntry *entry(const Decl *t, const char *key) {
    for (int i = 0; i < t->nentries; i++)
        if (strcmp(t->entries[i].key, key) == 0)
            return &t->entries[i];
    return NULL;
}

static bool has_output(const Graph *g, const char *name) {
    for (int i = 0; i < g->noutputs; i++)
        if (strcmp(g->outputs[i].name, name) == 0)
            return true;
    return false;
}

/* eval and train: forward, the INPUT label, the loss and the metrics. */
static bool build_loss(Lower *L, Graph *g) {
    Eval *E = &L->E;
    Node *logits = build_forward(L, g);
    if (!logits)
        return false;
    const TrainEntry *loss = entry(L->train, "loss");
    DType lt;
    Shape labels;
    label_type(L->p, &lt, &labels);
    Node *label = ir_input(g, loss->loc, "label", lt, labels);
    Scope *s = sema_scope_new(E, E->global);
    sema_scope_set(E, s, "logits", sema_tensor(E, logits));
    sema_scope_set(E, s, "label", sema_tensor(E, label));
    Value *v = sema_eval(E, loss->value, s);
    if (!v)
        return false;
    Node *n = sema_node(E, v, loss->value->loc);
    if (E->failed)
        return false;
    if (!n || n->shape.rank != 0 || !ir_dtype_is_float(n->dtype))
        return sema_error(E, loss->value->loc, "the loss must be a float scalar, got %s",
                          n ? sema_type_str(E, n->dtype, &n->shape) : sema_kind_name(E, v)), false;
    ir_add_output(g, "loss", n, false);
    const RVal *metrics = program_recipe(L->p, "metrics");
    for (int i = 0; metrics && i < metrics->nitems; i++) {
        const RVal *m = metrics->items[i];
        if (has_output(g, "correct"))
            continue; /* accuracy listed twice */
        Value *fn = sema_scope_get(E->global, m->str);
        if (!fn)
            return sema_error(E, m->loc, "the standard library has no '%s'", m->str), false;
        Value *a[2] = {sema_tensor(E, logits), sema_tensor(E, label)};
        Args args = {.pos = a, .npos = 2};
        Value *c = sema_call(E, fn, &args, m->loc);
        Node *cn = c ? sema_node(E, c, m->loc) : NULL;
        if (!cn)
            return sema_error(E, m->loc, "metric '%s' did not give a tensor", m->str), false;
        if (cn->shape.rank != 0) /* the runtime reads one count per batch */
            return sema_error(E, m->loc, "metric '%s' must give a scalar count, got %s", m->str,
                              sema_type_str(E, cn->dtype, &cn->shape)), false;
        ir_add_output(g, "correct", cn, false);
    }
    return true;
}

/* The train graph runs forward with training = true (dropout on, batch statistics, buffer updates); eval
   and predict with training = false. */
static Graph *graph(Lower *L, const char *name) {
    Eval *E = &L->E;
    Graph *g = ir_graph_new(E->a, name);
    E->training = !strcmp(name, "train");
    E->streams = 0;
    E->nupdates = 0;
    sema_scope_set(E, E->global, "training", sema_bool(E, E->training));
    if (!strcmp(name, "predict")) {
        Node *logits = build_forward(L, g);
        if (!logits)
            return NULL;
        ir_add_output(g, "logits", logits, false);
    } else if (!build_loss(L, g)) {
        return NULL;
    }
    /* the buffers' new values come after the loss and the metrics among the outputs */
    for (int i = 0; i < E->nupdates; i++)
        ir_add_output(g, E->updates[i]->name, E->update_values[i], true);
    E->g = NULL;
    if (E->training) {
        g->optimizer = program_recipe(L->p, "optimizer");
        L->p->train_logits = L->logits;
    }
    return ir_verify(g, E->d) ? g : NULL;
}

/* ---------------------------------------------------------------- declarations */

static bool declare(Lower *L, const Module *m, bool user) {
    Eval *E = &L->E;
    for (int i = 0; i < m->ndecls; i++) {
        const Decl *d = &m->decls[i];
        if (d->kind == D_TRAIN) {
            if (L->train) {
                sema_error(E, d->loc, "a second train block (only one is allowed)");
                diag_note(E->d, L->train->loc, "the first train block is here");
                return false;
            }
            L->train = d;
            continue;
        }
        Value *old = sema_scope_get_local(E->global, d->name);
        if (user && old && (old->kind == V_LAYER || old->kind == V_FUNC) && old->decl->loc.file == E->user_file) {
            sema_error(E, d->loc, "'%s' is already defined", d->name);
            diag_note(E->d, old->decl->loc, "'%s' first defined here", d->name);
            return false;
        }
        Value *v = sema_value(E, d->kind == D_DEF ? V_FUNC : V_LAYER);
        v->decl = d;
        sema_scope_set(E, E->global, d->name, v);
    }
    return true;
}

static bool instantiate_model(Lower *L) {
    Eval *E = &L->E;
    const Decl *t = L->train;
    Value *m = sema_scope_get_local(E->global, t->name);
    if (!m || m->kind != V_LAYER) {
        const char **names = arena_alloc(E->a, sizeof *names * (size_t)(E->global->n + 1));
        int n = 0;
        for (int i = 0; i < E->global->n; i++)
            if (E->global->values[i]->kind == V_LAYER && E->global->values[i]->decl->kind == D_MODEL)
                names[n++] = E->global->names[i];
        const char *close = sema_closest(t->name, names, n);
        sema_error(E, t->loc, "train block for unknown model '%s'%s", t->name, sema_did_you_mean(E, close));
        return false;
    }
    if (m->decl->nparams) {
        sema_error(E, t->loc, "'%s' takes constructor arguments; train needs a model", t->name);
        return false;
    }
    Args none = {0};
    if (!(L->model = sema_call(E, m, &none, t->loc)))
        return false;
    if (!L->model->inst->forward) {
        sema_error(E, m->decl->loc, "model '%s' has no forward", t->name);
        return false;
    }
    name_params(L, L->model->inst, "");
    L->p->model_name = t->name;
    return true;
}

Program *fe_compile(Arena *a, Diag *d, const char *file, const char *text) {
    /* Private copies of the file names: locations in the library are told apart by pointer. */
    const char *user_file = arena_strdup(a, file), *lib_file = arena_strdup(a, "stdlib.lathe");
    diag_add_source(d, user_file, text, strlen(text));
    diag_add_source(d, lib_file, fe_stdlib_text, strlen(fe_stdlib_text));
    Module *lib = parse_file(a, d, lib_file, fe_stdlib_text);
    Module *user = lib ? parse_file(a, d, user_file, text) : NULL;
    if (!user)
        return NULL;
    Lower L = {.E = {.a = a, .d = d, .user_file = user_file, .stdlib_file = lib_file}};
    Eval *E = &L.E;
    E->global = sema_scope_new(E, NULL);
    sema_register_builtins(E, E->global);
    L.p = arena_alloc(a, sizeof *L.p);
    L.p->arena = a;
    L.p->source_file = user_file;
    L.p->source_text = text;
    if (!declare(&L, lib, false) || !declare(&L, user, true))
        return NULL;
    if (user->ndecls == 0) {
        diag_error(d, (Loc){user_file, 1, 1}, "empty model file: expected a model and a train block");
        return NULL;
    }
    if (!L.train) {
        diag_error(d, (Loc){user_file, 1, 1}, "no train block: add 'train MODEL { ... }' to say what to train");
        return NULL;
    }
    if (!instantiate_model(&L))
        return NULL;
    Program *p = L.p;
    const Func *f = L.model->inst->forward;
    p->input_names = arena_alloc(a, sizeof *p->input_names * (size_t)(f->nparams + 1));
    /* the other INPUTs of the graphs: the targets here, the learning rate in the optimizer pass */
    static const char *const reserved[][2] = {
        {"label", "the targets"}, {"lr", "the optimizer's learning rate"},
        {"seed", "the run's random seed"}, {"step", "the step count"},
    };
    for (int i = 0; i < f->nparams; i++) {
        for (int j = 0; j < 4; j++) {
            if (!strcmp(f->params[i].name, reserved[j][0])) {
                sema_error(E, f->params[i].loc, "forward's parameter cannot be called '%s': it names %s",
                           reserved[j][0], reserved[j][1]);
                return NULL;
            }
        }
        p->input_names[p->ninputs++] = f->params[i].name;
    }
    p->input_names[p->ninputs++] = "label";
    if (!(p->predict = graph(&L, "predict")) || !recipe(&L) || !check_input_type(&L) || !(p->eval = graph(&L, "eval")) ||
        !(p->train = graph(&L, "train")))
        return NULL;
    /* a data source feeds one batch input: a second parameter would be fed nothing (or the labels); checked
       last, so that a mistake inside forward is reported first */
    if (f->nparams > 1) {
        sema_error(E, f->params[1].loc, "forward of the trained model '%s' takes one tensor (the batch input), "
                   "got %d parameters", L.model->inst->type_name, f->nparams);
        return NULL;
    }
    return p;
}

char *fe_read_file(Arena *a, Diag *d, const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        diag_error(d, (Loc){0}, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = arena_alloc(a, cap);
    for (;;) {
        if (n + 1 == cap) {
            if (cap >= FE_MAX_FILE_BYTES) { /* also what stops reading /dev/zero or a pipe that never ends */
                fclose(f);
                diag_error(d, (Loc){0}, "cannot read %s: larger than %d MiB", path, FE_MAX_FILE_BYTES >> 20);
                return NULL;
            }
            buf = arena_realloc(a, buf, cap, cap * 2);
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    bool bad = ferror(f);
    int err = errno;
    fclose(f);
    if (bad) {
        diag_error(d, (Loc){0}, "cannot read %s: %s", path, strerror(err));
        return NULL;
    }
    const char *nul = memchr(buf, '\0', n);
    if (nul) { /* at its line and column, as the lexer counts them */
        Loc at = {path, 1, 1};
        for (const char *q = buf; q < nul; q++, at.col++)
            if (*q == '\n')
                at.line++, at.col = 0;
        diag_error(d, at, "cannot read %s: the file contains a NUL byte", path);
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}
