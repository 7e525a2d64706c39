# A checkpoint written by the produced executable loads with load_state_dict(strict=True) into the seed's
# PyTorch NeuralNetwork and gives the same test accuracy (needs python3-torch; skipped where it is missing).
source "$(dirname "$0")/common.bash"
need_data
/usr/bin/python3 -c 'import torch' 2>/dev/null || skip "python3-torch is not installed"
"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" -o mlp || fail "compile"
./mlp train --data "$DATA" --limit 6400 --epochs 1 --lr 0.05 --checkpoint-dir ckpt >/dev/null || fail "train"
./mlp eval --weights ckpt/last.safetensors --data "$DATA" --json >eval.json || fail "eval"
/usr/bin/python3 "$LATHE_SOURCE_DIR/tests/e2e/torch_interop.py" ckpt/last.safetensors eval.json "$DATA" \
  || fail "PyTorch disagrees"
echo "ok"
