# The recipe's loader options, metrics, schedules, early stopping and model selection, each through one
# Quickstart binary and `--set`, on a FashionMNIST subset: every option changes what it should (the steps, the
# logged learning rate, the epochs run, the files written), and a bad value is one message, at compile time
# from the model file and at run time from --set.
source "$(dirname "$0")/common.bash"
need_data
"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" -o mlp || fail "compile"
common=(--data "$DATA" --limit 640)
# last_key LOG KEY: KEY of the last line of LOG
last_key() { json_get "$1" "$2"; }
steps_of() { python3 -c 'import json,sys; print(" ".join(str(json.loads(l)["steps"]) for l in open(sys.argv[1])))' "$1"; }

# drop_last and accumulate change the number of optimizer steps (650 samples: 10 full batches and one of 10)
./mlp train --data "$DATA" --limit 650 --epochs 1 --log-json a.jsonl >/dev/null || fail "train"
./mlp train --data "$DATA" --limit 650 --epochs 1 --set drop_last=true --log-json b.jsonl >/dev/null || fail "drop_last"
./mlp train --data "$DATA" --limit 650 --epochs 1 --set accumulate=2 --log-json c.jsonl >/dev/null || fail "accumulate"
[ "$(steps_of a.jsonl)" = 11 ] || fail "11 steps expected without drop_last, got $(steps_of a.jsonl)"
[ "$(steps_of b.jsonl)" = 10 ] || fail "drop_last: 10 steps expected, got $(steps_of b.jsonl)"
[ "$(steps_of c.jsonl)" = 6 ] || fail "accumulate = 2: 6 optimizer steps expected, got $(steps_of c.jsonl)"

# schedules: the learning rate of every epoch in the log
./mlp train "${common[@]}" --epochs 3 --lr 0.1 --set 'schedule=StepLR(step_size = 1, gamma = 0.5)' --log-json s.jsonl \
  >/dev/null || fail "StepLR"
python3 - s.jsonl <<'PY' || fail "StepLR's learning rates"
import json, sys
lrs = [json.loads(l)["lr"] for l in open(sys.argv[1])]
assert all(abs(a - b) < 1e-12 for a, b in zip(lrs, [0.1, 0.05, 0.025])), lrs
PY
./mlp train "${common[@]}" --epochs 3 --lr 0.1 --set 'schedule=LambdaLR(0.5 ** (epoch + 1))' --log-json l.jsonl \
  >/dev/null || fail "LambdaLR"
python3 - l.jsonl <<'PY' || fail "LambdaLR's learning rates"
import json, sys
lrs = [json.loads(l)["lr"] for l in open(sys.argv[1])]
assert all(abs(a - b) < 1e-12 for a, b in zip(lrs, [0.05, 0.025, 0.0125])), lrs
PY

# metrics: every one reaches eval --json; the confusion matrix counts every test sample
./mlp train "${common[@]}" --epochs 1 --lr 0.05 --checkpoint-dir m >/dev/null || fail "train for metrics"
./mlp eval --weights m/last.safetensors "${common[@]}" --json \
  --set 'metrics=[accuracy, top_k(3), precision, recall, f1, confusion_matrix]' >eval.json || fail "eval metrics"
python3 - eval.json <<'PY' || fail "eval --json metrics"
import json, sys
e = json.load(open(sys.argv[1]))
for k in ["test_loss", "test_accuracy", "test_top3_accuracy", "test_precision", "test_recall", "test_f1",
          "test_precision_per_class", "test_confusion_matrix"]:
    assert k in e, (k, sorted(e))
cm = e["test_confusion_matrix"]
assert len(cm) == 10 and sum(map(sum, cm)) == e["samples"] == 640, cm
assert abs(sum(cm[i][i] for i in range(10)) / 640 - e["test_accuracy"]) < 1e-12
assert e["test_top3_accuracy"] >= e["test_accuracy"]
PY

# validation: a seeded split of the training data, evaluated every epoch, never trained on
./mlp train "${common[@]}" --epochs 1 --set validation=0.25 --log-json v.jsonl >v.out || fail "validation"
grep -q '^Validation' v.out || fail "no validation report"
python3 -c 'import json,sys; o=json.loads(open(sys.argv[1]).read()); assert "val_loss" in o and "val_accuracy" in o and o["steps"] == 8, o' \
  v.jsonl || fail "validation: val_ scores and 480 / 64 = 8 steps expected"

# early stopping: an improvement of 10 is never reached, so training stops after patience + 1 epochs;
# best.safetensors is the first epoch's
./mlp train "${common[@]}" --epochs 6 --checkpoint-dir es --log-json es.jsonl \
  --set 'early_stop=early_stop(monitor = train_loss, patience = 2, min_delta = 10)' >es.out || fail "early stop"
[ "$(wc -l <es.jsonl)" -eq 3 ] || fail "early stopping: 3 epochs expected, got $(wc -l <es.jsonl)"
grep -q 'Early stopping' es.out || fail "no early-stopping message"
[ -f es/best.safetensors ] && [ -f es/last.safetensors ] || fail "best.safetensors and last.safetensors expected"
python3 - es/best.safetensors <<'PY' || fail "best.safetensors is not the first epoch's"
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
assert json.loads(raw[8:8 + n])["__metadata__"]["epoch"] == "1"
PY

