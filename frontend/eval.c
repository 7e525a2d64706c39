/* eval.c: the staging evaluator. It runs the AST: numbers fold at compile time, layers instantiate into
   instances, calls of defs and forwards inline their bodies, and operations on tensors build IR in the
   graph under construction (E->g). Code of the standard library is the library's, not the user's: its
   nodes and errors point at the innermost call site in the user's file. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fe.h"

/* ---------------------------------------------------------------- scopes and values */

Scope *sema_scope_new(Eval *E, Scope *parent) {
    Scope *s = arena_alloc(E->a, sizeof *s);
    s->parent = parent;
    return s;
}

/* Most scopes hold a few names and are searched in order; large ones (a model with thousands of members,
   the globals) are hashed so that building and searching them stays linear. */
static uint32_t name_hash(const char *name) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *name; name++)
        h = (h ^ (unsigned char)*name) * 16777619u;
    return h;
}

static void index_put(Scope *s, int i) {
    uint32_t mask = 2 * (uint32_t)s->cap - 1, h = name_hash(s->names[i]) & mask;
    while (s->index[h])
        h = (h + 1) & mask;
    s->index[h] = i + 1;
}

static int scope_find(const Scope *s, const char *name) {
    if (!s->index) {
        for (int i = 0; i < s->n; i++)
            if (strcmp(s->names[i], name) == 0)
                return i;
        return -1;
    }
    uint32_t mask = 2 * (uint32_t)s->cap - 1;
    for (uint32_t h = name_hash(name) & mask; s->index[h]; h = (h + 1) & mask)
        if (strcmp(s->names[s->index[h] - 1], name) == 0)
            return s->index[h] - 1;
    return -1;
}

void sema_scope_set(Eval *E, Scope *s, const char *name, Value *v) {
    int i = scope_find(s, name);
    if (i >= 0) {
        s->values[i] = v;
        return;
    }
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 8;
        s->names = arena_realloc(E->a, s->names, sizeof *s->names * s->cap, sizeof *s->names * cap);
        s->values = arena_realloc(E->a, s->values, sizeof *s->values * s->cap, sizeof *s->values * cap);
        s->cap = cap;
        if (cap > 8) {
            s->index = arena_alloc(E->a, sizeof *s->index * 2 * (size_t)cap);
            for (int j = 0; j < s->n; j++)
                index_put(s, j);
        }
    }
    s->names[s->n] = name;
    s->values[s->n] = v;
    if (s->index)
        index_put(s, s->n);
    s->n++;
}

Value *sema_scope_get_local(const Scope *s, const char *name) {
    int i = scope_find(s, name);
    return i >= 0 ? s->values[i] : NULL;
}

Value *sema_scope_get(const Scope *s, const char *name) {
    for (; s; s = s->parent) {
        Value *v = sema_scope_get_local(s, name);
        if (v)
            return v;
    }
    return NULL;
}

Value *sema_value(Eval *E, ValueKind k) {
    Value *v = arena_alloc(E->a, sizeof *v);
    v->kind = k;
    return v;
}

Value *sema_int(Eval *E, int64_t i) {
    Value *v = sema_value(E, V_INT);
    v->i = i;
    return v;
}

Value *sema_float(Eval *E, double f) {
    Value *v = sema_value(E, V_FLOAT);
    v->f = f;
    return v;
}

static Value *new_bool(Eval *E, bool b) {
    Value *v = sema_value(E, V_BOOL);
    v->b = b;
    return v;
}

Value *sema_tensor(Eval *E, Node *n) {
    Value *v = sema_value(E, V_TENSOR);
    v->node = n;
    return v;
}

const char *sema_type_str(Eval *E, DType t, const Shape *s) {
    char buf[160];
    return arena_strdup(E->a, ir_type_str(t, s, buf, sizeof buf));
}

const char *sema_kind_name(Eval *E, const Value *v) {
    char buf[256], ty[160];
    switch (v->kind) {
    case V_NONE: return "nothing";
    case V_INT: return "an int";
    case V_FLOAT: return "a float";
    case V_BOOL: return "a bool";
    case V_STR: return "a string";
    case V_LIST: return "a list";
    case V_DTYPE: return "a dtype";
    case V_DIMN: return "the batch dimension N";
    case V_TENSOR:
        snprintf(buf, sizeof buf, "a tensor %s", ir_type_str(v->node->dtype, &v->node->shape, ty, sizeof ty));
        break;
    case V_PARAM:
        snprintf(buf, sizeof buf, "a parameter %s", ir_type_str(v->param->dtype, &v->param->shape, ty, sizeof ty));
        break;
    case V_INSTANCE: snprintf(buf, sizeof buf, "a '%s' layer", v->inst->type_name); break;
    case V_LAYER: snprintf(buf, sizeof buf, "layer '%s'", v->decl->name); break;
    case V_FUNC: snprintf(buf, sizeof buf, "function '%s'", v->decl->name); break;
    case V_BUILTIN: snprintf(buf, sizeof buf, "builtin '%s'", v->builtin->name); break;
    case V_INIT: return "an initialiser";
    default: return "a value";
    }
    return arena_strdup(E->a, buf);
}

