/* test_nvrtc.c: NVRTC opened with dlopen (codegen/cuda/nvrtc.c): a small kernel compiles to PTX and to cubins
   for sm_80 and sm_90, a kernel with an error is reported at the model line its #line gives, and --cuda-arch
   lists are checked. Skips (77) where NVRTC is not installed. */
#include "support.h"

#include <string.h>

#include "../../codegen/cuda/nvrtc.h"

static const char good_kernel[] =
    "#line 3 \"net.lathe\"\n"
    "extern \"C\" __global__ void __launch_bounds__(256) k0_scale(float *__restrict__ b0,\n"
    "                                                      const float *__restrict__ b1, long long n) {\n"
    "    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;\n"
    "         i += (long long)gridDim.x * blockDim.x)\n"
    "        b0[i] = 2.0f * b1[i];\n"
    "}\n";

/* line 12 of net.lathe holds the undeclared name */
static const char bad_kernel[] =
    "extern \"C\" __global__ void k1(float *b0, long long n) {\n"
    "#line 12 \"net.lathe\"\n"
    "    b0[0] = undeclared_name;\n"
    "}\n";

/* an ELF file for a CUDA device: the magic, 64-bit, and e_machine 190 (EM_CUDA) */
static bool is_cuda_elf(const unsigned char *b, size_t n) {
    return n > 20 && memcmp(b, "\x7f" "ELF", 4) == 0 && b[4] == 2 && (b[18] | b[19] << 8) == 190;
}

static void test_nvrtc_ptx_and_cubins(void **state) {
    (void)state;
    CgCudaArchs archs;
    char why[256];
    assert_true(cg_cuda_archs_parse("sm_80,sm_90", &archs, why, sizeof why));
    CgCudaBinary bin;
    if (!cg_nvrtc_compile(ts.a, good_kernel, "net.cu", &archs, &bin, ts.d))
        fail_msg("%s", diag_first_message(ts.d));
    assert_non_null(strstr(bin.ptx, ".target sm_80"));
    assert_non_null(strstr(bin.ptx, ".entry k0_scale"));
    assert_int_equal(strlen(bin.ptx), bin.ptx_size);
    assert_int_equal(bin.ncubins, 2);
    assert_string_equal(bin.cubins[0].arch, "sm_80");
    assert_string_equal(bin.cubins[1].arch, "sm_90");
    for (int i = 0; i < 2; i++)
        assert_true(is_cuda_elf(bin.cubins[i].bytes, bin.cubins[i].size));
    /* the two archs' machine code differs */
    assert_false(bin.cubins[0].size == bin.cubins[1].size &&
                 memcmp(bin.cubins[0].bytes, bin.cubins[1].bytes, bin.cubins[0].size) == 0);
}

/* without sm_80 among the archs, the PTX comes from a compilation of its own, still for compute_80 */
static void test_nvrtc_ptx_without_sm80(void **state) {
    (void)state;
    CgCudaArchs archs;
    char why[256];
    assert_true(cg_cuda_archs_parse("sm_90", &archs, why, sizeof why));
    CgCudaBinary bin;
    if (!cg_nvrtc_compile(ts.a, good_kernel, "net.cu", &archs, &bin, ts.d))
        fail_msg("%s", diag_first_message(ts.d));
    assert_non_null(strstr(bin.ptx, ".target sm_80"));
    assert_int_equal(bin.ncubins, 1);
    assert_string_equal(bin.cubins[0].arch, "sm_90");
    assert_true(is_cuda_elf(bin.cubins[0].bytes, bin.cubins[0].size));
}

static void test_nvrtc_error_at_model_line(void **state) {
    (void)state;
    CgCudaBinary bin;
    assert_false(cg_nvrtc_compile(ts.a, bad_kernel, "net.cu", NULL, &bin, ts.d));
    assert_int_equal(diag_error_count(ts.d), 1);
    Loc at = diag_first_loc(ts.d);
    assert_non_null(at.file);
    assert_string_equal(at.file, "net.lathe");
    assert_int_equal(at.line, 12);
    const char *msg = diag_first_message(ts.d);
    if (!strstr(msg, "undeclared_name") || !strstr(msg, "compute_80"))
        fail_msg("message: %s", msg);
}

static void test_nvrtc_error_in_generated_line(void **state) {
    (void)state;
    CgCudaBinary bin;
    assert_false(cg_nvrtc_compile(ts.a, "extern \"C\" __global__ void k(int *b) { b[0] = nope; }\n", "gen.cu",
                                  NULL, &bin, ts.d));
    Loc at = diag_first_loc(ts.d);
    assert_non_null(at.file);
    assert_string_equal(at.file, "gen.cu");
    assert_int_equal(at.line, 1);
    assert_non_null(strstr(diag_first_message(ts.d), "generated CUDA C"));
}

static void expect_bad_archs(const char *list, const char *want) {
    CgCudaArchs archs;
    char why[256];
    assert_false(cg_cuda_archs_parse(list, &archs, why, sizeof why));
    if (!strstr(why, want))
        fail_msg("'%s': %s (expected '%s')", list, why, want);
}

static void test_nvrtc_archs_checked(void **state) {
    (void)state;
    CgCudaArchs archs;
    char why[256];
    assert_true(cg_cuda_archs_parse("sm_90", &archs, why, sizeof why));
    assert_int_equal(archs.n, 1);
    assert_true(cg_cuda_archs_parse("sm_80,sm_86,sm_89,sm_90,sm_100,sm_120", &archs, why, sizeof why));
    assert_int_equal(archs.n, 6);
    assert_string_equal(cg_cuda_archs_text(ts.a, &archs), "sm_80,sm_86,sm_89,sm_90,sm_100,sm_120");
    expect_bad_archs("sm_70", "not 'sm_70'");
    expect_bad_archs("sm_70", "sm_80");
    expect_bad_archs("", "not ''");
    expect_bad_archs("sm_80,", "not ''");
    expect_bad_archs("compute_80", "not 'compute_80'");
    expect_bad_archs("sm_8x", "not 'sm_8x'");
    expect_bad_archs("sm_90,sm_80,sm_90", "twice");
    expect_bad_archs("sm_1000", "not 'sm_1000'");
}

int main(void) {
    char why[1024];
    if (!cg_nvrtc_available(why, sizeof why)) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nvrtc_ptx_and_cubins, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_nvrtc_ptx_without_sm80, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_nvrtc_error_at_model_line, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_nvrtc_error_in_generated_line, ts_setup, ts_teardown),
        cmocka_unit_test_setup_teardown(test_nvrtc_archs_checked, ts_setup, ts_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
