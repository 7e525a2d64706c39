/* dot.c: a graph as Graphviz DOT (`lathe ir --dot`). Each node is a box labelled with its id, op, type and
   model line; each fusion group (one kernel) is a `subgraph cluster_R` named after its root R and its kind;
   edges follow the data from inputs to users and on to the graph's outputs. Every string that comes from
   the user (names, file names) is escaped, so that `dot` accepts whatever the model file holds. */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

/* Text inside a DOT double-quoted string: quote and backslash escaped, a newline as DOT's "\n", other
   control characters dropped (DOT has no escape for them); bytes >= 0x80 pass, as UTF-8. */
static void dot_escaped(FILE *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c >= 0x20 && c != 0x7f)
            fputc(c, out);
    }
}

static bool is_leaf_arg(const Node *n)
{
    return n->op == OP_INPUT || n->op == OP_PARAM || n->op == OP_STATE;
}

/* n0 [label="%0 input \"x\"\nf32[N,1,28,28]\nfashion_mlp.lathe:14", ...]; copy k > 0 of a leaf is n0_k. */
static void dot_node(FILE *out, const Node *n, int copy, const char *indent)
{
    char type[256];
    fprintf(out, "%sn%d", indent, n->id);
    if (copy)
        fprintf(out, "_%d", copy);
    fprintf(out, " [label=\"%%%d %s", n->id, ir_op_name(n->op));
    if (n->attr.name && is_leaf_arg(n)) {
        fputs(" \\\"", out);
        dot_escaped(out, n->attr.name);
        fputs("\\\"", out);
    } else if (n->op == OP_CONST) {
        fprintf(out, " %.6g", n->attr.value);
    }
    fprintf(out, "\\n%s", ir_type_str(n->dtype, &n->shape, type, sizeof type));
    if (n->loc.file) {
        const char *base = strrchr(n->loc.file, '/');
        fputs("\\n", out);
        dot_escaped(out, base ? base + 1 : n->loc.file);
        fprintf(out, ":%d", n->loc.line);
    }
    fputs("\"", out);
    if (is_leaf_arg(n))
        fputs(", style=filled, fillcolor=\"#e8f0ff\"", out);
    else if (ir_op_is_anchor(n->op))
        fputs(", style=filled, fillcolor=\"#fff0d0\"", out);
    fputs("];\n", out);
}

/* The cluster's title: "kernel %R: epilogue of matmul %A" (or "reduce_sum", or "elementwise"), then the
   number of nodes it computes. */
static void dot_cluster_label(FILE *out, const Graph *g, const Node *root, int members)
{
    fprintf(out, "kernel %%%d: ", root->id);
    const Node *anchor = ir_group_anchor(g, root);
    switch (ir_group_kind(g, root)) {
    case GROUP_EPILOGUE:
        if (anchor)
            fprintf(out, "epilogue of %s %%%d", ir_op_name(anchor->op), anchor->id);
        else
            fputs("epilogue", out);
        break;
    case GROUP_NONE: fputs("fused", out); break;
    case GROUP_REDUCE: fputs(ir_op_name(root->op), out); break;
    case GROUP_ELEMENTWISE: fputs("elementwise", out); break;
    }
    fprintf(out, ", %d nodes", members);
}

/* The group rooted at root: its members, which all precede it (ids up to root's). */
static void dot_cluster(FILE *out, const Graph *g, const Node *root)
{
    int members = 0;
    for (int i = 0; i <= root->id; i++)
        members += g->nodes[i]->group == root->id;
    fprintf(out, "  subgraph cluster_%d {\n    label=\"", root->id);
    dot_cluster_label(out, g, root, members);
    fputs("\";\n    style=\"rounded,filled\";\n    fillcolor=\"#f4f4f4\";\n", out);
    for (int i = 0; i <= root->id; i++)
        if (g->nodes[i]->group == root->id)
            dot_node(out, g->nodes[i], 0, "    ");
    fputs("  }\n", out);
}

