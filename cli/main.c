/* main.c: the lathe command. Reads as the table of contents of the compiler: the frontend turns a model
   file into a Program, the pipeline of passes completes its graphs, and codegen writes an object file that
   is linked with the runtime into an executable. */
#include "../codegen/codegen.h"
#include "../frontend/frontend.h"
#include "../passes/passes.h"
#include "../runtime/train.h"
#include "run.h"
#include "stats.h"
#include "sweep.h"
#include "emit.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: lathe COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  compile MODEL -o OUT   compile a model file into a training executable (--mem-report: print the\n"
    "                         memory plan; without -o, only that)\n"
    "  check MODEL            parse, check shapes and build every graph; print a summary\n"
    "  ir MODEL               print the IR after the whole pipeline (--after PASS: after that pass;\n"
    "                         --dot: as Graphviz; --stats: nodes, kernels, FLOPs, bytes, peak memory)\n"
    "  opt FILE.ir --pass P   run passes over a text IR file and print the result (for pass tests)\n"
    "  sweep MODEL --grid KEY=V1,V2,... | --random N KEY=DIST  [-- FLAGS]\n"
    "                         compile once, train once per trial of recipe values, rank the trials\n"
    "                         (lathe sweep --help for its options)\n"
    "  run MODEL COMMAND [FLAGS]  compile in memory (JIT) and run as the executable would: train, eval,\n"
    "                         predict, info with its flags (lathe run --help)\n"
    "\n"
    "options:\n"
    "  -o, --output FILE      the executable to write (compile)\n"
    "  --after PASS           one of: lower autodiff optimizer simplify cse layout dce fuse memplan, or\n"
    "                         all: after each (ir)\n"
    "  --dot                  print Graphviz instead of text IR (ir)\n"
    "  --pass PASS            a pass to run, repeatable, in order (opt; fuse always fuses here, and\n"
    "                         after memplan the plan follows each graph as comments)\n"
    "  --mem-report           print the memory plan: graphs, the train graph's buffers, the peak (compile)\n"
    "  --stats                print each graph's work and memory per step at a batch size (ir)\n"
    "  --batch N              the batch size of --mem-report and --stats (default: the recipe's batch)\n"
    "  --cpu NAME             the CPU to compile for (default: native)\n"
    "  --mpi                  link Open MPI: the executable trains data-parallel under mpirun (compile)\n"
    "  --emit KIND            what compile writes: exe (default), lib (OUT.h + libOUT.a), shared (OUT.h +\n"
    "                         libOUT.so), obj, asm, llvm (the object, assembly or LLVM IR), cuda (the\n"
    "                         CUDA C source)\n"
    "  --target cpu|cuda      cuda: the executable holds GPU code too, and runs it with --device cuda|auto\n"
    "                         (compile; lathe compile --help)\n"
    "  --prefix NAME          the C prefix of a library's functions (default: OUT's base name)\n"
    "  -O LEVEL               LLVM optimization level 0-3 (default 3)\n"
    "  -h, --help             this help (lathe COMMAND --help: that command's, with examples)\n"
    "  --version              the version\n"
    "\n"
    "examples:\n"
    "  lathe compile models/fashion_mlp.lathe -o fashion_mlp\n"
    "  ./fashion_mlp train --data /usr/share/datasets/fashion-mnist --checkpoint-dir ckpt\n"
    "  lathe ir models/fashion_mlp.lathe --after autodiff\n"
    "  lathe ir models/fashion_mlp.lathe --dot | dot -Tsvg -O    # noname.gv.svg, one file per graph\n"
    "  lathe ir models/fashion_mlp.lathe --stats\n"
    "  lathe sweep models/fashion_mlp.lathe --grid lr=1e-3,1e-2 --grid batch=64,128 -- --data DIR --epochs 1\n"
    "\n"
    "exit status: 0 success, 1 an error in the input (reported with its location), 2 bad usage;\n"
    "  lathe run: the command's own status; lathe sweep: 1 when no trial succeeded, 128 + N when stopped by\n"
    "  signal N; 134 (abort) an internal error, a bug to report with the model file\n";

