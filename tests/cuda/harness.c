/* harness.c: every kernel kind and every model's graphs through the CUDA backend without a GPU. Each graph
   (the hand-written ones of cases.c, and the train, grads, eval and predict graphs of each models/ file) is
   generated as CUDA C (cg_cuda_generate_graph), compiled for the host by g++ with the emulation
   (emu/lathe_cuda_emu.h; the shared objects are cached by their source's hash in the build folder), and run
   by the executor (runtime/cuda_exec.c) on the emulated driver, for n = 3, for n = 1 with the same plan and
   buffers, and for n = 3 again on at most two blocks a launch (every kernel must be correct for any grid).
   Every output and update is compared with the interpreter: the largest difference over the output's
   largest magnitude at most 1e-5 for float32 (TF32: see Mode), 1e-9 for float64, exact for integers. A
   graph with a float32 GEMM or convolution is checked in the TF32 modes too. A graph whose kernels the
   generator cannot make yet is skipped with its reason. By default the smaller models run (CI time);
   --models all runs every file of models/.
     cuda_emu_harness [--models all|none|NAME,...] [--quiet] [--verbose] [SUBSTRING...]
   Exit status: 0 when nothing failed, 1 when something did, 77 when nothing could run (no g++, or no kernel
   generated yet). */
#include "harness.h"

#include "emu_driver.h"

#include "../../codegen/codegen.h"
#include "../../codegen/cuda/cuda.h"
#include "../../frontend/frontend.h"
#include "../../passes/passes.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { SKIP = 77, MAX_ROWS = 256 };

/* the models run by default: each kind of layer once (conv_mlp, resnet20, vgg11_bn and vit_tiny repeat
   them at several times the cost), so that a CI run stays under two minutes with its g++ runs */
static const char *default_models = "linear_regression,fashion_mlp,lenet5,fashion_cnn,char_gpt";

typedef enum { R_PASS, R_FAIL, R_SKIP } Result;

/* How a graph is generated, compiled and checked. TF32 is checked twice on the same source: with the
   emulation's float32 arithmetic in place of TF32's rounding (the kernels' tiles and indices, as tightly as
   float32, in every run), and with TF32 rounding as the hardware's, once (n = 3). A model's gradients under
   TF32 are not within 1e-3 of exact arithmetic: where the forward pass differs by TF32's error, a ReLU's mask
   or a max-pool's choice flips and moves whole terms of a weight gradient, and a BatchNorm over 3 samples
   magnifies it (measured: up to 9% on resnet20's, 25% on vgg11_bn's); there only gross errors (a wrong
   tile, garbage, NaN: errors of 1 and more) fail. */
typedef struct Mode {
    const char *name;
    bool fp32;             /* CgCudaOptions.fp32 */
    bool exact_tf32;       /* compiled with -DLATHE_EMU_TF32_EXACT */
    double tol, tol_model; /* float32 outputs' tolerance on hand-written graphs and on models */
    int runs;              /* of run_plan's three */
} Mode;

static const Mode modes[] = {
    {"fp32", true, false, 1e-5, 1e-5, 3},
    {"tf32x", false, true, 1e-5, 1e-5, 3},
    {"tf32", false, false, 1e-3, 0.5, 1},
};

typedef struct Row {
    char name[96];
    const char *mode; /* Mode.name */
    Result r;
    double worst;  /* the largest error of a float output over its tolerance's scale */
    double secs;
    char why[320];
} Row;

static Row rows[MAX_ROWS];
static int nrows;
static bool quiet, verbose;
static char header_path[1024], cache_dir[1024];
static uint64_t header_hash;

/* snprintf where a cut message or name is fine (a path into a row's reason) */
static void textf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void textf(char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- compiling with the emulation */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ULL;
    return h;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *s = NULL;
    size_t len = 0, cap = 0, got;
    char buf[65536];
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        if (len + got + 1 > cap) {
            cap = (len + got + 1) * 2;
            char *grown = realloc(s, cap);
            if (!grown) {
                free(s);
                fclose(f);
                return NULL;
            }
            s = grown;
        }
        memcpy(s + len, buf, got);
        len += got;
    }
    fclose(f);
    if (s)
        s[len] = 0;
    return s;
}

