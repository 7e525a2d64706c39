/* cse.c: common subexpressions by hash-consing, in one sweep over the nodes in order. Two nodes of one op,
   dtype, shape, attributes (the fields the op reads) and inputs (after the earlier merges) compute the same
   value, so the later one is replaced by the earlier one everywhere and removed. Constants merge by value
   (bit for bit: 0 and -0 differ), npow, dtype and shape. INPUT, PARAM and STATE leaves never merge: each is
   an argument of its own. RANDOM nodes merge only when stream, seed and step agree (then they draw the same
   bits). a + b and b + a merge. Members of fusion groups are left alone. Linear time: one open-addressing hash table. */
#include "passes.h"

#include <assert.h>
#include <string.h>

/* ---------------------------------------------------------------- hashing */

static uint64_t mix(uint64_t h, uint64_t v) {
    /* a multiply-xorshift step (as in splitmix64): every input bit reaches every output bit */
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 31);
}

static uint64_t double_bits(double v) {
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static uint64_t hash_shape(uint64_t h, const Shape *s) {
    h = mix(h, (uint64_t)s->rank);
    for (int i = 0; i < s->rank; i++)
        h = mix(h, (uint64_t)s->dim[i]);
    return h;
}

static uint64_t hash_pair(uint64_t h, const int *v) {
    return mix(mix(h, (uint64_t)(uint32_t)v[0]), (uint64_t)(uint32_t)v[1]);
}

/* the attribute fields op reads (as ir_make keeps them), rank: the node's */
static uint64_t hash_attr(uint64_t h, Op op, const Attr *a, int rank) {
    switch (op) {
    case OP_CONST:
        return mix(mix(h, double_bits(a->value)), (uint64_t)a->npow);
    case OP_CAST: return mix(h, (uint64_t)a->dtype);
    case OP_REDUCE_SUM: case OP_REDUCE_MEAN: case OP_REDUCE_MAX: case OP_REDUCE_MIN:
        return mix(mix(h, a->axes), a->keepdim);
    case OP_ARGMAX: case OP_ARGMIN:
        return mix(mix(h, (uint64_t)a->axis), a->keepdim);
    case OP_MATMUL: return mix(h, (uint64_t)a->transpose_a * 2 + a->transpose_b);
    case OP_TRANSPOSE:
        for (int i = 0; i < rank; i++)
            h = mix(h, (uint64_t)a->perm[i]);
        return h;
    case OP_ONE_HOT: return mix(mix(h, (uint64_t)a->classes), (uint64_t)a->dtype);
    case OP_IOTA: return mix(h, (uint64_t)a->axis);
    case OP_RANDOM: return mix(h, a->stream);
    case OP_CONV2D: case OP_CONV2D_BWD_INPUT: case OP_CONV2D_BWD_WEIGHT:
        h = hash_pair(hash_pair(hash_pair(h, a->stride), a->pad), a->dilation);
        return mix(h, (uint64_t)a->groups);
    case OP_MAX_POOL2D: case OP_MAX_POOL2D_BWD: case OP_AVG_POOL2D: case OP_AVG_POOL2D_BWD:
        h = hash_pair(hash_pair(hash_pair(hash_pair(h, a->window), a->stride), a->pad), a->dilation);
        return mix(mix(h, a->ceil_mode), a->count_include_pad);
    case OP_SLICE: case OP_PAD:
        for (int i = 0; i < rank; i++)
            h = mix(mix(h, (uint64_t)a->start[i]), (uint64_t)a->step[i]);
        return op == OP_PAD ? mix(h, double_bits(a->value)) : h;
    case OP_CONCAT: case OP_GATHER: case OP_SCATTER_ADD: return mix(h, (uint64_t)a->axis);
    default: return h; /* the rest read no attribute beyond the result's type, hashed already */
    }
}

/* Ops whose operands swap with the same bits (NaN payloads aside): a + b and b + a are one value. Float
   max and min are not: max(+0, -0) gives its first operand. */
static bool commutes(const Node *n) {
    switch (n->op) {
    case OP_ADD: case OP_MUL: case OP_EQ: case OP_NE: return true;
    case OP_MAX: case OP_MIN: return !ir_dtype_is_float(n->dtype);
    default: return false;
    }
}

static uint64_t hash_node(const Node *n) {
    uint64_t h = mix(mix((uint64_t)n->op, (uint64_t)n->dtype), (uint64_t)n->ninputs);
    h = hash_shape(h, &n->shape);
    if (commutes(n)) {
        int a = n->inputs[0]->id, b = n->inputs[1]->id;
        h = mix(mix(h, (uint64_t)(a < b ? a : b)), (uint64_t)(a < b ? b : a));
    } else {
        for (int i = 0; i < n->ninputs; i++)
            h = mix(h, (uint64_t)n->inputs[i]->id);
    }
    return hash_attr(h, n->op, &n->attr, n->shape.rank);
}

/* ---------------------------------------------------------------- equality */

static bool pair_eq(const int *a, const int *b) {
    return a[0] == b[0] && a[1] == b[1];
}

/* Whether the attribute fields op reads agree; the result type is compared by the caller (it holds the
   CONST, IOTA, RESHAPE, BROADCAST and window results' attr.shape and attr.dtype). */
static bool attr_eq(Op op, const Attr *a, const Attr *b, int rank) {
    switch (op) {
    case OP_CONST: return double_bits(a->value) == double_bits(b->value) && a->npow == b->npow;
    case OP_CAST: return a->dtype == b->dtype;
    case OP_REDUCE_SUM: case OP_REDUCE_MEAN: case OP_REDUCE_MAX: case OP_REDUCE_MIN:
        return a->axes == b->axes && a->keepdim == b->keepdim;
    case OP_ARGMAX: case OP_ARGMIN: return a->axis == b->axis && a->keepdim == b->keepdim;
    case OP_MATMUL: return a->transpose_a == b->transpose_a && a->transpose_b == b->transpose_b;
    case OP_TRANSPOSE: return memcmp(a->perm, b->perm, sizeof(int) * (size_t)rank) == 0;
    case OP_ONE_HOT: return a->classes == b->classes && a->dtype == b->dtype;
    case OP_IOTA: return a->axis == b->axis;
    case OP_RANDOM: return a->stream == b->stream;
    case OP_CONV2D: case OP_CONV2D_BWD_INPUT: case OP_CONV2D_BWD_WEIGHT:
        return pair_eq(a->stride, b->stride) && pair_eq(a->pad, b->pad) && pair_eq(a->dilation, b->dilation) &&
               a->groups == b->groups;
    case OP_MAX_POOL2D: case OP_MAX_POOL2D_BWD: case OP_AVG_POOL2D: case OP_AVG_POOL2D_BWD:
        return pair_eq(a->window, b->window) && pair_eq(a->stride, b->stride) && pair_eq(a->pad, b->pad) &&
               pair_eq(a->dilation, b->dilation) && a->ceil_mode == b->ceil_mode &&
               a->count_include_pad == b->count_include_pad;
    case OP_SLICE: case OP_PAD:
        for (int i = 0; i < rank; i++)
            if (a->start[i] != b->start[i] || a->step[i] != b->step[i])
                return false;
        return op == OP_SLICE || double_bits(a->value) == double_bits(b->value);
    case OP_CONCAT: case OP_GATHER: case OP_SCATTER_ADD: return a->axis == b->axis;
    default: return true;
    }
}

static bool same_value(const Node *a, const Node *b) {
    if (a->op != b->op || a->dtype != b->dtype || a->ninputs != b->ninputs || !ir_shape_eq(&a->shape, &b->shape))
        return false;
    bool same = true, swapped = commutes(a) && a->inputs[0] == b->inputs[1] && a->inputs[1] == b->inputs[0];
    for (int i = 0; i < a->ninputs; i++)
        same = same && a->inputs[i] == b->inputs[i];
    if (!same && !swapped)
        return false;
    return attr_eq(a->op, &a->attr, &b->attr, a->shape.rank);
}

/* Leaves that are arguments, and group members, keep their identity. */
static bool mergeable(const Node *n) {
    return n->op != OP_INPUT && n->op != OP_PARAM && n->op != OP_STATE && n->group < 0;
}

/* ---------------------------------------------------------------- the pass */

bool pass_cse(Graph *g, Diag *d) {
    size_t cap = 16;
    while (cap < 2 * (size_t)g->nnodes)
        cap *= 2;
    Node **table = arena_alloc(g->arena, cap * sizeof(Node *)); /* open addressing, linear probing */
    /* repl[id]: the node that stands for node id from now on (itself when it stays) */
    Node **repl = arena_alloc(g->arena, (size_t)g->nnodes * sizeof(Node *) + 1);
    bool merged = false;
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        assert(n->id == i && "node ids are positions");
        repl[i] = n;
        bool moved = false;
        for (int j = 0; j < n->ninputs && !moved; j++)
            moved = repl[n->inputs[j]->id] != n->inputs[j];
        if (moved) {
            /* through a copy: the inputs array may be shared with the node it was built from */
            Node **in = arena_alloc(g->arena, (size_t)n->ninputs * sizeof(Node *));
            for (int j = 0; j < n->ninputs; j++)
                in[j] = repl[n->inputs[j]->id];
            n->inputs = in;
        }
        if (!mergeable(n))
            continue;
        size_t k = (size_t)hash_node(n) & (cap - 1);
        while (table[k] && !same_value(table[k], n))
            k = (k + 1) & (cap - 1);
        if (table[k]) {
            repl[i] = table[k];
            merged = true;
        } else {
            table[k] = n;
        }
    }
    if (!merged)
        return true;
    for (int i = 0; i < g->noutputs; i++)
        g->outputs[i].value = repl[g->outputs[i].value->id];
    /* a replaced node has no user left (its users all come later and read the survivor) */
    for (int i = 0; i < g->nnodes; i++)
        if (repl[i] != g->nodes[i])
            g->nodes[i] = NULL;
    ir_renumber(g);
    return true;
}
