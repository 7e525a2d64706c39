/* memplan.c: the static memory plan. Every node gets a MemLoc: the graph entry's arguments, aliases for
   reshapes, and offsets in one arena reused by lifetime, so that a compiled step never allocates.

   The invariant: for n >= 0, a node with MEM_ARENA owns the bytes
       [offset_c + offset_n * n, offset_c + offset_n * n + bytes(n))
   of the arena, and two nodes whose lifetimes overlap (liveness over node order: from the node that writes
   a buffer to its last reader, or to the end when the entry copies it out) own disjoint bytes. The arena
   has two regions. Buffers whose element count has N come first; their offset_c is 0 and their offset_n is
   a multiple of 64, so each starts 64-byte aligned for every n. Constant-size buffers follow them: their
   offset_n is per_n (the N region's bytes per sample) and their offset_c is a multiple of 64 counted from
   there. The arena is therefore c + per_n * n bytes (pass_memplan_size).

   Arguments: INPUT, PARAM and STATE nodes are their own args. A plain output's value is written straight
   into its output arg when a kernel computes it and nothing else outputs it; otherwise the entry copies it
   at the end. An update output's value is computed in place into its PARAM or STATE when that is safe (an
   elementwise kernel, and every other reader of the parameter, through reshapes too, comes before it);
   otherwise it lives in the arena and the entry copies it into the parameter at the very end; buffers (frozen
   PARAMs such as BatchNorm's running_mean) are updated the same way.

   The arena is never cleared: a buffer holds whatever the previous user of its bytes left. Every kernel
   therefore writes every element of its result, the accumulating ones included (scatter_add, pad, the
   pooling and convolution backward ops fill their output before they add into it). */
#include "passes.h"

#include <assert.h>
#include <stdlib.h>

#define MEMPLAN_ALIGN 64
/* No buffer and no region may pass 2^56 bytes (per sample in the N region): far beyond any real memory, and
   low enough that offsets, sizes and their sums never overflow an int64. */
#define MEMPLAN_MAX_BYTES ((int64_t)1 << 56)

static int64_t align_up(int64_t x) {
    return (x + MEMPLAN_ALIGN - 1) / MEMPLAN_ALIGN * MEMPLAN_ALIGN;
}

/* Elementwise kernels read each input at the index they write, so writing over an input is safe. */
static bool is_elementwise(const Node *n) {
    OpKind k = ir_op_kind(n->op);
    return k == K_UNARY || k == K_BINARY || k == K_COMPARE || n->op == OP_SELECT;
}

/* The node whose buffer n's value lives in: reshapes alias their input. */
static const Node *buffer_owner(const Node *n) {
    while (n->op == OP_RESHAPE)
        n = n->inputs[0];
    return n;
}

/* Bytes of a node's buffer: per sample when the shape has N, else in all; -1 past MEMPLAN_MAX_BYTES. */
static int64_t buffer_bytes(const Node *n) {
    int64_t numel = ir_shape_numel_per_n(&n->shape), bytes;
    if (numel < 0 || ir_mul_overflows(numel, (int64_t)ir_dtype_size(n->dtype), &bytes) || bytes > MEMPLAN_MAX_BYTES)
        return -1;
    return bytes;
}

/* Updating param in place by elementwise v is safe when v reads param (if at all) at the very index it
   writes, not through a reshape that broadcasts, and nothing reads the old value after v: every other
   reader of the param's buffer precedes v, and no output reads it at the end. */
static bool inplace_safe(const Graph *g, const Node *param, const Node *v) {
    for (int k = 0; k < v->ninputs; k++)
        if (buffer_owner(v->inputs[k]) == param && !ir_shape_eq(&v->inputs[k]->shape, &v->shape))
            return false;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *u = g->nodes[i];
        if (u == v || u->op == OP_RESHAPE)
            continue;
        for (int k = 0; k < u->ninputs; k++)
            if (buffer_owner(u->inputs[k]) == param && u->id > v->id)
                return false;
    }
    for (int i = 0; i < g->noutputs; i++)
        if (g->outputs[i].value != v && buffer_owner(g->outputs[i].value) == param)
            return false;
    return true;
}

static const Node *update_target(const Graph *g, const char *name) {
    const Node *p = ir_find_leaf(g, OP_PARAM, name);
    return p ? p : ir_find_leaf(g, OP_STATE, name);
}

typedef struct Slot {
    int64_t offset, size;
} Slot;