static bool on_path(const char *tool) {
    const char *path = getenv("PATH");
    char buf[1024];
    for (const char *p = path ? path : "/usr/bin"; *p;) {
        size_t len = strcspn(p, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)len, p, tool);
        if (access(buf, X_OK) == 0)
            return true;
        p += len + (p[len] == ':');
    }
    return false;
}

static const char *gxx_flags[] = {"-std=c++17", "-O1", "-fPIC", "-shared", "-w", "-DLATHE_CUDA_EMULATE"};

/* The shared object of source, from the cache or compiled now; false with the reason in why. */
static bool compile(const char *source, bool exact_tf32, char *so, size_t so_size, char *why, size_t why_size) {
    uint64_t h = fnv1a(header_hash, source, strlen(source));
    h = fnv1a(h, &exact_tf32, sizeof exact_tf32);
    snprintf(so, so_size, "%s/%016llx.so", cache_dir, (unsigned long long)h);
    if (access(so, R_OK) == 0)
        return true;
    char cu[1100], tmp[1100];
    snprintf(cu, sizeof cu, "%s/%016llx.cu", cache_dir, (unsigned long long)h);
    snprintf(tmp, sizeof tmp, "%s/%016llx.%d.so", cache_dir, (unsigned long long)h, (int)getpid());
    FILE *f = fopen(cu, "w");
    if (!f || fputs(source, f) < 0 || fclose(f) != 0) {
        textf(why, why_size, "cannot write %s: %s", cu, strerror(errno));
        return false;
    }
    const char *argv[32];
    int k = 0;
    argv[k++] = "g++";
    for (size_t i = 0; i < sizeof gxx_flags / sizeof *gxx_flags; i++)
        argv[k++] = gxx_flags[i];
    if (exact_tf32)
        argv[k++] = "-DLATHE_EMU_TF32_EXACT";
    /* fmaf as an instruction, not libm's call (the same result: both round once) */
    if (__builtin_cpu_supports("fma"))
        argv[k++] = "-mfma";
    argv[k++] = "-include";
    argv[k++] = header_path;
    argv[k++] = "-x";
    argv[k++] = "c++";
    argv[k++] = cu;
    argv[k++] = "-o";
    argv[k++] = tmp;
    argv[k] = NULL;
    Diag *d = diag_new(NULL);
    bool ok = cg_run_tool(argv, "compile the emulated kernels", d);
    if (!ok) {
        textf(why, why_size, "g++ failed on %s: %s", cu, diag_first_message(d));
    } else if (rename(tmp, so) != 0) {
        textf(why, why_size, "cannot create %s: %s", so, strerror(errno));
        ok = false;
    }
    diag_free(d);
    unlink(tmp);
    return ok;
}

/* ---------------------------------------------------------------- one run against the interpreter */

static double elem_get(const void *buf, DType t, int64_t i) {
    switch (t) {
    case DT_F32: return ((const float *)buf)[i];
    case DT_F64: return ((const double *)buf)[i];
    case DT_I32: return ((const int32_t *)buf)[i];
    case DT_I64: return (double)((const int64_t *)buf)[i];
    case DT_U8: return ((const uint8_t *)buf)[i];
    default: break;
    }
    LATHE_UNREACHABLE("elem_get: unknown dtype");
}

static void elem_put(void *buf, DType t, int64_t i, double v) {
    switch (t) {
    case DT_F32: ((float *)buf)[i] = (float)v; return;
    case DT_F64: ((double *)buf)[i] = v; return;
    case DT_I32: ((int32_t *)buf)[i] = (int32_t)v; return;
    case DT_I64: ((int64_t *)buf)[i] = (int64_t)v; return;
    case DT_U8: ((uint8_t *)buf)[i] = (uint8_t)v; return;
    default: break;
    }
    LATHE_UNREACHABLE("elem_put: unknown dtype");
}

/* floats in [-1, 1), a matrix parameter's scaled by 1/sqrt(fan-in), vector parameters (BatchNorm's running
   variance among them) and state in [0.5, 1.5) so that variances stay positive; "lr" in [0.01, 0.11);
   integers in {0, 1}: valid labels, tokens and indices everywhere */
