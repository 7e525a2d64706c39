# `lathe run`: the model compiled in memory by the ORC JIT runs as the executable of `lathe compile` does.
# Training on a small subset prints the very same loss and accuracy lines as the compiled executable with
# the same flags (the same object code), info and --help name the model, a bad flag exits 2 as the
# executable does, a model with an error exits 1 with its location, and nothing is left on disk.
source "$(dirname "$0")/common.bash"
need_data
MODEL="$LATHE_SOURCE_DIR/models/fashion_mlp.lathe"
mkdir tmp
export TMPDIR="$WORK/tmp" # where `lathe compile` puts its object file; lathe run must put nothing there
FLAGS=(--data "$DATA" --limit 1280 --epochs 2 --batch 64 --lr 0.05 --seed 7 --threads 1)

mkdir run && (cd run && "$LATHE" run "$MODEL" train "${FLAGS[@]}" --log-json log.jsonl >../jit.out 2>../jit.err) \
  || { cat jit.err; fail "lathe run train"; }
cat jit.out
grep -q -E '^loss: [0-9.]+' jit.out || fail "lathe run train printed no loss line"
first=$(grep -m1 -E '^loss:' jit.out | awk '{print $2}')
last=$(json_get run/log.jsonl train_loss)
acc=$(json_get run/log.jsonl test_accuracy)
python3 -c "import sys; sys.exit(0 if $last < $first else 1)" || fail "loss did not fall: first $first, last $last"
python3 -c "import sys; sys.exit(0 if $acc > 0.3 else 1)" || fail "test accuracy $acc too low"
[ "$(ls run)" = log.jsonl ] || fail "lathe run left files besides its log: $(ls run)"
[ -z "$(ls tmp)" ] || fail "lathe run left files in TMPDIR: $(ls tmp)"

"$LATHE" compile "$MODEL" -o fashion_mlp || fail "compile"
./fashion_mlp train "${FLAGS[@]}" --log-json exe.jsonl >exe.out 2>exe.err || { cat exe.err; fail "executable train"; }
# the same object code on the same data: every loss and accuracy line the same to the last digit
diff exe.out jit.out || fail "lathe run and the executable print different figures"
python3 - run/log.jsonl exe.jsonl <<'PY' || fail "the JSON logs of lathe run and the executable differ"
import json, sys
a, b = ([json.loads(l) for l in open(f)] for f in sys.argv[1:])
timing = lambda k: k in ("seconds", "samples_per_s") or "second" in k
strip = lambda rows: [{k: v for k, v in r.items() if not timing(k)} for r in rows]
assert len(a) == 2 and strip(a) == strip(b), (a, b)
PY

# info and --help, under the executable's name (-O0: what they print does not depend on the code)
"$LATHE" run -O0 "$MODEL" info >info.out || fail "lathe run info"
grep -q 'linear_relu_stack.0.weight' info.out || fail "info lists no parameters"
./fashion_mlp info >exe_info.out
# (the threads and the memory available are the machine's, read at each start)
machine='threads|^memory available|^largest batch'
diff <(grep -v -i -E "$machine" exe_info.out) <(grep -v -i -E "$machine" info.out) || fail "info differs from the executable's"
"$LATHE" run -O 0 "$MODEL" train --help >help.out || fail "lathe run MODEL train --help"
grep -q '^usage: fashion_mlp train' help.out || fail "help does not name the model: $(head -1 help.out)"
"$LATHE" run --help | grep '^usage: lathe run' >/dev/null || fail "lathe run --help"

# bad usage: 2, like the executable; a bad model: 1 with its location
rc=0; "$LATHE" run -O0 "$MODEL" train --no-such-flag >/dev/null 2>"$WORK/err" || rc=$?
[ "$rc" -eq 2 ] || { cat "$WORK/err"; fail "a bad flag exits $rc, not 2"; }
expect_msg '^fashion_mlp: .*no-such-flag'
rc=0; ./fashion_mlp train --no-such-flag 2>exe_bad.err || rc=$?
[ "$rc" -eq 2 ] || fail "the executable exits $rc on a bad flag"
diff exe_bad.err "$WORK/err" || fail "lathe run's message for a bad flag differs from the executable's"
rc=0; "$LATHE" run 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "lathe run without a model exits $rc, not 2"
rc=0; "$LATHE" run -O 7 "$MODEL" info 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "lathe run -O 7 exits $rc, not 2"

sed 's/Linear(512, 10)/Linear(511, 10)/' "$MODEL" >bad.lathe # a shape mismatch
cmp -s bad.lathe "$MODEL" && fail "the bad model is not different"
rc=0; "$LATHE" run bad.lathe train --data "$DATA" >bad.out 2>"$WORK/err" || rc=$?
[ "$rc" -eq 1 ] || { cat "$WORK/err"; fail "a bad model exits $rc, not 1"; }
expect_msg '^bad\.lathe:[0-9]+:[0-9]+: error'
rc=0; "$LATHE" compile bad.lathe -o never 2>compile_bad.err || rc=$?
[ "$rc" -eq 1 ] || fail "lathe compile of the bad model exits $rc"
diff compile_bad.err "$WORK/err" || fail "lathe run reports the model's error unlike lathe compile"
! grep -q -i -E 'sanitizer|segmentation|core dumped' "$WORK/err" || fail "crash on a bad model"
rc=0; "$LATHE" run missing.lathe info 2>"$WORK/err" || rc=$?
[ "$rc" -eq 1 ] || fail "a missing model exits $rc, not 1"
expect_msg 'missing\.lathe'
[ -z "$(ls tmp)" ] || fail "files left in TMPDIR: $(ls tmp)"
echo "ok"
