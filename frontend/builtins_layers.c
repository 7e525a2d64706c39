/* builtins_layers.c: the builtins that layers are built from, beyond the elementwise ones: moving data
   between shapes (flatten, unsqueeze, squeeze, expand, cat, stack, pad, slice, gather, embedding), the window
   ops (conv2d and the poolings), tensors made from nothing (arange, full, rand, rand_like), the list helpers
   (len, range, shape) and update(buffer, value), which gives the train step its buffer updates. */
#include <math.h>
#include <string.h>

#include "fe.h"

#define PARAMS(...) (const char *const[]){__VA_ARGS__}, sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *)

/* range() builds its list at compile time: the bound keeps a typo (range(10 ** 9)) an error, not a hang. */
#define FE_MAX_RANGE (1 << 20)

static bool int_arg(Eval *E, Value *v, const char *fn, const char *what, int64_t min, Loc loc, int64_t *out) {
    if (v->kind != V_INT || v->i < min) {
        sema_error(E, loc, "'%s' needs an int >= %lld for '%s', got %s", fn, (long long)min, what,
                   v->kind == V_INT ? arena_printf(E->a, "%lld", (long long)v->i) : sema_kind_name(E, v));
        return false;
    }
    *out = v->i;
    return true;
}

/* (h, w) from an int or a list of two ints, each >= min; dflt when the argument is absent or none. */
static bool pair_arg(Eval *E, Value *v, int dflt, const char *fn, const char *what, int min, Loc loc, int out[2]) {
    out[0] = out[1] = dflt;
    if (!sema_given(v))
        return true;
    Value *items[2] = {v, v};
    if (v->kind == V_LIST) {
        if (v->nitems != 2) {
            sema_error(E, loc, "'%s' needs an int or [h, w] for '%s', got a list of %d", fn, what, v->nitems);
            return false;
        }
        items[0] = v->items[0];
        items[1] = v->items[1];
    }
    for (int i = 0; i < 2; i++) {
        int64_t k;
        if (!int_arg(E, items[i], fn, what, min, loc, &k))
            return false;
        if (k > (1 << 24)) {
            sema_error(E, loc, "'%s': '%s' of %lld is too large", fn, what, (long long)k);
            return false;
        }
        out[i] = (int)k;
    }
    return true;
}

/* A shape from a list of ints >= 0 and N. */
static bool dims_arg(Eval *E, Value *v, const char *fn, Loc loc, Shape *out) {
    if (v->kind != V_LIST || v->nitems > IR_MAX_RANK) {
        sema_error(E, loc, "'%s' needs a list of at most %d dimensions, got %s", fn, IR_MAX_RANK, sema_kind_name(E, v));
        return false;
    }
    *out = (Shape){.rank = v->nitems};
    for (int i = 0; i < v->nitems; i++) {
        Value *d = v->items[i];
        if (d->kind == V_DIMN) {
            out->dim[i] = IR_DIM_N;
        } else if (d->kind == V_INT && d->i >= 0) {
            out->dim[i] = d->i;
        } else {
            sema_error(E, loc, "'%s': dimension %d must be an int >= 0 or N, got %s", fn, i, sema_kind_name(E, d));
            return false;
        }
    }
    if (ir_shape_numel_per_n(out) < 0) {
        sema_error(E, loc, "'%s': the shape's size overflows", fn);
        return false;
    }
    return true;
}

/* The builtins below that make tensors from nothing need the graph that forward is building. */
static bool in_forward(Eval *E, const char *fn, Loc loc) {
    if (!E->g)
        sema_error(E, loc, "'%s' used outside forward", fn);
    return E->g != NULL;
}

static Value *reshaped(Eval *E, Node *x, Shape s, Loc loc) {
    if (ir_shape_eq(&x->shape, &s))
        return sema_tensor(E, x);
    return sema_made(E, ir_reshape(E->g, E->d, sema_node_loc(E, loc), x, s), loc);
}

/* ---------------------------------------------------------------- shapes */

/* torch.flatten: dims start..end into one. N merges only with dims of size 1: a dim of c * N elements has
   no type. */
