# lathe compile --target cuda without a GPU (docs/gpu.md): every model of models/ compiles, its CUDA C through
# NVRTC, into an executable that links no CUDA library; that executable's --device cuda fails with one line,
# --device auto trains on the CPU and says so; --emit cuda writes a .cu that NVRTC compiles on its own; bad
# --target, --cuda-arch and --precision values are clear errors. Skips where NVRTC is not installed.
#
# Every model is compiled for sm_80 and sm_90 (two NVRTC runs: the sm_80 one also gives the PTX). NVRTC takes
# 3-17 s per model and arch on this machine (resnet20, vgg11_bn and vit_tiny the longest), so this test runs
# in the plain build only (label slow). The CPU side is compiled at -O0, which the GPU code does not depend on.
# Each model's NVRTC time is printed.
source "$(dirname "$0")/common.bash"
MODELS=$LATHE_SOURCE_DIR/models


# NVRTC present? (the message names where it looked)
if ! "$LATHE" compile "$MODELS/linear_regression.lathe" --target cuda -O0 -o lr 2>"$WORK/err"; then
  grep -q 'NVRTC (libnvrtc.so) not found\|cannot open NVRTC' "$WORK/err" && skip "$(head -1 "$WORK/err")"
  cat "$WORK/err"; fail "linear_regression --target cuda"
fi

