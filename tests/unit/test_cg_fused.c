/* test_cg_fused.c: the CPU code generator's fusion groups against the reference interpreter (which ignores
   groups). Each test is text IR with hand-written groups (" in %R") of one kind: elementwise chains with
   broadcasts, transposed views, u8 masks and casts; reductions of an inline expression, both strategies;
   epilogues of matmul (plain, transposed, batched, the SGD update fused into the GEMM) and of convolutions.
   Each graph is planned, JIT-compiled and run three times, normally and with every kernel's range forced into
   3 and 7 parts (lathe_pool_test_split): the three runs must agree bit for bit, and with the interpreter
   within 1e-5 (f32) or 1e-12 (f64). */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../codegen/codegen.h"
#include "../../passes/passes.h"
#include "../../runtime/lathe_kern.h"

static uint64_t rng;

static int setup(void **state) {
    ts_open(NULL, stderr);
    rng = 0x243f6a8885a308d3ULL;
    return 0;
}

static int teardown(void **state) {
    lathe_pool_test_split(0);
    return ts_teardown(state);
}

/* floats in [-2, 2); integers in [-5, 5] ([0, 5] for u8); a scalar "lr" small and positive */
static double random_value(DType t, bool small) {
    double u = ts_rand_uniform(&rng);
    if (small)
        return 0.01 + 0.1 * u;
    if (ir_dtype_is_float(t))
        return -2 + 4 * u;
    int lo = t == DT_U8 ? 0 : -5;
    return lo + (int)floor(u * (5 - lo + 1));
}

#define GUARD 64

static void *alloc_guarded(size_t bytes) {
    uint8_t *p = aligned_alloc(64, (bytes + GUARD + 63) / 64 * 64);
    assert_non_null(p);
    memset(p + bytes, 0x5a, GUARD);
    return p;
}

static void check_guard(const void *buf, size_t bytes, const char *what) {
    const uint8_t *p = buf;
    for (size_t i = 0; i < GUARD; i++)
        if (p[bytes + i] != 0x5a)
            fail_msg("%s: written past its end (byte %zu)", what, bytes + i);
}

static size_t arg_bytes(const GraphArg *a, int64_t n) {
    return (size_t)ir_shape_numel(&a->node->shape, n) * ir_dtype_size(a->node->dtype);
}

/* The plan of a grouped graph. A memory plan that does not know groups yet leaves members that nothing
   outside reads with a buffer; they are simply marked fused (their bytes unused), the same contract. */
static void plan(Graph *g) {
    assert_true(ir_verify(g, ts.d));
    assert_true(pass_memplan(g, ts.d));
    for (int i = 0; i < g->nnodes; i++) {
        Node *m = g->nodes[i];
        if (m->group >= 0 && !ir_group_materialized(g, m))
            m->mem = (MemLoc){MEM_FUSED, -1, 0, 0};
    }
}

typedef struct Run {
    void **bufs;
    uint8_t *arena;
    size_t arena_bytes;
} Run;

/* Runs the compiled graph on copies of the inputs in src; the results stay in r. */
static void run_once(CgJit *j, const GraphArg *args, int nargs, void **src, int64_t n, int parts, Run *r,
                     int64_t arena_bytes) {
    lathe_pool_test_split(parts);
    r->bufs = calloc((size_t)nargs + 1, sizeof *r->bufs);
    assert_non_null(r->bufs);
    for (int a = 0; a < nargs; a++) {
        size_t bytes = arg_bytes(&args[a], n);
        r->bufs[a] = alloc_guarded(bytes);
        if (args[a].role == ARG_OUTPUT)
            memset(r->bufs[a], 0xcd, bytes);
        else
            memcpy(r->bufs[a], src[a], bytes);
    }
    r->arena_bytes = (size_t)arena_bytes;
    r->arena = alloc_guarded(r->arena_bytes);
    memset(r->arena, 0xab, r->arena_bytes); /* garbage: nothing may read the arena before writing it */
    cg_jit_entry(j)(r->bufs, n, r->arena);
    lathe_pool_test_split(0);
    check_guard(r->arena, r->arena_bytes, "the arena");
    for (int a = 0; a < nargs; a++)
        check_guard(r->bufs[a], arg_bytes(&args[a], n), args[a].name);
}

