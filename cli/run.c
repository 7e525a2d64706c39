/* run.c: `lathe run MODEL COMMAND [flags...]`. The model is compiled as `lathe compile` compiles it, its
   object code is linked into this process by ORC (cg_llvm_jit_program), and the produced executable's
   driver runs on the JIT's manifest and entries with the rest of the command line, under the name the
   executable would have: the same commands, flags, messages and numbers, and no file on disk. */
#include "run.h"

#include "../codegen/codegen.h"
#include "../runtime/rt.h"

#include <stdlib.h>
#include <string.h>

static const char run_usage[] =
    "usage: lathe run [options] MODEL COMMAND [flags...]\n"
    "\n"
    "Compiles MODEL in memory (LLVM's ORC JIT) and runs it as the executable that `lathe compile` writes:\n"
    "COMMAND is train, eval, predict or info, with that executable's flags (lathe run MODEL --help lists\n"
    "them). Nothing is written but what the command itself writes (checkpoints, logs).\n"
    "\n"
    "options (before MODEL):\n"
    "  --cpu NAME             the CPU to compile for (default: native)\n"
    "  -O LEVEL               LLVM optimization level 0-3 (default 3; 0 compiles fastest)\n"
    "  -h, --help             this help\n"
    "\n"
    "examples:\n"
    "  lathe run models/fashion_mlp.lathe train --data /usr/share/datasets/fashion-mnist --epochs 1\n"
    "  lathe run models/fashion_mlp.lathe eval --weights ckpt/best.safetensors\n"
    "  lathe run models/fashion_mlp.lathe --help\n"
    "\n"
    "exit status: the command's; 1 when MODEL has errors (reported with their location), 2 bad usage\n";

static int bad_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "lathe run: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(lathe run --help for usage)\n");
    return 2;
}

void run_program_name(const char *model, char *buf, size_t n) {
    const char *slash = strrchr(model, '/');
    const char *base = slash ? slash + 1 : model;
    size_t len = strlen(base);
    if (len > 6 && strcmp(base + len - 6, ".lathe") == 0)
        len -= 6;
    snprintf(buf, n, "%.*s", (int)(len < n ? len : n - 1), base);
    if (!buf[0])
        snprintf(buf, n, "lathe-model");
}

/* The value of option name at argv[*i]: "-O3" or "-O 3", "--cpu=x" or "--cpu x" (advancing *i past a
   separate value); NULL when argv[*i] is not that option, and *missing set when it is, without a value. */
static const char *option_value(int argc, char **argv, int *i, const char *name, bool *missing) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == 0) {
        if (*i + 1 >= argc) {
            *missing = true;
            return NULL;
        }
        return argv[++*i];
    }
    if (name[1] != '-') /* -O3 */
        return a + n;
    return a[n] == '=' ? a + n + 1 : NULL;
}

/* Reads the options before MODEL into cg; returns -1 with *first at MODEL's index, or the exit status. */
static int parse_options(int argc, char **argv, CgOptions *cg, int *first) {
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        const char *a = argv[i], *v;
        bool missing = false;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(run_usage, stdout);
            return 0;
        }
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if ((v = option_value(argc, argv, &i, "-O", &missing))) {
            if (strlen(v) != 1 || v[0] < '0' || v[0] > '3')
                return bad_usage("-O takes 0, 1, 2 or 3, not '%s'", v);
            cg->opt_level = v[0] - '0';
        } else if ((v = option_value(argc, argv, &i, "--cpu", &missing))) {
            cg->cpu = v;
        } else if (missing) {
            return bad_usage("option %s needs a value", a);
        } else {
            return bad_usage("unknown option '%s' (the model's flags go after MODEL COMMAND)", a);
        }
    }
    if (i >= argc)
        return bad_usage("no model file given%s", "");
    *first = i;
    return -1;
}

/* Compiles model and links it in memory; NULL when it has errors (reported). The compiler's memory is
   released before the run. */
static CgJitProgram *compile_in_memory(const char *model, const CgOptions *cg, RunCompileFn compile,
                                       CgProgramCode *code) {
    Arena *a = arena_new();
    Diag *d = diag_new(stderr);
    Program *p = compile(a, d, model);
    CgJitProgram *j = p ? cg_llvm_jit_program(p, cg, code, d) : NULL;
    if (j && diag_error_count(d) > 0) {
        cg_jit_program_free(j);
        j = NULL;
    }
    diag_free(d);
    arena_free(a);
    return j;
}

int run_main(int argc, char **argv, RunCompileFn compile) {
    CgOptions cg = {.opt_level = 3};
    int first;
    int rc = parse_options(argc, argv, &cg, &first);
    if (rc >= 0)
        return rc;
    const char *model = argv[first];
    /* the driver's argv: the executable's name, then COMMAND and its flags as given */
    int nargs = argc - first;
    char **args = calloc((size_t)nargs + 1, sizeof *args);
    char name[256];
    if (!args) {
        fprintf(stderr, "lathe run: out of memory\n");
        return 1;
    }
    run_program_name(model, name, sizeof name);
    args[0] = name;
    for (int k = 1; k < nargs; k++)
        args[k] = argv[first + k];
    CgProgramCode code;
    CgJitProgram *j = compile_in_memory(model, &cg, compile, &code);
    if (!j) {
        free(args);
        return 1;
    }
    RtEntries fns = {code.train, code.grads, code.eval, code.predict};
    rc = rt_run_entries(code.manifest, &fns, nargs, args);
    cg_jit_program_free(j);
    free(args);
    return rc;
}
