/* index.c: indexing and slicing with Python's rules. On lists (and a Sequential's children) xs[i] and
   xs[a:b:s] are compile-time; on tensors x[:, 0], x[..., :T], x[a:b:s] become one SLICE (and a RESHAPE that
   drops the dims an int index took), the batch dimension only ever taken whole. */
#include <string.h>

#include "fe.h"

/* A bound of a slice: none (absent), an int, or N (the whole batch dimension as a stop). */
static bool bound_of(Eval *E, Value *v, const char *what, Loc loc, bool *given, int64_t *out) {
    *given = v && v->kind != V_NONE;
    if (!*given)
        return true;
    if (v->kind == V_INT) {
        *out = v->i;
        return true;
    }
    if (v->kind == V_DIMN) {
        *out = INT64_MAX;
        return true;
    }
    sema_error(E, loc, "a slice's %s must be an int or none, got %s", what, sema_kind_name(E, v));
    return false;
}

/* Python's rules: negative bounds count from the end, then both are clamped to [0, n]. The size; *first. */
static int64_t py_slice(int64_t n, bool has_a, int64_t a, bool has_b, int64_t b, int64_t k, int64_t *first) {
    a = !has_a ? 0 : a < 0 ? (a + n < 0 ? 0 : a + n) : (a > n ? n : a);
    b = !has_b || b > n ? n : b < 0 ? (b + n < 0 ? 0 : b + n) : b;
    *first = a;
    return b > a ? (b - a - 1) / k + 1 : 0; /* no overflow for any step */
}

bool sema_slice_dim(Eval *E, const Node *x, int d, Value *start, Value *stop, Value *step, Loc loc, DimSel *out) {
    bool has_start, has_stop, has_step;
    int64_t a = 0, b = 0, k = 1, n = x->shape.dim[d];
    if (!bound_of(E, start, "start", loc, &has_start, &a) || !bound_of(E, stop, "stop", loc, &has_stop, &b) ||
        !bound_of(E, step, "step", loc, &has_step, &k))
        return false;
    if (has_start && a == INT64_MAX)
        return sema_error(E, loc, "a slice cannot start at N"), false;
    if (k < 1 || k == INT64_MAX)
        return sema_error(E, loc, "a slice's step must be an int >= 1, got %lld", (long long)k), false;
    if (n == IR_DIM_N) {
        if ((has_start && a != 0) || (has_stop && b != INT64_MAX) || k != 1)
            return sema_error(E, loc, "cannot slice the batch dimension N of %s: only ':' keeps it whole",
                              sema_type_str(E, x->dtype, &x->shape)), false;
        *out = (DimSel){false, 0, 1, IR_DIM_N};
        return true;
    }
    int64_t size = py_slice(n, has_start, a, has_stop, b, k, &a);
    if (size == 0)
        return sema_error(E, loc, "the slice selects nothing of dimension %d of %s", d,
                          sema_type_str(E, x->dtype, &x->shape)), false;
    *out = (DimSel){false, a, k, size};
    return true;
}

/* An int index of dim d: a slice of one element that the result drops. */
static bool index_dim(Eval *E, const Node *x, int d, Value *v, Loc loc, DimSel *out) {
    if (v->kind != V_INT)
        return sema_error(E, loc, "a tensor index must be an int, a slice or '...', got %s%s", sema_kind_name(E, v),
                          sema_is_tensor(v) ? " (gather(x, axis, index) selects by a tensor)" : ""), false;
    int64_t n = x->shape.dim[d];
    if (n == IR_DIM_N)
        return sema_error(E, loc, "cannot index the batch dimension N of %s", sema_type_str(E, x->dtype, &x->shape)),
               false;
    int64_t k = v->i < 0 ? v->i + n : v->i;
    if (k < 0 || k >= n)
        return sema_error(E, loc, "index %lld out of range for dimension %d of %s", (long long)v->i, d,
                          sema_type_str(E, x->dtype, &x->shape)), false;
    *out = (DimSel){true, k, 1, 1};
    return true;
}

Value *sema_select(Eval *E, Node *x, const DimSel *sel, Loc loc) {
    int64_t start[IR_MAX_RANK] = {0}, step[IR_MAX_RANK] = {0};
    Shape sliced = x->shape, kept = {0};
    bool whole = true;
    for (int d = 0; d < x->shape.rank; d++) {
        start[d] = sel[d].start;
        step[d] = sel[d].step;
        sliced.dim[d] = sel[d].size;
        whole &= sel[d].start == 0 && sel[d].size == x->shape.dim[d];
        if (!sel[d].index)
            kept.dim[kept.rank++] = sel[d].size;
    }
    Loc nloc = sema_node_loc(E, loc);
    Node *y = whole ? x : ir_slice(E->g, E->d, nloc, x, start, step, sliced);
    if (y && kept.rank != sliced.rank)
        y = ir_reshape(E->g, E->d, nloc, y, kept);
    return sema_made(E, y, loc);
}

