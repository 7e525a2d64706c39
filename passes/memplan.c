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

   Fusion groups (ir.h): a group is one kernel that runs at its root's position. It reads every external
   input of every member there and writes every materialized member there, so liveness counts positions of
   kernels: a node's buffer is written at its kernel's position and lives until the position of the last
   kernel outside its group that reads it. Members that no one outside reads are MEM_FUSED: no bytes. Every
   buffer a kernel writes is allocated clear of everything live at its position, its own inputs included
   (the kernel reads inputs while it writes outputs) and the other buffers it writes.

   Arguments: INPUT, PARAM and STATE nodes are their own args. A plain output's value is written straight
   into its output arg when a kernel computes it and nothing else outputs it; otherwise the entry copies it
   at the end. An update output's value is computed in place into its PARAM or STATE when that is safe (an
   elementwise kernel, and every other reader of the parameter, through reshapes too, comes before it or
   is a member of its group that reads the parameter at the index the group writes);
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

/* The position where n's kernel runs: its group's root, or n itself. */
static int kernel_at(const Node *n) {
    return n->group >= 0 ? n->group : n->id;
}

static bool same_group(const Node *a, const Node *b) {
    return a->group >= 0 && a->group == b->group;
}

/* Updating param in place by v (elementwise, written by its kernel at kernel_at(v)) is safe when v reads
   param (if at all) at the very index it writes, not through a reshape that broadcasts; when every other
   reader of the param's buffer runs before v's kernel or is an elementwise member of v's group reading it
   at that same index (the group's loop nest reads it there before it writes v there); and when no output
   reads the old value at the end. An anchor of v's group reading the param is a reader of every index. */
