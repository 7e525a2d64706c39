/* link_lib.c: a compiled model as a library a C or C++ program links (--emit lib|shared). The model's
   object (its API functions PREFIX_*, codegen/llvm/libwrap.c) is merged with the runtime and the static
   libraries it needs into one relocatable object (`cc -r`), whose symbols other than the API are then made
   local (objcopy): every exported symbol carries the model's prefix, so two models link into one program
   without a clash, each with its own private copy of the runtime. That object becomes libPREFIX.a (ar) or
   libPREFIX.so (cc -shared); PREFIX.h declares the API with the model's shapes. Tools run through
   posix_spawnp, never a shell; every output is written under a temporary name and renamed. */
#include "codegen.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#ifndef LATHE_INSTALL_LIBDIR
#define LATHE_INSTALL_LIBDIR "/usr/local/lib/lathe"
#endif
#ifndef LATHE_RT_EXTRA_LINK
#define LATHE_RT_EXTRA_LINK ""
#endif

/* The API functions that libwrap.c emits, the only global symbols of the library. */
static const char *const api[] = {"open", "close", "last_error", "predict", "train_step", "set_lr", "save"};
#define NAPI (sizeof api / sizeof api[0])

/* What a program links besides the library (the .so records these itself). */
#define SYSTEM_LIBS "-lopenblas -lz -lm -lpthread"

/* ---------------------------------------------------------------- the prefix */

static const char *const keywords[] = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum", "extern",
    "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return", "short", "signed",
    "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void", "volatile", "while", "bool",
    "catch", "class", "delete", "explicit", "false", "friend", "mutable", "namespace", "new", "operator",
    "private", "protected", "public", "template", "this", "throw", "true", "try", "typename", "using", "virtual",
    "main", "lathe"};

bool cg_lib_prefix_ok(const char *name) {
    if (!name || !(isalpha((unsigned char)name[0]) || name[0] == '_') || strlen(name) > 64)
        return false;
    for (const char *s = name; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return false;
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (strcmp(name, keywords[i]) == 0)
            return false;
    return true;
}

static bool ends_with(const char *s, size_t len, const char *suffix) {
    size_t n = strlen(suffix);
    return len > n && memcmp(s + len - n, suffix, n) == 0;
}

char *cg_lib_prefix_of(Arena *a, const char *output) {
    const char *base = strrchr(output, '/');
    base = base ? base + 1 : output;
    size_t len = strlen(base);
    bool ext = false;
    const char *exts[] = {".a", ".so", ".h"};
    for (int i = 0; i < 3; i++)
        if (ends_with(base, len, exts[i])) {
            len -= strlen(exts[i]);
            ext = i < 2;
        }
    if (ext && len > 3 && strncmp(base, "lib", 3) == 0) { /* -o libfoo.a names foo */
        base += 3;
        len -= 3;
    }
    if (len > 64)
        len = 64;
    char *p = arena_alloc(a, len + 8);
    size_t n = 0;
    if (len == 0 || isdigit((unsigned char)base[0]))
        p[n++] = '_';
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)base[i];
        p[n++] = isalnum(ch) ? (char)tolower(ch) : '_';
    }
    p[n] = '\0';
    if (!cg_lib_prefix_ok(p)) /* a keyword ("int", "main") */
        strcpy(p + n, "_model");
    return p;
}

/* ---------------------------------------------------------------- running tools */

static const char *tool(const char *env, const char *dflt) {
    const char *v = getenv(env);
    return v && *v ? v : dflt;
}

/* ---------------------------------------------------------------- the header */

static const char *c_type(DType t) {
    switch (t) {
    case DT_F32: return "float";
    case DT_F64: return "double";
    case DT_I32: return "int32_t";
    case DT_I64: return "int64_t";
    case DT_U8: return "uint8_t";
    default: return "void";
    }
}

/* A batch input of the program (x: 0, the labels: 1) as the graphs take it, or NULL. */
static const Node *batch_input(const Program *p, int i) {
    if (i >= p->ninputs)
        return NULL;
    Graph *gs[4];
    for (int k = 0, ng = program_graphs(p, gs); k < ng; k++) {
        const Node *n = ir_find_leaf(gs[k], OP_INPUT, p->input_names[i]);
        if (n)
            return n;
    }
    return NULL;
}

/* Text for a comment: no "*" followed by "/" and no control characters. */
static void comment_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch == 0x7f || (ch == '*' && s[1] == '/'))
            fputc('?', f);
        else
            fputc(ch, f);
    }
}