static void run_free(Run *r, int nargs) {
    for (int a = 0; a < nargs; a++)
        free(r->bufs[a]);
    free(r->bufs);
    free(r->arena);
}

static int find_arg(const GraphArg *args, int nargs, const char *name, bool output) {
    for (int a = 0; a < nargs; a++)
        if ((args[a].role == ARG_OUTPUT) == output && strcmp(args[a].name, name) == 0)
            return a;
    fail_msg("no arg %s", name);
    return -1;
}

/* Plans, JITs and runs g with N = n three times (ranges whole, in 3 parts, in 7 parts); checks that the runs
   agree bit for bit and match the interpreter. When untouched is given, that node's buffer in the arena
   must still hold the arena's garbage (a GEMM that wrote straight into the parameter). */
static void check_graph_untouched(Graph *g, int64_t n, const Node *untouched) {
    plan(g);
    CgJit *j = cg_llvm_jit(g, NULL, ts.d);
    if (!j)
        fail_msg("JIT failed: %s", diag_first_message(ts.d));
    int nargs = ir_graph_args(g, NULL);
    GraphArg *args = arena_alloc(ts.a, sizeof *args * (size_t)(nargs + 1));
    ir_graph_args(g, args);
    void **src = calloc((size_t)nargs + 1, sizeof *src);
    IBinding *bind = calloc((size_t)nargs + 1, sizeof *bind);
    int nbind = 0;
    for (int a = 0; a < nargs; a++) {
        const Node *v = args[a].node;
        if (args[a].role == ARG_OUTPUT)
            continue;
        int64_t numel = ir_shape_numel(&v->shape, n);
        src[a] = malloc(arg_bytes(&args[a], n) + 1);
        ITensor t = {ts_shape_at(v->shape, n), arena_alloc(ts.a, sizeof(double) * (size_t)(numel + 1))};
        bool small = strcmp(args[a].name, "lr") == 0;
        for (int64_t i = 0; i < numel; i++) {
            ts_elem_put(src[a], v->dtype, i, random_value(v->dtype, small));
            t.data[i] = ts_elem_get(src[a], v->dtype, i);
        }
        bind[nbind++] = (IBinding){args[a].name, t};
    }
    int64_t c, per_n;
    pass_memplan_size(g, &c, &per_n);
    Run runs[3];
    static const int parts[3] = {0, 3, 7};
    for (int r = 0; r < 3; r++)
        run_once(j, args, nargs, src, n, parts[r], &runs[r], c + per_n * n);

    ITensor *ref = ir_interp(ts.a, g, n, bind, nbind, ts.d);
    assert_non_null(ref);
    for (int i = 0; i < g->noutputs; i++) {
        const Output *o = &g->outputs[i];
        int a = find_arg(args, nargs, o->name, !o->update);
        DType t = o->value->dtype;
        double tol = t == DT_F32 ? 1e-5 : t == DT_F64 ? 1e-12 : 0;
        size_t bytes = arg_bytes(&args[a], n);
        for (int r = 1; r < 3; r++)
            if (memcmp(runs[0].bufs[a], runs[r].bufs[a], bytes) != 0)
                fail_msg("output %s: the run in %d parts differs from the whole run", o->name, parts[r]);
        int64_t numel = ir_shape_numel(&o->value->shape, n);
        for (int64_t k = 0; k < numel; k++) {
            double x = ts_elem_get(runs[0].bufs[a], t, k), want = ref[i].data[k];
            bool ok = (isnan(x) && isnan(want)) || x == want || fabs(x - want) <= tol * fmax(1.0, fabs(want));
            if (!ok)
                fail_msg("output %s[%lld]: generated %.9g, interpreter %.9g", o->name, (long long)k, x, want);
        }
    }
    if (untouched) {
        assert_int_equal(untouched->mem.kind, MEM_ARENA);
        int64_t off = untouched->mem.offset_c + untouched->mem.offset_n * n;
        size_t bytes = (size_t)ir_shape_numel(&untouched->shape, n) * ir_dtype_size(untouched->dtype);
        for (size_t b = 0; b < bytes; b++)
            if (runs[0].arena[off + (int64_t)b] != 0xab)
                fail_msg("%%%d's buffer was written (byte %zu)", untouched->id, b);
    }
    for (int r = 0; r < 3; r++)
        run_free(&runs[r], nargs);
    for (int a = 0; a < nargs; a++)
        free(src[a]);
    free(src);
    free(bind);
    cg_jit_free(j);
}

