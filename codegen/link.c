/* link.c: the object file and the runtime library into one executable. The system C compiler runs as the
   linker driver through posix_spawnp, never through a shell, so nothing in a model file or a path can
   become a command. The executable is linked under a temporary name and renamed, so a failed link leaves
   nothing behind. */
#include "codegen.h"

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
#ifndef LATHE_MPI_LIBS
#define LATHE_MPI_LIBS "" /* the MPI libraries of the build, '|' between them; empty: built without MPI */
#endif

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool cg_find_runtime_file(const char *name, char *out, size_t size) {
    const char *env = getenv("LATHE_RUNTIME");
    if (env && *env) { /* liblathe_rt.a is that file; the others are beside it */
        const char *slash = strrchr(env, '/');
        int n = strcmp(name, "liblathe_rt.a") == 0
                    ? snprintf(out, size, "%s", env)
                    : snprintf(out, size, "%.*s/%s", slash ? (int)(slash - env) : 1, slash ? env : ".", name);
        return n < (int)size && is_file(out);
    }
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            const char *rel[] = {"../lib/", "../lib/lathe/"};
            for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++)
                if (snprintf(out, size, "%s/%s%s", exe, rel[i], name) < (int)size && is_file(out))
                    return true;
        }
    }
    return snprintf(out, size, "%s/%s", LATHE_INSTALL_LIBDIR, name) < (int)size && is_file(out);
}

bool cg_run_tool(const char *const *argv, const char *what, Diag *d) {
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, environ);
    if (rc != 0) {
        diag_error(d, (Loc){0}, "cannot run '%s' to %s: %s", argv[0], what, strerror(rc));
        return false;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            diag_error(d, (Loc){0}, "waiting for '%s': %s", argv[0], strerror(errno));
            return false;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        diag_error(d, (Loc){0}, "'%s' failed to %s (its errors are above)", argv[0], what);
        return false;
    }
    return true;
}

static bool link_exe(const char *object, const char *extra, const char *output, bool mpi, Diag *d);

bool cg_link(const char *object, const char *output, Diag *d) { return link_exe(object, NULL, output, false, d); }

bool cg_link_mpi(const char *object, const char *output, Diag *d) { return link_exe(object, NULL, output, true, d); }

bool cg_link_cuda(const char *object, const char *cuda_object, const char *output, Diag *d) {
    return link_exe(object, cuda_object, output, false, d);
}

/* extra: a second object (the GPU data), or NULL */
static bool link_exe(const char *object, const char *extra, const char *output, bool mpi, Diag *d) {
    Loc none = {0};
    char runtime[PATH_MAX];
    if (!cg_find_runtime_file("liblathe_rt.a", runtime, sizeof runtime)) {
        const char *env = getenv("LATHE_RUNTIME");
        if (env && *env)
            diag_error(d, none, "cannot find the runtime library %s (from LATHE_RUNTIME)", env);
        else
            diag_error(d, none, "cannot find the runtime library liblathe_rt.a (looked beside the lathe "
                                "executable and in %s; set LATHE_RUNTIME to its path)", LATHE_INSTALL_LIBDIR);
        return false;
    }
    /* one clear message for an output that cannot be written, rather than the linker's */
    char dir[PATH_MAX];
    const char *slash = strrchr(output, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - output) + (slash == output) : 1, slash ? output : ".");
    struct stat st;
    const char *why = stat(dir, &st) != 0      ? strerror(errno)
                      : !S_ISDIR(st.st_mode)    ? "not a folder"
                      : access(dir, W_OK) != 0  ? strerror(errno)
                      : stat(output, &st) == 0 && S_ISDIR(st.st_mode) ? "it is a folder"
                                                : NULL;
    if (why) {
        diag_error(d, none, "cannot create %s: %s", output, why);
        return false;
    }
    const char *cc = getenv("CC");
    if (!cc || !*cc)
        cc = "cc";
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%d", output, (int)getpid()) >= (int)sizeof tmp) {
        diag_error(d, none, "output path too long: %s", output);
        return false;
    }
    char mpi_rt[PATH_MAX], mpi_libs[PATH_MAX];
    if (mpi && (!LATHE_MPI_LIBS[0] || !cg_find_runtime_file("liblathe_rt_mpi.a", mpi_rt, sizeof mpi_rt))) {
        diag_error(d, none, "--mpi: this lathe was built without Open MPI (install libopenmpi-dev and openmpi-bin, "
                            "then rebuild lathe)");
        return false;
    }
    const char *argv[40];
    int argc = 0;
    argv[argc++] = cc;
    argv[argc++] = "-o";
    argv[argc++] = tmp;
    argv[argc++] = object;
    if (extra)
        argv[argc++] = extra;
    if (mpi) { /* the backend whole: the runtime refers to it by a weak symbol only */
        argv[argc++] = "-Wl,--whole-archive";
        argv[argc++] = mpi_rt;
        argv[argc++] = "-Wl,--no-whole-archive";
    }
    argv[argc++] = runtime;
    /* jansson, libpng and protobuf-c statically: a produced executable needs nothing a user must install but
       OpenBLAS and zlib */
    argv[argc++] = "-Wl,-Bstatic";
    argv[argc++] = "-ljansson";
    argv[argc++] = "-lpng16";      /* the image-folder data source */
    argv[argc++] = "-lprotobuf-c"; /* TensorBoard event files */
    argv[argc++] = "-Wl,-Bdynamic";
    argv[argc++] = "-lopenblas";
    argv[argc++] = "-lz";
    argv[argc++] = "-lm";
    argv[argc++] = "-lpthread";
    if (mpi) { /* the MPI libraries by path, '|' between them */
        snprintf(mpi_libs, sizeof mpi_libs, "%s", LATHE_MPI_LIBS);
        for (char *save = NULL, *lib = strtok_r(mpi_libs, "|", &save); lib && argc < 36;
             lib = strtok_r(NULL, "|", &save))
            argv[argc++] = lib;
    }
    if (LATHE_RT_EXTRA_LINK[0])
        argv[argc++] = LATHE_RT_EXTRA_LINK;
    argv[argc] = NULL;

    char what[PATH_MAX + 16];
    snprintf(what, sizeof what, "link %s", output);
    if (!cg_run_tool(argv, what, d)) {
        unlink(tmp);
        return false;
    }
    if (rename(tmp, output) != 0) {
        diag_error(d, none, "cannot create %s: %s", output, strerror(errno));
        unlink(tmp);
        return false;
    }
    return true;
}