static Value *b_flatten(Eval *E, Value **a, Loc loc) {
    Node *x = sema_tensor_arg(E, a[0], "flatten", "x", loc);
    if (!x)
        return NULL;
    Value one = {.kind = V_INT, .i = 1}, last = {.kind = V_INT, .i = -1};
    int s, e;
    if (!sema_axis_of(E, sema_given(a[1]) ? a[1] : &one, x, "flatten", loc, &s) ||
        !sema_axis_of(E, sema_given(a[2]) ? a[2] : &last, x, "flatten", loc, &e))
        return NULL;
    if (s > e)
        return sema_error(E, loc, "'flatten': start_dim %d comes after end_dim %d", s, e);
    Shape out = {0};
    int64_t merged = 1;
    bool has_n = false;
    for (int i = 0; i < x->shape.rank; i++) {
        int64_t d = x->shape.dim[i];
        if (i < s || i > e) {
            out.dim[out.rank++] = d;
            continue;
        }
        if (d == IR_DIM_N)
            has_n = true;
        else
            merged *= d; /* the product of a valid shape's dims fits */
        if (i == e)
            out.dim[out.rank++] = has_n ? IR_DIM_N : merged;
    }
    if (has_n && merged != 1)
        return sema_error(E, loc, "cannot flatten dims %d to %d of %s: the batch dimension N merges only with "
                          "dims of size 1", s, e, sema_type_str(E, x->dtype, &x->shape));
    return reshaped(E, x, out, loc);
}

static Value *b_unsqueeze(Eval *E, Value **a, Loc loc) {
    Node *x = sema_tensor_arg(E, a[0], "unsqueeze", "x", loc);
    if (!x)
        return NULL;
    int r = x->shape.rank;
    if (a[1]->kind != V_INT || a[1]->i < -r - 1 || a[1]->i > r)
        return sema_error(E, loc, "'unsqueeze' needs a dim in [%d, %d] for %s, got %s", -r - 1, r,
                          sema_type_str(E, x->dtype, &x->shape),
                          a[1]->kind == V_INT ? arena_printf(E->a, "%lld", (long long)a[1]->i) : sema_kind_name(E, a[1]));
    if (r == IR_MAX_RANK)
        return sema_error(E, loc, "'unsqueeze': %s already has %d dimensions", sema_type_str(E, x->dtype, &x->shape), r);
    int d = (int)(a[1]->i < 0 ? a[1]->i + r + 1 : a[1]->i);
    Shape out = {.rank = r + 1};
    for (int i = 0, j = 0; i <= r; i++)
        out.dim[i] = i == d ? 1 : x->shape.dim[j++];
    return reshaped(E, x, out, loc);
}

/* squeeze(x, d) drops dim d when it is 1 (and keeps x otherwise, as torch); squeeze(x) drops every 1. */
static Value *b_squeeze(Eval *E, Value **a, Loc loc) {
    Node *x = sema_tensor_arg(E, a[0], "squeeze", "x", loc);
    int d = -1;
    if (!x || (sema_given(a[1]) && !sema_axis_of(E, a[1], x, "squeeze", loc, &d)))
        return NULL;
    Shape out = {0};
    for (int i = 0; i < x->shape.rank; i++)
        if (x->shape.dim[i] != 1 || (d >= 0 && i != d))
            out.dim[out.rank++] = x->shape.dim[i];
    return reshaped(E, x, out, loc);
}

