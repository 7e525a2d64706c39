/* builtins.c: the names every model file sees before the standard library: the primitives that build IR
   (exp, sum, reshape, one_hot, ...), which also fold on numbers where that makes sense, the initialisers
   evaluated at compile time into an InitSpec, the dtypes, N and Sequential. */
#include <math.h>
#include <string.h>

#include "fe.h"

#define PARAMS(...) (const char *const[]){__VA_ARGS__}, sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *)

/* The argument helpers that builtins_layers.c shares (fe.h says what each does). */
Node *sema_tensor_arg(Eval *E, Value *v, const char *fn, const char *what, Loc loc) {
    Node *n = sema_is_tensor(v) ? sema_node(E, v, loc) : NULL;
    if (!n && !E->failed)
        sema_error(E, loc, "'%s' needs a tensor for '%s', got %s", fn, what, sema_kind_name(E, v));
    return n;
}

/* Whether an optional argument was given: absent and `none` both mean the default. */
bool sema_given(const Value *v) { return v && v->kind != V_NONE; }

bool sema_bool_arg(Eval *E, Value *v, bool dflt, const char *fn, const char *what, Loc loc, bool *out) {
    *out = dflt;
    if (!sema_given(v))
        return true;
    if (v->kind != V_BOOL) {
        sema_error(E, loc, "'%s' needs a bool for '%s', got %s", fn, what, sema_kind_name(E, v));
        return false;
    }
    *out = v->b;
    return true;
}

bool sema_axis_of(Eval *E, Value *v, const Node *x, const char *fn, Loc loc, int *out) {
    if (v->kind != V_INT) {
        sema_error(E, loc, "'%s' needs an int axis, got %s", fn, sema_kind_name(E, v));
        return false;
    }
    int r = x->shape.rank;
    int64_t a = v->i < 0 ? v->i + r : v->i;
    if (a < 0 || a >= r) {
        sema_error(E, loc, "axis %lld out of range for %s", (long long)v->i,
                   sema_type_str(E, x->dtype, &x->shape));
        return false;
    }
    *out = (int)a;
    return true;
}

/* axis = INT or [INTS] into a bit mask; absent: every axis. */
static bool axes_of(Eval *E, Value *v, const Node *x, const char *fn, Loc loc, uint32_t *mask) {
    *mask = 0;
    if (!sema_given(v)) {
        *mask = x->shape.rank ? (uint32_t)((1u << x->shape.rank) - 1) : 0;
        return true;
    }
    Value **items = v->kind == V_LIST ? v->items : &v;
    int n = v->kind == V_LIST ? v->nitems : 1;
    for (int i = 0; i < n; i++) {
        int a;
        if (!sema_axis_of(E, items[i], x, fn, loc, &a))
            return false;
        if (*mask & (1u << a)) {
            sema_error(E, loc, "'%s': axis %d given twice", fn, a);
            return false;
        }
        *mask |= 1u << a;
    }
    return true;
}

/* ---------------------------------------------------------------- elementwise unary */

static Value *unary(Eval *E, Value *x, Op op, const char *fn, Loc loc) {
    if (sema_is_number(x)) {
        double v = sema_num(x), r;
        switch (op) {
        case OP_EXP: r = exp(v); break;
        case OP_LOG:
            if (v <= 0)
                return sema_error(E, loc, "log of %g, which is not positive", v);
            r = log(v);
            break;
        case OP_SQRT:
            if (v < 0)
                return sema_error(E, loc, "sqrt of the negative number %g", v);
            r = sqrt(v);
            break;
        case OP_ABS:
            if (x->kind == V_INT && x->i != INT64_MIN)
                return sema_int(E, x->i < 0 ? -x->i : x->i);
            r = fabs(v);
            break;
        case OP_RELU:
            if (x->kind == V_INT)
                return sema_int(E, x->i < 0 ? 0 : x->i);
            r = v < 0 ? 0 : v;
            break;
        case OP_SIGMOID: r = 1 / (1 + exp(-v)); break;
        case OP_TANH: r = tanh(v); break;
        case OP_ERF: r = erf(v); break;
        case OP_RSQRT:
            if (v <= 0)
                return sema_error(E, loc, "rsqrt of %g, which is not positive", v);
            r = 1 / sqrt(v);
            break;
        default: LATHE_UNREACHABLE("not a unary builtin");
        }
        if (!isfinite(r))
            return sema_error(E, loc, "%s(%g) overflows", fn, v);
        return sema_float(E, r);
    }
    Node *n = sema_tensor_arg(E, x, fn, "x", loc);
    if (!n)
        return NULL;
    if (op != OP_ABS && !ir_dtype_is_float(n->dtype)) /* the IR's rule: of these, only abs takes integers */
        return sema_error(E, loc, "'%s' needs a float tensor, got %s", fn, sema_type_str(E, n->dtype, &n->shape));
    return sema_made(E, ir_unary(E->g, E->d, sema_node_loc(E, loc), op, n), loc);
}

