/* fuse.c: fusion groups (ir.h "fusion groups"), greedily, in the spirit of TVM's operator fusion. Two sweeps:
   first every matmul or convolution grows an epilogue forward over the pointwise work on its result (bias,
   activation, residual, the backward mask, the optimizer update); then, from the last node back, every
   reduction and every pointwise node not yet grouped pulls in the pointwise producers of its domain. Then
   the nodes are scheduled again with each group in one piece (see "the schedule"), and since that order can
   let more fuse, the whole repeats while it gains.

   The one rule that keeps this sound: in the order a round starts from, every reader outside a group of one
   of its members comes after the group's root. Moving every member down to just before its root then keeps
   a topological order (an edge x -> u between two groups G and H has u after root(G) and root(H) >= u), so
   no fusion can create a cycle, and a fusion that would break the rule is declined. */
#include "passes.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* Epilogue groups stay small: what one GEMM's output tile feeds while it is still in cache. Other groups
   are bounded only so that one kernel never grows without limit. */
#define FUSE_MAX_EPILOGUE 32
#define FUSE_MAX_GROUP 64

/* The readers of every node, one entry per input edge, in increasing id (CSR). */
typedef struct Readers {
    int *start; /* readers of node i: at[start[i] .. start[i + 1]) */
    int *at;
} Readers;

typedef struct Fuse {
    Graph *g;
    Readers r;
    int *group;   /* the root of each node's group, or -1 (written to Node.group at the end) */
    int *stamp;   /* per-group scratch: stamp[i] == cur when node i was seen by the group being built */
    int *inside;  /* with stamp: reader edges of node i that come from members of the group being built */
    bool *strided; /* with stamp: a member that reads_whole reads node i (which must stay outside) */
    int cur;
    int *members; /* the group being built */
    int nmembers;
    int *heap;    /* candidates of the group being built */
    int nheap;
} Fuse;

/* ---------------------------------------------------------------- what may join */

static bool is_elementwise(Op op) {
    OpKind k = ir_op_kind(op);
    return k == K_UNARY || k == K_BINARY || k == K_COMPARE || op == OP_SELECT;
}

static bool is_strided(Op op) {
    return op == OP_BROADCAST || op == OP_TRANSPOSE;
}

/* A node a loop nest computes at each index of its shape: elementwise work, or a strided read of a value
   outside the group. (Constants are left to their readers, which read them broadcast.) */
static bool is_pointwise(const Node *n) {
    return is_elementwise(n->op) || is_strided(n->op);
}

static bool is_reduce(const Node *n) {
    return ir_op_kind(n->op) == K_REDUCE || n->op == OP_ARGMAX || n->op == OP_ARGMIN;
}

static void build_readers(Fuse *f) {
    Graph *g = f->g;
    int nn = g->nnodes, edges = 0;
    f->r.start = arena_alloc(g->arena, sizeof(int) * (size_t)(nn + 1));
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->nodes[i]->ninputs; k++) {
            f->r.start[g->nodes[i]->inputs[k]->id + 1]++;
            edges++;
        }
    for (int i = 0; i < nn; i++)
        f->r.start[i + 1] += f->r.start[i];
    f->r.at = arena_alloc(g->arena, sizeof(int) * (size_t)(edges + 1));
    int *fill = arena_alloc(g->arena, sizeof(int) * (size_t)(nn + 1));
    memcpy(fill, f->r.start, sizeof(int) * (size_t)nn);
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->nodes[i]->ninputs; k++)
            f->r.at[fill[g->nodes[i]->inputs[k]->id]++] = i;
}

/* How many reader edges of x come from nodes with id <= root (the list is sorted: a binary search). */
static int readers_upto(const Fuse *f, int x, int root) {
    int lo = f->r.start[x], hi = f->r.start[x + 1];
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (f->r.at[mid] <= root)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo - f->r.start[x];
}

/* ---------------------------------------------------------------- the group being built */

static void begin_group(Fuse *f) {
    f->cur++;
    f->nmembers = 0;
    f->nheap = 0;
}

static bool seen(const Fuse *f, int i) {
    return f->stamp[i] == f->cur;
}

static void touch(Fuse *f, int i) {
    if (f->stamp[i] != f->cur) {
        f->stamp[i] = f->cur;
        f->inside[i] = 0;
        f->strided[i] = false;
    }
}

