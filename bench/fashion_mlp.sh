#!/usr/bin/env bash
# Trains one FashionMNIST epoch of the Quickstart MLP at batch 64 with Lathe and with the PyTorch reference
# (../shared/reference/torch_fashion.py) in the same run, at 1 and 2 threads, and prints samples/s of each
# and the ratio. usage: bench/fashion_mlp.sh [BUILD_DIR]   (default: build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
ref=${LATHE_REFERENCE:-$root/../shared/reference/torch_fashion.py}
data=/usr/share/datasets/fashion-mnist
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$build/bin/lathe" compile "$root/models/fashion_mlp.lathe" -o "$work/mlp"
printf '%-28s %8s %12s %12s %8s\n' case threads lathe_sps torch_sps ratio
for t in 1 2; do
  "$work/mlp" train --data "$data" --epochs 1 --no-shuffle --threads "$t" --log-json "$work/l$t.jsonl" >/dev/null
  lathe=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["samples_per_s"])' "$work/l$t.jsonl")
  torch=$(/usr/bin/python3 "$ref" --model mlp --batch 64 --epochs 1 --threads "$t" --no-shuffle |
          python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["samples_per_s"])')
  python3 -c 'import sys; l,t=float(sys.argv[1]),float(sys.argv[2]); print("%-28s %8s %12.0f %12.0f %7.2fx" % ("fashion_mlp batch 64 epoch", sys.argv[3], l, t, l/t))' "$lathe" "$torch" "$t"
done