static bool inplace_safe(const Graph *g, const Node *param, const Node *v) {
    for (int i = 0; i < g->nnodes; i++) {
        const Node *u = g->nodes[i];
        if (u->op == OP_RESHAPE)
            continue;
        for (int k = 0; k < u->ninputs; k++) {
            if (buffer_owner(u->inputs[k]) != param)
                continue;
            bool at_index = ir_shape_eq(&u->inputs[k]->shape, &v->shape);
            if (u == v || (same_group(u, v) && is_elementwise(u))) {
                if (!at_index)
                    return false;
            } else if (same_group(u, v) || kernel_at(u) >= kernel_at(v)) {
                return false;
            }
        }
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

/* Whether n's value needs a buffer (ir_group_materialized, for all nodes at once): not in a group, a root
   or an anchor, or read by a node outside its group or by an output. */
static bool *materialized(const Graph *g) {
    bool *m = arena_alloc(g->arena, (size_t)g->nnodes + 1);
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        m[i] = m[i] || n->group < 0 || n->group == i || ir_op_is_anchor(n->op);
        for (int k = 0; k < n->ninputs; k++)
            if (!same_group(n, n->inputs[k]))
                m[n->inputs[k]->id] = true;
    }
    for (int i = 0; i < g->noutputs; i++)
        m[g->outputs[i].value->id] = true;
    return m;
}

/* written[i]: the position of node i's kernel; last[i]: the last position that reads its buffer (through
   aliases; g->nnodes when an output is copied out or returned at the end). A reader in the buffer's own
   group reads the value inside the kernel, not the buffer. */
static void lifetimes(const Graph *g, int *written, int *last) {
    int nn = g->nnodes;
    for (int i = 0; i < nn; i++)
        last[i] = written[i] = kernel_at(g->nodes[i]);
    for (int i = 0; i < nn; i++) {
        const Node *u = g->nodes[i];
        if (u->op == OP_RESHAPE)
            continue;
        for (int k = 0; k < u->ninputs; k++) {
            if (same_group(u, u->inputs[k]))
                continue;
            int owner = buffer_owner(u->inputs[k])->id;
            if (last[owner] < kernel_at(u))
                last[owner] = kernel_at(u);
        }
    }
    for (int i = 0; i < g->noutputs; i++)
        last[buffer_owner(g->outputs[i].value)->id] = nn;
}

void pass_memplan_lifetimes(const Graph *g, int *written, int *last_read) {
    lifetimes(g, written, last_read);
}

int64_t pass_memplan_bytes(const Node *n) {
    return buffer_bytes(n);
}

static int region_of(const Node *n) {
    return ir_shape_has_n(&n->shape) ? 0 : 1;
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
    int *written = arena_alloc(g->arena, sizeof *written * (size_t)nn);
    int *last_use = arena_alloc(g->arena, sizeof *last_use * (size_t)nn);
    Slot *live = arena_alloc(g->arena, sizeof *live * (size_t)nn);
    int *allocated = arena_alloc(g->arena, sizeof *allocated * (size_t)nn);
    int nallocated = 0;
    bool *needs_buffer = materialized(g);
    ir_graph_args(g, args);

    for (int i = 0; i < nn; i++)
        if (!needs_buffer[i])
            g->nodes[i]->mem = (MemLoc){MEM_FUSED, -1, 0, 0};

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

    for (int i = 0; i < nn; i++)
        if (g->nodes[i]->op == OP_RESHAPE)
            g->nodes[i]->mem = (MemLoc){MEM_ALIAS, -1, 0, 0};
    lifetimes(g, written, last_use);

    /* The members of each group, listed at its root: a kernel writes all of its buffers at once. */
    int *first = arena_alloc(g->arena, sizeof *first * (size_t)nn);
    int *next = arena_alloc(g->arena, sizeof *next * (size_t)nn);
    for (int i = 0; i < nn; i++)
        first[i] = next[i] = -1;
    for (int i = nn - 1; i >= 0; i--) {
        int r = g->nodes[i]->group;
        if (r >= 0 && r != i) {
            next[i] = first[r];
            first[r] = i;
        }
    }

    /* First fit in kernel order, one region at a time: a buffer must not meet any buffer live at its
       kernel's position (last use at or after it), which holds the kernel's inputs and the buffers it
       wrote before this one. */
    int64_t region_end[2] = {0, 0}; /* [0]: per-N region, bytes per sample; [1]: constant region */
    for (int i = 0; i < nn; i++) {
        if (g->nodes[i]->group >= 0 && g->nodes[i]->group != i)
            continue; /* planned with its root */
        for (int m = first[i];; m = next[m]) {
            Node *n = g->nodes[m >= 0 ? m : i];
            if (n->mem.kind == MEM_NONE) {
                int region = region_of(n), nlive = 0;
                for (int a = 0; a < nallocated; a++) {
                    Node *o = g->nodes[allocated[a]];
                    if (last_use[o->id] >= i && region_of(o) == region)
                        live[nlive++] = (Slot){region == 0 ? o->mem.offset_n : o->mem.offset_c,
                                               align_up(buffer_bytes(o))};
                }
                int64_t size = align_up(buffer_bytes(n));
                int64_t at = first_fit(live, nlive, size);
                /* at <= the region's end + 64 and size <= MEMPLAN_MAX_BYTES: the sum cannot overflow */
                if (at + size > MEMPLAN_MAX_BYTES) {
                    diag_error(d, n->loc, "cannot plan memory for %%%d: the arena passes 2^56 bytes%s", n->id,
                               region == 0 ? " per sample" : "");
                    return false;
                }
                n->mem = region == 0 ? (MemLoc){MEM_ARENA, -1, 0, at} : (MemLoc){MEM_ARENA, -1, at, 0};
                allocated[nallocated++] = n->id;
                if (region_end[region] < at + size)
                    region_end[region] = at + size;
            }
            if (m < 0)
                break;
        }
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

void pass_memplan_sizes(const Graph *g, MemSizes *s) {
    *s = (MemSizes){0};
    pass_memplan_size(g, &s->arena_c, &s->arena_n);
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        int64_t bytes = buffer_bytes(n); /* each below 2^56; a graph's sum stays far from 2^63 */
        if (n->op == OP_PARAM)
            s->params += bytes;
        else if (n->op == OP_STATE)
            s->state += bytes;
        else if (n->op == OP_INPUT && ir_shape_has_n(&n->shape))
            s->inputs_n += bytes;
        else if (n->op == OP_INPUT)
            s->inputs_c += bytes;
    }
}

void pass_memplan_print(FILE *out, const Graph *g) {
    int nn = g->nnodes;
    int *written = malloc(sizeof(int) * (size_t)(nn + 1)), *last = malloc(sizeof(int) * (size_t)(nn + 1));
    if (!written || !last)
        LATHE_UNREACHABLE("out of memory");
    lifetimes(g, written, last);
    int64_t c, per_n;
    pass_memplan_size(g, &c, &per_n);
    fprintf(out, "# plan of graph %s: arena %lld + %lld * N bytes\n", g->name ? g->name : "_", (long long)c,
            (long long)per_n);
    for (int i = 0; i < nn; i++) {
        const Node *n = g->nodes[i];
        const MemLoc *m = &n->mem;
        fprintf(out, "#   %%%d %s: ", i, ir_op_name(n->op));
        switch (m->kind) {
        case MEM_NONE: fputs("none\n", out); continue;
        case MEM_ARG: fprintf(out, "arg %d", m->arg); break;
        case MEM_ALIAS: fprintf(out, "alias of %%%d", buffer_owner(n)->id); break;
        case MEM_FUSED: fputs("fused\n", out); continue;
        case MEM_ARENA:
            fprintf(out, "arena %lld + %lld * N, %lld bytes%s", (long long)m->offset_c, (long long)m->offset_n,
                    (long long)buffer_bytes(n), ir_shape_has_n(&n->shape) ? " per sample" : "");
            break;
        }
        if (ir_is_kernel(n) || m->kind == MEM_ARENA) {
            if (last[i] >= nn)
                fprintf(out, ", live %d..end", written[i]);
            else
                fprintf(out, ", live %d..%d", written[i], last[i]);
        }
        fputc('\n', out);
    }
    free(written);
    free(last);
}