/* torch's expand: broadcast to dims, -1 keeping x's dim; new dims come first. */
static Value *b_expand(Eval *E, Value **a, Loc loc) {
    Node *x = sema_tensor_arg(E, a[0], "expand", "x", loc);
    if (!x)
        return NULL;
    Value *v = a[1];
    if (v->kind != V_LIST || v->nitems < x->shape.rank || v->nitems > IR_MAX_RANK)
        return sema_error(E, loc, "'expand' needs a list of %d to %d dimensions for %s, got %s", x->shape.rank,
                          IR_MAX_RANK, sema_type_str(E, x->dtype, &x->shape), sema_kind_name(E, v));
    Shape out = {.rank = v->nitems};
    int lead = v->nitems - x->shape.rank;
    for (int i = 0; i < v->nitems; i++) {
        Value *d = v->items[i];
        if (d->kind == V_INT && d->i == -1 && i >= lead)
            out.dim[i] = x->shape.dim[i - lead];
        else if (d->kind == V_DIMN)
            out.dim[i] = IR_DIM_N;
        else if (d->kind == V_INT && d->i >= 0)
            out.dim[i] = d->i;
        else
            return sema_error(E, loc, "'expand': dimension %d must be an int >= 0, N, or -1 (for a dim of x)", i);
    }
    Shape check;
    if (!ir_shape_broadcast(&x->shape, &out, &check) || !ir_shape_eq(&check, &out))
        return sema_error(E, loc, "cannot expand %s to %s", sema_type_str(E, x->dtype, &x->shape),
                          sema_type_str(E, x->dtype, &out));
    if (ir_shape_eq(&x->shape, &out))
        return sema_tensor(E, x);
    return sema_made(E, ir_broadcast(E->g, E->d, sema_node_loc(E, loc), x, out), loc);
}

/* shape(x): a list of ints, N for the batch dimension. */
static Value *b_shape(Eval *E, Value **a, Loc loc) {
    Node *x = sema_tensor_arg(E, a[0], "shape", "x", loc);
    if (!x)
        return NULL;
    Value *v = sema_list(E, x->shape.rank);
    for (int i = 0; i < x->shape.rank; i++)
        v->items[i] = x->shape.dim[i] == IR_DIM_N ? sema_value(E, V_DIMN) : sema_int(E, x->shape.dim[i]);
    return v;
}

/* The tensors of a list argument. */
static Node **tensor_list(Eval *E, Value *v, const char *fn, Loc loc) {
    if (v->kind != V_LIST || v->nitems == 0) {
        sema_error(E, loc, "'%s' needs a non-empty list of tensors, got %s", fn, sema_kind_name(E, v));
        return NULL;
    }
    Node **xs = arena_alloc(E->a, sizeof *xs * (size_t)v->nitems);
    for (int i = 0; i < v->nitems; i++)
        if (!(xs[i] = sema_tensor_arg(E, v->items[i], fn, arena_printf(E->a, "item %d", i), loc)))
            return NULL;
    return xs;
}

/* CONCAT takes at most IR_MAX_CONCAT inputs: a longer list is concatenated in a chain. */
static Value *concat(Eval *E, Node **xs, int n, int axis, Loc loc) {
    Loc nloc = sema_node_loc(E, loc);
    Node *acc = NULL;
    for (int i = 0; i < n;) {
        Node *in[IR_MAX_CONCAT];
        int k = 0;
        if (acc)
            in[k++] = acc;
        while (k < IR_MAX_CONCAT && i < n)
            in[k++] = xs[i++];
        acc = k == 1 ? in[0] : ir_concat(E->g, E->d, nloc, k, in, axis);
        if (!acc)
            return sema_made(E, NULL, loc);
    }
    return sema_tensor(E, acc);
}

static Value *b_cat(Eval *E, Value **a, Loc loc) {
    Node **xs = tensor_list(E, a[0], "cat", loc);
    Value zero = {.kind = V_INT};
    int axis;
    if (!xs || !sema_axis_of(E, sema_given(a[1]) ? a[1] : &zero, xs[0], "cat", loc, &axis))
        return NULL;
    if (xs[0]->shape.dim[axis] == IR_DIM_N)
        return sema_error(E, loc, "'cat' cannot join along the batch dimension N of %s",
                          sema_type_str(E, xs[0]->dtype, &xs[0]->shape));
    return concat(E, xs, a[0]->nitems, axis, loc);
}