/* ---------------------------------------------------------------- errors and locations */

static bool in_library(const Eval *E, Loc loc) { return loc.file == E->stdlib_file && E->site.file; }

Loc sema_node_loc(const Eval *E, Loc loc) { return in_library(E, loc) ? E->site : loc; }

void sema_note_library(Eval *E, Loc loc) {
    if (in_library(E, loc))
        diag_note(E->d, loc, "inside the standard library here");
}

Value *sema_error(Eval *E, Loc loc, const char *fmt, ...) {
    if (E->failed)
        return NULL;
    E->failed = true;
    va_list ap;
    va_start(ap, fmt);
    diag_verror(E->d, sema_node_loc(E, loc), fmt, ap);
    va_end(ap);
    sema_note_library(E, loc);
    return NULL;
}

/* The result of an ir_* builder: NULL means it reported a shape error at the node's location. */
Value *sema_made(Eval *E, Node *n, Loc loc) {
    if (!n) {
        if (!E->failed)
            sema_note_library(E, loc);
        E->failed = true;
        return NULL;
    }
    return sema_tensor(E, n);
}

static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 1000;
    int row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The candidate closest to name, when it is close enough to be a likely typo. */
const char *sema_closest(const char *name, const char *const *cands, int n) {
    const char *best = NULL;
    int best_d = 1000, limit = (int)strlen(name) / 3 + 1;
    for (int i = 0; i < n; i++) {
        int d = edit_distance(name, cands[i]);
        if (d < best_d && d <= limit && strcmp(name, cands[i]) != 0) {
            best = cands[i];
            best_d = d;
        }
    }
    return best;
}

const char *sema_suggest(const Scope *s, const char *name) {
    const char *best = NULL;
    for (; s && !best; s = s->parent)
        best = sema_closest(name, s->names, s->n);
    return best;
}

const char *sema_did_you_mean(Eval *E, const char *close) {
    return close ? arena_printf(E->a, " (did you mean '%s'?)", close) : "";
}

/* ---------------------------------------------------------------- tensors */

Node *sema_node(Eval *E, Value *v, Loc loc) {
    if (v->kind == V_TENSOR)
        return v->node;
    if (v->kind != V_PARAM)
        return NULL;
    ParamObj *p = v->param;
    if (!E->g) {
        sema_error(E, loc, "parameter '%s' used outside forward", p->member);
        return NULL;
    }
    /* The naming walk reaches the model's members and their layers; a layer kept elsewhere (in a list)
       would have a nameless parameter that no checkpoint holds. */
    if (!p->name) {
        sema_error(E, loc, "parameter '%s' belongs to a layer that is not a member of the model or of one of "
                   "its layers (layers in lists are not supported)", p->member);
        return NULL;
    }
    if (p->graph != E->g) {
        p->graph = E->g;
        p->node = ir_param(E->g, sema_node_loc(E, loc), p->name, p->dtype, p->shape);
    }
    return p->node;
}


/* Whether an integer dtype holds v: the generated code converts a constant from its double, and a value out
   of range has no defined conversion (300 as a u8). */
static bool int_dtype_holds(DType t, double v) {
    switch (t) {
    case DT_U8: return v >= 0 && v <= UINT8_MAX;
    case DT_I32: return v >= INT32_MIN && v <= INT32_MAX;
    case DT_I64: return v >= -0x1p63 && v < 0x1p63;
    default: return true;
    }
}

/* A number next to a tensor becomes a rank-0 constant of the tensor's dtype. */
Node *sema_const_like(Eval *E, const Node *like, Value *v, Loc loc) {
    if (!ir_dtype_is_float(like->dtype) && v->kind == V_FLOAT && v->f != floor(v->f)) {
        sema_error(E, loc, "cannot combine the float %g with an integer tensor %s", v->f,
                   sema_type_str(E, like->dtype, &like->shape));
        return NULL;
    }
    if (!int_dtype_holds(like->dtype, sema_num(v))) {
        sema_error(E, loc, "the constant %.17g does not fit the integer tensor %s", sema_num(v),
                   sema_type_str(E, like->dtype, &like->shape));
        return NULL;
    }
    return ir_const(E->g, sema_node_loc(E, loc), like->dtype, ir_shape_scalar(), sema_num(v));
}