static Value *b_exp(Eval *E, Value **a, Loc loc) { return unary(E, a[0], OP_EXP, "exp", loc); }
static Value *b_log(Eval *E, Value **a, Loc loc) { return unary(E, a[0], OP_LOG, "log", loc); }
static Value *b_sqrt(Eval *E, Value **a, Loc loc) { return unary(E, a[0], OP_SQRT, "sqrt", loc); }
static Value *b_abs(Eval *E, Value **a, Loc loc) { return unary(E, a[0], OP_ABS, "abs", loc); }
static Value *b_relu(Eval *E, Value **a, Loc loc) { return unary(E, a[0], OP_RELU, "relu", loc); }
static Value *b_sigmoid(Eval *E, Value **a, Loc loc) { return unary(E, a[0], OP_SIGMOID, "sigmoid", loc); }
static Value *b_tanh(Eval *E, Value **a, Loc loc) { return unary(E, a[0], OP_TANH, "tanh", loc); }
static Value *b_erf(Eval *E, Value **a, Loc loc) { return unary(E, a[0], OP_ERF, "erf", loc); }
static Value *b_rsqrt(Eval *E, Value **a, Loc loc) { return unary(E, a[0], OP_RSQRT, "rsqrt", loc); }

/* ---------------------------------------------------------------- reductions */

static Value *reduce(Eval *E, Value **a, Op op, const char *fn, Loc loc) {
    Node *x = sema_tensor_arg(E, a[0], fn, "x", loc);
    uint32_t mask;
    bool keepdim;
    if (!x || !axes_of(E, a[1], x, fn, loc, &mask) || !sema_bool_arg(E, a[2], false, fn, "keepdim", loc, &keepdim))
        return NULL;
    if (op == OP_REDUCE_MEAN && !ir_dtype_is_float(x->dtype))
        return sema_error(E, loc, "'mean' needs a float tensor, got %s", sema_type_str(E, x->dtype, &x->shape));
    return sema_made(E, ir_reduce(E->g, E->d, sema_node_loc(E, loc), op, x, mask, keepdim), loc);
}

static Value *b_sum(Eval *E, Value **a, Loc loc) { return reduce(E, a, OP_REDUCE_SUM, "sum", loc); }
static Value *b_mean(Eval *E, Value **a, Loc loc) { return reduce(E, a, OP_REDUCE_MEAN, "mean", loc); }

/* A second argument of max/min that is not an axis: a tensor, a float, or an int that is no axis of x
   (max(log(p), -100) clamps; max(x, 1) reduces over axis 1, as torch.max). */
static bool elementwise_operand(const Value *x, const Value *v) {
    if (sema_is_number(x) && sema_is_number(v))
        return true;
    if (!sema_is_tensor(x) && !sema_is_tensor(v)) /* max([1, 2], 1.5): no operand to broadcast against */
        return false;
    if (sema_is_tensor(v) || v->kind == V_FLOAT)
        return true;
    if (v->kind != V_INT || x->kind != V_TENSOR)
        return false;
    int r = x->node->shape.rank;
    return v->i < -r || v->i >= r;
}

