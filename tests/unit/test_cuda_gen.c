/* test_cuda_gen.c: the CUDA generator's output, without a GPU. Every model in models/, through the same
   pipeline as `lathe compile`, generates: each launch names a kernel defined once as an extern "C"
   __global__ function, its buffers lie inside the graph's arguments and arena, and the plan's JSON says
   what the plan says; every elementwise, reduction, one_hot and iota kernel of every model generates on its
   own. Hand-written graphs of each pointwise and reduction kind give the code expected of them (the
   reducer chosen by the sizes, NaN-aware max, argmax's order, folded constants, #line to the model), and
   the epilogue code that gemm.c calls keeps its contract. The numbers are checked by tests/cuda (the host
   emulation against the interpreter). */
#include "support.h"

#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../../codegen/cuda/cu_int.h"
#include "../../passes/passes.h"

static int setup(void **state) {
    ts_open(NULL, stderr);
    return 0;
}

/* ---------------------------------------------------------------- checking a plan */

static int count_of(const char *hay, const char *needle) {
    int c = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        c++;
    return c;
}

/* Whether the bytes [off, off + bytes) of a buffer at batch size n lie inside the arena. */
static bool in_arena(const CgCudaGraph *cg, CgCudaBuf b, int64_t bytes_c, int bytes_p, int64_t n) {
    int64_t bytes = bytes_c;
    for (int i = 0; i < bytes_p; i++)
        bytes *= n;
    return b.offset_c >= 0 && b.offset_n >= 0 && b.offset_c + b.offset_n * n + bytes <= cg->arena_c + cg->arena_n * n;
}

static void check_buf(const CgCudaGraph *cg, CgCudaBuf b, const Node *nd) {
    if (b.arg >= 0) {
        if (b.arg >= cg->nargs)
            fail_msg("graph %s: buffer of %%%d is argument %d of %d", cg->name, nd->id, b.arg, cg->nargs);
        return;
    }
    int64_t c = ir_shape_numel_per_n(&nd->shape) * (int64_t)ir_dtype_size(nd->dtype);
    static const int64_t ns[] = {1, 64, 4096};
    for (int i = 0; i < 3; i++)
        if (!in_arena(cg, b, c, ir_shape_count_n(&nd->shape), ns[i]))
            fail_msg("graph %s: buffer of %%%d at [%lld + %lld n] is outside the arena at n = %lld", cg->name, nd->id,
                     (long long)b.offset_c, (long long)b.offset_n, (long long)ns[i]);
}

static void check_json_buf(json_t *j, CgCudaBuf b) {
    if (b.arg >= 0) {
        assert_int_equal(json_integer_value(json_object_get(j, "arg")), b.arg);
        return;
    }
    json_t *ar = json_object_get(j, "arena");
    assert_true(json_is_array(ar));
    assert_int_equal(json_integer_value(json_array_get(ar, 0)), b.offset_c);
    assert_int_equal(json_integer_value(json_array_get(ar, 1)), b.offset_n);
}

static void check_pair(json_t *j, int64_t c, int64_t p) {
    assert_true(json_is_array(j));
    assert_int_equal(json_array_size(j), 2);
    assert_int_equal(json_integer_value(json_array_get(j, 0)), c);
    assert_int_equal(json_integer_value(json_array_get(j, 1)), p);
}

