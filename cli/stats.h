/* stats.h: `lathe ir MODEL --stats` (stats.c): per graph, its nodes, kernels, floating-point operations and
   bytes moved per step at a batch size, and the memory its step holds; one table with totals. The counting is
   exported for the unit tests (tests/unit/test_stats.c). */
#ifndef LATHE_CLI_STATS_H
#define LATHE_CLI_STATS_H

#include "../ir/ir.h"

/* One graph's work at batch n. Counts that pass 2^63 saturate at INT64_MAX. */
typedef struct GraphStats {
    const char *name;
    int nodes, kernels; /* kernels: one per fusion group, and one per other kernel node (ir_is_kernel) */
    int64_t flops;      /* ir_node_flops summed over the nodes */
    int64_t bytes;      /* what the kernels read and write: a fusion group reads each outside value once and
                           writes only its materialized members, so fused members move nothing */
    int64_t peak;       /* the step's memory: arena, parameters, state, inputs and the returned outputs;
                           -1 when the graph has no memory plan yet (--after a pass before memplan) */
} GraphStats;

void stats_of_graph(const Graph *g, int64_t n, bool planned, GraphStats *out);

/* The table: a header naming the file, the model and the batch, a line per graph of p, and the totals
   (sums; the peak column's total is the largest graph's). */
void stats_print(FILE *out, const Program *p, int64_t n, bool planned);

#endif
