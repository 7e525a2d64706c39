# PyTorch parity on models this suite did not hand-write: MLPs of random depth, widths, activations and loss,
# generated with a fixed seed, each compiled and trained 10 SGD steps from the same parameters in Lathe and
# in PyTorch (needs python3-torch; skipped where it is missing).
source "$(dirname "$0")/common.bash"
need_data
/usr/bin/python3 -c 'import torch' 2>/dev/null || skip "python3-torch is not installed"
/usr/bin/python3 "$LATHE_SOURCE_DIR/tests/e2e/torch_random_mlps.py" "$LATHE" "$DATA" 6 || fail "PyTorch disagrees"
echo "ok"
