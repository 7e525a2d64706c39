#!/usr/bin/env bash
# Times each window op of one fashion_cnn training step at batch 64 (conv2d forward, its input and weight
# gradients, 2x2 max pooling forward and backward) through Lathe's kernels (bench/conv_kernels.c over
# runtime/kern_window.c, on Lathe's thread pool runtime/kern_pool.c) and through PyTorch's same ops
# (convolution_backward and max_pool2d_with_indices(_backward), what its autograd runs in training), at 1 and
# 2 threads, in this one run; prints milliseconds per op and the ratio torch / lathe (above 1: Lathe is
# faster), a column group per thread count. The machine may be shared: every number is the fastest of ROUNDS
# rounds of REPS calls each. BEFORE=old/kern_window.c adds a column for another version of the kernels (the
# file as it was before a change: git show HEAD:...).
# RULE=1 times instead the forward convolutions of fashion_cnn, lenet5 and resnet20 at 1 thread through
# im2col + GEMM and through the direct loops (kern_window.c built twice, -DKW_FORCE_PATH=2 and 1): the numbers
# behind kw_direct_ok's rule.
# usage: bench/conv_kernels.sh [f32|f64]   (ROUNDS=3 REPS=15 by default)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
prec=${1:-f32}
rounds=${ROUNDS:-3}
reps=${REPS:-15}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

# build NAME KERN_WINDOW_C [CFLAGS...]
build() {
  local name=$1 src=$2; shift 2
  cc -O2 "$@" -I"$root/runtime" "$root/bench/conv_kernels.c" "$src" "$root/runtime/kern_pool.c" -o "$work/$name" \
     -lopenblas -lpthread -lm
}

if [ -n "${RULE:-}" ]; then
  build im2col "$root/runtime/kern_window.c" -DKW_FORCE_PATH=2
  build direct "$root/runtime/kern_window.c" -DKW_FORCE_PATH=1
  for r in $(seq "$rounds"); do
    for c in im2col direct; do "$work/$c" 1 "$reps" "$prec" rule >>"$work/$c.out"; done
  done
  python3 - "$work" "$prec" <<'PY'
import sys
work, prec = sys.argv[1], sys.argv[2]
def best(path):
    m = {}
    for line in open(path):
        name, ms = line.split()
        m[name] = min(m.get(name, 1e9), float(ms))
    return m
a, d = best(f"{work}/im2col.out"), best(f"{work}/direct.out")
print(f"forward convolutions, batch 64, {prec}, 1 thread, ms (fastest of rounds); the direct loops run only")
print("with one input channel and stride 1 (elsewhere both columns are im2col + GEMM)")
print(f"{'conv':<20} {'im2col':>8} {'direct':>8} {'im2col/direct':>14}")
for op in a:
    if op != "total":
        print(f"{op:<20} {a[op]:>8.3f} {d[op]:>8.3f} {a[op] / d[op]:>14.2f}")
PY
  exit 0
fi

build lathe "$root/runtime/kern_window.c"
cols=(lathe)
if [ -n "${BEFORE:-}" ]; then
  # the old file includes itself by name: it must be called kern_window.c, beside nothing else
  mkdir -p "$work/before"; cp "$BEFORE" "$work/before/kern_window.c"
  build before_bin "$work/before/kern_window.c"
  cols=(before lathe)
fi

cat >"$work/torch_ops.py" <<'PY'
import sys, time, torch
import torch.nn.functional as F
threads, reps = int(sys.argv[1]), int(sys.argv[2])
dt = torch.float64 if sys.argv[3] == "f64" else torch.float32
torch.set_num_threads(threads)
torch.manual_seed(0)
aten, n = torch.ops.aten, 64
def rand(*s, relu=False):
    x = torch.rand(*s, dtype=dt) * 2 - 1
    return x.clamp(min=0) if relu else x
def conv_bwd(gy, x, w, mask):
    return aten.convolution_backward(gy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)
