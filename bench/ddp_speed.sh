#!/usr/bin/env bash
# Data-parallel training on this machine: one FashionMNIST epoch (batch 64, the global batch) of the
# Quickstart MLP and the CNN with K = 1 and K = 2 processes of one thread each, Lathe (an executable
# compiled with --mpi, under mpirun) beside PyTorch DDP on gloo (../shared/reference/torch_fashion_ddp.py
# --procs K), in this one run. Prints samples/s of each, Lathe's K=2 over K=1, and Lathe over PyTorch at
# each K. Best of BENCH_RUNS (default 1) runs each; BENCH_MODELS picks models (default "mlp cnn").
# usage: bench/ddp_speed.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
runs=${BENCH_RUNS:-1}
models=${BENCH_MODELS:-mlp cnn}
data=/usr/share/datasets/fashion-mnist
ref=$root/../shared/reference/torch_fashion_ddp.py
[ -f "$ref" ] || ref=/work/shared/reference/torch_fashion_ddp.py
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
best() { python3 -c 'import json,sys; print(round(max(json.loads(l)["samples_per_s"] for l in sys.stdin if l.strip().startswith("{"))))'; }
printf '%-5s %2s %12s %12s %9s %12s\n' model K lathe pytorch_ddp vs_torch lathe_vs_K1
for m in $models; do
  src=$root/models/fashion_$m.lathe
  "$build/bin/lathe" compile "$src" --mpi -o "$work/$m"
  declare -A L=() T=()
  for K in 1 2; do
    L[$K]=$(for r in $(seq "$runs"); do
              mpirun --bind-to none -np "$K" "$work/$m" train --data "$data" --epochs 1 --threads 1 \
                --log-json "$work/$m$K$r.jsonl" < /dev/null > /dev/null
              cat "$work/$m$K$r.jsonl"; done | best)
    T[$K]=$(for r in $(seq "$runs"); do
              (cd "$(dirname "$ref")" && /usr/bin/python3 "$ref" --model "$m" --procs "$K" 2>/dev/null); done | best)
    python3 -c "import sys; l, t, l1 = map(float, sys.argv[3:6]); print('%-5s %2s %12.0f %12.0f %8.2fx %11.2fx' % (sys.argv[1], sys.argv[2], l, t, l / t, l / l1))" \
      "$m" "$K" "${L[$K]}" "${T[$K]}" "${L[1]}"
  done
done