/* stack: each tensor gets a new dim of 1 at axis, then they are concatenated along it. */
static Value *b_stack(Eval *E, Value **a, Loc loc) {
    Node **xs = tensor_list(E, a[0], "stack", loc);
    if (!xs)
        return NULL;
    int r = xs[0]->shape.rank;
    int64_t ax = sema_given(a[1]) && a[1]->kind == V_INT ? a[1]->i : 0;
    if ((sema_given(a[1]) && a[1]->kind != V_INT) || ax < -r - 1 || ax > r || r == IR_MAX_RANK)
        return sema_error(E, loc, "'stack' needs an axis in [%d, %d] for %s", -r - 1, r,
                          sema_type_str(E, xs[0]->dtype, &xs[0]->shape));
    int axis = (int)(ax < 0 ? ax + r + 1 : ax);
    int n = a[0]->nitems;
    const Node *x0 = xs[0];
    for (int i = 0; i < n; i++) {
        if (!ir_shape_eq(&xs[i]->shape, &x0->shape))
            return sema_error(E, loc, "'stack' needs tensors of one shape, got %s and %s",
                              sema_type_str(E, x0->dtype, &x0->shape), sema_type_str(E, xs[i]->dtype, &xs[i]->shape));
        Shape s = {.rank = r + 1};
        for (int d = 0, j = 0; d <= r; d++)
            s.dim[d] = d == axis ? 1 : xs[i]->shape.dim[j++];
        Value *u = reshaped(E, xs[i], s, loc);
        if (!u)
            return NULL;
        xs[i] = u->node;
    }
    return concat(E, xs, n, axis, loc);
}

/* F.pad: pads = [left, right] of the last dim, then of the one before, ... */
static Value *b_pad(Eval *E, Value **a, Loc loc) {
    Node *x = sema_tensor_arg(E, a[0], "pad", "x", loc);
    if (!x)
        return NULL;
    Value *p = a[1];
    int r = x->shape.rank;
    if (p->kind != V_LIST || p->nitems % 2 || p->nitems > 2 * r)
        return sema_error(E, loc, "'pad' needs a list of [left, right] pairs for at most the %d dims of %s", r,
                          sema_type_str(E, x->dtype, &x->shape));
    double value = 0;
    if (sema_given(a[2])) {
        if (!sema_is_number(a[2]))
            return sema_error(E, loc, "'pad' needs a number for 'value', got %s", sema_kind_name(E, a[2]));
        value = sema_num(a[2]);
        if (!ir_dtype_is_float(x->dtype) && value != floor(value))
            return sema_error(E, loc, "'pad': value %g does not fit the integer tensor %s", value,
                              sema_type_str(E, x->dtype, &x->shape));
    }
    int64_t start[IR_MAX_RANK] = {0}, step[IR_MAX_RANK] = {0};
    Shape out = x->shape;
    bool any = false;
    for (int d = 0; d < r; d++)
        step[d] = 1;
    for (int i = 0; i < p->nitems; i++) {
        int64_t k;
        if (!int_arg(E, p->items[i], "pad", "pads", 0, loc, &k))
            return NULL;
        int d = r - 1 - i / 2;
        if (k && x->shape.dim[d] == IR_DIM_N)
            return sema_error(E, loc, "'pad' cannot pad the batch dimension N of %s", sema_type_str(E, x->dtype, &x->shape));
        if (k > (int64_t)1 << 40)
            return sema_error(E, loc, "'pad': padding %lld is too large", (long long)k);
        if (i % 2 == 0)
            start[d] = k;
        if (x->shape.dim[d] != IR_DIM_N)
            out.dim[d] += k;
        any |= k != 0;
    }
    if (!any)
        return sema_tensor(E, x);
    return sema_made(E, ir_pad(E->g, E->d, sema_node_loc(E, loc), x, start, step, out, value), loc);
}

/* slice(x, axis, start, stop, step): x[..., start:stop:step, ...] along axis. */
static Value *b_slice(Eval *E, Value **a, Loc loc) {
    Node *x = sema_tensor_arg(E, a[0], "slice", "x", loc);
    int axis;
    if (!x || !sema_axis_of(E, a[1], x, "slice", loc, &axis))
        return NULL;
    DimSel sel[IR_MAX_RANK];
    for (int d = 0; d < x->shape.rank; d++)
        sel[d] = (DimSel){false, 0, 1, x->shape.dim[d]};
    if (!sema_slice_dim(E, x, axis, a[2], a[3], a[4], loc, &sel[axis]))
        return NULL;
    return sema_select(E, x, sel, loc);
}

static Value *b_gather(Eval *E, Value **a, Loc loc) {
    Node *x = sema_tensor_arg(E, a[0], "gather", "x", loc);
    Node *index = x ? sema_tensor_arg(E, a[2], "gather", "index", loc) : NULL;
    int axis;
    if (!index || !sema_axis_of(E, a[1], x, "gather", loc, &axis))
        return NULL;
    return sema_made(E, ir_gather(E->g, E->d, sema_node_loc(E, loc), x, index, axis), loc);
}

