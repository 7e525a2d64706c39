/* nvrtc.c: CUDA C to PTX and cubins through NVRTC, opened with dlopen. The library is looked for where a
   user points ($LATHE_NVRTC), then in the CUDA installations, then on the loader's path; CUDA's include
   folder (for <mma.h>) is found beside the library that was opened. A compile error is reported at the
   model line that the source's #line directives give. */
#define _GNU_SOURCE /* dladdr */
#include "nvrtc.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef int NvResult; /* nvrtcResult: 0 is NVRTC_SUCCESS */
typedef struct NvProgram *NvProgram;

/* The functions used, resolved once. */
static struct {
    bool tried, ok;
    char why[1024];          /* why NVRTC could not be opened */
    char path[PATH_MAX];     /* the library opened */
    char include[PATH_MAX];  /* CUDA's include folder; empty: not found */
    int major, minor;
    NvResult (*create)(NvProgram *, const char *, const char *, int, const char *const *, const char *const *);
    NvResult (*compile)(NvProgram, int, const char *const *);
    NvResult (*log_size)(NvProgram, size_t *);
    NvResult (*log)(NvProgram, char *);
    NvResult (*ptx_size)(NvProgram, size_t *);
    NvResult (*ptx)(NvProgram, char *);
    NvResult (*cubin_size)(NvProgram, size_t *);
    NvResult (*cubin)(NvProgram, char *);
    NvResult (*destroy)(NvProgram *);
    NvResult (*version)(int *, int *);
    const char *(*error_string)(NvResult);
} nv;

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static const char *const sonames[] = {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"};

/* dlopen of the first file of dir that exists; NULL when none does (or none loads). */
static void *open_in(const char *dir) {
    for (size_t i = 0; i < sizeof sonames / sizeof sonames[0]; i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, sonames[i]) < (int)sizeof path && is_file(path)) {
            void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
            if (h)
                return h;
        }
    }
    return NULL;
}

/* The library per the search order of nvrtc.h; NULL with nv.why saying where it looked. */
static void *open_library(void) {
    const char *env = getenv("LATHE_NVRTC");
    if (env && *env) {
        void *h = dlopen(env, RTLD_NOW | RTLD_LOCAL);
        if (!h)
            snprintf(nv.why, sizeof nv.why, "cannot open NVRTC from LATHE_NVRTC=%s: %s", env, dlerror());
        return h;
    }
    char dirs[2][PATH_MAX];
    int ndirs = 0;
    const char *home = getenv("CUDA_HOME");
    if (home && *home)
        snprintf(dirs[ndirs++], PATH_MAX, "%s/lib64", home);
    snprintf(dirs[ndirs++], PATH_MAX, "/usr/local/cuda/lib64");
    for (int i = 0; i < ndirs; i++) {
        void *h = open_in(dirs[i]);
        if (h)
            return h;
    }
    for (size_t i = 0; i < sizeof sonames / sizeof sonames[0]; i++) {
        void *h = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL);
        if (h)
            return h;
    }
    snprintf(nv.why, sizeof nv.why,
             "NVRTC (libnvrtc.so) not found: looked in %.512s%s/usr/local/cuda/lib64 and on the loader's path "
             "(libnvrtc.so, .so.13, .so.12, .so.11.2); install the CUDA toolkit's NVRTC, or set CUDA_HOME or "
             "LATHE_NVRTC (the library file)",
             ndirs == 2 ? dirs[0] : "", ndirs == 2 ? ", " : "");
    return NULL;
}

/* CUDA's include folder beside the library's folder: LIB/../include, or the targets/ layout's. */
static void find_include(void *symbol) {
    Dl_info info;
    char lib[PATH_MAX];
    if (!dladdr(symbol, &info) || !info.dli_fname || !realpath(info.dli_fname, lib))
        return;
    snprintf(nv.path, sizeof nv.path, "%s", lib);
    char *slash = strrchr(lib, '/');
    if (!slash)
        return;
    *slash = '\0'; /* lib is the library's folder */
    const char *rel[] = {"../include", "../../include", "../targets/x86_64-linux/include"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        char dir[PATH_MAX + 40], mma[PATH_MAX + 48];
        snprintf(dir, sizeof dir, "%s/%s", lib, rel[i]);
        snprintf(mma, sizeof mma, "%s/mma.h", dir);
        if (is_file(mma) && realpath(dir, nv.include))
            return;
    }
    nv.include[0] = '\0';
}

