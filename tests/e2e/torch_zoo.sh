# PyTorch parity of every zoo model and of the layers' edge cases (tests/e2e/torch_zoo.py): one train step's
# logits, loss, gradients and BatchNorm statistics from lathe_probe against the same PyTorch module with the
# same initial weights, within a relative error of 1e-4. Skipped where python3-torch is missing.
source "$(dirname "$0")/common.bash"
/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null || skip "python3-torch (with numpy) is not installed"
PROBE="${LATHE_BINARY_DIR:?}/bin/lathe_probe"
[ -x "$PROBE" ] || fail "no $PROBE: build the lathe_probe target"
/usr/bin/python3 "$LATHE_SOURCE_DIR/tests/e2e/torch_zoo.py" "$PROBE" "$LATHE_SOURCE_DIR" "$WORK" "$@" \
  || fail "Lathe and PyTorch differ (above)"
echo "ok"