typedef struct Options {
    const char *command, *input, *output, *after, *cpu;
    const char *passes[16];
    int npasses;
    bool dot, mem_report;
    bool stats; /* --stats: lathe ir's table of work and memory (cli/stats.h) */
    bool mpi; /* --mpi: link the Open MPI backend (runtime/dist.h) */
    const char *emit, *prefix; /* --emit KIND (NULL: exe), --prefix NAME (cli/emit.h) */
    const char *target, *cuda_arch, *precision; /* --target cpu|cuda, --cuda-arch LIST, --precision fp32|tf32 */
    int opt_level;
    long long batch; /* --batch; 0: the recipe's */
} Options;

static int bad_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "lathe: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(lathe --help for usage)\n");
    return 2;
}

/* `lathe COMMAND --help`: one entry per command that parse_options reads (run and sweep print their own).
   Each text says what the command does, its options, examples and exit status. */
#define EXIT_STATUS "exit status: 0 success, 1 an error in the input (reported with its location), 2 bad usage\n"
static const struct {
    const char *command, *text;
} command_help[] = {
    {"compile",
     "usage: lathe compile MODEL -o OUT [options]\n"
     "Compiles a model file into a training executable: frontend, passes, LLVM, linked with the runtime.\n"
     "The executable's train, eval, predict and info take the recipe's values as defaults (OUT --help).\n"
     "  -o, --output FILE   the executable to write\n"
     "  --mem-report        print the memory plan: graphs, the train graph's buffers, the peak\n"
     "                      (without -o, only that)\n"
     "  --batch N           the batch size of --mem-report (default: the recipe's batch)\n"
     "  --cpu NAME          the CPU to compile for (default: native)\n"
     "  -O LEVEL            LLVM optimization level 0-3 (default 3)\n"
     "  --emit KIND, --prefix NAME, --mpi   other outputs than an executable (lathe --help); --emit cuda\n"
     "                      writes the CUDA C source of --target cuda (-o FILE.cu)\n"
     "  --target cpu|cuda   cuda: the executable also holds the model's CUDA kernels, compiled by NVRTC\n"
     "                      (libnvrtc, found in $CUDA_HOME/lib64, /usr/local/cuda/lib64 or the loader's\n"
     "                      path; LATHE_NVRTC=FILE names it), and runs them with --device cuda or auto\n"
     "                      (its default); no GPU is needed to compile (default: cpu)\n"
     "  --cuda-arch LIST    the GPUs to build cubins for (default sm_80,sm_90); PTX for compute_80 is\n"
     "                      always added, which later GPUs compile when they start\n"
     "  --precision P       tf32 (default): float32 GEMMs and convolutions on TF32 tensor cores;\n"
     "                      fp32: in exact float32 arithmetic\n"
     "examples:\n"
     "  lathe compile models/fashion_mlp.lathe -o fashion_mlp\n"
     "  ./fashion_mlp train --data /usr/share/datasets/fashion-mnist --epochs 5 --checkpoint-dir ckpt\n"
     "  lathe compile models/fashion_cnn.lathe -o fashion_cnn -O2 --cpu x86-64-v3\n"
     "  lathe compile models/resnet20.lathe --mem-report --batch 256\n"
     "  lathe compile models/fashion_mlp.lathe --target cuda -o fashion_mlp_gpu --cuda-arch sm_90\n"
     "  ./fashion_mlp_gpu train --data /usr/share/datasets/fashion-mnist --device cuda\n"
     "  lathe compile models/fashion_mlp.lathe --emit cuda -o fashion_mlp.cu\n" EXIT_STATUS},
    {"check",
     "usage: lathe check MODEL\n"
     "Parses MODEL, checks its shapes and its train block, builds and plans every graph, and prints a\n"
     "summary (parameter tensors, each graph's nodes and arena). Writes nothing.\n"
     "examples:\n"
     "  lathe check models/fashion_mlp.lathe\n"
     "  for m in models/*.lathe; do lathe check \"$m\" || break; done\n" EXIT_STATUS},
    {"ir",
     "usage: lathe ir MODEL [--after PASS] [--dot | --stats [--batch N]]\n"
     "Prints the graphs of MODEL (train, grads, eval, predict, those it has) as text IR after the whole\n"
     "pipeline, or after one pass; fused kernels show as groups (\"in %R\") with a comment line each.\n"
     "  --after PASS   stop after PASS: lower autodiff optimizer simplify cse layout dce fuse memplan;\n"
     "                 all: the IR after every pass, each headed \"# *** IR after PASS ***\"\n"
     "  --dot          Graphviz instead (one digraph per graph): fused kernels as clusters, each node\n"
     "                 labelled with its op, type and model line\n"
     "  --stats        a table: per graph its nodes, kernels, FLOPs and bytes moved per step, and the\n"
     "                 memory its step holds; totals; then the train step's peak as --mem-report says it\n"
     "  --batch N      the batch of --stats (default: the recipe's batch)\n"
     "examples:\n"
     "  lathe ir models/fashion_mlp.lathe --after autodiff\n"
     "  lathe ir models/fashion_mlp.lathe --after all > passes.txt\n"
     "  lathe ir models/fashion_cnn.lathe --dot > cnn.dot && dot -Tsvg -O cnn.dot   # cnn.dot.svg, cnn.dot.2.svg...\n"
     "  lathe ir models/fashion_cnn.lathe --dot --after fuse | dot -Tpng > fused.png\n"
     "  lathe ir models/resnet20.lathe --stats --batch 128\n" EXIT_STATUS},
    {"opt",
     "usage: lathe opt FILE.ir --pass PASS [--pass PASS ...]\n"
     "Reads text IR (as lathe ir prints it), runs the passes in order over each graph, verifying the IR\n"
     "after each, and prints the result; after memplan the plan follows each graph as comments. The pass\n"
     "tests in tests/ir/PASS/ are such files beside their .expected output.\n"
     "  --pass PASS    autodiff optimizer simplify cse layout dce fuse memplan; repeatable, in order\n"
     "                 (fuse always fuses here, whatever LATHE_FUSE says)\n"
     "examples:\n"
     "  lathe opt tests/ir/fuse/broadcast_bias_relu.ir --pass fuse\n"
     "  lathe ir models/fashion_mlp.lathe --after cse > g.ir\n"
     "  lathe opt g.ir --pass dce --pass fuse --pass memplan\n" EXIT_STATUS},
};

