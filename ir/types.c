/* types.c: dtypes, shapes and their broadcasting, the op table generated from ops.def, and the small
   lookups over recipe values and programs. */
#include "ir.h"

#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[DT__COUNT] = {
    [DT_F32] = {"f32", 4}, [DT_F64] = {"f64", 8}, [DT_I32] = {"i32", 4},
    [DT_I64] = {"i64", 8}, [DT_U8] = {"u8", 1},
};

const char *ir_dtype_name(DType t)
{
    return (unsigned)t < DT__COUNT ? dtypes[t].name : "?";
}

bool ir_dtype_parse(const char *s, DType *out)
{
    for (int t = 0; t < DT__COUNT; t++) {
        if (strcmp(s, dtypes[t].name) == 0) {
            *out = (DType)t;
            return true;
        }
    }
    return false;
}

size_t ir_dtype_size(DType t)
{
    return (unsigned)t < DT__COUNT ? dtypes[t].size : 0;
}

bool ir_dtype_is_float(DType t)
{
    return t == DT_F32 || t == DT_F64;
}

bool ir_dtype_is_int(DType t)
{
    return t == DT_I32 || t == DT_I64 || t == DT_U8;
}

/* ---------------------------------------------------------------- shapes */

Shape ir_shape(int rank, const int64_t *dims)
{
    Shape s = {0};
    if (rank < 0 || rank > IR_MAX_RANK)
        LATHE_UNREACHABLE("ir_shape: rank out of range");
    s.rank = rank;
    for (int i = 0; i < rank; i++)
        s.dim[i] = dims[i];
    return s;
}

Shape ir_shape_scalar(void)
{
    Shape s = {0};
    return s;
}

bool ir_shape_eq(const Shape *a, const Shape *b)
{
    if (a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dim[i] != b->dim[i])
            return false;
    return true;
}

bool ir_shape_has_n(const Shape *s)
{
    return ir_shape_count_n(s) > 0;
}

int ir_shape_count_n(const Shape *s)
{
    int k = 0;
    for (int i = 0; i < s->rank; i++)
        k += s->dim[i] == IR_DIM_N;
    return k;
}

int64_t ir_shape_numel_per_n(const Shape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++) {
        if (s->dim[i] == IR_DIM_N)
            continue;
        if (s->dim[i] < 0 || ir_mul_overflows(n, s->dim[i], &n))
            return -1;
    }
    return n;
}

int64_t ir_shape_numel(const Shape *s, int64_t n)
{
    int64_t r = 1;
    for (int i = 0; i < s->rank; i++) {
        int64_t d = s->dim[i] == IR_DIM_N ? n : s->dim[i];
        if (d < 0 || ir_mul_overflows(r, d, &r))
            return -1;
    }
    return r;
}

bool ir_shape_valid(const Shape *s)
{
    if (s->rank < 0 || s->rank > IR_MAX_RANK)
        return false;
    for (int i = 0; i < s->rank; i++)
        if (s->dim[i] < 0 && s->dim[i] != IR_DIM_N)
            return false;
    return ir_shape_numel_per_n(s) >= 0;
}

bool ir_shape_broadcast(const Shape *a, const Shape *b, Shape *out)
{
    Shape r = {0};
    r.rank = a->rank > b->rank ? a->rank : b->rank;
    for (int i = 0; i < r.rank; i++) {
        int ia = a->rank - r.rank + i, ib = b->rank - r.rank + i;
        int64_t x = ia >= 0 ? a->dim[ia] : 1, y = ib >= 0 ? b->dim[ib] : 1;
        if (x == y)
            r.dim[i] = x;
        else if (x == 1)
            r.dim[i] = y;
        else if (y == 1)
            r.dim[i] = x;
        else
            return false;
    }
    *out = r;
    return true;
}

char *ir_shape_str(const Shape *s, char *buf, size_t size)
{
    size_t n = 0;
    if (size == 0)
        return buf;
    buf[0] = '\0';
#define PUT(...)                                                                                        \
    do {                                                                                                \
        int k = snprintf(buf + n, size - n, __VA_ARGS__);                                               \
        if (k < 0 || (size_t)k >= size - n)                                                             \
            return buf;                                                                                 \
        n += (size_t)k;                                                                                 \
    } while (0)
    if (s->rank < 0 || s->rank > IR_MAX_RANK) { /* an invalid shape, named in a message about it */
        PUT("[rank %d]", s->rank);
        return buf;
    }
    PUT("[");
    for (int i = 0; i < s->rank; i++) {
        if (s->dim[i] == IR_DIM_N)
            PUT("%sN", i ? "," : "");
        else
            PUT("%s%lld", i ? "," : "", (long long)s->dim[i]);
    }
    PUT("]");
#undef PUT
    return buf;
}

char *ir_type_str(DType t, const Shape *s, char *buf, size_t size)
{
    if (size == 0)
        return buf;
    size_t n = (size_t)snprintf(buf, size, "%s", ir_dtype_name(t));
    if (n < size)
        ir_shape_str(s, buf + n, size - n);
    return buf;
}

/* ---------------------------------------------------------------- ops */

static const struct {
    const char *name;
    int arity;
    OpKind kind;
} ops[OP__COUNT] = {
#define OP(e, name, arity, kind) [OP_##e] = {name, arity, kind},
#include "ops.def"
#undef OP
};

const char *ir_op_name(Op op)
{
    return (unsigned)op < OP__COUNT ? ops[op].name : "?";
}

int ir_op_arity(Op op)
{
    return (unsigned)op < OP__COUNT ? ops[op].arity : 0;
}

OpKind ir_op_kind(Op op)
{
    return (unsigned)op < OP__COUNT ? ops[op].kind : K_OTHER;
}

bool ir_op_parse(const char *s, Op *out)
{
    for (int op = 0; op < OP__COUNT; op++) {
        if (strcmp(s, ops[op].name) == 0) {
            *out = (Op)op;
            return true;
        }
    }
    return false;
}

/* ---------------------------------------------------------------- recipes and programs */

const RVal *rval_arg(const RVal *call, const char *key, int pos)
{
    if (!call || call->kind != RV_CALL)
        return NULL;
    if (key) {
        for (int i = 0; i < call->nitems; i++)
            if (call->keys && call->keys[i] && strcmp(call->keys[i], key) == 0)
                return call->items[i];
    }
    if (pos < 0)
        return NULL;
    /* positions count positional arguments only, so f(a, k = 1, b) has b at position 1 */
    for (int i = 0, p = 0; i < call->nitems; i++) {
        if (call->keys && call->keys[i])
            continue;
        if (p++ == pos)
            return call->items[i];
    }
    return NULL;
}

const RVal *program_recipe(const Program *p, const char *key)
{
    if (!p)
        return NULL;
    for (int i = 0; i < p->nrecipe; i++)
        if (p->recipe[i].key && strcmp(p->recipe[i].key, key) == 0)
            return p->recipe[i].value;
    return NULL;
}

int program_graphs(const Program *p, Graph **out)
{
    Graph *all[] = {p->train, p->grads, p->eval, p->predict};
    int n = 0;
    for (int i = 0; i < 4; i++)
        if (all[i])
            out[n++] = all[i];
    return n;
}

Graph *program_train_graph(const Program *p)
{
    return p->train ? p->train : p->grads;
}

const char *ir_arg_role_name(ArgRole r)
{
    switch (r) {
    case ARG_INPUT: return "input";
    case ARG_PARAM: return "param";
    case ARG_STATE: return "state";
    case ARG_OUTPUT: return "output";
    }
    return "?";
}