static void check_graph_json(json_t *jg, const CgCudaGraph *cg) {
    assert_non_null(jg);
    assert_int_equal(json_integer_value(json_object_get(jg, "nargs")), cg->nargs);
    check_pair(json_object_get(jg, "arena"), cg->arena_c, cg->arena_n);
    json_t *ls = json_object_get(jg, "launches"), *cs = json_object_get(jg, "copies");
    assert_int_equal(json_array_size(ls), cg->nlaunches);
    assert_int_equal(json_array_size(cs), cg->ncopies);
    for (int i = 0; i < cg->nlaunches; i++) {
        const CgCudaLaunch *l = &cg->launches[i];
        json_t *jl = json_array_get(ls, (size_t)i);
        assert_string_equal(json_string_value(json_object_get(jl, "name")), l->name);
        assert_int_equal(json_integer_value(json_object_get(jl, "node")), l->node);
        assert_int_equal(json_integer_value(json_object_get(jl, "block")), l->block);
        assert_int_equal(json_integer_value(json_object_get(jl, "per_block")), l->per_block);
        assert_int_equal(json_integer_value(json_object_get(jl, "nouts")), l->nouts);
        check_pair(json_object_get(jl, "items"), l->items_c, l->items_p);
        json_t *bs = json_object_get(jl, "bufs");
        assert_int_equal(json_array_size(bs), l->nbufs);
        for (int b = 0; b < l->nbufs; b++)
            check_json_buf(json_array_get(bs, (size_t)b), l->bufs[b]);
    }
    for (int i = 0; i < cg->ncopies; i++) {
        json_t *jc = json_array_get(cs, (size_t)i);
        check_json_buf(json_object_get(jc, "dst"), cg->copies[i].dst);
        check_json_buf(json_object_get(jc, "src"), cg->copies[i].src);
        check_pair(json_object_get(jc, "bytes"), cg->copies[i].bytes_c, cg->copies[i].bytes_p);
    }
}

/* The plan of graph g: its sizes, each launch's kernel defined once with the launch's block, on the
   buffers of that kernel, each buffer and copy in range. */
static void check_graph_plan(const char *src, const CgCudaGraph *cg, const Graph *g) {
    assert_string_equal(cg->name, g->name);
    assert_int_equal(cg->nargs, ir_graph_args(g, NULL));
    int64_t c, per_n;
    pass_memplan_size(g, &c, &per_n);
    assert_int_equal(cg->arena_c, c);
    assert_int_equal(cg->arena_n, per_n);
    int kernels = 0;
    for (int i = 0; i < g->nnodes; i++)
        kernels += cg_is_kernel_root(g, g->nodes[i]);
    assert_int_equal(cg->nlaunches, kernels);
    CgKernel *k = malloc(sizeof *k);
    assert_non_null(k);
    for (int i = 0; i < cg->nlaunches; i++) {
        const CgCudaLaunch *l = &cg->launches[i];
        assert_true(l->node >= 0 && l->node < g->nnodes);
        const Node *nd = g->nodes[l->node];
        assert_true(cg_is_kernel_root(g, nd));
        cg_kernel_of(g, nd, k);
        assert_int_equal(l->nbufs, k->nbufs);
        assert_true(l->block >= 32 && l->block <= 1024 && l->block % 32 == 0);
        assert_true(l->per_block >= 1 && l->items_c >= 0 && l->items_p >= 0);
        assert_true(l->nouts >= 1 && l->nouts <= l->nbufs);
        char sig[160];
        snprintf(sig, sizeof sig, "extern \"C\" __global__ void __launch_bounds__(%d) %s(", l->block, l->name);
        if (count_of(src, sig) != 1)
            fail_msg("graph %s: kernel %s is defined %d times", cg->name, l->name, count_of(src, sig));
        snprintf(sig, sizeof sig, " %s(", l->name);
        assert_int_equal(count_of(src, sig), 1 + 1); /* the definition and the emulation's call */
        for (int b = 0; b < l->nbufs; b++)
            check_buf(cg, l->bufs[b], k->bufs[b]);
    }
    free(k);
    for (int i = 0; i < cg->ncopies; i++) {
        const CgCudaCopy *cp = &cg->copies[i];
        assert_true(cp->bytes_c >= 0 && cp->bytes_p >= 0);
        int64_t bytes = cp->bytes_c;
        if (cp->dst.arg < 0)
            assert_true(in_arena(cg, cp->dst, bytes, cp->bytes_p, 64));
        else
            assert_true(cp->dst.arg < cg->nargs);
        if (cp->src.arg < 0)
            assert_true(in_arena(cg, cp->src, bytes, cp->bytes_p, 64));
        else
            assert_true(cp->src.arg < cg->nargs);
    }
}