static bool load(void) {
    if (nv.tried)
        return nv.ok;
    nv.tried = true;
    void *h = open_library();
    if (!h)
        return false;
    struct {
        void **fn;
        const char *name;
    } syms[] = {
        {(void **)&nv.create, "nvrtcCreateProgram"},     {(void **)&nv.compile, "nvrtcCompileProgram"},
        {(void **)&nv.log_size, "nvrtcGetProgramLogSize"}, {(void **)&nv.log, "nvrtcGetProgramLog"},
        {(void **)&nv.ptx_size, "nvrtcGetPTXSize"},       {(void **)&nv.ptx, "nvrtcGetPTX"},
        {(void **)&nv.cubin_size, "nvrtcGetCUBINSize"},   {(void **)&nv.cubin, "nvrtcGetCUBIN"},
        {(void **)&nv.destroy, "nvrtcDestroyProgram"},    {(void **)&nv.version, "nvrtcVersion"},
        {(void **)&nv.error_string, "nvrtcGetErrorString"},
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        *syms[i].fn = dlsym(h, syms[i].name);
        if (!*syms[i].fn) {
            snprintf(nv.why, sizeof nv.why, "the NVRTC library found lacks %s (NVRTC 11.2 or later is needed)",
                     syms[i].name);
            dlclose(h);
            return false;
        }
    }
    find_include((void *)nv.version);
    if (nv.version(&nv.major, &nv.minor) != 0)
        nv.major = nv.minor = 0;
    return nv.ok = true; /* the handle stays open for the process's life */
}

bool cg_nvrtc_available(char *why, size_t why_size) {
    bool ok = load();
    if (!ok && why)
        snprintf(why, why_size, "%s", nv.why);
    return ok;
}

bool cg_nvrtc_describe(char *buf, size_t size) {
    if (!load())
        return false;
    snprintf(buf, size, "NVRTC %d.%d (%s)", nv.major, nv.minor, nv.path[0] ? nv.path : "?");
    return true;
}

/* ---------------------------------------------------------------- archs */

bool cg_cuda_archs_parse(const char *list, CgCudaArchs *out, char *why, size_t why_size) {
    memset(out, 0, sizeof *out);
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int digits = 0;
        while (len > 3 && digits < (int)len - 3 && p[3 + digits] >= '0' && p[3 + digits] <= '9')
            digits++;
        bool form = len >= 5 && len <= 6 && strncmp(p, "sm_", 3) == 0 && digits == (int)len - 3;
        if (!form || atoi(p + 3) < 80) {
            snprintf(why, why_size,
                     "--cuda-arch takes a comma-separated list of GPU archs sm_80 or later (sm_80,sm_90), "
                     "not '%.*s'%s",
                     (int)len, p, form ? " (GPU code needs sm_80's TF32 tensor cores and instructions)" : "");
            return false;
        }
        for (int i = 0; i < out->n; i++)
            if (strncmp(out->name[i], p, len) == 0 && out->name[i][len] == '\0') {
                snprintf(why, why_size, "--cuda-arch names %.*s twice", (int)len, p);
                return false;
            }
        if (out->n == CG_NVRTC_MAX_ARCHS) {
            snprintf(why, why_size, "--cuda-arch takes at most %d archs", CG_NVRTC_MAX_ARCHS);
            return false;
        }
        memcpy(out->name[out->n], p, len);
        out->name[out->n++][len] = '\0';
        if (!end)
            return true;
        p = end + 1;
    }
}

char *cg_cuda_archs_text(Arena *a, const CgCudaArchs *archs) {
    char buf[CG_NVRTC_MAX_ARCHS * 8 + 1] = "";
    for (int i = 0; i < archs->n; i++) {
        if (i)
            strcat(buf, ",");
        strcat(buf, archs->name[i]);
    }
    return arena_strdup(a, buf);
}

/* ---------------------------------------------------------------- compiling */

/* The first error of NVRTC's log, reported at its location: "FILE(LINE): error: MSG" lines, where FILE is
   the model file that a #line directive named, or the source's own name. */
