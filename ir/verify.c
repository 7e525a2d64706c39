/* verify.c: the invariants every pass must keep. Each failure names the node (%id and op) so that a broken
   pass can be found from the message alone; the first one is reported and stops the check. */
#include "ir.h"

bool ir_verify_groups(const Graph *g, Diag *d); /* groups.c */

#include <stdlib.h>
#include <string.h>

static bool is_named_leaf(Op op)
{
    return op == OP_INPUT || op == OP_PARAM || op == OP_STATE;
}

static bool owns(const Graph *g, const Node *n)
{
    return n && n->id >= 0 && n->id < g->nnodes && g->nodes[n->id] == n;
}

static bool verify_node(const Graph *g, const Node *n, int i, Diag *d)
{
    Loc none = {0};
    if (!n) {
        diag_error(d, none, "verify: graph %s: node slot %d is empty", g->name, i);
        return false;
    }
    const char *op = ir_op_name(n->op);
    if (n->id != i) {
        diag_error(d, n->loc, "verify: node at index %d (%s) has id %d", i, op, n->id);
        return false;
    }
    if ((unsigned)n->op >= OP__COUNT) {
        diag_error(d, n->loc, "verify: %%%d has an unknown op %d", i, (int)n->op);
        return false;
    }
    for (int j = 0; j < n->ninputs; j++) {
        const Node *x = n->inputs[j];
        if (!x || !owns(g, x)) {
            diag_error(d, n->loc, "verify: %%%d (%s): input %d is not a node of graph %s", i, op, j, g->name);
            return false;
        }
        if (x->id >= i) {
            diag_error(d, n->loc, "verify: %%%d (%s): input %%%d does not precede it", i, op, x->id);
            return false;
        }
    }
    char err[512], have[256], want[256];
    DType dt;
    Shape sh;
    if (!ir_infer(n->op, n->ninputs, n->inputs, &n->attr, &dt, &sh, err, sizeof err)) {
        diag_error(d, n->loc, "verify: %%%d: %s", i, err);
        return false;
    }
    if (dt != n->dtype || !ir_shape_eq(&sh, &n->shape)) {
        diag_error(d, n->loc, "verify: %%%d (%s) has type %s, its shape rule gives %s", i, op,
                   ir_type_str(n->dtype, &n->shape, have, sizeof have), ir_type_str(dt, &sh, want, sizeof want));
        return false;
    }
    return true;
}

static int by_name_then_id(const void *pa, const void *pb)
{
    const Node *a = *(const Node *const *)pa, *b = *(const Node *const *)pb;
    int c = strcmp(a->attr.name, b->attr.name);
    return c ? c : (a->id > b->id) - (a->id < b->id);
}

/* The named leaves sorted by name, then id, in g's arena. Graphs may hold thousands of parameters and the
   check runs after every pass: sorting keeps it n log n where comparing every pair was n^2. */
static const Node **sorted_leaves(const Graph *g, int *count)
{
    const Node **v = arena_alloc(g->arena, sizeof(Node *) * (size_t)g->nnodes);
    int k = 0;
    for (int i = 0; i < g->nnodes; i++)
        if (is_named_leaf(g->nodes[i]->op))
            v[k++] = g->nodes[i];
    qsort(v, (size_t)k, sizeof *v, by_name_then_id);
    *count = k;
    return v;
}

/* Leaf names must be unique: the runtime binds arguments by name. Reported as a scan in node order would
   find it: the earliest second use of a name, against that name's first node. */
static bool verify_leaf_names(const Node **leaves, int nleaves, Diag *d)
{
    const Node *first = NULL, *dup = NULL;
    for (int start = 0, i = 1; i <= nleaves; i++) {
        if (i < nleaves && strcmp(leaves[i]->attr.name, leaves[start]->attr.name) == 0)
            continue;
        /* leaves[start..i) share a name, in id order: the second one is that name's earliest repeat */
        if (i - start > 1 && (!dup || leaves[start + 1]->id < dup->id)) {
            first = leaves[start];
            dup = leaves[start + 1];
        }
        start = i;
    }
    if (dup) {
        diag_error(d, dup->loc, "verify: %%%d: %s \"%s\" has the name of %%%d", dup->id, ir_op_name(dup->op),
                   dup->attr.name, first->id);
        return false;
    }
    return true;
}