Value *sema_elementwise(Eval *E, Op op, const char *what, Value *a, Value *b, Loc loc) {
    Node *x = sema_node(E, a, loc), *y = sema_node(E, b, loc);
    if (E->failed)
        return NULL;
    if (!x && !y)
        LATHE_UNREACHABLE("sema_elementwise without a tensor");
    if (!x && !(sema_is_number(a) && (x = sema_const_like(E, y, a, loc))))
        return E->failed ? NULL : sema_error(E, loc, "cannot apply '%s' to %s and a tensor", what, sema_kind_name(E, a));
    if (!y && !(sema_is_number(b) && (y = sema_const_like(E, x, b, loc))))
        return E->failed ? NULL : sema_error(E, loc, "cannot apply '%s' to a tensor and %s", what, sema_kind_name(E, b));
    if (x->dtype != y->dtype)
        return sema_error(E, loc, "dtype mismatch in '%s': %s and %s", what, sema_type_str(E, x->dtype, &x->shape),
                          sema_type_str(E, y->dtype, &y->shape));
    Shape out;
    if (!ir_shape_broadcast(&x->shape, &y->shape, &out))
        return sema_error(E, loc, "shapes do not broadcast in '%s': %s and %s", what,
                          sema_type_str(E, x->dtype, &x->shape), sema_type_str(E, y->dtype, &y->shape));
    return sema_made(E, ir_binary(E->g, E->d, sema_node_loc(E, loc), op, x, y), loc);
}

static Value *matmul(Eval *E, Value *a, Value *b, Loc loc) {
    Node *x = sema_node(E, a, loc), *y = sema_node(E, b, loc);
    if (E->failed)
        return NULL;
    if (!x || !y)
        return sema_error(E, loc, "'@' needs two tensors, got %s and %s", x ? "a tensor" : sema_kind_name(E, a),
                          y ? "a tensor" : sema_kind_name(E, b));
    const char *tx = sema_type_str(E, x->dtype, &x->shape), *ty = sema_type_str(E, y->dtype, &y->shape);
    if (x->shape.rank < 2 || x->shape.rank > 3 || y->shape.rank < 2 || y->shape.rank > 3)
        return sema_error(E, loc, "matmul needs rank-2 or rank-3 tensors, got %s @ %s", tx, ty);
    if (x->dtype != y->dtype)
        return sema_error(E, loc, "dtype mismatch in matmul: %s @ %s", tx, ty);
    int64_t k1 = x->shape.dim[x->shape.rank - 1], k2 = y->shape.dim[y->shape.rank - 2];
    if (k1 != k2)
        return sema_error(E, loc, "matmul shape mismatch: %s @ %s (inner dimensions differ)", tx, ty);
    return sema_made(E, ir_matmul(E->g, E->d, sema_node_loc(E, loc), x, y, false, false), loc);
}

/* ---------------------------------------------------------------- constant folding */

static Value *fold_int(Eval *E, BinOp op, int64_t a, int64_t b, Loc loc) {
    int64_t r = 0;
    switch (op) {
    case B_ADD:
        if (__builtin_add_overflow(a, b, &r))
            break;
        return sema_int(E, r);
    case B_SUB:
        if (__builtin_sub_overflow(a, b, &r))
            break;
        return sema_int(E, r);
    case B_MUL:
        if (__builtin_mul_overflow(a, b, &r))
            break;
        return sema_int(E, r);
    case B_MOD:
        if (b == 0)
            return sema_error(E, loc, "division by zero");
        if (b == -1)
            return sema_int(E, 0);
        r = a % b;
        if (r != 0 && (r < 0) != (b < 0)) /* Python's modulo takes the divisor's sign */
            r += b;
        return sema_int(E, r);
    case B_POW: {
        if (b < 0)
            return NULL; /* a float result: the caller folds in doubles */
        int64_t base = a;
        r = 1;
        for (; b; b >>= 1) {
            if ((b & 1) && __builtin_mul_overflow(r, base, &r))
                goto overflow;
            if ((b >> 1) && __builtin_mul_overflow(base, base, &base))
                goto overflow;
        }
        return sema_int(E, r);
    }
    case B_EQ: return new_bool(E, a == b);
    case B_NE: return new_bool(E, a != b);
    case B_LT: return new_bool(E, a < b);
    case B_LE: return new_bool(E, a <= b);
    case B_GT: return new_bool(E, a > b);
    case B_GE: return new_bool(E, a >= b);
    default: return NULL; /* B_DIV: true division, in doubles */
    }
overflow:
    return sema_error(E, loc, "integer overflow in constant expression");
}

