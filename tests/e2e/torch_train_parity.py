"""From Lathe's checkpoint BEFORE, runs one epoch of SGD in PyTorch on the first SAMPLES training images in
order (batch BATCH, lr LR, CrossEntropyLoss) and compares every parameter with Lathe's checkpoint AFTER.
usage: torch_train_parity.py BEFORE AFTER DATA SAMPLES BATCH LR"""
import sys
import numpy as np
import torch
from torch import nn
from torch_interop import NeuralNetwork, idx, load_safetensors

def main():
    before, after, data = sys.argv[1:4]
    samples, batch, lr = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
    torch.set_num_threads(1)
    model = NeuralNetwork()
    model.load_state_dict(load_safetensors(before), strict=True)
    x = torch.from_numpy(idx(data + "/train-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)[:samples]
                         .astype(np.float32) / 255)
    y = torch.from_numpy(idx(data + "/train-labels-idx1-ubyte.gz", 8)[:samples].astype(np.int64))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    for i in range(0, samples, batch):
        loss = loss_fn(model(x[i:i + batch]), y[i:i + batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    want = load_safetensors(after)
    worst = 0.0
    for name, p in model.state_dict().items():
        start = load_safetensors(before)[name]
        moved = (p - start).abs().max().item()          # how far PyTorch's SGD moved the tensor
        diff = (p - want[name]).abs().max().item()       # how far Lathe's result is from PyTorch's
        rel = diff / max(moved, 1e-12)
        worst = max(worst, rel)
        print(f"{name:32s} moved {moved:.3e}  |lathe - pytorch| {diff:.3e}  ({rel:.1e} of the move)")
    # float32 sums in another order: the difference must be tiny against what the 10 steps changed
    assert worst <= 1e-4, f"parameters differ by {worst:.1e} of their change"

if __name__ == "__main__":
    main()
