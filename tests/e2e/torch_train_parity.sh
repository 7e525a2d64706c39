# The train step matches PyTorch's: from the same parameters (a Lathe checkpoint loaded into the seed's
# NeuralNetwork), 10 SGD steps on the same batches give the same parameters in Lathe and in PyTorch
# (needs python3-torch; skipped where it is missing).
source "$(dirname "$0")/common.bash"
need_data
/usr/bin/python3 -c 'import torch' 2>/dev/null || skip "python3-torch is not installed"
"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" -o mlp || fail "compile"
common=(--data "$DATA" --limit 640 --lr 0.05 --no-shuffle)
./mlp train "${common[@]}" --epochs 1 --checkpoint-dir a >/dev/null || fail "train 1 epoch"
mkdir b && cp a/last.safetensors b/
./mlp train "${common[@]}" --epochs 2 --checkpoint-dir b --resume b/last.safetensors >/dev/null || fail "resume"
/usr/bin/python3 "$LATHE_SOURCE_DIR/tests/e2e/torch_train_parity.py" a/last.safetensors b/last.safetensors "$DATA" \
  640 64 0.05 || fail "PyTorch's parameters differ"
echo "ok"
