"""The PyTorch side of bench/optim_speed.sh: one epoch of the Quickstart MLP on the first LIMIT FashionMNIST
training images (batch 64, in order) with the optimizer named, as torch.optim runs it by default (the foreach
implementation where PyTorch picks it); prints {"samples_per_s": ...}.
usage: optim_speed.py DATA LIMIT THREADS OPTIMIZER"""
import gzip, json, sys, time
import numpy as np
import torch
from torch import nn

OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.01),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-3),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-3),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=1e-3),
    "adagrad": lambda p: torch.optim.Adagrad(p, lr=1e-2),
}

def main():
    data, limit, threads, name = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    torch.set_num_threads(threads)
    raw = gzip.open(data + "/train-images-idx3-ubyte.gz").read()
    x = torch.from_numpy(np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28)[:limit].astype(np.float32) / 255)
    y = torch.from_numpy(np.frombuffer(gzip.open(data + "/train-labels-idx1-ubyte.gz").read(), np.uint8,
                                       offset=8)[:limit].astype(np.int64))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 10))
    opt = OPTIMIZERS[name](model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for i in range(0, limit, 64):
        loss = loss_fn(model(x[i:i + 64]), y[i:i + 64])
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(json.dumps({"samples_per_s": limit / (time.perf_counter() - t0)}))

if __name__ == "__main__":
    main()