/* max(x, axis, keepdim) reduces; max(a, b) with a tensor, a float or two numbers is elementwise. */
static Value *max_min(Eval *E, Value **a, bool is_max, Loc loc) {
    const char *fn = is_max ? "max" : "min";
    if (a[1] && !a[2] && elementwise_operand(a[0], a[1])) {
        if (sema_is_number(a[0]) && sema_is_number(a[1])) {
            bool first = is_max ? sema_num(a[0]) >= sema_num(a[1]) : sema_num(a[0]) <= sema_num(a[1]);
            return first ? a[0] : a[1];
        }
        return sema_elementwise(E, is_max ? OP_MAX : OP_MIN, fn, a[0], a[1], loc);
    }
    return reduce(E, a, is_max ? OP_REDUCE_MAX : OP_REDUCE_MIN, fn, loc);
}

static Value *b_max(Eval *E, Value **a, Loc loc) { return max_min(E, a, true, loc); }
static Value *b_min(Eval *E, Value **a, Loc loc) { return max_min(E, a, false, loc); }

static Value *arg_max_min(Eval *E, Value **a, bool is_max, Loc loc) {
    const char *fn = is_max ? "argmax" : "argmin";
    Node *x = sema_tensor_arg(E, a[0], fn, "x", loc);
    int axis;
    bool keepdim;
    if (!x || !sema_axis_of(E, a[1], x, fn, loc, &axis) || !sema_bool_arg(E, a[2], false, fn, "keepdim", loc, &keepdim))
        return NULL;
    Loc nloc = sema_node_loc(E, loc);
    return sema_made(E, is_max ? ir_argmax(E->g, E->d, nloc, x, axis, keepdim) : ir_argmin(E->g, E->d, nloc, x, axis, keepdim), loc);
}

static Value *b_argmax(Eval *E, Value **a, Loc loc) { return arg_max_min(E, a, true, loc); }
static Value *b_argmin(Eval *E, Value **a, Loc loc) { return arg_max_min(E, a, false, loc); }

/* ---------------------------------------------------------------- shapes */

static Value *b_reshape(Eval *E, Value **a, Loc loc) {
    Node *x = sema_tensor_arg(E, a[0], "reshape", "x", loc);
    if (!x)
        return NULL;
    Value *s = a[1];
    if (s->kind != V_LIST)
        return sema_error(E, loc, "'reshape' needs a list of dimensions, got %s", sema_kind_name(E, s));
    if (s->nitems > IR_MAX_RANK)
        return sema_error(E, loc, "'reshape' to %d dimensions: at most %d", s->nitems, IR_MAX_RANK);
    Shape out = {.rank = s->nitems};
    int unknown = -1, nt = 0, nx = 0;
    int64_t ct = 1, cx = ir_shape_numel_per_n(&x->shape);
    for (int i = 0; i < x->shape.rank; i++)
        nx += x->shape.dim[i] == IR_DIM_N;
    for (int i = 0; i < s->nitems; i++) {
        Value *d = s->items[i];
        if (d->kind == V_DIMN) {
            out.dim[i] = IR_DIM_N;
            nt++;
        } else if (d->kind == V_INT && d->i == -1 && unknown < 0) {
            unknown = i;
        } else if (d->kind == V_INT && d->i >= 0) {
            out.dim[i] = d->i;
            if (ir_mul_overflows(ct, d->i, &ct))
                return sema_error(E, loc, "'reshape': the shape's size overflows");
        } else {
            return sema_error(E, loc, "'reshape': dimension %d must be an int >= 0, N, or -1 once", i);
        }
    }
    const char *from = sema_type_str(E, x->dtype, &x->shape);
    if (unknown >= 0) {
        if (nx == nt && ct > 0 && cx % ct == 0)
            out.dim[unknown] = cx / ct;
        else if (nx == nt + 1 && ct == cx)
            out.dim[unknown] = IR_DIM_N;
        else
            return sema_error(E, loc, "cannot reshape %s: no size for -1 fits", from);
    } else if (nx != nt || cx != ct) {
        return sema_error(E, loc, "cannot reshape %s to %s: the element counts differ", from,
                          sema_type_str(E, x->dtype, &out));
    }
    return sema_made(E, ir_reshape(E->g, E->d, sema_node_loc(E, loc), x, out), loc);
}

