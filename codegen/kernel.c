/* kernel.c: the kernels of a planned graph as every backend sees them (kernel.h). */
#include "kernel.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_of_memory(void) {
    fprintf(stderr, "lathe: out of memory\n");
    exit(1);
}

/* One node's part of a key: the printed node's op, attributes and type without its id, operands and
   location; a constant's value. */
static void node_key(FILE *f, const Node *nd) {
    char *text = NULL;
    size_t tlen = 0;
    FILE *t = open_memstream(&text, &tlen);
    if (!t)
        out_of_memory();
    ir_print_node(t, nd);
    fclose(t);
    const char *attrs = strstr(text, " {"), *type = strstr(text, " : ");
    char tb[256];
    fprintf(f, "%s|%s|", ir_op_name(nd->op), ir_type_str(nd->dtype, &nd->shape, tb, sizeof tb));
    if (nd->op == OP_CONST)
        fprintf(f, "%.17g^%d|", nd->attr.value, nd->attr.npow);
    if (attrs && (!type || attrs < type))
        fwrite(attrs, 1, (size_t)((type ? type : attrs + strlen(attrs)) - attrs), f);
    free(text);
}

int cg_member_index(const CgKernel *k, const Node *x) {
    for (int i = 0; i < k->nmembers; i++)
        if (k->members[i] == x)
            return i;
    return -1;
}

char *cg_kernel_key(const CgKernel *k) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        out_of_memory();
    char tb[256];
    fprintf(f, "%d/%d/%d/%d", k->kind, k->nbufs, k->nouts, k->sgd_gemm);
    for (int i = 0; i < k->nmembers; i++) {
        const Node *m = k->members[i];
        fprintf(f, "\n%s", m == k->anchor ? "@" : "");
        node_key(f, m);
        fprintf(f, "|>%d", k->materialized[i] ? cg_buf_index(k, m) : -1);
        for (int j = 0; j < m->ninputs; j++) {
            const Node *x = m->inputs[j];
            int mi = cg_member_index(k, x);
            fprintf(f, "|%s", ir_type_str(x->dtype, &x->shape, tb, sizeof tb));
            if (mi >= 0)
                fprintf(f, "=m%d", mi);
            else if (cg_buf_index(k, x) >= 0)
                fprintf(f, "=b%d", cg_buf_index(k, x));
            else
                fprintf(f, "=%.17g^%d", x->attr.value, x->attr.npow);
        }
    }
    fclose(f);
    return buf;
}

static const Node *buffer_owner(const Node *n) {
    while (n->mem.kind == MEM_ALIAS)
        n = n->inputs[0];
    return n;
}

bool cg_same_buffer(const Node *a, const Node *b) {
    a = buffer_owner(a);
    b = buffer_owner(b);
    if (a == b)
        return true;
    if (a->mem.kind == MEM_ARG && b->mem.kind == MEM_ARG)
        return a->mem.arg == b->mem.arg;
    return false;
}

int cg_buf_index(const CgKernel *k, const Node *x) {
    for (int i = 0; i < k->nbufs; i++)
        if (k->bufs[i] == x)
            return i;
    if (x->mem.kind == MEM_FUSED)
        return -1;
    for (int i = 0; i < k->nbufs; i++)
        if (cg_same_buffer(k->bufs[i], x))
            return i;
    return -1;
}

static void add_buf(CgKernel *k, const Node *x) {
    if (cg_buf_index(k, x) >= 0)
        return;
    if (k->nbufs == CG_MAX_BUFS)
        LATHE_UNREACHABLE("a kernel touches more than CG_MAX_BUFS buffers");
    k->bufs[k->nbufs++] = x;
}

/* Whether a node outside n's group, or an output, reads n. */
static bool read_outside(const Graph *g, const Node *n) {
    for (int i = n->id + 1; i < g->nnodes; i++) {
        const Node *u = g->nodes[i];
        if (u->group >= 0 && u->group == n->group)
            continue;
        for (int j = 0; j < u->ninputs; j++)
            if (u->inputs[j] == n)
                return true;
    }
    for (int i = 0; i < g->noutputs; i++)
        if (g->outputs[i].value == n)
            return true;
    return false;
}

/* Whether an epilogue is exactly root = P - s * anchor, P the root's own buffer (an in-place parameter
   update) and s a scalar, with nothing else reading the anchor: then one GEMM with alpha = -s and beta = 1
   updates P, and the anchor's buffer is never written. */
