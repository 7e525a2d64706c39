/* stats.c: `lathe ir MODEL --stats`, the work and memory of each graph of a model at one batch size, from
   the node costs of ir/cost.c and the memory plan of passes/memplan.c. */
#include "stats.h"

#include "../passes/passes.h"

#include <stdlib.h>

static int64_t sat_add(int64_t a, int64_t b) {
    int64_t r;
    if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r))
        return INT64_MAX;
    return r;
}

/* c + per_n * n, saturating. */
static int64_t at_batch(int64_t c, int64_t per_n, int64_t n) {
    int64_t r;
    if (per_n < 0 || __builtin_mul_overflow(per_n, n, &r))
        return INT64_MAX;
    return sat_add(c, r);
}

static int64_t value_bytes(const Node *nd, int64_t n) {
    int64_t count = ir_shape_numel(&nd->shape, n), r;
    if (count < 0 || __builtin_mul_overflow(count, (int64_t)ir_dtype_size(nd->dtype), &r))
        return INT64_MAX;
    return r;
}

/* The bytes the kernel of the group rooted at root moves: every value from outside the group that a member
   reads, once, and every member that has a buffer (ir_group_materialized). seen[] marks the values read. */
static int64_t group_bytes(const Graph *g, const Node *root, int64_t n, int *seen) {
    int64_t bytes = 0;
    for (int i = 0; i <= root->id; i++) {
        const Node *m = g->nodes[i];
        if (m->group != root->id)
            continue;
        for (int j = 0; j < m->ninputs; j++) {
            const Node *x = m->inputs[j];
            if (x->group == root->id || seen[x->id] == root->id + 1)
                continue;
            seen[x->id] = root->id + 1;
            bytes = sat_add(bytes, value_bytes(x, n));
        }
        if (m->op != OP_CONST && ir_group_materialized(g, m))
            bytes = sat_add(bytes, value_bytes(m, n));
    }
    return bytes;
}

static bool is_root(const Node *nd) {
    return nd->group == nd->id;
}

/* The step's memory: the arena, the parameters, state and inputs, and the outputs returned to the caller
   (an update output is written back into its parameter, in place). */
static int64_t step_memory(const Graph *g, int64_t n) {
    MemSizes s;
    pass_memplan_sizes(g, &s);
    int64_t total = sat_add(at_batch(s.arena_c, s.arena_n, n), at_batch(s.inputs_c, s.inputs_n, n));
    total = sat_add(total, sat_add(s.params, s.state));
    for (int i = 0; i < g->noutputs; i++)
        if (!g->outputs[i].update && g->outputs[i].value)
            total = sat_add(total, value_bytes(g->outputs[i].value, n));
    return total;
}

void stats_of_graph(const Graph *g, int64_t n, bool planned, GraphStats *out) {
    *out = (GraphStats){.name = g->name ? g->name : "", .nodes = g->nnodes, .peak = -1};
    int *seen = calloc((size_t)g->nnodes + 1, sizeof *seen);
    if (!seen)
        LATHE_UNREACHABLE("out of memory");
    for (int i = 0; i < g->nnodes; i++) {
        const Node *nd = g->nodes[i];
        out->flops = sat_add(out->flops, ir_node_flops(nd, n));
        if (nd->group >= 0 && is_root(nd)) {
            out->kernels++;
            out->bytes = sat_add(out->bytes, group_bytes(g, nd, n, seen));
        } else if (nd->group < 0 && ir_is_kernel(nd)) {
            out->kernels++;
            out->bytes = sat_add(out->bytes, ir_node_bytes(nd, n));
        }
    }
    free(seen);
    if (planned)
        out->peak = step_memory(g, n);
}

static void print_row(FILE *out, const char *name, int nodes, int kernels, int64_t flops, int64_t bytes,
                      int64_t peak) {
    fprintf(out, "  %-8s %7d %8d %16lld %16lld ", name, nodes, kernels, (long long)flops, (long long)bytes);
    if (peak < 0)
        fprintf(out, "%16s\n", "-");
    else
        fprintf(out, "%16lld\n", (long long)peak);
}

void stats_print(FILE *out, const Program *p, int64_t n, bool planned) {
    fprintf(out, "stats of %s (model %s) at batch %lld, per step\n", p->source_file, p->model_name,
            (long long)n);
    fprintf(out, "  %-8s %7s %8s %16s %16s %16s\n", "graph", "nodes", "kernels", "FLOPs", "bytes moved",
            "peak bytes");
    Graph *gs[4];
    int ng = program_graphs(p, gs);
    GraphStats sum = {.peak = -1};
    for (int i = 0; i < ng; i++) {
        GraphStats s;
        stats_of_graph(gs[i], n, planned, &s);
        print_row(out, s.name, s.nodes, s.kernels, s.flops, s.bytes, s.peak);
        sum.nodes += s.nodes;
        sum.kernels += s.kernels;
        sum.flops = sat_add(sum.flops, s.flops);
        sum.bytes = sat_add(sum.bytes, s.bytes);
        sum.peak = s.peak > sum.peak ? s.peak : sum.peak;
    }
    print_row(out, "total", sum.nodes, sum.kernels, sum.flops, sum.bytes, sum.peak);
    if (!planned)
        fputs("(no peak before the memory plan: it is made by the memplan pass)\n", out);
}
