/* test_cg_anomaly.c: --detect-anomaly in generated code. A JIT-compiled graph whose log() of a negative input
   makes a NaN: with checking on, the first hit is that node's check (the manifest's "checks" entry naming
   its id, op and model line), not a later node that is NaN as well; checking stops after the hit and
   resumes once it is taken; with checking off nothing is recorded. */
#include "support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../codegen/codegen.h"
#include "../../passes/passes.h"
#include "../../runtime/lathe_kern.h"
#include "../../runtime/rt.h"

static int setup(void **state) {
    ts_open(NULL, stderr);
    rt_anomaly_enable(false);
    return 0;
}

static int teardown(void **state) {
    rt_anomaly_enable(false);
    return ts_teardown(state);
}

/* %2 = log x is NaN where x < 0; %3 reads it (NaN there too), %4 is finite; %5 is an integer output. */
static const char *nan_graph =
    "graph train {\n"
    "  %0 = input \"x\" : f32[N,4]  # dir/m.lathe:1:5\n"
    "  %1 = input \"w\" : f64[3]  # dir/m.lathe:2:5\n"
    "  %2 = log %0 : f32[N,4]  # dir/m.lathe:7:13\n"
    "  %3 = mul %2, %2 : f32[N,4]  # dir/m.lathe:8:9\n"
    "  %4 = exp %1 : f64[3]  # dir/m.lathe:9:9\n"
    "  %5 = cast %0 : i32[N,4]  # dir/m.lathe:10:9\n"
    "  output \"y\" = %3\n"
    "  output \"z\" = %4\n"
    "  output \"k\" = %5\n"
    "}\n";

typedef struct Compiled {
    Graph *g;
    CgJit *j;
    json_t *manifest; /* the graph's manifest entry's "checks" live here */
    json_t *checks;
} Compiled;

static Compiled compile(const char *text) {
    Compiled c = {.g = ts_parse_graph("m.ir", text)};
    assert_true(ir_verify(c.g, ts.d));
    assert_true(pass_memplan(c.g, ts.d));
    for (int i = 0; i < c.g->nnodes; i++) { /* as test_cg_fused.c plans its groups */
        Node *m = c.g->nodes[i];
        if (m->group >= 0 && !ir_group_materialized(c.g, m))
            m->mem = (MemLoc){MEM_FUSED, -1, 0, 0};
    }
    c.j = cg_llvm_jit(c.g, NULL, ts.d);
    if (!c.j)
        fail_msg("JIT failed: %s", diag_first_message(ts.d));
    Program p = {.arena = ts.a, .model_name = "m", .source_file = "dir/m.lathe", .train = c.g};
    char *text_json = cg_manifest(ts.a, &p, ts.d);
    assert_non_null(text_json);
    json_error_t je;
    c.manifest = json_loads(text_json, 0, &je);
    assert_non_null(c.manifest);
    c.checks = json_object_get(json_object_get(json_object_get(c.manifest, "graphs"), c.g->name), "checks");
    assert_true(json_is_array(c.checks));
    return c;
}

static void compiled_free(Compiled *c) {
    json_decref(c->manifest);
    cg_jit_free(c->j);
}

/* Runs the graph on x (n rows of 4) and w = {0, 1, 2}. */
static void run(const Compiled *c, const float *x, int64_t n) {
    int nargs = ir_graph_args(c->g, NULL);
    assert_int_equal(nargs, 5);
    float xs[16], y[16];
    double w[3] = {0, 1, 2}, z[3];
    int32_t k[16];
    memcpy(xs, x, sizeof(float) * 4 * (size_t)n);
    void *args[5] = {xs, w, y, z, k};
    int64_t ac, per_n;
    pass_memplan_size(c->g, &ac, &per_n);
    uint8_t *arena = aligned_alloc(64, (size_t)((ac + per_n * n + 63) / 64 * 64 + 64));
    assert_non_null(arena);
    cg_jit_entry(c->j)(args, n, arena);
    free(arena);
}

static const char *check_field(const Compiled *c, int check, const char *key) {
    json_t *e = json_array_get(c->checks, (size_t)check);
    assert_non_null(e);
    return json_string_value(json_object_get(e, key));
}

static const float x_bad[8] = {1, 2, 3, 4, 5, -6, 7, 8}; /* element 5 negative */
static const float x_good[8] = {1, 2, 3, 4, 5, 6, 7, 8};

