/* pipeline.c: the order of the passes, as QBE's main reads: the train graph is differentiated and gets
   its optimizer, then every graph is simplified, cleaned and planned. `lathe ir --after NAME` stops after
   any of them and prints the IR; `--after all` prints it after each. */
#include "passes.h"

#include <string.h>

const char *const pass_names[] = {"lower", "autodiff", "optimizer", "simplify", "cse",     "layout",
                                  "dce",   "fuse",     "memplan",   NULL};

/* pass_fns[i] runs pass_names[i]; "lower" is the frontend's work, already done */
static PassFn const pass_fns[] = {NULL,        pass_autodiff, pass_optimizer, pass_simplify, pass_cse,
                                  pass_layout, pass_dce,      pass_fuse,      pass_memplan};
/* autodiff runs on the graphs that train (train and grads), the optimizer on the fused train graph only */
enum { ALL, TRAINING, FUSED };
static const int runs_on[] = {ALL, TRAINING, FUSED, ALL, ALL, ALL, ALL, ALL, ALL};

PassFn pass_by_name(const char *name) {
    for (int i = 0; pass_names[i]; i++)
        if (strcmp(pass_names[i], name) == 0)
            return pass_fns[i];
    return NULL;
}

static void dump_graphs(const Program *p, FILE *dump) {
    if (!dump)
        return;
    Graph *graphs[4];
    for (int i = 0, n = program_graphs(p, graphs); i < n; i++)
        ir_print_noted(dump, graphs[i], pass_fuse_note);
}

static bool verify_all(const Program *p, Diag *d) {
    Graph *graphs[4];
    for (int i = 0, n = program_graphs(p, graphs); i < n; i++)
        if (!ir_verify(graphs[i], d))
            return false;
    return true;
}

bool pass_pipeline(Program *p, const char *stop_after, FILE *dump, Diag *d) {
    int stop = -1;
    /* "all": the graphs after every pass, as LLVM's -print-after-all, each dump headed by a comment */
    bool every = stop_after && strcmp(stop_after, "all") == 0;
    if (stop_after && !every) {
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
    Graph *graphs[4];
    int ngraphs = program_graphs(p, graphs);
    for (int i = 0; pass_names[i]; i++) {
        for (int j = 0; j < ngraphs && pass_fns[i]; j++) {
            bool training = graphs[j] == p->train || graphs[j] == p->grads;
            if ((runs_on[i] == TRAINING && !training) || (runs_on[i] == FUSED && graphs[j] != p->train))
                continue;
            if (!pass_fns[i](graphs[j], d))
                return false;
        }
        if (!verify_all(p, d))
            return false;
        if (every && dump) {
            fprintf(dump, "%s# *** IR after %s ***\n", i ? "\n" : "", pass_names[i]);
            dump_graphs(p, dump);
        }
        if (i == stop)
            break;
    }
    if (!every)
        dump_graphs(p, dump);
    return true;
}
