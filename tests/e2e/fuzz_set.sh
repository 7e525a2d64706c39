# The house rule for bad input, fuzzed: a produced executable gets a few hundred `--set KEY=EXPR` overrides of
# every recipe key (values of every kind, pairs of keys, byte mutations of valid values; tests/e2e/fuzz_set.py,
# fixed seed) and each run exits 0, 1 or 2 with, on failure, exactly one "PROG: error: ..." line, no signal, no
# hang, and no *.tmp* file left in its --checkpoint-dir. Built with -DLATHE_SANITIZE=ON the same runs also
# check that AddressSanitizer and UndefinedBehaviorSanitizer stay quiet.
source "$(dirname "$0")/common.bash"
need_data
command -v python3 >/dev/null || skip "python3 is not installed"
"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" -o mlp >/dev/null || fail "compile"

# --set workers=64: more loader threads than batches, and than cores
./mlp train --data "$DATA" --limit 64 --epochs 1 --set workers=64 >w.out || fail "workers=64"
grep -q "Done!" w.out || fail "workers=64 did not finish"

jobs=$((2 * $(nproc 2>/dev/null || echo 2))) # the runs wait on fsync as much as they compute
python3 "$LATHE_SOURCE_DIR/tests/e2e/fuzz_set.py" ./mlp "$DATA" --seed 1 --count "${FUZZ_COUNT:-120}" \
  --jobs "$jobs" --timeout 20 || fail "fuzz_set.py found runs that break the rule (above)"
