/* main.c: the lathe command. Reads as the table of contents of the compiler: the frontend turns a model
   file into a Program, the pipeline of passes completes its graphs, and codegen writes an object file that
   is linked with the runtime into an executable. */
#include "../codegen/codegen.h"
#include "../frontend/frontend.h"
#include "../passes/passes.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: lathe COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  compile MODEL -o OUT   compile a model file into a training executable\n"
    "  check MODEL            parse, check shapes and build every graph; print a summary\n"
    "  ir MODEL               print the IR after the whole pipeline (--after PASS: after that pass;\n"
    "                         --dot: as Graphviz)\n"
    "  opt FILE.ir --pass P   run passes over a text IR file and print the result (for pass tests)\n"
    "\n"
    "options:\n"
    "  -o, --output FILE      the executable to write (compile)\n"
    "  --after PASS           one of: lower autodiff optimizer simplify dce memplan (ir)\n"
    "  --dot                  print Graphviz instead of text IR (ir)\n"
    "  --pass PASS            a pass to run, repeatable, in order (opt)\n"
    "  --cpu NAME             the CPU to compile for (default: native)\n"
    "  -O LEVEL               LLVM optimization level 0-3 (default 3)\n"
    "  -h, --help             this help;  --version  the version\n"
    "\n"
    "examples:\n"
    "  lathe compile models/fashion_mlp.lathe -o fashion_mlp\n"
    "  ./fashion_mlp train --data /usr/share/datasets/fashion-mnist --checkpoint-dir ckpt\n"
    "  lathe ir models/fashion_mlp.lathe --after autodiff\n"
    "\n"
    "exit status: 0 success, 1 an error in the input (reported with its location), 2 bad usage\n";

typedef struct Options {
    const char *command, *input, *output, *after, *cpu;
    const char *passes[16];
    int npasses;
    bool dot;
    int opt_level;
} Options;

static int bad_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "lathe: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(lathe --help for usage)\n");
    return 2;
}

/* Returns -1 when the options are fine, else the exit status. */
static int parse_options(int argc, char **argv, Options *o) {
    enum { OPT_AFTER = 256, OPT_DOT, OPT_PASS, OPT_CPU, OPT_VERSION };
    static const struct option longs[] = {
        {"output", required_argument, NULL, 'o'}, {"after", required_argument, NULL, OPT_AFTER},
        {"dot", no_argument, NULL, OPT_DOT},      {"pass", required_argument, NULL, OPT_PASS},
        {"cpu", required_argument, NULL, OPT_CPU}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION}, {NULL, 0, NULL, 0}};
    o->opt_level = 3;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:O:h", longs, NULL)) != -1) {
        switch (c) {
        case 'o': o->output = optarg; break;
        case 'O':
            if (strlen(optarg) != 1 || optarg[0] < '0' || optarg[0] > '3')
                return bad_usage("-O takes 0, 1, 2 or 3, not '%s'", optarg);
            o->opt_level = optarg[0] - '0';
            break;
        case OPT_AFTER: o->after = optarg; break;
        case OPT_DOT: o->dot = true; break;
        case OPT_PASS:
            if (o->npasses == (int)(sizeof o->passes / sizeof o->passes[0]))
                return bad_usage("too many --pass options%s", "");
            o->passes[o->npasses++] = optarg;
            break;
        case OPT_CPU: o->cpu = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        case OPT_VERSION: printf("lathe %s\n", LATHE_VERSION); return 0;
        case ':': return bad_usage("option %s needs a value", argv[optind - 1]);
        default: return bad_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        o->input = argv[optind++];
    if (optind < argc)
        return bad_usage("unexpected argument '%s'", argv[optind]);
    return -1;
}

static Program *load_program(Arena *a, Diag *d, const char *path) {
    size_t len;
    char *text = fe_read_file(a, d, path, &len);
    if (!text)
        return NULL;
    return fe_compile(a, d, path, text);
}

/* The temporary object file, removed at exit too: codegen exits on LLVM's fatal errors. */
static char *temp_object;

static void remove_temp_object(void) {
    if (temp_object)
        unlink(temp_object);
    temp_object = NULL;
}

