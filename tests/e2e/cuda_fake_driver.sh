# The produced executable's Driver API side (runtime/cuda_driver.c) against a fake libcuda.so.1 built here (host
# memory, no kernels; found through LD_LIBRARY_PATH): "no CUDA device" from cuInit, a device too old, the
# cubin chosen for an sm_90 device and the PTX for an sm_89 one, and the graph entries routed through the
# executor down to cuLaunchKernel, whose failure ends the run with one message. A real GPU is not needed
# and not used. Skips where NVRTC or a C compiler is absent.
source "$(dirname "$0")/common.bash"
MODEL=$LATHE_SOURCE_DIR/models/linear_regression.lathe
command -v cc >/dev/null || skip "no C compiler (cc) to build the fake driver"
if ! "$LATHE" compile "$MODEL" --target cuda --cuda-arch sm_80,sm_90 -O0 -o lr 2>"$WORK/err"; then
  grep -q 'NVRTC (libnvrtc.so) not found\|cannot open NVRTC' "$WORK/err" && skip "$(head -1 "$WORK/err")"
  cat "$WORK/err"; fail "--target cuda"
fi

mkdir fake
cat >fake/cuda.c <<'C'
/* FAKE_CUDA: nodevice | sm75 | sm89 | sm90 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static const char *mode(void) { const char *m = getenv("FAKE_CUDA"); return m ? m : "sm90"; }
int cuInit(unsigned f) { (void)f; return strcmp(mode(), "nodevice") == 0 ? 100 : 0; }
int cuDeviceGetCount(int *n) { *n = 1; return 0; }
int cuDeviceGet(int *d, int i) { *d = i; return 0; }
int cuDeviceGetName(char *s, int n, int d) { (void)d; snprintf(s, (size_t)n, "Fake GPU"); return 0; }
int cuDeviceGetAttribute(int *v, int a, int d) {
  (void)d; int cc = atoi(mode() + 2); *v = a == 75 ? cc / 10 : cc % 10; return 0;
}
int cuDevicePrimaryCtxRetain(void **c, int d) { (void)d; *c = (void *)1; return 0; }
int cuDevicePrimaryCtxRelease_v2(int d) { (void)d; return 0; }
int cuCtxSetCurrent(void *c) { (void)c; return 0; }
int cuModuleLoadDataEx(void **m, const void *image, unsigned n, int *o, void **v) {
  (void)n, (void)o, (void)v;
  fprintf(stderr, "fake: module from %s\n", memcmp(image, "\x7f" "ELF", 4) == 0 ? "a cubin" : "PTX");
  *m = (void *)2; return 0;
}
int cuModuleUnload(void *m) { (void)m; return 0; }
int cuModuleGetFunction(void **f, void *m, const char *name) { (void)m; *f = (void *)name; return 0; }
int cuMemAlloc_v2(unsigned long long *p, size_t n) { *p = (unsigned long long)(size_t)calloc(1, n); return *p ? 0 : 2; }
int cuMemFree_v2(unsigned long long p) { free((void *)(size_t)p); return 0; }
int cuMemcpyHtoD_v2(unsigned long long d, const void *s, size_t n) { memcpy((void *)(size_t)d, s, n); return 0; }
int cuMemcpyDtoH_v2(void *d, unsigned long long s, size_t n) { memcpy(d, (void *)(size_t)s, n); return 0; }
int cuMemcpyDtoD_v2(unsigned long long d, unsigned long long s, size_t n) {
  memmove((void *)(size_t)d, (void *)(size_t)s, n); return 0;
}
int cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                   unsigned sh, void *st, void **params, void **extra) {
  (void)f, (void)gx, (void)gy, (void)gz, (void)bx, (void)by, (void)bz, (void)sh, (void)st, (void)params, (void)extra;
  return 98; /* CUDA_ERROR_INVALID_SOURCE: kernels do not run here */
}
int cuCtxSynchronize(void) { return 0; }
/* FAKE_CUDA_FREE: the free bytes the device reports (default 1.5 GiB) */
int cuMemGetInfo_v2(size_t *f, size_t *t) {
  const char *v = getenv("FAKE_CUDA_FREE");
  *f = v ? (size_t)strtoull(v, NULL, 10) : (size_t)3 << 29;
  *t = (size_t)1 << 31;
  return 0;
}
int cuGetErrorString(int rc, const char **s) { *s = rc == 98 ? "the fake driver runs no kernels" : "fake error"; return 0; }
C
cc -shared -fPIC -o fake/libcuda.so.1 fake/cuda.c || fail "cannot build the fake libcuda.so.1"
printf 'x,y\n' >linear.csv
for i in $(seq 0 31); do printf '%s,%s\n' "$i" "$((2 * i))" >>linear.csv; done
export LD_LIBRARY_PATH=$WORK/fake