/* A permutation of x's axes from a list (negative axes count from the end). */
static bool perm_of(Eval *E, Value *p, const Node *x, const char *fn, Loc loc, int *perm) {
    uint32_t seen = 0;
    if (p->kind != V_LIST || p->nitems != x->shape.rank) {
        sema_error(E, loc, "'%s' needs a permutation of %d axes, got %s", fn, x->shape.rank, sema_kind_name(E, p));
        return false;
    }
    for (int i = 0; i < p->nitems; i++) {
        if (!sema_axis_of(E, p->items[i], x, fn, loc, &perm[i]))
            return false;
        if (seen & (1u << perm[i])) {
            sema_error(E, loc, "'%s': axis %d appears twice in the permutation", fn, perm[i]);
            return false;
        }
        seen |= 1u << perm[i];
    }
    return true;
}

/* transpose(x, d0, d1) swaps two axes (torch.transpose); transpose(x, [perm]) permutes them. */
static Value *b_transpose(Eval *E, Value **a, Loc loc) {
    Node *x = sema_tensor_arg(E, a[0], "transpose", "x", loc);
    if (!x)
        return NULL;
    int perm[IR_MAX_RANK] = {0};
    if (a[1]->kind == V_LIST) {
        if (a[2])
            return sema_error(E, loc, "'transpose' takes a permutation list or two axes, not both");
        if (!perm_of(E, a[1], x, "transpose", loc, perm))
            return NULL;
    } else {
        int d0, d1;
        if (!a[2])
            return sema_error(E, loc, "'transpose' needs two axes (transpose(x, 0, 1)) or a permutation list");
        if (!sema_axis_of(E, a[1], x, "transpose", loc, &d0) || !sema_axis_of(E, a[2], x, "transpose", loc, &d1))
            return NULL;
        for (int i = 0; i < x->shape.rank; i++)
            perm[i] = i;
        perm[d0] = d1;
        perm[d1] = d0;
    }
    return sema_made(E, ir_transpose(E->g, E->d, sema_node_loc(E, loc), x, perm), loc);
}

static Value *b_permute(Eval *E, Value **a, Loc loc) {
    Node *x = sema_tensor_arg(E, a[0], "permute", "x", loc);
    int perm[IR_MAX_RANK] = {0};
    if (!x || !perm_of(E, a[1], x, "permute", loc, perm))
        return NULL;
    return sema_made(E, ir_transpose(E->g, E->d, sema_node_loc(E, loc), x, perm), loc);
}

static Value *b_one_hot(Eval *E, Value **a, Loc loc) {
    Node *x = sema_tensor_arg(E, a[0], "one_hot", "x", loc);
    if (!x)
        return NULL;
    if (ir_dtype_is_float(x->dtype))
        return sema_error(E, loc, "'one_hot' needs an integer tensor, got %s", sema_type_str(E, x->dtype, &x->shape));
    if (a[1]->kind != V_INT || a[1]->i < 1)
        return sema_error(E, loc, "'one_hot' needs classes as an int >= 1, got %s",
                          a[1]->kind == V_INT ? arena_printf(E->a, "%lld", (long long)a[1]->i) : sema_kind_name(E, a[1]));
    if (a[2] && a[2]->kind != V_DTYPE)
        return sema_error(E, loc, "'one_hot' needs a dtype for 'dtype', got %s", sema_kind_name(E, a[2]));
    DType t = a[2] ? a[2]->dtype : DT_F32;
    return sema_made(E, ir_one_hot(E->g, E->d, sema_node_loc(E, loc), x, a[1]->i, t), loc);
}

