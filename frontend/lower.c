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

/* The train block's keys. runtime/flags.c lists the same keys for --set: both lists must agree. */
static const char *const recipe_keys[] = {
    "data", "test", "validation", "classes", "batch", "epochs", "shuffle", "seed", "workers", "drop_last",
    "transforms", "optimizer", "param_groups", "clip_grad_norm", "clip_grad_value", "accumulate", "schedule",
    "warmup", "loss", "metrics", "early_stop",
};

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

/* Whether e reads a name or calls a function: arithmetic over it stays an operator call tree, as
   rt_rexpr_parse (runtime/rexpr.h) leaves it, rather than folding to a number. */
static bool reads_names_or_calls(const Expr *e) {
    if (!e)
        return false;
    if (e->kind == E_IDENT || e->kind == E_CALL)
        return true;
    if (reads_names_or_calls(e->lhs) || reads_names_or_calls(e->rhs))
        return true;
    for (int i = 0; i < e->nitems; i++)
        if (reads_names_or_calls(e->items[i]))
            return true;
    return false;
}

/* The operators of rexpr.h's call trees; NULL for one that a recipe value cannot hold. */
static const char *operator_name(BinOp op) {
    switch (op) {
    case B_ADD: return "add";
    case B_SUB: return "sub";
    case B_MUL: return "mul";
    case B_DIV: return "div";
    case B_FLOORDIV: return "floordiv";
    case B_MOD: return "mod";
    case B_POW: return "pow";
    default: return NULL;
    }
}

static RVal *rval(Lower *L, const Expr *e, bool lenient);

/* Arithmetic that reads a name (LambdaLR(0.95 ** epoch), generate(y = 2 * x + 1)): the call tree of its
   operators, pow(0.95, epoch), which the runtime evaluates; constant parts fold as everywhere else. */
