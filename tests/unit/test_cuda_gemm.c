/* test_cuda_gemm.c: the generated GEMM kernels (codegen/cuda/gemm.c) of matmul and the three convolution
   products against the interpreter. Each case is a graph in text IR whose last node is the kernel's root;
   its kernel is emitted in three precisions (float32 exact, float32 through TF32 wmma, float64 where the case
   has it), compiled for the host by g++ with the tests' emulation (tests/cuda/emu/lathe_cuda_emu.h: a fiber
   per thread, so __syncthreads and wmma work), and run at batch sizes 1 and 3 on the launch's grid and on one
   and two blocks (the tile loop must be right for any grid). The sizes put a tail in every direction of the
   64x64x16 tiles. Error: the largest difference over the largest magnitude of the output, at most 1e-5
   (float32), 1e-3 (TF32), 1e-12 (float64). Skips (77) without g++. */
#include "support.h"

#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../codegen/cuda/cu_int.h"

enum { MAX_KERNELS = 64 };

typedef void (*RunFn)(void **bufs, long long n, unsigned grid);

typedef struct Kernel {
    const char *text;
    Graph *g;
    CgKernel k;
    CgCudaOptions o;
    DType t;
    CuBuf src;
    int block, items_p;
    int64_t items_c, per_block;
    RunFn run;
} Kernel;

static struct {
    Kernel ks[MAX_KERNELS];
    int nks;
    CuBuf src;
    char dir[64];
    void *so;
} t;

/* The cases: $T is f32 or f64; each ends with the root, and outputs every buffer the kernel writes. */
static const char *const cases[] = {
    /* transpose_b, a tail of 6 columns past one tile, a depth of 65 */
    "%0 = input \"x\" : $T[N,65]\n"
    "%1 = param \"w\" : $T[70,65]\n"
    "%2 = matmul %0, %1 {transpose_b} : $T[N,70]\n",
    /* transpose_a: the depth is the batch N (a weight's gradient), 65 rows */
    "%0 = input \"a\" : $T[N,65]\n"
    "%1 = input \"b\" : $T[N,17]\n"
    "%2 = matmul %0, %1 {transpose_a} : $T[65,17]\n",
    /* both transposed, batch dims 2 and 1 (broadcast) */
    "%0 = input \"a\" : $T[2,17,65]\n"
    "%1 = input \"b\" : $T[1,3,17]\n"
    "%2 = matmul %0, %1 {transpose_a, transpose_b} : $T[2,65,3]\n",
    /* A broadcast along its dim of 1, B without the leading batch dim */
    "%0 = input \"a\" : $T[N,1,5,17]\n"
    "%1 = input \"b\" : $T[3,17,65]\n"
    "%2 = matmul %0, %1 : $T[N,3,5,65]\n",
    /* A's batch dims folded into the rows (B has none) */
    "%0 = input \"a\" : $T[N,33,17]\n"
    "%1 = input \"b\" : $T[17,3]\n"
    "%2 = matmul %0, %1 : $T[N,33,3]\n",
    /* an empty sum: zeros */
    "%0 = input \"a\" : $T[N,0]\n"
    "%1 = input \"b\" : $T[0,5]\n"
    "%2 = matmul %0, %1 : $T[N,5]\n",
    /* stride 2 and padding */
    "%0 = input \"x\" : $T[N,3,17,17]\n"
    "%1 = param \"w\" : $T[8,3,3,3]\n"
    "%2 = conv2d %0, %1 {stride=[2,2], pad=[1,1]} : $T[N,8,9,9]\n",
    /* groups, dilation, unequal strides and padding */
    "%0 = input \"x\" : $T[N,4,9,11]\n"
    "%1 = param \"w\" : $T[6,2,3,2]\n"
    "%2 = conv2d %0, %1 {stride=[2,1], pad=[1,2], dilation=[1,2], groups=2} : $T[N,6,5,13]\n",
    /* 65 output channels: two column tiles */
    "%0 = input \"x\" : $T[N,2,9,9]\n"
    "%1 = param \"w\" : $T[65,2,1,1]\n"
    "%2 = conv2d %0, %1 : $T[N,65,9,9]\n",
    "%0 = input \"gy\" : $T[N,6,5,13]\n"
    "%1 = param \"w\" : $T[6,2,3,2]\n"
    "%2 = conv2d_bwd_input %0, %1 {stride=[2,1], pad=[1,2], dilation=[1,2], groups=2} : $T[N,4,9,11]\n",
    /* stride 2: the cells no output reads from get zero */
    "%0 = input \"gy\" : $T[N,8,9,9]\n"
    "%1 = param \"w\" : $T[8,3,3,3]\n"
    "%2 = conv2d_bwd_input %0, %1 {stride=[2,2], pad=[1,1]} : $T[N,3,17,17]\n",
    /* stride 2 past the last window: the input's last row and column reach no output */
    "%0 = input \"gy\" : $T[N,3,4,4]\n"
    "%1 = param \"w\" : $T[3,2,3,3]\n"
    "%2 = conv2d_bwd_input %0, %1 {stride=[2,2]} : $T[N,2,10,10]\n",
    "%0 = input \"x\" : $T[N,4,9,11]\n"
    "%1 = input \"gy\" : $T[N,6,5,13]\n"
    "%2 = conv2d_bwd_weight %0, %1 {stride=[2,1], pad=[1,2], dilation=[1,2], groups=2} : $T[6,2,3,2]\n",
    /* 153 columns, a depth of 25 N */
    "%0 = input \"x\" : $T[N,17,5,5]\n"
    "%1 = input \"gy\" : $T[N,2,5,5]\n"
    "%2 = conv2d_bwd_weight %0, %1 {pad=[1,1]} : $T[2,17,3,3]\n",
    /* an epilogue, with the anchor stored too */
    "%0 = input \"x\" : $T[N,65]\n"
    "%1 = param \"w\" : $T[70,65]\n"
    "%2 = param \"b\" : $T[70]\n"
    "%3 = matmul %0, %1 {transpose_b} : $T[N,70] in %4\n"
    "%4 = add %3, %2 : $T[N,70] in %4\n"
    "output \"mm\" = %3\n",
};

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