static bool is_sgd_gemm(const Graph *g, const CgKernel *k) {
    const Node *root = k->root, *an = k->anchor;
    if (k->kind != GROUP_EPILOGUE || an->op != OP_MATMUL || root->op != OP_SUB || !ir_dtype_is_float(root->dtype))
        return false;
    const Node *p = root->inputs[0], *mul = root->inputs[1];
    if (cg_is_member(k, p) || !cg_same_buffer(root, p) || !ir_shape_eq(&p->shape, &root->shape) ||
        p->dtype != root->dtype || an->dtype != root->dtype)
        return false;
    if (!cg_is_member(k, mul) || mul->op != OP_MUL || read_outside(g, mul) || read_outside(g, an))
        return false;
    int ai = mul->inputs[0] == an ? 0 : mul->inputs[1] == an ? 1 : -1;
    if (ai < 0)
        return false;
    const Node *s = mul->inputs[1 - ai];
    if (s == an || s->dtype != root->dtype || ir_shape_has_n(&s->shape) || ir_shape_numel_per_n(&s->shape) != 1)
        return false;
    if (cg_is_member(k, s) ? s->op != OP_CONST : s->mem.kind == MEM_FUSED)
        return false;
    if (k->nmembers != 3 + cg_is_member(k, s))
        return false;
    return !cg_same_buffer(an->inputs[0], p) && !cg_same_buffer(an->inputs[1], p);
}

void cg_kernel_of(const Graph *g, const Node *root, CgKernel *k) {
    memset(k, 0, sizeof *k);
    k->g = g;
    k->root = root;
    k->kind = ir_group_kind(g, root);
    if (k->kind == GROUP_NONE) {
        k->members[k->nmembers] = root;
        k->materialized[k->nmembers++] = true;
        k->anchor = root->op == OP_MATMUL ? root : NULL;
    } else {
        for (int i = 0; i <= root->id; i++) {
            const Node *m = g->nodes[i];
            if (m->group != root->id)
                continue;
            if (k->nmembers == CG_MAX_MEMBERS)
                LATHE_UNREACHABLE("a fusion group has more than CG_MAX_MEMBERS members");
            k->members[k->nmembers] = m;
            k->materialized[k->nmembers++] = ir_group_materialized(g, m);
        }
        k->anchor = ir_group_anchor(g, root);
    }
    for (int i = 0; i < k->nmembers; i++)
        if (k->materialized[i])
            add_buf(k, k->members[i]);
    k->nouts = k->nbufs;
    for (int i = 0; i < k->nmembers; i++) {
        const Node *m = k->members[i];
        for (int j = 0; j < m->ninputs; j++) {
            const Node *x = m->inputs[j];
            if (!cg_is_member(k, x) && !(x->op == OP_CONST && cg_folds_const(m)))
                add_buf(k, x);
        }
    }
    k->sgd_gemm = is_sgd_gemm(g, k);
}

/* A lone CONST's buffer is filled only when something reads it: a user that does not fold it, or an
   output. */
static bool const_needed(const Graph *g, const Node *cn) {
    for (int i = 0; i < g->nnodes; i++) {
        const Node *u = g->nodes[i];
        for (int k = 0; k < u->ninputs; k++)
            if (u->inputs[k] == cn && !cg_folds_const(u))
                return true;
    }
    for (int i = 0; i < g->noutputs; i++)
        if (g->outputs[i].value == cn)
            return true;
    return false;
}

bool cg_is_callout(Op op) {
    switch (op) {
    case OP_CONV2D: case OP_CONV2D_BWD_INPUT: case OP_CONV2D_BWD_WEIGHT:
    case OP_MAX_POOL2D: case OP_MAX_POOL2D_BWD: case OP_AVG_POOL2D: case OP_AVG_POOL2D_BWD:
    case OP_ADAPTIVE_AVG_POOL2D: case OP_ADAPTIVE_AVG_POOL2D_BWD:
    case OP_SLICE: case OP_PAD: case OP_CONCAT: case OP_GATHER: case OP_SCATTER_ADD: case OP_RANDOM:
        return true;
    default:
        return false;
    }
}

static int desc_shape(int64_t *d, const Shape *s) {
    d[0] = s->rank;
    for (int i = 0; i < LATHE_KD_MAX_RANK; i++)
        d[1 + i] = i < s->rank ? s->dim[i] : 0; /* IR_DIM_N is -1, as the descriptor writes N */
    return 1 + LATHE_KD_MAX_RANK;
}

