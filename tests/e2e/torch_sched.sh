# The runtime's learning-rate schedules (runtime/lrsched.c, printed by tests/tools/rt_sched_probe) give the
# values of torch.optim.lr_scheduler (needs python3-torch; skipped where it is missing).
source "$(dirname "$0")/common.bash"
/usr/bin/python3 -c 'import torch' 2>/dev/null || skip "python3-torch is not installed"
PROBE="${LATHE_BINARY_DIR:?}/bin/rt_sched_probe"
[ -x "$PROBE" ] || fail "$PROBE is not built"
/usr/bin/python3 "$LATHE_SOURCE_DIR/tests/e2e/torch_sched.py" "$PROBE" || fail "PyTorch's schedules disagree"
echo "ok"