/* weight[index] as one_hot(index) @ weight: a GATHER would need index and weight to agree on the batch
   dimension, and the product's gradient for weight is one GEMM. Out-of-range indices give zero rows. */
static Value *b_embedding(Eval *E, Value **a, Loc loc) {
    Node *index = sema_tensor_arg(E, a[0], "embedding", "index", loc);
    Node *w = index ? sema_tensor_arg(E, a[1], "embedding", "weight", loc) : NULL;
    if (!w)
        return NULL;
    if (ir_dtype_is_float(index->dtype) || index->shape.rank < 1)
        return sema_error(E, loc, "'embedding' needs an integer index tensor of rank >= 1, got %s",
                          sema_type_str(E, index->dtype, &index->shape));
    if (w->shape.rank != 2 || !ir_dtype_is_float(w->dtype) || w->shape.dim[0] == IR_DIM_N || w->shape.dim[0] < 1)
        return sema_error(E, loc, "'embedding' needs a float weight [num_embeddings, dim], got %s",
                          sema_type_str(E, w->dtype, &w->shape));
    Loc nloc = sema_node_loc(E, loc);
    Node *h = ir_one_hot(E->g, E->d, nloc, index, w->shape.dim[0], w->dtype);
    return sema_made(E, h ? ir_matmul(E->g, E->d, nloc, h, w, false, false) : NULL, loc);
}

/* ---------------------------------------------------------------- window ops */

static Node *nchw_arg(Eval *E, Value *v, const char *fn, Loc loc) {
    Node *x = sema_tensor_arg(E, v, fn, "x", loc);
    if (x && x->shape.rank != 4)
        sema_error(E, loc, "'%s' needs an NCHW tensor of rank 4, got %s", fn, sema_type_str(E, x->dtype, &x->shape));
    return E->failed ? NULL : x;
}

static Value *b_conv2d(Eval *E, Value **a, Loc loc) {
    Node *x = nchw_arg(E, a[0], "conv2d", loc);
    Node *w = x ? sema_tensor_arg(E, a[1], "conv2d", "weight", loc) : NULL;
    if (!w)
        return NULL;
    if (w->shape.rank != 4 || ir_shape_has_n(&w->shape))
        return sema_error(E, loc, "'conv2d' needs a weight [out, in / groups, kh, kw], got %s",
                          sema_type_str(E, w->dtype, &w->shape));
    Attr at = {0};
    int64_t groups = 1;
    if (!pair_arg(E, a[2], 1, "conv2d", "stride", 1, loc, at.stride) ||
        !pair_arg(E, a[3], 0, "conv2d", "padding", 0, loc, at.pad) ||
        !pair_arg(E, a[4], 1, "conv2d", "dilation", 1, loc, at.dilation) ||
        (sema_given(a[5]) && !int_arg(E, a[5], "conv2d", "groups", 1, loc, &groups)))
        return NULL;
    if (w->shape.dim[2] > (1 << 24) || w->shape.dim[3] > (1 << 24) || groups > (1 << 24))
        return sema_error(E, loc, "'conv2d': kernel or groups too large");
    at.window[0] = (int)w->shape.dim[2];
    at.window[1] = (int)w->shape.dim[3];
    at.groups = (int)groups;
    Node *in[2] = {x, w};
    return sema_made(E, ir_window(E->g, E->d, sema_node_loc(E, loc), OP_CONV2D, 2, in, &at), loc);
}

/* The attributes every pooling shares: kernel, stride (the kernel by default), padding, ceil_mode. */
static bool pool_attrs(Eval *E, Value **a, const char *fn, Loc loc, Attr *at) {
    if (!pair_arg(E, a[1], 1, fn, "kernel_size", 1, loc, at->window))
        return false;
    at->stride[0] = at->window[0];
    at->stride[1] = at->window[1];
    at->dilation[0] = at->dilation[1] = 1;
    return (!sema_given(a[2]) || pair_arg(E, a[2], 1, fn, "stride", 1, loc, at->stride)) &&
           pair_arg(E, a[3], 0, fn, "padding", 0, loc, at->pad);
}