/* The graph of a case: its root (the last node) is output "y". */
static Graph *case_graph(const char *body) {
    int last = -1;
    for (const char *p = body; *p; p = strchr(p, '\n') + 1) /* a node a line, outputs after them */
        last += *p == '%';
    return ts_parse_graph("case.ir", arena_printf(ts.a, "graph g {\n%s  output \"y\" = %%%d\n}\n", body, last));
}

static const Node *root_of(const Graph *g) {
    return g->outputs[g->noutputs - 1].value;
}

/* Emits case text's kernel in options o into its own source and the shared translation unit. */
static Kernel *add_kernel(const char *text, DType dt, bool fp32) {
    assert_true(t.nks < MAX_KERNELS);
    Kernel *kn = &t.ks[t.nks];
    kn->text = subst(text, dt);
    kn->t = dt;
    kn->g = case_graph(kn->text);
    cg_kernel_of(kn->g, root_of(kn->g), &kn->k);
    kn->o.fp32 = fp32;
    char *name = arena_printf(ts.a, "k%d", t.nks);
    CuKernel ck = {.k = &kn->k, .o = &kn->o, .name = name, .src = &kn->src, .d = ts.d};
    if (!cu_emit_gemm(&ck))
        fail_msg("%s: %s", kn->text, diag_first_message(ts.d));
    kn->block = ck.block;
    kn->items_c = ck.items_c;
    kn->items_p = ck.items_p;
    kn->per_block = ck.per_block;
    cu_printf(&t.src, "%s\nextern \"C\" void run_%d(void **b, long long n, unsigned grid) {\n", kn->src.s, t.nks);
    cu_printf(&t.src, "    lathe_emu_launch(grid, %d, [=]() { %s(", kn->block, name);
    for (int i = 0; i < kn->k.nbufs; i++)
        cu_printf(&t.src, "(%s%s *)b[%d], ", i < kn->k.nouts ? "" : "const ", cu_type(kn->k.bufs[i]->dtype), i);
    cu_printf(&t.src, "n); });\n}\n\n");
    t.nks++;
    return kn;
}