/* The help of command (NULL or one without its own: the whole usage); exit status 0. */
static int print_help(const char *command) {
    for (size_t i = 0; command && i < sizeof command_help / sizeof command_help[0]; i++)
        if (strcmp(command_help[i].command, command) == 0) {
            fputs(command_help[i].text, stdout);
            return 0;
        }
    fputs(usage, stdout);
    return 0;
}

/* Returns -1 when the options are fine, else the exit status. */
static int parse_options(int argc, char **argv, Options *o) {
    enum { OPT_AFTER = 256, OPT_DOT, OPT_PASS, OPT_CPU, OPT_VERSION, OPT_MEM_REPORT, OPT_BATCH, OPT_MPI, OPT_EMIT,
           OPT_PREFIX, OPT_STATS, OPT_TARGET, OPT_CUDA_ARCH, OPT_PRECISION };
    static const struct option longs[] = {
        {"output", required_argument, NULL, 'o'}, {"after", required_argument, NULL, OPT_AFTER},
        {"dot", no_argument, NULL, OPT_DOT},      {"pass", required_argument, NULL, OPT_PASS},
        {"cpu", required_argument, NULL, OPT_CPU}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION}, {"mem-report", no_argument, NULL, OPT_MEM_REPORT},
        {"batch", required_argument, NULL, OPT_BATCH}, {"mpi", no_argument, NULL, OPT_MPI},
        {"emit", required_argument, NULL, OPT_EMIT}, {"prefix", required_argument, NULL, OPT_PREFIX},
        {"stats", no_argument, NULL, OPT_STATS}, {"target", required_argument, NULL, OPT_TARGET},
        {"cuda-arch", required_argument, NULL, OPT_CUDA_ARCH}, {"precision", required_argument, NULL, OPT_PRECISION},
        {NULL, 0, NULL, 0}};
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
        case OPT_MEM_REPORT: o->mem_report = true; break;
        case OPT_STATS: o->stats = true; break;
        case OPT_MPI: o->mpi = true; break;
        case OPT_EMIT: o->emit = optarg; break;
        case OPT_PREFIX: o->prefix = optarg; break;
        case OPT_TARGET: o->target = optarg; break;
        case OPT_CUDA_ARCH: o->cuda_arch = optarg; break;
        case OPT_PRECISION: o->precision = optarg; break;
        case OPT_BATCH: {
            char *end;
            errno = 0;
            o->batch = strtoll(optarg, &end, 10);
            if (errno || end == optarg || *end || o->batch < 1)
                return bad_usage("--batch takes a whole number of samples >= 1, not '%s'", optarg);
            break;
        }
        case 'h': return print_help(o->command);
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

