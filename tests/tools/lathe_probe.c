/* lathe_probe.c: a test tool that runs one train step of a model file's forward and backward, without the
   optimizer, and writes what PyTorch parity tests compare: the initial parameters, the logits, the loss,
   every gradient and every buffer after the step.

   usage: lathe_probe MODEL.lathe --seed S --batch-file in.safetensors --out out.safetensors
                      [--init-out init.safetensors] [--step K] [-O LEVEL]

   The model is compiled in memory (fe_compile, then autodiff, simplify, dce and memplan: the pipeline less
   the optimizer) and JIT-compiled as the unit tests do (LLVM's -O LEVEL, 0 by default); parameters are initialised as a produced binary
   initialises them (rt_param_init with --seed, parameter i drawing from stream i). The batch file holds
   "x" and "label" with the dtypes of the model's inputs and any batch size. out.safetensors holds:
     NAME          every parameter and buffer as initialised (a state_dict that load_state_dict takes)
     logits        the forward's result (the grads graph's output "logits")
     loss          and every other plain output of the train graph ("correct")
     grad.NAME     the gradient of every trainable parameter
     updated.NAME  a buffer after the step, for each buffer the train graph updates (BatchNorm's statistics)
     eval_logits   the predict graph's logits on x after the step (eval mode: running statistics, no dropout)
   --init-out writes the parameters and buffers alone. Exit status 0, or 1 with a message on stderr. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../codegen/codegen.h"
#include "../../frontend/frontend.h"
#include "../../ir/ir.h"
#include "../../passes/passes.h"
#include "../../runtime/rt.h"

typedef struct Options {
    const char *model, *batch_file, *out, *init_out;
    uint64_t seed;
    int64_t step, opt_level;
} Options;

/* One tensor read from the batch file. */
typedef struct BatchTensor {
    RtDType dtype;
    int rank;
    int64_t shape[RT_MAX_RANK];
    void *data;
} BatchTensor;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("lathe_probe: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void usage(void) {
    die("usage: lathe_probe MODEL.lathe --seed S --batch-file in.safetensors --out out.safetensors "
        "[--init-out init.safetensors] [--step K] [-O LEVEL]");
}

static int64_t int_flag(const char *flag, const char *s) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < 0)
        die("%s needs an integer >= 0, got '%s'", flag, s);
    return v;
}

static Options parse_args(int argc, char **argv) {
    Options o = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(a, "--seed") == 0 && has_value)
            o.seed = (uint64_t)int_flag(a, argv[++i]);
        else if (strcmp(a, "--step") == 0 && has_value)
            o.step = int_flag(a, argv[++i]);
        else if (strcmp(a, "-O") == 0 && has_value)
            o.opt_level = int_flag(a, argv[++i]);
        else if (strcmp(a, "--batch-file") == 0 && has_value)
            o.batch_file = argv[++i];
        else if (strcmp(a, "--out") == 0 && has_value)
            o.out = argv[++i];
        else if (strcmp(a, "--init-out") == 0 && has_value)
            o.init_out = argv[++i];
        else if (a[0] != '-' && !o.model)
            o.model = a;
        else
            usage();
    }
    if (!o.model || !o.batch_file || !o.out)
        usage();
    return o;
}

static RtDType rt_dtype_of(DType t) {
    switch (t) {
    case DT_F32: return RT_F32;
    case DT_F64: return RT_F64;
    case DT_I32: return RT_I32;
    case DT_I64: return RT_I64;
    case DT_U8: return RT_U8;
    default: LATHE_UNREACHABLE("unknown dtype");
    }
}

/* ---------------------------------------------------------------- the batch file */

static char *read_whole(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    if (!buf || ferror(f))
        die("cannot read %s", path);
    fclose(f);
    *len = n;
    return buf;
}

