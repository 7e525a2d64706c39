/* test_cuda_lib.c: the CUDA device library of the call-out ops (codegen/cuda/lib.c) against the CPU's runtime
   kernels (runtime/kern_window.c, kern_data.c), bit for bit. Each case is a one-op graph in text IR; its
   __global__ wrapper (cu_emit_callout) and the library go into one translation unit that g++ compiles for
   the host under a minimal emulation (the library never synchronizes, so running the threads of a grid one
   after another is exact), and each wrapper runs on random inputs with ties, NaN, -inf and out-of-range
   indices, at batch sizes 1 and 3, on the launch plan's grid and on a single block of 32 threads (the
   grid-stride loops). Skips (77) without g++. */
#include "support.h"

#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../codegen/cuda/cu_int.h"
#include "../../runtime/lathe_kern.h"

/* The host emulation of what the library and its wrappers use. */
static const char prelude[] =
    "#include <cmath>\n"
    "#include <cstring>\n"
    "#define __device__\n"
    "#define __global__\n"
    "#define __forceinline__ inline\n"
    "#define __constant__ static\n"
    "#define __restrict__ __restrict\n"
    "#define __launch_bounds__(...)\n"
    "struct LatheTestDim { unsigned x; };\n"
    "static LatheTestDim threadIdx, blockIdx, blockDim, gridDim;\n"
    "static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }\n"
    "static inline double __longlong_as_double(long long i) { double f; memcpy(&f, &i, 8); return f; }\n";

/* The cases: $T is replaced by each dtype the op has; the op under test is the last node, output "y". */
static const char *const window_cases[] = {
    /* ceil mode, padding, a non-square window and stride */
    "%0 = input \"x\" : $T[N,3,7,9]\n"
    "%1 = max_pool2d %0 {window=[3,2], stride=[2,3], pad=[1,1], dilation=[1,1], ceil_mode} : $T[N,3,4,4]\n",
    "%0 = input \"x\" : $T[N,3,7,9]\n"
    "%1 = input \"gy\" : $T[N,3,4,4]\n"
    "%2 = max_pool2d_bwd %0, %1 {window=[3,2], stride=[2,3], pad=[1,1], dilation=[1,1], ceil_mode} : $T[N,3,7,9]\n",
    /* dilation, overlapping windows */
    "%0 = input \"x\" : $T[N,2,8,8]\n"
    "%1 = max_pool2d %0 {window=[3,3], stride=[1,2], pad=[1,0], dilation=[2,2]} : $T[N,2,6,2]\n",
    "%0 = input \"x\" : $T[N,2,8,8]\n"
    "%1 = input \"gy\" : $T[N,2,6,2]\n"
    "%2 = max_pool2d_bwd %0, %1 {window=[3,3], stride=[1,2], pad=[1,0], dilation=[2,2]} : $T[N,2,8,8]\n",
    /* the CPU's fast paths: 2x2 stride 2, and 3x3 stride 2 padding 1 */
    "%0 = input \"x\" : $T[N,2,6,7]\n"
    "%1 = max_pool2d %0 {window=[2,2], stride=[2,2]} : $T[N,2,3,3]\n",
    "%0 = input \"x\" : $T[N,2,6,7]\n"
    "%1 = input \"gy\" : $T[N,2,3,3]\n"
    "%2 = max_pool2d_bwd %0, %1 {window=[2,2], stride=[2,2]} : $T[N,2,6,7]\n",
    "%0 = input \"x\" : $T[N,2,7,7]\n"
    "%1 = max_pool2d %0 {window=[3,3], stride=[2,2], pad=[1,1]} : $T[N,2,4,4]\n",
    "%0 = input \"x\" : $T[N,2,7,7]\n"
    "%1 = input \"gy\" : $T[N,2,4,4]\n"
    "%2 = max_pool2d_bwd %0, %1 {window=[3,3], stride=[2,2], pad=[1,1]} : $T[N,2,7,7]\n",
    "%0 = input \"x\" : $T[N,3,7,9]\n"
    "%1 = avg_pool2d %0 {window=[3,2], stride=[2,3], pad=[1,1], ceil_mode} : $T[N,3,4,4]\n",
    "%0 = input \"x\" : $T[N,3,7,9]\n"
    "%1 = avg_pool2d %0 {window=[3,2], stride=[2,3], pad=[1,1], ceil_mode, count_include_pad} : $T[N,3,4,4]\n",
    "%0 = input \"gy\" : $T[N,3,4,4]\n"
    "%1 = avg_pool2d_bwd %0 {window=[3,2], stride=[2,3], pad=[1,1], ceil_mode} : $T[N,3,7,9]\n",
    "%0 = input \"gy\" : $T[N,3,4,4]\n"
    "%1 = avg_pool2d_bwd %0 {window=[3,2], stride=[2,3], pad=[1,1], ceil_mode, count_include_pad} : $T[N,3,7,9]\n",
    /* ceil mode's last window past the padded input: those cells never count */
    "%0 = input \"x\" : $T[N,2,6,5]\n"
    "%1 = avg_pool2d %0 {window=[3,2], stride=[2,2], ceil_mode, count_include_pad} : $T[N,2,3,3]\n",
    "%0 = input \"gy\" : $T[N,2,3,3]\n"
    "%1 = avg_pool2d_bwd %0 {window=[3,2], stride=[2,2], ceil_mode, count_include_pad} : $T[N,2,6,5]\n",
    "%0 = input \"x\" : $T[N,3,8,8]\n"
    "%1 = avg_pool2d %0 {window=[3,3], stride=[1,1], pad=[1,1], count_include_pad} : $T[N,3,8,8]\n",
    "%0 = input \"gy\" : $T[N,3,8,8]\n"
    "%1 = avg_pool2d_bwd %0 {window=[3,3], stride=[1,1], pad=[1,1], count_include_pad} : $T[N,3,8,8]\n",
    /* adaptive: overlapping windows, and more outputs than inputs */
    "%0 = input \"x\" : $T[N,3,7,9]\n"
    "%1 = adaptive_avg_pool2d %0 : $T[N,3,3,4]\n",
    "%0 = input \"gy\" : $T[N,3,3,4]\n"
    "%1 = adaptive_avg_pool2d_bwd %0 : $T[N,3,7,9]\n",
    "%0 = input \"x\" : $T[N,2,5,3]\n"
    "%1 = adaptive_avg_pool2d %0 : $T[N,2,7,4]\n",
    "%0 = input \"gy\" : $T[N,2,7,4]\n"
    "%1 = adaptive_avg_pool2d_bwd %0 : $T[N,2,5,3]\n",
};

