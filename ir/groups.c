/* groups.c: the rules of fusion groups (ir.h): what kind a group is, which members need a buffer, and the
   verifier's check of both. pass_fuse makes groups; memplan and the code generators read them through
   these functions only. */
#include "ir.h"

#include <stdlib.h>

static bool is_elementwise(Op op)
{
    OpKind k = ir_op_kind(op);
    return k == K_UNARY || k == K_BINARY || k == K_COMPARE || op == OP_SELECT || op == OP_CAST;
}

/* What a non-anchor, non-root member may be: computed at the index of the domain it is evaluated over
   (a broadcast or transpose reads its input, which is outside the group, with strides). */
static bool is_pointwise_member(const Node *n)
{
    return is_elementwise(n->op) || n->op == OP_BROADCAST || n->op == OP_TRANSPOSE || n->op == OP_CONST;
}

bool ir_op_is_anchor(Op op)
{
    return op == OP_MATMUL || op == OP_CONV2D || op == OP_CONV2D_BWD_INPUT || op == OP_CONV2D_BWD_WEIGHT;
}

static bool is_reduce_root(const Node *n)
{
    return ir_op_kind(n->op) == K_REDUCE || n->op == OP_ARGMAX || n->op == OP_ARGMIN;
}

static bool in_group(const Node *n, int root)
{
    return n->group >= 0 && n->group == root;
}

const Node *ir_group_anchor(const Graph *g, const Node *root)
{
    if (root->group != root->id)
        return NULL;
    for (int i = root->id; i >= 0; i--) {
        const Node *m = g->nodes[i];
        if (in_group(m, root->id) && ir_op_is_anchor(m->op))
            return m;
    }
    return NULL;
}

GroupKind ir_group_kind(const Graph *g, const Node *root)
{
    if (root->group < 0 || root->group != root->id)
        return GROUP_NONE;
    if (ir_group_anchor(g, root))
        return GROUP_EPILOGUE;
    return is_reduce_root(root) ? GROUP_REDUCE : GROUP_ELEMENTWISE;
}

bool ir_group_materialized(const Graph *g, const Node *n)
{
    if (n->group < 0 || n->group == n->id || ir_op_is_anchor(n->op))
        return true;
    for (int i = n->id + 1; i < g->nnodes; i++) {
        const Node *u = g->nodes[i];
        if (in_group(u, n->group))
            continue;
        for (int k = 0; k < u->ninputs; k++)
            if (u->inputs[k] == n)
                return true;
    }
    for (int i = 0; i < g->noutputs; i++)
        if (g->outputs[i].value == n)
            return true;
    return false;
}

/* The verifier's part (ir_verify calls it after every node passed its own checks). */
bool ir_verify_groups(const Graph *g, Diag *d)
{
    char have[256], want[256];
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->group < 0)
            continue;
        if (n->group < i || n->group >= g->nnodes || g->nodes[n->group]->group != n->group) {
            diag_error(d, n->loc, "verify: %%%d (%s) is in group %%%d, which is not a group root after it", i,
                       ir_op_name(n->op), n->group);
            return false;
        }
        if (!ir_is_kernel(n) && n->op != OP_CONST) {
            diag_error(d, n->loc, "verify: %%%d (%s) cannot be a member of a fusion group", i, ir_op_name(n->op));
            return false;
        }
    }
    for (int r = 0; r < g->nnodes; r++) {
        const Node *root = g->nodes[r];
        if (root->group != r)
            continue;
        int anchors = 0;
        for (int i = 0; i <= r; i++)
            anchors += in_group(g->nodes[i], r) && ir_op_is_anchor(g->nodes[i]->op);
        if (anchors > 1) {
            diag_error(d, root->loc, "verify: group %%%d has %d anchors (matmul, conv2d); an epilogue group has one", r, anchors);
            return false;
        }
        const Node *anchor = ir_group_anchor(g, root);
        const Shape *domain = anchor ? &anchor->shape
                              : is_reduce_root(root) ? &root->inputs[0]->shape : &root->shape;
        if (!anchor && !is_reduce_root(root) && !is_pointwise_member(root)) {
            diag_error(d, root->loc, "verify: group %%%d: a %s cannot be the root of a fusion group", r,
                       ir_op_name(root->op));
            return false;
        }
        /* a GEMM or a convolution reads its inputs whole before its epilogue runs */
        for (int k = 0; anchor && k < anchor->ninputs; k++)
            if (in_group(anchor->inputs[k], r)) {
                diag_error(d, anchor->loc, "verify: %s %%%d in group %%%d reads a member of its group",
                           ir_op_name(anchor->op), anchor->id, r);
                return false;
            }
        for (int i = 0; i <= r; i++) {
            const Node *m = g->nodes[i];
            if (!in_group(m, r) || m == anchor || (m == root && !anchor && is_reduce_root(root)))
                continue;
            if (!is_pointwise_member(m)) {
                diag_error(d, m->loc, "verify: %%%d (%s) in group %%%d is not elementwise", i, ir_op_name(m->op), r);
                return false;
            }
            if (!ir_shape_eq(&m->shape, domain)) {
                diag_error(d, m->loc, "verify: %%%d in group %%%d has shape %s, the group's domain is %s", i, r,
                           ir_shape_str(&m->shape, have, sizeof have), ir_shape_str(domain, want, sizeof want));
                return false;
            }
            if ((m->op == OP_BROADCAST || m->op == OP_TRANSPOSE) && in_group(m->inputs[0], r)) {
                diag_error(d, m->loc, "verify: %s %%%d in group %%%d reads a member of its group", ir_op_name(m->op),
                           i, r);
                return false;
            }
        }
    }
    for (int i = 0; i < g->nnodes; i++) {
        const Node *u = g->nodes[i];
        for (int k = 0; k < u->ninputs; k++) {
            const Node *x = u->inputs[k];
            if (x->group >= 0 && x->group != u->group && i < x->group) {
                diag_error(d, u->loc, "verify: %%%d (%s) reads %%%d of group %%%d before the group runs", i,
                           ir_op_name(u->op), x->id, x->group);
                return false;
            }
        }
    }
    return true;
}