static void check_graph(Graph *g, int64_t n) {
    check_graph_untouched(g, n, NULL);
}

/* Parses text with every "T" replaced by dtype t, then checks it for each batch size of ns (ending in 0). */
static void check_text(const char *text, const char *t, const int64_t *ns) {
    char buf[8192];
    size_t o = 0;
    for (const char *p = text; *p && o + 8 < sizeof buf; p++) {
        if (*p == 'T' && p[1] == '[') {
            memcpy(buf + o, t, strlen(t));
            o += strlen(t);
        } else {
            buf[o++] = *p;
        }
    }
    buf[o] = 0;
    for (const int64_t *n = ns; *n; n++) {
        Graph *g = ts_parse_graph("fused.ir", buf);
        check_graph(g, *n);
    }
}

static const int64_t n135[] = {1, 3, 5, 0};

/* ---------------------------------------------------------------- elementwise groups */

static const char *chain_text =
    "graph train {\n"
    "  %0 = input \"x\" : T[N,7,13]\n"
    "  %1 = input \"y\" : T[N,7,13]\n"
    "  %2 = param \"b\" : T[13]\n"
    "  %3 = mul %0, %1 : T[N,7,13] in %8\n"
    "  %4 = add %3, %2 : T[N,7,13] in %8\n"
    "  %5 = relu %4 : T[N,7,13] in %8\n"
    "  %6 = const 0.5 : T[]\n"
    "  %7 = mul %5, %6 : T[N,7,13] in %8\n"
    "  %8 = exp %7 : T[N,7,13] in %8\n"
    "  %9 = neg %4 : T[N,7,13]\n"
    "  output \"e\" = %8\n"
    "  output \"pre\" = %9\n"
    "}\n";

static void test_elementwise_chain_broadcast_f32(void **state) {
    check_text(chain_text, "f32", n135);
}

static void test_elementwise_chain_broadcast_f64(void **state) {
    check_text(chain_text, "f64", n135);
}

/* a transposed view and an explicit broadcast read with composed strides; the root is not the only output */
static const char *views_text =
    "graph train {\n"
    "  %0 = input \"x\" : T[N,7,5]\n"
    "  %1 = input \"v\" : T[5,1]\n"
    "  %2 = input \"y\" : T[N,5,7]\n"
    "  %3 = transpose %0 {perm=[0,2,1]} : T[N,5,7] in %7\n"
    "  %4 = broadcast %1 : T[N,5,7] in %7\n"
    "  %5 = add %3, %4 : T[N,5,7] in %7\n"
    "  %6 = sub %5, %2 : T[N,5,7] in %7\n"
    "  %7 = mul %6, %3 : T[N,5,7] in %7\n"
    "  output \"r\" = %7\n"
    "  output \"d\" = %6\n"
    "}\n";

static void test_elementwise_transposed_view_and_broadcast_f32(void **state) {
    check_text(views_text, "f32", n135);
}

static void test_elementwise_transposed_view_and_broadcast_f64(void **state) {
    check_text(views_text, "f64", n135);
}