/* The recipe as a produced binary reads it (runtime/train.h), so that a bad optimizer, schedule, metric or
   source is a compile error at its line rather than a failure of the binary. The message names the recipe
   key ("recipe key optimizer: ..."); the error is placed at that key's entry of the train block. */
static bool check_recipe(Program *p, Arena *a, RtManifest *m, Diag *d) {
    memset(m, 0, sizeof *m);
    char *text = cg_manifest(a, p, d);
    if (!text)
        return false;
    RtErr e = {{0}};
    int rc = rt_manifest_parse(m, text, &e);
    if (rc == RT_OK)
        rc = rt_recipe_check(m, m->recipe, &e);
    if (rc == RT_OK)
        return true;
    Loc at = {p->source_file, 1, 1};
    size_t best = 0;
    for (int i = 0; i < p->nrecipe; i++) {
        char key[128];
        snprintf(key, sizeof key, "recipe key %s", p->recipe[i].key);
        size_t n = strlen(key);
        const char *hit = strstr(e.msg, key);
        /* the longest key that the message names ("recipe key data" is also a prefix of nothing else) */
        if (hit && (hit[n] == ':' || hit[n] == '.' || hit[n] == ' ') && n > best) {
            best = n;
            at = p->recipe[i].loc;
        }
    }
    diag_error(d, at, "%s", e.msg);
    return false;
}

/* The temporary object files (the model's, and --target cuda's GPU data), removed at exit too: codegen exits
   on LLVM's fatal errors. */
static char *temp_objects[2];

static void remove_temp_objects(void) {
    for (int i = 0; i < 2; i++) {
        if (temp_objects[i])
            unlink(temp_objects[i]);
        temp_objects[i] = NULL;
    }
}

/* A new temporary object file (slot i of temp_objects); NULL after reporting. */
static char *temp_object(Arena *a, int i, Diag *d) {
    static bool hooked;
    const char *tmpdir = getenv("TMPDIR");
    char *obj = arena_printf(a, "%s/lathe-%d-XXXXXX.o", tmpdir && *tmpdir ? tmpdir : "/tmp", (int)getpid());
    int fd = mkstemps(obj, 2);
    if (fd < 0) {
        diag_error(d, (Loc){0}, "cannot create a temporary object file %s: %s", obj, strerror(errno));
        return NULL;
    }
    close(fd);
    temp_objects[i] = obj;
    if (!hooked)
        atexit(remove_temp_objects);
    hooked = true;
    return obj;
}

