/* run.h: `lathe run` (run.c). Compiles a model in memory, links its code into the lathe process through
   LLVM's ORC JIT, and runs the produced executable's driver on it: the same subcommands and flags as the
   executable that `lathe compile` writes, with no object file, link step or executable on disk. */
#ifndef LATHE_CLI_RUN_H
#define LATHE_CLI_RUN_H

#include "../ir/ir.h"

/* The Program of a model file after the whole pipeline with its recipe checked, as `lathe compile` builds
   it before code generation; NULL after reporting the errors through d. cli/main.c passes its own. */
typedef Program *(*RunCompileFn)(Arena *a, Diag *d, const char *model);

/* `lathe run [options] MODEL COMMAND [flags...]` with argv[0] == "run": the exit status (the driver's, or
   1 when MODEL has errors, 2 on bad usage). */
int run_main(int argc, char **argv, RunCompileFn compile);

/* The name a run reports itself by, as the executable `lathe compile MODEL -o NAME` would be called: the
   file name of model without its directory and its .lathe extension, into buf. */
void run_program_name(const char *model, char *buf, size_t n);

#endif