static double leaf_value(const GraphArg *arg, uint64_t *rng) {
    *rng = *rng * 6364136223846793005ULL + 1442695040888963407ULL;
    double u = (double)(*rng >> 11) / 9007199254740992.0;
    const Node *v = arg->node;
    if (!ir_dtype_is_float(v->dtype))
        return u < 0.5 ? 0 : 1;
    if (strcmp(arg->name, "lr") == 0)
        return 0.01 + 0.1 * u;
    if (arg->role == ARG_STATE || (arg->role == ARG_PARAM && v->shape.rank < 2))
        return 0.5 + u;
    if (arg->role == ARG_PARAM) {
        int64_t fan_in = ir_shape_numel(&v->shape, 1) / v->shape.dim[0];
        return (2 * u - 1) / sqrt((double)(fan_in > 0 ? fan_in : 1));
    }
    return 2 * u - 1;
}

static int find_arg(const GraphArg *args, int nargs, const Output *o) {
    for (int a = 0; a < nargs; a++)
        if (strcmp(args[a].name, o->name) == 0 &&
            (o->update ? args[a].role == ARG_PARAM || args[a].role == ARG_STATE : args[a].role == ARG_OUTPUT))
            return a;
    return -1;
}

/* The largest finite magnitude of an output of the interpreter; *nonfinite counts the others. */
static double ref_scale(const Graph *g, int i, const ITensor *ref, int64_t n, int64_t *nonfinite) {
    int64_t numel = ir_shape_numel(&g->outputs[i].value->shape, n);
    double scale = 0;
    for (int64_t k = 0; k < numel; k++) {
        if (isfinite(ref->data[k]))
            scale = fmax(scale, fabs(ref->data[k]));
        else
            ++*nonfinite;
    }
    return scale;
}

/* Output o's values in buf against the interpreter's ref: false with the first mismatch in why; *worst
   gets the error over the tolerance's scale when larger. The scale is the output's largest magnitude, or a
   thousandth of the graph's largest where that is more: a gradient that is 0 in exact arithmetic (a bias
   before a BatchNorm) is rounding noise in both float32 and the interpreter's double. */
static bool compare(const Output *o, const void *buf, const ITensor *ref, int64_t n, double scale, double tol,
                    double *worst, char *why, size_t why_size) {
    DType t = o->value->dtype;
    int64_t numel = ir_shape_numel(&o->value->shape, n);
    if (!ir_dtype_is_float(t))
        tol = 0;
    double err = 0;
    int64_t at = -1;
    for (int64_t i = 0; i < numel; i++) {
        double x = elem_get(buf, t, i), want = ref->data[i];
        double e = (isnan(x) && isnan(want)) || x == want ? 0 : !isfinite(x) || !isfinite(want) ? INFINITY
                                                                                                : fabs(x - want) / fmax(scale, 1e-30);
        if (e > err) {
            err = e;
            at = i;
        }
    }
    if (ir_dtype_is_float(t) && isfinite(err))
        *worst = fmax(*worst, err);
    if (verbose)
        printf("     n = %lld: %-48s %-4s error %.3g, scale %.3g\n", (long long)n, o->name, ir_dtype_name(t), err, scale);
    if (err <= tol)
        return true;
    snprintf(why, why_size, "n = %lld: %s[%lld] = %.9g, interpreter %.9g (error %.3g over the scale %.3g)",
             (long long)n, o->name, (long long)at, elem_get(buf, t, at), ref->data[at], err, scale);
    return false;
}

typedef struct Runner {
    Arena *a;
    const Graph *g;
    const char *graph; /* the plan's name of g */
    RtCudaExec *x;
    RtCudaDriver *drv;
    double tol;   /* float32's; float64's is 1e-9, integers' 0 */
    bool model;   /* a model's graph: a NaN or infinity in the interpreter's outputs means unfit inputs */
    double worst;
} Runner;

