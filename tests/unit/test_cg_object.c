/* test_cg_object.c: the object file that `lathe compile` links. It is ELF, defines lathe_manifest (holding
   cg_manifest's text) and the three graph entries as global symbols; an unwritable path is a diagnostic;
   and elementwise kernels come out as packed SIMD instructions. */
#include "support.h"

#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../codegen/codegen.h"
#include "../../passes/passes.h"

#define N IR_DIM_N

static const Loc L = {"test_cg_object", 1, 1};

typedef struct Fx {
    Program p;
    char path[64];
} Fx;

static Fx fx;

/* predict: logits = x @ w.T; eval and train: loss = mean(logits^2), train also updates w in place. */
static Graph *small_graph(const char *name) {
    Graph *g = ir_graph_new(ts.a, name);
    Node *x = ir_input(g, L, "x", DT_F32, ts_shape(2, N, 4));
    Node *w = ir_param(g, L, "w", DT_F32, ts_shape(2, 3, 4));
    Node *y = ir_matmul(g, ts.d, L, x, w, false, true);
    if (strcmp(name, "predict") == 0) {
        ir_add_output(g, "logits", y, false);
    } else {
        ir_add_output(g, "loss", ir_reduce(g, ts.d, L, OP_REDUCE_MEAN, ir_binary(g, ts.d, L, OP_MUL, y, y), 3, false), false);
        if (strcmp(name, "train") == 0) {
            Node *lr = ir_input(g, L, "lr", DT_F32, ir_shape_scalar());
            Node *gw = ir_matmul(g, ts.d, L, y, x, true, false);
            ir_add_output(g, "w", ir_binary(g, ts.d, L, OP_SUB, w, ir_binary(g, ts.d, L, OP_MUL, lr, gw)), true);
        }
    }
    assert_true(ir_verify(g, ts.d));
    assert_true(pass_memplan(g, ts.d));
    return g;
}

static int setup(void **state) {
    memset(&fx, 0, sizeof fx);
    ts_open(NULL, stderr);
    Program *p = &fx.p;
    p->arena = ts.a;
    p->model_name = "Tiny";
    p->source_file = "tiny.lathe";
    static const char *inputs[] = {"x"};
    p->input_names = inputs;
    p->ninputs = 1;
    p->params = arena_alloc(ts.a, sizeof(ParamInfo));
    p->params[0] = (ParamInfo){.name = "w", .dtype = DT_F32, .shape = ts_shape(2, 3, 4), .init = {INIT_UNIFORM, -0.5, 0.5}, .trainable = true, .loc = L};
    p->nparams = 1;
    p->train = small_graph("train");
    p->eval = small_graph("eval");
    p->predict = small_graph("predict");
    snprintf(fx.path, sizeof fx.path, "/tmp/lathe_cg_object_%d.o", (int)getpid());
    return 0;
}

static int teardown(void **state) {
    unlink(fx.path);
    return ts_teardown(state);
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *len = (size_t)size;
    return buf;
}

/* The symbol's bytes when obj defines it as a global, else NULL. */
static const char *defined_global(const char *obj, size_t len, const char *name, uint64_t *size) {
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)obj;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(obj + eh->e_shoff);
    assert_true(eh->e_shoff + (size_t)eh->e_shnum * sizeof *sh <= len);
    for (int i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type != SHT_SYMTAB)
            continue;
        const Elf64_Sym *syms = (const Elf64_Sym *)(obj + sh[i].sh_offset);
        const char *strtab = obj + sh[sh[i].sh_link].sh_offset;
        for (size_t k = 0; k < sh[i].sh_size / sizeof *syms; k++) {
            const Elf64_Sym *s = &syms[k];
            if (strcmp(strtab + s->st_name, name) != 0)
                continue;
            if (s->st_shndx == SHN_UNDEF || ELF64_ST_BIND(s->st_info) != STB_GLOBAL)
                return NULL;
            *size = s->st_size;
            return obj + sh[s->st_shndx].sh_offset + s->st_value;
        }
    }
    return NULL;
}

