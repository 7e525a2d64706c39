/* pipeline.c: the order of the passes, as QBE's main reads: the train graph is differentiated and gets
   its optimizer, then every graph is simplified, cleaned and planned. `lathe ir --after NAME` stops after
   any of them and prints the IR. */
#include "passes.h"

#include <string.h>

const char *const pass_names[] = {"lower", "autodiff", "optimizer", "simplify", "cse",     "layout",
                                  "dce",   "fuse",     "memplan",   NULL};

/* pass_fns[i] runs pass_names[i]; "lower" is the frontend's work, already done */
static PassFn const pass_fns[] = {NULL,        pass_autodiff, pass_optimizer, pass_simplify, pass_cse,
                                  pass_layout, pass_dce,      pass_fuse,      pass_memplan};
static const bool train_only[] = {false, true, true, false, false, false, false, false, false};

PassFn pass_by_name(const char *name) {
    for (int i = 0; pass_names[i]; i++)
        if (strcmp(pass_names[i], name) == 0)
            return pass_fns[i];
    return NULL;
}

static void dump_graphs(const Program *p, FILE *dump) {
    if (!dump)
        return;
    const Graph *graphs[] = {p->train, p->eval, p->predict};
    for (int i = 0; i < 3; i++)
        if (graphs[i])
            ir_print_noted(dump, graphs[i], pass_fuse_note);
}

static bool verify_all(const Program *p, Diag *d) {
    const Graph *graphs[] = {p->train, p->eval, p->predict};
    for (int i = 0; i < 3; i++)
        if (graphs[i] && !ir_verify(graphs[i], d))
            return false;
    return true;
}

bool pass_pipeline(Program *p, const char *stop_after, FILE *dump, Diag *d) {
    int stop = -1;
    if (stop_after) {
        for (int i = 0; pass_names[i]; i++)
            if (strcmp(pass_names[i], stop_after) == 0)
                stop = i;
        if (stop < 0) {
            char list[256] = "";
            for (int i = 0; pass_names[i]; i++) {
                if (i)
                    strcat(list, ", ");
                strcat(list, pass_names[i]);
            }
            diag_error(d, (Loc){0}, "unknown pass '%s' (the passes: %s)", stop_after, list);
            return false;
        }
    }
    Graph *graphs[] = {p->train, p->eval, p->predict};
    for (int i = 0; pass_names[i]; i++) {
        for (int j = 0; j < 3 && pass_fns[i]; j++) {
            if (!graphs[j] || (train_only[i] && graphs[j] != p->train))
                continue;
            if (!pass_fns[i](graphs[j], d))
                return false;
        }
        if (!verify_all(p, d))
            return false;
        if (i == stop)
            break;
    }
    dump_graphs(p, dump);
    return true;
}
