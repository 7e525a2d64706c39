# The runtime's optimizers (SGD, Adam, AdamW, RMSprop, Adagrad with their options, clipping, accumulation,
# parameter groups, a schedule of learning rates) against torch.optim, step by step, through the probe
# rt_optim_probe (tests/tools/rt_optim_probe.c); needs python3-torch and numpy, skipped where they are missing.
source "$(dirname "$0")/common.bash"
/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null || skip "python3-torch or numpy is not installed"
PROBE="${LATHE_BINARY_DIR:?}/bin/rt_optim_probe"
[ -x "$PROBE" ] || fail "rt_optim_probe is not built ($PROBE)"
/usr/bin/python3 "$LATHE_SOURCE_DIR/tests/e2e/torch_optim.py" "$PROBE" || fail "torch.optim disagrees"