static const char *const data_cases[] = {
    "%0 = input \"x\" : $T[N,7,6]\n"
    "%1 = slice %0 {start=[0,1,2], step=[1,2,3]} : $T[N,3,2]\n",
    "%0 = input \"x\" : $T[4,7]\n"
    "%1 = slice %0 {start=[1,0], step=[2,1]} : $T[2,7]\n",
    "%0 = input \"x\" : $T[N,3,2]\n"
    "%1 = pad %0 {start=[0,1,2], step=[1,2,3], value=-2.5} : $T[N,7,6]\n",
    "%0 = input \"x\" : $T[N,3]\n"
    "%1 = pad %0 {start=[0,2], step=[1,1], value=300.75} : $T[N,6]\n",
    "%0 = input \"x\" : $T[N,3]\n"
    "%1 = pad %0 {start=[0,1], step=[1,2], value=-inf} : $T[N,8]\n",
    "%0 = input \"a\" : $T[N,2,3]\n"
    "%1 = input \"b\" : $T[N,1,3]\n"
    "%2 = input \"c\" : $T[N,4,3]\n"
    "%3 = concat %0, %1, %2 {axis=1} : $T[N,7,3]\n",
    "%0 = input \"a\" : $T[N,2,1]\n"
    "%1 = input \"b\" : $T[N,2,3]\n"
    "%2 = concat %0, %1, %0 {axis=2} : $T[N,2,5]\n",
    "%0 = input \"a\" : $T[2,3]\n"
    "%1 = input \"b\" : $T[3,3]\n"
    "%2 = concat %0, %1 {axis=0} : $T[5,3]\n",
    "%0 = input \"x\" : $T[N,5,4]\n"
    "%1 = input \"i\" : i64[N,3,4]\n"
    "%2 = gather %0, %1 {axis=1} : $T[N,3,4]\n",
    "%0 = input \"x\" : $T[N,5,4]\n"
    "%1 = input \"i\" : i32[N,7,2]\n"
    "%2 = gather %0, %1 {axis=1} : $T[N,7,2]\n",
    "%0 = input \"x\" : $T[N,2,6]\n"
    "%1 = input \"i\" : i32[N,2,3]\n"
    "%2 = gather %0, %1 {axis=2} : $T[N,2,3]\n",
    "%0 = input \"i\" : i64[N,3,4]\n"
    "%1 = input \"s\" : $T[N,3,4]\n"
    "%2 = scatter_add %0, %1 {axis=1} : $T[N,5,4]\n",
    "%0 = input \"i\" : i32[N,9,2]\n"
    "%1 = input \"s\" : $T[N,9,2]\n"
    "%2 = scatter_add %0, %1 {axis=1} : $T[N,5,4]\n",
    "%0 = input \"i\" : i32[3,N]\n"
    "%1 = input \"s\" : $T[3,N]\n"
    "%2 = scatter_add %0, %1 {axis=0} : $T[4,N]\n",
};