static Value *fold(Eval *E, BinOp op, Value *a, Value *b, Loc loc) {
    if (a->kind == V_INT && b->kind == V_INT) {
        Value *v = fold_int(E, op, a->i, b->i, loc);
        if (v || E->failed)
            return v;
    }
    double x = sema_num(a), y = sema_num(b), r;
    switch (op) {
    case B_ADD: r = x + y; break;
    case B_SUB: r = x - y; break;
    case B_MUL: r = x * y; break;
    case B_DIV:
        if (y == 0)
            return sema_error(E, loc, "division by zero");
        r = x / y;
        break;
    case B_MOD:
        if (y == 0)
            return sema_error(E, loc, "division by zero");
        r = fmod(x, y);
        if (r != 0 && (r < 0) != (y < 0))
            r += y;
        break;
    case B_POW:
        if (x == 0 && y < 0)
            return sema_error(E, loc, "division by zero");
        r = pow(x, y);
        break;
    case B_EQ: return new_bool(E, x == y);
    case B_NE: return new_bool(E, x != y);
    case B_LT: return new_bool(E, x < y);
    case B_LE: return new_bool(E, x <= y);
    case B_GT: return new_bool(E, x > y);
    case B_GE: return new_bool(E, x >= y);
    case B_MATMUL: return sema_error(E, loc, "'@' needs two tensors, got two numbers");
    default: LATHE_UNREACHABLE("unknown binary operator");
    }
    if (isnan(r))
        return sema_error(E, loc, "constant expression is not a number");
    if (isinf(r))
        return sema_error(E, loc, "constant expression overflows");
    return sema_float(E, r);
}

static Value *binary(Eval *E, BinOp op, Value *a, Value *b, Loc loc) {
    static const Op ops[] = {
        [B_EQ] = OP_EQ, [B_NE] = OP_NE, [B_LT] = OP_LT, [B_LE] = OP_LE, [B_GT] = OP_GT, [B_GE] = OP_GE,
        [B_ADD] = OP_ADD, [B_SUB] = OP_SUB, [B_MUL] = OP_MUL, [B_DIV] = OP_DIV, [B_POW] = OP_POW,
    };
    const char *name = parse_binop_name(op);
    if (sema_is_tensor(a) || sema_is_tensor(b)) {
        if (op == B_MATMUL)
            return matmul(E, a, b, loc);
        if (op == B_MOD)
            return sema_error(E, loc, "'%%' is not supported on tensors");
        return sema_elementwise(E, ops[op], name, a, b, loc);
    }
    if (sema_is_number(a) && sema_is_number(b))
        return fold(E, op, a, b, loc);
    if (op == B_EQ || op == B_NE) {
        bool eq;
        if (a->kind == V_BOOL && b->kind == V_BOOL)
            eq = a->b == b->b;
        else if (a->kind == V_STR && b->kind == V_STR)
            eq = strcmp(a->s, b->s) == 0;
        else if (a->kind == V_DIMN && b->kind == V_DIMN)
            eq = true;
        else if ((a->kind == V_DIMN && sema_is_number(b)) || (b->kind == V_DIMN && sema_is_number(a)))
            eq = false;
        else
            goto bad;
        return new_bool(E, op == B_EQ ? eq : !eq);
    }
bad:
    return sema_error(E, loc, "cannot apply '%s' to %s and %s", name, sema_kind_name(E, a),
                      sema_kind_name(E, b));
}

/* ---------------------------------------------------------------- types */

bool sema_eval_type(Eval *E, const TypeExpr *t, Scope *s, bool allow_n, DType *dt, Shape *shape) {
    *dt = t->dtype;
    shape->rank = t->ndims;
    for (int i = 0; i < t->ndims; i++) {
        Value *v = sema_eval(E, t->dims[i], s);
        if (!v)
            return false;
        if (v->kind == V_DIMN && allow_n) {
            shape->dim[i] = IR_DIM_N;
        } else if (v->kind == V_INT && v->i >= 0) {
            shape->dim[i] = v->i;
        } else {
            sema_error(E, t->dims[i]->loc, "a dimension must be an int >= 0%s, got %s", allow_n ? " or N" : "",
                       v->kind == V_INT ? arena_printf(E->a, "%lld", (long long)v->i) : sema_kind_name(E, v));
            return false;
        }
    }
    /* Byte counts must fit in an int64 for every later stage (with N counted once). */
    int64_t bytes = (int64_t)ir_dtype_size(*dt);
    for (int i = 0; i < shape->rank; i++) {
        if (shape->dim[i] != IR_DIM_N && ir_mul_overflows(bytes, shape->dim[i], &bytes)) {
            sema_error(E, t->loc, "tensor type too large: its size overflows");
            return false;
        }
    }
    return true;
}

