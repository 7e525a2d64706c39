/* passes.h: the passes over the IR, one a file, and the pipeline that orders them.
   Each pass is `bool pass_NAME(Graph *g, Diag *d)`: it rewrites g in place (building new nodes in
   g->arena) and returns false after reporting an error. */
#ifndef LATHE_PASSES_H
#define LATHE_PASSES_H

#include "../ir/ir.h"

/* Reverse-mode autodiff: from the train graph's "loss" output (a scalar), the gradient of every PARAM that
   is not frozen, added as outputs named "grad.NAME". A VJP rule per primitive. */
bool pass_autodiff(Graph *g, Diag *d);
/* Lowers g->optimizer (the recipe's call, e.g. SGD(lr = 1e-3)): adds the scalar INPUT "lr" and replaces
   each "grad.NAME" output by an update output NAME with the new parameter value. */
bool pass_optimizer(Graph *g, Diag *d);
/* Local rewrites: constant folding, algebraic identities and strength reduction that keep every result bit
   for bit, chains of views collapsed, and the canonical forms later passes rely on. */
bool pass_simplify(Graph *g, Diag *d);
/* Common subexpressions: nodes of one op, attributes and inputs (and constants of one value and type)
   become one. */
bool pass_cse(Graph *g, Diag *d);
/* Layouts: no materialized transpose where a GEMM's transpose flag or a strided read serves. */
bool pass_layout(Graph *g, Diag *d);
/* Removes nodes that no output depends on. */
bool pass_dce(Graph *g, Diag *d);
/* Fusion groups (ir.h): elementwise chains, reductions with their producers, matmul epilogues. May reorder
   nodes (keeping a topological order) so that each group runs at its root. */
bool pass_fuse(Graph *g, Diag *d);
/* pass_fuse's work, whatever LATHE_FUSE says (pass_fuse does nothing when LATHE_FUSE=0). */
bool pass_fuse_run(Graph *g, Diag *d);
/* For ir_print_noted: before a group's root, a comment line naming the group's kind, size and model lines. */
void pass_fuse_note(FILE *out, const Graph *g, const Node *n);
/* Assigns every node its MemLoc: arguments, aliases (reshapes) and offsets in one arena, reused by
   lifetime. Peak bytes are c + per_n * N. */
bool pass_memplan(Graph *g, Diag *d);
void pass_memplan_size(const Graph *g, int64_t *c, int64_t *per_n);
/* For reports, after pass_memplan: where each node's buffer is written (its kernel's position: its group's
   root, or itself) and the last position that reads it (g->nnodes when the entry reads it at the end).
   Both arrays hold g->nnodes entries. */
void pass_memplan_lifetimes(const Graph *g, int *written, int *last_read);
/* Bytes of n's buffer: per sample when its shape has N, else in all (-1 past the plan's limit). */
int64_t pass_memplan_bytes(const Node *n);
/* What a graph's step holds besides its outputs, each c + per_n * N bytes: the arena, the PARAM nodes
   (parameters and buffers), the STATE nodes (optimizer state) and the INPUT nodes (the batch and the
   run-time scalars). */
typedef struct MemSizes {
    int64_t arena_c, arena_n, params, state, inputs_c, inputs_n;
} MemSizes;
void pass_memplan_sizes(const Graph *g, MemSizes *s);
/* Prints the plan of every node as comment lines (`lathe opt --pass memplan`, for the golden tests). */
void pass_memplan_print(FILE *out, const Graph *g);

/* The pipeline's names in order, for `lathe ir --after NAME`. */
extern const char *const pass_names[];

/* The pass called name (not "lower", which is the frontend's), or NULL: for running passes one at a time
   over text IR (`lathe opt`). */
typedef bool (*PassFn)(Graph *g, Diag *d);
PassFn pass_by_name(const char *name);

/* Runs the passes over every graph of p in order. After the pass named stop_after (NULL: all), prints the
   IR of every graph to dump (when not NULL) and stops; stop_after "all" runs every pass and prints the IR
   after each, headed "# *** IR after NAME ***". Verifies the IR after each pass. */
bool pass_pipeline(Program *p, const char *stop_after, FILE *dump, Diag *d);

#endif
