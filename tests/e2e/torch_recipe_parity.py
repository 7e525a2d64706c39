"""Replays a Lathe training run in PyTorch and compares the parameters. From Lathe's checkpoint BEFORE (the
initial weights), trains the seed's NeuralNetwork on the first SAMPLES training images in order (batch 64,
CrossEntropyLoss) for EPOCHS epochs with the optimizer, schedule, clipping, accumulation and parameter groups
that RECIPE (JSON) describes, and compares every parameter with Lathe's checkpoint AFTER.
usage: torch_recipe_parity.py BEFORE AFTER DATA SAMPLES EPOCHS RECIPE"""
import json, math, sys
import numpy as np
import torch
from torch import nn
from torch_interop import NeuralNetwork, idx, load_safetensors

def optimizer(model, r):
    """r["optimizer"] = [name, kwargs]; r.get("groups") = [[glob, kwargs], ...] (the first match wins)."""
    import fnmatch
    name, kw = r["optimizer"]
    groups, rest = [], []
    specs = r.get("groups", [])
    for _ in specs:
        groups.append([])
    for pname, p in model.named_parameters():
        for i, (pat, _) in enumerate(specs):
            if fnmatch.fnmatch(pname, pat):
                groups[i].append(p)
                break
        else:
            rest.append(p)
    params = [{"params": rest}] + [dict(params=g, **specs[i][1]) for i, g in enumerate(groups)]
    return getattr(torch.optim, name)(params, **kw)

def scheduler(opt, r, steps_per_epoch, epochs):
    if "schedule" not in r:
        return None, False
    name, kw = r["schedule"]
    if name == "OneCycleLR":
        return torch.optim.lr_scheduler.OneCycleLR(opt, epochs=epochs, steps_per_epoch=steps_per_epoch, **kw), True
    if name == "LambdaLR":
        return torch.optim.lr_scheduler.LambdaLR(opt, eval("lambda epoch: " + kw["expr"])), False
    return getattr(torch.optim.lr_scheduler, name)(opt, **kw), False

def main():
    before, after, data = sys.argv[1:4]
    samples, epochs, r = int(sys.argv[4]), int(sys.argv[5]), json.loads(sys.argv[6])
    torch.set_num_threads(1)
    model = NeuralNetwork()
    model.load_state_dict(load_safetensors(before), strict=True)
    x = torch.from_numpy(idx(data + "/train-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)[:samples]
                         .astype(np.float32) / 255)
    y = torch.from_numpy(idx(data + "/train-labels-idx1-ubyte.gz", 8)[:samples].astype(np.int64))
    batch, k = 64, r.get("accumulate", 1)
    nb = (samples + batch - 1) // batch
    opt = optimizer(model, r)
    sched, per_step = scheduler(opt, r, (nb + k - 1) // k, epochs)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        assert nb % k == 0, "the replay takes whole groups of k batches"
        opt.zero_grad()
        for b in range(nb):
            loss = loss_fn(model(x[b * batch:(b + 1) * batch]), y[b * batch:(b + 1) * batch])
            (loss / k).backward()  # k batches' mean gradient, as Lathe's accumulate = k
            if (b + 1) % k:
                continue
            if "clip_grad_norm" in r:
                nn.utils.clip_grad_norm_(model.parameters(), r["clip_grad_norm"])
            if "clip_grad_value" in r:
                nn.utils.clip_grad_value_(model.parameters(), r["clip_grad_value"])
            opt.step()
            opt.zero_grad()
            if per_step:
                sched.step()
        if sched is not None and not per_step:
            sched.step()
    want = load_safetensors(after)
    start = load_safetensors(before)
    worst = 0.0
    for name, p in model.state_dict().items():
        moved = (p - start[name]).abs().max().item()
        diff = (p - want[name]).abs().max().item()
        rel = diff / max(moved, 1e-12)
        worst = max(worst, rel)
        print(f"{name:32s} moved {moved:.3e}  |lathe - pytorch| {diff:.3e}  ({rel:.1e} of the move)")
    assert worst <= float(r.get("tolerance", 1e-4)), f"parameters differ by {worst:.1e} of their change"

if __name__ == "__main__":
    main()
