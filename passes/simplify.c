/* simplify.c: local rewrites that leave fewer nodes for the later passes: a transpose of the last two dims
   feeding a matmul becomes the matmul's transpose flag (x @ w.T is one BLAS call, not a copy and a call),
   a transpose of a matmul becomes the matmul with swapped operands, chains of transposes, reshapes, slices
   and pads collapse, elementwise ops read a broadcast's input directly, and identities (x*1, x+0, x-0,
   x/1, a reshape or broadcast to the same shape, a slice or pad that moves nothing, a concat of one tensor)
   disappear. Nodes are rewritten in place or replaced by earlier ones, so the order stays topological;
   what becomes unused is left for dce. */
#include "passes.h"

#include <assert.h>

/* perm swaps the last two dims and keeps the others */
static bool swaps_last_two(const Node *t) {
    int r = t->shape.rank;
    if (r < 2)
        return false;
    for (int i = 0; i < r - 2; i++)
        if (t->attr.perm[i] != i)
            return false;
    return t->attr.perm[r - 2] == r - 1 && t->attr.perm[r - 1] == r - 2;
}

static bool is_identity_perm(const Node *t) {
    for (int i = 0; i < t->shape.rank; i++)
        if (t->attr.perm[i] != i)
            return false;
    return true;
}

typedef struct Simp {
    Graph *g;
    int *uses; /* by id: how many inputs and outputs refer to the node, kept up to date by set_input */
} Simp;

/* A node's inputs are rewritten through a copy: the array may be shared with the node it was built from. */
static void set_input(Simp *s, Node *n, int i, Node *x) {
    if (n->inputs[i] == x)
        return;
    Node **in = arena_alloc(s->g->arena, (size_t)n->ninputs * sizeof(Node *));
    for (int j = 0; j < n->ninputs; j++)
        in[j] = n->inputs[j];
    s->uses[in[i]->id]--;
    s->uses[x->id]++;
    in[i] = x;
    n->inputs = in;
}

/* matmul with each operand that is a transpose of the last two dims folded into the flags */
static void fold_matmul_operands(Simp *s, Node *n) {
    for (int i = 0; i < 2; i++) {
        Node *t = n->inputs[i];
        if (t->op != OP_TRANSPOSE || !swaps_last_two(t))
            continue;
        set_input(s, n, i, t->inputs[0]);
        if (i == 0)
            n->attr.transpose_a = !n->attr.transpose_a;
        else
            n->attr.transpose_b = !n->attr.transpose_b;
    }
}

/* (A B)^T = B^T A^T: a transpose of a matmul used only there becomes the matmul with its operands swapped
   (the weight gradient of x @ w.T comes out of autodiff this way) */
static bool fold_transposed_matmul(Simp *s, Node *n) {
    Node *m = n->inputs[0];
    if (m->op != OP_MATMUL || s->uses[m->id] != 1 || !swaps_last_two(n))
        return false;
    Node **in = arena_alloc(s->g->arena, 2 * sizeof(Node *));
    in[0] = m->inputs[1];
    in[1] = m->inputs[0];
    s->uses[m->id]--;
    s->uses[in[0]->id]++;
    s->uses[in[1]->id]++;
    Attr a = {0};
    a.transpose_a = !m->attr.transpose_b;
    a.transpose_b = !m->attr.transpose_a;
    n->op = OP_MATMUL;
    n->ninputs = 2;
    n->inputs = in;
    n->attr = a;
    fold_matmul_operands(s, n);
    return true;
}

/* Elementwise ops broadcast their operands themselves, so an operand that is a broadcast whose input
   gives the same result shape reads its input directly (no materialized copy; autodiff makes these from
   the gradients of sums). */
static void fold_broadcast_operands(Simp *s, Node *n) {
    for (int i = 0; i < n->ninputs; i++) {
        Node *b = n->inputs[i];
        if (b->op != OP_BROADCAST)
            continue;
        Shape r = b->inputs[0]->shape, t;
        for (int j = 0; j < n->ninputs; j++) {
            if (j == i)
                continue;
            if (!ir_shape_broadcast(&r, &n->inputs[j]->shape, &t))
                LATHE_UNREACHABLE("simplify: the operands of an elementwise op do not broadcast");
            r = t;
        }
        if (ir_shape_eq(&r, &n->shape))
            set_input(s, n, i, b->inputs[0]);
    }
}

