/* eval.c: the staging evaluator. It runs the AST: numbers fold at compile time, layers instantiate into
   instances, calls of defs and forwards inline their bodies, and operations on tensors build IR in the
   graph under construction (E->g). Code of the standard library is the library's, not the user's: its
   nodes and errors point at the innermost call site in the user's file. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fe.h"

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
                   "its layers (or of a list that is)", p->member);
        return NULL;
    }
    if (p->graph != E->g) {
        /* buffers and frozen parameters get no gradient: PARAM nodes marked frozen */
        Attr a = {.name = p->name, .frozen = p->buffer || p->frozen, .dtype = p->dtype, .shape = p->shape};
        p->graph = E->g;
        p->node = ir_make(E->g, NULL, sema_node_loc(E, loc), OP_PARAM, 0, NULL, &a);
    }
    return p->node;
}


/* Whether an integer dtype holds v: the generated code converts a constant from its double, and a value out
   of range has no defined conversion (300 as a u8). */
static bool int_dtype_holds(DType t, double v) {
    switch (t) {
    case DT_U8: return v >= 0 && v <= UINT8_MAX;
    case DT_I32: return v >= INT32_MIN && v <= INT32_MAX;
    // cppcheck-suppress incorrectLogicOperator ; cppcheck 2.10 misreads the hexadecimal float literals
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
    /* products and quotients of scalar constants fold, powers of N included: dim(x, 0) * 49 is one
       CONST 49 N^1, which later passes read as a number */
    if ((op == OP_MUL || op == OP_DIV) && x->op == OP_CONST && y->op == OP_CONST && x->shape.rank == 0 &&
        y->shape.rank == 0 && ir_dtype_is_float(x->dtype) && (op == OP_MUL || y->attr.value != 0)) {
        double v = op == OP_MUL ? x->attr.value * y->attr.value : x->attr.value / y->attr.value;
        int np = op == OP_MUL ? x->attr.npow + y->attr.npow : x->attr.npow - y->attr.npow;
        if (isfinite(v))
            return sema_tensor(E, ir_const_npow(E->g, sema_node_loc(E, loc), x->dtype, ir_shape_scalar(), v, np));
    }
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
    if (x->shape.rank < 2 || y->shape.rank < 2)
        return sema_error(E, loc, "matmul needs tensors of rank 2 or more, got %s @ %s", tx, ty);
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
    case B_FLOORDIV: /* Python's: rounds towards minus infinity */
        if (b == 0)
            return sema_error(E, loc, "division by zero");
        if (a == INT64_MIN && b == -1)
            break;
        r = a / b;
        if ((a % b != 0) && ((a < 0) != (b < 0)))
            r--;
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
    case B_EQ: return sema_bool(E, a == b);
    case B_NE: return sema_bool(E, a != b);
    case B_LT: return sema_bool(E, a < b);
    case B_LE: return sema_bool(E, a <= b);
    case B_GT: return sema_bool(E, a > b);
    case B_GE: return sema_bool(E, a >= b);
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
    case B_FLOORDIV:
        if (y == 0)
            return sema_error(E, loc, "division by zero");
        r = floor(x / y);
        break;
    case B_POW:
        if (x == 0 && y < 0)
            return sema_error(E, loc, "division by zero");
        r = pow(x, y);
        break;
    case B_EQ: return sema_bool(E, x == y);
    case B_NE: return sema_bool(E, x != y);
    case B_LT: return sema_bool(E, x < y);
    case B_LE: return sema_bool(E, x <= y);
    case B_GT: return sema_bool(E, x > y);
    case B_GE: return sema_bool(E, x >= y);
    case B_MATMUL: return sema_error(E, loc, "'@' needs two tensors, got two numbers");
    default: LATHE_UNREACHABLE("unknown binary operator");
    }
    if (isnan(r))
        return sema_error(E, loc, "constant expression is not a number");
    if (isinf(r))
        return sema_error(E, loc, "constant expression overflows");
    return sema_float(E, r);
}

/* == between compile-time values, as Python's: values of different kinds differ (numbers compare by value,
   none equals only none), lists compare item by item, layers by identity. */
static bool values_equal(const Value *a, const Value *b) {
    if (sema_is_number(a) && sema_is_number(b))
        return sema_num(a) == sema_num(b);
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case V_NONE:
    case V_DIMN: return true;
    case V_BOOL: return a->b == b->b;
    case V_STR: return strcmp(a->s, b->s) == 0;
    case V_DTYPE: return a->dtype == b->dtype;
    case V_LIST:
        if (a->nitems != b->nitems)
            return false;
        for (int i = 0; i < a->nitems; i++)
            if (!values_equal(a->items[i], b->items[i]))
                return false;
        return true;
    case V_INSTANCE: return a->inst == b->inst;
    case V_LAYER:
    case V_FUNC: return a->decl == b->decl;
    case V_BUILTIN: return a->builtin == b->builtin;
    case V_INIT: return a->init.kind == b->init.kind && a->init.a == b->init.a && a->init.b == b->init.b;
    default: return a == b;
    }
}

