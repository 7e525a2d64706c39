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
