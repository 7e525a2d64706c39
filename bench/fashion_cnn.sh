#!/usr/bin/env bash
# Trains FashionMNIST epochs of models/fashion_cnn.lathe at batch 64 with Lathe and with the PyTorch reference
# (../shared/reference/torch_fashion.py --model cnn, the same network and SGD with momentum), in this one run,
# at 1 and 2 threads; prints samples/s of the fastest epoch of each and the ratio. As in fashion_mlp.sh, the
# reference runs as given and with OPENBLAS_NUM_THREADS pinned, and the faster is counted.
# usage: bench/fashion_cnn.sh [BUILD_DIR]   (default: build; BENCH_EPOCHS=2)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
epochs=${BENCH_EPOCHS:-2}
ref=${LATHE_REFERENCE:-$root/../shared/reference/torch_fashion.py}
data=/usr/share/datasets/fashion-mnist
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$build/bin/lathe" compile "$root/models/fashion_cnn.lathe" -o "$work/cnn"
sps() { python3 -c 'import json,sys; print(round(max(json.loads(l)["samples_per_s"] for l in sys.stdin if l.strip())))'; }
printf '%-22s %7s %10s %10s %10s %8s\n' case threads lathe torch torch_pin vs_torch
for t in 1 2; do
  "$work/cnn" train --data "$data" --epochs "$epochs" --no-shuffle --threads "$t" --log-json "$work/l$t.jsonl" >/dev/null
  lathe=$(sps <"$work/l$t.jsonl")
  torch=$(/usr/bin/python3 "$ref" --model cnn --batch 64 --epochs "$epochs" --threads "$t" --no-shuffle | sps)
  pinned=$(OPENBLAS_NUM_THREADS=$t /usr/bin/python3 "$ref" --model cnn --batch 64 --epochs "$epochs" --threads "$t" \
           --no-shuffle | sps)
  python3 - "$t" "$lathe" "$torch" "$pinned" <<'PY'
import sys
t, lathe, torch, pinned = sys.argv[1], *map(float, sys.argv[2:])
print("%-22s %7s %10.0f %10.0f %10.0f %7.2fx" % ("fashion_cnn b64 epoch", t, lathe, torch, pinned,
      lathe / max(torch, pinned)))
PY
done
