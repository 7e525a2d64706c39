/* dce.c: dead-code elimination. A node stays when an output depends on it. INPUT, PARAM and STATE nodes
   always stay: they are the graph's arguments (ir_graph_args), which the runtime binds by position, and a
   graph's signature must not change with what an optimization happened to remove. */
#include "passes.h"

#include <assert.h>

bool pass_dce(Graph *g, Diag *d) {
    bool *live = arena_alloc(g->arena, (size_t)g->nnodes + 1);
    for (int i = 0; i < g->noutputs; i++)
        live[g->outputs[i].value->id] = true;
    /* the order is topological, so one backward sweep sees every user before its inputs */
    for (int i = g->nnodes - 1; i >= 0; i--) {
        Node *n = g->nodes[i];
        assert(n->id == i && "node ids are positions");
        if (n->op == OP_INPUT || n->op == OP_PARAM || n->op == OP_STATE)
            live[i] = true;
        if (live[i])
            for (int j = 0; j < n->ninputs; j++)
                live[n->inputs[j]->id] = true;
    }
    for (int i = 0; i < g->nnodes; i++)
        if (!live[i])
            g->nodes[i] = NULL; /* ir_renumber drops cleared slots */
    ir_renumber(g);
    return true;
}