/* a u8 mask member selects; casts from integers; a scalar input broadcast everywhere */
static void test_elementwise_u8_mask_select_and_casts(void **state) {
    Graph *g = ts_parse_graph("fused.ir",
                              "graph train {\n"
                              "  %0 = input \"x\" : f64[N,9]\n"
                              "  %1 = input \"k\" : i32[N,9]\n"
                              "  %2 = input \"s\" : f64[]\n"
                              "  %3 = const 0 : f64[N,9] in %9\n"
                              "  %4 = gt %0, %3 : u8[N,9] in %9\n"
                              "  %5 = cast %1 : f64[N,9] in %9\n"
                              "  %6 = mul %5, %2 : f64[N,9] in %9\n"
                              "  %7 = select %4, %0, %6 : f64[N,9] in %9\n"
                              "  %8 = cast %7 : f32[N,9] in %9\n"
                              "  %9 = sqrt %8 : f32[N,9] in %9\n"
                              "  %10 = cast %4 : i32[N,9]\n"
                              "  output \"r\" = %9\n"
                              "  output \"mask\" = %10\n"
                              "}\n");
    /* sqrt of a negative is NaN on both sides */
    check_graph(g, 3);
}

/* a long contiguous domain, split into blocks; an in-place SGD update of a parameter */
static void test_elementwise_in_place_update_blocks(void **state) {
    Graph *g = ts_parse_graph("fused.ir",
                              "graph train {\n"
                              "  %0 = param \"w\" : f32[300,41]\n"
                              "  %1 = input \"g\" : f32[300,41]\n"
                              "  %2 = input \"lr\" : f32[]\n"
                              "  %3 = const 0.9 : f32[300,41] in %6\n"
                              "  %4 = mul %1, %3 : f32[300,41] in %6\n"
                              "  %5 = mul %2, %4 : f32[300,41] in %6\n"
                              "  %6 = sub %0, %5 : f32[300,41] in %6\n"
                              "  update \"w\" = %6\n"
                              "}\n");
    check_graph(g, 2);
}

/* ---------------------------------------------------------------- reduce groups */

/* softmax's denominator: exp(x - max) summed over the innermost dim (one accumulator per row) */
static const char *reduce_inner_text =
    "graph train {\n"
    "  %0 = input \"x\" : T[N,3,11]\n"
    "  %1 = input \"m\" : T[N,3,1]\n"
    "  %2 = sub %0, %1 : T[N,3,11] in %4\n"
    "  %3 = exp %2 : T[N,3,11] in %4\n"
    "  %4 = reduce_sum %3 {axes=[2], keepdim} : T[N,3,1] in %4\n"
    "  %5 = reduce_max %0 {axes=[1,2]} : T[N]\n"
    "  output \"s\" = %4\n"
    "  output \"e\" = %3\n"
    "  output \"mx\" = %5\n"
    "}\n";

static void test_reduce_inner_of_expression_f32(void **state) {
    check_text(reduce_inner_text, "f32", n135);
}

static void test_reduce_inner_of_expression_f64(void **state) {
    check_text(reduce_inner_text, "f64", n135);
}

/* a bias gradient: the batch dim reduced, rows added into the output, split over the kept dims only */
static const char *reduce_rows_text =
    "graph train {\n"
    "  %0 = input \"dy\" : T[N,37]\n"
    "  %1 = input \"h\" : T[N,37]\n"
    "  %2 = const 0 : T[]\n"
    "  %3 = gt %1, %2 : u8[N,37] in %5\n"
    "  %4 = select %3, %0, %2 : T[N,37] in %5\n"
    "  %5 = reduce_mean %4 {axes=[0]} : T[37] in %5\n"
    "  %6 = input \"z\" : T[N,4,6]\n"
    "  %7 = mul %6, %6 : T[N,4,6] in %8\n"
    "  %8 = reduce_sum %7 {axes=[0,1]} : T[6] in %8\n"
    "  output \"db\" = %5\n"
    "  output \"sq\" = %8\n"
    "}\n";

static void test_reduce_rows_over_batch_f32(void **state) {
    check_text(reduce_rows_text, "f32", n135);
}

static void test_reduce_rows_over_batch_f64(void **state) {
    check_text(reduce_rows_text, "f64", n135);
}

