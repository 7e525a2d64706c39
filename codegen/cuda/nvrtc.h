/* nvrtc.h: CUDA C to PTX and cubins through NVRTC (DESIGN.md decision 7). libnvrtc is opened with dlopen,
   never linked, so lathe builds and runs where CUDA is absent and only --target cuda and --emit cuda's check
   need it. The PTX is for compute_80 (any later GPU JIT-compiles it); a cubin is made per asked arch. */
#ifndef LATHE_CG_NVRTC_H
#define LATHE_CG_NVRTC_H

#include "../codegen.h"

#include <stddef.h>

#define CG_NVRTC_MAX_ARCHS 8

/* The archs of the cubins, as --cuda-arch gives them ("sm_80,sm_90"), each "sm_" and two or three digits,
   each at least sm_80 (TF32 tensor cores), none twice. */
typedef struct CgCudaArchs {
    int n;
    char name[CG_NVRTC_MAX_ARCHS][8];
} CgCudaArchs;

/* Parses list into out; false with why (one line, for the user) filled. */
bool cg_cuda_archs_parse(const char *list, CgCudaArchs *out, char *why, size_t why_size);
/* "sm_80,sm_90" (in a) */
char *cg_cuda_archs_text(Arena *a, const CgCudaArchs *archs);

typedef struct CgCudaImage {
    const char *arch;     /* "sm_90" */
    unsigned char *bytes; /* the ELF cubin, in the Arena given */
    size_t size;
} CgCudaImage;

typedef struct CgCudaBinary {
    char *ptx; /* NUL-terminated, in the Arena given */
    size_t ptx_size; /* without the NUL */
    int ncubins;
    CgCudaImage cubins[CG_NVRTC_MAX_ARCHS];
} CgCudaBinary;

/* Whether NVRTC can be opened; when not, why says where it looked (one line). Opens it once per process. */
bool cg_nvrtc_available(char *why, size_t why_size);
/* "NVRTC 13.0 (/usr/local/cuda/lib64/libnvrtc.so.13)" into buf; false when NVRTC cannot be opened. */
bool cg_nvrtc_describe(char *buf, size_t size);

/* Compiles source (named name in NVRTC's messages, e.g. "model.cu") to PTX for compute_80, and to a cubin
   for each of archs when archs is not NULL. A compile error is reported at the model line that the source's
   #line directives give (FILE:LINE: error: CUDA C: ...), else at name's line; false after reporting. */
bool cg_nvrtc_compile(Arena *a, const char *source, const char *name, const CgCudaArchs *archs, CgCudaBinary *out,
                      Diag *d);

/* Writes an object file for the host (CPU per o) defining runtime/cuda.h's lathe_cuda_plan (plan_json),
   lathe_cuda_ptx, lathe_cuda_archs (archs, "sm_80,sm_90") and lathe_cuda_cubins from bin, to be linked beside
   the model's object (codegen/llvm/cudadata.c). */
bool cg_llvm_emit_cuda_data(const CgOptions *o, const char *plan_json, const CgCudaBinary *bin, const char *archs,
                            const char *path, Diag *d);

#endif
