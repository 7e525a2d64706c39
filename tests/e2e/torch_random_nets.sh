# PyTorch parity on random small networks (tests/e2e/torch_random_nets.py): convolutions, pools, norms,
# activations, attention, embeddings and every loss composed at random from 40 seeds, plus the fixed
# reproducers of the bugs it found; one train step's logits, loss, gradients, buffers and eval logits from
# lathe_probe against PyTorch within a relative error of 1e-4. Fewer seeds in a sanitizer build. Skipped where
# python3-torch is missing.
source "$(dirname "$0")/common.bash"
/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null || skip "python3-torch (with numpy) is not installed"
PROBE="${LATHE_BINARY_DIR:?}/bin/lathe_probe"
[ -x "$PROBE" ] || fail "no $PROBE: build the lathe_probe target"
seeds=40
grep -q '^LATHE_SANITIZE:BOOL=ON' "$LATHE_BINARY_DIR/CMakeCache.txt" 2>/dev/null && seeds=8
/usr/bin/python3 "$LATHE_SOURCE_DIR/tests/e2e/torch_random_nets.py" "$PROBE" "$WORK" "$seeds" \
  || fail "Lathe and PyTorch differ (above)"
echo "ok"