/* argmax of an expression, and a reduction over a middle dim with a materialized member */
static void test_reduce_argmax_and_middle_dim(void **state) {
    Graph *g = ts_parse_graph("fused.ir",
                              "graph train {\n"
                              "  %0 = input \"x\" : f32[N,10]\n"
                              "  %1 = param \"b\" : f32[10]\n"
                              "  %2 = add %0, %1 : f32[N,10] in %3\n"
                              "  %3 = argmax %2 {axis=1} : i64[N] in %3\n"
                              "  %4 = input \"y\" : f64[N,5,3]\n"
                              "  %5 = abs %4 : f64[N,5,3] in %6\n"
                              "  %6 = reduce_min %5 {axes=[1]} : f64[N,3] in %6\n"
                              "  %7 = neg %5 : f64[N,5,3]\n"
                              "  output \"i\" = %3\n"
                              "  output \"mn\" = %6\n"
                              "  output \"neg\" = %7\n"
                              "}\n");
    check_graph(g, 5);
}

/* ---------------------------------------------------------------- epilogue groups: matmul */

/* Linear + bias + relu with the pre-activation kept (read by the backward pass) */
static const char *linear_text =
    "graph train {\n"
    "  %0 = input \"x\" : T[N,19]\n"
    "  %1 = param \"w\" : T[13,19]\n"
    "  %2 = param \"b\" : T[13]\n"
    "  %3 = matmul %0, %1 {transpose_b} : T[N,13] in %6\n"
    "  %4 = add %3, %2 : T[N,13] in %6\n"
    "  %5 = const 0 : T[]\n"
    "  %6 = max %4, %5 : T[N,13] in %6\n"
    "  %7 = neg %4 : T[N,13]\n"
    "  output \"h\" = %6\n"
    "  output \"pre\" = %7\n"
    "}\n";

static void test_epilogue_linear_bias_relu_f32(void **state) {
    check_text(linear_text, "f32", n135);
}

static void test_epilogue_linear_bias_relu_f64(void **state) {
    check_text(linear_text, "f64", n135);
}

/* a weight gradient (transpose_a, rows = output features) scaled, and a batched matmul over [2,N,...] */
static void test_epilogue_transpose_a_and_batched(void **state) {
    Graph *g = ts_parse_graph("fused.ir",
                              "graph train {\n"
                              "  %0 = input \"dy\" : f32[N,13]\n"
                              "  %1 = input \"x\" : f32[N,19]\n"
                              "  %2 = matmul %0, %1 {transpose_a} : f32[13,19] in %4\n"
                              "  %3 = const 0.25 : f32[]\n"
                              "  %4 = mul %2, %3 : f32[13,19] in %4\n"
                              "  %5 = input \"a\" : f32[2,N,7]\n"
                              "  %6 = input \"bm\" : f32[2,7,5]\n"
                              "  %7 = input \"c\" : f32[5]\n"
                              "  %8 = matmul %5, %6 : f32[2,N,5] in %10\n"
                              "  %9 = add %8, %7 : f32[2,N,5] in %10\n"
                              "  %10 = tanh %9 : f32[2,N,5] in %10\n"
                              "  %11 = input \"p\" : f32[3,N,7]\n"
                              "  %12 = input \"q\" : f32[7,4]\n"
                              "  %13 = matmul %11, %12 : f32[3,N,4] in %14\n"
                              "  %14 = sigmoid %13 : f32[3,N,4] in %14\n"
                              "  output \"gw\" = %4\n"
                              "  output \"t\" = %10\n"
                              "  output \"s\" = %14\n"
                              "}\n");
    check_graph(g, 3);
}

/* w = w - lr * (dy^T x): one GEMM with alpha = -lr, beta = 1 into w; the gradient's buffer is never written */
static void sgd_gemm_case(const char *t) {
    char text[1024];
    snprintf(text, sizeof text,
             "graph train {\n"
             "  %%0 = param \"w\" : %s[13,19]\n"
             "  %%1 = input \"dy\" : %s[N,13]\n"
             "  %%2 = input \"x\" : %s[N,19]\n"
             "  %%3 = input \"lr\" : %s[]\n"
             "  %%4 = matmul %%1, %%2 {transpose_a} : %s[13,19] in %%6\n"
             "  %%5 = mul %%3, %%4 : %s[13,19] in %%6\n"
             "  %%6 = sub %%0, %%5 : %s[13,19] in %%6\n"
             "  update \"w\" = %%6\n"
             "}\n", t, t, t, t, t, t, t);
    for (int64_t n = 1; n <= 5; n += 2) {
        Graph *g = ts_parse_graph("fused.ir", text);
        check_graph_untouched(g, n, g->nodes[4]);
    }
}

