/* test_cg_vector.c: what the vectorizer makes of the kernels. One graph with an elementwise chain, a
   Linear's bias + relu epilogue and a row reduction is compiled for x86-64-v4 (AVX-512) and x86-64-v3 (AVX2);
   the assembly must hold packed arithmetic on zmm (ymm) registers. Skipped on a host that is not x86-64. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../codegen/codegen.h"
#include "../../passes/passes.h"

static const char *graph_text =
    "graph train {\n"
    "  %0 = input \"x\" : f32[N,512]\n"
    "  %1 = input \"y\" : f32[N,512]\n"
    "  %2 = param \"w\" : f32[256,512]\n"
    "  %3 = param \"b\" : f32[256]\n"
    "  %4 = mul %0, %1 : f32[N,512] in %6\n"
    "  %5 = add %4, %0 : f32[N,512] in %6\n"
    "  %6 = exp %5 : f32[N,512] in %6\n"
    "  %7 = matmul %0, %2 {transpose_b} : f32[N,256] in %10\n"
    "  %8 = add %7, %3 : f32[N,256] in %10\n"
    "  %9 = const 0 : f32[]\n"
    "  %10 = max %8, %9 : f32[N,256] in %10\n"
    "  %11 = mul %1, %1 : f32[N,512] in %12\n"
    "  %12 = reduce_sum %11 {axes=[0]} : f32[512] in %12\n"
    "  output \"e\" = %6\n"
    "  output \"h\" = %10\n"
    "  output \"s\" = %12\n"
    "}\n";

static bool host_is_x86_64(void) {
#if defined(__x86_64__)
    return true;
#else
    return false;
#endif
}

/* Whether some line of asm holds instruction insn with operand register class reg ("%zmm"). */
static bool has_insn_on(const char *text, const char *insn, const char *reg) {
    for (const char *p = strstr(text, insn); p; p = strstr(p + 1, insn)) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[256];
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line - 1 ? len : sizeof line - 1), p);
        if (strstr(line, reg))
            return true;
    }
    return false;
}

static char *graph_asm(const char *cpu) {
    Graph *g = ts_parse_graph("vector.ir", graph_text);
    assert_true(pass_memplan(g, ts.d));
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i]->group >= 0 && !ir_group_materialized(g, g->nodes[i]))
            g->nodes[i]->mem = (MemLoc){MEM_FUSED, -1, 0, 0};
    CgOptions o = {.cpu = cpu, .opt_level = 3};
    char *text = cg_llvm_graph_asm(g, &o, ts.d);
    if (!text)
        fail_msg("no assembly: %s", diag_first_message(ts.d));
    return text;
}

static void check_vectors(const char *cpu, const char *reg) {
    if (!host_is_x86_64()) {
        printf("skipped: the host is not x86-64, so %s code is not checked\n", cpu);
        skip();
    }
    char *text = graph_asm(cpu);
    static const char *const insns[] = {"vaddps", "vmulps", "vmaxps"};
    for (size_t i = 0; i < sizeof insns / sizeof insns[0]; i++)
        if (!has_insn_on(text, insns[i], reg))
            fail_msg("%s: no %s on %s registers in the kernels' assembly", cpu, insns[i], reg);
    free(text);
}

static void test_avx512_vectors_for_x86_64_v4(void **state) {
    check_vectors("x86-64-v4", "%zmm");
}

static void test_avx2_vectors_for_x86_64_v3(void **state) {
    check_vectors("x86-64-v3", "%ymm");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_avx512_vectors_for_x86_64_v4, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_avx2_vectors_for_x86_64_v3, ts_setup, ts_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