static int slot_cmp(const void *a, const void *b) {
    const Slot *x = a, *y = b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Greedy first fit: the lowest aligned offset where size bytes do not meet any live slot. */
static int64_t first_fit(Slot *live, int nlive, int64_t size) {
    qsort(live, nlive, sizeof *live, slot_cmp);
    int64_t at = 0;
    for (int i = 0; i < nlive; i++) {
        if (live[i].size == 0)
            continue;
        if (at + size <= live[i].offset)
            break;
        if (live[i].offset + live[i].size > at)
            at = align_up(live[i].offset + live[i].size);
    }
    return at;
}

bool pass_memplan(Graph *g, Diag *d) {
    int nn = g->nnodes;
    char type[256];
    for (int i = 0; i < nn; i++) {
        Node *n = g->nodes[i];
        assert(n->id == i && "memplan: node ids must be renumbered");
        n->mem = (MemLoc){MEM_NONE, -1, 0, 0};
        if (ir_shape_count_n(&n->shape) > 1) {
            diag_error(d, n->loc, "cannot plan memory for a shape with N in more than one dimension");
            return false;
        }
        if (buffer_bytes(n) < 0) {
            diag_error(d, n->loc, "cannot plan memory for %%%d: %s is too large", i,
                       ir_type_str(n->dtype, &n->shape, type, sizeof type));
            return false;
        }
    }

    int nargs = ir_graph_args(g, NULL);
    GraphArg *args = arena_alloc(g->arena, sizeof *args * (size_t)nargs);
    int *out_count = arena_alloc(g->arena, sizeof *out_count * (size_t)nn);
    int64_t *last_use = arena_alloc(g->arena, sizeof *last_use * (size_t)nn);
    Slot *live = arena_alloc(g->arena, sizeof *live * (size_t)nn);
    ir_graph_args(g, args);

    for (int i = 0; i < g->noutputs; i++)
        out_count[g->outputs[i].value->id]++;

    for (int a = 0; a < nargs; a++) {
        Node *n = (Node *)args[a].node;
        if (args[a].role != ARG_OUTPUT) {
            n->mem = (MemLoc){MEM_ARG, a, 0, 0};
            continue;
        }
        if (ir_is_kernel(n) && out_count[n->id] == 1)
            n->mem = (MemLoc){MEM_ARG, a, 0, 0};
    }

    for (int i = 0; i < g->noutputs; i++) {
        Output *o = &g->outputs[i];
        Node *v = o->value;
        if (!o->update || !ir_is_kernel(v) || !is_elementwise(v) || out_count[v->id] != 1)
            continue;
        const Node *p = update_target(g, o->name);
        if (!p || p->mem.kind != MEM_ARG || p->dtype != v->dtype || !ir_shape_eq(&p->shape, &v->shape))
            continue;
        if (inplace_safe(g, p, v))
            v->mem = (MemLoc){MEM_ARG, p->mem.arg, 0, 0};
    }

    for (int i = 0; i < nn; i++) {
        Node *n = g->nodes[i];
        if (n->op == OP_RESHAPE)
            n->mem = (MemLoc){MEM_ALIAS, -1, 0, 0};
        last_use[i] = i;
    }
    /* A buffer lives until its last reader, through aliases; values the entry copies out live to the end. */
    for (int i = 0; i < nn; i++) {
        Node *u = g->nodes[i];
        if (u->op == OP_RESHAPE)
            continue;
        for (int k = 0; k < u->ninputs; k++) {
            int owner = buffer_owner(u->inputs[k])->id;
            if (last_use[owner] < i)
                last_use[owner] = i;
        }
    }
    for (int i = 0; i < g->noutputs; i++)
        last_use[buffer_owner(g->outputs[i].value)->id] = nn;

    /* First fit in node order, one region at a time; a buffer written by node i must not meet the inputs
       of node i, so a slot is free only after its last use. */
    int64_t region_end[2] = {0, 0}; /* [0]: per-N region, bytes per sample; [1]: constant region */
    for (int i = 0; i < nn; i++) {
        Node *n = g->nodes[i];
        if (n->mem.kind != MEM_NONE)
            continue;
        int region = ir_shape_has_n(&n->shape) ? 0 : 1;
        int nlive = 0;
        for (int j = 0; j < i; j++) {
            Node *m = g->nodes[j];
            if (m->mem.kind == MEM_ARENA && last_use[j] >= i && (ir_shape_has_n(&m->shape) ? 0 : 1) == region)
                live[nlive++] = (Slot){region == 0 ? m->mem.offset_n : m->mem.offset_c, align_up(buffer_bytes(m))};
        }
        int64_t size = align_up(buffer_bytes(n));
        int64_t at = first_fit(live, nlive, size);
        /* at <= the region's end + 64 and size <= MEMPLAN_MAX_BYTES: the sum cannot overflow */
        if (at + size > MEMPLAN_MAX_BYTES) {
            diag_error(d, n->loc, "cannot plan memory for %%%d: the arena passes 2^56 bytes%s", i,
                       region == 0 ? " per sample" : "");
            return false;
        }
        n->mem = region == 0 ? (MemLoc){MEM_ARENA, -1, 0, at} : (MemLoc){MEM_ARENA, -1, at, 0};
        if (region_end[region] < at + size)
            region_end[region] = at + size;
    }
    for (int i = 0; i < nn; i++) {
        Node *n = g->nodes[i];
        if (n->mem.kind == MEM_ARENA && !ir_shape_has_n(&n->shape))
            n->mem.offset_n = region_end[0];
    }
    return true;
}

void pass_memplan_size(const Graph *g, int64_t *c, int64_t *per_n) {
    int64_t cc = 0, pn = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->mem.kind != MEM_ARENA)
            continue;
        int64_t size = align_up(buffer_bytes(n));
        if (ir_shape_has_n(&n->shape)) {
            if (pn < n->mem.offset_n + size)
                pn = n->mem.offset_n + size;
        } else if (cc < n->mem.offset_c + size) {
            cc = n->mem.offset_c + size;
        }
    }
    *c = cc;
    *per_n = pn;
}
