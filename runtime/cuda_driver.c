/* cuda_driver.c: the CUDA Driver API as an RtCudaDriver (runtime/cuda.h), and the choice of --device.
   libcuda.so.1 is opened with dlopen, never linked: a produced executable runs where CUDA is absent, and
   `ldd` shows no CUDA library. The module is the cubin built for the device's compute capability when the
   executable holds one, else the PTX, which the driver compiles for the device.
   Not verified on a GPU yet: this session had none (docs/gpu.md). */
#include "cuda.h"
#include "memcheck.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult; /* 0 is CUDA_SUCCESS */
typedef int CUdevice;
typedef void *CUcontext;
typedef void *CUmodule;
typedef void *CUfunction;
typedef unsigned long long CUdeviceptr;

enum {
    CUDA_ERROR_NO_DEVICE = 100,
    CU_ATTR_CC_MAJOR = 75, /* CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR */
    CU_ATTR_CC_MINOR = 76,
    CU_JIT_ERROR_LOG_BUFFER = 5,
    CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6,
};

typedef struct Kernel {
    char *name;
    CUfunction fn;
} Kernel;

/* The driver's ctx: libcuda's functions, the device's context and module, the kernels looked up so far. */
typedef struct CuDriver {
    void *lib;
    CUresult (*init)(unsigned);
    CUresult (*device_count)(int *);
    CUresult (*device_get)(CUdevice *, int);
    CUresult (*device_name)(char *, int, CUdevice);
    CUresult (*device_attr)(int *, int, CUdevice);
    CUresult (*ctx_retain)(CUcontext *, CUdevice);
    CUresult (*ctx_release)(CUdevice);
    CUresult (*ctx_set)(CUcontext);
    CUresult (*module_load)(CUmodule *, const void *, unsigned, int *, void **);
    CUresult (*module_unload)(CUmodule);
    CUresult (*module_function)(CUfunction *, CUmodule, const char *);
    CUresult (*mem_alloc)(CUdeviceptr *, size_t);
    CUresult (*mem_free)(CUdeviceptr);
    CUresult (*to_device)(CUdeviceptr, const void *, size_t);
    CUresult (*to_host)(void *, CUdeviceptr, size_t);
    CUresult (*copy)(CUdeviceptr, CUdeviceptr, size_t);
    CUresult (*launch)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void *,
                       void **, void **);
    CUresult (*sync)(void);
    CUresult (*mem_info)(size_t *, size_t *);
    CUresult (*error_string)(CUresult, const char **);
    CUdevice dev;
    CUcontext ctx;
    CUmodule mod;
    Kernel *kernels;
    int nkernels, cap;
    char err[1024];
} CuDriver;

/* Sets the driver's message "WHAT: CUDA's text" for a failed call; returns non-zero. */
static int cu_fail(CuDriver *c, CUresult rc, const char *what) {
    const char *text = NULL;
    if (!c->error_string || c->error_string(rc, &text) != 0 || !text)
        text = "unknown CUDA error";
    snprintf(c->err, sizeof c->err, "%s: %s (CUDA error %d)", what, text, rc);
    return rc ? rc : -1;
}

static int cu_alloc(void *ctx, size_t bytes, uint64_t *dptr) {
    CuDriver *c = ctx;
    CUdeviceptr p = 0;
    CUresult rc = c->mem_alloc(&p, bytes ? bytes : 1);
    *dptr = p;
    if (rc == 0)
        return 0;
    char what[96];
    snprintf(what, sizeof what, "cuMemAlloc of %zu bytes", bytes);
    return cu_fail(c, rc, what);
}

static void cu_release(void *ctx, uint64_t dptr) {
    CuDriver *c = ctx;
    if (dptr)
        c->mem_free(dptr);
}

static int cu_to_device(void *ctx, uint64_t dst, const void *src, size_t bytes) {
    CuDriver *c = ctx;
    CUresult rc = bytes ? c->to_device(dst, src, bytes) : 0;
    return rc ? cu_fail(c, rc, "cuMemcpyHtoD") : 0;
}

static int cu_to_host(void *ctx, void *dst, uint64_t src, size_t bytes) {
    CuDriver *c = ctx;
    CUresult rc = bytes ? c->to_host(dst, src, bytes) : 0;
    return rc ? cu_fail(c, rc, "cuMemcpyDtoH") : 0;
}