static void test_first_nan_names_the_log_node_and_its_line(void **state) {
    Compiled c = compile(nan_graph);
    rt_anomaly_enable(true);
    assert_int_equal(lathe_anomaly_on, 1);
    run(&c, x_bad, 2);
    RtAnomaly a;
    assert_true(rt_anomaly_take(&a));
    assert_int_equal(a.graph, RT_ANOMALY_TRAIN);
    assert_int_equal(a.index, 5);
    assert_true(isnan(a.value));
    assert_int_equal(a.step, -1);
    assert_string_equal(check_field(&c, a.check, "node"), "%2");
    assert_string_equal(check_field(&c, a.check, "op"), "log");
    assert_string_equal(check_field(&c, a.check, "loc"), "m.lathe:7:13");
    assert_null(check_field(&c, a.check, "name"));
    /* the later NaN of %3 did not replace the first */
    assert_false(rt_anomaly_take(&a));
    compiled_free(&c);
}

static void test_checks_list_float_outputs_with_their_names(void **state) {
    Compiled c = compile(nan_graph);
    /* %2, %3 and %4; the integer cast is not checked */
    assert_int_equal(json_array_size(c.checks), 3);
    assert_string_equal(check_field(&c, 1, "node"), "%3");
    assert_string_equal(check_field(&c, 1, "name"), "y");
    assert_string_equal(check_field(&c, 1, "loc"), "m.lathe:8:9");
    assert_string_equal(check_field(&c, 2, "node"), "%4");
    assert_string_equal(check_field(&c, 2, "op"), "exp");
    assert_string_equal(check_field(&c, 2, "name"), "z");
    compiled_free(&c);
}

static void test_hit_stops_checking_until_taken(void **state) {
    Compiled c = compile(nan_graph);
    rt_anomaly_enable(true);
    run(&c, x_bad, 2);
    assert_int_equal(lathe_anomaly_on, 0); /* tripped: the rest of the step skips the checks */
    RtAnomaly a;
    assert_true(rt_anomaly_take(&a));
    assert_int_equal(lathe_anomaly_on, 1);
    run(&c, x_good, 2);
    assert_false(rt_anomaly_take(&a));
    run(&c, x_bad, 1); /* element 5 is past a batch of one: finite */
    assert_false(rt_anomaly_take(&a));
    run(&c, x_bad, 2);
    assert_true(rt_anomaly_take(&a));
    assert_string_equal(check_field(&c, a.check, "node"), "%2");
    compiled_free(&c);
}

static void test_nothing_recorded_when_off(void **state) {
    Compiled c = compile(nan_graph);
    rt_anomaly_enable(false);
    assert_int_equal(lathe_anomaly_on, 0);
    run(&c, x_bad, 2);
    RtAnomaly a;
    assert_false(rt_anomaly_take(&a));
    compiled_free(&c);
}

/* A fused member has no buffer: the group's root, which reads it, is the first output found non-finite. */
static void test_fused_member_reported_at_its_group_root(void **state) {
    Compiled c = compile("graph train {\n"
                         "  %0 = input \"x\" : f32[N,4]  # m.lathe:1:5\n"
                         "  %1 = input \"w\" : f64[3]  # m.lathe:2:5\n"
                         "  %2 = log %0 : f32[N,4] in %3  # m.lathe:7:13\n"
                         "  %3 = mul %2, %2 : f32[N,4] in %3  # m.lathe:8:9\n"
                         "  %4 = exp %1 : f64[3]  # m.lathe:9:9\n"
                         "  %5 = cast %0 : i32[N,4]  # m.lathe:10:9\n"
                         "  output \"y\" = %3\n"
                         "  output \"z\" = %4\n"
                         "  output \"k\" = %5\n"
                         "}\n");
    rt_anomaly_enable(true);
    run(&c, x_bad, 2);
    RtAnomaly a;
    assert_true(rt_anomaly_take(&a));
    assert_string_equal(check_field(&c, a.check, "node"), "%3");
    assert_string_equal(check_field(&c, a.check, "name"), "y");
    assert_int_equal(a.index, 5);
    compiled_free(&c);
}