static void check_program(const CgCudaProgram *cp, Graph *const *gs, int ngraphs) {
    assert_int_equal(cp->ngraphs, ngraphs);
    assert_non_null(cp->source);
    json_error_t err;
    json_t *root = json_loads(cg_cuda_plan_json(ts.a, cp), 0, &err);
    if (!root)
        fail_msg("the plan's JSON does not parse: %s", err.text);
    json_t *graphs = json_object_get(root, "graphs");
    assert_int_equal(json_object_size(graphs), ngraphs);
    for (int i = 0; i < ngraphs; i++) {
        check_graph_plan(cp->source, &cp->graphs[i], gs[i]);
        check_graph_json(json_object_get(graphs, gs[i]->name), &cp->graphs[i]);
    }
    json_decref(root);
}

/* ---------------------------------------------------------------- every model */

static int model_names(char names[][64], int max) {
    DIR *dir = opendir(LATHE_SOURCE_DIR "/models");
    assert_non_null(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(dir)) && n < max;) {
        size_t len = strlen(e->d_name);
        if (len > 6 && len < 64 && strcmp(e->d_name + len - 6, ".lathe") == 0)
            strcpy(names[n++], e->d_name);
    }
    closedir(dir);
    qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    assert_true(n >= 10);
    return n;
}

static Program *compile_model(const char *name) {
    Program *p = ts_compile_text(arena_printf(ts.a, "%s/models/%s", LATHE_SOURCE_DIR, name), ts_read_model(name));
    if (!pass_pipeline(p, NULL, NULL, ts.d))
        fail_msg("%s: %s", name, diag_first_message(ts.d));
    return p;
}

static void test_every_model_generates(void **state) {
    char names[64][64];
    int nm = model_names(names, 64);
    for (int m = 0; m < nm; m++) {
        Diag *d = diag_new(NULL);
        Program *p = compile_model(names[m]);
        CgCudaProgram cp;
        if (!cg_cuda_generate(ts.a, p, NULL, &cp, d))
            fail_msg("%s: %s", names[m], diag_first_message(d));
        Graph *gs[4];
        int ng = program_graphs(p, gs);
        check_program(&cp, gs, ng);
        diag_free(d);
    }
}

static bool is_pointwise_kind(const CgKernel *k) {
    const Node *r = k->root;
    if (k->anchor || r->op == OP_MATMUL || cg_is_callout(r->op))
        return false;
    return true;
}

/* Each of this file's kinds of kernel of every model on its own, whatever gemm.c and lib.c can do. */
static void test_every_model_pointwise_kernel_generates(void **state) {
    char names[64][64];
    int nm = model_names(names, 64);
    CgKernel *k = malloc(sizeof *k);
    assert_non_null(k);
    int total = 0;
    for (int m = 0; m < nm; m++) {
        Program *p = compile_model(names[m]);
        Graph *gs[4];
        int ng = program_graphs(p, gs);
        for (int gi = 0; gi < ng; gi++) {
            for (int i = 0; i < gs[gi]->nnodes; i++) {
                const Node *nd = gs[gi]->nodes[i];
                if (!cg_is_kernel_root(gs[gi], nd))
                    continue;
                cg_kernel_of(gs[gi], nd, k);
                if (!is_pointwise_kind(k))
                    continue;
                CuBuf src = {0};
                CuKernel ck = {.k = k, .src = &src, .d = ts.d, .name = "kx"};
                const Node *r = k->root;
                bool ok = ir_op_kind(r->op) == K_REDUCE || r->op == OP_ARGMAX || r->op == OP_ARGMIN ? cu_emit_reduce(&ck)
                        : r->op == OP_IOTA || r->op == OP_ONE_HOT ? cu_emit_other(&ck)
                                                                  : cu_emit_pointwise(&ck);
                if (!ok)
                    fail_msg("%s: %%%d (%s): %s", names[m], nd->id, ir_op_name(r->op), diag_first_message(ts.d));
                char sig[96];
                snprintf(sig, sizeof sig, "__global__ void __launch_bounds__(%d) kx(", ck.block);
                assert_int_equal(count_of(src.s, sig), 1);
                assert_true(ck.block == 256 || ck.block == 1024);
                assert_true(ck.per_block >= 1);
                cu_free(&src);
                total++;
            }
        }
    }
    free(k);
    assert_true(total > 500);
}