/* The tensor called name in the safetensors file text (raw, len bytes), copied out. */
static BatchTensor batch_tensor(const char *path, const char *raw, size_t len, const char *name) {
    uint64_t hlen = 0;
    if (len < 8)
        die("%s: too short for a safetensors file", path);
    memcpy(&hlen, raw, 8);
    if (hlen > len - 8)
        die("%s: header length %llu past the end of the file", path, (unsigned long long)hlen);
    json_error_t jerr;
    json_t *header = json_loadb(raw + 8, (size_t)hlen, 0, &jerr);
    if (!header)
        die("%s: bad header: %s", path, jerr.text);
    json_t *t = json_object_get(header, name);
    if (!t)
        die("%s: no tensor '%s'", path, name);
    BatchTensor b = {0};
    const char *dt = json_string_value(json_object_get(t, "dtype"));
    static const char *caps[] = {"F32", "F64", "I32", "I64", "U8"};
    static const RtDType types[] = {RT_F32, RT_F64, RT_I32, RT_I64, RT_U8};
    size_t k = 0;
    while (k < 5 && !(dt && strcmp(dt, caps[k]) == 0))
        k++;
    if (k == 5)
        die("%s: tensor '%s' has an unsupported dtype", path, name);
    b.dtype = types[k];
    json_t *shape = json_object_get(t, "shape"), *offs = json_object_get(t, "data_offsets");
    b.rank = (int)json_array_size(shape);
    if (b.rank > RT_MAX_RANK || json_array_size(offs) != 2)
        die("%s: tensor '%s' has a bad shape or data_offsets", path, name);
    int64_t numel = 1;
    for (int i = 0; i < b.rank; i++)
        numel *= b.shape[i] = json_integer_value(json_array_get(shape, (size_t)i));
    int64_t begin = json_integer_value(json_array_get(offs, 0)), end = json_integer_value(json_array_get(offs, 1));
    size_t bytes = (size_t)numel * rt_dtype_size(b.dtype);
    if (begin < 0 || end - begin != (int64_t)bytes || 8 + hlen + (uint64_t)end > len)
        die("%s: tensor '%s' has data_offsets that do not match its shape", path, name);
    b.data = malloc(bytes + 1);
    memcpy(b.data, raw + 8 + hlen + begin, bytes);
    json_decref(header);
    return b;
}

/* ---------------------------------------------------------------- compiling */

static Program *compile(Arena *a, Diag *d, const char *path) {
    char *text = fe_read_file(a, d, path, NULL);
    Program *p = text ? fe_compile(a, d, path, text) : NULL;
    if (!p)
        die("cannot compile %s", path);
    /* the grads graph: forward (its output "logits" is the forward's result), the loss and the gradients */
    Graph *g = p->grads;
    if (!pass_autodiff(g, d) || !pass_simplify(g, d) || !pass_cse(g, d) || !pass_layout(g, d) || !pass_dce(g, d) ||
        !pass_fuse(g, d) || !pass_memplan(g, d) || !ir_verify(g, d))
        die("%s: the passes failed", path);
    Graph *pg = p->predict;
    if (!pg || !pass_simplify(pg, d) || !pass_cse(pg, d) || !pass_layout(pg, d) || !pass_dce(pg, d) ||
        !pass_fuse(pg, d) || !pass_memplan(pg, d) || !ir_verify(pg, d))
        die("%s: the passes over the predict graph failed", path);
    return p;
}

static int param_index(const Program *p, const char *name) {
    for (int i = 0; i < p->nparams; i++)
        if (strcmp(p->params[i].name, name) == 0)
            return i;
    return -1;
}

static void *alloc64(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? (bytes + 63) / 64 * 64 : 64) != 0)
        die("out of memory");
    return p;
}

static RtTensor rt_tensor(const char *name, const Node *v, int64_t n, void *data) {
    RtTensor t = {.name = name, .dtype = rt_dtype_of(v->dtype), .rank = v->shape.rank, .data = data};
    for (int i = 0; i < v->shape.rank; i++)
        t.shape[i] = v->shape.dim[i] == IR_DIM_N ? n : v->shape.dim[i];
    return t;
}