FAKE_CUDA=nodevice expect_fail ./lr train --device cuda --epochs 1
expect_msg '^lr: error: no CUDA device$'
FAKE_CUDA=nodevice ./lr train --device auto --epochs 1 >/dev/null 2>err.txt || { cat err.txt; fail "auto, no device"; }
grep -q '^device: cpu (CUDA: no CUDA device)$' err.txt || { cat err.txt; fail "auto without a device"; }

FAKE_CUDA=sm75 expect_fail ./lr train --device cuda --epochs 1
expect_msg 'compute capability 7.5; the GPU code needs 8.0'

# sm_90: its cubin; the run reaches the executor's first launch, which fails with the driver's message
FAKE_CUDA=sm90 expect_fail ./lr train --device cuda --epochs 1
grep -q '^fake: module from a cubin$' "$WORK/err" || { cat "$WORK/err"; fail "sm_90 did not load its cubin"; }
grep -q '^device: cuda (Fake GPU, 1.5 GiB free)$' "$WORK/err" || { cat "$WORK/err"; fail "no device line"; }
expect_msg "^lr: error: CUDA graph 'train': kernel .*cuLaunchKernel.*the fake driver runs no kernels"
[ "$(grep -c 'error:' "$WORK/err")" -eq 1 ] || { cat "$WORK/err"; fail "not one error"; }

# sm_89: no cubin for it, so the PTX
FAKE_CUDA=sm89 expect_fail ./lr eval --device cuda --weights none.safetensors
grep -q '^fake: module from PTX$' "$WORK/err" || { cat "$WORK/err"; fail "sm_89 did not load the PTX"; }

# out of device memory, told before the first step: the figures and the largest batch that fits; under
# auto, the CPU instead (these sizes are linear_regression's at batch 32: a few KiB)
FAKE_CUDA_FREE=1500 expect_fail ./lr train --device cuda --epochs 1 --batch 32
expect_msg '^lr: error: out of device memory: at batch 32 the run needs [0-9.]+ KiB of device memory .*Fake GPU has 1.5 KiB free; the largest batch that fits is [0-9]+ \(--batch [0-9]+\)$'
fits=$(sed -n 's/.*the largest batch that fits is \([0-9]*\) .*/\1/p' "$WORK/err")
[ "$fits" -ge 1 ] && [ "$fits" -lt 32 ] || fail "largest batch $fits"
FAKE_CUDA_FREE=1500 expect_fail ./lr train --device cuda --epochs 1 --batch "$fits"
expect_msg 'cuLaunchKernel' # it fits: the run reaches the first launch
FAKE_CUDA_FREE=1 expect_fail ./lr train --device cuda --epochs 1
expect_msg '^lr: error: out of device memory: the run needs [0-9]+ B of device memory even at batch 1'
FAKE_CUDA_FREE=1 ./lr train --device auto --epochs 1 >/dev/null 2>err.txt || { cat err.txt; fail "auto, no room"; }
grep -q '^device: cpu (CUDA: out of device memory: ' err.txt || { cat err.txt; fail "auto without room"; }

FAKE_CUDA=sm90 ./lr info >info.txt || fail "info"
tail -1 info.txt | grep -q '^device: cuda (Fake GPU' || { cat info.txt; fail "info does not say the device"; }
echo "ok"