static const char *const random_cases[] = {
    "%0 = input \"seed\" : i64[]\n"
    "%1 = input \"step\" : i64[]\n"
    "%2 = random %0, %1 {stream=3} : f32[N,5,7]\n",
    "%0 = input \"seed\" : i64[]\n"
    "%1 = input \"step\" : i64[]\n"
    "%2 = random %0, %1 {stream=0} : f32[300]\n",
};

enum { MAX_CASES = 128 };

/* One compiled case: its graph's op node, its kernel and the host runner of the wrapper. */
typedef struct Case {
    const char *text;
    const Node *nd;
    CgKernel k;
    int block;
    int64_t items_c, per_block;
    int items_p;
    void (*run)(void **bufs, long long n, unsigned grid, unsigned block);
} Case;

static struct {
    Case cases[MAX_CASES];
    int ncases;
    CuBuf src;
    char dir[64];
    void *so;
} t;

static const char *subst(const char *text, DType dt) {
    size_t len = strlen(text);
    char *out = arena_alloc(ts.a, len * 2 + 1), *o = out;
    for (const char *p = text; *p; p++) {
        if (p[0] == '$' && p[1] == 'T') {
            o += sprintf(o, "%s", ir_dtype_name(dt));
            p++;
        } else {
            *o++ = *p;
        }
    }
    *o = 0;
    return out;
}

/* Parses a case, emits its wrapper and a runner that plays every thread of the grid in turn. */
static void add_case(const char *body) {
    assert_true(t.ncases < MAX_CASES);
    Case *c = &t.cases[t.ncases];
    int last = -1; /* a node a line */
    for (const char *p = body; *p; p++)
        last += *p == '\n';
    Graph *g = ts_parse_graph("case.ir", arena_printf(ts.a, "graph g {\n%s  output \"y\" = %%%d\n}\n", body, last));
    const Node *nd = g->nodes[last];
    c->text = body;
    c->nd = nd;
    cg_kernel_of(g, nd, &c->k);
    CgCudaOptions o = {0};
    char *name = arena_printf(ts.a, "k%d_%s", t.ncases, ir_op_name(nd->op));
    CuKernel ck = {.k = &c->k, .o = &o, .name = name, .src = &t.src, .d = ts.d};
    if (!cu_emit_callout(&ck))
        fail_msg("%s: %s", body, diag_first_message(ts.d));
    c->block = ck.block;
    c->items_c = ck.items_c;
    c->per_block = ck.per_block;
    c->items_p = ck.items_p;
    cu_printf(&t.src,
              "extern \"C\" void run_%d(void **b, long long n, unsigned grid, unsigned block) {\n"
              "    gridDim.x = grid;\n    blockDim.x = block;\n"
              "    for (unsigned g = 0; g < grid; g++)\n"
              "        for (unsigned i = 0; i < block; i++) {\n"
              "            blockIdx.x = g;\n            threadIdx.x = i;\n"
              "            %s(",
              t.ncases, name);
    for (int i = 0; i < c->k.nbufs; i++) {
        const Node *b = c->k.bufs[i];
        cu_printf(&t.src, "%s(%s%s *)b[%d]", i ? ", " : "", i < c->k.nouts ? "" : "const ", cu_type(b->dtype), i);
    }
    cu_printf(&t.src, ", n);\n        }\n}\n");
    t.ncases++;
}

