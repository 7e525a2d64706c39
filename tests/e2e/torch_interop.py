"""Loads a Lathe checkpoint into the seed's PyTorch NeuralNetwork with load_state_dict(strict=True) and checks
that PyTorch computes the test accuracy and loss that Lathe's eval reported. The safetensors file is read
with the format's own rules (Debian has no python3-safetensors): an 8-byte little-endian header length, a JSON
header, then raw little-endian tensor data."""
import gzip, json, struct, sys
import numpy as np
import torch
from torch import nn

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}

def load_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[b:e], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out

class NeuralNetwork(nn.Module):  # the seed's class, as written in the Quickstart
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(28 * 28, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))

    def forward(self, x):
        return self.linear_relu_stack(self.flatten(x))

def idx(path, header):
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=header)

def main():
    ckpt, eval_json, data = sys.argv[1:4]
    model = NeuralNetwork()
    model.load_state_dict(load_safetensors(ckpt), strict=True)
    model.eval()
    x = torch.from_numpy(idx(data + "/t10k-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28).astype(np.float32) / 255)
    y = torch.from_numpy(idx(data + "/t10k-labels-idx1-ubyte.gz", 8).astype(np.int64))
    with torch.no_grad():
        logits = model(x)
        acc = (logits.argmax(1) == y).float().mean().item()
    lathe = json.load(open(eval_json))
    print(f"pytorch test accuracy {acc:.4f}, lathe {lathe['test_accuracy']:.4f}")
    # float32 summation order differs between OpenBLAS and PyTorch: allow a tie or two to flip
    assert abs(acc - lathe["test_accuracy"]) <= 2e-4, "accuracies differ"

if __name__ == "__main__":
    main()