static int cmd_compile(const Options *o, Arena *a, Diag *d) {
    if (!o->output)
        return bad_usage("compile needs -o OUTPUT%s", "");
    Program *p = load_program(a, d, o->input);
    if (!p || !pass_pipeline(p, NULL, NULL, d))
        return 1;
    const char *tmpdir = getenv("TMPDIR");
    char *obj = arena_printf(a, "%s/lathe-%d-XXXXXX.o", tmpdir && *tmpdir ? tmpdir : "/tmp", (int)getpid());
    int fd = mkstemps(obj, 2);
    if (fd < 0) {
        diag_error(d, (Loc){0}, "cannot create a temporary object file %s: %s", obj, strerror(errno));
        return 1;
    }
    close(fd);
    temp_object = obj;
    atexit(remove_temp_object);
    CgOptions cg = {.cpu = o->cpu, .opt_level = o->opt_level};
    bool ok = cg_llvm_emit_object(p, &cg, obj, d) && cg_link(obj, o->output, d);
    remove_temp_object();
    return ok ? 0 : 1;
}

static int cmd_check(const Options *o, Arena *a, Diag *d) {
    Program *p = load_program(a, d, o->input);
    if (!p || !pass_pipeline(p, NULL, NULL, d))
        return 1;
    /* each tensor's size fits an int64, their sum need not */
    int64_t values = 0;
    bool overflow = false;
    for (int i = 0; i < p->nparams; i++)
        overflow |= __builtin_add_overflow(values, ir_shape_numel(&p->params[i].shape, 1), &values);
    printf("%s: ok: model %s, %d parameter tensors (%s%lld values)\n", o->input, p->model_name, p->nparams,
           overflow ? "over " : "", overflow ? (long long)INT64_MAX : (long long)values);
    const Graph *gs[] = {p->train, p->eval, p->predict};
    for (int i = 0; i < 3; i++) {
        if (!gs[i])
            continue;
        int64_t c, per_n;
        pass_memplan_size(gs[i], &c, &per_n);
        printf("  graph %-8s %4d nodes, arena %lld + %lld * N bytes\n", gs[i]->name, gs[i]->nnodes, (long long)c,
               (long long)per_n);
    }
    return 0;
}

static int cmd_ir(const Options *o, Arena *a, Diag *d) {
    Program *p = load_program(a, d, o->input);
    if (!p)
        return 1;
    if (!o->dot)
        return pass_pipeline(p, o->after, stdout, d) ? 0 : 1;
    if (!pass_pipeline(p, o->after, NULL, d))
        return 1;
    const Graph *gs[] = {p->train, p->eval, p->predict};
    for (int i = 0; i < 3; i++)
        if (gs[i])
            ir_print_dot(stdout, gs[i]);
    return 0;
}

static int cmd_opt(const Options *o, Arena *a, Diag *d) {
    size_t len;
    char *text = fe_read_file(a, d, o->input, &len);
    if (!text)
        return 1;
    diag_add_source(d, o->input, text, len);
    Graph **graphs;
    int ngraphs = ir_parse(a, d, o->input, text, &graphs);
    if (ngraphs == 0)
        return 1;
    for (int k = 0; k < o->npasses; k++) {
        PassFn fn = pass_by_name(o->passes[k]);
        if (!fn)
            return bad_usage("unknown pass '%s' (autodiff, optimizer, simplify, dce, memplan)", o->passes[k]);
        for (int g = 0; g < ngraphs; g++)
            if (!fn(graphs[g], d) || !ir_verify(graphs[g], d))
                return 1;
    }
    for (int g = 0; g < ngraphs; g++) {
        if (g)
            fputc('\n', stdout);
        ir_print(stdout, graphs[g]);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return bad_usage("no command given%s", "");
    Options o = {0};
    if (argv[1][0] == '-') {
        int rc = parse_options(argc, argv, &o);
        return rc >= 0 ? rc : bad_usage("no command given%s", "");
    }
    o.command = argv[1];
    int rc = parse_options(argc - 1, argv + 1, &o);
    if (rc >= 0)
        return rc;
    static const struct { const char *name; int (*fn)(const Options *, Arena *, Diag *); } cmds[] = {
        {"compile", cmd_compile}, {"check", cmd_check}, {"ir", cmd_ir}, {"opt", cmd_opt}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(cmds[i].name, o.command) != 0)
            continue;
        if (!o.input)
            return bad_usage("%s needs an input file", o.command);
        Arena *a = arena_new();
        Diag *d = diag_new(stderr);
        rc = cmds[i].fn(&o, a, d);
        if (rc == 0 && diag_error_count(d) > 0)
            rc = 1;
        diag_free(d);
        arena_free(a);
        return rc;
    }
    return bad_usage("unknown command '%s'", o.command);
}