static int cu_copy(void *ctx, uint64_t dst, uint64_t src, size_t bytes) {
    CuDriver *c = ctx;
    CUresult rc = bytes ? c->copy(dst, src, bytes) : 0;
    return rc ? cu_fail(c, rc, "cuMemcpyDtoD") : 0;
}

/* The kernel named name, looked up in the module once. */
static CUfunction kernel(CuDriver *c, const char *name) {
    for (int i = 0; i < c->nkernels; i++)
        if (strcmp(c->kernels[i].name, name) == 0)
            return c->kernels[i].fn;
    CUfunction fn;
    CUresult rc = c->module_function(&fn, c->mod, name);
    if (rc != 0) {
        char what[160];
        snprintf(what, sizeof what, "cuModuleGetFunction(%.100s)", name);
        cu_fail(c, rc, what);
        return NULL;
    }
    if (c->nkernels == c->cap) {
        int cap = c->cap ? 2 * c->cap : 64;
        Kernel *grown = realloc(c->kernels, sizeof *grown * (size_t)cap);
        if (!grown) {
            snprintf(c->err, sizeof c->err, "out of memory");
            return NULL;
        }
        c->kernels = grown;
        c->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy) {
        snprintf(c->err, sizeof c->err, "out of memory");
        return NULL;
    }
    c->kernels[c->nkernels++] = (Kernel){copy, fn};
    return fn;
}

static int cu_launch(void *ctx, const char *name, unsigned grid, unsigned block, void **params) {
    CuDriver *c = ctx;
    CUfunction fn = kernel(c, name);
    if (!fn)
        return -1;
    CUresult rc = c->launch(fn, grid, 1, 1, block, 1, 1, 0, NULL, params, NULL);
    if (rc == 0)
        return 0;
    char what[200];
    snprintf(what, sizeof what, "cuLaunchKernel(%.100s, grid %u, block %u)", name, grid, block);
    return cu_fail(c, rc, what);
}

static int cu_sync(void *ctx) {
    CuDriver *c = ctx;
    CUresult rc = c->sync();
    return rc ? cu_fail(c, rc, "cuCtxSynchronize") : 0;
}

static const char *cu_error(void *ctx) { return ((CuDriver *)ctx)->err; }

/* ---------------------------------------------------------------- opening */

static int load_symbols(CuDriver *c, RtErr *e) {
    struct {
        void **fn;
        const char *name;
    } syms[] = {
        {(void **)&c->init, "cuInit"},
        {(void **)&c->device_count, "cuDeviceGetCount"},
        {(void **)&c->device_get, "cuDeviceGet"},
        {(void **)&c->device_name, "cuDeviceGetName"},
        {(void **)&c->device_attr, "cuDeviceGetAttribute"},
        {(void **)&c->ctx_retain, "cuDevicePrimaryCtxRetain"},
        {(void **)&c->ctx_release, "cuDevicePrimaryCtxRelease_v2"},
        {(void **)&c->ctx_set, "cuCtxSetCurrent"},
        {(void **)&c->module_load, "cuModuleLoadDataEx"},
        {(void **)&c->module_unload, "cuModuleUnload"},
        {(void **)&c->module_function, "cuModuleGetFunction"},
        {(void **)&c->mem_alloc, "cuMemAlloc_v2"},
        {(void **)&c->mem_free, "cuMemFree_v2"},
        {(void **)&c->to_device, "cuMemcpyHtoD_v2"},
        {(void **)&c->to_host, "cuMemcpyDtoH_v2"},
        {(void **)&c->copy, "cuMemcpyDtoD_v2"},
        {(void **)&c->launch, "cuLaunchKernel"},
        {(void **)&c->sync, "cuCtxSynchronize"},
        {(void **)&c->mem_info, "cuMemGetInfo_v2"},
        {(void **)&c->error_string, "cuGetErrorString"},
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++)
        if (!(*syms[i].fn = dlsym(c->lib, syms[i].name)))
            return rt_errf(e, "the CUDA driver (libcuda.so.1) lacks %s: it is older than CUDA 11", syms[i].name);
    return RT_OK;
}

