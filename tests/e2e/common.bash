# Sourced by the end-to-end tests: paths, a scratch folder, and assertions that name what failed.
set -euo pipefail
: "${LATHE:?LATHE must point at the lathe executable}"
: "${LATHE_SOURCE_DIR:?}"
DATA=/usr/share/datasets/fashion-mnist
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lathe-e2e.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
need_data() { [ -f "$DATA/train-images-idx3-ubyte.gz" ] || skip "FashionMNIST is not installed ($DATA)"; }

# expect_fail CMD...: the command must exit non-zero; its stderr is kept in $WORK/err
expect_fail() {
  if "$@" >"$WORK/stdout.txt" 2>"$WORK/err"; then fail "expected failure: $*"; fi
  local rc=$?
  [ -s "$WORK/err" ] || fail "no message on stderr: $*"
  ! grep -q -i -E 'sanitizer|segmentation|core dumped|assert' "$WORK/err" || { cat "$WORK/err"; fail "crash: $*"; }
  return 0
}
# expect_msg PATTERN: the last expect_fail's stderr matches PATTERN (extended regex)
expect_msg() { grep -q -E -e "$1" "$WORK/err" || { cat "$WORK/err"; fail "message does not match '$1'"; }; }

# json_get FILE KEY: a number from a one-line JSON object
json_get() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])[sys.argv[2]])' "$1" "$2"; }

# same_checkpoints A B [REL]: two safetensors checkpoints hold the same tensors at the same step and epoch:
# bit for bit, or with REL within REL relative difference (the norm of the difference over the norm, per
# tensor, the optimizer's state left out). Prints the worst difference.
same_checkpoints() {
  /usr/bin/python3 - "$1" "$2" "${3:-}" <<'PY'
import json, struct, sys
def load(p):
    raw = open(p, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; h = json.loads(raw[8:8 + n])
    meta = h.pop("__metadata__", {})
    return meta, {k: (v["dtype"], raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]) for k, v in h.items()}
(ma, a), (mb, b) = load(sys.argv[1]), load(sys.argv[2])
rel = sys.argv[3]
if rel:  # a tolerance: the parameters only, compared as numbers
    import numpy as np
    a = {k: v for k, v in a.items() if not k.startswith("optimizer.")}
    b = {k: v for k, v in b.items() if not k.startswith("optimizer.")}
assert a.keys() == b.keys(), (sorted(a), sorted(b))
assert ma["step"] == mb["step"] and ma["epoch"] == mb["epoch"], (ma, mb)
if not rel:
    bad = [k for k in a if a[k] != b[k]]
    assert not bad, bad
    print(f"{sys.argv[1]} vs {sys.argv[2]}: {len(a)} tensors identical after {ma['step']} steps")
    sys.exit(0)
num = lambda t: np.frombuffer(t[1], dtype={"F32": np.float32, "F64": np.float64}[t[0]]).astype(np.float64)
worst = max(np.linalg.norm(num(a[k]) - num(b[k])) / max(np.linalg.norm(num(b[k])), 1e-30) for k in a)
print(f"{sys.argv[1]} vs {sys.argv[2]}: worst relative difference {worst:.3g} after {ma['step']} steps")
sys.exit(0 if worst <= float(rel) else 1)
PY
}