/* Whether member n reads its inputs at other indices than the one it computes: a strided read, or an
   anchor (a GEMM or a convolution reads its inputs whole before its epilogue runs). Its inputs stay out. */
static bool reads_whole(const Node *n) {
    return is_strided(n->op) || ir_op_is_anchor(n->op);
}

/* -1 in group[] means free; -2 marks a member of the group being built (resolved by commit_group). */
#define BUILDING (-2)

static void add_member(Fuse *f, int i) {
    Node *n = f->g->nodes[i];
    f->group[i] = BUILDING;
    f->members[f->nmembers++] = i;
    for (int k = 0; k < n->ninputs; k++) {
        int x = n->inputs[k]->id;
        touch(f, x);
        f->inside[x]++;
        if (reads_whole(n))
            f->strided[x] = true;
    }
}

/* Undoes the members added after the first keep ones (add_member in reverse). */
static void drop_members(Fuse *f, int keep) {
    while (f->nmembers > keep) {
        int i = f->members[--f->nmembers];
        Node *n = f->g->nodes[i];
        f->group[i] = -1;
        for (int k = 0; k < n->ninputs; k++)
            f->inside[n->inputs[k]->id]--;
        /* the marks of reads_whole are not counted; recompute them from the members that stay */
        if (reads_whole(n)) {
            int x = n->inputs[0]->id;
            f->strided[x] = false;
            for (int m = 0; m < f->nmembers; m++) {
                const Node *o = f->g->nodes[f->members[m]];
                for (int k = 0; k < o->ninputs; k++)
                    if (reads_whole(o) && o->inputs[k]->id == x)
                        f->strided[x] = true;
            }
        }
    }
}

static int commit_group(Fuse *f) {
    int root = -1;
    for (int m = 0; m < f->nmembers; m++)
        if (root < f->members[m])
            root = f->members[m];
    for (int m = 0; m < f->nmembers; m++)
        f->group[f->members[m]] = f->nmembers > 1 ? root : -1;
    return root;
}

/* A binary heap of node ids; max_first picks the order. */
static bool heap_before(int a, int b, bool max_first) {
    return max_first ? a > b : a < b;
}

static void heap_push(Fuse *f, int v, bool max_first) {
    int i = f->nheap++;
    f->heap[i] = v;
    while (i > 0 && heap_before(f->heap[i], f->heap[(i - 1) / 2], max_first)) {
        int p = (i - 1) / 2, t = f->heap[p];
        f->heap[p] = f->heap[i];
        f->heap[i] = t;
        i = p;
    }
}

static int heap_pop(Fuse *f, bool max_first) {
    int top = f->heap[0], i = 0;
    f->heap[0] = f->heap[--f->nheap];
    for (;;) {
        int l = 2 * i + 1, r = l + 1, best = i;
        if (l < f->nheap && heap_before(f->heap[l], f->heap[best], max_first))
            best = l;
        if (r < f->nheap && heap_before(f->heap[r], f->heap[best], max_first))
            best = r;
        if (best == i)
            return top;
        int t = f->heap[best];
        f->heap[best] = f->heap[i];
        f->heap[i] = t;
        i = best;
    }
}

/* Whether node x, free, may be a pointwise member of a group over domain: a kernel of the domain's shape
   whose input, when it is a strided read, is not a member. */
static bool may_join(const Fuse *f, const Node *x, const Shape *domain) {
    if (f->group[x->id] != -1 || !ir_is_kernel(x) || !is_pointwise(x) || !ir_shape_eq(&x->shape, domain))
        return false;
    if (seen(f, x->id) && f->strided[x->id])
        return false; /* a strided member or the anchor reads x: x must stay outside */
    return !(is_strided(x->op) && f->group[x->inputs[0]->id] == BUILDING);
}

/* The rule of the file's comment for the group being built: every reader of a member that is not a member
   comes after root. Groups of epilogues are small, so this looks at every reader. */