/* One run of the plan for n against the interpreter; false with the reason in why. */
static bool run_and_compare(Runner *r, int64_t n, uint64_t seed, char *why, size_t why_size) {
    const Graph *g = r->g;
    int nargs = ir_graph_args(g, NULL);
    GraphArg *args = arena_alloc(r->a, sizeof *args * (size_t)(nargs + 1));
    ir_graph_args(g, args);
    void **bufs = arena_alloc(r->a, sizeof *bufs * (size_t)(nargs + 1));
    size_t *sizes = arena_alloc(r->a, sizeof *sizes * (size_t)(nargs + 1));
    IBinding *bind = arena_alloc(r->a, sizeof *bind * (size_t)(nargs + 1));
    int nbind = 0;
    uint64_t rng = seed;
    for (int a = 0; a < nargs; a++) {
        const Node *v = args[a].node;
        int64_t numel = ir_shape_numel(&v->shape, n);
        sizes[a] = (size_t)numel * ir_dtype_size(v->dtype);
        bufs[a] = arena_alloc(r->a, sizes[a] + 8);
        if (args[a].role == ARG_OUTPUT) {
            memset(bufs[a], 0xcd, sizes[a]);
            continue;
        }
        Shape s = v->shape;
        for (int d = 0; d < s.rank; d++)
            if (s.dim[d] == IR_DIM_N)
                s.dim[d] = n;
        ITensor t = {s, arena_alloc(r->a, sizeof(double) * (size_t)(numel + 1))};
        for (int64_t i = 0; i < numel; i++) {
            elem_put(bufs[a], v->dtype, i, leaf_value(&args[a], &rng));
            t.data[i] = elem_get(bufs[a], v->dtype, i);
        }
        bind[nbind++] = (IBinding){args[a].name, t};
    }
    RtErr e = {{0}};
    if (rt_cuda_exec_run(r->x, r->graph, bufs, sizes, n, &e) != RT_OK) {
        textf(why, why_size, "n = %lld: %s", (long long)n, e.msg);
        return false;
    }
    char gerr[256];
    if (!emu_driver_guards_ok(r->drv, gerr, sizeof gerr)) {
        snprintf(why, why_size, "n = %lld: %s", (long long)n, gerr);
        return false;
    }
    Diag *d = diag_new(NULL);
    ITensor *ref = ir_interp(r->a, g, n, bind, nbind, d);
    if (!ref) {
        snprintf(why, why_size, "n = %lld: the interpreter failed: %s", (long long)n, diag_first_message(d));
        diag_free(d);
        return false;
    }
    diag_free(d);
    double *scales = arena_alloc(r->a, sizeof *scales * (size_t)(g->noutputs + 1)), top = 0;
    int64_t nonfinite = 0;
    for (int i = 0; i < g->noutputs; i++) {
        scales[i] = ref_scale(g, i, &ref[i], n, &nonfinite);
        if (ir_dtype_is_float(g->outputs[i].value->dtype))
            top = fmax(top, scales[i]);
    }
    if (r->model && nonfinite) {
        snprintf(why, why_size, "n = %lld: the interpreter's outputs hold %lld NaNs or infinities: the inputs do "
                 "not fit the model", (long long)n, (long long)nonfinite);
        return false;
    }
    for (int i = 0; i < g->noutputs; i++) {
        int a = find_arg(args, nargs, &g->outputs[i]);
        if (a < 0) {
            snprintf(why, why_size, "output %s has no argument", g->outputs[i].name);
            return false;
        }
        double tol = g->outputs[i].value->dtype == DT_F64 ? 1e-9 : r->tol;
        if (!compare(&g->outputs[i], bufs[a], &ref[i], n, fmax(scales[i], 1e-3 * top), tol, &r->worst, why, why_size))
            return false;
    }
    return true;
}

/* The first `runs` of one graph's plan: n = 3, n = 1 (the same executor: buffers kept), n = 3 on at most 2
   blocks a launch with each block's threads run last to first. */
static bool run_plan(Runner *r, const char *so, const char *plan, int runs, char *why, size_t why_size) {
    RtCudaDriver drv;
    if (!emu_driver_open(&drv, so, why, why_size))
        return false;
    RtErr e = {{0}};
    r->drv = &drv;
    r->x = rt_cuda_exec_new(plan, &drv, &e);
    bool ok = r->x != NULL;
    if (!ok)
        textf(why, why_size, "%s", e.msg);
    static const int64_t ns[3] = {3, 1, 3};
    static const unsigned grids[3] = {0, 0, 2};
    for (int i = 0; i < runs && ok; i++) {
        if (!emu_driver_set_schedule(&drv, grids[i], grids[i] != 0)) {
            textf(why, why_size, "%s has no lathe_emu_set_reverse", so);
            ok = false;
            break;
        }
        ok = run_and_compare(r, ns[i], 0x243f6a8885a308d3ULL + (uint64_t)ns[i], why, why_size);
        if (!ok && grids[i]) {
            size_t len = strlen(why);
            snprintf(why + len, why_size - len, " (grids cut to %u blocks, threads last to first)", grids[i]);
        }
    }
    rt_cuda_exec_free(r->x);
    emu_driver_close(&drv);
    return ok;
}