/* Checks v against a declared type; a scalar type may convert v (an int where a float is declared). */
static Value *check_type(Eval *E, const TypeExpr *t, Value *v, Scope *s, const char *what, Loc loc) {
    switch (t->kind) {
    case TY_INT:
        if (v->kind == V_INT)
            return v;
        return sema_error(E, loc, "%s: expected an int, got %s", what, sema_kind_name(E, v));
    case TY_FLOAT:
        if (sema_is_number(v))
            return sema_float(E, sema_num(v));
        return sema_error(E, loc, "%s: expected a float, got %s", what, sema_kind_name(E, v));
    case TY_BOOL:
        if (v->kind == V_BOOL)
            return v;
        return sema_error(E, loc, "%s: expected a bool, got %s", what, sema_kind_name(E, v));
    case TY_TENSOR: break;
    }
    DType dt;
    Shape shape;
    if (!sema_eval_type(E, t, s, true, &dt, &shape))
        return NULL;
    const char *want = sema_type_str(E, dt, &shape);
    Node *n = sema_is_tensor(v) ? sema_node(E, v, loc) : NULL;
    if (E->failed)
        return NULL;
    if (!n)
        return sema_error(E, loc, "%s: expected a tensor %s, got %s", what, want, sema_kind_name(E, v));
    if (n->dtype != dt || !ir_shape_eq(&n->shape, &shape))
        return sema_error(E, loc, "%s: expected %s, got %s", what, want, sema_type_str(E, n->dtype, &n->shape));
    return v;
}

/* ---------------------------------------------------------------- calls */

/* Binds evaluated arguments to declared parameters in s, then evaluates the defaults of the missing ones
   (in s, so a default may use earlier parameters) and checks the declared types. */
static bool bind_params(Eval *E, const Param *ps, int np, Scope *s, const char *what, Args *args, Loc loc) {
    if (args->npos > np) {
        sema_error(E, loc, "'%s' takes %d argument%s, got %d", what, np, np == 1 ? "" : "s",
                   args->npos + args->nkeys);
        return false;
    }
    Value **vals = arena_alloc(E->a, sizeof *vals * (size_t)(np + 1));
    for (int i = 0; i < args->npos; i++)
        vals[i] = args->pos[i];
    /* keywords find their parameter through a scope of the parameters' indices: linear in a long call */
    Scope *index = args->nkeys ? sema_scope_new(E, NULL) : NULL;
    for (int i = 0; index && i < np; i++)
        sema_scope_set(E, index, ps[i].name, sema_int(E, i));
    for (int k = 0; k < args->nkeys; k++) {
        Value *iv = sema_scope_get_local(index, args->keys[k]);
        int i = iv ? (int)iv->i : np;
        if (i == np) {
            const char **names = arena_alloc(E->a, sizeof *names * (size_t)(np + 1));
            for (int j = 0; j < np; j++)
                names[j] = ps[j].name;
            sema_error(E, args->key_locs[k], "'%s' has no parameter '%s'%s", what, args->keys[k],
                       sema_did_you_mean(E, sema_closest(args->keys[k], names, np)));
            return false;
        }
        if (vals[i]) {
            sema_error(E, args->key_locs[k], "argument '%s' of '%s' given twice", ps[i].name, what);
            return false;
        }
        vals[i] = args->kv[k];
    }
    for (int i = 0; i < np; i++) {
        Value *v = vals[i];
        if (!v && ps[i].dflt && !(v = sema_eval(E, ps[i].dflt, s)))
            return false;
        if (!v) {
            sema_error(E, loc, "missing argument '%s' in call to '%s'", ps[i].name, what);
            return false;
        }
        if (ps[i].type) {
            const char *arg = arena_printf(E->a, "argument '%s' of '%s'", ps[i].name, what);
            if (!(v = check_type(E, ps[i].type, v, s, arg, loc))) {
                diag_note(E->d, ps[i].loc, "parameter '%s' declared here", ps[i].name);
                return false;
            }
        }
        sema_scope_set(E, s, ps[i].name, v);
    }
    return true;
}

/* Calls nest through the C stack; both the call depth and the expression depth are bounded. */
static bool enter_call(Eval *E, Loc loc, Loc *saved_site) {
    *saved_site = E->site;
    if (E->call_depth >= FE_MAX_CALL_DEPTH) {
        sema_error(E, loc, "recursion too deep (more than %d nested calls)", FE_MAX_CALL_DEPTH);
        return false;
    }
    E->call_depth++;
    if (loc.file && loc.file == E->user_file)
        E->site = loc;
    return true;
}

static void leave_call(Eval *E, Loc saved_site) {
    E->call_depth--;
    E->site = saved_site;
}