static bool readers_after(const Fuse *f, int root) {
    for (int m = 0; m < f->nmembers; m++) {
        int x = f->members[m];
        for (int e = f->r.start[x]; e < f->r.start[x + 1]; e++) {
            int u = f->r.at[e];
            if (u <= root && f->group[u] != BUILDING)
                return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------- epilogues */

/* Grows the epilogue of anchor a forward: each pointwise reader of a member, of the anchor's shape, joins
   with those of its other inputs that are free pointwise nodes of the domain read by nothing that runs
   before the new root (the relu mask beside the gradient it selects, a momentum buffer's decay). */
static void grow_epilogue(Fuse *f, int a) {
    Graph *g = f->g;
    const Shape *domain = &g->nodes[a]->shape;
    begin_group(f);
    add_member(f, a);
    for (int e = f->r.start[a]; e < f->r.start[a + 1]; e++)
        heap_push(f, f->r.at[e], false);
    int root = a;
    while (f->nheap > 0 && f->nmembers < FUSE_MAX_EPILOGUE) {
        int u = heap_pop(f, false);
        if (f->group[u] == BUILDING || !may_join(f, g->nodes[u], domain) || is_strided(g->nodes[u]->op))
            continue;
        int keep = f->nmembers, new_root = u > root ? u : root;
        add_member(f, u);
        if (!readers_after(f, new_root)) {
            drop_members(f, keep);
            continue;
        }
        Node *un = g->nodes[u];
        for (int k = 0; k < un->ninputs && f->nmembers < FUSE_MAX_EPILOGUE; k++) {
            Node *y = un->inputs[k];
            if (!may_join(f, y, domain))
                continue;
            add_member(f, y->id);
            if (!readers_after(f, new_root))
                drop_members(f, f->nmembers - 1);
        }
        root = new_root;
        for (int m = keep; m < f->nmembers; m++) {
            int x = f->members[m];
            for (int e = f->r.start[x]; e < f->r.start[x + 1]; e++)
                if (f->group[f->r.at[e]] != BUILDING)
                    heap_push(f, f->r.at[e], false);
        }
    }
    commit_group(f);
}

/* ---------------------------------------------------------------- reductions and elementwise chains */

/* Pulls into the group rooted at r the pointwise producers of its domain, latest first, so that every
   reader of a candidate that could join has been looked at before it: a candidate joins when every reader
   of it up to r is a member already. */
static void grow_backward(Fuse *f, int r) {
    Graph *g = f->g;
    Node *root = g->nodes[r];
    const Shape *domain = is_reduce(root) ? &root->inputs[0]->shape : &root->shape;
    begin_group(f);
    add_member(f, r);
    if (!is_strided(root->op))
        for (int k = 0; k < root->ninputs; k++)
            heap_push(f, root->inputs[k]->id, true);
    while (f->nheap > 0 && f->nmembers < FUSE_MAX_GROUP) {
        int x = heap_pop(f, true);
        Node *xn = g->nodes[x];
        if (f->group[x] == BUILDING || !may_join(f, xn, domain) || f->inside[x] != readers_upto(f, x, r))
            continue;
        add_member(f, x);
        if (!is_strided(xn->op))
            for (int k = 0; k < xn->ninputs; k++)
                if (f->group[xn->inputs[k]->id] == -1)
                    heap_push(f, xn->inputs[k]->id, true);
    }
    commit_group(f);
}

/* ---------------------------------------------------------------- the schedule
   Each group is one unit that runs where its key says, its members in their order just before its root;
   every other node is a unit of its own. Units run in the order of (key, root). A unit's key is its root's
   position, except that leaves go first (arguments, ready before anything runs; their order, the graph's
   signature, is kept), a reshape goes with its input, and an epilogue runs as early as its inputs let it
   after its anchor's position: the optimizer update of a weight gradient then runs beside the gradient
   instead of at the end, so that the gradient's inputs die early. It still waits for every other reader of
   a parameter it updates (then it can update it in place), as long as that keeps it at or before its root.
   The order stays topological: key(unit) <= root(unit) for every unit, every reader outside a group comes
   after the group's root, and an epilogue's key is at least the key of every unit it reads. */

typedef struct Unit {
    int key, root;
} Unit;

static int unit_cmp(const void *a, const void *b) {
    const Unit *x = a, *y = b;
    if (x->key != y->key)
        return (x->key > y->key) - (x->key < y->key);
    return (x->root > y->root) - (x->root < y->root);
}

static int unit_of(const Fuse *f, int i) {
    return f->group[i] >= 0 ? f->group[i] : i;
}

/* The key of an epilogue rooted at r with anchor a (members listed through first/next), from the keys of
   the units before it. */
static int epilogue_key(const Fuse *f, int r, int a, const int *first, const int *next, const int *key,
                        const int *updates) {
    Graph *g = f->g;
    int k = a;
    for (int m = first[r];; m = next[m]) {
        int i = m >= 0 ? m : r;
        const Node *n = g->nodes[i];
        for (int j = 0; j < n->ninputs; j++) {
            int u = unit_of(f, n->inputs[j]->id);
            if (u != r && k < key[u])
                k = key[u];
        }
        if (m < 0)
            break;
    }
    int wait = k;
    for (int m = first[r];; m = next[m]) {
        int i = m >= 0 ? m : r;
        /* the old value of a parameter this group updates: its readers (through reshapes) come first */
        for (int p = updates[i], depth = 0; p >= 0 && depth < 2; depth++) {
            int view = -1;
            for (int e = f->r.start[p]; e < f->r.start[p + 1]; e++) {
                int u = unit_of(f, f->r.at[e]);
                if (g->nodes[f->r.at[e]]->op == OP_RESHAPE)
                    view = f->r.at[e];
                else if (u != r && u < r && wait <= key[u])
                    wait = key[u] + 1;
            }
            p = view; /* one reshape deep is what layers make (a bias viewed as [C,1,1]) */
        }
        if (m < 0)
            break;
    }
    return wait <= r ? wait : k;
}

static void schedule(Fuse *f) {
    Graph *g = f->g;
    int nn = g->nnodes;
    int *next = arena_alloc(g->arena, sizeof(int) * (size_t)nn);
    int *first = arena_alloc(g->arena, sizeof(int) * (size_t)nn);
    int *last = arena_alloc(g->arena, sizeof(int) * (size_t)nn);
    int *key = arena_alloc(g->arena, sizeof(int) * (size_t)nn);
    int *updates = arena_alloc(g->arena, sizeof(int) * (size_t)nn); /* the leaf a member updates, or -1 */
    for (int i = 0; i < nn; i++)
        first[i] = last[i] = next[i] = updates[i] = -1;
    for (int i = 0; i < nn; i++) {
        int r = f->group[i];
        if (r < 0 || r == i)
            continue;
        if (last[r] < 0)
            first[r] = i;
        else
            next[last[r]] = i;
        last[r] = i;
    }
    for (int i = 0; i < g->noutputs; i++) {
        const Output *o = &g->outputs[i];
        if (!o->update || f->group[o->value->id] < 0)
            continue;
        const Node *p = ir_find_leaf(g, OP_PARAM, o->name);
        if (!p)
            p = ir_find_leaf(g, OP_STATE, o->name);
        if (p)
            updates[o->value->id] = p->id;
    }
    Unit *units = arena_alloc(g->arena, sizeof(Unit) * (size_t)nn);
    int nunits = 0;
    for (int i = 0; i < nn; i++) {
        const Node *n = g->nodes[i];
        if (f->group[i] >= 0 && f->group[i] != i)
            continue;
        const Node *anchor = NULL;
        for (int m = f->group[i] == i ? first[i] : -1; m >= 0 && !anchor; m = next[m])
            if (ir_op_is_anchor(g->nodes[m]->op))
                anchor = g->nodes[m];
        if (ir_op_kind(n->op) == K_LEAF)
            key[i] = -1;
        else if (n->op == OP_RESHAPE)
            key[i] = key[unit_of(f, n->inputs[0]->id)];
        else if (anchor)
            key[i] = epilogue_key(f, i, anchor->id, first, next, key, updates);
        else
            key[i] = i;
        units[nunits++] = (Unit){key[i], i};
    }
    qsort(units, (size_t)nunits, sizeof *units, unit_cmp);
    Node **order = arena_alloc(g->arena, sizeof(Node *) * (size_t)nn);
    int k = 0;
    for (int u = 0; u < nunits; u++) {
        int r = units[u].root;
        for (int m = f->group[r] == r ? first[r] : -1; m >= 0; m = next[m])
            order[k++] = g->nodes[m];
        order[k++] = g->nodes[r];
    }
    for (int i = 0; i < nn; i++) {
        g->nodes[i] = order[i];
        g->nodes[i]->group = f->group[order[i]->id];
    }
    ir_renumber(g);
}

/* One round: groups over the current order, then the schedule. Returns how many nodes it fused. */
static int fuse_round(Graph *g) {
    int nn = g->nnodes;
    for (int i = 0; i < nn; i++)
        assert(g->nodes[i]->id == i && "fuse: node ids must be positions");
    Fuse f = {.g = g};
    f.group = arena_alloc(g->arena, sizeof(int) * (size_t)nn);
    f.stamp = arena_alloc(g->arena, sizeof(int) * (size_t)nn);
    f.inside = arena_alloc(g->arena, sizeof(int) * (size_t)nn);
    f.strided = arena_alloc(g->arena, sizeof(bool) * (size_t)nn);
    f.members = arena_alloc(g->arena, sizeof(int) * (size_t)(FUSE_MAX_GROUP + 2));
    build_readers(&f);
    f.heap = arena_alloc(g->arena, sizeof(int) * (size_t)(f.r.start[nn] + nn + 1));
    for (int i = 0; i < nn; i++) {
        f.group[i] = -1;
        g->nodes[i]->group = -1;
    }
    for (int i = 0; i < nn; i++)
        if (ir_op_is_anchor(g->nodes[i]->op) && f.group[i] == -1)
            grow_epilogue(&f, i);
    for (int i = nn - 1; i >= 0; i--) {
        Node *n = g->nodes[i];
        if (f.group[i] == -1 && ir_is_kernel(n) && (is_reduce(n) || is_pointwise(n)))
            grow_backward(&f, i);
    }
    int fused = 0;
    for (int i = 0; i < nn; i++)
        fused += f.group[i] >= 0;
    schedule(&f);
    return fused;
}

/* The order a round leaves can let more fuse (a reader that ran before a root now runs after it), so
   rounds repeat while they fuse more nodes; a round that fuses fewer is undone. Each is linear but for
   the sorts, and a few suffice. */
bool pass_fuse_run(Graph *g, Diag *d) {
    (void)d;
    int nn = g->nnodes;
    if (nn == 0)
        return true;
    Node **order = arena_alloc(g->arena, sizeof(Node *) * (size_t)nn);
    int *groups = arena_alloc(g->arena, sizeof(int) * (size_t)nn);
    int best = -1;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < nn; i++) {
            order[i] = g->nodes[i];
            groups[i] = g->nodes[i]->group;
        }
        int fused = fuse_round(g);
        if (fused <= best) {
            if (fused < best) {
                for (int i = 0; i < nn; i++) {
                    g->nodes[i] = order[i];
                    order[i]->id = i;
                    order[i]->group = groups[i];
                }
            }
            break;
        }
        best = fused;
    }
    return true;
}

/* The pipeline's pass fuses unless LATHE_FUSE=0, the switch that shows what fusion is worth (and takes it
   out of the way when a miscompile is suspected); `lathe opt --pass fuse` and the tests call pass_fuse_run. */
bool pass_fuse(Graph *g, Diag *d) {
    const char *on = getenv("LATHE_FUSE");
    if (on && strcmp(on, "0") == 0)
        return true;
    return pass_fuse_run(g, d);
}

/* ---------------------------------------------------------------- the printed summary */

static int int_cmp(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

void pass_fuse_note(FILE *out, const Graph *g, const Node *n) {
    if (n->group != n->id)
        return;
    int count = 0, nlines = 0;
    for (int i = 0; i <= n->id; i++)
        count += g->nodes[i]->group == n->id;
    int *lines = malloc(sizeof(int) * (size_t)count);
    if (!lines)
        LATHE_UNREACHABLE("out of memory");
    for (int i = 0; i <= n->id; i++)
        if (g->nodes[i]->group == n->id && g->nodes[i]->loc.file)
            lines[nlines++] = g->nodes[i]->loc.line;
    qsort(lines, (size_t)nlines, sizeof *lines, int_cmp);
    const Node *anchor = ir_group_anchor(g, n);
    fprintf(out, "  # group %%%d (", n->id);
    if (anchor)
        fprintf(out, "epilogue of %s %%%d, %d nodes)", ir_op_name(anchor->op), anchor->id, count);
    else if (is_reduce(n))
        fprintf(out, "%s, %d nodes)", ir_op_name(n->op), count);
    else
        fprintf(out, "elementwise, %d nodes)", count);
    int distinct = 0;
    for (int i = 0; i < nlines; i++)
        distinct += i == 0 || lines[i] != lines[i - 1];
    if (distinct)
        fprintf(out, ": model line%s", distinct > 1 ? "s" : "");
    for (int i = 0; i < nlines; i++)
        if (i == 0 || lines[i] != lines[i - 1])
            fprintf(out, "%s%d", i ? ", " : " ", lines[i]);
    fputc('\n', out);
    free(lines);
}