/* An infinity in f64: exp of a large w */
static void test_f64_infinity_found(void **state) {
    Compiled c = compile("graph eval {\n"
                         "  %0 = input \"x\" : f64[N,2]  # m.lathe:1:5\n"
                         "  %1 = const 1000 : f64[]  # m.lathe:2:5\n"
                         "  %2 = mul %0, %1 : f64[N,2]  # m.lathe:3:9\n"
                         "  %3 = exp %2 : f64[N,2]  # m.lathe:4:9\n"
                         "  output \"y\" = %3\n"
                         "}\n");
    rt_anomaly_enable(true);
    double x[6] = {0, 0.1, -0.2, 0.8, 0, 0}, y[6]; /* exp(800) overflows */
    void *args[2] = {x, y};
    int64_t ac, per_n;
    pass_memplan_size(c.g, &ac, &per_n);
    uint8_t *arena = aligned_alloc(64, (size_t)((ac + per_n * 3 + 63) / 64 * 64 + 64));
    assert_non_null(arena);
    cg_jit_entry(c.j)(args, 3, arena);
    free(arena);
    RtAnomaly a;
    assert_true(rt_anomaly_take(&a));
    assert_int_equal(a.graph, RT_ANOMALY_EVAL);
    assert_int_equal(a.index, 3);
    assert_true(isinf(a.value) && a.value > 0);
    assert_string_equal(check_field(&c, a.check, "node"), "%3");
    compiled_free(&c);
}

/* w = w - lr * (dy^T x) as one GEMM into w: the gradient's buffer in the arena is never written, so it must
   not be checked (the arena is filled with NaN bytes here); the updated w is, under the parameter's name. */
static void test_sgd_gemm_checks_the_update_alone(void **state) {
    Compiled c = compile("graph train {\n"
                         "  %0 = param \"w\" : f32[3,5]  # m.lathe:1:1\n"
                         "  %1 = input \"dy\" : f32[N,3]  # m.lathe:2:1\n"
                         "  %2 = input \"x\" : f32[N,5]  # m.lathe:3:1\n"
                         "  %3 = input \"lr\" : f32[]  # m.lathe:4:1\n"
                         "  %4 = matmul %1, %2 {transpose_a} : f32[3,5] in %6  # m.lathe:5:1\n"
                         "  %5 = mul %3, %4 : f32[3,5] in %6  # m.lathe:6:1\n"
                         "  %6 = sub %0, %5 : f32[3,5] in %6  # m.lathe:7:1\n"
                         "  update \"w\" = %6\n"
                         "}\n");
    assert_int_equal(c.g->nodes[4]->mem.kind, MEM_ARENA);
    float w[15] = {0}, dy[6] = {1, 2, 3, 4, 5, 6}, x[10] = {1, 1, 1, 1, 1, 2, 2, 2, 2, 2}, lr = 0.1f;
    void *args[4] = {w, dy, x, &lr};
    int64_t ac, per_n;
    pass_memplan_size(c.g, &ac, &per_n);
    size_t bytes = (size_t)((ac + per_n * 2 + 63) / 64 * 64 + 64);
    uint8_t *arena = aligned_alloc(64, bytes);
    assert_non_null(arena);
    memset(arena, 0xff, bytes); /* NaN in every float */
    rt_anomaly_enable(true);
    cg_jit_entry(c.j)(args, 2, arena);
    RtAnomaly a;
    assert_false(rt_anomaly_take(&a));
    assert_true(fabsf(w[0] + 0.9f) < 1e-6f); /* the update ran: w[0, 0] = -0.1 * (1 * 1 + 4 * 2) */
    dy[4] = INFINITY; /* row 1, column 1 of dy: w[1, :] becomes -inf */
    cg_jit_entry(c.j)(args, 2, arena);
    assert_true(rt_anomaly_take(&a));
    assert_string_equal(check_field(&c, a.check, "node"), "%6");
    assert_string_equal(check_field(&c, a.check, "name"), "w");
    assert_int_equal(a.index, 5);
    free(arena);
    compiled_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_first_nan_names_the_log_node_and_its_line),
        T(test_checks_list_float_outputs_with_their_names),
        T(test_hit_stops_checking_until_taken),
        T(test_nothing_recorded_when_off),
        T(test_fused_member_reported_at_its_group_root),
        T(test_f64_infinity_found),
        T(test_sgd_gemm_checks_the_update_alone),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
