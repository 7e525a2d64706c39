/* verify.c: the invariants every pass must keep. Each failure names the node (%id and op) so that a broken
   pass can be found from the message alone; the first one is reported and stops the check. */
#include "ir.h"

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

/* Leaf names must be unique: the runtime binds arguments by name. Graphs are small enough for n^2. */
static bool verify_leaf_names(const Graph *g, Diag *d)
{
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (!is_named_leaf(n->op))
            continue;
        for (int j = 0; j < i; j++) {
            const Node *m = g->nodes[j];
            if (is_named_leaf(m->op) && strcmp(m->attr.name, n->attr.name) == 0) {
                diag_error(d, n->loc, "verify: %%%d: %s \"%s\" has the name of %%%d", i, ir_op_name(n->op),
                           n->attr.name, j);
                return false;
            }
        }
    }
    return true;
}

static bool verify_outputs(const Graph *g, Diag *d)
{
    Loc none = {0};
    char have[256], want[256];
    for (int i = 0; i < g->noutputs; i++) {
        const Output *o = &g->outputs[i];
        const char *kind = o->update ? "update" : "output";
        if (!o->name || !owns(g, o->value)) {
            diag_error(d, none, "verify: graph %s: %s %d has no name or a value outside the graph", g->name,
                       kind, i);
            return false;
        }
        for (int j = 0; j < i; j++) {
            if (g->outputs[j].update == o->update && strcmp(g->outputs[j].name, o->name) == 0) {
                diag_error(d, o->value->loc, "verify: graph %s: two %ss named \"%s\"", g->name, kind, o->name);
                return false;
            }
        }
        if (!o->update)
            continue;
        const Node *t = ir_find_leaf(g, OP_PARAM, o->name);
        if (!t)
            t = ir_find_leaf(g, OP_STATE, o->name);
        if (!t) {
            diag_error(d, o->value->loc, "verify: graph %s: update \"%s\" has no param or state of that name",
                       g->name, o->name);
            return false;
        }
        if (t->op == OP_PARAM && t->attr.frozen) {
            diag_error(d, o->value->loc, "verify: graph %s: update of the frozen param \"%s\"", g->name, o->name);
            return false;
        }
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
    return verify_leaf_names(g, d) && verify_outputs(g, d);
}