static Value *index_tensor(Eval *E, const Expr *e, Node *x, Scope *s) {
    int r = x->shape.rank, ellipsis = -1, nidx = 0;
    for (int i = 0; i < e->nitems; i++) {
        if (e->items[i]->kind != E_ELLIPSIS)
            nidx++;
        else if (ellipsis >= 0)
            return sema_error(E, e->items[i]->loc, "an index may hold one '...' only");
        else
            ellipsis = i;
    }
    if (nidx > r)
        return sema_error(E, e->loc, "too many indices (%d) for %s", nidx, sema_type_str(E, x->dtype, &x->shape));
    DimSel sel[IR_MAX_RANK];
    for (int d = 0; d < r; d++)
        sel[d] = (DimSel){false, 0, 1, x->shape.dim[d]};
    for (int i = 0, d = 0; i < e->nitems; i++) {
        const Expr *it = e->items[i];
        if (it->kind == E_ELLIPSIS) {
            d = r - (e->nitems - 1 - i); /* the items after it take the last dims */
            continue;
        }
        if (it->kind == E_SLICE) {
            Value *b[3] = {0};
            for (int k = 0; k < 3; k++)
                if (it->items[k] && !(b[k] = sema_eval(E, it->items[k], s)))
                    return NULL;
            if (!sema_slice_dim(E, x, d, b[0], b[1], b[2], it->loc, &sel[d]))
                return NULL;
        } else {
            Value *v = sema_eval(E, it, s);
            if (!v || !index_dim(E, x, d, v, it->loc, &sel[d]))
                return NULL;
        }
        d++;
    }
    return sema_select(E, x, sel, e->loc);
}

/* xs[a:b:s] of a list: a new list, Python's bounds. */
static Value *slice_list(Eval *E, const Expr *sl, Value **items, int n, Scope *s) {
    Value *b[3] = {0};
    for (int k = 0; k < 3; k++)
        if (sl->items[k] && !(b[k] = sema_eval(E, sl->items[k], s)))
            return NULL;
    bool has[3];
    int64_t bnd[3] = {0, 0, 1}, first;
    static const char *const what[] = {"start", "stop", "step"};
    for (int k = 0; k < 3; k++) {
        if (b[k] && b[k]->kind == V_DIMN)
            return sema_error(E, sl->items[k]->loc, "a list's slice needs ints, got N");
        if (!bound_of(E, b[k], what[k], sl->loc, &has[k], &bnd[k]))
            return NULL;
    }
    if (bnd[2] < 1)
        return sema_error(E, sl->loc, "a slice's step must be an int >= 1, got %lld", (long long)bnd[2]);
    DimSel d = {false, 0, bnd[2], py_slice(n, has[0], bnd[0], has[1], bnd[1], bnd[2], &first)};
    d.start = first;
    Value *v = sema_list(E, (int)d.size);
    for (int64_t i = 0; i < d.size; i++)
        v->items[i] = items[d.start + i * d.step];
    return v;
}

Value *sema_subscript(Eval *E, const Expr *e, Scope *s) {
    Value *x = sema_eval(E, e->lhs, s);
    if (!x)
        return NULL;
    if (sema_is_tensor(x)) {
        Node *n = sema_node(E, x, e->loc);
        return n ? index_tensor(E, e, n, s) : NULL;
    }
    Value **items;
    int n;
    if (x->kind == V_LIST) {
        items = x->items;
        n = x->nitems;
    } else if (x->kind == V_INSTANCE && !x->inst->decl) {
        items = x->inst->children;
        n = x->inst->nchildren;
    } else {
        return sema_error(E, e->loc, "cannot index %s", sema_kind_name(E, x));
    }
    if (e->nitems != 1 || e->rhs->kind == E_ELLIPSIS)
        return sema_error(E, e->loc, "a list takes one index or slice");
    if (e->rhs->kind == E_SLICE)
        return slice_list(E, e->rhs, items, n, s);
    Value *i = sema_eval(E, e->rhs, s);
    if (!i)
        return NULL;
    if (i->kind != V_INT)
        return sema_error(E, e->rhs->loc, "a list index must be an int, got %s", sema_kind_name(E, i));
    int64_t k = i->i < 0 ? i->i + n : i->i;
    if (k < 0 || k >= n)
        return sema_error(E, e->rhs->loc, "index %lld out of range for a list of %d", (long long)i->i, n);
    return items[k];
}