static RVal *operator_tree(Lower *L, const Expr *e, RVal *r) {
    Eval *E = &L->E;
    const char *op = e->kind == E_NEG ? "neg" : operator_name(e->op);
    if (!op)
        return sema_error(E, e->loc, "'%s' cannot be part of a train setting (only + - * / // %% ** and unary -)",
                          parse_binop_name(e->op)), NULL;
    r->kind = RV_CALL;
    r->str = op;
    r->nitems = e->kind == E_NEG ? 1 : 2;
    r->items = arena_alloc(E->a, sizeof *r->items * 2);
    r->keys = arena_alloc(E->a, sizeof *r->keys * 2);
    const Expr *operands[2] = {e->lhs, e->rhs};
    for (int i = 0; i < r->nitems; i++) {
        RVal *x = r->items[i] = rval(L, operands[i], false);
        if (!x)
            return NULL;
        if (x->kind != RV_NUM && x->kind != RV_IDENT && x->kind != RV_CALL)
            return sema_error(E, x->loc, "'%s' needs numbers, got %s", e->kind == E_NEG ? "-" : parse_binop_name(e->op),
                              x->kind == RV_STR ? "a string" : x->kind == RV_BOOL ? "a boolean" : "a list"), NULL;
    }
    return r;
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
    if ((e->kind == E_BINARY || e->kind == E_NEG) && reads_names_or_calls(e))
        return operator_tree(L, e, r);
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
    } else if (v->kind == V_NONE) {
        r->kind = RV_NONE;
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

/* ---------------------------------------------------------------- data sources
   Each source's parameters in order (as the runtime's dataspec.c reads them, by keyword or position); the
   first `required` must be given. The compiler checks what fixes the graphs' inputs (the source's kind, its
   label type, text's context) and the kinds of the arguments; the runtime reads the rest. */

/* A_COLUMN: an int (negative from the end) or a header name; A_COLUMNS: a non-empty list of them; A_LABELS:
   csv's "auto", "numeric" or "categorical"; A_CHAR: a string of one byte */
typedef enum {
    A_FILE, A_NUM, A_INT, A_BOOL, A_TOKENS, A_SHAPE, A_COLUMN, A_COLUMNS, A_LABELS, A_CHAR, A_ANY
} SourceArgKind;

typedef struct SourceArg {
    const char *name;
    SourceArgKind kind;
    int64_t min, max;  /* A_INT */
    const char *want;  /* "an int >= 1", for messages */
} SourceArg;

#define SOURCE_MAX_ARGS 7

typedef struct SourceKind {
    const char *name, *usage;
    int required, nargs;
    SourceArg args[SOURCE_MAX_ARGS];
} SourceKind;

static const SourceKind sources[] = {
    {"idx", "idx(images, labels, scale = NUMBER)", 2, 3,
     {{"images", A_FILE, 0, 0, NULL}, {"labels", A_FILE, 0, 0, NULL}, {"scale", A_NUM, 0, 0, "a number"}}},
    {"text", "text(file, context = INT, stride = INT, tokens = \"bytes\", lines = false, pad = 0)", 2, 6,
     {{"file", A_FILE, 0, 0, NULL},
      {"context", A_INT, 1, 1 << 24, "an int >= 1"},
      {"stride", A_INT, 1, 1 << 30, "an int >= 1"},
      {"tokens", A_TOKENS, 0, 0, "\"bytes\" or \"chars\""},
      {"lines", A_BOOL, 0, 0, "true or false"},
      {"pad", A_INT, 0, INT32_MAX, "an int >= 0"}}},
    {"csv", "csv(file, header = BOOL, label_column = INT or NAME, regression = BOOL, features = [INT or NAME, ...], "
            "labels = \"auto\", delimiter = \",\")", 1, 7,
     {{"file", A_FILE, 0, 0, NULL},
      {"header", A_BOOL, 0, 0, "true or false"},
      {"label_column", A_COLUMN, -(1 << 24), 1 << 24, "an int (negative from the end) or a header name"},
      {"regression", A_BOOL, 0, 0, "true or false"},
      {"features", A_COLUMNS, -(1 << 24), 1 << 24,
       "a list of column indices (negative from the end) or header names, such as [0, 2] or [\"sepal_length\"]"},
      {"labels", A_LABELS, 0, 0, "\"auto\", \"numeric\" or \"categorical\""},
      {"delimiter", A_CHAR, 0, 0, "one character such as \",\", \";\" or \"\\t\", not a quote or a line end"}}},
    {"npy", "npy(x, y = FILE, scale = NUMBER, regression = BOOL, label_shape = [K])", 1, 5,
     {{"x", A_FILE, 0, 0, NULL},
      {"y", A_FILE, 0, 0, NULL},
      {"scale", A_NUM, 0, 0, "a number"},
      {"regression", A_BOOL, 0, 0, "true or false"},
      {"label_shape", A_SHAPE, 1, 1 << 30, "a list of ints >= 1 such as [3]"}}},
    {"images", "images(folder, scale = NUMBER, grayscale = BOOL)", 1, 3,
     {{"folder", A_FILE, 0, 0, NULL},
      {"scale", A_NUM, 0, 0, "a number"},
      {"grayscale", A_BOOL, 0, 0, "true or false"}}},
    {"generate", "generate(n, x = uniform(A, B), y = EXPRESSION OF x, noise = NUMBER, seed = INT)", 1, 5,
     {{"n", A_INT, 1, 1ll << 31, "an int >= 1"},
      {"x", A_ANY, 0, 0, NULL},
      {"y", A_ANY, 0, 0, NULL},
      {"noise", A_NUM, 0, 0, "a number"},
      {"seed", A_INT, 0, INT64_MAX, "an int >= 0"}}},
};
#define NSOURCES ((int)(sizeof sources / sizeof *sources))

static const SourceKind *source_kind(const RVal *v) {
    for (int k = 0; v && v->kind == RV_CALL && k < NSOURCES; k++)
        if (!strcmp(v->str, sources[k].name))
            return &sources[k];
    return NULL;
}

/* The argument `name` of source v (by keyword or position), or NULL. */
static const RVal *source_arg(const RVal *v, const SourceKind *s, const char *name) {
    for (int i = 0; i < s->nargs; i++)
        if (!strcmp(s->args[i].name, name))
            return rval_arg(v, name, i);
    LATHE_UNREACHABLE("a source argument that its table does not list");
}

/* A column of a csv: a header name, or an index in sa's range */
static bool is_column(const RVal *a, const SourceArg *sa) {
    return a->kind == RV_STR || (is_int(a) && a->num >= (double)sa->min && a->num <= (double)sa->max);
}

static bool check_source_arg(Lower *L, const RVal *v, const SourceArg *sa, const RVal *a) {
    Eval *E = &L->E;
    bool ok = true;
    switch (sa->kind) {
    case A_FILE:
        if (a->kind == RV_NONE && strcmp(sa->name, "y") == 0) /* npy(x, y = none): no labels */
            return true;
        if (a->kind != RV_STR)
            return sema_error(E, a->loc, "%s needs file names as strings", v->str), false;
        return true;
    case A_NUM: ok = is_num(a); break;
    case A_INT: ok = is_int(a) && a->num >= (double)sa->min && a->num <= (double)sa->max; break;
    case A_BOOL: ok = a->kind == RV_BOOL; break;
    case A_TOKENS: ok = a->kind == RV_STR && (!strcmp(a->str, "bytes") || !strcmp(a->str, "chars")); break;
    case A_COLUMN: ok = is_column(a, sa); break;
    case A_COLUMNS:
        ok = a->kind == RV_LIST && a->nitems >= 1;
        for (int i = 0; ok && i < a->nitems; i++)
            ok = is_column(a->items[i], sa);
        break;
    case A_LABELS:
        ok = a->kind == RV_STR && (!strcmp(a->str, "auto") || !strcmp(a->str, "numeric") ||
                                   !strcmp(a->str, "categorical"));
        break;
    case A_CHAR: ok = a->kind == RV_STR && strlen(a->str) == 1 && !strchr("\"\n\r", a->str[0]); break;
    case A_SHAPE:
        ok = a->kind == RV_LIST && a->nitems >= 1 && a->nitems < IR_MAX_RANK;
        for (int i = 0; ok && i < a->nitems; i++)
            ok = is_int(a->items[i]) && a->items[i]->num >= (double)sa->min && a->items[i]->num <= (double)sa->max;
        break;
    case A_ANY: break;
    }
    if (!ok)
        return sema_error(E, a->loc, "%s's %s must be %s", v->str, sa->name, sa->want), false;
    return true;
}

/* csv's arguments that depend on each other: column names need the header, regression numeric labels. */
static bool check_csv(Lower *L, const RVal *v, const SourceKind *s) {
    const RVal *h = source_arg(v, s, "header"), *a = source_arg(v, s, "label_column");
    const RVal *f = source_arg(v, s, "features"), *reg = source_arg(v, s, "regression");
    const RVal *lb = source_arg(v, s, "labels");
    bool header = !h || h->num;
    const RVal *named = a && a->kind == RV_STR ? a : NULL;
    for (int i = 0; !named && f && i < f->nitems; i++)
        named = f->items[i]->kind == RV_STR ? f->items[i] : NULL;
    if (named && !header)
        return sema_error(&L->E, named->loc, "csv's column \"%s\" is a header name, which needs header = true (or "
                          "give the column's index)", named->str), false;
    if (reg && reg->num && lb && !strcmp(lb->str, "categorical"))
        return sema_error(&L->E, lb->loc, "csv(..., regression = true) reads numbers as labels, not labels = "
                          "\"categorical\""), false;
    return true;
}

/* A data source (the table above) of recipe key `key`. */
static bool check_source(Lower *L, const char *key, const RVal *v) {
    Eval *E = &L->E;
    const SourceKind *s = source_kind(v);
    if (!s)
        return sema_error(E, v->loc, "'%s' must be a data source: idx(images, labels), text(file, context = INT), "
                          "csv(file), npy(x, y), images(folder) or generate(n, y = EXPRESSION OF x)", key), false;
    const char *names[SOURCE_MAX_ARGS];
    for (int i = 0; i < s->nargs; i++)
        names[i] = s->args[i].name;
    if (positional(v) > s->nargs)
        return sema_error(E, v->loc, "'%s' must be %s", key, s->usage), false;
    if (!check_keywords(L, v, names, s->nargs))
        return false;
    for (int i = 0; i < v->nitems; i++)
        for (int j = 0; v->keys[i] && j < positional(v); j++)
            if (!strcmp(v->keys[i], names[j]))
                return sema_error(E, v->items[i]->loc, "%s's %s is given twice, by position and by keyword", v->str,
                                  names[j]), false;
    for (int i = 0; i < s->nargs; i++) {
        const RVal *a = rval_arg(v, names[i], i);
        if (!a && i < s->required)
            return sema_error(E, v->loc, "'%s' must be %s (%s needs its %s)", key, s->usage, s->name, names[i]), false;
        if (a && !check_source_arg(L, v, &s->args[i], a))
            return false;
    }
    const RVal *a;
    if (!strcmp(s->name, "csv") && !check_csv(L, v, s))
        return false;
    if (!strcmp(s->name, "npy") && (a = source_arg(v, s, "label_shape"))) {
        const RVal *reg = source_arg(v, s, "regression");
        if (!reg || !reg->num)
            return sema_error(E, a->loc, "npy's label_shape gives real-valued labels and needs regression = true"),
                   false;
    }
    return true;
}

/* The type of the INPUT "label", from a source: idx, images -> i64[N] (a class); text -> i64[N, context]
   (the next token of each); csv -> i64[N], or f32[N, 1] with regression = true; npy -> i64[N], or with
   regression = true f32[N, 1] or f32[N, label_shape...]; generate -> f32[N, 1]. */
static void source_label_type(const RVal *data, DType *t, Shape *s) {
    *t = DT_I64;
    *s = ir_shape(1, (int64_t[]){IR_DIM_N});
    const SourceKind *k = source_kind(data);
    if (!k)
        return;
    const RVal *a;
    if (!strcmp(k->name, "text") && (a = source_arg(data, k, "context")))
        *s = ir_shape(2, (int64_t[]){IR_DIM_N, (int64_t)a->num});
    bool regression = (!strcmp(k->name, "csv") || !strcmp(k->name, "npy")) &&
                      (a = source_arg(data, k, "regression")) && a->kind == RV_BOOL && a->num;
    if (regression || !strcmp(k->name, "generate")) {
        *t = DT_F32;
        *s = ir_shape(2, (int64_t[]){IR_DIM_N, 1});
    }
    if (regression && !strcmp(k->name, "npy") && (a = source_arg(data, k, "label_shape")) && a->kind == RV_LIST) {
        int64_t dims[IR_MAX_RANK] = {IR_DIM_N};
        int rank = 1;
        for (int i = 0; i < a->nitems && rank < IR_MAX_RANK; i++)
            dims[rank++] = (int64_t)a->items[i]->num;
        *s = ir_shape(rank, dims);
    }
}

static void label_type(const Program *p, DType *t, Shape *s) {
    source_label_type(program_recipe(p, "data"), t, s);
}

/* Some sources fix what the batch input holds: text gives token ids i64[N, context], csv the features
   f32[N, F], generate one value f32[N, 1]; forward must take that. data may be NULL or not a source
   (validation = 0.1). */
static bool check_source_input(Lower *L, const RVal *data) {
    const Program *p = L->p;
    const Node *x = p->ninputs > 1 ? ir_find_leaf(p->predict, OP_INPUT, p->input_names[0]) : NULL;
    const SourceKind *k = source_kind(data);
    if (!k || !x)
        return true;
    const char *got = sema_type_str(&L->E, x->dtype, &x->shape), *want = NULL;
    if (!strcmp(k->name, "text")) {
        Shape s = ir_shape(2, (int64_t[]){IR_DIM_N, (int64_t)source_arg(data, k, "context")->num});
        if (x->dtype != DT_I64 || !ir_shape_eq(&x->shape, &s))
            want = sema_type_str(&L->E, DT_I64, &s);
    } else if (!strcmp(k->name, "csv")) {
        const RVal *f = source_arg(data, k, "features");
        Shape s = ir_shape(2, (int64_t[]){IR_DIM_N, f ? f->nitems : 0});
        if (x->dtype != DT_F32 || x->shape.rank != 2 || x->shape.dim[0] != IR_DIM_N || x->shape.dim[1] == IR_DIM_N)
            want = f ? sema_type_str(&L->E, DT_F32, &s) : "f32[N,FEATURES]";
        else if (f && x->shape.dim[1] != f->nitems)
            want = arena_printf(L->E.a, "%s (one value a column of features)", sema_type_str(&L->E, DT_F32, &s));
    } else if (!strcmp(k->name, "generate")) {
        Shape s = ir_shape(2, (int64_t[]){IR_DIM_N, 1});
        if (x->dtype != DT_F32 || !ir_shape_eq(&x->shape, &s))
            want = "f32[N,1]";
    }
    if (want)
        return sema_error(&L->E, data->loc, "%s gives '%s' as %s, but forward takes %s", data->str,
                          p->input_names[0], want, got), false;
    return true;
}

/* Every source feeds the same graphs: `test` and `validation` (when a source) must give the batch input
   and the labels as `data` does. */
static bool check_input_type(Lower *L) {
    const RVal *data = program_recipe(L->p, "data");
    static const char *const others[] = {"test", "validation"};
    for (int i = 0; i < 2; i++) {
        const RVal *other = program_recipe(L->p, others[i]);
        if (!data || !source_kind(data) || !source_kind(other))
            continue;
        DType dt, tt;
        Shape ds, tsh;
        source_label_type(data, &dt, &ds);
        source_label_type(other, &tt, &tsh);
        if (strcmp(data->str, other->str) != 0 || dt != tt || !ir_shape_eq(&ds, &tsh))
            return sema_error(&L->E, other->loc, "'%s' must be a source of the same kind and labels as 'data' "
                              "(%s with labels %s), got %s with labels %s", others[i], data->str,
                              sema_type_str(&L->E, dt, &ds), other->str, sema_type_str(&L->E, tt, &tsh)), false;
    }
    return check_source_input(L, data) && check_source_input(L, program_recipe(L->p, "test")) &&
           check_source_input(L, program_recipe(L->p, "validation"));
}

/* The checks of a recipe value that the graphs depend on, or that the runtime's readers cannot place in
   the model file; the runtime's own parsers (optimizer, schedule, metrics, transforms, ...) check the rest
   of each value when the compiler hands them the manifest's recipe. */
static bool check_entry(Lower *L, const char *key, const RVal *v) {
    Eval *E = &L->E;
    if (!strcmp(key, "data") || !strcmp(key, "test")) {
        if (!check_source(L, key, v))
            return false;
    } else if (!strcmp(key, "validation")) {
        if (is_num(v)) {
            if (!(v->num > 0 && v->num < 1))
                return sema_error(E, v->loc, "'validation' as a number is the fraction of 'data' held out: "
                                  "between 0 and 1, got %g", v->num), false;
        } else if (!check_source(L, key, v)) {
            return false;
        }
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
        if (v->kind != RV_CALL)
            return sema_error(E, v->loc, "'optimizer' must be a call such as SGD(lr = 0.01)"), false;
    } else if (!strcmp(key, "loss")) {
        if (v->kind != RV_CALL)
            return sema_error(E, v->loc, "'loss' must be a call such as cross_entropy(logits, label)"), false;
    } else if (!strcmp(key, "metrics")) {
        if (v->kind != RV_LIST)
            return sema_error(E, v->loc, "'metrics' must be a list such as [accuracy, top_k(5)]"), false;
        for (int i = 0; i < v->nitems; i++)
            if (v->items[i]->kind != RV_IDENT && v->items[i]->kind != RV_CALL)
                return sema_error(E, v->items[i]->loc, "a metric must be a name such as accuracy or a call such as "
                                  "top_k(5)"), false;
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

/* The metrics that the runtime computes from the logits; any other name in `metrics` is a function of the
   model file, evaluated in the graphs. */
static bool is_runtime_metric(const char *name) {
    static const char *const names[] = {"accuracy", "top_k", "precision", "recall", "f1", "confusion_matrix",
                                        "mae", "mse"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(name, names[i]))
            return true;
    return false;
}

/* eval, grads and train: forward, the INPUT label, the loss, the logits and the in-graph metrics. */
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
    /* the runtime computes its metrics (runtime/metrics.h) from the logits and the labels */
    ir_add_output(g, "logits", logits, false);
    const RVal *metrics = program_recipe(L->p, "metrics");
    for (int i = 0; metrics && metrics->kind == RV_LIST && i < metrics->nitems; i++) {
        const RVal *m = metrics->items[i];
        if (m->kind != RV_IDENT || is_runtime_metric(m->str))
            continue;
        /* a function of the model file (or the library): one number per batch, averaged by the runtime */
        const char *out = arena_printf(E->a, "metric.%s", m->str);
        if (has_output(g, out))
            continue;
        Value *fn = sema_scope_get(E->global, m->str);
        if (!fn || fn->kind != V_FUNC)
            return sema_error(E, m->loc, "unknown metric '%s': the runtime computes accuracy, top_k(K), precision, "
                              "recall, f1, confusion_matrix, mae and mse, and a function of logits and label gives "
                              "one of your own", m->str), false;
        Value *a[2] = {sema_tensor(E, logits), sema_tensor(E, label)};
        Args args = {.pos = a, .npos = 2};
        Value *c = sema_call(E, fn, &args, m->loc);
        Node *cn = c ? sema_node(E, c, m->loc) : NULL;
        if (!cn)
            return sema_error(E, m->loc, "metric '%s' did not give a tensor", m->str), false;
        if (cn->shape.rank != 0 || !ir_dtype_is_float(cn->dtype))
            return sema_error(E, m->loc, "metric '%s' must give a float scalar (the batch's mean), got %s", m->str,
                              sema_type_str(E, cn->dtype, &cn->shape)), false;
        ir_add_output(g, out, cn, false);
    }
    return true;
}

/* The train graph runs forward with training = true (dropout on, batch statistics, buffer updates); eval
   and predict with training = false. */
static Graph *graph(Lower *L, const char *name) {
    Eval *E = &L->E;
    Graph *g = ir_graph_new(E->a, name);
    E->training = !strcmp(name, "train") || !strcmp(name, "grads");
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
    if (!strcmp(name, "train"))
        g->optimizer = program_recipe(L->p, "optimizer");
    if (E->training && !L->p->train_logits)
        L->p->train_logits = L->logits;
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

/* Whether the optimizer pass can fuse the recipe's optimizer into a train graph: plain SGD, one group, no
   clipping or accumulation. Every other recipe trains through the grads graph and the runtime's optimizer
   (runtime/optim.h), which also serves a binary run with another optimizer (`--set optimizer=...`). */
static bool fused_optimizer(const Program *p) {
    const RVal *o = program_recipe(p, "optimizer");
    static const char *const unfused[] = {"param_groups", "clip_grad_norm", "clip_grad_value", "accumulate"};
    for (int i = 0; i < 4; i++) {
        const RVal *v = program_recipe(p, unfused[i]);
        if (v && !(i == 3 && v->kind == RV_NUM && v->num == 1))
            return false;
    }
    return o && o->kind == RV_CALL && !strcmp(o->str, "SGD");
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
        !(p->grads = graph(&L, "grads")) || (fused_optimizer(p) && !(p->train = graph(&L, "train"))))
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