static bool have_gxx(void) {
    return system("g++ --version > /dev/null 2>&1") == 0;
}

static int setup(void **state) {
    ts_setup(state);
    memset(&t, 0, sizeof t);
    cu_printf(&t.src, "%s", prelude);
    cu_library_source(&t.src);
    const DType floats[] = {DT_F32, DT_F64}, all[] = {DT_F32, DT_F64, DT_I32, DT_I64, DT_U8};
    for (size_t i = 0; i < sizeof window_cases / sizeof *window_cases; i++)
        for (size_t j = 0; j < 2; j++)
            add_case(subst(window_cases[i], floats[j]));
    for (size_t i = 0; i < sizeof data_cases / sizeof *data_cases; i++)
        for (size_t j = 0; j < 5; j++)
            add_case(subst(data_cases[i], all[j]));
    for (size_t i = 0; i < sizeof random_cases / sizeof *random_cases; i++)
        add_case(random_cases[i]);

    snprintf(t.dir, sizeof t.dir, "/tmp/lathe_cuda_lib_XXXXXX");
    assert_non_null(mkdtemp(t.dir));
    char *cu = arena_printf(ts.a, "%s/lib.cu", t.dir), *so = arena_printf(ts.a, "%s/lib.so", t.dir);
    FILE *f = fopen(cu, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(t.src.s, 1, t.src.len, f), t.src.len);
    assert_int_equal(fclose(f), 0);
    char *cmd = arena_printf(ts.a, "g++ -std=c++17 -O1 -fPIC -shared -Wall -Werror -x c++ %s -o %s", cu, so);
    if (system(cmd) != 0)
        fail_msg("the library does not compile for the host: %s", cmd);
    t.so = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(t.so);
    for (int i = 0; i < t.ncases; i++) {
        char sym[32];
        snprintf(sym, sizeof sym, "run_%d", i);
        *(void **)&t.cases[i].run = dlsym(t.so, sym);
        assert_non_null(t.cases[i].run);
    }
    return 0;
}