int cg_build_desc(const Node *nd, int64_t *d) {
    const Attr *at = &nd->attr;
    int len = 0;
    d[len++] = nd->ninputs;
    len += desc_shape(d + len, &nd->shape);
    for (int i = 0; i < nd->ninputs; i++)
        len += desc_shape(d + len, &nd->inputs[i]->shape);
    switch (nd->op) {
    case OP_SLICE: case OP_PAD: {
        for (int i = 0; i < LATHE_KD_MAX_RANK; i++) {
            d[len + LATHE_KA_START + i] = i < nd->shape.rank ? at->start[i] : 0;
            d[len + LATHE_KA_STEP + i] = i < nd->shape.rank ? at->step[i] : 1;
        }
        double v = nd->op == OP_PAD ? at->value : 0;
        memcpy(&d[len + LATHE_KA_VALUE], &v, sizeof v);
        len += LATHE_KA_SLICE_COUNT;
        break;
    }
    case OP_CONCAT: d[len++] = at->axis; break;
    case OP_GATHER:
        d[len++] = at->axis;
        d[len++] = nd->inputs[1]->dtype;
        break;
    case OP_SCATTER_ADD:
        d[len++] = at->axis;
        d[len++] = nd->inputs[0]->dtype;
        break;
    case OP_RANDOM: d[len++] = at->stream; break;
    default: { /* the window ops */
        int64_t *w = d + len;
        w[LATHE_KA_WINDOW_H] = at->window[0];
        w[LATHE_KA_WINDOW_W] = at->window[1];
        w[LATHE_KA_STRIDE_H] = at->stride[0];
        w[LATHE_KA_STRIDE_W] = at->stride[1];
        w[LATHE_KA_PAD_H] = at->pad[0];
        w[LATHE_KA_PAD_W] = at->pad[1];
        w[LATHE_KA_DILATION_H] = at->dilation[0];
        w[LATHE_KA_DILATION_W] = at->dilation[1];
        w[LATHE_KA_GROUPS] = at->groups;
        w[LATHE_KA_CEIL_MODE] = at->ceil_mode;
        w[LATHE_KA_COUNT_INCLUDE_PAD] = at->count_include_pad;
        len += LATHE_KA_WINDOW_COUNT;
        break;
    }
    }
    assert(len <= CG_DESC_MAX);
    return len;
}

bool cg_folds_const(const Node *user) {
    OpKind kind = ir_op_kind(user->op);
    return kind == K_UNARY || kind == K_BINARY || kind == K_COMPARE || user->op == OP_SELECT || user->op == OP_BROADCAST;
}

bool cg_is_pointwise(const Node *n) {
    return cg_folds_const(n) || n->op == OP_TRANSPOSE || n->op == OP_CONST;
}

bool cg_is_kernel_root(const Graph *g, const Node *nd) {
    if (nd->group >= 0 && nd->group != nd->id)
        return false; /* computed by its group's kernel, at the root */
    if (!ir_is_kernel(nd) && nd->op != OP_CONST)
        return false;
    return !(nd->op == OP_CONST && nd->group < 0 && !const_needed(g, nd));
}

int cg_end_copies(const Graph *g, CgCopy *out) {
    int nargs = ir_graph_args(g, NULL), n = 0;
    GraphArg *args = malloc(sizeof *args * (size_t)(nargs + 1));
    if (!args)
        out_of_memory();
    ir_graph_args(g, args);
    for (int i = 0; i < nargs; i++) {
        const Node *v = args[i].node;
        if (args[i].role != ARG_OUTPUT || (v->mem.kind == MEM_ARG && v->mem.arg == i))
            continue;
        if (out)
            out[n] = (CgCopy){i, NULL, v, v};
        n++;
    }
    free(args);
    for (int i = 0; i < g->noutputs; i++) {
        const Output *o = &g->outputs[i];
        if (!o->update)
            continue;
        const Node *p = ir_find_leaf(g, OP_PARAM, o->name);
        if (!p)
            p = ir_find_leaf(g, OP_STATE, o->name);
        if (!p)
            LATHE_UNREACHABLE("an update output names no PARAM or STATE");
        if (cg_same_buffer(o->value, p))
            continue;
        if (out)
            out[n] = (CgCopy){-1, p, o->value, p};
        n++;
    }
    return n;
}

void cg_contiguous_strides(const Shape *s, Sym *st) {
    Sym acc = {1, 0};
    for (int i = s->rank - 1; i >= 0; i--) {
        st[i] = acc;
        acc = sym_mul(acc, sym_dim(s->dim[i]));
    }
}

void cg_broadcast_strides(const Shape *in, const Shape *out, Sym *st) {
    Sym cs[IR_MAX_RANK] = {{0, 0}};
    cg_contiguous_strides(in, cs);
    int lead = out->rank - in->rank;
    for (int i = 0; i < out->rank; i++) {
        int j = i - lead;
        st[i] = j < 0 || (in->dim[j] == 1 && out->dim[i] != 1) ? (Sym){0, 0} : cs[j];
    }
}