x1, w1, gy1 = rand(n, 1, 28, 28), rand(32, 1, 3, 3), rand(n, 32, 28, 28)
a1, g1 = rand(n, 32, 28, 28, relu=True), rand(n, 32, 14, 14)
x2, w2, gy2 = rand(n, 32, 14, 14, relu=True), rand(64, 32, 3, 3), rand(n, 64, 14, 14)
a2, g2 = rand(n, 64, 14, 14, relu=True), rand(n, 64, 7, 7)
k = [2, 2]
i1, i2 = aten.max_pool2d_with_indices(a1, k, k)[1], aten.max_pool2d_with_indices(a2, k, k)[1]
ops = [
    ("conv1_fwd", lambda: F.conv2d(x1, w1, padding=1)),
    ("conv1_bwd_weight", lambda: conv_bwd(gy1, x1, w1, [False, True, False])),
    ("pool1_fwd", lambda: aten.max_pool2d_with_indices(a1, k, k)),
    ("pool1_bwd", lambda: aten.max_pool2d_with_indices_backward(g1, a1, k, k, [0, 0], [1, 1], False, i1)),
    ("conv2_fwd", lambda: F.conv2d(x2, w2, padding=1)),
    ("conv2_bwd_input", lambda: conv_bwd(gy2, x2, w2, [True, False, False])),
    ("conv2_bwd_weight", lambda: conv_bwd(gy2, x2, w2, [False, True, False])),
    ("pool2_fwd", lambda: aten.max_pool2d_with_indices(a2, k, k)),
    ("pool2_bwd", lambda: aten.max_pool2d_with_indices_backward(g2, a2, k, k, [0, 0], [1, 1], False, i2)),
]
total = 0
with torch.no_grad():
    for name, f in ops:
        f()
        best = 1e9
        for _ in range(reps):
            t0 = time.perf_counter()
            f()
            best = min(best, (time.perf_counter() - t0) * 1e3)
        total += best
        print(f"{name} {best:.3f}")
print(f"total {total:.3f}")
PY

# run NAME THREADS: one round of one column, "op ms" lines appended to $work/NAME.THREADS
run() {
  case $1 in
    lathe) "$work/lathe" "$2" "$reps" "$prec" ;;
    before) "$work/before_bin" "$2" "$reps" "$prec" ;;
    torch) OPENBLAS_NUM_THREADS=$2 OMP_NUM_THREADS=$2 /usr/bin/python3 "$work/torch_ops.py" "$2" "$reps" "$prec" ;;
  esac >>"$work/$1.$2"
}

for t in 1 2; do
  for r in $(seq "$rounds"); do
    for c in "${cols[@]}" torch; do run "$c" "$t"; done
  done
done

python3 - "$work" "$prec" "${cols[@]}" <<'PY'
import sys
work, prec, cols = sys.argv[1], sys.argv[2], sys.argv[3:] + ["torch"]
def best(path):
    m = {}
    for line in open(path):
        name, ms = line.split()
        m[name] = min(m.get(name, 1e9), float(ms))
    return m
res = {t: {c: best(f"{work}/{c}.{t}") for c in cols} for t in (1, 2)}
print(f"fashion_cnn window ops, batch 64, {prec}, ms (fastest of rounds); ratio = torch / lathe; "
      "N thr: Lathe on a pool of N threads, PyTorch with N threads")
group = lambda t: "".join(f" {c + '@' + str(t):>9}" for c in cols) + f" {'ratio@' + str(t):>8}"
print(f"{'op':<18}" + group(1) + " |" + group(2))
for op in res[1]["lathe"]:
    row = f"{op:<18}"
    for t in (1, 2):
        r = res[t]
        row += "".join(f" {r[c][op]:>9.3f}" for c in cols) + f" {r['torch'][op] / r['lathe'][op]:>8.2f}"
        row += " |" if t == 1 else ""
    print(row)
PY
