/* emit.c: `lathe compile --emit obj|asm|llvm|lib|shared|cuda`. The object, assembly and LLVM IR are the whole
   program's, as the executable would hold it, written under a temporary name and renamed; lib and shared are
   model libraries (codegen/link_lib.c) built from an object compiled with the library's prefix; cuda is the
   CUDA C source, and a --target cuda executable's GPU data object is made here too. */
#include "emit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const kinds[] = {"exe", "obj", "asm", "llvm", "lib", "shared", "cuda"};

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "lathe: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(lathe --help for usage)\n");
    return 2;
}

static bool is_lib(const char *emit) {
    return emit && (strcmp(emit, "lib") == 0 || strcmp(emit, "shared") == 0);
}

bool cli_emit_other(const char *emit) {
    return emit && strcmp(emit, "exe") != 0;
}

int cli_emit_check(const char *emit, const char *prefix, bool mpi) {
    if (emit) {
        bool known = false;
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
            known |= strcmp(emit, kinds[i]) == 0;
        if (!known)
            return usage_error("--emit takes exe, lib, shared, obj, asm, llvm or cuda, not '%s'", emit);
    }
    if (prefix && !cli_emit_other(emit))
        return usage_error("--prefix goes with --emit lib, shared, obj, asm or llvm (not the executable)%s", "");
    if (prefix && !cg_lib_prefix_ok(prefix))
        return usage_error("--prefix must be a C identifier (letters, digits, _; not a C or C++ keyword), not '%s'",
                           prefix);
    if (mpi && cli_emit_other(emit))
        return usage_error("--mpi goes with --emit exe%s", "");
    return -1;
}

/* The temporary file being written, removed at exit too: codegen exits on LLVM's fatal errors. */
static char *temp_path;

static void remove_temp(void) {
    if (temp_path)
        unlink(temp_path);
    temp_path = NULL;
}

static void track_temp(char *path) {
    static bool hooked;
    if (!hooked) {
        atexit(remove_temp);
        hooked = true;
    }
    temp_path = path;
}

/* obj, asm, llvm: output.tmp-PID, renamed to output. */
static bool emit_file(Arena *a, const Program *p, const CgOptions *cg, CgFileKind kind, const char *output, Diag *d) {
    char *tmp = arena_printf(a, "%s.tmp-%d", output, (int)getpid());
    track_temp(tmp);
    bool ok = cg_llvm_emit_file(p, cg, kind, tmp, d);
    if (ok && rename(tmp, output) != 0) {
        diag_error(d, (Loc){0}, "cannot create %s: %s", output, strerror(errno));
        ok = false;
    }
    remove_temp();
    return ok;
}

static bool emit_library(Arena *a, const Program *p, const CgOptions *cg, CgLibKind kind, const char *output,
                         const char *prefix, Diag *d) {
    const char *tmpdir = getenv("TMPDIR");
    char *obj = arena_printf(a, "%s/lathe-%d-XXXXXX.o", tmpdir && *tmpdir ? tmpdir : "/tmp", (int)getpid());
    int fd = mkstemps(obj, 2);
    if (fd < 0) {
        diag_error(d, (Loc){0}, "cannot create a temporary object file %s: %s", obj, strerror(errno));
        return false;
    }
    close(fd);
    track_temp(obj);
    CgOptions lib = *cg;
    lib.prefix = prefix ? prefix : cg_lib_prefix_of(a, output);
    bool ok = cg_llvm_emit_file(p, &lib, CG_FILE_OBJECT, obj, d) &&
              cg_link_library(p, obj, kind, output, lib.prefix, d);
    remove_temp();
    return ok;
}

bool cli_emit(Arena *a, const Program *p, const CgOptions *cg, const char *emit, const char *output,
              const char *prefix, Diag *d) {
    if (!is_lib(emit)) { /* with --prefix, the library's object (its API over internal entries) */
        CgOptions o = *cg;
        o.prefix = prefix;
        CgFileKind kind = strcmp(emit, "obj") == 0 ? CG_FILE_OBJECT
                          : strcmp(emit, "asm") == 0 ? CG_FILE_ASSEMBLY : CG_FILE_LLVM_IR;
        return emit_file(a, p, &o, kind, output, d);
    }
    return emit_library(a, p, cg, strcmp(emit, "lib") == 0 ? CG_LIB_STATIC : CG_LIB_SHARED, output, prefix, d);
}

bool cli_emit_cuda(Arena *a, const Program *p, const CgCudaOptions *co, const char *output, Diag *d) {
    CgCudaProgram cp;
    if (!cg_cuda_generate(a, p, co, &cp, d))
        return false;
    char *tmp = arena_printf(a, "%s.tmp-%d", output, (int)getpid());
    track_temp(tmp);
    FILE *f = fopen(tmp, "w");
    bool ok = f && fputs(cp.source, f) >= 0;
    ok = f && fclose(f) == 0 && ok;
    if (!ok || rename(tmp, output) != 0) {
        diag_error(d, (Loc){0}, "cannot create %s: %s", output, strerror(errno));
        ok = false;
    }
    remove_temp();
    return ok;
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

bool cli_cuda_object(Arena *a, const Program *p, const CgCudaOptions *co, const CgCudaArchs *archs,
                     const CgOptions *cg, const char *name, const char *path, Diag *d) {
    CgCudaProgram cp;
    CgCudaBinary bin;
    if (!cg_cuda_generate(a, p, co, &cp, d))
        return false;
    double t0 = seconds();
    if (!cg_nvrtc_compile(a, cp.source, name, archs, &bin, d))
        return false;
    if (getenv("LATHE_CUDA_TIMES")) /* tests/e2e/cuda_compile.sh's figures */
        fprintf(stderr, "lathe: NVRTC: %s: %.2f s for PTX and %d cubins (%zu bytes of CUDA C)\n", name,
                seconds() - t0, bin.ncubins, strlen(cp.source));
    return cg_llvm_emit_cuda_data(cg, cg_cuda_plan_json(a, &cp), &bin, cg_cuda_archs_text(a, archs), path, d);
}