/* x op c is x when c is the op's identity and x already has the result's type */
static Node *identity_operand(const Node *n) {
    if (n->ninputs != 2)
        return NULL;
    Node *a = n->inputs[0], *b = n->inputs[1];
    double unit = n->op == OP_MUL || n->op == OP_DIV ? 1 : 0;
    bool commutes = n->op == OP_MUL || n->op == OP_ADD;
    if (ir_is_const(b, unit) && ir_shape_eq(&a->shape, &n->shape) && a->dtype == n->dtype)
        return a;
    if (commutes && ir_is_const(a, unit) && ir_shape_eq(&b->shape, &n->shape) && b->dtype == n->dtype)
        return b;
    return NULL;
}

/* A slice or pad that starts at 0 with step 1 in every dim and keeps the shape moves nothing. */
static bool is_identity_window(const Node *n) {
    const Node *x = n->inputs[0];
    if (!ir_shape_eq(&x->shape, &n->shape) || x->dtype != n->dtype)
        return false;
    for (int i = 0; i < n->shape.rank; i++)
        if (n->attr.start[i] != 0 || n->attr.step[i] != 1)
            return false;
    return true;
}

/* A slice of a slice is one slice: y[i] = m[s2 + i t2] = x[s1 + (s2 + i t2) t1]. A pad of a pad with the
   same value is one pad: y[s2 + (s1 + i t1) t2] = x[i], the value elsewhere. (Autodiff's concat and pad
   gradients make such chains.) */
static void compose_windows(Simp *s, Node *n) {
    Node *m = n->inputs[0];
    if (m->op != n->op || (n->op == OP_PAD && m->attr.value != n->attr.value))
        return;
    for (int i = 0; i < n->shape.rank; i++) {
        int64_t s1 = m->attr.start[i], t1 = m->attr.step[i], s2 = n->attr.start[i], t2 = n->attr.step[i];
        n->attr.start[i] = n->op == OP_SLICE ? s1 + s2 * t1 : s2 + s1 * t2;
        n->attr.step[i] = t1 * t2;
    }
    set_input(s, n, 0, m->inputs[0]);
}

/* Rewrites n in place; returns the earlier node that replaces it, or NULL when n stays. */
static Node *simplify_node(Simp *s, Node *n) {
    switch (n->op) {
    case OP_MATMUL:
        fold_matmul_operands(s, n);
        return NULL;
    case OP_TRANSPOSE: {
        if (fold_transposed_matmul(s, n))
            return NULL;
        Node *in = n->inputs[0];
        if (in->op == OP_TRANSPOSE) {
            /* y dim i = t dim p2[i] = x dim p1[p2[i]] */
            int perm[IR_MAX_RANK];
            for (int i = 0; i < n->shape.rank; i++)
                perm[i] = in->attr.perm[n->attr.perm[i]];
            for (int i = 0; i < n->shape.rank; i++)
                n->attr.perm[i] = perm[i];
            set_input(s, n, 0, in->inputs[0]);
        }
        return is_identity_perm(n) ? n->inputs[0] : NULL;
    }
    case OP_RESHAPE:
        if (n->inputs[0]->op == OP_RESHAPE)
            set_input(s, n, 0, n->inputs[0]->inputs[0]);
        /* fallthrough */
    case OP_BROADCAST:
        return ir_shape_eq(&n->inputs[0]->shape, &n->shape) ? n->inputs[0] : NULL;
    case OP_MUL: case OP_ADD: case OP_SUB: case OP_DIV:
        fold_broadcast_operands(s, n);
        return identity_operand(n);
    case OP_SLICE: case OP_PAD:
        compose_windows(s, n);
        return is_identity_window(n) ? n->inputs[0] : NULL;
    case OP_CONCAT:
        return n->ninputs == 1 ? n->inputs[0] : NULL;
    default:
        if (ir_op_kind(n->op) == K_BINARY || ir_op_kind(n->op) == K_COMPARE || n->op == OP_SELECT)
            fold_broadcast_operands(s, n);
        return NULL;
    }
}

bool pass_simplify(Graph *g, Diag *d) {
    Simp s = {g, arena_alloc(g->arena, (size_t)g->nnodes * sizeof(int) + 1)};
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i]->ninputs; j++)
            s.uses[g->nodes[i]->inputs[j]->id]++;
    for (int i = 0; i < g->noutputs; i++)
        s.uses[g->outputs[i].value->id]++;
    /* repl[id]: the node that stands for node id from now on (itself when it stays) */
    Node **repl = arena_alloc(g->arena, (size_t)g->nnodes * sizeof(Node *) + 1);
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        assert(n->id == i && "node ids are positions");
        for (int j = 0; j < n->ninputs; j++)
            set_input(&s, n, j, repl[n->inputs[j]->id]);
        Node *r = simplify_node(&s, n);
        repl[i] = r ? r : n;
    }
    for (int i = 0; i < g->noutputs; i++)
        g->outputs[i].value = repl[g->outputs[i].value->id];
    return true;
}