static Value *b_max_pool2d(Eval *E, Value **a, Loc loc) {
    Node *x = nchw_arg(E, a[0], "max_pool2d", loc);
    Attr at = {0};
    if (!x || !pool_attrs(E, a, "max_pool2d", loc, &at) ||
        !pair_arg(E, a[4], 1, "max_pool2d", "dilation", 1, loc, at.dilation) ||
        !sema_bool_arg(E, a[5], false, "max_pool2d", "ceil_mode", loc, &at.ceil_mode))
        return NULL;
    return sema_made(E, ir_window(E->g, E->d, sema_node_loc(E, loc), OP_MAX_POOL2D, 1, &x, &at), loc);
}

static Value *b_avg_pool2d(Eval *E, Value **a, Loc loc) {
    Node *x = nchw_arg(E, a[0], "avg_pool2d", loc);
    Attr at = {0};
    if (!x || !pool_attrs(E, a, "avg_pool2d", loc, &at) ||
        !sema_bool_arg(E, a[4], false, "avg_pool2d", "ceil_mode", loc, &at.ceil_mode) ||
        !sema_bool_arg(E, a[5], true, "avg_pool2d", "count_include_pad", loc, &at.count_include_pad))
        return NULL;
    return sema_made(E, ir_window(E->g, E->d, sema_node_loc(E, loc), OP_AVG_POOL2D, 1, &x, &at), loc);
}

static Value *b_adaptive_avg_pool2d(Eval *E, Value **a, Loc loc) {
    Node *x = nchw_arg(E, a[0], "adaptive_avg_pool2d", loc);
    int size[2];
    if (!x || !pair_arg(E, a[1], 1, "adaptive_avg_pool2d", "output_size", 1, loc, size))
        return NULL;
    Attr at = {.shape = x->shape};
    at.shape.dim[2] = size[0];
    at.shape.dim[3] = size[1];
    return sema_made(E, ir_window(E->g, E->d, sema_node_loc(E, loc), OP_ADAPTIVE_AVG_POOL2D, 1, &x, &at), loc);
}

/* ---------------------------------------------------------------- tensors from nothing */

static bool dtype_arg(Eval *E, Value *v, DType dflt, const char *fn, Loc loc, DType *out) {
    *out = dflt;
    if (!sema_given(v))
        return true;
    if (v->kind != V_DTYPE) {
        sema_error(E, loc, "'%s' needs a dtype such as f32 for 'dtype', got %s", fn, sema_kind_name(E, v));
        return false;
    }
    *out = v->dtype;
    return true;
}

static Value *b_arange(Eval *E, Value **a, Loc loc) {
    int64_t n;
    DType t;
    if (!int_arg(E, a[0], "arange", "n", 1, loc, &n) || !dtype_arg(E, a[1], DT_I64, "arange", loc, &t) ||
        !in_forward(E, "arange", loc))
        return NULL;
    Shape s = {.rank = 1, .dim = {n}};
    return sema_tensor(E, ir_iota(E->g, sema_node_loc(E, loc), t, s, 0));
}

static Value *b_full(Eval *E, Value **a, Loc loc) {
    Shape s;
    DType t;
    if (!dims_arg(E, a[0], "full", loc, &s) || !dtype_arg(E, a[2], DT_F32, "full", loc, &t) ||
        !in_forward(E, "full", loc))
        return NULL;
    if (!sema_is_number(a[1]))
        return sema_error(E, loc, "'full' needs a number for 'value', got %s", sema_kind_name(E, a[1]));
    double v = sema_num(a[1]);
    double lo = t == DT_U8 ? 0 : t == DT_I32 ? INT32_MIN : -0x1p63, hi = t == DT_U8 ? UINT8_MAX : t == DT_I32 ? INT32_MAX : 0x1p63 - 1024;
    if (!ir_dtype_is_float(t) && (v != floor(v) || v < lo || v > hi))
        return sema_error(E, loc, "'full': the value %.17g does not fit %s", v, ir_dtype_name(t));
    return sema_tensor(E, ir_const(E->g, sema_node_loc(E, loc), t, s, v));
}

