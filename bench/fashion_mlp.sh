#!/usr/bin/env bash
# Trains FashionMNIST epochs of the Quickstart MLP at batch 64 (BENCH_BATCH) with Lathe, with the PyTorch
# reference (../shared/reference/torch_fashion.py) and with its GEMMs alone through OpenBLAS (bench/gemm_mlp.c, the
# GEMM-bound limit), all in this one run, at 1 and 2 threads; prints samples/s of the fastest epoch of each
# and the ratios. Debian's PyTorch does not pass torch.set_num_threads on to OpenBLAS, so its "1 thread"
# runs the GEMMs on every core: the reference runs twice, as given and with OPENBLAS_NUM_THREADS set to the
# thread count, and the faster of the two is counted.
# usage: bench/fashion_mlp.sh [BUILD_DIR]   (default: build; BENCH_EPOCHS=3 BENCH_BATCH=64)
# bench/cpu_speed.sh runs every case of the CPU-speed issue in one go.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
epochs=${BENCH_EPOCHS:-3}
batch=${BENCH_BATCH:-64}
ref=${LATHE_REFERENCE:-$root/../shared/reference/torch_fashion.py}
data=/usr/share/datasets/fashion-mnist
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$build/bin/lathe" compile "$root/models/fashion_mlp.lathe" -o "$work/mlp"
cc -O2 -pthread "$root/bench/gemm_mlp.c" -o "$work/gemm_mlp" -lopenblas
sps() { python3 -c 'import json,sys; print(round(max(json.loads(l)["samples_per_s"] for l in sys.stdin if l.strip())))'; }
printf '%-22s %7s %10s %10s %10s %10s %8s %9s\n' case threads lathe torch torch_pin gemm_only vs_torch vs_gemm
for t in 1 2; do
  "$work/mlp" train --data "$data" --epochs "$epochs" --batch "$batch" --no-shuffle --threads "$t" \
    --log-json "$work/l$t.jsonl" >/dev/null
  lathe=$(sps <"$work/l$t.jsonl")
  torch=$(/usr/bin/python3 "$ref" --model mlp --batch "$batch" --epochs "$epochs" --threads "$t" --no-shuffle | sps)
  pinned=$(OPENBLAS_NUM_THREADS=$t /usr/bin/python3 "$ref" --model mlp --batch "$batch" --epochs "$epochs" \
           --threads "$t" --no-shuffle | sps)
  gemm=$(for e in $(seq "$epochs"); do "$work/gemm_mlp" "$t" "$batch" 60000 784 512 512 10; done | sps)
  python3 - "$t" "$batch" "$lathe" "$torch" "$pinned" "$gemm" <<'PY'
import sys
t, batch, lathe, torch, pinned, gemm = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
best = max(torch, pinned)
print("%-22s %7s %10.0f %10.0f %10.0f %10.0f %7.2fx %8.0f%%" % (f"fashion_mlp b{batch} epoch", t, lathe, torch,
      pinned, gemm, lathe / best, 100 * lathe / gemm))
PY
done
