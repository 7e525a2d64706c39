"""torch_optim.py PROBE: the runtime's optimizers (rt_optim_probe) against torch.optim, step by step.

For each case (an optimizer with a set of options, clipping, accumulation, parameter groups, a schedule of
learning rates), random parameters of a small model and 10 batches of random gradients go through both; after
every step the parameters and every state tensor (momentum_buffer, exp_avg, ...) must agree to a relative
1e-6 for f32 and 1e-12 for f64 (elements below the tensor's root mean square measured against that), and
the state tensors must be the ones torch keeps, under
"optimizer.<param>.<key>". Prints the largest error of each case."""
import fnmatch
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

PROBE = sys.argv[1]
FEEDS = 10

# name, shape, trainable: a small network's parameters and one buffer that no optimizer may touch
PARAMS = [("fc1.weight", [6, 5], True), ("fc1.bias", [6], True), ("bn.weight", [6], True),
          ("bn.running_mean", [6], False), ("head.weight", [3, 6], True), ("head.bias", [3], True)]


def call(name, *args, **kwargs):
    return {"call": name, "args": list(args), "kwargs": kwargs}


def group(*patterns, **kwargs):
    return call("group", *patterns, **kwargs)


SCHEDULE = [[0.05 * 0.8 ** f, 0.02 * 0.9 ** f] for f in range(FEEDS)]

# name, recipe, dtype, group lrs per feed (None: the recipe's)
CASES = [
    ("sgd", {"optimizer": call("SGD", lr=0.1)}, "f32", None),
    ("sgd_positional_momentum_dampening_wd", {"optimizer": call("SGD", 0.05, 0.9, 0.1, 0.01)}, "f32", None),
    ("sgd_nesterov_maximize", {"optimizer": call("SGD", lr=0.1, momentum=0.8, nesterov=True, weight_decay=1e-3,
                                                 maximize=True)}, "f32", None),
    ("sgd_groups_schedule", {"optimizer": call("SGD", lr=0.05, momentum=0.9, weight_decay=0.01),
                             "param_groups": [group("*.bias", "bn.*", weight_decay=0)]}, "f32", SCHEDULE),
    ("adam", {"optimizer": call("Adam", lr=1e-2)}, "f32", None),
    ("adam_amsgrad_wd_betas", {"optimizer": call("Adam", lr=1e-2, betas=[0.8, 0.99], eps=1e-6, weight_decay=0.1,
                                                 amsgrad=True)}, "f32", None),
    ("adam_maximize_clip_norm", {"optimizer": call("Adam", lr=1e-2, maximize=True), "clip_grad_norm": 1.0},
     "f32", None),
    ("adamw", {"optimizer": call("AdamW", lr=1e-2)}, "f32", None),
    ("adamw_amsgrad_groups", {"optimizer": call("AdamW", 1e-2, [0.9, 0.95], 1e-8, 0.05, True),
                              "param_groups": [group("*.bias", weight_decay=0), group("head.*", lr=3e-3)]},
     "f32", None),
    ("rmsprop", {"optimizer": call("RMSprop", lr=1e-2)}, "f32", None),
    ("rmsprop_centered_momentum_wd", {"optimizer": call("RMSprop", lr=1e-2, alpha=0.9, momentum=0.9,
                                                        centered=True, weight_decay=0.01)}, "f32", None),
    ("rmsprop_momentum_maximize_clip_value", {"optimizer": call("RMSprop", lr=1e-2, momentum=0.5, maximize=True),
                                              "clip_grad_value": 0.5}, "f32", None),
    ("adagrad", {"optimizer": call("Adagrad", lr=0.1)}, "f32", None),
    ("adagrad_decay_wd_initial", {"optimizer": call("Adagrad", 0.1, 0.1, 0.01, 0.1, 1e-8)}, "f32", None),
    ("adam_accumulate3_clip_norm", {"optimizer": call("Adam", lr=1e-2), "accumulate": 3, "clip_grad_norm": 0.5},
     "f32", None),
    ("sgd_both_clips_groups_schedule", {"optimizer": call("SGD", lr=0.1, momentum=0.9, dampening=0.5),
                                        "param_groups": [group("head.*", momentum=0.5)],
                                        "clip_grad_norm": 2.0, "clip_grad_value": 0.3}, "f32", SCHEDULE),
    ("f64_adam_amsgrad", {"optimizer": call("Adam", lr=1e-2, amsgrad=True, weight_decay=0.01)}, "f64", None),
    ("f64_sgd_nesterov", {"optimizer": call("SGD", lr=0.1, momentum=0.9, nesterov=True)}, "f64", None),
    ("f64_rmsprop_centered", {"optimizer": call("RMSprop", lr=1e-2, centered=True, momentum=0.5)}, "f64", None),
    ("f64_adagrad_clip_norm", {"optimizer": call("Adagrad", lr=0.1, lr_decay=0.05), "clip_grad_norm": 1.0},
     "f64", None),
]

TORCH_DTYPE = {"f32": torch.float32, "f64": torch.float64}
NP_DTYPE = {"f32": np.float32, "f64": np.float64}


def torch_optimizer(recipe, params, dtype):
    """torch.optim's optimizer for the recipe, its groups made with the recipe's first-match rule."""
    opt = recipe["optimizer"]
    groups = [{"params": []}] + [dict(g["kwargs"], params=[]) for g in recipe.get("param_groups", [])]
    for name, _, trainable in PARAMS:
        if not trainable:
            continue
        k = next((i + 1 for i, g in enumerate(recipe.get("param_groups", []))
                  if any(fnmatch.fnmatchcase(name, p) for p in g["args"])), 0)
        groups[k]["params"].append(params[name])
    groups = [g for g in groups if g["params"]]
    return getattr(torch.optim, opt["call"])(groups, *opt["args"], foreach=False, **opt["kwargs"])