/* The graph's INPUT name (i64[]), made once: the run's seed and the step count key the random numbers. */
static Node *scalar_input(Eval *E, const char *name, Loc loc) {
    Node *n = ir_find_leaf(E->g, OP_INPUT, name);
    return n ? n : ir_input(E->g, sema_node_loc(E, loc), name, DT_I64, ir_shape_scalar());
}

/* Uniform numbers in [0, 1): each RANDOM node of a graph has its own stream, numbered in creation order,
   so that a step's numbers depend only on the seed, the step and the model. */
static Value *random_of(Eval *E, Shape s, Loc loc) {
    Node *seed = scalar_input(E, "seed", loc), *step = scalar_input(E, "step", loc);
    return sema_made(E, ir_random(E->g, E->d, sema_node_loc(E, loc), seed, step, s, E->streams++), loc);
}

static Value *b_rand(Eval *E, Value **a, Loc loc) {
    Shape s;
    if (!dims_arg(E, a[0], "rand", loc, &s) || !in_forward(E, "rand", loc))
        return NULL;
    return random_of(E, s, loc);
}

static Value *b_rand_like(Eval *E, Value **a, Loc loc) {
    Node *x = sema_tensor_arg(E, a[0], "rand_like", "x", loc);
    return x ? random_of(E, x->shape, loc) : NULL;
}

/* ---------------------------------------------------------------- lists and checks */

/* is_list(x): whether x is a list, so that a layer can take an int or [h, w] as PyTorch's do. */
static Value *b_is_list(Eval *E, Value **a, Loc loc) { return sema_bool(E, a[0]->kind == V_LIST); }

/* error(message): a layer's own check of its arguments (Dropout's p, Conv2d's groups), reported at the
   user's line that called into the library, with a note at the library's. */
static Value *b_error(Eval *E, Value **a, Loc loc) {
    if (a[0]->kind != V_STR)
        return sema_error(E, loc, "'error' needs a string message, got %s", sema_kind_name(E, a[0]));
    return sema_error(E, loc, "%s", a[0]->s);
}

static Value *b_len(Eval *E, Value **a, Loc loc) {
    Value *v = a[0];
    if (v->kind == V_LIST)
        return sema_int(E, v->nitems);
    if (v->kind == V_INSTANCE && !v->inst->decl)
        return sema_int(E, v->inst->nchildren);
    if (v->kind == V_STR)
        return sema_int(E, (int64_t)strlen(v->s));
    return sema_error(E, loc, "'len' needs a list, a Sequential or a string, got %s", sema_kind_name(E, v));
}

/* Python's range(stop), range(start, stop[, step]), as a list of ints. */
static Value *b_range(Eval *E, Value **a, Loc loc) {
    for (int i = 0; i < 3; i++)
        if (a[i] && a[i]->kind != V_INT)
            return sema_error(E, loc, "'range' needs ints, got %s", sema_kind_name(E, a[i]));
    int64_t start = a[1] ? a[0]->i : 0, stop = a[1] ? a[1]->i : a[0]->i, step = a[2] ? a[2]->i : 1;
    if (step == 0)
        return sema_error(E, loc, "'range' needs a step other than 0");
    /* the count in doubles cannot overflow; it is exact below the bound */
    double count = step > 0 ? ceil(((double)stop - (double)start) / (double)step)
                            : ceil(((double)start - (double)stop) / -(double)step);
    if (count > FE_MAX_RANGE)
        return sema_error(E, loc, "'range' of more than %d numbers", FE_MAX_RANGE);
    int n = count > 0 ? (int)count : 0;
    if (!sema_charge(E, n, loc)) /* a range in a loop is made again every time round */
        return NULL;
    Value *v = sema_list(E, n);
    for (int i = 0; i < n; i++)
        v->items[i] = sema_int(E, start + (int64_t)i * step);
    return v;
}

/* ---------------------------------------------------------------- buffers */

/* update(buffer, value): in the train graph the buffer takes value after the step (an update output,
   added once the loss is built); in eval and predict it does nothing, as PyTorch's eval mode. */