static Value *b_cast(Eval *E, Value **a, Loc loc) {
    Node *x = sema_tensor_arg(E, a[0], "cast", "x", loc);
    if (!x)
        return NULL;
    if (a[1]->kind != V_DTYPE)
        return sema_error(E, loc, "'cast' needs a dtype such as f32, got %s", sema_kind_name(E, a[1]));
    if (x->dtype == a[1]->dtype)
        return sema_tensor(E, x);
    return sema_made(E, ir_cast(E->g, sema_node_loc(E, loc), x, a[1]->dtype), loc);
}

static Value *b_where(Eval *E, Value **a, Loc loc) {
    Node *c = sema_tensor_arg(E, a[0], "where", "cond", loc);
    if (!c)
        return NULL;
    Node *x = sema_is_tensor(a[1]) ? sema_node(E, a[1], loc) : NULL;
    Node *y = sema_is_tensor(a[2]) ? sema_node(E, a[2], loc) : NULL;
    if (E->failed)
        return NULL;
    for (int i = 1; i <= 2; i++)
        if (!sema_is_tensor(a[i]) && !sema_is_number(a[i]))
            return sema_error(E, loc, "'where' needs a tensor or a number, got %s", sema_kind_name(E, a[i]));
    if (!x && !y) { /* two numbers: f32 constants */
        const Node like = {.dtype = DT_F32};
        x = sema_const_like(E, &like, a[1], loc);
        y = x ? sema_const_like(E, &like, a[2], loc) : NULL;
    } else if (!x) {
        x = sema_const_like(E, y, a[1], loc);
    } else if (!y) {
        y = sema_const_like(E, x, a[2], loc);
    }
    if (!x || !y)
        return NULL;
    if (x->dtype != y->dtype)
        return sema_error(E, loc, "dtype mismatch in 'where': %s and %s", sema_type_str(E, x->dtype, &x->shape),
                          sema_type_str(E, y->dtype, &y->shape));
    return sema_made(E, ir_select(E->g, E->d, sema_node_loc(E, loc), c, x, y), loc);
}

static Value *b_dim(Eval *E, Value **a, Loc loc) {
    Node *x = sema_tensor_arg(E, a[0], "dim", "x", loc);
    int i;
    if (!x || !sema_axis_of(E, a[1], x, "dim", loc, &i))
        return NULL;
    return x->shape.dim[i] == IR_DIM_N ? sema_value(E, V_DIMN) : sema_int(E, x->shape.dim[i]);
}

/* ---------------------------------------------------------------- initialisers */

static bool number_arg(Eval *E, Value *v, const char *fn, const char *what, Loc loc, double *out) {
    if (!sema_is_number(v)) {
        sema_error(E, loc, "'%s' needs a number for '%s', got %s", fn, what, sema_kind_name(E, v));
        return false;
    }
    *out = sema_num(v);
    return true;
}

static Value *init(Eval *E, InitKind k, double a, double b) {
    Value *v = sema_value(E, V_INIT);
    v->init = (InitSpec){k, a, b};
    return v;
}

static Value *b_zeros(Eval *E, Value **a, Loc loc) { return init(E, INIT_ZEROS, 0, 0); }
static Value *b_ones(Eval *E, Value **a, Loc loc) { return init(E, INIT_ONES, 0, 0); }

static Value *b_constant(Eval *E, Value **a, Loc loc) {
    double v;
    return number_arg(E, a[0], "constant", "value", loc, &v) ? init(E, INIT_CONST, v, 0) : NULL;
}

static Value *b_uniform(Eval *E, Value **a, Loc loc) {
    double lo, hi;
    if (!number_arg(E, a[0], "uniform", "a", loc, &lo) || !number_arg(E, a[1], "uniform", "b", loc, &hi))
        return NULL;
    if (lo > hi)
        return sema_error(E, loc, "'uniform' needs a <= b, got %g and %g", lo, hi);
    return init(E, INIT_UNIFORM, lo, hi);
}

static Value *b_normal(Eval *E, Value **a, Loc loc) {
    double mean, std;
    if (!number_arg(E, a[0], "normal", "mean", loc, &mean) || !number_arg(E, a[1], "normal", "std", loc, &std))
        return NULL;
    if (std < 0)
        return sema_error(E, loc, "'normal' needs std >= 0, got %g", std);
    return init(E, INIT_NORMAL, mean, std);
}