/* ---------------------------------------------------------------- hand-written graphs */

/* The plan of a grouped graph, as test_cg_fused.c makes it. */
static void plan(Graph *g) {
    assert_true(ir_verify(g, ts.d));
    assert_true(pass_memplan(g, ts.d));
    for (int i = 0; i < g->nnodes; i++) {
        Node *m = g->nodes[i];
        if (m->group >= 0 && !ir_group_materialized(g, m))
            m->mem = (MemLoc){MEM_FUSED, -1, 0, 0};
    }
}

/* Generates text's one graph, checks its plan, and returns the source. */
static const char *gen_text(const char *text, CgCudaProgram *cp) {
    Graph *g = ts_parse_graph("m.ir", text);
    plan(g);
    if (!cg_cuda_generate_graph(ts.a, g, NULL, cp, ts.d))
        fail_msg("%s", diag_first_message(ts.d));
    check_program(cp, &g, 1);
    return cp->source;
}

/* The code of the kernel named name (up to the next kernel). */
static char *kernel_code(const char *src, const char *name) {
    char sig[96];
    snprintf(sig, sizeof sig, " %s(", name);
    const char *s = strstr(src, sig);
    assert_non_null(s);
    const char *e = strstr(s, "#ifdef LATHE_CUDA_EMULATE");
    assert_non_null(e);
    return arena_strndup(ts.a, s, (size_t)(e - s));
}

static void expect_in(const char *code, const char *what) {
    if (!strstr(code, what))
        fail_msg("expected \"%s\" in:\n%s", what, code);
}

static void expect_not_in(const char *code, const char *what) {
    if (strstr(code, what))
        fail_msg("did not expect \"%s\" in:\n%s", what, code);
}

static void test_elementwise_group_broadcast_and_line(void **state) {
    CgCudaProgram cp;
    const char *src = gen_text("graph train {\n"
                               "  %0 = input \"x\" : f32[N,7,13]\n"
                               "  %1 = param \"b\" : f32[13]\n"
                               "  %2 = add %0, %1 : f32[N,7,13] in %5        # m.lathe:7:3\n"
                               "  %3 = relu %2 : f32[N,7,13] in %5           # m.lathe:8:5\n"
                               "  %4 = const 0.5 : f32[]\n"
                               "  %5 = mul %3, %4 : f32[N,7,13] in %5        # m.lathe:9:1\n"
                               "  output \"y\" = %5\n"
                               "  output \"pre\" = %2\n"
                               "}\n",
                               &cp);
    assert_int_equal(cp.graphs[0].nlaunches, 1);
    const CgCudaLaunch *l = &cp.graphs[0].launches[0];
    assert_string_equal(l->name, "k5_mul");
    assert_int_equal(l->items_c, 7 * 13);
    assert_int_equal(l->items_p, 1);
    assert_int_equal(l->per_block, 256);
    const char *code = kernel_code(src, "k5_mul");
    expect_in(code, "#line 7 \"m.lathe\"");
    expect_in(code, "#line 9 \"m.lathe\"");
    expect_in(code, " * 0.5f;");          /* the constant folded as a float literal */
    expect_in(code, "t = q % 13LL;");     /* the bias read with stride 0 over [N,7] */
    expect_in(code, "(v0 < 0 ? (float)0 : v0)"); /* relu lets NaN through */
}

static void test_elementwise_transpose_read_through_strides(void **state) {
    CgCudaProgram cp;
    const char *src = gen_text("graph train {\n"
                               "  %0 = input \"x\" : f64[N,7,5]\n"
                               "  %1 = transpose %0 {perm=[0,2,1]} : f64[N,5,7] in %2\n"
                               "  %2 = exp %1 : f64[N,5,7] in %2\n"
                               "  output \"y\" = %2\n"
                               "}\n",
                               &cp);
    const char *code = kernel_code(src, "k2_exp");
    expect_in(code, "const double v0 = a0;");
    expect_in(code, "exp(v0)");
    expect_in(code, "t * 5LL"); /* dim 2 of the output steps dim 1 of x */
}