static void test_epilogue_sgd_update_fused_into_gemm_f32(void **state) {
    sgd_gemm_case("f32");
}

static void test_epilogue_sgd_update_fused_into_gemm_f64(void **state) {
    sgd_gemm_case("f64");
}

/* ---------------------------------------------------------------- epilogue groups: convolutions */

static void test_epilogue_conv_anchors(void **state) {
    Graph *g = ts_parse_graph("fused.ir",
                              "graph train {\n"
                              "  %0 = input \"x\" : f32[N,3,9,8]\n"
                              "  %1 = param \"w\" : f32[4,3,3,3]\n"
                              "  %2 = param \"b\" : f32[4,1,1]\n"
                              "  %3 = conv2d %0, %1 {pad=[1,1]} : f32[N,4,9,8] in %5\n"
                              "  %4 = add %3, %2 : f32[N,4,9,8] in %5\n"
                              "  %5 = relu %4 : f32[N,4,9,8] in %5\n"
                              "  %6 = input \"gy\" : f32[N,4,9,8]\n"
                              "  %7 = conv2d_bwd_input %6, %1 {pad=[1,1]} : f32[N,3,9,8] in %9\n"
                              "  %8 = const 2 : f32[]\n"
                              "  %9 = mul %7, %8 : f32[N,3,9,8] in %9\n"
                              "  %10 = conv2d_bwd_weight %0, %6 {pad=[1,1]} : f32[4,3,3,3] in %13\n"
                              "  %11 = input \"lr\" : f32[]\n"
                              "  %12 = mul %11, %10 : f32[4,3,3,3] in %13\n"
                              "  %13 = sub %1, %12 : f32[4,3,3,3] in %13\n"
                              "  output \"y\" = %5\n"
                              "  output \"gx\" = %9\n"
                              "  output \"w_new\" = %13\n"
                              "}\n");
    check_graph(g, 3);
}

static void test_epilogue_conv_f64_batch_of_one(void **state) {
    Graph *g = ts_parse_graph("fused.ir",
                              "graph train {\n"
                              "  %0 = input \"x\" : f64[N,2,7,7]\n"
                              "  %1 = param \"w\" : f64[5,2,3,3]\n"
                              "  %2 = conv2d %0, %1 {stride=[2,2]} : f64[N,5,3,3] in %3\n"
                              "  %3 = tanh %2 : f64[N,5,3,3] in %3\n"
                              "  output \"y\" = %3\n"
                              "}\n");
    check_graph(g, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_elementwise_chain_broadcast_f32),
        T(test_elementwise_chain_broadcast_f64),
        T(test_elementwise_transposed_view_and_broadcast_f32),
        T(test_elementwise_transposed_view_and_broadcast_f64),
        T(test_elementwise_u8_mask_select_and_casts),
        T(test_elementwise_in_place_update_blocks),
        T(test_reduce_inner_of_expression_f32),
        T(test_reduce_inner_of_expression_f64),
        T(test_reduce_rows_over_batch_f32),
        T(test_reduce_rows_over_batch_f64),
        T(test_reduce_argmax_and_middle_dim),
        T(test_epilogue_linear_bias_relu_f32),
        T(test_epilogue_linear_bias_relu_f64),
        T(test_epilogue_transpose_a_and_batched),
        T(test_epilogue_sgd_update_fused_into_gemm_f32),
        T(test_epilogue_sgd_update_fused_into_gemm_f64),
        T(test_epilogue_conv_anchors),
        T(test_epilogue_conv_f64_batch_of_one),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