/* Runs a def or forward body in a fresh scope below parent: the call is inlined into the graph. */
static Value *call_func(Eval *E, const Func *f, Scope *parent, const char *what, Args *args, Loc loc) {
    Loc saved;
    if (!enter_call(E, loc, &saved))
        return NULL;
    Scope *s = sema_scope_new(E, parent);
    Value *result = NULL;
    if (!bind_params(E, f->params, f->nparams, s, what, args, loc))
        goto out;
    for (int i = 0; i < f->nbody; i++) {
        const Stmt *st = &f->body[i];
        Value *v = sema_eval(E, st->value, s);
        if (!v)
            goto out;
        if (st->kind == S_ASSIGN) {
            sema_scope_set(E, s, st->name, v);
            continue;
        }
        if (i + 1 < f->nbody) {
            sema_error(E, f->body[i + 1].loc, "statement after return in '%s'", what);
            goto out;
        }
        if (f->ret) {
            const char *ret = arena_printf(E->a, "return value of '%s'", what);
            v = check_type(E, f->ret, v, s, ret, st->loc);
        }
        result = v;
        goto out;
    }
    sema_error(E, f->loc, "'%s' ends without a return", what);
out:
    leave_call(E, saved);
    return result;
}

/* Layers are created while the model is instantiated, never inside forward: their parameters must be
   named, and be in Program.params, before any graph uses them. */
static Value *created_in_forward(Eval *E, const char *type_name, Loc loc) {
    return sema_error(E, loc, "layer '%s' created inside forward: make it a member of the layer or model",
                      type_name);
}

static Value *instantiate(Eval *E, const Decl *decl, Args *args, Loc loc) {
    if (E->g)
        return created_in_forward(E, decl->name, loc);
    Loc saved;
    if (!enter_call(E, loc, &saved))
        return NULL;
    Instance *inst = arena_alloc(E->a, sizeof *inst);
    inst->type_name = decl->name;
    inst->loc = loc;
    inst->decl = decl;
    inst->scope = sema_scope_new(E, E->global);
    Value *result = NULL;
    if (!bind_params(E, decl->params, decl->nparams, inst->scope, decl->name, args, loc))
        goto out;
    for (int i = 0; i < decl->nmembers; i++) {
        const Member *m = &decl->members[i];
        if (m->kind == M_FORWARD) {
            inst->forward = m->forward;
            continue;
        }
        Value *v;
        if (m->kind == M_ASSIGN) {
            v = sema_eval(E, m->value, inst->scope);
        } else {
            ParamObj *p = arena_alloc(E->a, sizeof *p);
            p->member = m->name;
            p->loc = sema_node_loc(E, m->loc);
            p->init = (InitSpec){INIT_ZEROS, 0, 0};
            v = NULL;
            if (sema_eval_type(E, m->type, inst->scope, false, &p->dtype, &p->shape)) {
                Value *init = m->init ? sema_eval(E, m->init, inst->scope) : NULL;
                if (init && init->kind != V_INIT)
                    sema_error(E, m->init->loc, "'init' needs an initialiser such as uniform(a, b), got %s",
                               sema_kind_name(E, init));
                else if (init)
                    p->init = init->init;
                if (!E->failed) {
                    v = sema_value(E, V_PARAM);
                    v->param = p;
                }
            }
        }
        if (!v)
            goto out;
        sema_scope_set(E, inst->scope, m->name, v);
    }
    result = sema_value(E, V_INSTANCE);
    result->inst = inst;
out:
    leave_call(E, saved);
    return result;
}

static Value *sequential(Eval *E, Args *args, Loc loc) {
    if (E->g)
        return created_in_forward(E, "Sequential", loc);
    if (args->nkeys)
        return sema_error(E, args->key_locs[0], "Sequential takes no keyword arguments");
    Instance *inst = arena_alloc(E->a, sizeof *inst);
    inst->type_name = "Sequential";
    inst->loc = loc;
    inst->scope = sema_scope_new(E, E->global);
    inst->children = args->pos;
    inst->nchildren = args->npos;
    for (int i = 0; i < args->npos; i++)
        if (args->pos[i]->kind != V_INSTANCE)
            return sema_error(E, loc, "Sequential takes layers, argument %d is %s", i + 1,
                              sema_kind_name(E, args->pos[i]));
    Value *v = sema_value(E, V_INSTANCE);
    v->inst = inst;
    return v;
}

