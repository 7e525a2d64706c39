# lathe sweep: a 2 x 2 grid of lr and batch on a FashionMNIST subset, two at a time, ranked by test accuracy,
# each trial trained with its own values (its JSON log says so) and the CSV holding the table's rows; seeded
# random draws repeat; a trial with a bad value fails while the others go on; bad flags are one message and
# exit 2; SIGTERM stops the running trials.
source "$(dirname "$0")/common.bash"
need_data
MODEL="$LATHE_SOURCE_DIR/models/fashion_mlp.lathe"

# ---- bad flags: one line on stderr, exit 2, before anything is compiled
check_bad() { # PATTERN ARGS...: lathe sweep MODEL ARGS... exits 2 with one line matching PATTERN
  local want=$1; shift
  "$LATHE" sweep "$MODEL" "$@" --out bad >/dev/null 2>bad.err && rc=0 || rc=$?
  [ "$rc" -eq 2 ] || { cat bad.err; fail "'$*' exits $rc, not 2"; }
  [ "$(wc -l <bad.err)" -eq 1 ] || { cat bad.err; fail "'$*' gives more than one line"; }
  grep -q -E -e "$want" bad.err || { cat bad.err; fail "'$*': the message does not match '$want'"; }
  [ ! -e bad ] || fail "'$*' made its folder"
}
check_bad '^lathe sweep: --grid takes KEY=V1,V2,\.\.\., not .lr.$' --grid lr
check_bad '^lathe sweep: --jobs takes a whole number from 1 to 256, not .0.$' --grid lr=1e-3 --jobs 0

# ---- the grid, two trials at a time
"$LATHE" sweep "$MODEL" --grid lr=1e-3,0.1 --grid batch=64,128 --jobs 2 --out grid \
  -- --data "$DATA" --limit 512 --epochs 1 >grid.out 2>grid.err || { cat grid.err; fail "grid sweep"; }
cat grid.out
[ -f grid/sweep.csv ] || fail "no grid/sweep.csv"
[ ! -e grid/fashion_mlp ] || fail "the sweep's executable is left in its folder"
python3 - grid.out grid/sweep.csv grid <<'PY' || fail "grid sweep table"
import csv, json, sys
table = [l.split() for l in open(sys.argv[1]).read().splitlines()]
head, rows = table[0], table[1:]
assert head == ["rank", "trial", "lr", "batch", "test_accuracy", "train_loss", "seconds", "status"], head
assert len(rows) == 4, rows
assert sorted((r[2], r[3]) for r in rows) == [("0.1", "128"), ("0.1", "64"), ("1e-3", "128"), ("1e-3", "64")]
assert [r[0] for r in rows] == ["1", "2", "3", "4"] and all(r[7] == "ok" for r in rows), rows
acc = [float(r[4]) for r in rows]
assert acc == sorted(acc, reverse=True), acc
for r in rows:  # each trial ran with its own values, and the table shows its log's last line
    log = json.loads(open(f"{sys.argv[3]}/trial-{r[1]}.jsonl").read().splitlines()[-1])
    assert log["lr"] == float(r[2]), (r, log)
    assert log["steps"] == 512 // int(r[3]), (r, log)
    assert abs(log["test_accuracy"] - float(r[4])) < 1e-4, (r, log)
    assert abs(log["train_loss"] - float(r[5])) < 1e-4 * log["train_loss"], (r, log)
    assert open(f"{sys.argv[3]}/trial-{r[1]}.log").read().count("Epoch 1") == 1, r
with open(sys.argv[2], newline="") as f:
    got = list(csv.DictReader(f))
assert [c["trial"] for c in got] == [r[1] for r in rows], got
for c, r in zip(got, rows):
    assert (c["rank"], c["lr"], c["batch"], c["status"]) == (r[0], r[2], r[3], r[7]), (c, r)
    assert abs(float(c["test_accuracy"]) - float(r[4])) < 1e-4, (c, r)
PY

# ---- random draws at each grid point, where one grid value is bad: its trials fail and the others run; the
# same seed again gives the same trials (another seed others: tests/unit/test_sweep.c), here with trials that
# fail fast, for the values are what counts
SWEPT=(--grid 'optimizer=Adamm(lr = 1), SGD(lr = 0.1)' --random 2 'lr=log(1e-3, 1e-1)' 'batch=int(16, 256)' --seed 11)
"$LATHE" sweep "$MODEL" "${SWEPT[@]}" --out mixed -- --data "$DATA" --limit 256 --epochs 1 >mixed.out 2>mixed.err \
  || { cat mixed.err; fail "a sweep with a bad value and good ones"; }
cat mixed.out
grep -q -E '^- +[12] +Adamm\(lr = 1\) .*failed: exit 2: .*Adamm' mixed.out || fail "no failed row in the table"
"$LATHE" sweep "$MODEL" "${SWEPT[@]}" --out again --csv again.csv -- --data "$WORK/no-such-folder" \
  >/dev/null 2>again.err && rc=0 || rc=$?
[ "$rc" -eq 1 ] || { cat again.err; fail "a sweep whose trials all fail exits $rc, not 1"; }
python3 - mixed/sweep.csv again.csv mixed <<'PY' || fail "random draws at grid points"
import csv, json, sys
def rows(path):
    return sorted(csv.DictReader(open(path, newline="")), key=lambda r: int(r["trial"]))
mixed, again = rows(sys.argv[1]), rows(sys.argv[2])
assert [r["optimizer"] for r in mixed] == ["Adamm(lr = 1)"] * 2 + ["SGD(lr = 0.1)"] * 2, mixed
for r in mixed:
    assert 1e-3 <= float(r["lr"]) <= 1e-1 and 16 <= int(r["batch"]) <= 256, r
    if r["optimizer"].startswith("Adamm"):
        assert r["rank"] == "" and r["status"].startswith("failed: exit 2: ") and "Adamm" in r["status"], r
    else:
        assert r["rank"] in ("1", "2") and r["status"] == "ok", r
        log = json.loads(open(f"{sys.argv[3]}/trial-{r['trial']}.jsonl").read().splitlines()[-1])
        assert log["lr"] == float(r["lr"]), (r, log)
assert len({r["lr"] for r in mixed}) == 4, mixed
key = lambda r: (r["trial"], r["optimizer"], r["lr"], r["batch"])
assert [key(r) for r in again] == [key(r) for r in mixed], (again, mixed)
assert all(r["status"].startswith("failed: exit ") for r in again), again
PY

# ---- SIGTERM stops the running trials and ends the sweep with 128 + 15
"$LATHE" sweep "$MODEL" --grid lr=1e-3,1e-2,0.1 --jobs 2 --out "$WORK/stop" \
  -- --data "$DATA" --limit 2048 --epochs 1000 >stop.out 2>stop.err &
pid=$!
trials() { pgrep -f "^$WORK/stop/fashion_mlp train" | wc -l; }
for _ in $(seq 300); do # until both trials run
  [ "$(trials)" -eq 2 ] && break
  sleep 0.1
done
[ "$(trials)" -eq 2 ] || { kill -KILL $pid; fail "the trials did not start"; }
kill -TERM $pid
wait $pid && rc=0 || rc=$?
[ "$rc" -eq 143 ] || { cat stop.err; fail "a stopped sweep exits $rc, not 143"; }
[ "$(trials)" -eq 0 ] || fail "trials still run after the sweep stopped"
grep -q -E '^-  +1 .* stopped$' stop.out || { cat stop.out; fail "the stopped trial is not in the table"; }
grep -q -E '^-  +3 .* not run$' stop.out || { cat stop.out; fail "the trial never started is not in the table"; }
echo "ok"