/* The PARAM or STATE named name (names are unique once verify_leaf_names passed), or NULL. */
static const Node *update_target(const Node **leaves, int nleaves, const char *name)
{
    int lo = 0, hi = nleaves;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(leaves[mid]->attr.name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < nleaves && strcmp(leaves[lo]->attr.name, name) == 0 && leaves[lo]->op != OP_INPUT)
        return leaves[lo];
    return NULL;
}

static int output_by_kind_then_name(const void *pa, const void *pb)
{
    const Output *a = *(const Output *const *)pa, *b = *(const Output *const *)pb;
    if (a->update != b->update)
        return a->update ? 1 : -1;
    int c = strcmp(a->name, b->name);
    return c ? c : (a > b) - (a < b);
}

static bool verify_outputs(const Graph *g, const Node **leaves, int nleaves, Diag *d)
{
    Loc none = {0};
    char have[256], want[256];
    for (int i = 0; i < g->noutputs; i++) {
        const Output *o = &g->outputs[i];
        if (!o->name || !owns(g, o->value)) {
            diag_error(d, none, "verify: graph %s: %s %d has no name or a value outside the graph", g->name,
                       o->update ? "update" : "output", i);
            return false;
        }
    }
    /* two outputs (or two updates) of one name: the later one in output order is reported */
    const Output **byname = arena_alloc(g->arena, sizeof(Output *) * (size_t)g->noutputs);
    for (int i = 0; i < g->noutputs; i++)
        byname[i] = &g->outputs[i];
    qsort(byname, (size_t)g->noutputs, sizeof *byname, output_by_kind_then_name);
    const Output *twice = NULL;
    for (int i = 1; i < g->noutputs; i++) {
        const Output *a = byname[i - 1], *b = byname[i];
        if (a->update == b->update && strcmp(a->name, b->name) == 0 && (!twice || b < twice))
            twice = b;
    }
    if (twice) {
        const char *kind = twice->update ? "update" : "output";
        diag_error(d, twice->value->loc, "verify: graph %s: two %ss named \"%s\"", g->name, kind, twice->name);
        return false;
    }
    for (int i = 0; i < g->noutputs; i++) {
        const Output *o = &g->outputs[i];
        if (!o->update)
            continue;
        const Node *t = update_target(leaves, nleaves, o->name);
        if (!t) {
            diag_error(d, o->value->loc, "verify: graph %s: update \"%s\" has no param or state of that name",
                       g->name, o->name);
            return false;
        }
        /* A frozen PARAM may be updated: buffers (BatchNorm's running stats) are frozen PARAMs that the train
           graph rewrites. That the optimizer never updates a frozen parameter is pass_optimizer's check. */
        if (t->dtype != o->value->dtype || !ir_shape_eq(&t->shape, &o->value->shape)) {
            diag_error(d, o->value->loc, "verify: graph %s: update \"%s\" is %s, the %s is %s", g->name, o->name,
                       ir_type_str(o->value->dtype, &o->value->shape, have, sizeof have), ir_op_name(t->op),
                       ir_type_str(t->dtype, &t->shape, want, sizeof want));
            return false;
        }
    }
    return true;
}

bool ir_verify(const Graph *g, Diag *d)
{
    for (int i = 0; i < g->nnodes; i++)
        if (!verify_node(g, g->nodes[i], i, d))
            return false;
    int nleaves;
    const Node **leaves = sorted_leaves(g, &nleaves);
    return verify_leaf_names(leaves, nleaves, d) && verify_outputs(g, leaves, nleaves, d) && ir_verify_groups(g, d);
}