static Value *call_instance(Eval *E, Instance *inst, Args *args, Loc loc) {
    if (!inst->decl) { /* a Sequential */
        if (args->npos != 1 || args->nkeys)
            return sema_error(E, loc, "a Sequential takes 1 argument, got %d", args->npos + args->nkeys);
        Loc saved;
        if (!enter_call(E, loc, &saved))
            return NULL;
        /* each child runs at the line that created it, so its nodes and errors point there rather than
           at the Sequential's call */
        Value *v = args->pos[0];
        for (int i = 0; i < inst->nchildren && v; i++) {
            Args one = {.pos = &v, .npos = 1};
            Loc child = inst->children[i]->inst->loc;
            v = sema_call(E, inst->children[i], &one, child.file == E->user_file ? child : loc);
        }
        leave_call(E, saved);
        return v;
    }
    if (!inst->forward)
        return sema_error(E, loc, "layer '%s' has no forward and cannot be called", inst->type_name);
    if (!E->g)
        return sema_error(E, loc, "layer '%s' called outside forward", inst->type_name);
    return call_func(E, inst->forward, inst->scope, arena_printf(E->a, "%s.forward", inst->type_name), args, loc);
}

static Value *call_builtin(Eval *E, const Builtin *b, Args *args, Loc loc) {
    if (!b->fn)
        return sequential(E, args, loc);
    Value *slots[8] = {0};
    if (args->npos > b->nparams)
        return sema_error(E, loc, "'%s' takes %s%d argument%s, got %d", b->name,
                          b->nrequired < b->nparams ? "at most " : "", b->nparams, b->nparams == 1 ? "" : "s",
                          args->npos + args->nkeys);
    for (int i = 0; i < args->npos; i++)
        slots[i] = args->pos[i];
    for (int k = 0; k < args->nkeys; k++) {
        int i;
        for (i = 0; i < b->nparams && strcmp(b->params[i], args->keys[k]) != 0; i++)
            ;
        if (i == b->nparams)
            return sema_error(E, args->key_locs[k], "'%s' has no parameter '%s'%s", b->name, args->keys[k],
                              sema_did_you_mean(E, sema_closest(args->keys[k], b->params, b->nparams)));
        if (slots[i])
            return sema_error(E, args->key_locs[k], "argument '%s' of '%s' given twice", b->params[i], b->name);
        slots[i] = args->kv[k];
    }
    for (int i = 0; i < b->nrequired; i++)
        if (!slots[i])
            return sema_error(E, loc, "missing argument '%s' in call to '%s'", b->params[i], b->name);
    return b->fn(E, slots, loc);
}

Value *sema_call(Eval *E, Value *callee, Args *args, Loc loc) {
    switch (callee->kind) {
    case V_BUILTIN: return call_builtin(E, callee->builtin, args, loc);
    case V_FUNC: return call_func(E, callee->decl->func, E->global, callee->decl->name, args, loc);
    case V_LAYER: return instantiate(E, callee->decl, args, loc);
    case V_INSTANCE: return call_instance(E, callee->inst, args, loc);
    default: return sema_error(E, loc, "%s is not callable", sema_kind_name(E, callee));
    }
}

/* ---------------------------------------------------------------- expressions */

static Value *ident(Eval *E, const Expr *e, Scope *s, bool callee) {
    Value *v = sema_scope_get(s, e->name);
    if (v)
        return v;
    const char *close = sema_did_you_mean(E, sema_suggest(s, e->name));
    if (callee && e->name[0] >= 'A' && e->name[0] <= 'Z')
        return sema_error(E, e->loc, "unknown layer '%s'%s", e->name, close);
    if (callee)
        return sema_error(E, e->loc, "unknown function '%s'%s", e->name, close);
    return sema_error(E, e->loc, "unknown name '%s'%s", e->name, close);
}

static Value *call(Eval *E, const Expr *e, Scope *s) {
    Value *callee = e->lhs->kind == E_IDENT ? ident(E, e->lhs, s, true) : sema_eval(E, e->lhs, s);
    if (!callee)
        return NULL;
    Args args = {0};
    args.pos = arena_alloc(E->a, sizeof(Value *) * (size_t)(e->nitems + 1));
    args.kv = arena_alloc(E->a, sizeof(Value *) * (size_t)(e->nitems + 1));
    args.keys = arena_alloc(E->a, sizeof(char *) * (size_t)(e->nitems + 1));
    args.key_locs = arena_alloc(E->a, sizeof(Loc) * (size_t)(e->nitems + 1));
    for (int i = 0; i < e->nitems; i++) {
        Value *v = sema_eval(E, e->items[i], s);
        if (!v)
            return NULL;
        if (e->keys[i]) {
            args.keys[args.nkeys] = e->keys[i];
            args.key_locs[args.nkeys] = e->items[i]->loc;
            args.kv[args.nkeys++] = v;
        } else {
            args.pos[args.npos++] = v;
        }
    }
    return sema_call(E, callee, &args, e->loc);
}

