# Compiles the Quickstart model and trains it a few hundred steps on a FashionMNIST subset: the loss falls,
# the checkpoint loads and gives the same test figures as the run that wrote it, predict names classes.
source "$(dirname "$0")/common.bash"
need_data
"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" -o mlp || fail "compile"
[ -x mlp ] || fail "no executable"
ldd mlp | grep -q -E 'libLLVM|libjansson|libcjson' && fail "the executable needs libraries a user must install"

./mlp train --data "$DATA" --limit 19200 --epochs 2 --lr 0.05 --checkpoint-dir ckpt --log-json log.jsonl >train.out \
  || fail "train"
cat train.out
grep -q -E '^loss: [0-9.]+ +\[ *6464/19200\]' train.out || fail "no Quickstart-style progress line"
first=$(grep -m1 -E '^loss:' train.out | awk '{print $2}')
[ "$(wc -l <log.jsonl)" -eq 2 ] || fail "log.jsonl should have one line per epoch"
last_loss=$(json_get log.jsonl train_loss)
python3 -c "import sys; sys.exit(0 if $last_loss < 0.75 * $first else 1)" \
  || fail "train loss did not fall: first batch $first, last epoch mean $last_loss"
acc=$(json_get log.jsonl test_accuracy)
python3 -c "import sys; sys.exit(0 if $acc > 0.6 else 1)" || fail "test accuracy $acc too low"

[ -f ckpt/last.safetensors ] || fail "no checkpoint"
ls ckpt | grep -q tmp && fail "temporary file left in ckpt/"
./mlp eval --weights ckpt/last.safetensors --data "$DATA" --limit 19200 --json >eval.json || fail "eval"
cat eval.json
python3 - "$WORK/log.jsonl" "$WORK/eval.json" <<'PY' || fail "eval from the checkpoint differs from the training run"
import json, sys
log = json.loads(open(sys.argv[1]).read().splitlines()[-1]); ev = json.load(open(sys.argv[2]))
assert ev["test_accuracy"] == log["test_accuracy"], (ev, log)
assert abs(ev["test_loss"] - log["test_loss"]) <= 1e-6 * abs(log["test_loss"]), (ev, log)
PY
./mlp predict --weights ckpt/last.safetensors --data "$DATA" --index 0 >pred.out || fail "predict"
cat pred.out
grep -q -E '^Predicted: ".+", Actual: "Ankle boot"$' pred.out || fail "predict output"
./mlp info >info.out || fail "info"
grep -q 'linear_relu_stack.0.weight' info.out || fail "info lists no parameters"
echo "ok"