/* A node is in a group when its group names a root inside the graph that claims it: what the verifier
   guarantees after pass_fuse; anything else (a stale id) is drawn outside any cluster. */
static bool in_group(const Graph *g, const Node *n)
{
    return n->group >= 0 && n->group < g->nnodes && g->nodes[n->group]->group == n->group &&
           n->group >= n->id;
}

/* dot's layout time grows with the ranks that edges span (each rank crossed is a virtual node to place):
   minutes for a ResNet's gradient graph drawn plainly, where parameters read by the forward and again by
   the backward, constants read all over, and activations saved for the backward pull edges across its whole
   depth. So leaves are drawn once per use, and in a large graph an edge that spans more than LONG_SPAN
   levels is drawn as a dashed reference to its source ("from %12 relu") next to the user. */
enum { LARGE_GRAPH = 200, LONG_SPAN = 12 };

static bool drawn_per_use(const Graph *g, const Node *n)
{
    return is_leaf_arg(n) || (n->op == OP_CONST && !in_group(g, n));
}

/* depth[i]: the longest path from a leaf to node i (leaves 0), in the topological order of g->nodes. */
static void node_depths(const Graph *g, int *depth)
{
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        depth[i] = 0;
        for (int j = 0; j < n->ninputs; j++)
            if (n->inputs[j]->id < i && depth[n->inputs[j]->id] + 1 > depth[i])
                depth[i] = depth[n->inputs[j]->id] + 1;
    }
}

/* r<user>_<input>: a reference to x drawn beside its user n. */
static void dot_reference(FILE *out, const Node *x, const Node *n, int j)
{
    fprintf(out, "  r%d_%d [label=\"from %%%d %s\", style=dashed, color=gray40];\n", n->id, j, x->id,
            ir_op_name(x->op));
    fprintf(out, "  r%d_%d -> n%d [style=dashed, color=gray40];\n", n->id, j, n->id);
}

/* Data flow, input to user. The first use of a leaf takes its node n<id>, every later one a copy n<id>_k.
   Without memory for the bookkeeping every edge is drawn plainly: slower to lay out, the same graph. */
static void dot_edges(FILE *out, const Graph *g)
{
    int *uses = calloc((size_t)g->nnodes + 1, sizeof *uses);
    int *depth = calloc((size_t)g->nnodes + 1, sizeof *depth);
    bool refs = uses && depth && g->nnodes > LARGE_GRAPH;
    if (depth)
        node_depths(g, depth);
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        for (int j = 0; j < n->ninputs; j++) {
            const Node *x = n->inputs[j];
            int copy = uses && drawn_per_use(g, x) ? uses[x->id]++ : 0;
            if (copy) {
                dot_node(out, x, copy, "  ");
                fprintf(out, "  n%d_%d -> n%d;\n", x->id, copy, n->id);
            } else if (refs && !drawn_per_use(g, x) && depth[n->id] - depth[x->id] > LONG_SPAN) {
                dot_reference(out, x, n, j);
            } else {
                fprintf(out, "  n%d -> n%d;\n", x->id, n->id);
            }
        }
    }
    free(uses);
    free(depth);
}

void ir_print_dot(FILE *out, const Graph *g)
{
    fputs("digraph \"", out);
    dot_escaped(out, g->name ? g->name : "");
    fputs("\" {\n  node [shape=box, fontname=\"monospace\"];\n  graph [fontname=\"monospace\"];\n", out);
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (!in_group(g, n))
            dot_node(out, n, 0, "  ");
        else if (n->group == n->id)
            dot_cluster(out, g, n);
    }
    dot_edges(out, g);
    for (int i = 0; i < g->noutputs; i++) {
        const Output *o = &g->outputs[i];
        fprintf(out, "  out%d [shape=ellipse, label=\"%s ", i, o->update ? "update" : "output");
        dot_escaped(out, o->name ? o->name : "");
        fputs("\"];\n", out);
        if (o->value)
            fprintf(out, "  n%d -> out%d;\n", o->value->id, i);
    }
    fputs("}\n", out);
}
