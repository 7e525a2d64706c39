/* layout.c: no materialized transpose where a GEMM's transpose flag or a strided read serves. The rules
   and what each one serves:
     - a transpose of the last two dims feeding a matmul becomes the matmul's transpose flag: x @ w.T is
       one BLAS call reading w as stored, not a copy and a call (every Linear layer makes one);
     - a transpose of the last two dims of a matmul used only there becomes the matmul of the swapped
       operands, (A B)^T = B^T A^T: the weight gradient of x @ w.T comes out of autodiff this way, and the
       GEMM writes the transposed result directly;
     - a transpose of a transpose is one transpose (y dim i = x dim p1[p2[i]]), none when that is the
       identity: one strided read instead of two copies;
     - a transpose that moves only dims of size 1 keeps every element where it was: it becomes a reshape,
       a view of its input with no kernel at all;
     - any other transpose stays: where only elementwise ops read it, the fuse pass puts it in their
       group as a strided read of its input (a TRANSPOSE member whose input is outside the group), so it
       costs no buffer and no copy there either.
   Nodes are rewritten in place or replaced by earlier ones, so the order stays topological; what becomes
   unused is left for dce. */
#include "passes.h"

#include <assert.h>

typedef struct Layout {
    Graph *g;
    int *uses; /* by id: how many inputs and outputs refer to the node, kept up to date by set_input */
} Layout;

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

/* A node's inputs are rewritten through a copy: the array may be shared with the node it was built from. */
static void set_input(Layout *l, Node *n, int i, Node *x) {
    if (n->inputs[i] == x)
        return;
    Node **in = arena_alloc(l->g->arena, (size_t)n->ninputs * sizeof(Node *));
    for (int j = 0; j < n->ninputs; j++)
        in[j] = n->inputs[j];
    l->uses[in[i]->id]--;
    l->uses[x->id]++;
    in[i] = x;
    n->inputs = in;
}

/* matmul with each operand that is a transpose of the last two dims folded into the flags */
static void fold_matmul_operands(Layout *l, Node *n) {
    for (int i = 0; i < 2; i++) {
        Node *t = n->inputs[i];
        if (t->op != OP_TRANSPOSE || !swaps_last_two(t))
            continue;
        set_input(l, n, i, t->inputs[0]);
        if (i == 0)
            n->attr.transpose_a = !n->attr.transpose_a;
        else
            n->attr.transpose_b = !n->attr.transpose_b;
    }
}

/* (A B)^T = B^T A^T: a transpose of a matmul used only there becomes the matmul with its operands swapped */
static bool fold_transposed_matmul(Layout *l, Node *n) {
    Node *m = n->inputs[0];
    if (m->op != OP_MATMUL || l->uses[m->id] != 1 || !swaps_last_two(n))
        return false;
    Node **in = arena_alloc(l->g->arena, 2 * sizeof(Node *));
    in[0] = m->inputs[1];
    in[1] = m->inputs[0];
    l->uses[m->id]--;
    l->uses[in[0]->id]++;
    l->uses[in[1]->id]++;
    Attr a = {0};
    a.transpose_a = !m->attr.transpose_b;
    a.transpose_b = !m->attr.transpose_a;
    n->op = OP_MATMUL;
    n->ninputs = 2;
    n->inputs = in;
    n->attr = a;
    fold_matmul_operands(l, n);
    return true;
}

static void compose_transposes(Layout *l, Node *n) {
    Node *in = n->inputs[0];
    if (in->op != OP_TRANSPOSE)
        return;
    int perm[IR_MAX_RANK];
    for (int i = 0; i < n->shape.rank; i++)
        perm[i] = in->attr.perm[n->attr.perm[i]];
    for (int i = 0; i < n->shape.rank; i++)
        n->attr.perm[i] = perm[i];
    set_input(l, n, 0, in->inputs[0]);
}

/* Whether the dims other than those of size 1 keep their order: then row-major order is unchanged. The
   batch dim N counts as not 1 (it may be anything at run time). */
static bool moves_only_unit_dims(const Node *t) {
    const Shape *x = &t->inputs[0]->shape;
    int last = -1;
    for (int i = 0; i < t->shape.rank; i++) {
        int p = t->attr.perm[i];
        if (x->dim[p] == 1)
            continue;
        if (p < last)
            return false;
        last = p;
    }
    return true;
}

/* The transpose n becomes a reshape to its own shape, in place; a reshape of a reshape reads the first's
   input. */
static void make_reshape(Layout *l, Node *n) {
    Attr a = {0};
    a.shape = n->shape;
    n->op = OP_RESHAPE;
    n->attr = a;
    if (n->inputs[0]->op == OP_RESHAPE)
        set_input(l, n, 0, n->inputs[0]->inputs[0]);
}

/* Rewrites n in place; returns the earlier node that replaces it, or NULL when n stays. */
static Node *layout_node(Layout *l, Node *n) {
    if (n->group >= 0)
        return NULL; /* fused already (text IR after fuse): the group's kernel has settled its reads */
    switch (n->op) {
    case OP_MATMUL:
        fold_matmul_operands(l, n);
        return NULL;
    case OP_TRANSPOSE:
        compose_transposes(l, n);
        if (is_identity_perm(n))
            return n->inputs[0];
        if (fold_transposed_matmul(l, n))
            return NULL;
        if (moves_only_unit_dims(n)) {
            make_reshape(l, n);
            return ir_shape_eq(&n->inputs[0]->shape, &n->shape) ? n->inputs[0] : NULL;
        }
        return NULL;
    default:
        return NULL;
    }
}

bool pass_layout(Graph *g, Diag *d) {
    Layout l = {g, arena_alloc(g->arena, (size_t)g->nnodes * sizeof(int) + 1)};
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i]->ninputs; j++)
            l.uses[g->nodes[i]->inputs[j]->id]++;
    for (int i = 0; i < g->noutputs; i++)
        l.uses[g->outputs[i].value->id]++;
    /* repl[id]: the node that stands for node id from now on (itself when it stays) */
    Node **repl = arena_alloc(g->arena, (size_t)g->nnodes * sizeof(Node *) + 1);
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        assert(n->id == i && "node ids are positions");
        for (int j = 0; j < n->ninputs; j++)
            set_input(&l, n, j, repl[n->inputs[j]->id]);
        Node *r = layout_node(&l, n);
        repl[i] = r ? r : n;
    }
    for (int i = 0; i < g->noutputs; i++)
        g->outputs[i].value = repl[g->outputs[i].value->id];
    return true;
}