static bool have_gxx(void) {
    return system("g++ --version > /dev/null 2>&1") == 0;
}

static int setup(void **state) {
    ts_setup(state);
    memset(&t, 0, sizeof t);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        add_kernel(cases[i], DT_F32, true);
        add_kernel(cases[i], DT_F32, false);
        add_kernel(cases[i], DT_F64, false);
    }
    if (!have_gxx())
        return 0;
    snprintf(t.dir, sizeof t.dir, "/tmp/lathe_cuda_gemm_XXXXXX");
    assert_non_null(mkdtemp(t.dir));
    char *cu = arena_printf(ts.a, "%s/gemm.cu", t.dir), *so = arena_printf(ts.a, "%s/gemm.so", t.dir);
    FILE *f = fopen(cu, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(t.src.s, 1, t.src.len, f), t.src.len);
    assert_int_equal(fclose(f), 0);
    char *cmd = arena_printf(ts.a,
                             "g++ -std=c++17 -O1 -fPIC -shared -w -DLATHE_CUDA_EMULATE -include "
                             "%s/tests/cuda/emu/lathe_cuda_emu.h -x c++ %s -o %s",
                             LATHE_SOURCE_DIR, cu, so);
    if (system(cmd) != 0)
        fail_msg("the kernels do not compile for the host: %s", cmd);
    t.so = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(t.so);
    for (int i = 0; i < t.nks; i++) {
        char sym[32];
        snprintf(sym, sizeof sym, "run_%d", i);
        *(void **)&t.ks[i].run = dlsym(t.so, sym);
        assert_non_null(t.ks[i].run);
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
    for (int i = 0; i < t.nks; i++)
        cu_free(&t.ks[i].src);
    cu_free(&t.src);
    return ts_teardown(state);
}

/* ---------------------------------------------------------------- running a kernel */

static uint64_t rng = 42;

/* The binding of leaf x at batch size n: uniform in [-1, 1), as the kernel's dtype rounds it. */
static IBinding bind_leaf(const Node *x, DType t, int64_t n) {
    IBinding b = {.name = x->attr.name, .value.shape = ts_shape_at(x->shape, n)};
    int64_t m = ir_shape_numel(&x->shape, n);
    b.value.data = arena_alloc(ts.a, sizeof(double) * (size_t)(m + 1));
    for (int64_t i = 0; i < m; i++)
        b.value.data[i] = t == DT_F32 ? (double)(float)(ts_rand_uniform(&rng) * 2 - 1) : ts_rand_uniform(&rng) * 2 - 1;
    return b;
}

static double tolerance(const Kernel *kn) {
    return kn->t == DT_F64 ? 1e-12 : kn->o.fp32 ? 1e-5 : 1e-3;
}

/* Kernel kn at batch size n on the launch's grid and on one and two blocks, every output against the
   interpreter's. */