static void test_elementwise_integer_ops_wrap_and_divide_safely(void **state) {
    CgCudaProgram cp;
    const char *src = gen_text("graph train {\n"
                               "  %0 = input \"a\" : i32[N,4]\n"
                               "  %1 = input \"b\" : i32[N,4]\n"
                               "  %2 = div %0, %1 : i32[N,4] in %5\n"
                               "  %3 = neg %2 : i32[N,4] in %5\n"
                               "  %4 = mul %3, %0 : i32[N,4] in %5\n"
                               "  %5 = max %4, %1 : i32[N,4] in %5\n"
                               "  output \"y\" = %5\n"
                               "}\n",
                               &cp);
    const char *code = kernel_code(src, "k5_max");
    expect_in(code, "const int v0 = lathe_div(a0, a1);");
    expect_in(code, "lathe_sub((int)0, v0)");
    expect_in(code, "lathe_mul(v1, a0)");
    expect_in(code, "lathe_max(v2, a1)");
}

static void test_elementwise_compare_select_cast_and_const_of_n(void **state) {
    CgCudaProgram cp;
    const char *src = gen_text("graph train {\n"
                               "  %0 = input \"x\" : f32[N,9]\n"
                               "  %1 = input \"k\" : i64[N,9]\n"
                               "  %2 = const 0 : f32[]\n"
                               "  %3 = gt %0, %2 : u8[N,9] in %8\n"
                               "  %4 = cast %1 : f32[N,9] in %8\n"
                               "  %5 = select %3, %0, %4 : f32[N,9] in %8\n"
                               "  %6 = const 1 {npow=-1} : f32[]\n"
                               "  %7 = mul %5, %6 : f32[N,9] in %8\n"
                               "  %8 = cast %7 : i32[N,9] in %8\n"
                               "  output \"y\" = %8\n"
                               "}\n",
                               &cp);
    const char *code = kernel_code(src, "k8_cast");
    expect_in(code, "(unsigned char)(a0 > 0.0f)");
    expect_in(code, "((float)(a1))");
    expect_in(code, "v0 != 0 ? a0 : v1");
    expect_in(code, "(1.0 / (double)n)"); /* 1/N computed from n in double, as the interpreter does */
    expect_in(code, "lathe_f2i32((double)(v3))");
}

static void test_const_fill_kernel(void **state) {
    CgCudaProgram cp;
    const char *src = gen_text("graph train {\n"
                               "  %0 = input \"x\" : f32[N,3]\n"
                               "  %1 = const -2.5 : f32[N,3]\n"
                               "  output \"c\" = %1\n"
                               "  output \"x2\" = %0\n"
                               "}\n",
                               &cp);
    assert_int_equal(cp.graphs[0].nlaunches, 1);
    expect_in(kernel_code(src, "k1_const"), "const float v0 = (-2.5f);");
}

/* softmax's sum of exp(x - m) over 11 classes: a thread per row; a max over 300: a warp per output; a
   mean over [N,40] of each of 2 columns (the innermost dim kept): the warps of a block on interleaved rows,
   lane l on column l, added in warp order */
