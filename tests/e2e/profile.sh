# --profile on a produced executable: training fashion_cnn on 640 samples writes a Chrome trace that is valid
# JSON, with one event per kernel of steps 2 to 6 named by kernel and labelled with lines of the model file,
# and prints a table of time per model line, slowest first, led by a convolution's line. eval and predict
# profile too; the table goes to stderr, so `eval --json` stays JSON; an unwritable path fails before training.
source "$(dirname "$0")/common.bash"
need_data
command -v python3 >/dev/null || skip "python3 is not installed"
MODEL="$LATHE_SOURCE_DIR/models/fashion_cnn.lathe"
"$LATHE" compile "$MODEL" -o cnn || fail "compile"

./cnn train --data "$DATA" --limit 640 --epochs 1 --profile t.json --checkpoint-dir ckpt >train.out 2>train.err \
  || { cat train.err; fail "train --profile"; }
cat train.err
ls -a | grep -q 'tmp' && fail "temporary file left beside the trace"

python3 - "$MODEL" t.json train.err <<'PY' || fail "trace or table of train"
import json, re, sys
src = open(sys.argv[1]).read().splitlines()
trace = json.load(open(sys.argv[2]))
assert trace["displayTimeUnit"] == "ms"
ev = [e for e in trace["traceEvents"] if e["ph"] == "X"]
kern = [e for e in ev if e["cat"] == "kernel" and e["args"]["graph"] == "train"]
steps = [e for e in ev if e["cat"] == "step" and e["args"]["graph"] == "train"]
assert sorted(e["args"]["step"] for e in steps) == [2, 3, 4, 5, 6], steps
assert kern and len(kern) % 5 == 0, len(kern)
def line_text(loc):
    m = re.fullmatch(r"fashion_cnn\.lathe:(\d+)", loc)
    assert m, loc
    return src[int(m.group(1)) - 1]
for e in kern:
    assert re.match(r"k\d+ [a-z_0-9]+(\+[a-z_0-9]+)*", e["name"]), e["name"]
    assert e["args"]["lines"], e
    for loc in e["args"]["lines"]:
        line_text(loc)
    assert e["dur"] >= 0 and isinstance(e["ts"], (int, float))
    step = [s for s in steps if s["args"]["step"] == e["args"]["step"]][0]
    assert step["ts"] <= e["ts"] and e["ts"] + e["dur"] <= step["ts"] + step["dur"] + 1e-3, (e, step)
convs = [e for e in kern if e["name"].split()[1].startswith("conv2d")]
assert convs and all(any("Conv2d" in line_text(l) for l in e["args"]["lines"]) for e in convs), convs

table = open(sys.argv[3]).read()
rows = table.split("time by model line:\n")[1].split("time by kernel")[0].splitlines()[1:]
ms = [float(r.split()[0]) for r in rows]
lines = [r.split()[2] for r in rows]
assert ms == sorted(ms, reverse=True), rows
assert "Conv2d" in line_text(lines[0]), rows
conv_ms = sum(t for t, l in zip(ms, lines) if "Conv2d" in line_text(l))
assert conv_ms > 0.5 * sum(ms), rows
assert re.search(r"GFLOP/s +GB/s", table), table
PY

# eval: the table on stderr, one JSON object on stdout
./cnn eval --weights ckpt/last.safetensors --data "$DATA" --limit 640 --json --profile e.json >eval.json 2>eval.err \
  || { cat eval.err; fail "eval --profile"; }
python3 -c 'import json,sys; json.load(open("eval.json"))' || fail "eval --json output is not JSON with --profile"
grep -q 'time by model line' eval.err || fail "no table after eval"
python3 - e.json <<'PY' || fail "trace of eval"
import json, sys
ev = json.load(open(sys.argv[1]))["traceEvents"]
assert any(e.get("cat") == "kernel" and e["args"]["graph"] == "eval" for e in ev)
PY

# predict runs its graph once: the trace shows that call
./cnn predict --weights ckpt/last.safetensors --data "$DATA" --profile p.json >pred.out 2>pred.err \
  || { cat pred.err; fail "predict --profile"; }
python3 - p.json <<'PY' || fail "trace of predict"
import json, sys
ev = json.load(open(sys.argv[1]))["traceEvents"]
assert [e["args"]["step"] for e in ev if e.get("cat") == "step"] == [1], ev
assert any(e.get("cat") == "kernel" for e in ev)
PY

expect_fail ./cnn train --data "$DATA" --limit 640 --epochs 1 --profile no-such-dir/t.json
expect_msg '^.*--profile: cannot write no-such-dir/t.json: No such file or directory'
grep -q 'Epoch' "$WORK/stdout.txt" && fail "training started before the unwritable --profile was found"
echo "ok"
