"""The learning rates of torch.optim.lr_scheduler (PyTorch 1.13) against the runtime's (runtime/lrsched.c, through
tests/tools/rt_sched_probe): epoch schedules over 20 epochs, one scheduler.step() an epoch; OneCycleLR step by step
over 3 epochs of 7 steps. Several argument sets each; every value within a relative 1e-9. PyTorch's step() computes
the epoch schedules recursively (lr times a ratio each epoch) and lathe by the closed forms; over 20 epochs the two
differ by a few ulps (at most 4e-15 relative, CosineAnnealingLR past T_max included), so no case needs the looser 1e-6
kept for such recursive forms.

usage: torch_sched.py PATH/TO/rt_sched_probe"""
import json
import math
import subprocess
import sys
import warnings

import torch
from torch.optim import lr_scheduler as S

warnings.simplefilter("ignore")


def call(name, *args, **kwargs):
    return {"call": name, "args": list(args), "kwargs": kwargs}


def ident(name):
    return {"ident": name}


# name, recipe schedule, torch constructor, base lr, epochs, steps per epoch (1: an epoch schedule), tolerance
CASES = [
    ("StepLR(3, 0.5)", call("StepLR", 3, gamma=0.5), lambda o: S.StepLR(o, 3, gamma=0.5), 0.1, 20, 1, 1e-9),
    ("StepLR(7)", call("StepLR", step_size=7), lambda o: S.StepLR(o, step_size=7), 2.0, 20, 1, 1e-9),
    ("StepLR(1, 0.7)", call("StepLR", 1, 0.7), lambda o: S.StepLR(o, 1, 0.7), 1.0, 20, 1, 1e-9),
    ("MultiStepLR([9, 2, 5, 5], 0.5)", call("MultiStepLR", [9, 2, 5, 5], gamma=0.5),
     lambda o: S.MultiStepLR(o, [9, 2, 5, 5], gamma=0.5), 1.0, 20, 1, 1e-9),
    ("MultiStepLR([4, 12])", call("MultiStepLR", milestones=[4, 12]), lambda o: S.MultiStepLR(o, milestones=[4, 12]),
     0.3, 20, 1, 1e-9),
    ("ExponentialLR(0.9)", call("ExponentialLR", 0.9), lambda o: S.ExponentialLR(o, 0.9), 0.3, 20, 1, 1e-9),
    ("ExponentialLR(0.5)", call("ExponentialLR", gamma=0.5), lambda o: S.ExponentialLR(o, gamma=0.5), 1.0, 20, 1,
     1e-9),
    ("CosineAnnealingLR(7, 0.01)", call("CosineAnnealingLR", 7, eta_min=0.01),
     lambda o: S.CosineAnnealingLR(o, 7, eta_min=0.01), 0.1, 20, 1, 1e-9),
    ("CosineAnnealingLR(20)", call("CosineAnnealingLR", T_max=20), lambda o: S.CosineAnnealingLR(o, T_max=20), 0.1,
     20, 1, 1e-9),
    ("CosineAnnealingLR(4)", call("CosineAnnealingLR", 4), lambda o: S.CosineAnnealingLR(o, 4), 0.5, 20, 1, 1e-9),
    ("CosineAnnealingLR(5, 0.05)", call("CosineAnnealingLR", 5, 0.05), lambda o: S.CosineAnnealingLR(o, 5, 0.05), 0.1,
     20, 1, 1e-9),
    ("LinearLR(0.25, 0.75, 4)", call("LinearLR", start_factor=0.25, end_factor=0.75, total_iters=4),
     lambda o: S.LinearLR(o, start_factor=0.25, end_factor=0.75, total_iters=4), 2.0, 20, 1, 1e-9),
    ("LinearLR()", call("LinearLR"), lambda o: S.LinearLR(o), 3.0, 20, 1, 1e-9),
    ("LinearLR(1, 0.1, 10)", call("LinearLR", 1.0, 0.1, 10), lambda o: S.LinearLR(o, 1.0, 0.1, 10), 0.1, 20, 1,
     1e-9),
    ("ConstantLR(0.5, 3)", call("ConstantLR", factor=0.5, total_iters=3),
     lambda o: S.ConstantLR(o, factor=0.5, total_iters=3), 1.0, 20, 1, 1e-9),
    ("ConstantLR()", call("ConstantLR"), lambda o: S.ConstantLR(o), 0.1, 20, 1, 1e-9),
    ("LambdaLR(0.95 ** epoch)", call("LambdaLR", call("pow", 0.95, ident("epoch"))),
     lambda o: S.LambdaLR(o, lambda epoch: 0.95 ** epoch), 0.2, 20, 1, 1e-9),
    ("LambdaLR(1 / (1 + epoch))", call("LambdaLR", lr_lambda=call("div", 1, call("add", 1, ident("epoch")))),
     lambda o: S.LambdaLR(o, lr_lambda=lambda epoch: 1 / (1 + epoch)), 0.1, 20, 1, 1e-9),
    ("OneCycleLR(1.0)", call("OneCycleLR", 1.0),
     lambda o: S.OneCycleLR(o, 1.0, epochs=3, steps_per_epoch=7), 0.1, 3, 7, 1e-9),
    ("OneCycleLR(0.5, 25, 0.25, div 10, final 100)",
     call("OneCycleLR", max_lr=0.5, total_steps=25, pct_start=0.25, div_factor=10, final_div_factor=100),
     lambda o: S.OneCycleLR(o, max_lr=0.5, total_steps=25, pct_start=0.25, div_factor=10.0, final_div_factor=100.0),
     0.1, 3, 7, 1e-9),
    ("OneCycleLR(0.3, linear)", call("OneCycleLR", 0.3, anneal_strategy="linear"),
     lambda o: S.OneCycleLR(o, 0.3, epochs=3, steps_per_epoch=7, anneal_strategy="linear"), 0.1, 3, 7, 1e-9),
    ("OneCycleLR(0.3, three_phase)", call("OneCycleLR", 0.3, three_phase=True),
     lambda o: S.OneCycleLR(o, 0.3, epochs=3, steps_per_epoch=7, three_phase=True), 0.1, 3, 7, 1e-9),
    ("OneCycleLR(0.8, pct 0.4, linear, three_phase)",
     call("OneCycleLR", 0.8, pct_start=0.4, anneal_strategy="linear", three_phase=True),
     lambda o: S.OneCycleLR(o, 0.8, epochs=3, steps_per_epoch=7, pct_start=0.4, anneal_strategy="linear",
                            three_phase=True), 0.1, 3, 7, 1e-9),
]