/* The executable's cubin for sm_MAJORMINOR, else NULL (the PTX is loaded then). */
static const RtCudaCubin *cubin_for(int major, int minor) {
    char arch[16];
    snprintf(arch, sizeof arch, "sm_%d%d", major, minor);
    for (const RtCudaCubin *b = lathe_cuda_cubins; b && b->arch; b++)
        if (strcmp(b->arch, arch) == 0)
            return b;
    return NULL;
}

/* The module from the matching cubin or the PTX; what was loaded into from ("cubin sm_90", "PTX"). */
static int load_module(CuDriver *c, char *from, size_t from_size, RtErr *e) {
    int major = 0, minor = 0;
    if (c->device_attr(&major, CU_ATTR_CC_MAJOR, c->dev) != 0 || c->device_attr(&minor, CU_ATTR_CC_MINOR, c->dev) != 0)
        return rt_errf(e, "CUDA: cannot read the device's compute capability");
    if (major < 8)
        return rt_errf(e, "CUDA: the device has compute capability %d.%d; the GPU code needs 8.0 (sm_80) or later",
                       major, minor);
    const RtCudaCubin *bin = cubin_for(major, minor);
    const void *image = bin ? (const void *)bin->bytes : (const void *)lathe_cuda_ptx;
    if (bin)
        snprintf(from, from_size, "cubin %s", bin->arch);
    else
        snprintf(from, from_size, "PTX, compiled by the driver for sm_%d%d", major, minor);
    static char log[4096];
    log[0] = '\0';
    int opts[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    void *vals[] = {log, (void *)(uintptr_t)sizeof log};
    CUresult rc = c->module_load(&c->mod, image, 2, opts, vals);
    if (rc != 0) {
        cu_fail(c, rc, "cuModuleLoadDataEx");
        return rt_errf(e, "CUDA: cannot load the GPU code (%s): %s%s%s", from, c->err, log[0] ? ": " : "", log);
    }
    return RT_OK;
}

static int open_device(CuDriver *c, char *name, size_t name_size, size_t *free_bytes, RtErr *e) {
    CUresult rc = c->init(0);
    int count = 0;
    if (rc == CUDA_ERROR_NO_DEVICE || (rc == 0 && c->device_count(&count) == 0 && count == 0))
        return rt_errf(e, "no CUDA device");
    if (rc != 0) {
        cu_fail(c, rc, "cuInit");
        return rt_errf(e, "the CUDA driver cannot start: %s", c->err);
    }
    if ((rc = c->device_get(&c->dev, 0)) != 0 || (rc = c->ctx_retain(&c->ctx, c->dev)) != 0 ||
        (rc = c->ctx_set(c->ctx)) != 0) {
        cu_fail(c, rc, "CUDA device 0");
        return rt_errf(e, "%s", c->err);
    }
    if (c->device_name(name, (int)name_size, c->dev) != 0)
        snprintf(name, name_size, "CUDA device 0");
    char from[64];
    if (load_module(c, from, sizeof from, e) != RT_OK)
        return RT_ERR;
    size_t total = 0;
    *free_bytes = 0;
    if ((rc = c->mem_info(free_bytes, &total)) != 0) {
        cu_fail(c, rc, "cuMemGetInfo");
        return rt_errf(e, "%s", c->err);
    }
    return RT_OK;
}

bool rt_device_parse(const char *s, RtDevice *out) {
    static const char *const names[] = {"cpu", "cuda", "auto"};
    for (int i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (RtDevice)i;
            return true;
        }
    return false;
}

int rt_cuda_open(RtCudaDriver *drv, char *name, size_t name_size, size_t *free_bytes, RtErr *e) {
    memset(drv, 0, sizeof *drv);
    if (!lathe_cuda_plan || !lathe_cuda_ptx)
        return rt_errf(e, "this executable holds no GPU code: compile with --target cuda");
    CuDriver *c = calloc(1, sizeof *c);
    if (!c)
        return rt_errf(e, "out of memory");
    c->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!c->lib) {
        rt_errf(e, "no CUDA driver (%s)", dlerror());
        free(c);
        return RT_ERR;
    }
    *drv = (RtCudaDriver){c, cu_alloc, cu_release, cu_to_device, cu_to_host, cu_copy, cu_launch, cu_sync, cu_error};
    if (load_symbols(c, e) != RT_OK || open_device(c, name, name_size, free_bytes, e) != RT_OK) {
        rt_cuda_close(drv);
        return RT_ERR;
    }
    return RT_OK;
}