# ---- every model
failed=""
for m in "$MODELS"/*.lathe; do
  name=$(basename "$m" .lathe)
  [ "$name" = linear_regression ] && continue
  if LATHE_CUDA_TIMES=1 "$LATHE" compile "$m" --target cuda --cuda-arch sm_80,sm_90 -O0 -o "$name" 2>"$WORK/err"; then
    grep '^lathe: NVRTC:' "$WORK/err" || true
    continue
  fi
  cat "$WORK/err"
  failed="$failed $name"
done
[ -z "$failed" ] || fail "--target cuda failed for:$failed"

# ---- the executable: no CUDA library linked, the GPU code embedded, the device chosen at start-up
if command -v ldd >/dev/null; then
  ldd lr >"$WORK/ldd" || fail "ldd lr"
  ! grep -i -E 'libcuda|libnvrtc|libcudart' "$WORK/ldd" || fail "lr links a CUDA library: $(cat "$WORK/ldd")"
fi
if command -v nm >/dev/null; then
  for s in lathe_cuda_plan lathe_cuda_ptx lathe_cuda_archs lathe_cuda_cubins lathe_train; do
    nm lr | grep -E " [TDR] $s\$" >/dev/null || fail "lr does not define $s"
  done
fi
./lr info >info.txt || fail "lr info"
grep -q '^GPU code: cubins sm_80,sm_90' info.txt || { cat info.txt; fail "info does not list the cubins"; }

printf 'x,y\n' >linear.csv
for i in $(seq 0 63); do printf '%s,%s\n' "$i" "$((3 * i + 1))" >>linear.csv; done
if [ -e /dev/nvidiactl ]; then
  echo "note: a GPU is present: the no-GPU checks of --device are skipped"
else
  expect_fail ./lr train --device cuda --epochs 1
  expect_msg '^lr: error: (no CUDA driver|no CUDA device)'
  [ "$(wc -l <"$WORK/err")" -eq 1 ] || { cat "$WORK/err"; fail "--device cuda: not one line"; }
  ./lr train --device auto --epochs 2 >out.txt 2>err.txt || { cat err.txt; fail "--device auto"; }
  grep -q '^device: cpu (CUDA: no CUDA' err.txt || { cat err.txt; fail "--device auto does not say it chose the CPU"; }
  grep -q -i 'epoch' out.txt || { cat out.txt; fail "--device auto did not train"; }
  ./lr train --epochs 1 >/dev/null 2>err.txt || { cat err.txt; fail "the default device (auto)"; }
  grep -q '^device: cpu (CUDA:' err.txt || fail "the default device of a --target cuda executable is not auto"
  if [ -x fashion_mlp ] && [ -f "$DATA/train-images-idx3-ubyte.gz" ]; then
    ./fashion_mlp train --device auto --data "$DATA" --limit 512 --epochs 1 >out.txt 2>err.txt ||
      { cat err.txt; fail "fashion_mlp --device auto"; }
    grep -q '^device: cpu (CUDA:' err.txt || fail "fashion_mlp --device auto does not say it chose the CPU"
  fi
fi
./lr train --device cpu --epochs 1 >/dev/null 2>err.txt || fail "--device cpu"
grep -q '^device: cpu$' err.txt || fail "--device cpu does not say so"
expect_fail ./lr train --device gpu
expect_msg "--device: cpu, cuda or auto, not 'gpu'"

# a CPU executable: --device cuda says how to get GPU code
"$LATHE" compile "$MODELS/linear_regression.lathe" -O0 -o lr_cpu || fail "--target cpu"
expect_fail ./lr_cpu train --device cuda --epochs 1
expect_msg 'holds no GPU code: compile with --target cuda'
./lr_cpu train --epochs 1 >/dev/null 2>err.txt || fail "lr_cpu train"
[ ! -s err.txt ] || { cat err.txt; fail "a CPU executable prints a device line by default"; }

# ---- --emit cuda: a .cu that NVRTC compiles by itself (through ctypes, not lathe's code)
"$LATHE" compile "$MODELS/linear_regression.lathe" --emit cuda --precision fp32 -o lr.cu || fail "--emit cuda"
/usr/bin/python3 - lr.cu <<'PY' || fail "NVRTC does not compile lr.cu"
import ctypes, glob, os, sys
lib = next((p for p in [os.environ.get("LATHE_NVRTC", "")] + glob.glob("/usr/local/cuda/lib64/libnvrtc.so*") if p and os.path.exists(p)), "libnvrtc.so")
nv = ctypes.CDLL(lib)
src = open(sys.argv[1], "rb").read()
prog = ctypes.c_void_p()
assert nv.nvrtcCreateProgram(ctypes.byref(prog), src, b"lr.cu", 0, None, None) == 0
inc = os.path.join(os.path.dirname(os.path.realpath(lib)), "..", "include")
opts = [b"--gpu-architecture=sm_90", b"--std=c++17", b"-default-device", ("-I" + inc).encode()]
rc = nv.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
size = ctypes.c_size_t()
nv.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
log = ctypes.create_string_buffer(size.value)
nv.nvrtcGetProgramLog(prog, log)
if rc != 0:
    sys.exit("NVRTC: " + log.value.decode())
nv.nvrtcGetCUBINSize(prog, ctypes.byref(size))
print(f"lr.cu: {len(src)} bytes of CUDA C, a {size.value}-byte sm_90 cubin")
PY

# ---- usage errors: one message each, status 2, nothing written
M=$MODELS/linear_regression.lathe
expect_fail "$LATHE" compile "$M" --target gpu -o x
expect_msg "--target takes cpu or cuda, not 'gpu'"
expect_fail "$LATHE" compile "$M" --target cuda --cuda-arch sm_70 -o x
expect_msg "--cuda-arch takes .* not 'sm_70'"
expect_fail "$LATHE" compile "$M" --target cuda --cuda-arch sm_80,,sm_90 -o x
expect_msg "--cuda-arch takes .* not ''"
expect_fail "$LATHE" compile "$M" --target cuda --cuda-arch sm_90,sm_90 -o x
expect_msg "--cuda-arch names sm_90 twice"
expect_fail "$LATHE" compile "$M" --target cuda --precision fp16 -o x
expect_msg "--precision takes fp32 or tf32, not 'fp16'"
expect_fail "$LATHE" compile "$M" --cuda-arch sm_90 -o x
expect_msg "--cuda-arch goes with --target cuda"
expect_fail "$LATHE" compile "$M" --target cuda --emit lib -o x
expect_msg "--target cuda makes an executable"
rc=0; "$LATHE" compile "$M" --target cuda --precision fp16 -o x 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "a bad --precision should exit 2, not $rc"
[ ! -e x ] || fail "a usage error wrote x"
echo "ok"