def run_case(name, recipe, dtype, lrs, rng, work):
    npd = NP_DTYPE[dtype]
    init = {n: rng.standard_normal(s).astype(npd) for n, s, _ in PARAMS}
    grads = [{n: (rng.standard_normal(s) * rng.uniform(0.1, 2.0)).astype(npd) for n, s, t in PARAMS if t}
             for _ in range(FEEDS)]

    manifest = {"params": [{"name": n, "dtype": dtype, "shape": s, "trainable": t, "buffer": not t}
                           for n, s, t in PARAMS],
                "recipe": recipe, "feeds": FEEDS}
    if lrs:
        manifest["lrs"] = lrs
    case_json, case_bin = os.path.join(work, "case.json"), os.path.join(work, "case.bin")
    out_json, out_bin = os.path.join(work, "out.json"), os.path.join(work, "out.bin")
    with open(case_json, "w") as f:
        json.dump(manifest, f)
    with open(case_bin, "wb") as f:
        for n, _, _ in PARAMS:
            f.write(init[n].tobytes())
        for g in grads:
            for n, _, t in PARAMS:
                if t:
                    f.write(g[n].tobytes())
    subprocess.run([PROBE, case_json, case_bin, out_json, out_bin], check=True)
    report = json.load(open(out_json))
    out = np.fromfile(out_bin, dtype=npd)

    params = {n: torch.nn.Parameter(torch.tensor(init[n])) for n, _, t in PARAMS if t}
    trained = list(params.values())
    opt = torch_optimizer(recipe, params, dtype)
    k = recipe.get("accumulate", 1)
    tol = 1e-6 if dtype == "f32" else 1e-12
    worst, pos, step = 0.0, 0, 0
    acc, pending = None, 0
    for f in range(FEEDS + 1):
        if f < FEEDS:
            g = [torch.tensor(grads[f][n]) for n in params]
            acc = g if pending == 0 else [a + b for a, b in zip(acc, g)]
            pending += 1
            if pending < k:
                continue
        elif pending == 0:
            break
        for p, a in zip(trained, acc):
            p.grad = a / pending if pending > 1 else a.clone()
        pending = 0
        norm = float(torch.nn.utils.clip_grad_norm_(trained, recipe.get("clip_grad_norm", float("inf"))))
        if recipe.get("clip_grad_value"):
            torch.nn.utils.clip_grad_value_(trained, recipe["clip_grad_value"])
        if lrs:
            for gi, g in enumerate(opt.param_groups):
                g["lr"] = lrs[min(f, FEEDS - 1)][gi]
        opt.step()

        mine = report["steps"][step]
        if mine["after_feed"] != f:
            sys.exit(f"{name}: step {step} taken after feed {mine['after_feed']}, torch's after feed {f}")
        if abs(mine["grad_norm"] - norm) > 1e-5 * norm:
            sys.exit(f"{name}: step {step}: gradient norm {mine['grad_norm']}, torch's {norm}")
        expect = [(f"param {n}", params[n]) for n in params]
        state_names = set()
        for n, p in params.items():
            for key, v in opt.state[p].items():
                if key != "step" and v is not None:  # SGD keeps momentum_buffer None without momentum
                    state_names.add(f"optimizer.{n}.{key}")
        mine_names = [s["name"] for s in report["state"]]
        if set(mine_names) != state_names or len(mine_names) != len(state_names):
            sys.exit(f"{name}: state tensors {sorted(mine_names)}, torch keeps {sorted(state_names)}")
        for s in report["state"]:
            n, key = s["name"][len("optimizer."):].rsplit(".", 1)
            expect.append((s["name"], opt.state[params[n]][key]))
        for what, t in expect:
            t = t.detach().numpy().ravel()
            got = out[pos:pos + t.size]
            pos += t.size
            if got.size != t.size:
                sys.exit(f"{name}: OUT.bin ends early at step {step} ({what})")
            # relative error; an element smaller than the tensor's root mean square is measured against that,
            # since one that came out of a cancellation (exp_avg = 0.9 m + 0.1 g near 0) carries the
            # rounding of its larger terms: clip_grad_norm_'s f32 norm is summed in an order of torch's own
            rms = max(float(np.sqrt(np.mean(np.square(t.astype(np.float64))))), 1e-30)
            err = np.abs(got.astype(np.float64) - t) / np.maximum(np.abs(t), rms)
            if err.size and float(err.max()) > worst:
                worst = float(err.max())
            if err.size and float(err.max()) > tol:
                i = int(err.argmax())
                sys.exit(f"{name}: step {step}, {what}[{i}]: lathe {got[i]!r}, torch {t[i]!r} "
                         f"(relative error {err[i]:.3g} > {tol:g})")
        step += 1
    if step != len(report["steps"]) or pos != out.size:
        sys.exit(f"{name}: lathe took {len(report['steps'])} steps, torch {step}")
    return worst, step


def main():
    torch.set_num_threads(1)
    rng = np.random.default_rng(20251124)
    with tempfile.TemporaryDirectory() as work:
        for name, recipe, dtype, lrs in CASES:
            worst, steps = run_case(name, recipe, dtype, lrs, rng, work)
            print(f"{name:40s} {dtype}  {steps:2d} steps  max relative error {worst:.3g}")
    print("ok")


if __name__ == "__main__":
    main()
