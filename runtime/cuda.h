/* cuda.h: the GPU side of a `lathe compile --target cuda` executable (DESIGN.md decision 7).

   Such an executable holds, beside its CPU code, the CUDA kernels as PTX (and cubins) and the launch plan
   (codegen/cuda/cuda.h, cg_cuda_plan_json), in the symbols below. At start-up `--device cpu|cuda|auto`
   chooses: cuda needs libcuda.so.1 (opened with dlopen, never linked) and a device; auto takes cuda where
   both are found and says which device it chose; cpu never touches CUDA.

   The executor runs one graph of the plan as the CPU entry does (lathe_rt.h's LatheGraphFn semantics):
   it copies the host arguments in, launches the plan's kernels, does its copies and copies the outputs (and
   updated parameters and state) back. It runs on any RtCudaDriver: the Driver API's (cuda_driver.c) or the
   tests' host emulation (tests/cuda/emu), which is how the plan and the kernels are checked without a GPU. */
#ifndef LATHE_RT_CUDA_H
#define LATHE_RT_CUDA_H

#include "rt.h"

#include <stddef.h>
#include <stdint.h>

/* Defined (weak) by a --target cuda executable's generated object; NULL/0 elsewhere. */
extern const char lathe_cuda_plan[] __attribute__((weak));       /* the plan's JSON, NUL-terminated */
extern const unsigned char lathe_cuda_ptx[] __attribute__((weak)); /* PTX text, NUL-terminated */
extern const char lathe_cuda_archs[] __attribute__((weak));      /* "sm_80,sm_90": the cubins' archs */
/* The cubins, one per arch of lathe_cuda_archs in its order, then {NULL, NULL, 0} (codegen/llvm/cudadata.c) */
typedef struct RtCudaCubin {
    const char *arch; /* "sm_90" */
    const unsigned char *bytes;
    uint64_t size;
} RtCudaCubin;
extern const RtCudaCubin lathe_cuda_cubins[] __attribute__((weak));

/* A device as the executor sees it. Device addresses are uint64_t (CUdeviceptr). Each function returns 0 on
   success, else non-zero with a message from error(). */
typedef struct RtCudaDriver {
    void *ctx;
    int (*alloc)(void *ctx, size_t bytes, uint64_t *dptr);
    void (*release)(void *ctx, uint64_t dptr);
    int (*to_device)(void *ctx, uint64_t dst, const void *src, size_t bytes);
    int (*to_host)(void *ctx, void *dst, uint64_t src, size_t bytes);
    int (*copy)(void *ctx, uint64_t dst, uint64_t src, size_t bytes);
    /* name<<<grid, block>>>(params): params as cuLaunchKernel's kernelParams (each points at one argument) */
    int (*launch)(void *ctx, const char *name, unsigned grid, unsigned block, void **params);
    int (*sync)(void *ctx);
    const char *(*error)(void *ctx);
} RtCudaDriver;

typedef struct RtCudaExec RtCudaExec;

/* Reads the plan (its JSON text); NULL with e set when it is malformed. */
RtCudaExec *rt_cuda_exec_new(const char *plan_json, const RtCudaDriver *drv, RtErr *e);
void rt_cuda_exec_free(RtCudaExec *x);
/* Runs graph `name` ("train", ...) for n samples on args (host pointers, as the CPU entry takes them; each
   argument's byte size in sizes, N bound to n). The device arena and argument buffers are allocated on the
   first call and grown as n grows. RT_OK, or an error naming the kernel or copy that failed. */
int rt_cuda_exec_run(RtCudaExec *x, const char *name, void **args, const size_t *sizes, int64_t n, RtErr *e);
/* Graph name's arena in the plan: arena_c + per_n * n bytes; false when the plan has no such graph. */
bool rt_cuda_exec_arena(const RtCudaExec *x, const char *name, int64_t *arena_c, int64_t *per_n);

/* ---------------------------------------------------------------- the device (cuda_driver.c) */
typedef enum { RT_DEVICE_CPU, RT_DEVICE_CUDA, RT_DEVICE_AUTO } RtDevice;

/* Parses "cpu", "cuda", "auto"; false for anything else. */
bool rt_device_parse(const char *s, RtDevice *out);
/* Opens libcuda.so.1 and device 0 and fills drv with the Driver API's functions (module from lathe_cuda_ptx,
   one context); RT_OK, else e says why in one line ("no CUDA driver (libcuda.so.1: cannot open shared
   object file)", "no CUDA device", "this executable holds no GPU code: compile with --target cuda"). name
   gets the device's name ("NVIDIA H100 80GB HBM3") and free_bytes its free memory. */
int rt_cuda_open(RtCudaDriver *drv, char *name, size_t name_size, size_t *free_bytes, RtErr *e);
void rt_cuda_close(RtCudaDriver *drv);

/* Whether this executable holds GPU code (lathe compile --target cuda). */
bool rt_cuda_built(void);
/* The device of a run: device ("cpu", "cuda", "auto"; NULL: auto where the executable holds GPU code, else
   cpu). Prints one line to out: "device: cuda (NAME, X GiB free)", after which m's graph entries (RtGraph.fn)
   run through the executor on the device; "device: cpu (CUDA: WHY)" for auto without one; "device: cpu"
   (nothing where the executable holds no GPU code and device is NULL). RT_ERR with e set (one line) when
   cuda was asked for and cannot be had. Out of memory is told before it happens, as on the CPU (memcheck.h):
   when the device memory the executor will hold at batch (the largest graph's arena and argument buffers)
   is more than the device has free, cuda is refused with the figures and the largest batch that fits, and
   auto says so and runs on the CPU. prog names the executable in the message of a failure inside a graph,
   which ends the process (status 1). */
int rt_device_select(RtManifest *m, const char *device, int64_t batch, const char *prog, FILE *out, RtErr *e);
/* Frees what rt_device_select opened (nothing for the CPU). */
void rt_device_release(void);
/* `info`'s line on the GPU code: "GPU code: cubins sm_80,sm_90 and PTX (compute_80)", or none. */
void rt_cuda_print_info(FILE *out);

#endif