static bool has_f32_gemm(const Graph *g) {
    for (int i = 0; i < g->nnodes; i++) {
        Op op = g->nodes[i]->op;
        if (g->nodes[i]->dtype == DT_F32 && (op == OP_MATMUL || op == OP_CONV2D || op == OP_CONV2D_BWD_INPUT ||
                                             op == OP_CONV2D_BWD_WEIGHT))
            return true;
    }
    return false;
}

/* g through generation, g++ and the executor in one mode: one row of the table. */
static void check_mode(Arena *a, const Graph *g, const char *label, const Mode *m, bool model) {
    if (nrows == MAX_ROWS)
        return;
    Row *row = &rows[nrows++];
    snprintf(row->name, sizeof row->name, "%s", label);
    row->mode = m->name;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    Diag *d = diag_new(NULL);
    CgCudaOptions o = {m->fp32};
    CgCudaProgram cp;
    char so[1100];
    if (!cg_cuda_generate_graph(a, g, &o, &cp, d)) {
        row->r = R_SKIP;
        snprintf(row->why, sizeof row->why, "generator: %s", diag_first_message(d));
    } else if (!compile(cp.source, m->exact_tf32, so, sizeof so, row->why, sizeof row->why)) {
        row->r = R_FAIL;
    } else {
        Runner r = {a, g, cp.graphs[0].name, NULL, NULL, model ? m->tol_model : m->tol, model, 0};
        row->r = run_plan(&r, so, cg_cuda_plan_json(a, &cp), m->runs, row->why, sizeof row->why) ? R_PASS : R_FAIL;
        row->worst = r.worst;
    }
    diag_free(d);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    row->secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (!quiet) {
        static const char *names[] = {"PASS", "FAIL", "SKIP"};
        printf("%-4s %-40s %-5s %8.2e %6.1fs  %s\n", names[row->r], row->name, row->mode, row->worst, row->secs,
               row->why);
        fflush(stdout);
    }
}

/* The fp32 mode, and the TF32 modes where g has a float32 GEMM or convolution. */
static void check_graph(Arena *a, const Graph *g, const char *label, bool model) {
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++)
        if (modes[i].fp32 || has_f32_gemm(g))
            check_mode(a, g, label, &modes[i], model);
}

/* ---------------------------------------------------------------- the graphs */

/* A memory plan that does not know groups yet leaves members that nothing outside reads with a buffer; they
   are simply marked fused (test_cg_fused.c's plan). */
static bool plan_graph(Graph *g, Diag *d) {
    if (!ir_verify(g, d) || !pass_memplan(g, d))
        return false;
    for (int i = 0; i < g->nnodes; i++) {
        Node *m = g->nodes[i];
        if (m->group >= 0 && !ir_group_materialized(g, m))
            m->mem = (MemLoc){MEM_FUSED, -1, 0, 0};
    }
    return true;
}

static bool selected(const char *name, char **filters, int nfilters) {
    if (nfilters == 0)
        return true;
    for (int i = 0; i < nfilters; i++)
        if (strstr(name, filters[i]))
            return true;
    return false;
}

static void add_failure(const char *label, const char *why) {
    if (nrows == MAX_ROWS)
        return;
    Row *row = &rows[nrows++];
    snprintf(row->name, sizeof row->name, "%s", label);
    row->mode = "-";
    row->r = R_FAIL;
    snprintf(row->why, sizeof row->why, "%s", why);
    if (!quiet)
        printf("FAIL %-44s %s\n", label, why);
}

static void run_cases(char **filters, int nfilters) {
    for (int i = 0; i < harness_ncases; i++) {
        char label[96];
        snprintf(label, sizeof label, "op/%s", harness_cases[i].name);
        if (!selected(label, filters, nfilters))
            continue;
        Arena *a = arena_new();
        Diag *d = diag_new(NULL);
        Graph **gs;
        if (ir_parse(a, d, harness_cases[i].name, harness_cases[i].text, &gs) != 1 || !plan_graph(gs[0], d))
            add_failure(label, diag_first_message(d));
        else
            check_graph(a, gs[0], label, false);
        diag_free(d);
        arena_free(a);
    }
}