/* The runtime's description of a parameter, as the manifest would give it to a produced binary. */
static RtParam rt_param_of(const ParamInfo *info, const Node *v) {
    RtParam rp = {.a = info->init.a, .b = info->init.b, .trainable = info->trainable};
    switch (info->init.kind) {
    case INIT_ZEROS: rp.init = RT_INIT_ZEROS; break;
    case INIT_ONES: rp.init = RT_INIT_ONES; break;
    case INIT_CONST: rp.init = RT_INIT_CONST; break;
    case INIT_UNIFORM: rp.init = RT_INIT_UNIFORM; break;
    case INIT_NORMAL: rp.init = RT_INIT_NORMAL; break;
    default: LATHE_UNREACHABLE("an initialiser the probe does not know");
    }
    rp.t.name = info->name;
    rp.t.dtype = rt_dtype_of(v->dtype);
    rp.t.rank = v->shape.rank;
    for (int k = 0; k < v->shape.rank; k++)
        rp.t.shape[k] = v->shape.dim[k];
    rp.t.role = RT_ROLE_PARAM;
    return rp;
}

/* Runs the predict graph on x with the train graph's parameters and buffers as they are after the step
   (train_args/train_bufs), and returns its "logits" (malloc'd) as eval_logits: eval mode, where BatchNorm
   uses its running statistics and Dropout does nothing. */
static RtTensor run_predict(Arena *a, Diag *d, const Program *p, const CgOptions *copts, const GraphArg *targs,
                            void *const *tbufs, int ntargs, const void *x, int64_t n) {
    Graph *g = p->predict;
    CgJit *j = cg_llvm_jit(g, copts, d);
    if (!j)
        die("JIT compilation of the predict graph failed");
    int nargs = ir_graph_args(g, NULL);
    GraphArg *args = arena_alloc(a, sizeof *args * (size_t)(nargs + 1));
    ir_graph_args(g, args);
    void **bufs = calloc((size_t)nargs + 1, sizeof *bufs);
    RtTensor logits = {0};
    for (int i = 0; i < nargs; i++) {
        const Node *v = args[i].node;
        if (args[i].role == ARG_OUTPUT) {
            bufs[i] = alloc64((size_t)ir_shape_numel(&v->shape, n) * ir_dtype_size(v->dtype));
            if (strcmp(args[i].name, "logits") == 0)
                logits = rt_tensor("eval_logits", v, n, bufs[i]);
            continue;
        }
        if (args[i].role == ARG_INPUT && strcmp(args[i].name, "x") == 0) {
            bufs[i] = (void *)x;
            continue;
        }
        for (int k = 0; k < ntargs && !bufs[i]; k++)
            if (targs[k].role == args[i].role && strcmp(targs[k].name, args[i].name) == 0)
                bufs[i] = tbufs[k];
        if (!bufs[i])
            die("the predict graph takes '%s', which the train graph does not have", args[i].name);
    }
    if (!logits.data)
        die("the predict graph has no output 'logits'");
    int64_t c, per_n;
    pass_memplan_size(g, &c, &per_n);
    uint8_t *arena = alloc64((size_t)(c + per_n * n));
    cg_jit_entry(j)(bufs, n, arena);
    for (int i = 0; i < nargs; i++)
        if (args[i].role == ARG_OUTPUT && bufs[i] != logits.data)
            free(bufs[i]);
    free(bufs);
    free(arena);
    cg_jit_free(j);
    return logits;
}