static void report_log(const char *log, const char *name, const char *target, Arena *a, Diag *d) {
    for (const char *line = log; *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char *text = arena_strndup(a, line, len);
        char *close = strstr(text, "): ");
        char *open = close;
        while (open && open > text && *open != '(')
            open--;
        const char *msg = close ? close + 3 : NULL;
        if (msg && strncmp(msg, "catastrophic ", 13) == 0)
            msg += 13;
        if (open && *open == '(' && msg && strncmp(msg, "error: ", 7) == 0) {
            *open = *close = '\0';
            Loc at = {text, atoi(open + 1), 0};
            if (strcmp(text, name) == 0)
                diag_error(d, at, "in the generated CUDA C (for %s): %s (a bug of lathe's CUDA generator; "
                                  "lathe compile --emit cuda writes the source)", target, msg + 7);
            else
                diag_error(d, at, "CUDA C (NVRTC, for %s): %s", target, msg + 7);
            return;
        }
        line += len + (eol != NULL);
    }
    /* an error without a location: an option NVRTC refuses, or a log this code does not know */
    diag_error(d, (Loc){0}, "NVRTC cannot compile %s for %s: %s", name, target,
               *log ? log : "(no message)");
}

/* What one compilation gives back, in a: its PTX (NUL-terminated, the NUL not counted) when want_ptx, else
   its cubin. */
static bool fetch(NvProgram prog, Arena *a, bool want_ptx, unsigned char **bytes, size_t *size) {
    if ((want_ptx ? nv.ptx_size(prog, size) : nv.cubin_size(prog, size)) != 0)
        return false;
    *bytes = arena_alloc(a, *size + 1);
    if ((want_ptx ? nv.ptx(prog, (char *)*bytes) : nv.cubin(prog, (char *)*bytes)) != 0)
        return false;
    if (want_ptx && *size > 0 && (*bytes)[*size - 1] == '\0')
        (*size)--; /* the PTX size counts its NUL */
    return true;
}

/* One compilation of source for target ("compute_80", "sm_90"): its PTX into ptx and ptx_size when ptx is not
   NULL, its cubin into img when img is not NULL. */
static bool compile_one(Arena *a, const char *source, const char *name, const char *target, char **ptx,
                        size_t *ptx_size, CgCudaImage *img, Diag *d) {
    NvProgram prog;
    NvResult rc = nv.create(&prog, source, name, 0, NULL, NULL);
    if (rc != 0) {
        diag_error(d, (Loc){0}, "NVRTC cannot create a program: %s", nv.error_string(rc));
        return false;
    }
    const char *opts[5];
    int nopts = 0;
    opts[nopts++] = arena_printf(a, "--gpu-architecture=%s", target);
    opts[nopts++] = "--std=c++17";
    opts[nopts++] = "-default-device";
    if (nv.include[0])
        opts[nopts++] = arena_printf(a, "-I%s", nv.include);
    bool ok = false;
    rc = nv.compile(prog, nopts, opts);
    if (rc != 0) {
        size_t n = 0;
        char *log = NULL;
        if (nv.log_size(prog, &n) == 0 && n > 0) {
            log = arena_alloc(a, n + 1);
            if (nv.log(prog, log) != 0)
                log[0] = '\0';
        }
        if (rc == 6 && log) /* NVRTC_ERROR_COMPILATION */
            report_log(log, name, target, a, d);
        else
            diag_error(d, (Loc){0}, "NVRTC cannot compile %s for %s: %s%s%s", name, target, nv.error_string(rc),
                       log && *log ? ": " : "", log ? log : "");
        goto done;
    }
    if ((ptx && !fetch(prog, a, true, (unsigned char **)ptx, ptx_size)) ||
        (img && !fetch(prog, a, false, &img->bytes, &img->size))) {
        diag_error(d, (Loc){0}, "NVRTC compiled %s for %s but cannot give its %s", name, target,
                   ptx && !*ptx ? "PTX" : "cubin");
        goto done;
    }
    if (img)
        img->arch = arena_strdup(a, target);
    ok = true;
done:
    nv.destroy(&prog);
    return ok;
}

bool cg_nvrtc_compile(Arena *a, const char *source, const char *name, const CgCudaArchs *archs, CgCudaBinary *out,
                      Diag *d) {
    memset(out, 0, sizeof *out);
    if (!load()) {
        diag_error(d, (Loc){0}, "%s", nv.why);
        return false;
    }
    /* sm_80's compilation gives the compute_80 PTX too (.target sm_80, the same text): one NVRTC run saved */
    for (int i = 0; archs && i < archs->n; i++) {
        bool with_ptx = strcmp(archs->name[i], "sm_80") == 0;
        if (!compile_one(a, source, name, archs->name[i], with_ptx ? &out->ptx : NULL, &out->ptx_size,
                         &out->cubins[out->ncubins], d))
            return false;
        out->ncubins++;
    }
    return out->ptx || compile_one(a, source, name, "compute_80", &out->ptx, &out->ptx_size, NULL, d);
}