static void test_object_is_elf_with_entries_and_manifest(void **state) {
    assert_true(cg_llvm_emit_object(&fx.p, NULL, fx.path, ts.d));
    size_t len;
    char *obj = read_all(fx.path, &len);
    assert_true(len > sizeof(Elf64_Ehdr));
    assert_memory_equal(obj, ELFMAG, SELFMAG);
    assert_int_equal((unsigned char)obj[EI_CLASS], ELFCLASS64);
    assert_int_equal(((const Elf64_Ehdr *)obj)->e_type, ET_REL);
    uint64_t size;
    static const char *entries[] = {"lathe_train", "lathe_eval", "lathe_predict"};
    for (int i = 0; i < 3; i++)
        if (!defined_global(obj, len, entries[i], &size))
            fail_msg("%s is not defined", entries[i]);
    const char *m = defined_global(obj, len, "lathe_manifest", &size);
    assert_non_null(m);
    char *want = cg_manifest(ts.a, &fx.p, ts.d);
    assert_int_equal(size, strlen(want) + 1); /* NUL-terminated */
    assert_memory_equal(m, want, size);
    free(obj);
}

static void test_object_for_generic_cpu(void **state) {
    CgOptions o = {.cpu = "x86-64", .opt_level = 2};
    assert_true(cg_llvm_emit_object(&fx.p, &o, fx.path, ts.d));
    size_t len;
    char *obj = read_all(fx.path, &len);
    uint64_t size;
    assert_non_null(defined_global(obj, len, "lathe_train", &size));
    free(obj);
}

static void test_unwritable_path_is_a_diagnostic(void **state) {
    Diag *quiet = diag_new(NULL);
    assert_false(cg_llvm_emit_object(&fx.p, NULL, "/nonexistent-dir/x.o", quiet));
    assert_int_equal(diag_error_count(quiet), 1);
    assert_non_null(strstr(diag_first_message(quiet), "/nonexistent-dir/x.o"));
    diag_free(quiet);
}

/* cblas_sgemm takes int sizes: a dimension past INT_MAX is reported at the matmul, not truncated. */
static void test_matmul_dim_past_int_is_a_diagnostic(void **state) {
    Graph *g = ir_graph_new(ts.a, "predict");
    Node *x = ir_input(g, L, "x", DT_F32, ts_shape(2, N, 1));
    Node *w = ir_param(g, L, "w", DT_F32, ts_shape(2, 3000000000LL, 1));
    ir_add_output(g, "y", ir_matmul(g, ts.d, L, x, w, false, true), false);
    assert_true(pass_memplan(g, ts.d));
    Diag *quiet = diag_new(NULL);
    char *text = cg_llvm_graph_asm(g, NULL, quiet);
    free(text);
    assert_null(text);
    assert_int_equal(diag_error_count(quiet), 1);
    assert_non_null(strstr(diag_first_message(quiet), "3000000000"));
    assert_string_equal(diag_first_loc(quiet).file, L.file);
    diag_free(quiet);
}

/* JSON holds UTF-8 only: a recipe string that is not (a Latin-1 file name) is an error at its location, where
   it used to vanish from the manifest. */
static void test_recipe_string_not_utf8_is_a_diagnostic(void **state) {
    Loc at = {"tiny.lathe", 9, 17};
    RVal *name = arena_alloc(ts.a, sizeof *name);
    *name = (RVal){.kind = RV_STR, .str = "caf\xe9.gz", .loc = at};
    RVal *call = arena_alloc(ts.a, sizeof *call);
    *call = (RVal){.kind = RV_CALL, .str = "idx", .nitems = 1, .items = arena_alloc(ts.a, sizeof(RVal *)), .loc = L};
    call->items[0] = name;
    fx.p.recipe = arena_alloc(ts.a, sizeof(RecipeEntry));
    fx.p.recipe[0] = (RecipeEntry){"data", call, L};
    fx.p.nrecipe = 1;
    Diag *quiet = diag_new(NULL);
    assert_null(cg_manifest(ts.a, &fx.p, quiet));
    assert_int_equal(diag_error_count(quiet), 1);
    assert_int_equal(diag_first_loc(quiet).line, 9);
    assert_false(cg_llvm_emit_object(&fx.p, NULL, fx.path, quiet));
    diag_free(quiet);
}