/* --target, --cuda-arch and --precision: -1 when they are fine (*cuda: GPU code is asked for, by --target
   cuda or --emit cuda), else the exit status after the message. */
static int cuda_options(const Options *o, bool *cuda, CgCudaOptions *co, CgCudaArchs *archs) {
    bool emit_cuda = o->emit && strcmp(o->emit, "cuda") == 0;
    if (o->target && strcmp(o->target, "cpu") != 0 && strcmp(o->target, "cuda") != 0)
        return bad_usage("--target takes cpu or cuda, not '%s'", o->target);
    if (emit_cuda && o->target && strcmp(o->target, "cpu") == 0)
        return bad_usage("--emit cuda writes the CUDA C of --target cuda, not of --target cpu%s", "");
    *cuda = emit_cuda || (o->target && strcmp(o->target, "cuda") == 0);
    if (!*cuda && (o->cuda_arch || o->precision))
        return bad_usage("%s goes with --target cuda", o->cuda_arch ? "--cuda-arch" : "--precision");
    if (emit_cuda && o->cuda_arch)
        return bad_usage("--cuda-arch goes with --target cuda (--emit cuda writes source, for any arch)%s", "");
    if (*cuda && cli_emit_other(o->emit) && !emit_cuda)
        return bad_usage("--target cuda makes an executable (or with --emit cuda its CUDA C), not --emit %s", o->emit);
    if (*cuda && o->mpi)
        return bad_usage("--mpi goes with --target cpu (data-parallel training on GPUs is not built yet)%s", "");
    if (o->precision && strcmp(o->precision, "fp32") != 0 && strcmp(o->precision, "tf32") != 0)
        return bad_usage("--precision takes fp32 or tf32, not '%s'", o->precision);
    co->fp32 = o->precision && strcmp(o->precision, "fp32") == 0;
    char why[256];
    if (!cg_cuda_archs_parse(o->cuda_arch ? o->cuda_arch : "sm_80,sm_90", archs, why, sizeof why))
        return bad_usage("%s", why);
    return -1;
}

/* c + per_n * n into *out; false on overflow. */
static bool bytes_at(int64_t c, int64_t per_n, int64_t n, int64_t *out) {
    return !__builtin_mul_overflow(per_n, n, out) && !__builtin_add_overflow(*out, c, out);
}

typedef struct Buffer {
    const Node *node;
    int64_t bytes;
} Buffer;

static int buffer_cmp(const void *a, const void *b) {
    const Buffer *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes < y->bytes ? 1 : -1;
    return (x->node->id > y->node->id) - (x->node->id < y->node->id);
}

static int kernels_of(const Graph *g) {
    int k = 0;
    for (int i = 0; i < g->nnodes; i++)
        k += ir_is_kernel(g->nodes[i]) && (g->nodes[i]->group < 0 || g->nodes[i]->group == i);
    return k;
}

/* `compile --mem-report`: one line per graph, the train graph's arena buffers largest first, the totals,
   and last the peak line that benchmarks parse:
       peak: B bytes at batch N (arena A, parameters P, optimizer state S, batch inputs I)
   B = A + P + S + I for the train step at batch N; the produced binary's `info` prints the same line. */