static Value *b_update(Eval *E, Value **a, Loc loc) {
    if (a[0]->kind != V_PARAM || !a[0]->param->buffer)
        return sema_error(E, loc, "'update' needs a buffer (a member `name = buffer TYPE`), got %s",
                          sema_kind_name(E, a[0]));
    ParamObj *p = a[0]->param;
    if (!in_forward(E, "update", loc))
        return NULL;
    Node *v = sema_tensor_arg(E, a[1], "update", "value", loc);
    if (!v)
        return NULL;
    if (!p->name)
        return sema_error(E, loc, "buffer '%s' belongs to a layer that is not a member of the model", p->member);
    if (v->dtype != p->dtype || !ir_shape_eq(&v->shape, &p->shape))
        return sema_error(E, loc, "'update' of buffer '%s' %s with %s: the types differ", p->name,
                          sema_type_str(E, p->dtype, &p->shape), sema_type_str(E, v->dtype, &v->shape));
    if (!E->training)
        return sema_none(E);
    if (p->updated == E->g)
        return sema_error(E, loc, "buffer '%s' is updated twice in one step", p->name);
    if (!sema_node(E, a[0], loc)) /* the update output names a PARAM of the graph */
        return NULL;
    p->updated = E->g;
    if (E->nupdates == E->updates_cap) {
        int cap = E->updates_cap ? 2 * E->updates_cap : 8;
        E->updates = arena_realloc(E->a, E->updates, sizeof *E->updates * E->updates_cap, sizeof *E->updates * cap);
        E->update_values = arena_realloc(E->a, E->update_values, sizeof *E->update_values * E->updates_cap,
                                         sizeof *E->update_values * cap);
        E->updates_cap = cap;
    }
    E->updates[E->nupdates] = p;
    E->update_values[E->nupdates++] = v;
    return sema_none(E);
}

/* ---------------------------------------------------------------- the table */

static const Builtin layer_builtins[] = {
    {"flatten", PARAMS("x", "start_dim", "end_dim"), 1, b_flatten},
    {"unsqueeze", PARAMS("x", "dim"), 2, b_unsqueeze},
    {"squeeze", PARAMS("x", "dim"), 1, b_squeeze},
    {"expand", PARAMS("x", "sizes"), 2, b_expand},
    {"shape", PARAMS("x"), 1, b_shape},
    {"cat", PARAMS("tensors", "axis"), 1, b_cat},
    {"stack", PARAMS("tensors", "axis"), 1, b_stack},
    {"pad", PARAMS("x", "pad", "value"), 2, b_pad},
    {"slice", PARAMS("x", "axis", "start", "stop", "step"), 2, b_slice},
    {"gather", PARAMS("x", "axis", "index"), 3, b_gather},
    {"embedding", PARAMS("index", "weight"), 2, b_embedding},
    {"conv2d", PARAMS("x", "weight", "stride", "padding", "dilation", "groups"), 2, b_conv2d},
    {"max_pool2d", PARAMS("x", "kernel_size", "stride", "padding", "dilation", "ceil_mode"), 2, b_max_pool2d},
    {"avg_pool2d", PARAMS("x", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"), 2,
     b_avg_pool2d},
    {"adaptive_avg_pool2d", PARAMS("x", "output_size"), 2, b_adaptive_avg_pool2d},
    {"arange", PARAMS("n", "dtype"), 1, b_arange},
    {"full", PARAMS("size", "value", "dtype"), 2, b_full},
    {"rand", PARAMS("size"), 1, b_rand},
    {"rand_like", PARAMS("x"), 1, b_rand_like},
    {"len", PARAMS("x"), 1, b_len},
    {"is_list", PARAMS("x"), 1, b_is_list},
    {"error", PARAMS("message"), 1, b_error},
    {"range", PARAMS("start", "stop", "step"), 1, b_range},
    {"update", PARAMS("buffer", "value"), 2, b_update},
};

void sema_register_layer_builtins(Eval *E, Scope *s) {
    for (size_t i = 0; i < sizeof layer_builtins / sizeof *layer_builtins; i++) {
        Value *v = sema_value(E, V_BUILTIN);
        v->builtin = &layer_builtins[i];
        sema_scope_set(E, s, layer_builtins[i].name, v);
    }
}