static Value *attr(Eval *E, const Expr *e, Scope *s) {
    Value *x = sema_eval(E, e->lhs, s);
    if (!x)
        return NULL;
    if (x->kind == V_INSTANCE) {
        Value *v = sema_scope_get_local(x->inst->scope, e->name);
        if (!v)
            return sema_error(E, e->loc, "layer '%s' has no member '%s'%s", x->inst->type_name, e->name,
                              sema_did_you_mean(E, sema_closest(e->name, x->inst->scope->names, x->inst->scope->n)));
        return v;
    }
    if (sema_is_tensor(x) && strcmp(e->name, "T") == 0) {
        Node *n = sema_node(E, x, e->loc);
        if (!n)
            return NULL;
        if (n->shape.rank != 2)
            return sema_error(E, e->loc, ".T needs a rank-2 tensor, got %s", sema_type_str(E, n->dtype, &n->shape));
        static const int perm[IR_MAX_RANK] = {1, 0};
        return sema_made(E, ir_transpose(E->g, E->d, sema_node_loc(E, e->loc), n, perm), e->loc);
    }
    return sema_error(E, e->loc, "%s has no attribute '%s'", sema_kind_name(E, x), e->name);
}

static Value *subscript(Eval *E, const Expr *e, Scope *s) {
    Value *x = sema_eval(E, e->lhs, s), *i = x ? sema_eval(E, e->rhs, s) : NULL;
    if (!i)
        return NULL;
    if (x->kind != V_LIST)
        return sema_error(E, e->loc, "cannot index %s", sema_kind_name(E, x));
    if (i->kind != V_INT)
        return sema_error(E, e->rhs->loc, "a list index must be an int, got %s", sema_kind_name(E, i));
    int64_t k = i->i < 0 ? i->i + x->nitems : i->i;
    if (k < 0 || k >= x->nitems)
        return sema_error(E, e->rhs->loc, "index %lld out of range for a list of %d", (long long)i->i, x->nitems);
    return x->items[k];
}

static Value *negate(Eval *E, const Expr *e, Scope *s) {
    Value *x = sema_eval(E, e->lhs, s);
    if (!x)
        return NULL;
    if (x->kind == V_INT) {
        if (x->i == INT64_MIN)
            return sema_error(E, e->loc, "integer overflow in constant expression");
        return sema_int(E, -x->i);
    }
    if (x->kind == V_FLOAT)
        return sema_float(E, -x->f);
    if (sema_is_tensor(x)) {
        Node *n = sema_node(E, x, e->loc);
        return n ? sema_made(E, ir_unary(E->g, E->d, sema_node_loc(E, e->loc), OP_NEG, n), e->loc) : NULL;
    }
    return sema_error(E, e->loc, "cannot negate %s", sema_kind_name(E, x));
}

Value *sema_eval(Eval *E, const Expr *e, Scope *s) {
    if (E->failed)
        return NULL;
    if (E->eval_depth >= FE_MAX_EVAL_DEPTH)
        return sema_error(E, e->loc, "expression nested too deeply (more than %d levels across calls)",
                          FE_MAX_EVAL_DEPTH);
    if (++E->steps > FE_MAX_EVAL_STEPS)
        return sema_error(E, e->loc, "the model takes more than %d evaluation steps: do calls multiply "
                          "(a def or layer that calls the next one several times)?", FE_MAX_EVAL_STEPS);
    E->eval_depth++;
    Value *v = NULL;
    switch (e->kind) {
    case E_INT: v = sema_int(E, e->ival); break;
    case E_FLOAT: v = sema_float(E, e->fval); break;
    case E_BOOL: v = new_bool(E, e->bval); break;
    case E_STR:
        v = sema_value(E, V_STR);
        v->s = e->name;
        break;
    case E_IDENT: v = ident(E, e, s, false); break;
    case E_LIST:
        v = sema_value(E, V_LIST);
        v->items = arena_alloc(E->a, sizeof(Value *) * (size_t)(e->nitems + 1));
        for (int i = 0; i < e->nitems && v; i++)
            if (!(v->items[v->nitems++] = sema_eval(E, e->items[i], s)))
                v = NULL;
        break;
    case E_NEG: v = negate(E, e, s); break;
    case E_BINARY: {
        Value *a = sema_eval(E, e->lhs, s), *b = a ? sema_eval(E, e->rhs, s) : NULL;
        v = b ? binary(E, e->op, a, b, e->loc) : NULL;
        break;
    }
    case E_CALL: v = call(E, e, s); break;
    case E_ATTR: v = attr(E, e, s); break;
    case E_INDEX: v = subscript(E, e, s); break;
    }
    E->eval_depth--;
    return E->failed ? NULL : v;
}