static bool mem_report(FILE *out, const Program *p, const RtManifest *m, int64_t batch, Diag *d) {
    const Graph *gs[] = {p->train, p->eval, p->predict};
    fprintf(out, "memory plan of %s (model %s) at batch %lld\n", p->source_file, p->model_name, (long long)batch);
    fprintf(out, "  %-8s %6s %8s  %-26s %14s\n", "graph", "nodes", "kernels", "arena bytes", "at batch");
    for (int i = 0; i < 3; i++) {
        if (!gs[i])
            continue;
        int64_t c, per_n, total;
        pass_memplan_size(gs[i], &c, &per_n);
        char formula[64];
        snprintf(formula, sizeof formula, "%lld + %lld * N", (long long)c, (long long)per_n);
        if (!bytes_at(c, per_n, batch, &total)) {
            diag_error(d, (Loc){0}, "the %s graph's arena at batch %lld passes 2^63 bytes", gs[i]->name,
                       (long long)batch);
            return false;
        }
        fprintf(out, "  %-8s %6d %8d  %-26s %14lld\n", gs[i]->name, gs[i]->nnodes, kernels_of(gs[i]), formula,
                (long long)total);
    }
    const Graph *g = program_train_graph(p) ? program_train_graph(p) : p->eval ? p->eval : p->predict;
    if (!g)
        return true;
    int nn = g->nnodes, nbuf = 0;
    Buffer *bufs = arena_alloc(p->arena, sizeof *bufs * (size_t)(nn + 1));
    int *written = arena_alloc(p->arena, sizeof(int) * (size_t)(nn + 1));
    int *last = arena_alloc(p->arena, sizeof(int) * (size_t)(nn + 1));
    pass_memplan_lifetimes(g, written, last);
    for (int i = 0; i < nn; i++) {
        const Node *n = g->nodes[i];
        if (n->mem.kind != MEM_ARENA)
            continue;
        int64_t b = pass_memplan_bytes(n);
        if (ir_shape_has_n(&n->shape) && __builtin_mul_overflow(b, batch, &b))
            b = INT64_MAX;
        bufs[nbuf++] = (Buffer){n, b};
    }
    qsort(bufs, (size_t)nbuf, sizeof *bufs, buffer_cmp);
    fprintf(out, "\n%s graph: %d arena buffers, largest first\n", g->name, nbuf);
    fprintf(out, "  %-7s %-20s %5s %14s  %s\n", "node", "op", "line", "bytes", "live (positions)");
    for (int i = 0; i < nbuf; i++) {
        const Node *n = bufs[i].node;
        char id[16], live[48];
        snprintf(id, sizeof id, "%%%d", n->id);
        if (last[n->id] >= nn)
            snprintf(live, sizeof live, "%d..end", written[n->id]);
        else
            snprintf(live, sizeof live, "%d..%d", written[n->id], last[n->id]);
        fprintf(out, "  %-7s %-20s %5d %14lld  %s\n", id, ir_op_name(n->op), n->loc.file ? n->loc.line : 0,
                (long long)bufs[i].bytes, live);
    }
    RtPeak pk;
    RtErr e = {{0}};
    if (rt_plan_peak(m, m->recipe, batch, &pk, &e) != RT_OK) {
        diag_error(d, (Loc){0}, "%s", e.msg);
        return false;
    }
    fprintf(out, "\ntotals of the %s step at batch %lld:\n", pk.graph, (long long)batch);
    fprintf(out, "  %-16s %14lld\n", "arena", (long long)pk.arena);
    fprintf(out, "  %-16s %14lld\n", "parameters", (long long)pk.params);
    fprintf(out, "  %-16s %14lld\n", "optimizer state", (long long)pk.state);
    if (pk.grads)
        fprintf(out, "  %-16s %14lld\n", "gradients", (long long)pk.grads);
    fprintf(out, "  %-16s %14lld\n", "batch inputs", (long long)pk.inputs);
    rt_peak_print(out, &pk, batch);
    return true;
}

/* The recipe's batch, or 64 as the produced binary's default. */
static int64_t recipe_batch(const Program *p) {
    const RVal *b = program_recipe(p, "batch");
    if (b && b->kind == RV_NUM && b->is_int && b->num >= 1 && b->num < 9e15)
        return (int64_t)b->num;
    return 64;
}