static void c_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f || ch == '?') /* '?': no trigraphs */
            fprintf(f, "\\%03o", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* NAME_SHAPE {d1, ...} (the dims after N; left out for a scalar per sample), NAME_RANK, NAME_SIZE, and the
   element type PREFIX_NAME_t. */
static void shape_macros(FILE *f, const char *up, const char *prefix, const char *what, const Node *n) {
    const Shape *s = &n->shape;
    int first = s->rank > 0 && s->dim[0] == IR_DIM_N;
    int64_t size = 1;
    if (s->rank == first) {
        fprintf(f, "/* %s of one sample: one %s value; a batch is `batch` of them */\n", what, ir_dtype_name(n->dtype));
    } else {
        fprintf(f, "/* %s of one sample: %s[", what, ir_dtype_name(n->dtype));
        for (int i = first; i < s->rank; i++)
            fprintf(f, "%s%lld", i > first ? ", " : "", (long long)s->dim[i]);
        fprintf(f, "], row-major; a batch is `batch` samples one after another */\n");
    }
    for (int i = first; i < s->rank; i++)
        size *= s->dim[i] == IR_DIM_N ? 1 : s->dim[i];
    const char *name = strcmp(what, "input") == 0 ? "INPUT" : strcmp(what, "output") == 0 ? "OUTPUT" : "LABEL";
    if (s->rank - first > 0) {
        fprintf(f, "#define %s_%s_SHAPE {", up, name);
        for (int i = first; i < s->rank; i++)
            fprintf(f, "%s%lld", i > first ? ", " : "", (long long)s->dim[i]);
        fprintf(f, "}\n");
    }
    fprintf(f, "#define %s_%s_RANK %d\n", up, name, s->rank - first);
    fprintf(f, "#define %s_%s_SIZE %lld /* values per sample */\n", up, name, (long long)size);
    fprintf(f, "#define %s_%s_DTYPE \"%s\"\n", up, name, ir_dtype_name(n->dtype));
    char lower[16];
    size_t k = 0;
    for (; k < sizeof lower - 1 && name[k]; k++)
        lower[k] = (char)tolower((unsigned char)name[k]);
    lower[k] = '\0';
    fprintf(f, "typedef %s %s_%s_t;\n\n", c_type(n->dtype), prefix, lower);
}

static void link_line(char *buf, size_t n, const char *prefix, CgLibKind kind) {
    snprintf(buf, n, "-l%s%s%s%s%s", prefix, kind == CG_LIB_STATIC ? " " SYSTEM_LIBS : "",
             LATHE_RT_EXTRA_LINK[0] ? " " : "", LATHE_RT_EXTRA_LINK, "");
}

static void write_header(FILE *f, const Program *p, const char *prefix, const char *libfile, CgLibKind kind) {
    char up[80], link[256];
    size_t k = 0;
    for (; k < sizeof up - 1 && prefix[k]; k++)
        up[k] = (char)toupper((unsigned char)prefix[k]);
    up[k] = '\0';
    link_line(link, sizeof link, prefix, kind);
    const Node *x = batch_input(p, 0), *y = batch_input(p, 1);
    const Node *out = p->predict && p->predict->noutputs ? p->predict->outputs[0].value : NULL;
    fprintf(f, "/* %s.h: the model ", prefix);
    comment_text(f, p->model_name);
    fprintf(f, " (");
    comment_text(f, p->source_file);
    fprintf(f, ") as a library, %s, written by lathe %s.\n\n", libfile, LATHE_VERSION);
    fprintf(f, "   Build a program with it (the folder of %s in -L%s):\n", libfile,
            kind == CG_LIB_SHARED ? ", and where the loader finds it at run time" : "");
    fprintf(f, "       cc  prog.c   -I. -L. %s\n       c++ prog.cpp -I. -L. %s\n", link, link);
    fprintf(f, "   link: %s\n", link);
    fprintf(f, "   %s\n\n",
            kind == CG_LIB_STATIC
                ? "The archive holds the model, the Lathe runtime and its JSON, PNG and protobuf-c code; its only\n"
                  "   global symbols are the functions below, so several models' libraries link into one program."
                : "The library exports the functions below only; it loads OpenBLAS, zlib, jansson, libpng and\n"
                  "   protobuf-c at run time.");
    fprintf(f, "   Every function but last_error returns %s_OK (0) or a negative %s_E_* code, and then\n"
               "   %s_last_error() says why, in one line. The message is per thread: each thread reads its own\n"
               "   last failure (of this model's functions).\n\n", up, up, prefix);
    fprintf(f, "   Threads: different handles may be used from different threads at once; one handle must not be\n"
               "   used by two threads at a time (predict, train_step, set_lr, save and close write its buffers).\n"
               "   open and last_error are safe from any thread. The kernels run on the runtime's thread pool,\n"
               "   started by the first open with LATHE_THREADS threads (one per core when unset); while one call\n"
               "   uses it, a call on another thread runs its kernels on its own thread. */\n");
    fprintf(f, "#ifndef %s_H\n#define %s_H\n\n#include <stdint.h>\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n",
            up, up);
    if (x)
        shape_macros(f, up, prefix, "input", x);
    if (out)
        shape_macros(f, up, prefix, "output", out);
    if (y)
        shape_macros(f, up, prefix, "label", y);
    const RVal *classes = program_recipe(p, "classes");
    if (classes && classes->kind == RV_LIST && classes->nitems > 0) {
        fprintf(f, "/* the recipe's class names, by class index */\n#define %s_CLASSES %d\n#define %s_CLASS_NAMES {",
                up, classes->nitems, up);
        for (int i = 0; i < classes->nitems; i++) {
            fprintf(f, "%s", i ? ", " : "");
            c_string(f, classes->items[i]->kind == RV_STR ? classes->items[i]->str : "");
        }
        fprintf(f, "}\n\n");
    }
    fprintf(f, "#define %s_OK 0\n#define %s_E_ARGUMENT (-1) /* a NULL pointer, batch < 1, another model's handle */\n"
               "#define %s_E_IO (-2)       /* a checkpoint that cannot be read or written, or is not this model's */\n"
               "#define %s_E_MODEL (-3)    /* the model lacks what the call needs (a predict or train graph) */\n"
               "#define %s_E_NONFINITE (-4) /* the loss of a train step is NaN or infinite */\n"
               "#define %s_E_MEMORY (-5)\n\n", up, up, up, up, up, up);
    const char *xt = x ? "input_t" : "void", *ot = out ? "output_t" : "void", *yt = y ? "label_t" : "void";
#define T(s) (strcmp(s, "void") ? prefix : ""), (strcmp(s, "void") ? "_" : ""), s
    fprintf(f, "typedef struct %s %s; /* a model: its parameters, optimizer state and buffers */\n\n", prefix, prefix);
    fprintf(f, "/* The model with the weights of a safetensors checkpoint (as the produced binary's train writes\n"
               "   them; the optimizer's state too, where it is the recipe's), or, with path NULL, initialised as\n"
               "   the binary's train starts (the recipe's seed). NULL on error (see last_error). */\n");
    fprintf(f, "%s *%s_open(const char *path);\n", prefix, prefix);
    fprintf(f, "void %s_close(%s *m);\n", prefix, prefix);
    fprintf(f, "/* Why the last failed call of this thread failed (\"\" before any failure). */\n");
    fprintf(f, "const char *%s_last_error(void);\n\n", prefix);
    fprintf(f, "/* The predict graph on batch samples: input holds batch * %s_INPUT_SIZE values, output receives\n"
               "   batch * %s_OUTPUT_SIZE. The recipe's scale and normalize transforms are applied to a copy of the\n"
               "   input, as the binary's predict does; a data source's own scale (idx(..., scale = 1 / 255)) is\n"
               "   not: pass the values the model takes. */\n", up, up);
    fprintf(f, "int %s_predict(%s *m, const %s%s%s *input, int64_t batch, %s%s%s *output);\n\n", prefix, prefix,
            T(xt), T(ot));
    fprintf(f, "/* One batch of the recipe's training loop: forward, backward and the optimizer's update (the\n"
               "   fused train step, or the runtime's optimizer with its accumulate and clipping), at the\n"
               "   recipe's learning rate or the last set_lr. The recipe's schedule is not applied (it counts\n"
               "   epochs, which the library does not see): call set_lr for one. The random transforms of the\n"
               "   recipe are not applied either. The batch's mean loss into *loss (may be NULL). */\n");
    fprintf(f, "int %s_train_step(%s *m, const %s%s%s *input, const %s%s%s *labels, int64_t batch, float *loss);\n",
            prefix, prefix, T(xt), T(yt));
    fprintf(f, "int %s_set_lr(%s *m, double lr);\n", prefix, prefix);
    fprintf(f, "/* A checkpoint that the binary's eval/predict --weights, train --resume and --init-from read;\n"
               "   written to a temporary file and renamed, so path is whole or untouched. */\n");
    fprintf(f, "int %s_save(%s *m, const char *path);\n\n", prefix, prefix);
#undef T
    fprintf(f, "#ifdef __cplusplus\n}\n#endif\n\n#endif\n");
}

/* ---------------------------------------------------------------- the library */

typedef struct Paths {
    char dir[PATH_MAX], base[PATH_MAX];
    char header[PATH_MAX], lib[PATH_MAX], header_tmp[PATH_MAX], lib_tmp[PATH_MAX];
    char work[PATH_MAX], merged[PATH_MAX], local[PATH_MAX], keep[PATH_MAX];
} Paths;

static bool make_paths(Paths *ps, const char *output, CgLibKind kind, Diag *d) {
    const char *slash = strrchr(output, '/');
    snprintf(ps->dir, sizeof ps->dir, "%.*s", slash ? (int)(slash - output) + (slash == output) : 1,
             slash ? output : ".");
    snprintf(ps->base, sizeof ps->base, "%s", slash ? slash + 1 : output);
    size_t len = strlen(ps->base);
    const char *exts[] = {".a", ".so", ".h"};
    for (int i = 0; i < 3; i++)
        if (ends_with(ps->base, len, exts[i])) {
            ps->base[len - strlen(exts[i])] = '\0';
            if (i < 2 && strncmp(ps->base, "lib", 3) == 0 && ps->base[3])
                memmove(ps->base, ps->base + 3, strlen(ps->base + 3) + 1);
            break;
        }
    const char *sep = strcmp(ps->dir, "/") == 0 ? "" : "/";
    int pid = (int)getpid();
    if (!ps->base[0] ||
        snprintf(ps->header, sizeof ps->header, "%s%s%s.h", ps->dir, sep, ps->base) >= (int)sizeof ps->header ||
        snprintf(ps->lib, sizeof ps->lib, "%s%slib%s.%s", ps->dir, sep, ps->base,
                 kind == CG_LIB_STATIC ? "a" : "so") >= (int)sizeof ps->lib ||
        snprintf(ps->header_tmp, sizeof ps->header_tmp, "%s.tmp-%d", ps->header, pid) >= (int)sizeof ps->header_tmp ||
        snprintf(ps->lib_tmp, sizeof ps->lib_tmp, "%s.tmp-%d", ps->lib, pid) >= (int)sizeof ps->lib_tmp) {
        diag_error(d, (Loc){0}, "output path too long or empty: '%s'", output);
        return false;
    }
    struct stat st;
    const char *why = stat(ps->dir, &st) != 0       ? strerror(errno)
                      : !S_ISDIR(st.st_mode)       ? "not a folder"
                      : access(ps->dir, W_OK) != 0 ? strerror(errno)
                                                   : NULL;
    if (why) {
        diag_error(d, (Loc){0}, "cannot create %s: %s", ps->lib, why);
        return false;
    }
    const char *tmpdir = getenv("TMPDIR");
    snprintf(ps->work, sizeof ps->work, "%s/lathe-lib-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(ps->work)) {
        diag_error(d, (Loc){0}, "cannot create a temporary folder %s: %s", ps->work, strerror(errno));
        return false;
    }
    /* the folder's name is at most PATH_MAX - 32 bytes; the base name is the model's file name */
    if (snprintf(ps->merged, sizeof ps->merged, "%s/merged.o", ps->work) >= (int)sizeof ps->merged ||
        snprintf(ps->local, sizeof ps->local, "%s/model.o", ps->work) >= (int)sizeof ps->local ||
        snprintf(ps->keep, sizeof ps->keep, "%s/api.txt", ps->work) >= (int)sizeof ps->keep) {
        diag_error(d, (Loc){0}, "temporary folder path too long: %s", ps->work);
        rmdir(ps->work);
        return false;
    }
    return true;
}

static void remove_work(const Paths *ps) {
    unlink(ps->merged);
    unlink(ps->local);
    unlink(ps->keep);
    rmdir(ps->work);
}

/* The model's object with the runtime and its static libraries, as one object whose only global
   definitions are the API's. */
static bool merge_object(const Paths *ps, const char *object, const char *prefix, CgLibKind kind, Diag *d) {
    char runtime[PATH_MAX];
    if (!cg_find_runtime_file("liblathe_rt_pic.a", runtime, sizeof runtime)) {
        diag_error(d, (Loc){0}, "cannot find the runtime library liblathe_rt_pic.a (looked beside the lathe "
                                "executable, beside $LATHE_RUNTIME and in %s)", LATHE_INSTALL_LIBDIR);
        return false;
    }
    const char *cc = tool("CC", "cc");
    /* -r: only the members that the model's object needs come in, as in any link. Debian's static jansson,
       libpng and protobuf-c are position-dependent code, fit for an archive that executables link, not for a
       shared library, which loads their shared ones instead. */
    const char *merge[] = {cc, "-r", "-nostdlib", "-o", ps->merged, object, runtime, "-Wl,-Bstatic", "-ljansson",
                           "-lpng16", "-lprotobuf-c", "-Wl,-Bdynamic", NULL};
    if (kind == CG_LIB_SHARED)
        merge[7] = NULL;
    if (!cg_run_tool(merge, "merge the model with the runtime", d))
        return false;
    FILE *f = fopen(ps->keep, "w");
    if (!f) {
        diag_error(d, (Loc){0}, "cannot write %s: %s", ps->keep, strerror(errno));
        return false;
    }
    for (size_t i = 0; i < NAPI; i++)
        fprintf(f, "%s_%s\n", prefix, api[i]);
    if (fclose(f) != 0) {
        diag_error(d, (Loc){0}, "cannot write %s: %s", ps->keep, strerror(errno));
        return false;
    }
    char keep[PATH_MAX + 32];
    snprintf(keep, sizeof keep, "--keep-global-symbols=%s", ps->keep);
    const char *localize[] = {tool("OBJCOPY", "objcopy"), keep, ps->merged, ps->local, NULL};
    return cg_run_tool(localize, "hide the runtime's symbols", d);
}

static bool write_library(const Paths *ps, CgLibKind kind, Diag *d) {
    if (kind == CG_LIB_STATIC) {
        const char *argv[] = {tool("AR", "ar"), "rcs", ps->lib_tmp, ps->local, NULL};
        return cg_run_tool(argv, "write the archive", d);
    }
    char soname[PATH_MAX + 32];
    snprintf(soname, sizeof soname, "-Wl,-soname,lib%s.so", ps->base);
    const char *argv[16];
    int n = 0;
    argv[n++] = tool("CC", "cc");
    argv[n++] = "-shared";
    argv[n++] = "-o";
    argv[n++] = ps->lib_tmp;
    argv[n++] = ps->local;
    argv[n++] = soname;
    argv[n++] = "-ljansson";
    argv[n++] = "-lpng16";
    argv[n++] = "-lprotobuf-c";
    argv[n++] = "-lopenblas";
    argv[n++] = "-lz";
    argv[n++] = "-lm";
    argv[n++] = "-lpthread";
    if (LATHE_RT_EXTRA_LINK[0])
        argv[n++] = LATHE_RT_EXTRA_LINK;
    argv[n] = NULL;
    return cg_run_tool(argv, "link the shared library", d);
}

static bool write_header_file(const Paths *ps, const Program *p, const char *prefix, CgLibKind kind, Diag *d) {
    FILE *f = fopen(ps->header_tmp, "w");
    if (!f) {
        diag_error(d, (Loc){0}, "cannot create %s: %s", ps->header_tmp, strerror(errno));
        return false;
    }
    const char *slash = strrchr(ps->lib, '/');
    write_header(f, p, prefix, slash ? slash + 1 : ps->lib, kind);
    if (ferror(f) | (fclose(f) != 0)) {
        diag_error(d, (Loc){0}, "cannot write %s: %s", ps->header, strerror(errno));
        return false;
    }
    return true;
}

bool cg_link_library(const Program *p, const char *object, CgLibKind kind, const char *output, const char *prefix,
                     Diag *d) {
    Paths ps;
    if (!make_paths(&ps, output, kind, d))
        return false;
    bool ok = merge_object(&ps, object, prefix, kind, d) && write_library(&ps, kind, d) &&
              write_header_file(&ps, p, prefix, kind, d);
    if (ok && rename(ps.lib_tmp, ps.lib) != 0) {
        diag_error(d, (Loc){0}, "cannot create %s: %s", ps.lib, strerror(errno));
        ok = false;
    }
    if (ok && rename(ps.header_tmp, ps.header) != 0) {
        diag_error(d, (Loc){0}, "cannot create %s: %s", ps.header, strerror(errno));
        unlink(ps.lib);
        ok = false;
    }
    unlink(ps.lib_tmp);
    unlink(ps.header_tmp);
    remove_work(&ps);
    return ok;
}