static void test_reduce_reducer_by_size(void **state) {
    CgCudaProgram cp;
    const char *src = gen_text("graph train {\n"
                               "  %0 = input \"x\" : f32[N,3,11]\n"
                               "  %1 = input \"m\" : f32[N,3,1]\n"
                               "  %2 = sub %0, %1 : f32[N,3,11] in %4\n"
                               "  %3 = exp %2 : f32[N,3,11] in %4\n"
                               "  %4 = reduce_sum %3 {axes=[2], keepdim} : f32[N,3,1] in %4\n"
                               "  %5 = input \"y\" : f64[N,300]\n"
                               "  %6 = reduce_max %5 {axes=[1]} : f64[N]\n"
                               "  %7 = input \"z\" : f32[N,40,2]\n"
                               "  %8 = reduce_mean %7 {axes=[0,1]} : f32[2]\n"
                               "  output \"s\" = %4\n"
                               "  output \"e\" = %3\n"
                               "  output \"mx\" = %6\n"
                               "  output \"mean\" = %8\n"
                               "}\n",
                               &cp);
    const char *thread = kernel_code(src, "k4_reduce_sum"), *warp = kernel_code(src, "k6_reduce_max");
    const char *cols = kernel_code(src, "k8_reduce_mean");
    expect_in(thread, "double acc = (double)(0);"); /* float sums in double */
    expect_in(thread, "for (long long rx = 0; rx < count; rx += 1)");
    expect_in(thread, "b0[o0] = v1;"); /* the materialized exp stored at each element */
    expect_not_in(thread, "__shfl_down_sync");
    expect_in(warp, "rx += 32");
    expect_in(warp, "__shfl_down_sync");
    expect_in(warp, "acc = lathe_max(acc, (double)a0);");
    expect_not_in(warp, "__syncthreads");
    expect_in(cols, "acc / (double)(40LL * n)");
    expect_in(cols, "for (long long rx = warp; rx < count; rx += warps)");
    expect_in(cols, "part[warp][lane] = acc;");
    expect_in(cols, "acc = acc + part[v][lane];");
    for (int i = 0; i < cp.graphs[0].nlaunches; i++) {
        const CgCudaLaunch *l = &cp.graphs[0].launches[i];
        if (strcmp(l->name, "k6_reduce_max") == 0)
            assert_int_equal(l->per_block, 256 / 32);
        if (strcmp(l->name, "k4_reduce_sum") == 0)
            assert_int_equal(l->per_block, 256);
        if (strcmp(l->name, "k8_reduce_mean") == 0)
            assert_int_equal(l->per_block, 32);
    }
}

static void test_reduce_over_batch_by_block(void **state) {
    CgCudaProgram cp;
    const char *src = gen_text("graph train {\n"
                               "  %0 = input \"x\" : f32[N,6]\n"
                               "  %1 = mul %0, %0 : f32[N,6] in %2\n"
                               "  %2 = reduce_sum %1 {axes=[0,1]} : f32[] in %2\n"
                               "  %3 = input \"k\" : u8[N]\n"
                               "  %4 = reduce_min %3 {axes=[0]} : u8[]\n"
                               "  output \"s\" = %2\n"
                               "  output \"m\" = %4\n"
                               "}\n",
                               &cp);
    const char *code = kernel_code(src, "k2_reduce_sum");
    expect_in(code, "__shared__ double part[32];");
    expect_in(code, "__syncthreads();");
    expect_in(code, "rx += blockDim.x");
    const char *u8 = kernel_code(src, "k4_reduce_min");
    expect_in(u8, "unsigned acc = (unsigned)(255u);");
    expect_in(u8, "(unsigned char)acc");
    assert_int_equal(cp.graphs[0].launches[0].per_block, 1);
}

/* batch norm's statistics: few outputs (a channel each) over many elements: blocks of 1024 threads; a
   bias gradient over 600 features: blocks of 256 */
static void test_reduce_few_outputs_large_blocks(void **state) {
    CgCudaProgram cp;
    const char *src = gen_text("graph train {\n"
                               "  %0 = input \"x\" : f32[N,16,32,32]\n"
                               "  %1 = reduce_mean %0 {axes=[0,2,3]} : f32[16]\n"
                               "  %2 = input \"y\" : f32[N,600]\n"
                               "  %3 = reduce_sum %2 {axes=[0]} : f32[600]\n"
                               "  output \"m\" = %1\n"
                               "  output \"s\" = %3\n"
                               "}\n",
                               &cp);
    expect_in(src, "__launch_bounds__(1024) k1_reduce_mean(");
    expect_in(kernel_code(src, "k1_reduce_mean"), "t = q % 1024LL;"); /* H and W merged */
    expect_in(src, "__launch_bounds__(256) k3_reduce_sum(");
    assert_int_equal(cp.graphs[0].launches[0].block, 1024);
}