void rt_cuda_close(RtCudaDriver *drv) {
    CuDriver *c = drv->ctx;
    if (!c)
        return;
    if (c->mod)
        c->module_unload(c->mod);
    if (c->ctx)
        c->ctx_release(c->dev);
    for (int i = 0; i < c->nkernels; i++)
        free(c->kernels[i].name);
    free(c->kernels);
    /* libcuda stays loaded: its threads may outlive the context, and unloading it gains nothing */
    free(c);
    memset(drv, 0, sizeof *drv);
}

/* ---------------------------------------------------------------- the device of a run */

/* What the graph entries run on once rt_device_select chose CUDA: LatheGraphFn carries no context, so the
   four entries below find the executor, each graph's arguments and a buffer for their sizes here. */
static struct {
    RtCudaDriver drv;
    RtCudaExec *x;
    const RtGraph *graphs[4];
    size_t *sizes[4];
    const char *prog;
} gpu;

static void run_on_gpu(int gi, void **args, int64_t n) {
    const RtGraph *g = gpu.graphs[gi];
    RtErr e = {{0}};
    for (int i = 0; i < g->nargs; i++) {
        int64_t count = 0;
        if (!rt_numel(&g->args[i], n, &count)) {
            rt_errf(&e, "CUDA: the %s graph's argument %s is too large at batch %lld", g->name, g->args[i].name,
                    (long long)n);
            goto failed;
        }
        gpu.sizes[gi][i] = (size_t)count * rt_dtype_size(g->args[i].dtype);
    }
    if (rt_cuda_exec_run(gpu.x, g->name, args, gpu.sizes[gi], n, &e) == RT_OK)
        return;
failed:
    /* a graph entry returns nothing: a device that fails mid-run ends it, with the executor's message */
    fprintf(stderr, "%s: error: %s\n", gpu.prog, e.msg);
    exit(1);
}

static void gpu_train(void **args, int64_t n, uint8_t *arena) { (void)arena, run_on_gpu(0, args, n); }
static void gpu_grads(void **args, int64_t n, uint8_t *arena) { (void)arena, run_on_gpu(1, args, n); }
static void gpu_eval(void **args, int64_t n, uint8_t *arena) { (void)arena, run_on_gpu(2, args, n); }
static void gpu_predict(void **args, int64_t n, uint8_t *arena) { (void)arena, run_on_gpu(3, args, n); }

bool rt_cuda_built(void) { return lathe_cuda_plan && lathe_cuda_ptx; }

/* The device bytes the executor holds at batch n: it shares one arena and one buffer per argument position
   among the graphs, each grown to the largest; false on overflow. */
static bool device_need(RtGraph *const gs[4], int64_t n, int64_t *out) {
    int64_t arena = 0, total = 0;
    int nargs = 0;
    for (int i = 0; i < 4; i++) {
        int64_t c, per_n;
        if (!gs[i]->present)
            continue;
        if (!rt_cuda_exec_arena(gpu.x, gs[i]->name, &c, &per_n) || (per_n > 0 && n > (INT64_MAX - c) / per_n))
            return false;
        if (c + per_n * n > arena)
            arena = c + per_n * n;
        if (gs[i]->nargs > nargs)
            nargs = gs[i]->nargs;
    }
    for (int a = 0; a < nargs; a++) {
        int64_t largest = 0;
        for (int i = 0; i < 4; i++) {
            int64_t count;
            if (!gs[i]->present || a >= gs[i]->nargs)
                continue;
            if (!rt_numel(&gs[i]->args[a], n, &count) || count > INT64_MAX / 8)
                return false;
            int64_t bytes = count * (int64_t)rt_dtype_size(gs[i]->args[a].dtype);
            if (bytes > largest)
                largest = bytes;
        }
        if (largest > INT64_MAX - total)
            return false;
        total += largest;
    }
    if (arena > INT64_MAX - total)
        return false;
    *out = arena + total;
    return true;
}

/* Out of memory, told before it happens: RT_ERR with the figures and the largest batch that fits when the
   device memory of the run at batch is more than the device has free. */