# workers: the same run with 0 and 3 loader threads gives the same parameters; shuffle follows the seed
for w in 0 3; do
  ./mlp train "${common[@]}" --epochs 1 --shuffle --seed 5 --set workers=$w --checkpoint-dir w$w >/dev/null \
    || fail "workers=$w"
done
cmp -s <(tail -c +200 w0/last.safetensors) <(tail -c +200 w3/last.safetensors) || fail "workers 0 and 3 differ"
./mlp train "${common[@]}" --epochs 1 --shuffle --seed 6 --checkpoint-dir s6 >/dev/null || fail "seed 6"
cmp -s <(tail -c +200 w0/last.safetensors) <(tail -c +200 s6/last.safetensors) && fail "another seed, the same order"

# transforms: augmentation changes training and repeats for a seed; eval applies normalize as training did
aug=(--set 'transforms=[random_crop(28, padding = 2), random_hflip(p = 0.5)]')
./mlp train "${common[@]}" --epochs 1 --checkpoint-dir t1 "${aug[@]}" >/dev/null || fail "augmented training"
./mlp train "${common[@]}" --epochs 1 --checkpoint-dir t2 "${aug[@]}" >/dev/null || fail "augmented training again"
./mlp train "${common[@]}" --epochs 1 --checkpoint-dir t0 >/dev/null || fail "plain training"
cmp -s <(tail -c +200 t1/last.safetensors) <(tail -c +200 t2/last.safetensors) || fail "augmentation not reproducible"
cmp -s <(tail -c +200 t1/last.safetensors) <(tail -c +200 t0/last.safetensors) && fail "augmentation changed nothing"
norm=(--set 'transforms=[normalize(mean = [0.286], std = [0.353])]')
./mlp eval --weights t0/last.safetensors "${common[@]}" --json >e0.json || fail "eval"
./mlp eval --weights t0/last.safetensors "${common[@]}" --json "${norm[@]}" >e1.json || fail "eval normalized"
[ "$(json_get e0.json test_loss)" != "$(json_get e1.json test_loss)" ] || fail "eval ignored normalize"

# resume with the runtime's optimizer: its state, its step count and the schedule's position travel in the
# checkpoint, so 1 + 1 epochs give the parameters of 2
adam=(--set 'optimizer=Adam(lr = 1e-3)' --set 'schedule=StepLR(step_size = 1, gamma = 0.5)' --shuffle --seed 2)
./mlp train "${common[@]}" --epochs 2 --checkpoint-dir r2 "${adam[@]}" >/dev/null || fail "adam 2 epochs"
./mlp train "${common[@]}" --epochs 1 --checkpoint-dir r1 "${adam[@]}" >/dev/null || fail "adam 1 epoch"
./mlp train "${common[@]}" --epochs 2 --checkpoint-dir r1 --resume r1/last.safetensors "${adam[@]}" >/dev/null \
  || fail "adam resume"
python3 - r1/last.safetensors r2/last.safetensors <<'PY' || fail "a resumed Adam run differs from an uninterrupted one"
import json, struct, sys
def tensors(p):
    raw = open(p, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; h = json.loads(raw[8:8 + n])
    return {k: raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
assert a.keys() == b.keys() and any(k.endswith(".exp_avg_sq") for k in a), sorted(a)
bad = [k for k in a if a[k] != b[k]]
assert not bad, bad
PY

# a bad value from --set: one message and exit 2, before any data is read
expect_fail ./mlp train "${common[@]}" --set 'optimizer=Adamm(lr = 1e-3)'
expect_msg "did you mean 'Adam'"
expect_fail ./mlp train "${common[@]}" --set 'schedule=StepLR(gama = 0.1)'
expect_msg "recipe key schedule"
expect_fail ./mlp train "${common[@]}" --set 'metrics=[acuracy]'
expect_msg "accuracy"
# and from the model file: at compile time, at the key's line
sed 's/optimizer = SGD(lr = 1e-3)/optimizer = SGD(lr = 1e-3)\n    schedule  = ExponentialLR(gamma = -1)/' \
  "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" >bad.lathe
grep -q ExponentialLR bad.lathe || fail "could not write bad.lathe"
expect_fail "$LATHE" compile bad.lathe -o bad
expect_msg "^bad.lathe:[0-9]+:[0-9]+: error: recipe key schedule"
[ -e bad ] && fail "a failed compile left an executable"
sed 's/optimizer = SGD(lr = 1e-3)/optimizer = SGD(lr = 1e-3, nesterov = true)/' \
  "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" >bad2.lathe
expect_fail "$LATHE" check bad2.lathe
expect_msg "^bad2.lathe:[0-9]+:[0-9]+: error: .*nesterov"
sed 's/optimizer = SGD(lr = 1e-3)/optimizer = SGD(lr = -1)/' "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" >bad3.lathe
expect_fail "$LATHE" check bad3.lathe
expect_msg "^bad3.lathe:[0-9]+:[0-9]+: error: .*lr"
echo "ok"