static int cmd_compile(const Options *o, Arena *a, Diag *d) {
    if (!o->output && !o->mem_report)
        return bad_usage("compile needs -o OUTPUT%s", "");
    if (o->batch && !o->mem_report)
        return bad_usage("--batch goes with --mem-report%s", "");
    int emit_rc = cli_emit_check(o->emit, o->prefix, o->mpi);
    if (emit_rc >= 0)
        return emit_rc;
    bool cuda;
    CgCudaOptions co = {0};
    CgCudaArchs archs;
    int cuda_rc = cuda_options(o, &cuda, &co, &archs);
    if (cuda_rc >= 0)
        return cuda_rc;
    Program *p = load_program(a, d, o->input);
    RtManifest m;
    if (!p || !pass_pipeline(p, NULL, NULL, d))
        return 1;
    bool ok = check_recipe(p, a, &m, d) &&
              (!o->mem_report || mem_report(stdout, p, &m, o->batch ? (int64_t)o->batch : recipe_batch(p), d));
    rt_manifest_free(&m);
    if (!ok)
        return 1;
    if (!o->output)
        return 0;
    if (o->emit && strcmp(o->emit, "cuda") == 0)
        return cli_emit_cuda(a, p, &co, o->output, d) ? 0 : 1;
    if (cli_emit_other(o->emit)) {
        CgOptions cg = {.cpu = o->cpu, .opt_level = o->opt_level};
        return cli_emit(a, p, &cg, o->emit, o->output, o->prefix, d) ? 0 : 1;
    }
    CgOptions cg = {.cpu = o->cpu, .opt_level = o->opt_level};
    char *obj = temp_object(a, 0, d);
    if (!obj)
        return 1;
    if (cuda) { /* the GPU code first: its errors (no kernel for an op, NVRTC's) come before LLVM's time */
        const char *slash = strrchr(o->output, '/');
        char *cuda_obj = temp_object(a, 1, d);
        ok = cuda_obj &&
             cli_cuda_object(a, p, &co, &archs, &cg, arena_printf(a, "%s.cu", slash ? slash + 1 : o->output),
                             cuda_obj, d) &&
             cg_llvm_emit_object(p, &cg, obj, d) && cg_link_cuda(obj, cuda_obj, o->output, d);
    } else {
        ok = cg_llvm_emit_object(p, &cg, obj, d) && (o->mpi ? cg_link_mpi : cg_link)(obj, o->output, d);
    }
    remove_temp_objects();
    return ok ? 0 : 1;
}

static int cmd_check(const Options *o, Arena *a, Diag *d) {
    Program *p = load_program(a, d, o->input);
    RtManifest m;
    if (!p || !pass_pipeline(p, NULL, NULL, d))
        return 1;
    bool ok = check_recipe(p, a, &m, d);
    rt_manifest_free(&m);
    if (!ok)
        return 1;
    /* each tensor's size fits an int64, their sum need not */
    int64_t values = 0;
    bool overflow = false;
    for (int i = 0; i < p->nparams; i++)
        overflow |= __builtin_add_overflow(values, ir_shape_numel(&p->params[i].shape, 1), &values);
    printf("%s: ok: model %s, %d parameter tensors (%s%lld values)\n", o->input, p->model_name, p->nparams,
           overflow ? "over " : "", overflow ? (long long)INT64_MAX : (long long)values);
    Graph *gs[4];
    for (int i = 0, ng = program_graphs(p, gs); i < ng; i++) {
        int64_t c, per_n;
        pass_memplan_size(gs[i], &c, &per_n);
        printf("  graph %-8s %4d nodes, arena %lld + %lld * N bytes\n", gs[i]->name, gs[i]->nnodes, (long long)c,
               (long long)per_n);
    }
    return 0;
}

/* `ir --stats`: the table (cli/stats.c), then, after the whole pipeline, the train step's peak line as
   `compile --mem-report` ends with it (with the optimizer state that the runtime keeps). */