static void test_argmax_and_argmin_first_index(void **state) {
    CgCudaProgram cp;
    const char *src = gen_text("graph train {\n"
                               "  %0 = input \"x\" : f32[N,10]\n"
                               "  %1 = param \"b\" : f32[10]\n"
                               "  %2 = add %0, %1 : f32[N,10] in %3\n"
                               "  %3 = argmax %2 {axis=1} : i64[N] in %3\n"
                               "  %4 = input \"y\" : i32[N,5000]\n"
                               "  %5 = argmin %4 {axis=1} : i64[N]\n"
                               "  %6 = argmin %0 {axis=0} : i64[10]\n"
                               "  output \"i\" = %3\n"
                               "  output \"j\" = %5\n"
                               "  output \"k\" = %6\n"
                               "}\n",
                               &cp);
    const char *amax = kernel_code(src, "k3_argmax"), *amin = kernel_code(src, "k5_argmin");
    const char *cols = kernel_code(src, "k6_argmin");
    expect_in(amax, "if (lathe_arg_better(acc, acc_i, (float)v0, rx, false))");
    expect_in(amax, "acc_i == LATHE_I64_MAX ? 0 : acc_i"); /* an empty axis gives 0 */
    expect_in(amin, "lathe_arg_better(acc, acc_i, other, other_i, true)");
    expect_in(amin, "__shared__ long long part_i[32];");
    /* over the batch: the warps' partial results combined in warp order, the index deciding ties */
    expect_in(cols, "part_i[warp][lane] = acc_i;");
    expect_in(cols, "lathe_arg_better(acc, acc_i, part[v][lane], part_i[v][lane], true)");
}

static void test_one_hot_and_iota(void **state) {
    CgCudaProgram cp;
    const char *src = gen_text("graph train {\n"
                               "  %0 = input \"label\" : i64[N]\n"
                               "  %1 = one_hot %0 {classes=10} : f32[N,10]\n"
                               "  %2 = iota {axis=1} : i32[3,N,4]\n"
                               "  output \"oh\" = %1\n"
                               "  output \"io\" = %2\n"
                               "}\n",
                               &cp);
    expect_in(kernel_code(src, "k1_one_hot"), "b0[ix] = (float)(label == ix % 10LL ? 1 : 0);");
    expect_in(kernel_code(src, "k2_iota"), "b0[ix] = (int)((ix / 4LL) % (1LL * n));");
}

/* Two kernels with one key: one function, launched twice on different buffers. */
static void test_identical_kernels_share_one_function(void **state) {
    CgCudaProgram cp;
    const char *src = gen_text("graph train {\n"
                               "  %0 = input \"x\" : f32[N,8]\n"
                               "  %1 = input \"y\" : f32[N,8]\n"
                               "  %2 = tanh %0 : f32[N,8]\n"
                               "  %3 = tanh %1 : f32[N,8]\n"
                               "  output \"a\" = %2\n"
                               "  output \"b\" = %3\n"
                               "}\n",
                               &cp);
    const CgCudaGraph *g = &cp.graphs[0];
    assert_int_equal(g->nlaunches, 2);
    assert_string_equal(g->launches[0].name, "k2_tanh");
    assert_string_equal(g->launches[1].name, "k2_tanh");
    assert_int_equal(count_of(src, "__global__ void"), 1);
    assert_true(g->launches[0].bufs[1].arg != g->launches[1].bufs[1].arg);
}

/* cu_emit_members_at's contract (gemm.c's epilogue): index and value evaluated first, every member but the
   anchor computed and the materialized ones stored; the anchor's own store left to the caller. */