static void check_kernel(const Kernel *kn, int64_t n) {
    const Graph *g = kn->g;
    IBinding binds[8];
    int nb = 0;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->op == OP_INPUT || g->nodes[i]->op == OP_PARAM)
            binds[nb++] = bind_leaf(g->nodes[i], kn->t, n);
    ITensor *want = ir_interp(ts.a, g, n, binds, nb, ts.d);
    if (!want)
        fail_msg("%s: %s", kn->text, diag_first_message(ts.d));

    void *bufs[CG_MAX_BUFS];
    size_t es = ir_dtype_size(kn->t);
    for (int b = 0; b < kn->k.nbufs; b++) {
        const Node *x = kn->k.bufs[b];
        int64_t m = ir_shape_numel(&x->shape, n);
        bufs[b] = arena_alloc(ts.a, es * (size_t)(m + 1));
        for (int i = 0; b >= kn->k.nouts && i < nb; i++)
            if (strcmp(binds[i].name, x->attr.name) == 0)
                for (int64_t e = 0; e < m; e++)
                    ts_elem_put(bufs[b], kn->t, e, binds[i].value.data[e]);
    }

    int64_t items = kn->items_c;
    for (int p = 0; p < kn->items_p; p++)
        items *= n;
    unsigned grids[3] = {(unsigned)((items + kn->per_block - 1) / kn->per_block), 1, 2};
    for (int gi = 0; gi < 3; gi++) {
        for (int b = 0; b < kn->k.nouts; b++) /* NaN everywhere: an element not written shows */
            memset(bufs[b], 0xff, es * (size_t)(ir_shape_numel(&kn->k.bufs[b]->shape, n) + 1));
        kn->run(bufs, n, grids[gi] ? grids[gi] : 1);
        for (int o = 0; o < g->noutputs; o++) {
            const Node *y = g->outputs[o].value;
            int b = cg_buf_index(&kn->k, y);
            assert_true(b >= 0 && b < kn->k.nouts);
            int64_t m = ir_shape_numel(&y->shape, n);
            double scale = 0, err = 0;
            for (int64_t e = 0; e < m; e++) {
                double d = fabs(ts_elem_get(bufs[b], kn->t, e) - want[o].data[e]);
                err = d > err || d != d ? d : err;
                scale = fmax(scale, fabs(want[o].data[e]));
            }
            if (!(err <= tolerance(kn) * fmax(scale, 1e-30)))
                fail_msg("%s(%s, n = %lld, grid %u): output %s off by %g over the scale %g", kn->text,
                         kn->t == DT_F64 ? "f64" : kn->o.fp32 ? "fp32" : "tf32", (long long)n, grids[gi],
                         g->outputs[o].name, err, scale);
        }
    }
}

/* ---------------------------------------------------------------- tests */

static void test_gemm_kernels_match_interpreter(void **state) {
    (void)state;
    if (!t.so)
        skip();
    for (int i = 0; i < t.nks; i++)
        for (int64_t n = 1; n <= 3; n += 2)
            check_kernel(&t.ks[i], n);
}

/* TF32 tensor cores exactly where asked: float32 without --precision fp32; exact FMA otherwise. */
static void test_precision_selects_wmma_or_fma(void **state) {
    (void)state;
    for (int i = 0; i < t.nks; i++) {
        const Kernel *kn = &t.ks[i];
        bool tf32 = kn->t == DT_F32 && !kn->o.fp32;
        const char *s = kn->src.s;
        assert_int_equal(strstr(s, "precision::tf32") != NULL, tf32);
        assert_int_equal(strstr(s, "__float_to_tf32") != NULL, tf32);
        assert_int_equal(strstr(s, "#ifndef LATHE_CUDA_EMULATE\n#include <mma.h>\n#endif\n") != NULL, tf32);
        if (!tf32)
            assert_non_null(strstr(s, kn->t == DT_F32 ? "fmaf(" : "fma("));
        assert_null(strstr(s, "atomic")); /* deterministic: one thread sums each output */
    }
}

/* One item a 64x64 tile of the output (per group of a convolution), counted from above in N. */
static void test_launch_counts_tiles(void **state) {
    (void)state;
    /* [N,70]: ceil(70 / 64) = 2 column tiles, a row tile per 64 of N at most one per N */
    const Kernel *kn = &t.ks[0];
    assert_int_equal(kn->block, 256);
    assert_int_equal(kn->per_block, 1);
    assert_int_equal(kn->items_c, 2);
    assert_int_equal(kn->items_p, 1);
    /* [2,65,3]: 2 batches x 2 row tiles x 1 */
    kn = &t.ks[3 * 2];
    assert_int_equal(kn->items_c, 4);
    assert_int_equal(kn->items_p, 0);
    /* conv2d groups=2 to [N,6,5,13]: 2 groups x ceil(65 N / 64) <= 2 N row tiles x 1 */
    kn = &t.ks[3 * 7];
    assert_int_equal(kn->items_c, 4);
    assert_int_equal(kn->items_p, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_kernels_match_interpreter),
        cmocka_unit_test(test_precision_selects_wmma_or_fma),
        cmocka_unit_test(test_launch_counts_tiles),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    if (!failed && !have_gxx()) {
        printf("SKIP: no g++ to compile the emulated kernels\n");
        return 77;
    }
    return failed;
}