int main(int argc, char **argv) {
    Options o = parse_args(argc, argv);
    Arena *a = arena_new();
    Diag *d = diag_new(stderr);
    Program *p = compile(a, d, o.model);
    Graph *g = p->grads;

    size_t rawlen;
    char *raw = read_whole(o.batch_file, &rawlen);
    BatchTensor bx = batch_tensor(o.batch_file, raw, rawlen, "x");
    BatchTensor by = batch_tensor(o.batch_file, raw, rawlen, "label");
    free(raw);
    if (bx.rank < 1 || by.rank < 1 || bx.shape[0] != by.shape[0])
        die("%s: x and label must have the same batch size", o.batch_file);
    int64_t n = bx.shape[0];

    /* one step on a small batch: LLVM's optimizer would take far longer than the step itself */
    CgOptions copts = {.cpu = NULL, .opt_level = (int)o.opt_level};
    CgJit *j = cg_llvm_jit(g, &copts, d);
    if (!j)
        die("%s: JIT compilation failed", o.model);

    int nargs = ir_graph_args(g, NULL);
    GraphArg *args = arena_alloc(a, sizeof *args * (size_t)(nargs + 1));
    ir_graph_args(g, args);
    void **bufs = calloc((size_t)nargs + 1, sizeof *bufs);
    RtTensor *saved = calloc((size_t)(2 * nargs + p->nparams) + 2, sizeof *saved);
    RtTensor *init = calloc((size_t)p->nparams + 1, sizeof *init);
    int nsaved = 0, ninit = 0;
    for (int i = 0; i < nargs; i++) {
        const Node *v = args[i].node;
        int64_t numel = ir_shape_numel(&v->shape, n);
        size_t bytes = (size_t)numel * ir_dtype_size(v->dtype);
        bufs[i] = alloc64(bytes);
        memset(bufs[i], 0, bytes);
        const char *name = args[i].name;
        if (args[i].role == ARG_INPUT) {
            const BatchTensor *b = strcmp(name, "x") == 0 ? &bx : strcmp(name, "label") == 0 ? &by : NULL;
            if (b) {
                RtTensor want = rt_tensor(name, v, n, NULL);
                bool same = b->dtype == want.dtype && b->rank == want.rank;
                for (int k = 0; same && k < b->rank; k++)
                    same = b->shape[k] == want.shape[k];
                if (!same) {
                    char s[128];
                    die("%s: '%s' must be %s with N = %lld", o.batch_file, name,
                        ir_type_str(v->dtype, &v->shape, s, sizeof s), (long long)n);
                }
                memcpy(bufs[i], b->data, bytes);
            } else if (strcmp(name, "seed") == 0) {
                *(int64_t *)bufs[i] = (int64_t)o.seed;
            } else if (strcmp(name, "step") == 0) {
                *(int64_t *)bufs[i] = o.step;
            } else {
                die("%s: the train graph takes an input '%s' that the probe does not know", o.model, name);
            }
        } else if (args[i].role == ARG_PARAM) {
            int pi = param_index(p, name);
            if (pi < 0)
                die("%s: PARAM '%s' is not in the program's parameters", o.model, name);
            RtParam rp = rt_param_of(&p->params[pi], v);
            rt_param_init(&rp, pi, o.seed, bufs[i]);
            /* a copy as initialised: buffers change in place during the step */
            void *copy = malloc(bytes + 1);
            memcpy(copy, bufs[i], bytes);
            init[ninit] = rt_tensor(name, v, n, copy);
            saved[nsaved++] = init[ninit++];
        }
    }

    int64_t c, per_n;
    pass_memplan_size(g, &c, &per_n);
    uint8_t *arena = alloc64((size_t)(c + per_n * n));
    cg_jit_entry(j)(bufs, n, arena);

    for (int i = 0; i < nargs; i++) {
        if (args[i].role == ARG_OUTPUT)
            saved[nsaved++] = rt_tensor(args[i].name, args[i].node, n, bufs[i]);
    }
    for (int k = 0; k < g->noutputs; k++) {
        const Output *out = &g->outputs[k];
        if (!out->update)
            continue;
        for (int i = 0; i < nargs; i++)
            if (args[i].role != ARG_OUTPUT && strcmp(args[i].name, out->name) == 0)
                saved[nsaved++] = rt_tensor(arena_printf(a, "updated.%s", out->name), args[i].node, n, bufs[i]);
    }
    RtTensor eval_logits = run_predict(a, d, p, &copts, args, bufs, nargs, bx.data, n);
    saved[nsaved++] = eval_logits;

    RtErr e;
    if (rt_st_save(o.out, saved, nsaved, NULL, &e) != RT_OK)
        die("%s", e.msg);
    if (o.init_out && rt_st_save(o.init_out, init, ninit, NULL, &e) != RT_OK)
        die("%s", e.msg);

    for (int i = 0; i < ninit; i++)
        free(init[i].data);
    for (int i = 0; i < nargs; i++)
        free(bufs[i]);
    free(bufs);
    free(eval_logits.data);
    free(saved);
    free(init);
    free(arena);
    free(bx.data);
    free(by.data);
    cg_jit_free(j);
    diag_free(d);
    arena_free(a);
    return 0;
}
