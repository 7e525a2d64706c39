# The logs of a training run: --log-csv (a header and a row per epoch), --tensorboard (event files with the
# epoch's scalars, and histograms on request, decoded by tests/e2e/tensorboard_decode.py), the console's
# progress bar on a terminal (through script(1)) and plain lines elsewhere, and the NaN report with and
# without --detect-anomaly.
source "$(dirname "$0")/common.bash"
need_data
"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" -o mlp || fail "compile"
common=(--data "$DATA" --limit 640)

./mlp train "${common[@]}" --epochs 2 --log-csv log.csv --tensorboard runs --tensorboard-histograms \
  --set 'metrics=[accuracy, f1]' >train.out || fail "train with logs"
python3 - log.csv <<'PY' || fail "--log-csv"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 2, rows
for k in ["epoch", "lr", "steps", "train_loss", "train_accuracy", "train_f1", "test_loss", "test_accuracy", "test_f1"]:
    assert k in rows[0], (k, list(rows[0]))
assert [r["epoch"] for r in rows] == ["1", "2"] and int(rows[1]["steps"]) == 20
PY
events=$(ls runs/events.out.tfevents.* 2>/dev/null | head -1)
[ -n "$events" ] || fail "no event file in runs/"
python3 "$LATHE_SOURCE_DIR/tests/e2e/tensorboard_decode.py" --dump "$events" >dump.txt \
  || fail "the event file does not decode (every record's CRCs are checked)"
for tag in train/loss train/accuracy train/f1 test/loss test/accuracy lr; do
  grep -q "^2 $tag " dump.txt || { cat dump.txt; fail "no $tag at epoch 2 in the event file"; }
done
grep -q "^1 linear_relu_stack.0.weight histogram " dump.txt || fail "no histogram of linear_relu_stack.0.weight"

# the progress bar on a terminal, plain lines when the output is a file
grep -q '^loss: ' train.out || fail "no plain progress lines in a file"
script -qec "./mlp train ${common[*]} --epochs 1" /dev/null >tty.out 2>&1 || fail "train on a terminal"
grep -q 'it/s' tty.out && grep -q $'\r' tty.out || { cat -A tty.out | head; fail "no progress bar on a terminal"; }

# a diverging run stops at its first NaN, named by the loss, and with --detect-anomaly by kernel and line
expect_fail ./mlp train "${common[@]}" --lr 1e4
expect_msg "the loss \(fashion_mlp.lathe:[0-9]+:[0-9]+\) became nan in step [0-9]+"
expect_fail ./mlp train "${common[@]}" --lr 1e4 --detect-anomaly
expect_msg "first appeared in %[0-9]+ [a-z_]+.* at fashion_mlp.lathe:[0-9]+:[0-9]+, element [0-9]+, in step [0-9]+"
echo "ok"
