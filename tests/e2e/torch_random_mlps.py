"""Generates COUNT random MLPs (seeded), writes each as a Lathe model file and as a torch nn.Sequential with
the same state_dict names, and checks that 10 SGD steps from the same parameters give the same parameters.
usage: torch_random_mlps.py LATHE DATA COUNT"""
import os, random, shutil, subprocess, sys, tempfile
import numpy as np
import torch
from torch import nn
from torch_interop import idx, load_safetensors

ACTS = {"ReLU": nn.ReLU, "Sigmoid": nn.Sigmoid, "Tanh": nn.Tanh}

def generate(rng):
    widths = [784] + [rng.choice([7, 16, 33, 64, 100]) for _ in range(rng.randint(1, 3))] + [10]
    layers = []
    for i in range(len(widths) - 1):
        layers.append(("Linear", widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append((rng.choice(sorted(ACTS)),))
    loss = rng.choice(["cross_entropy", "mse"])
    return layers, loss

def lathe_source(layers, loss):
    body = ",\n        ".join(f"Linear({l[1]}, {l[2]})" if l[0] == "Linear" else f"{l[0]}()" for l in layers)
    loss_expr = ("cross_entropy(logits, label)" if loss == "cross_entropy"
                 else "mse_loss(softmax(logits, axis = 1), one_hot(label, 10))")
    return f"""model Random {{
    net = Sequential(
        {body},
    )
    forward(x: f32[N, 1, 28, 28]) -> f32[N, 10] {{ return net(flatten(x)) }}
}}
train Random {{
    data = idx("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", scale = 1 / 255)
    test = idx("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", scale = 1 / 255)
    batch = 64
    loss = {loss_expr}
    optimizer = SGD(lr = 0.05)
}}
"""

def torch_model(layers):
    mods = [nn.Linear(l[1], l[2]) if l[0] == "Linear" else ACTS[l[0]]() for l in layers]
    return nn.Sequential(nn.Flatten(), nn.Sequential(*mods))

def check(lathe, data, layers, loss, work):
    with open(os.path.join(work, "m.lathe"), "w") as f:
        f.write(lathe_source(layers, loss))
    run = lambda *a: subprocess.run(a, check=True, cwd=work, stdout=subprocess.DEVNULL)
    run(lathe, "compile", "m.lathe", "-o", "m")
    common = ["--data", data, "--limit", "640", "--no-shuffle", "--seed", "3"]
    run("./m", "train", *common, "--epochs", "1", "--checkpoint-dir", "a")
    os.makedirs(os.path.join(work, "b"))
    shutil.copy(os.path.join(work, "a/last.safetensors"), os.path.join(work, "b/last.safetensors"))
    run("./m", "train", *common, "--epochs", "2", "--checkpoint-dir", "b", "--resume", "b/last.safetensors")

    model = torch_model(layers)
    before = {"1." + k: v for k, v in load_safetensors(os.path.join(work, "a/last.safetensors")).items()}
    model.load_state_dict({k.replace("1.net.", "1."): v for k, v in before.items()}, strict=True)
    x = torch.from_numpy(idx(data + "/train-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)[:640]
                         .astype(np.float32) / 255)
    y = torch.from_numpy(idx(data + "/train-labels-idx1-ubyte.gz", 8)[:640].astype(np.int64))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for i in range(0, 640, 64):
        out = model(x[i:i + 64])
        if loss == "cross_entropy":
            l = nn.functional.cross_entropy(out, y[i:i + 64])
        else:
            l = nn.functional.mse_loss(out.softmax(1), nn.functional.one_hot(y[i:i + 64], 10).float())
        opt.zero_grad()
        l.backward()
        opt.step()
    after = load_safetensors(os.path.join(work, "b/last.safetensors"))
    worst = 0.0
    for name, p in model.state_dict().items():
        lname = name.replace("1.", "net.", 1)
        start = before["1." + lname]
        moved = (p - start).abs().max().item()
        diff = (p - after[lname]).abs().max().item()
        worst = max(worst, diff / max(moved, 1e-7))
    return worst

def main():
    lathe, data, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(1)
    rng = random.Random(2026)
    ok = True
    for k in range(count):
        layers, loss = generate(rng)
        work = tempfile.mkdtemp()
        try:
            worst = check(lathe, data, layers, loss, work)
        finally:
            shutil.rmtree(work)
        desc = " ".join(l[0] if l[0] != "Linear" else f"Linear({l[1]},{l[2]})" for l in layers)
        good = worst <= 1e-3  # float32 in another order; a wrong rule gives O(1)
        ok &= good
        print(f"{'ok  ' if good else 'FAIL'} {loss:13s} {desc}: |lathe - pytorch| = {worst:.1e} of the move")
    sys.exit(0 if ok else 1)

if __name__ == "__main__":
    main()