static int ir_stats(const Options *o, Program *p, Arena *a, Diag *d) {
    bool planned = !o->after || strcmp(o->after, "memplan") == 0;
    int64_t batch = o->batch ? (int64_t)o->batch : recipe_batch(p);
    stats_print(stdout, p, batch, planned);
    if (!planned || !program_train_graph(p))
        return 0;
    RtManifest m;
    RtPeak pk;
    RtErr e = {{0}};
    bool ok = check_recipe(p, a, &m, d);
    if (ok && rt_plan_peak(&m, m.recipe, batch, &pk, &e) != RT_OK) {
        diag_error(d, (Loc){0}, "%s", e.msg);
        ok = false;
    }
    if (ok)
        rt_peak_print(stdout, &pk, batch);
    rt_manifest_free(&m);
    return ok ? 0 : 1;
}

static int cmd_ir(const Options *o, Arena *a, Diag *d) {
    if (o->dot && o->stats)
        return bad_usage("--dot and --stats go one at a time%s", "");
    if (o->batch && !o->stats)
        return bad_usage("--batch goes with --stats (ir) or --mem-report (compile)%s", "");
    Program *p = load_program(a, d, o->input);
    if (!p)
        return 1;
    if (o->after && strcmp(o->after, "all") == 0 && (o->dot || o->stats))
        return bad_usage("--after all prints text IR after every pass; with --dot or --stats name one pass%s", "");
    if (o->stats)
        return pass_pipeline(p, o->after, NULL, d) ? ir_stats(o, p, a, d) : 1;
    if (!o->dot)
        return pass_pipeline(p, o->after, stdout, d) ? 0 : 1;
    if (!pass_pipeline(p, o->after, NULL, d))
        return 1;
    Graph *gs[4];
    for (int i = 0, ng = program_graphs(p, gs); i < ng; i++)
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
        /* the pipeline's fuse yields to LATHE_FUSE=0 (passes.h); asked for by name, it fuses */
        PassFn fn = strcmp(o->passes[k], "fuse") == 0 ? pass_fuse_run : pass_by_name(o->passes[k]);
        if (!fn)
            return bad_usage("unknown pass '%s' (autodiff, optimizer, simplify, cse, layout, dce, fuse, memplan)",
                             o->passes[k]);
        for (int g = 0; g < ngraphs; g++)
            if (!fn(graphs[g], d) || !ir_verify(graphs[g], d))
                return 1;
    }
    bool planned = false;
    for (int k = 0; k < o->npasses; k++)
        planned |= strcmp(o->passes[k], "memplan") == 0;
    for (int g = 0; g < ngraphs; g++) {
        if (g)
            fputc('\n', stdout);
        ir_print_noted(stdout, graphs[g], pass_fuse_note);
        if (planned)
            pass_memplan_print(stdout, graphs[g]);
    }
    return 0;
}

/* What `lathe compile` generates code from, for lathe run (cli/run.h) */
static Program *program_for_run(Arena *a, Diag *d, const char *model) {
    Program *p = load_program(a, d, model);
    RtManifest m;
    if (!p || !pass_pipeline(p, NULL, NULL, d))
        return NULL;
    bool ok = check_recipe(p, a, &m, d);
    rt_manifest_free(&m);
    return ok ? p : NULL;
}

/* `lathe compile MODEL -o EXE` for lathe sweep (cli/sweep.h) */
static int compile_for_sweep(const char *model, const char *exe) {
    Options o = {.command = "compile", .input = model, .output = exe, .opt_level = 3};
    Arena *a = arena_new();
    Diag *d = diag_new(stderr);
    int rc = cmd_compile(&o, a, d);
    if (rc == 0 && diag_error_count(d) > 0)
        rc = 1;
    diag_free(d);
    arena_free(a);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return bad_usage("no command given%s", "");
    if (strcmp(argv[1], "run") == 0) /* the produced executable's flags after MODEL COMMAND */
        return run_main(argc - 1, argv + 1, program_for_run);
    if (strcmp(argv[1], "sweep") == 0) /* its own options, and the trials' after -- */
        return sweep_main(argc - 1, argv + 1, compile_for_sweep);
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