/* PyTorch's kaiming_uniform_ with a leaky-ReLU slope a: bound = gain * sqrt(3 / fan_in) with
   gain = sqrt(2 / (1 + a^2)), i.e. sqrt(6 / ((1 + a^2) * fan_in)); Linear's default a = sqrt(5) gives
   uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
static Value *b_kaiming_uniform(Eval *E, Value **a, Loc loc) {
    double fan_in, slope = sqrt(5.0);
    if (!number_arg(E, a[0], "kaiming_uniform", "fan_in", loc, &fan_in) ||
        (a[1] && !number_arg(E, a[1], "kaiming_uniform", "a", loc, &slope)))
        return NULL;
    if (fan_in <= 0)
        return sema_error(E, loc, "'kaiming_uniform' needs fan_in > 0, got %g", fan_in);
    double bound = sqrt(6.0 / ((1 + slope * slope) * fan_in));
    return init(E, INIT_UNIFORM, -bound, bound);
}

/* ---------------------------------------------------------------- the table */

static const Builtin builtins[] = {
    {"exp", PARAMS("x"), 1, b_exp},
    {"log", PARAMS("x"), 1, b_log},
    {"sqrt", PARAMS("x"), 1, b_sqrt},
    {"abs", PARAMS("x"), 1, b_abs},
    {"relu", PARAMS("x"), 1, b_relu},
    {"sigmoid", PARAMS("x"), 1, b_sigmoid},
    {"tanh", PARAMS("x"), 1, b_tanh},
    {"erf", PARAMS("x"), 1, b_erf},
    {"rsqrt", PARAMS("x"), 1, b_rsqrt},
    {"sum", PARAMS("x", "axis", "keepdim"), 1, b_sum},
    {"mean", PARAMS("x", "axis", "keepdim"), 1, b_mean},
    {"max", PARAMS("x", "axis", "keepdim"), 1, b_max},
    {"min", PARAMS("x", "axis", "keepdim"), 1, b_min},
    {"argmax", PARAMS("x", "axis", "keepdim"), 2, b_argmax},
    {"argmin", PARAMS("x", "axis", "keepdim"), 2, b_argmin},
    {"reshape", PARAMS("x", "shape"), 2, b_reshape},
    {"view", PARAMS("x", "shape"), 2, b_reshape},
    {"transpose", PARAMS("x", "dim0", "dim1"), 2, b_transpose},
    {"permute", PARAMS("x", "dims"), 2, b_permute},
    {"one_hot", PARAMS("x", "classes", "dtype"), 2, b_one_hot},
    {"cast", PARAMS("x", "dtype"), 2, b_cast},
    {"where", PARAMS("cond", "a", "b"), 3, b_where},
    {"dim", PARAMS("x", "i"), 2, b_dim},
    {"zeros", NULL, 0, 0, b_zeros},
    {"ones", NULL, 0, 0, b_ones},
    {"constant", PARAMS("value"), 1, b_constant},
    {"uniform", PARAMS("a", "b"), 2, b_uniform},
    {"normal", PARAMS("mean", "std"), 2, b_normal},
    {"kaiming_uniform", PARAMS("fan_in", "a"), 1, b_kaiming_uniform},
    {"Sequential", NULL, 0, 0, NULL}, /* variadic: the evaluator builds it */
};

void sema_register_builtins(Eval *E, Scope *s) {
    for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++) {
        Value *v = sema_value(E, V_BUILTIN);
        v->builtin = &builtins[i];
        sema_scope_set(E, s, builtins[i].name, v);
    }
    for (int t = 0; t < DT__COUNT; t++) {
        Value *v = sema_value(E, V_DTYPE);
        v->dtype = (DType)t;
        sema_scope_set(E, s, ir_dtype_name((DType)t), v);
    }
    sema_scope_set(E, s, "N", sema_value(E, V_DIMN));
    sema_scope_set(E, s, "training", sema_bool(E, false));
    sema_register_layer_builtins(E, s);
}