/* The model file's name need not be UTF-8: it reaches the manifest with its other bytes as '?'. */
static void test_source_name_not_utf8_is_kept(void **state) {
    fx.p.source_file = "mod\xe8le.lathe";
    char *m = cg_manifest(ts.a, &fx.p, ts.d);
    assert_non_null(m);
    assert_non_null(strstr(m, "\"source\": \"mod?le.lathe\""));
}

/* The loop vectorizer must turn an elementwise kernel into packed instructions: addps / vaddps, on xmm
   or ymm registers, both for equal shapes and for a row broadcast over the batch. */
static void test_elementwise_kernel_is_vectorized(void **state) {
#if !defined(__x86_64__)
    skip(); /* the instruction names below are x86's */
#endif
    Graph *g = ir_graph_new(ts.a, "predict");
    Node *x = ir_input(g, L, "x", DT_F32, ts_shape(2, N, 512));
    Node *y = ir_input(g, L, "y", DT_F32, ts_shape(2, N, 512));
    Node *b = ir_input(g, L, "b", DT_F32, ts_shape(1, 512));
    ir_add_output(g, "sum", ir_binary(g, ts.d, L, OP_ADD, x, y), false);
    ir_add_output(g, "biased", ir_binary(g, ts.d, L, OP_MUL, x, b), false);
    assert_true(pass_memplan(g, ts.d));
    CgOptions o = {.cpu = NULL, .opt_level = 3};
    char *text = cg_llvm_graph_asm(g, &o, ts.d);
    assert_non_null(text);
    bool packed_add = strstr(text, "addps") != NULL, packed_mul = strstr(text, "mulps") != NULL;
    bool simd_regs = strstr(text, "%xmm") || strstr(text, "%ymm") || strstr(text, "%zmm");
    if (!packed_add || !packed_mul || !simd_regs)
        fail_msg("no packed SIMD in the kernels' assembly (addps %d, mulps %d)", packed_add, packed_mul);
    free(text);
}

/* Kernels that would compute the same code are emitted once; a different constant or shape is another. */
static int count_substr(const char *s, const char *sub) {
    int n = 0;
    for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub))
        n++;
    return n;
}

static void test_identical_kernels_share_one_function(void **state) {
    Graph *g = ir_graph_new(ts.a, "predict");
    Node *x = ir_input(g, L, "x", DT_F32, ts_shape(2, N, 64));
    Node *y = ir_input(g, L, "y", DT_F32, ts_shape(2, N, 64));
    Node *two = ir_const(g, L, DT_F32, ts_shape(0), 2), *three = ir_const(g, L, DT_F32, ts_shape(0), 3);
    ir_add_output(g, "a", ir_binary(g, ts.d, L, OP_MUL, x, two), false);
    ir_add_output(g, "b", ir_binary(g, ts.d, L, OP_MUL, y, two), false); /* same code as a */
    ir_add_output(g, "c", ir_binary(g, ts.d, L, OP_MUL, y, three), false);
    ir_add_output(g, "d", ir_unary(g, ts.d, L, OP_EXP, ir_input(g, L, "z", DT_F32, ts_shape(2, N, 65))), false);
    assert_true(pass_memplan(g, ts.d));
    CgOptions o = {.cpu = NULL, .opt_level = 0};
    char *text = cg_llvm_graph_asm(g, &o, ts.d);
    assert_non_null(text);
    assert_int_equal(count_substr(text, "_mul:"), 2); /* one for a and b, one for c */
    assert_int_equal(count_substr(text, "_exp:"), 1);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_object_is_elf_with_entries_and_manifest),
        T(test_object_for_generic_cpu),
        T(test_unwritable_path_is_a_diagnostic),
        T(test_matmul_dim_past_int_is_a_diagnostic),
        T(test_recipe_string_not_utf8_is_a_diagnostic),
        T(test_source_name_not_utf8_is_kept),
        T(test_elementwise_kernel_is_vectorized),
        T(test_identical_kernels_share_one_function),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