static void run_model(const char *model, char **filters, int nfilters) {
    char path[1024];
    textf(path, sizeof path, "%s/models/%s.lathe", LATHE_SOURCE_DIR, model);
    Arena *a = arena_new();
    Diag *d = diag_new(NULL);
    char *text = fe_read_file(a, d, path, NULL);
    Program *p = text ? fe_compile(a, d, path, text) : NULL;
    char label[96];
    textf(label, sizeof label, "model/%s", model);
    if (!p || !pass_pipeline(p, NULL, NULL, d)) {
        if (selected(label, filters, nfilters))
            add_failure(label, diag_first_message(d));
    } else {
        Graph *gs[4];
        int ng = program_graphs(p, gs);
        for (int i = 0; i < ng; i++) {
            textf(label, sizeof label, "model/%s/%s", model, gs[i]->name ? gs[i]->name : "graph");
            if (selected(label, filters, nfilters))
                check_graph(a, gs[i], label, true);
        }
    }
    diag_free(d);
    arena_free(a);
}

/* The models named in list (comma-separated), "all" for every file of models/, "none" for none. */
static void run_models(const char *list, char **filters, int nfilters) {
    if (strcmp(list, "none") == 0)
        return;
    char names[64][64];
    int count = 0;
    if (strcmp(list, "all") == 0) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/models", LATHE_SOURCE_DIR);
        DIR *dp = opendir(dir);
        for (struct dirent *de; dp && (de = readdir(dp)) && count < 64;) {
            size_t len = strlen(de->d_name);
            if (len > 6 && len < 64 && strcmp(de->d_name + len - 6, ".lathe") == 0)
                snprintf(names[count++], 64, "%.*s", (int)len - 6, de->d_name);
        }
        if (dp)
            closedir(dp);
        qsort(names, (size_t)count, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    } else {
        for (const char *p = list; *p && count < 64;) {
            size_t len = strcspn(p, ",");
            snprintf(names[count++], 64, "%.*s", (int)len, p);
            p += len + (p[len] == ',');
        }
    }
    for (int i = 0; i < count; i++)
        run_model(names[i], filters, nfilters);
}

static bool setup(void) {
    snprintf(header_path, sizeof header_path, "%s/tests/cuda/emu/lathe_cuda_emu.h", LATHE_SOURCE_DIR);
    snprintf(cache_dir, sizeof cache_dir, "%s/cuda_emu", LATHE_BINARY_DIR);
    char *header = read_text(header_path);
    if (!header) {
        fprintf(stderr, "cuda_emu_harness: cannot read %s: %s\n", header_path, strerror(errno));
        return false;
    }
    header_hash = fnv1a(0xcbf29ce484222325ULL, header, strlen(header));
    free(header);
    for (size_t i = 0; i < sizeof gxx_flags / sizeof *gxx_flags; i++)
        header_hash = fnv1a(header_hash, gxx_flags[i], strlen(gxx_flags[i]) + 1);
    if (mkdir(cache_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "cuda_emu_harness: cannot create %s: %s\n", cache_dir, strerror(errno));
        return false;
    }
    return true;
}

int main(int argc, char **argv) {
    const char *models = default_models;
    char *filters[64];
    int nfilters = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--models") == 0 && i + 1 < argc)
            models = argv[++i];
        else if (strcmp(argv[i], "--quiet") == 0)
            quiet = true;
        else if (strcmp(argv[i], "--verbose") == 0)
            verbose = true;
        else if (argv[i][0] != '-' && nfilters < 64)
            filters[nfilters++] = argv[i];
        else {
            fprintf(stderr, "usage: cuda_emu_harness [--models all|none|NAME,...] [--quiet] [--verbose] [SUBSTRING...]\n");
            return 2;
        }
    }
    if (!on_path("g++")) {
        printf("SKIP: no g++ on PATH to compile the emulated kernels\n");
        return SKIP;
    }
    if (!setup())
        return 1;
    run_cases(filters, nfilters);
    run_models(models, filters, nfilters);
    int count[3] = {0};
    for (int i = 0; i < nrows; i++)
        count[rows[i].r]++;
    printf("cuda_emu: %d passed, %d failed, %d skipped\n", count[R_PASS], count[R_FAIL], count[R_SKIP]);
    for (int i = 0; i < nrows; i++)
        if (rows[i].r == R_FAIL)
            printf("  FAILED %s (%s): %s\n", rows[i].name, rows[i].mode, rows[i].why);
    if (count[R_FAIL])
        return 1;
    if (count[R_PASS] == 0) {
        printf("SKIP: the generator made no graph's kernels yet\n");
        return SKIP;
    }
    return 0;
}
