# Transfer learning: train the FashionMNIST CNN briefly, then fine-tune a new 2-class head (footwear or not) on
# top of its frozen body with --init-from: the report names the old head as unexpected and the new one as
# missing, the frozen body stays bit for bit the pretrained one, and the head learns the task.
source "$(dirname "$0")/common.bash"
need_data
/usr/bin/python3 -c 'import numpy' 2>/dev/null || skip "python3-numpy is not installed"
"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_cnn.lathe" -o cnn || fail "compile fashion_cnn"
"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_cnn_transfer.lathe" -o transfer || fail "compile the transfer model"
./cnn train --data "$DATA" --limit 4000 --epochs 1 --checkpoint-dir pre >/dev/null || fail "pretraining"
mkdir data
/usr/bin/python3 - "$DATA" data <<'PY'
import gzip, sys
import numpy as np
src, out = sys.argv[1:3]
x = np.frombuffer(gzip.open(src + "/t10k-images-idx3-ubyte.gz").read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
y = np.frombuffer(gzip.open(src + "/t10k-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
x, y = x[:2000], y[:2000]
np.save(out + "/footwear.npy", np.ascontiguousarray(x))
np.save(out + "/footwear_labels.npy", np.isin(y, [5, 7, 9]).astype(np.int64))
PY
./transfer train --data data --init-from pre/last.safetensors --checkpoint-dir ft --log-json ft.jsonl >ft.out 2>&1 \
  || { cat ft.out; fail "fine-tuning"; }
cat ft.out | head -5
grep -q "unexpected.*net.9.weight" ft.out || fail "the old head is not reported as unexpected"
grep -q "missing.*head.weight" ft.out || fail "the new head is not reported as missing"
acc=$(json_get ft.jsonl val_accuracy)
python3 -c "import sys; sys.exit(0 if $acc > 0.9 else 1)" || fail "the new head reached only $acc"
python3 - pre/last.safetensors ft/last.safetensors <<'PY' || fail "the frozen body changed"
import json, struct, sys
def tensors(p):
    raw = open(p, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; h = json.loads(raw[8:8 + n])
    return {k: raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"}
pre, ft = tensors(sys.argv[1]), tensors(sys.argv[2])
body = [k for k in ft if k.startswith("net.")]
assert len(body) == 6, body
changed = [k for k in body if ft[k] != pre[k]]
assert not changed, changed
print("frozen body unchanged:", ", ".join(body))
PY
# a file that does not fit (a tensor of another shape under a shared name) is refused before training
expect_fail ./transfer train --data data --init-from pre/last.safetensors --init-map 'net.7.=net.0.'
expect_msg "net.0.weight"
echo "ok"
