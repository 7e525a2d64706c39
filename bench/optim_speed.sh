#!/usr/bin/env bash
# Training samples/s of the Quickstart MLP (batch 64, the first BENCH_LIMIT FashionMNIST images, one epoch)
# with each optimizer, Lathe beside PyTorch in this one run, at BENCH_THREADS threads (default 2). Lathe's
# binary is compiled once with the model file's SGD; every other optimizer is chosen with --set and runs on
# the grads graph and the runtime's optimizer (runtime/optim.c); plain SGD runs fused into the train step.
# PyTorch runs at 1 and BENCH_THREADS threads, as given and with OPENBLAS_NUM_THREADS pinned; its fastest
# counts. Best of BENCH_RUNS (2) for each.
# usage: bench/optim_speed.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
limit=${BENCH_LIMIT:-20000}
threads=${BENCH_THREADS:-2}
runs=${BENCH_RUNS:-2}
data=/usr/share/datasets/fashion-mnist
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$build/bin/lathe" compile "$root/models/fashion_mlp.lathe" -o "$work/mlp"
sps() { python3 -c 'import json,sys; print(round(max(json.loads(l)["samples_per_s"] for l in sys.stdin if l.strip())))'; }
declare -A recipe=(
  [sgd]='SGD(lr = 0.01)' [sgd_momentum]='SGD(lr = 0.01, momentum = 0.9)' [adam]='Adam(lr = 1e-3)'
  [adamw]='AdamW(lr = 1e-3)' [rmsprop]='RMSprop(lr = 1e-3)' [adagrad]='Adagrad(lr = 1e-2)'
)
printf '%-14s %8s %10s %12s %9s\n' optimizer threads lathe torch_best vs_torch
for o in sgd sgd_momentum adam adamw rmsprop adagrad; do
  lathe=$(for r in $(seq "$runs"); do
            "$work/mlp" train --data "$data" --limit "$limit" --epochs 1 --no-shuffle --threads "$threads" \
              --set "optimizer=${recipe[$o]}" --log-json "$work/$o$r.jsonl" >/dev/null
            cat "$work/$o$r.jsonl"; done | sps)
  torch=$(for r in $(seq "$runs"); do
            for t in 1 "$threads"; do
              /usr/bin/python3 "$root/bench/optim_speed.py" "$data" "$limit" "$t" "$o"
              OPENBLAS_NUM_THREADS=$t /usr/bin/python3 "$root/bench/optim_speed.py" "$data" "$limit" "$t" "$o"
            done
          done | sps)
  python3 -c "import sys; l, t = float(sys.argv[2]), float(sys.argv[3]); print('%-14s %8s %10.0f %12.0f %8.2fx' % (sys.argv[1], sys.argv[4], l, t, l / t))" \
    "$o" "$lathe" "$torch" "$threads"
done