def torch_lrs(make, base_lr, epochs, steps_per_epoch):
    """The lr of each optimizer step, scheduler.step() once an epoch (or once a step for a step schedule)."""
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=base_lr, momentum=0.9)
    sched = make(opt)
    lrs = []
    for _ in range(epochs):
        for _ in range(steps_per_epoch):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if steps_per_epoch > 1:
                sched.step()
        if steps_per_epoch == 1:
            sched.step()
    return lrs


def probe_lrs(probe, schedule, base_lr, epochs, steps_per_epoch):
    recipe = json.dumps({"schedule": schedule})
    out = subprocess.run([probe, recipe, "--base-lr", repr(base_lr), "--epochs", str(epochs), "--steps-per-epoch",
                          str(steps_per_epoch)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"rt_sched_probe {recipe} failed: {out.stderr.strip()}")
    return [float(line.split()[2]) for line in out.stdout.splitlines()]


def main():
    probe = sys.argv[1]
    failed = 0
    for name, schedule, make, base_lr, epochs, steps_per_epoch, tol in CASES:
        want = torch_lrs(make, base_lr, epochs, steps_per_epoch)
        got = probe_lrs(probe, schedule, base_lr, epochs, steps_per_epoch)
        if len(got) != len(want):
            print(f"FAIL {name}: {len(got)} values, PyTorch gives {len(want)}")
            failed += 1
            continue
        worst = 0.0
        for i, (g, w) in enumerate(zip(got, want)):
            err = abs(g - w) / max(abs(w), 1e-300) if w != 0 else abs(g)
            worst = max(worst, err)
            if not (err <= tol or abs(g - w) <= 1e-15 * base_lr):
                print(f"FAIL {name}: step {i}: lathe {g!r}, PyTorch {w!r} (relative error {err:.3g} > {tol:g})")
                failed += 1
                break
        else:
            print(f"ok   {name}: {len(got)} values, worst relative error {worst:.3g}")
    if failed:
        raise SystemExit(f"{failed} of {len(CASES)} schedules differ from PyTorch's")
    print(f"{len(CASES)} schedules agree with torch.optim.lr_scheduler {torch.__version__}")


if __name__ == "__main__":
    main()