static int teardown(void **state) {
    if (t.so)
        dlclose(t.so);
    if (t.dir[0]) {
        char *cmd = arena_printf(ts.a, "rm -rf %s", t.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", t.dir);
    }
    cu_free(&t.src);
    return ts_teardown(state);
}

/* ---------------------------------------------------------------- inputs */

static uint64_t rng = 42;

/* Floats with ties (+-0 among them), and NaN and -inf where the op is not an average. */
static double float_value(bool specials) {
    double r = ts_rand_uniform(&rng);
    if (specials && r < 0.04)
        return NAN;
    if (specials && r < 0.08)
        return -INFINITY;
    if (r < 0.5) {
        static const double ties[] = {-1, -0.0, 0, 0.5, 1};
        return ties[(int)(r * 10) % 5];
    }
    return ts_rand_uniform(&rng) * 2 - 1;
}

/* The size of the dim that an index of node nd selects in. */
static int64_t index_range(const Node *nd, int64_t n) {
    const Shape *s = nd->op == OP_GATHER ? &nd->inputs[0]->shape : &nd->shape;
    int64_t d = s->dim[nd->attr.axis];
    return d == IR_DIM_N ? n : d;
}

static void fill_input(const Node *nd, int which, void *buf, int64_t count, int64_t n) {
    const Node *x = nd->inputs[which];
    bool index = (nd->op == OP_GATHER && which == 1) || (nd->op == OP_SCATTER_ADD && which == 0);
    bool avg = nd->op == OP_AVG_POOL2D || nd->op == OP_AVG_POOL2D_BWD || nd->op == OP_ADAPTIVE_AVG_POOL2D ||
               nd->op == OP_ADAPTIVE_AVG_POOL2D_BWD;
    for (int64_t i = 0; i < count; i++) {
        double v;
        if (nd->op == OP_RANDOM) /* seed and step with both halves set, the seed negative */
            v = which == 0 ? -1234567890123.0 : 8589934599.0;
        else if (index) /* -1 .. dim + 1: out of range on both sides */
            v = (double)((int64_t)(ts_rand_uniform(&rng) * (double)(index_range(nd, n) + 3)) - 1);
        else if (x->dtype == DT_U8)
            v = (double)(int)(ts_rand_uniform(&rng) * 256);
        else if (ir_dtype_is_int(x->dtype))
            v = (double)((int)(ts_rand_uniform(&rng) * 200) - 100);
        else
            v = float_value(!avg);
        ts_elem_put(buf, x->dtype, i, v);
    }
}

/* ---------------------------------------------------------------- running a case */

static LatheKernFn cpu_kernel(const Node *nd) {
    char name[64];
    snprintf(name, sizeof name, "lathe_k_%s_%s", ir_op_name(nd->op), ir_dtype_name(nd->dtype));
    for (const LatheKernSymbol *s = lathe_kern_symbols; s->name; s++)
        if (strcmp(s->name, name) == 0)
            return s->fn;
    fail_msg("no CPU kernel %s", name);
    return NULL;
}

static int64_t numel_at(const Shape *s, int64_t n) {
    return ir_shape_numel(s, n);
}

/* Case c at batch size n on the plan's grid and on one block of 32: both bit for bit the CPU kernel's. */
static void check_case(const Case *c, int64_t n) {
    const Node *nd = c->nd;
    int64_t count = numel_at(&nd->shape, n);
    size_t es = ir_dtype_size(nd->dtype), bytes = (size_t)count * es;
    void *in[IR_MAX_CONCAT];
    for (int i = 0; i < nd->ninputs; i++) {
        in[i] = NULL;
        for (int j = 0; j < i; j++) /* an input given twice is one buffer */
            if (nd->inputs[j] == nd->inputs[i])
                in[i] = in[j];
        if (in[i])
            continue;
        int64_t m = numel_at(&nd->inputs[i]->shape, n);
        in[i] = calloc((size_t)m + 1, ir_dtype_size(nd->inputs[i]->dtype));
        fill_input(nd, i, in[i], m, n);
    }
    int64_t desc[CG_DESC_MAX];
    cg_build_desc(nd, desc);
    void *want = calloc(bytes + 1, 1), *got = malloc(bytes + 1);
    cpu_kernel(nd)(want, (const void *const *)in, n, desc);

    /* the kernel's buffers: the output, then its distinct inputs (cg_kernel_of's order) */
    void *bufs[CG_MAX_BUFS];
    bufs[0] = got;
    for (int b = 1; b < c->k.nbufs; b++)
        for (int i = 0; i < nd->ninputs; i++)
            if (nd->inputs[i] == c->k.bufs[b])
                bufs[b] = in[i];

    int64_t items = c->items_c;
    for (int p = 0; p < c->items_p; p++)
        items *= n;
    assert_int_equal(items, count);
    assert_int_equal(c->block, 256);
    unsigned grids[2][2] = {{(unsigned)((items + c->per_block - 1) / c->per_block), 256}, {1, 32}};
    for (int g = 0; g < 2; g++) {
        memset(got, 0xa5, bytes + 1);
        c->run(bufs, n, grids[g][0] ? grids[g][0] : 1, grids[g][1]);
        for (int64_t i = 0; i < count; i++)
            if (memcmp((char *)got + i * (int64_t)es, (char *)want + i * (int64_t)es, es) != 0)
                fail_msg("%s(n = %lld, grid %u x %u) element %lld: %.17g, the CPU's %.17g", c->text, (long long)n,
                         grids[g][0], grids[g][1], (long long)i, ts_elem_get(got, nd->dtype, i),
                         ts_elem_get(want, nd->dtype, i));
        assert_int_equal(((unsigned char *)got)[bytes], 0xa5); /* nothing past the output */
    }
    free(want);
    free(got);
    for (int i = 0; i < nd->ninputs; i++) {
        bool first = true;
        for (int j = 0; j < i; j++)
            first &= nd->inputs[j] != nd->inputs[i];
        if (first)
            free(in[i]);
    }
}

static void check_ops(bool (*want)(Op op)) {
    int checked = 0;
    for (int i = 0; i < t.ncases; i++) {
        if (!want(t.cases[i].nd->op))
            continue;
        check_case(&t.cases[i], 1);
        check_case(&t.cases[i], 3);
        checked++;
    }
    assert_true(checked > 0);
}

static bool is_pool(Op op) {
    return op == OP_MAX_POOL2D || op == OP_MAX_POOL2D_BWD || op == OP_AVG_POOL2D || op == OP_AVG_POOL2D_BWD ||
           op == OP_ADAPTIVE_AVG_POOL2D || op == OP_ADAPTIVE_AVG_POOL2D_BWD;
}
static bool is_copy(Op op) {
    return op == OP_SLICE || op == OP_PAD || op == OP_CONCAT;
}
static bool is_indexing(Op op) {
    return op == OP_GATHER || op == OP_SCATTER_ADD;
}
static bool is_random(Op op) {
    return op == OP_RANDOM;
}

static void test_pooling_matches_cpu(void **state) {
    (void)state;
    check_ops(is_pool);
}

static void test_slice_pad_concat_match_cpu(void **state) {
    (void)state;
    check_ops(is_copy);
}

static void test_gather_scatter_add_match_cpu(void **state) {
    (void)state;
    check_ops(is_indexing);
}

static void test_random_matches_philox(void **state) {
    (void)state;
    check_ops(is_random);
}

/* ---------------------------------------------------------------- the wrapper's text */

/* The descriptor goes into a __constant__ array, and the call passes the output then the inputs. */
static void test_wrapper_passes_descriptor_and_buffers(void **state) {
    (void)state;
    const Case *c = NULL;
    for (int i = 0; i < t.ncases && !c; i++)
        if (t.cases[i].nd->op == OP_CONCAT && t.cases[i].k.nbufs == 3)
            c = &t.cases[i];
    assert_non_null(c);
    int64_t desc[CG_DESC_MAX];
    int len = cg_build_desc(c->nd, desc);
    int idx = (int)(c - t.cases);
    char *want = arena_printf(ts.a, "__constant__ long long k%d_concat_desc[%d] = {%lldll, %lldll", idx, len,
                              (long long)desc[0], (long long)desc[1]);
    assert_non_null(strstr(t.src.s, want));
    /* concat(a, b, a): the repeated input is one buffer, passed twice */
    want = arena_printf(ts.a, "const float *xs[3] = {b1, b2, b1};\n"
                              "    lathe_cu_concat_f32(b0, xs, n, k%d_concat_desc);", idx);
    assert_non_null(strstr(t.src.s, want));
}

/* The convolutions are GEMMs (gemm.c): asked for one, the library says so at the node. */
static void test_no_library_function_for_conv(void **state) {
    (void)state;
    Graph *g = ts_parse_graph("conv.ir", "graph g {\n"
                                         "  %0 = input \"x\" : f32[N,3,8,8]\n"
                                         "  %1 = param \"w\" : f32[4,3,3,3]\n"
                                         "  %2 = conv2d %0, %1 {stride=[1,1], pad=[1,1]} : f32[N,4,8,8]\n"
                                         "  output \"y\" = %2\n"
                                         "}\n");
    CgKernel k;
    cg_kernel_of(g, g->nodes[2], &k);
    CgCudaOptions o = {0};
    CuBuf src = {0};
    CuKernel ck = {.k = &k, .o = &o, .name = "k2_conv2d", .src = &src, .d = ts.d};
    assert_false(cu_emit_callout(&ck));
    assert_non_null(strstr(diag_first_message(ts.d), "no device library function for 'conv2d'"));
    cu_free(&src);
}

int main(void) {
    if (!have_gxx()) {
        printf("test_cuda_lib: skipped: no g++ to compile the device library for the host\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pooling_matches_cpu),
        cmocka_unit_test(test_slice_pad_concat_match_cpu),
        cmocka_unit_test(test_gather_scatter_add_match_cpu),
        cmocka_unit_test(test_random_matches_philox),
        cmocka_unit_test(test_wrapper_passes_descriptor_and_buffers),
        cmocka_unit_test(test_no_library_function_for_conv),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