static int check_fit(RtGraph *const gs[4], int64_t batch, const char *name, size_t free_bytes, RtErr *e) {
    int64_t need, avail = free_bytes > (size_t)INT64_MAX ? INT64_MAX : (int64_t)free_bytes;
    if (batch < 1 || (device_need(gs, batch, &need) && need <= avail))
        return RT_OK;
    int64_t lo = 0, hi = batch - 1; /* the largest n in [1, batch) that fits, 0: none (need grows with n) */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2, v;
        if (device_need(gs, mid, &v) && v <= avail)
            lo = mid;
        else
            hi = mid - 1;
    }
    char need_s[32], free_s[32];
    rt_mem_text(device_need(gs, lo == 0 ? 1 : batch, &need) ? need : INT64_MAX, need_s, sizeof need_s);
    rt_mem_text(avail, free_s, sizeof free_s);
    if (lo == 0)
        return rt_errf(e, "out of device memory: the run needs %s of device memory even at batch 1 (the graphs' arena "
                          "and buffers), and %s has %s free", need_s, name, free_s);
    return rt_errf(e, "out of device memory: at batch %lld the run needs %s of device memory (the graphs' arena and "
                      "buffers), and %s has %s free; the largest batch that fits is %lld (--batch %lld)",
                   (long long)batch, need_s, name, free_s, (long long)lo, (long long)lo);
}

/* Opens the device and the executor and routes m's entries through them. */
static int route_to_gpu(RtManifest *m, int64_t batch, const char *prog, FILE *out, RtErr *e) {
    char name[256];
    size_t free_bytes = 0;
    if (rt_cuda_open(&gpu.drv, name, sizeof name, &free_bytes, e) != RT_OK)
        return RT_ERR;
    gpu.prog = prog;
    if (!(gpu.x = rt_cuda_exec_new(lathe_cuda_plan, &gpu.drv, e)))
        return RT_ERR;
    RtGraph *gs[4] = {&m->train, &m->grads, &m->eval, &m->predict};
    if (check_fit(gs, batch, name, free_bytes, e) != RT_OK)
        return RT_ERR;
    static const LatheGraphFn entries[4] = {gpu_train, gpu_grads, gpu_eval, gpu_predict};
    for (int i = 0; i < 4; i++)
        if (gs[i]->present && !(gpu.sizes[i] = calloc((size_t)gs[i]->nargs + 1, sizeof(size_t))))
            return rt_errf(e, "out of memory");
    for (int i = 0; i < 4; i++) /* only once nothing can fail: a CPU fallback keeps the CPU entries */
        if (gs[i]->present) {
            gpu.graphs[i] = gs[i];
            gs[i]->fn = entries[i];
        }
    fprintf(out, "device: cuda (%s, %.1f GiB free)\n", name, (double)free_bytes / (1024.0 * 1024.0 * 1024.0));
    return RT_OK;
}

int rt_device_select(RtManifest *m, const char *device, int64_t batch, const char *prog, FILE *out, RtErr *e) {
    RtDevice dev = rt_cuda_built() ? RT_DEVICE_AUTO : RT_DEVICE_CPU;
    if (device && !rt_device_parse(device, &dev))
        return rt_errf(e, "--device: cpu, cuda or auto, not '%s'", device);
    if (dev == RT_DEVICE_CPU) {
        if (device || rt_cuda_built())
            fprintf(out, "device: cpu\n");
        return RT_OK;
    }
    if (route_to_gpu(m, batch, prog, out, e) == RT_OK)
        return RT_OK;
    rt_device_release();
    if (dev == RT_DEVICE_CUDA)
        return RT_ERR;
    fprintf(out, "device: cpu (CUDA: %s)\n", e->msg);
    return RT_OK;
}

void rt_device_release(void) {
    if (gpu.x)
        rt_cuda_exec_free(gpu.x);
    rt_cuda_close(&gpu.drv);
    for (int i = 0; i < 4; i++)
        free(gpu.sizes[i]);
    memset(&gpu, 0, sizeof gpu);
}

void rt_cuda_print_info(FILE *out) {
    if (!rt_cuda_built()) {
        fprintf(out, "GPU code: none (compiled for the CPU; lathe compile --target cuda adds it)\n");
        return;
    }
    fprintf(out, "GPU code: cubins %s and PTX (compute_80, for other GPUs)\n",
            lathe_cuda_archs && lathe_cuda_archs[0] ? lathe_cuda_archs : "none");
}
