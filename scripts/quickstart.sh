#!/usr/bin/env bash
# The main job on a fresh machine: set up, build lathe, compile the Quickstart model and train it on
# FashionMNIST (5 epochs, as the model file says), then evaluate and predict with the last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target lathe lathe_rt
DATA=/usr/share/datasets/fashion-mnist
build/bin/lathe compile models/fashion_mlp.lathe -o fashion_mlp
./fashion_mlp train --data "$DATA" --checkpoint-dir ckpt --log-json log.jsonl
./fashion_mlp eval --weights ckpt/last.safetensors --data "$DATA" --json
./fashion_mlp predict --weights ckpt/last.safetensors --data "$DATA" --index 0