static void test_members_at_epilogue_contract(void **state) {
    Graph *g = ts_parse_graph("m.ir", "graph train {\n"
                                      "  %0 = input \"x\" : f32[N,19]\n"
                                      "  %1 = param \"w\" : f32[13,19]\n"
                                      "  %2 = param \"b\" : f32[13]\n"
                                      "  %3 = matmul %0, %1 {transpose_b} : f32[N,13] in %6\n"
                                      "  %4 = add %3, %2 : f32[N,13] in %6\n"
                                      "  %5 = const 0 : f32[]\n"
                                      "  %6 = max %4, %5 : f32[N,13] in %6\n"
                                      "  output \"y\" = %6\n"
                                      "  output \"pre\" = %4\n"
                                      "}\n");
    plan(g);
    CgKernel k;
    cg_kernel_of(g, g->nodes[6], &k);
    assert_ptr_equal(k.anchor, g->nodes[3]);
    CuBuf src = {0};
    CuKernel ck = {.k = &k, .src = &src, .d = ts.d, .name = "kx"};
    cu_emit_members_at(&ck, "t * 13 + q", "acc[i]");
    int anchor_buf = cg_buf_index(&k, g->nodes[3]), pre = cg_buf_index(&k, g->nodes[4]), y = cg_buf_index(&k, g->nodes[6]);
    char store[32];
    expect_in(src.s, "const long long ep_index = t * 13 + q;");
    expect_in(src.s, "const float ep_value = acc[i];");
    snprintf(store, sizeof store, "b%d[o0] = v", anchor_buf);
    expect_not_in(src.s, store);
    snprintf(store, sizeof store, "b%d[o0] = v1;", pre);
    expect_in(src.s, store);
    snprintf(store, sizeof store, "b%d[o0] = v2;", y);
    expect_in(src.s, store);
    expect_in(src.s, "lathe_max(v1, 0.0f)");
    cu_free(&src);
}

/* The SGD update fused into the GEMM: the root P - s * anchor computed from the value and stored into P. */
static void test_members_at_sgd_update(void **state) {
    Graph *g = ts_parse_graph("m.ir", "graph train {\n"
                                      "  %0 = input \"x\" : f32[N,5]\n"
                                      "  %1 = input \"dy\" : f32[N,3]\n"
                                      "  %2 = param \"w\" : f32[3,5]\n"
                                      "  %3 = input \"lr\" : f32[]\n"
                                      "  %4 = matmul %1, %0 {transpose_a} : f32[3,5] in %6\n"
                                      "  %5 = mul %3, %4 : f32[3,5] in %6\n"
                                      "  %6 = sub %2, %5 : f32[3,5] in %6\n"
                                      "  update \"w\" = %6\n"
                                      "}\n");
    plan(g);
    CgKernel k;
    cg_kernel_of(g, g->nodes[6], &k);
    assert_true(k.sgd_gemm);
    CuBuf src = {0};
    CuKernel ck = {.k = &k, .src = &src, .d = ts.d, .name = "kx"};
    cu_emit_members_at(&ck, "e", "c");
    int w = cg_buf_index(&k, g->nodes[2]);
    char want[64];
    snprintf(want, sizeof want, "= b%d[o0];", w); /* P read before it is stored */
    expect_in(src.s, want);
    snprintf(want, sizeof want, "b%d[o0] = v", w);
    expect_in(src.s, want);
    assert_int_equal(count_of(src.s, "[o0] = v"), 1);
    cu_free(&src);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, ts_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_every_model_generates),
        T(test_every_model_pointwise_kernel_generates),
        T(test_elementwise_group_broadcast_and_line),
        T(test_elementwise_transpose_read_through_strides),
        T(test_elementwise_integer_ops_wrap_and_divide_safely),
        T(test_elementwise_compare_select_cast_and_const_of_n),
        T(test_const_fill_kernel),
        T(test_reduce_reducer_by_size),
        T(test_reduce_over_batch_by_block),
        T(test_reduce_few_outputs_large_blocks),
        T(test_argmax_and_argmin_first_index),
        T(test_one_hot_and_iota),
        T(test_identical_kernels_share_one_function),
        T(test_members_at_epilogue_contract),
        T(test_members_at_sgd_update),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