/* Whether a == b would compare the batch dimension N (known only when a batch runs) with a number, also
   inside lists (shape(x) == [3, 4]): the answer would depend on the batch, but `if` is staged away. */
static bool compares_n_with_number(const Value *a, const Value *b) {
    if ((a->kind == V_DIMN && sema_is_number(b)) || (b->kind == V_DIMN && sema_is_number(a)))
        return true;
    if (a->kind != V_LIST || b->kind != V_LIST || a->nitems != b->nitems)
        return false;
    for (int i = 0; i < a->nitems; i++)
        if (compares_n_with_number(a->items[i], b->items[i]))
            return true;
    return false;
}

static Value *binary(Eval *E, BinOp op, Value *a, Value *b, Loc loc) {
    static const Op ops[] = {
        [B_EQ] = OP_EQ, [B_NE] = OP_NE, [B_LT] = OP_LT, [B_LE] = OP_LE, [B_GT] = OP_GT, [B_GE] = OP_GE,
        [B_ADD] = OP_ADD, [B_SUB] = OP_SUB, [B_MUL] = OP_MUL, [B_DIV] = OP_DIV, [B_POW] = OP_POW,
    };
    const char *name = parse_binop_name(op);
    if ((op == B_EQ || op == B_NE) && (a->kind == V_NONE || b->kind == V_NONE)) /* `weight != none` */
        return sema_bool(E, (op == B_EQ) == values_equal(a, b));
    if ((op == B_EQ || op == B_NE) && compares_n_with_number(a, b))
        return sema_error(E, loc, "'%s' between the batch dimension N and a number: N is known only when a batch "
                          "runs, and compile-time values cannot depend on it", name);
    if (a->kind == V_DIMN && op == B_DIV && sema_is_number(b) && sema_num(b) == 0) /* as 1 / 0 */
        return sema_error(E, loc, "division by zero");
    if ((a->kind == V_DIMN || b->kind == V_DIMN) && op != B_EQ && op != B_NE && op != B_MATMUL && op != B_MOD &&
        op != B_FLOORDIV) {
        Value *other = a->kind == V_DIMN ? b : a;
        if (sema_is_tensor(other) || sema_is_number(other) || other->kind == V_DIMN) {
            /* N in arithmetic is a number known at run time: an f32 scalar N^1 (of a float tensor's dtype) */
            if (!E->g)
                return sema_error(E, loc, "the batch dimension N in '%s' outside forward: its value is known only "
                                  "when a batch runs", name);
            Node *like = sema_is_tensor(other) ? sema_node(E, other, loc) : NULL;
            if (E->failed)
                return NULL;
            DType t = like && ir_dtype_is_float(like->dtype) ? like->dtype : DT_F32;
            Value *n = sema_tensor(E, ir_const_npow(E->g, sema_node_loc(E, loc), t, ir_shape_scalar(), 1, 1));
            return binary(E, op, a->kind == V_DIMN ? n : a, b->kind == V_DIMN ? n : b, loc);
        }
    }
    if (sema_is_tensor(a) || sema_is_tensor(b)) {
        if (op == B_MATMUL)
            return matmul(E, a, b, loc);
        if (op == B_MOD || op == B_FLOORDIV)
            return sema_error(E, loc, "'%s' is not supported on tensors", name);
        return sema_elementwise(E, ops[op], name, a, b, loc);
    }
    if (sema_is_number(a) && sema_is_number(b))
        return fold(E, op, a, b, loc);
    if (op == B_EQ || op == B_NE) {
        bool eq = values_equal(a, b);
        return sema_bool(E, op == B_EQ ? eq : !eq);
    }
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

typedef enum { FLOW_NEXT, FLOW_RETURN, FLOW_ERROR } Flow;

/* The values a `for` runs over: a list's items or a Sequential's children. */
static bool iterable(Eval *E, Value *v, const char *what, Loc loc, Value ***items, int *n) {
    if (v->kind == V_LIST) {
        *items = v->items;
        *n = v->nitems;
        return true;
    }
    if (v->kind == V_INSTANCE && !v->inst->decl) {
        *items = v->inst->children;
        *n = v->inst->nchildren;
        return true;
    }
    sema_error(E, loc, "%s needs a list (range(n), [a, b], a list of layers), got %s", what, sema_kind_name(E, v));
    return false;
}

/* Runs statements in s. Conditions are compile-time values, so an `if` runs one branch and a `for`
   unrolls: only the IR of the branches taken is built. */
static Flow run(Eval *E, const Stmt *body, int n, Scope *s, const char *what, Value **result, Loc *ret_loc) {
    for (int i = 0; i < n; i++) {
        const Stmt *st = &body[i];
        Value *v = sema_eval(E, st->value, s);
        if (!v)
            return FLOW_ERROR;
        switch (st->kind) {
        case S_ASSIGN: sema_scope_set(E, s, st->name, v); break;
        case S_EXPR: break;
        case S_RETURN:
            if (i + 1 < n) {
                sema_error(E, body[i + 1].loc, "statement after return in '%s'", what);
                return FLOW_ERROR;
            }
            *result = v;
            *ret_loc = st->loc;
            return FLOW_RETURN;
        case S_IF: {
            bool c;
            if (!sema_truth(E, v, "the condition of 'if'", st->value->loc, &c))
                return FLOW_ERROR;
            Flow f = c ? run(E, st->body, st->nbody, s, what, result, ret_loc)
                       : run(E, st->orelse, st->norelse, s, what, result, ret_loc);
            if (f != FLOW_NEXT)
                return f;
            break;
        }
        case S_FOR: {
            Value **items;
            int count;
            if (!iterable(E, v, "'for'", st->value->loc, &items, &count))
                return FLOW_ERROR;
            for (int k = 0; k < count; k++) {
                if (!sema_charge(E, 1, st->value->loc)) /* an empty body still takes a step */
                    return FLOW_ERROR;
                sema_scope_set(E, s, st->name, items[k]);
                Flow f = run(E, st->body, st->nbody, s, what, result, ret_loc);
                if (f != FLOW_NEXT)
                    return f;
            }
            break;
        }
        }
    }
    return FLOW_NEXT;
}

/* Runs a def or forward body in a fresh scope below parent: the call is inlined into the graph. A def
   that ends without a return gives none, as in Python; a forward must return. */
static Value *call_func(Eval *E, const Func *f, Scope *parent, const char *what, Args *args, Loc loc) {
    Loc saved;
    if (!enter_call(E, loc, &saved))
        return NULL;
    Scope *s = sema_scope_new(E, parent);
    Value *result = NULL;
    if (!bind_params(E, f->params, f->nparams, s, what, args, loc))
        goto out;
    Loc ret_loc = loc;
    Flow flow = run(E, f->body, f->nbody, s, what, &result, &ret_loc);
    if (flow == FLOW_ERROR) {
        result = NULL;
        goto out;
    }
    if (flow == FLOW_NEXT) {
        if (f->ret || strcmp(f->name, "forward") == 0) {
            sema_error(E, f->loc, "'%s' ends without a return", what);
            goto out;
        }
        result = sema_none(E);
    }
    if (f->ret) {
        const char *ret = arena_printf(E->a, "return value of '%s'", what);
        result = check_type(E, f->ret, result, s, ret, ret_loc);
    }
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

/* A `param` or `buffer` member: its type and initialiser, evaluated in the instance's scope. */
static Value *param_member(Eval *E, const Member *m, Scope *scope) {
    ParamObj *p = arena_alloc(E->a, sizeof *p);
    p->member = m->name;
    p->loc = sema_node_loc(E, m->loc);
    p->init = (InitSpec){INIT_ZEROS, 0, 0};
    p->buffer = m->kind == M_BUFFER;
    if (!sema_eval_type(E, m->type, scope, false, &p->dtype, &p->shape))
        return NULL;
    Value *init = m->init ? sema_eval(E, m->init, scope) : NULL;
    if (init && init->kind != V_INIT)
        return sema_error(E, m->init->loc, "'init' needs an initialiser such as uniform(a, b), got %s",
                          sema_kind_name(E, init));
    if (init)
        p->init = init->init;
    if (E->failed)
        return NULL;
    Value *v = sema_value(E, V_PARAM);
    v->param = p;
    return v;
}

/* The members that name a path (`freeze`, `init`) run after all the others, so that they may name any. */
typedef struct Deferred {
    const Member **m;
    int n, cap;
} Deferred;

static bool run_members(Eval *E, Instance *inst, const Member *ms, int n, Deferred *later) {
    for (int i = 0; i < n; i++) {
        const Member *m = &ms[i];
        Value *v = NULL;
        switch (m->kind) {
        case M_FORWARD:
            /* one inside an `if` and one outside would otherwise replace each other silently */
            if (inst->forward)
                return sema_error(E, m->loc, "'%s' has a second 'forward'", inst->decl->name), false;
            inst->forward = m->forward;
            continue;
        case M_FREEZE:
            if (inst->decl->kind != D_MODEL)
                return sema_error(E, m->loc, "'freeze' is allowed only in a model body, not in layer '%s'",
                                  inst->decl->name), false;
            /* fall through */
        case M_INIT:
            if (later->n == later->cap) {
                int cap = later->cap ? 2 * later->cap : 8;
                later->m = arena_realloc(E->a, later->m, sizeof *later->m * later->cap, sizeof *later->m * cap);
                later->cap = cap;
            }
            later->m[later->n++] = m;
            continue;
        case M_IF: {
            bool c;
            if (!(v = sema_eval(E, m->value, inst->scope)) ||
                !sema_truth(E, v, "the condition of 'if'", m->value->loc, &c))
                return false;
            if (!(c ? run_members(E, inst, m->members, m->nmembers, later)
                    : run_members(E, inst, m->orelse, m->norelse, later)))
                return false;
            continue;
        }
        case M_ASSIGN: v = sema_eval(E, m->value, inst->scope); break;
        case M_PARAM:
        case M_BUFFER: v = param_member(E, m, inst->scope); break;
        }
        if (!v)
            return false;
        sema_scope_set(E, inst->scope, m->name, v);
        if (!sema_scope_get_local(inst->members, m->name))
            sema_scope_set(E, inst->members, m->name, v);
    }
    return true;
}

static bool is_index(const char *s) {
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* The value at a member path (fc1.weight, layers.0, body) from inst; NULL after an error at the segment
   that does not exist, with the closest name. */
static Value *resolve_path(Eval *E, Instance *inst, const Member *m) {
    Value *cur = NULL;
    const char *at = inst->type_name;
    for (int i = 0; i < m->npath; i++) {
        const char *seg = m->path[i];
        Instance *in = !cur ? inst : cur->kind == V_INSTANCE ? cur->inst : NULL;
        Value *next = NULL;
        if (in && in->decl) {
            next = sema_scope_get_local(in->scope, seg);
            if (!next)
                return sema_error(E, m->path_locs[i], "'%s' has no member '%s'%s", at, seg,
                                  sema_did_you_mean(E, sema_closest(seg, in->scope->names, in->scope->n)));
        } else if (in || (cur && cur->kind == V_LIST)) {
            Value **items = in ? in->children : cur->items;
            int n = in ? in->nchildren : cur->nitems;
            long k = is_index(seg) && strlen(seg) < 10 ? atol(seg) : -1;
            if (k < 0 || k >= n)
                return sema_error(E, m->path_locs[i], "'%s' has no member '%s' (it holds %d item%s: 0 to %d)", at,
                                  seg, n, n == 1 ? "" : "s", n - 1);
            next = items[k];
        } else {
            return sema_error(E, m->path_locs[i], "'%s' is %s, which has no member '%s'", at,
                              sema_kind_name(E, cur), seg);
        }
        cur = next;
        at = arena_printf(E->a, "%s%s%s", i ? at : "", i ? "." : "", seg);
    }
    return cur;
}

/* Freezes every parameter reachable from v; false when v holds none. */
static bool freeze_all(Value *v) {
    bool any = false;
    if (v->kind == V_PARAM) {
        v->param->frozen = true;
        return true;
    }
    if (v->kind == V_LIST) {
        for (int i = 0; i < v->nitems; i++)
            any |= freeze_all(v->items[i]);
    } else if (v->kind == V_INSTANCE) {
        for (int i = 0; i < v->inst->nchildren; i++)
            any |= freeze_all(v->inst->children[i]);
        for (int i = 0; i < v->inst->scope->n; i++)
            any |= freeze_all(v->inst->scope->values[i]);
    }
    return any;
}

static bool run_deferred(Eval *E, Instance *inst, const Deferred *later) {
    for (int i = 0; i < later->n; i++) {
        const Member *m = later->m[i];
        const char *path = m->path[0];
        for (int k = 1; k < m->npath; k++)
            path = arena_printf(E->a, "%s.%s", path, m->path[k]);
        Value *v = resolve_path(E, inst, m);
        if (!v)
            return false;
        if (m->kind == M_FREEZE) {
            if (!freeze_all(v))
                return sema_error(E, m->path_locs[0], "'freeze %s': %s holds no parameter", path,
                                  sema_kind_name(E, v)), false;
            continue;
        }
        if (v->kind != V_PARAM)
            return sema_error(E, m->path_locs[0], "'init %s' needs a parameter or a buffer, got %s", path,
                              sema_kind_name(E, v)), false;
        Value *init = sema_eval(E, m->init, inst->scope);
        if (!init)
            return false;
        if (init->kind != V_INIT)
            return sema_error(E, m->init->loc, "'init' needs an initialiser such as uniform(a, b), got %s",
                              sema_kind_name(E, init)), false;
        v->param->init = init->init;
    }
    return true;
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
    inst->members = sema_scope_new(E, NULL);
    Value *result = NULL;
    Deferred later = {0};
    if (bind_params(E, decl->params, decl->nparams, inst->scope, decl->name, args, loc) &&
        run_members(E, inst, decl->members, decl->nmembers, &later) && run_deferred(E, inst, &later)) {
        result = sema_value(E, V_INSTANCE);
        result->inst = inst;
    }
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
    if (args->npos == 1 && args->pos[0]->kind == V_LIST) { /* Sequential(list) */
        inst->children = args->pos[0]->items;
        inst->nchildren = args->pos[0]->nitems;
    }
    for (int i = 0; i < inst->nchildren; i++)
        if (inst->children[i]->kind != V_INSTANCE)
            return sema_error(E, loc, "Sequential takes layers, %s %d is %s", inst->children != args->pos ?
                              "item" : "argument", i + 1, sema_kind_name(E, inst->children[i]));
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

/* ---------------------------------------------------------------- logic and comprehensions */

static Value *logic(Eval *E, const Expr *e, Scope *s) {
    Value *a = sema_eval(E, e->lhs, s);
    bool t;
    const char *what = e->kind == E_NOT ? "the operand of 'not'" : e->kind == E_AND ? "the operand of 'and'"
                                                                                      : "the operand of 'or'";
    if (!a || !sema_truth(E, a, what, e->lhs->loc, &t))
        return NULL;
    if (e->kind == E_NOT)
        return sema_bool(E, !t);
    if (e->kind == E_AND ? !t : t) /* short-circuit: the right side is not evaluated */
        return a;
    Value *b = sema_eval(E, e->rhs, s);
    return b && sema_truth(E, b, what, e->rhs->loc, &t) ? b : NULL;
}

static Value *comprehension(Eval *E, const Expr *e, Scope *s) {
    Value *it = sema_eval(E, e->rhs, s);
    Value **items;
    int n;
    if (!it || !iterable(E, it, "a list comprehension", e->rhs->loc, &items, &n))
        return NULL;
    Value *v = sema_list(E, n);
    Scope *inner = sema_scope_new(E, s);
    for (int i = 0; i < n; i++) {
        sema_scope_set(E, inner, e->name, items[i]);
        if (!(v->items[i] = sema_eval(E, e->lhs, inner)))
            return NULL;
    }
    return v;
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

bool sema_charge(Eval *E, long n, Loc loc) {
    if (E->failed)
        return false;
    if (n > FE_MAX_EVAL_STEPS - E->steps) {
        E->steps = FE_MAX_EVAL_STEPS + 1L;
        sema_error(E, loc, "the model takes more than %d evaluation steps: do calls or loops multiply "
                   "(a def or layer that calls the next one several times, nested loops)?", FE_MAX_EVAL_STEPS);
        return false;
    }
    E->steps += n;
    return true;
}

Value *sema_eval(Eval *E, const Expr *e, Scope *s) {
    if (E->failed)
        return NULL;
    if (E->eval_depth >= FE_MAX_EVAL_DEPTH)
        return sema_error(E, e->loc, "expression nested too deeply (more than %d levels across calls)",
                          FE_MAX_EVAL_DEPTH);
    if (!sema_charge(E, 1, e->loc))
        return NULL;
    E->eval_depth++;
    Value *v = NULL;
    switch (e->kind) {
    case E_INT: v = sema_int(E, e->ival); break;
    case E_FLOAT: v = sema_float(E, e->fval); break;
    case E_BOOL: v = sema_bool(E, e->bval); break;
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
    case E_INDEX: v = sema_subscript(E, e, s); break;
    case E_NONE: v = sema_none(E); break;
    case E_NOT:
    case E_AND:
    case E_OR: v = logic(E, e, s); break;
    case E_COMP: v = comprehension(E, e, s); break;
    case E_SLICE:
    case E_ELLIPSIS: v = sema_error(E, e->loc, "a slice or '...' is allowed only inside [...]"); break;
    }
    E->eval_depth--;
    return E->failed ? NULL : v;
}
