"""PyTorch parity of the model zoo and of the layers' edge cases: for each case, lathe_probe runs one train
step of the Lathe model (forward and backward, no optimizer) on a batch made here and writes the initial
parameters, the logits, the loss, every gradient, the buffers after the step and the eval-mode logits after
the step; the equivalent PyTorch nn.Module loads those parameters with load_state_dict(strict=True), runs the
same batch forward and backward in train mode and then forward in eval mode, and every tensor must agree
within a relative error of 1e-4 (float32).

usage: torch_zoo.py PROBE SOURCE_DIR WORK_DIR [CASE ...]     (no CASE: all of them)"""
import json, math, os, struct, subprocess, sys, time
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

TOL = 1e-4

# ---------------------------------------------------------------- safetensors, by the format's own rules

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}

def load_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        arr = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out

def save_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        header[name] = {"dtype": NAMES[arr.dtype], "shape": list(arr.shape), "data_offsets": [off, off + arr.nbytes]}
        blobs.append(arr.tobytes())
        off += arr.nbytes
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))

# ---------------------------------------------------------------- the zoo's PyTorch modules

class FashionCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.net(x)

class ConvMLP(nn.Module):  # seed 004's MLP
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Sequential(nn.Conv2d(3, 64, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.layer2 = nn.Sequential(nn.Conv2d(64, 30, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.layer3 = nn.Sequential(nn.Linear(30 * 5 * 5, 10, bias=True), nn.ReLU(inplace=True))

    def forward(self, x):
        x = self.layer2(self.layer1(x))
        return self.layer3(x.view(x.shape[0], -1))

class LinearRegression(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, x):
        return self.linear(x)

class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5)
        self.pool = nn.AvgPool2d(2, 2)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = torch.flatten(self.pool(F.relu(self.conv2(x))), 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (self.shortcut(x) if self.shortcut is not None else x))

class ResNet20(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(*[BasicBlock(16, 16) for _ in range(3)])
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2), BasicBlock(32, 32), BasicBlock(32, 32))
        self.layer3 = nn.Sequential(BasicBlock(32, 64, 2), BasicBlock(64, 64), BasicBlock(64, 64))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

class VGG11BN(nn.Module):
    def __init__(self):
        super().__init__()
        layers, c = [], 1
        for v in [16, "M", 32, "M", 64, 64, "M", 128, 128, 128, 128]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(True)]
                c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(2)
        self.classifier = nn.Sequential(nn.Linear(512, 256), nn.ReLU(True), nn.Dropout(0.0),
                                        nn.Linear(256, 256), nn.ReLU(True), nn.Dropout(0.0), nn.Linear(256, 10))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

def heads(t, n_head):  # [N, T, C] -> [N, heads, T, C / heads]
    n, T, c = t.shape
    return t.view(n, T, n_head, c // n_head).transpose(1, 2)

class ViTAttention(nn.Module):  # timm's Attention
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads, self.qkv, self.proj = num_heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        n, T, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = heads(q, self.num_heads), heads(k, self.num_heads), heads(v, self.num_heads)
        att = F.softmax((q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1))), dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(n, T, c))

class ViTMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))

class ViTBlock(nn.Module):
    def __init__(self, dim, heads_):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), ViTAttention(dim, heads_)
        self.norm2, self.mlp = nn.LayerNorm(dim), ViTMlp(dim, 4 * dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))

class PatchEmbed(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(1, 64, 7, stride=7)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)

class ViTTiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch_embed = PatchEmbed()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 64))
        self.pos_embed = nn.Parameter(torch.zeros(1, 17, 64))
        self.blocks = nn.ModuleList([ViTBlock(64, 4) for _ in range(2)])
        self.norm, self.head = nn.LayerNorm(64), nn.Linear(64, 10)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x)[:, 0])

class CausalSelfAttention(nn.Module):  # nanoGPT's, the mask made on the fly (no "bias" buffer)
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.n_head, self.c_attn, self.c_proj = n_head, nn.Linear(n_embd, 3 * n_embd), nn.Linear(n_embd, n_embd)

    def forward(self, x):
        n, T, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = heads(q, self.n_head), heads(k, self.n_head), heads(v, self.n_head)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(torch.tril(torch.ones(T, T, dtype=torch.bool)).logical_not(), float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(n, T, c))

class GPTMLP(nn.Module):
    def __init__(self, n_embd):
        super().__init__()
        self.c_fc, self.c_proj = nn.Linear(n_embd, 4 * n_embd), nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))

class GPTBlock(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(n_embd), CausalSelfAttention(n_embd, n_head)
        self.ln_2, self.mlp = nn.LayerNorm(n_embd), GPTMLP(n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

class CharGPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(256, 64), nn.Embedding(32, 64)
        self.h = nn.ModuleList([GPTBlock(64, 4) for _ in range(2)])
        self.ln_f = nn.LayerNorm(64)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.h:
            x = b(x)
        return self.ln_f(x) @ self.wte.weight.T

# ---------------------------------------------------------------- edge cases, each a small Lathe model

TRAIN = """
train M {{
    data      = {data}
    batch     = 8
    loss      = {loss}
    optimizer = SGD(lr = 0.1)
}}
"""
IDX = 'idx("i", "l")'
CSV = 'csv("d.csv", regression = true)'

CONV_EDGE = """
model M {
    a = Conv2d(3, 6, 3, stride = 2, padding = 1, dilation = 2, groups = 3)
    b = Conv2d(6, 6, 3, padding = 2, groups = 6, bias = false)
    c = Conv2d(6, 4, 2, stride = [2, 1], padding = [0, 1], dilation = [1, 2])
    fc = Linear(4 * 4 * 6, 5)
    forward(x: f32[N, 3, 13, 10]) -> f32[N, 5] {
        x = relu(a(x))
        x = relu(b(x))
        x = c(x)
        return fc(flatten(x))
    }
}
"""

class ConvEdge(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, stride=2, padding=1, dilation=2, groups=3)
        self.b = nn.Conv2d(6, 6, 3, padding=2, groups=6, bias=False)
        self.c = nn.Conv2d(6, 4, 2, stride=(2, 1), padding=(0, 1), dilation=(1, 2))
        self.fc = nn.Linear(96, 5)

    def forward(self, x):
        x = F.relu(self.b(F.relu(self.a(x))))
        return self.fc(torch.flatten(self.c(x), 1))

POOL_EDGE = """
model M {
    conv = Conv2d(2, 3, 2)
    mp = MaxPool2d(3, stride = 2, padding = 1, ceil_mode = true)
    fc = Linear(3 * 4 * 3 + 3 * 4 * 3 + 3 * 3 * 2 + 3 * 2 * 2, 4)
    forward(x: f32[N, 2, 8, 6]) -> f32[N, 4] {
        y = conv(x)
        a = mp(y)
        b = avg_pool2d(y, 3, stride = 2, padding = 1, ceil_mode = true, count_include_pad = false)
        c = adaptive_avg_pool2d(y, [3, 2])
        d = max_pool2d(y, [2, 3], stride = [3, 2], dilation = [2, 1])
        return fc(cat([flatten(a), flatten(b), flatten(c), flatten(d)], axis = 1))
    }
}
"""

class PoolEdge(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 2)
        self.mp = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.fc = nn.Linear(36 + 36 + 18 + 12, 4)

    def forward(self, x):
        y = self.conv(x)
        a = self.mp(y)
        b = F.avg_pool2d(y, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        c = F.adaptive_avg_pool2d(y, (3, 2))
        d = F.max_pool2d(y, (2, 3), stride=(3, 2), dilation=(2, 1))
        return self.fc(torch.cat([t.flatten(1) for t in (a, b, c, d)], 1))

NORM_EDGE = """
model M {
    fc1 = Linear(6, 8)
    bn = BatchNorm1d(8)
    bn_seq = BatchNorm1d(4, momentum = 0.3, eps = 1e-3)
    ln = LayerNorm(8)
    ln_plain = LayerNorm(8, elementwise_affine = false)
    fc2 = Linear(8, 3, bias = false)
    act = GELU(approximate = "tanh")
    drop = Dropout(0.0)
    forward(x: f32[N, 6]) -> f32[N, 3] {
        h = bn(fc1(x))
        s = bn_seq(reshape(h, [dim(h, 0), 4, 2]))
        h = reshape(s, [dim(h, 0), 8])
        h = act(ln(h)) + silu(ln_plain(h)) + leaky_relu(h, 0.2) + gelu(h)
        return softmax(drop(fc2(h)), -1) + log_softmax(h, 1)[:, 0:3] + softmax(h, dim = 0)[:, 3:6]
    }
}
"""

class NormEdge(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.bn = nn.Linear(6, 8), nn.BatchNorm1d(8)
        self.bn_seq = nn.BatchNorm1d(4, momentum=0.3, eps=1e-3)
        self.ln, self.ln_plain = nn.LayerNorm(8), nn.LayerNorm(8, elementwise_affine=False)
        self.fc2, self.act, self.drop = nn.Linear(8, 3, bias=False), nn.GELU(approximate="tanh"), nn.Dropout(0.0)

    def forward(self, x):
        h = self.bn(self.fc1(x))
        h = self.bn_seq(h.reshape(-1, 4, 2)).reshape(-1, 8)
        h = self.act(self.ln(h)) + F.silu(self.ln_plain(h)) + F.leaky_relu(h, 0.2) + F.gelu(h)
        return F.softmax(self.drop(self.fc2(h)), -1) + F.log_softmax(h, 1)[:, 0:3] + F.softmax(h, dim=0)[:, 3:6]

ATTN_EDGE = """
model M {
    attn = CausalSelfAttention(12, 3)
    head = Linear(12, 4)
    forward(x: f32[N, 5, 12]) -> f32[N, 4] {
        return head(mean(attn(x), axis = 1))
    }
}
"""

class AttnEdge(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn, self.head = CausalSelfAttention(12, 3), nn.Linear(12, 4)

    def forward(self, x):
        return self.head(self.attn(x).mean(1))

CE_EDGE = """
model M {
    fc = Linear(7, 5)
    forward(x: f32[N, 7]) -> f32[N, 5] { return fc(x) }
}
def class_weight() { return cast(arange(5), f32) * 0.25 + 0.5 }
def ce_losses(logits, label) {
    w = class_weight()
    a = cross_entropy(logits, label, weight = w, label_smoothing = 0.1)
    b = cross_entropy(logits, label, ignore_index = 2, reduction = "sum") * 0.1
    c = mean(cross_entropy(logits, label, reduction = "none", label_smoothing = 0.2))
    d = nll_loss(log_softmax(logits, 1), label, weight = w, ignore_index = 1)
    e = cross_entropy(logits, label, weight = w, ignore_index = 3, label_smoothing = 0.3, reduction = "sum")
    return a + b + c + d + e * 0.05
}
"""

def ce_losses(logits, label):
    w = torch.arange(5, dtype=torch.float32) * 0.25 + 0.5
    a = F.cross_entropy(logits, label, weight=w, label_smoothing=0.1)
    b = F.cross_entropy(logits, label, ignore_index=2, reduction="sum") * 0.1
    c = F.cross_entropy(logits, label, reduction="none", label_smoothing=0.2).mean()
    d = F.nll_loss(F.log_softmax(logits, 1), label, weight=w, ignore_index=1)
    e = F.cross_entropy(logits, label, weight=w, ignore_index=3, label_smoothing=0.3, reduction="sum")
    return a + b + c + d + e * 0.05

CE_KDIM = """
model M {
    emb = Embedding(11, 6)
    fc = Linear(6, 4)
    forward(x: i64[N, 9]) -> f32[N, 4, 9] { return transpose(fc(emb(x)), 1, 2) }
}
"""

class CEKDim(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.fc = nn.Embedding(11, 6), nn.Linear(6, 4)

    def forward(self, x):
        return self.fc(self.emb(x)).transpose(1, 2)

REG_EDGE = """
model M {
    fc = Linear(3, 2)
    forward(x: f32[N, 3]) -> f32[N, 2] { return fc(x) }
}
def reg_losses(out, label) {
    p = out[:, 0:1]
    q = out[:, 1:2]
    t = sigmoid(label)
    a = mse_loss(p, label) + l1_loss(q, label, reduction = "sum") * 0.1
    b = smooth_l1_loss(p, label) + smooth_l1_loss(q, label, beta = 0.5, reduction = "sum") * 0.1
    c = smooth_l1_loss(p * 3, label, beta = 0.0)
    d = binary_cross_entropy(sigmoid(p), t) + mean(binary_cross_entropy(sigmoid(q), t, reduction = "none"))
    e = binary_cross_entropy_with_logits(p, t) + binary_cross_entropy_with_logits(q, t, reduction = "sum") * 0.1
    f = binary_cross_entropy_with_logits(q, t, pos_weight = full([1], 2.0), weight = full([1], 0.5))
    return a + b + c + d + e + f
}
"""

def reg_losses(out, label):
    p, q, t = out[:, 0:1], out[:, 1:2], torch.sigmoid(label)
    a = F.mse_loss(p, label) + F.l1_loss(q, label, reduction="sum") * 0.1
    b = F.smooth_l1_loss(p, label) + F.smooth_l1_loss(q, label, beta=0.5, reduction="sum") * 0.1
    c = F.smooth_l1_loss(p * 3, label, beta=0.0)
    d = F.binary_cross_entropy(torch.sigmoid(p), t) + F.binary_cross_entropy(torch.sigmoid(q), t, reduction="none").mean()
    e = F.binary_cross_entropy_with_logits(p, t) + F.binary_cross_entropy_with_logits(q, t, reduction="sum") * 0.1
    f = F.binary_cross_entropy_with_logits(q, t, pos_weight=torch.full([1], 2.0), weight=torch.full([1], 0.5))
    return a + b + c + d + e + f

class CeModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(7, 5)

    def forward(self, x):
        return self.fc(x)

class RegModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x)

# The layers without parameters, BatchNorm2d without affine, Flatten of inner dims and Sequential of a list.
LAYERS_EDGE = """
model M {
    bn = BatchNorm2d(2, affine = false)
    flat = Flatten(1, 2)
    acts = Sequential([Identity(), Sigmoid(), Tanh(), SiLU(), LeakyReLU(0.1)])
    sm = Softmax(dim = 1)
    lsm = LogSoftmax(dim = -1)
    fc = Linear(4, 3)
    forward(x: f32[N, 2, 3, 4]) -> f32[N, 3] {
        h = flat(bn(x))
        h = acts(fc(h)) + sm(fc(h)) + lsm(fc(h))
        return sum(h, axis = 1)
    }
}
"""

class LayersEdge(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn, self.flat = nn.BatchNorm2d(2, affine=False), nn.Flatten(1, 2)
        self.acts = nn.Sequential(nn.Identity(), nn.Sigmoid(), nn.Tanh(), nn.SiLU(), nn.LeakyReLU(0.1))
        self.sm, self.lsm, self.fc = nn.Softmax(dim=1), nn.LogSoftmax(dim=-1), nn.Linear(4, 3)

    def forward(self, x):
        h = self.flat(self.bn(x))
        return (self.acts(self.fc(h)) + self.sm(self.fc(h)) + self.lsm(self.fc(h))).sum(1)

# Dropout draws its mask from Lathe's counter-based generator, not PyTorch's: the PyTorch side takes the
# mask that Lathe's logits show (an element is dropped where it is 0) and must then agree on everything, and
# about half of the elements must be dropped.
DROPOUT = """
model M {
    fc = Linear(6, 40)
    drop = Dropout(0.5)
    forward(x: f32[N, 6]) -> f32[N, 40] { return drop(fc(x)) }
}
"""

class DropoutCase(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.mask = nn.Linear(6, 40), None

    def prepare(self, lathe):
        self.mask = (lathe["logits"] != 0).float()
        kept = self.mask.mean().item()
        return [] if 0.35 <= kept <= 0.65 else [f"dropout kept {kept:.2f} of the elements, not about half"]

    def forward(self, x):
        return self.fc(x) * self.mask / 0.5 if self.training else self.fc(x)

# ---------------------------------------------------------------- the cases

def images(rng, *shape):
    return rng.random_sample(shape).astype(np.float32)

def classes(rng, n, k, *rest):
    return rng.randint(0, k, size=(n,) + rest).astype(np.int64)

CE = lambda logits, label: F.cross_entropy(logits, label)

# name: (model file or (text, file name), torch module, make x, make label, the train block's loss in torch)
CASES = {
    "fashion_cnn": ("models/fashion_cnn.lathe", FashionCNN, lambda r: images(r, 6, 1, 28, 28),
                    lambda r: classes(r, 6, 10), CE),
    "conv_mlp": ("models/conv_mlp.lathe", ConvMLP, lambda r: images(r, 5, 3, 32, 32), lambda r: classes(r, 5, 10), CE),
    "linear_regression": ("models/linear_regression.lathe", LinearRegression,
                          lambda r: r.standard_normal((9, 1)).astype(np.float32),
                          lambda r: r.standard_normal((9, 1)).astype(np.float32), F.mse_loss),
    "lenet5": ("models/lenet5.lathe", LeNet5, lambda r: images(r, 6, 1, 28, 28), lambda r: classes(r, 6, 10), CE),
    "resnet20": ("models/resnet20.lathe", ResNet20, lambda r: images(r, 4, 1, 28, 28), lambda r: classes(r, 4, 10), CE),
    "vgg11_bn": ("models/vgg11_bn.lathe", VGG11BN, lambda r: images(r, 4, 1, 28, 28), lambda r: classes(r, 4, 10), CE),
    "vit_tiny": ("models/vit_tiny.lathe", ViTTiny, lambda r: images(r, 4, 1, 28, 28), lambda r: classes(r, 4, 10), CE),
    "char_gpt": ("models/char_gpt.lathe", CharGPT, lambda r: classes(r, 3, 256, 32), lambda r: classes(r, 3, 256, 32),
                 lambda logits, label: F.cross_entropy(logits.transpose(1, 2), label)),
    "conv_edge": ((CONV_EDGE + TRAIN.format(data=IDX, loss="cross_entropy(logits, label)"), "conv_edge.lathe"),
                  ConvEdge, lambda r: r.standard_normal((3, 3, 13, 10)).astype(np.float32),
                  lambda r: classes(r, 3, 5), CE),
    "pool_edge": ((POOL_EDGE + TRAIN.format(data=IDX, loss="cross_entropy(logits, label)"), "pool_edge.lathe"),
                  PoolEdge, lambda r: r.standard_normal((3, 2, 8, 6)).astype(np.float32),
                  lambda r: classes(r, 3, 4), CE),
    "norm_edge": ((NORM_EDGE + TRAIN.format(data=IDX, loss="cross_entropy(logits, label)"), "norm_edge.lathe"),
                  NormEdge, lambda r: r.standard_normal((7, 6)).astype(np.float32), lambda r: classes(r, 7, 3), CE),
    "attn_edge": ((ATTN_EDGE + TRAIN.format(data=IDX, loss="cross_entropy(logits, label)"), "attn_edge.lathe"),
                  AttnEdge, lambda r: r.standard_normal((3, 5, 12)).astype(np.float32), lambda r: classes(r, 3, 4), CE),
    "ce_edge": ((CE_EDGE + TRAIN.format(data=IDX, loss="ce_losses(logits, label)"), "ce_edge.lathe"),
                CeModel, lambda r: r.standard_normal((11, 7)).astype(np.float32), lambda r: classes(r, 11, 5),
                ce_losses),
    "ce_kdim": ((CE_KDIM + TRAIN.format(data='text("t.txt", context = 9)', loss=
                 'cross_entropy(logits, label, ignore_index = 0, label_smoothing = 0.1)'), "ce_kdim.lathe"),
                CEKDim, lambda r: classes(r, 4, 11, 9), lambda r: classes(r, 4, 4, 9),
                lambda logits, label: F.cross_entropy(logits, label, ignore_index=0, label_smoothing=0.1)),
    "layers_edge": ((LAYERS_EDGE + TRAIN.format(data=IDX, loss="cross_entropy(logits, label)"), "layers_edge.lathe"),
                    LayersEdge, lambda r: r.standard_normal((5, 2, 3, 4)).astype(np.float32),
                    lambda r: classes(r, 5, 3), CE),
    "dropout": ((DROPOUT + TRAIN.format(data=IDX, loss="cross_entropy(logits, label)"), "dropout.lathe"),
                DropoutCase, lambda r: r.standard_normal((10, 6)).astype(np.float32), lambda r: classes(r, 10, 40), CE),
    "reg_edge": ((REG_EDGE + TRAIN.format(data=CSV, loss="reg_losses(logits, label)"), "reg_edge.lathe"),
                 RegModel, lambda r: r.standard_normal((10, 3)).astype(np.float32),
                 lambda r: r.standard_normal((10, 1)).astype(np.float32), reg_losses),
}

# ---------------------------------------------------------------- running and comparing

def rel_error(got, want, floor):
    """||got - want|| / max(||want||, floor): a norm-based relative error. The floor keeps tensors whose true
    value is (close to) zero, such as the bias of a convolution that a BatchNorm follows, from turning
    float32 rounding noise into a large relative error."""
    got, want = got.double(), want.double()
    return (got - want).norm().item() / max(want.norm().item(), floor)

def run_case(name, probe, src, work):
    t0 = time.time()
    model_file, module, make_x, make_label, loss_fn = CASES[name]
    if isinstance(model_file, tuple):
        text, fname = model_file
        model_file = os.path.join(work, fname)
        open(model_file, "w").write(text)
    else:
        model_file = os.path.join(src, model_file)
    rng = np.random.RandomState(sum(map(ord, name)))
    x, label = make_x(rng), make_label(rng)
    batch, out, init = (os.path.join(work, f"{name}.{k}.safetensors") for k in ("batch", "out", "init"))
    save_safetensors(batch, {"x": x, "label": label})
    r = subprocess.run([probe, model_file, "--seed", "7", "--batch-file", batch, "--out", out, "--init-out", init],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return [f"lathe_probe failed:\n{r.stderr.strip()}"]
    lathe = load_safetensors(out)

    torch.manual_seed(0)
    model = module()
    model.load_state_dict(load_safetensors(init), strict=True)
    model.train()
    early = model.prepare(lathe) if hasattr(model, "prepare") else []
    logits = model(torch.from_numpy(x))
    loss = loss_fn(logits, torch.from_numpy(label))
    loss.backward()

    want = {"logits": logits.detach(), "loss": loss.detach().reshape(())}
    grads = {f"grad.{k}": p.grad for k, p in model.named_parameters()}
    want.update(grads)
    want.update({f"updated.{k}": b for k, b in model.named_buffers()})  # every buffer moves in train mode
    model.eval()  # then the predict graph: running statistics, no dropout
    with torch.no_grad():
        want["eval_logits"] = model(torch.from_numpy(x))
    missing = sorted(k for k in want if k not in lathe)
    extra = sorted(k for k in lathe if k.startswith(("grad.", "updated.")) and k not in want)
    problems = early + ([f"missing from Lathe's step: {missing}"] if missing else [])
    problems += [f"not in PyTorch's model: {extra}"] if extra else []
    # Floors of the relative error (see rel_error): a gradient's is a hundredth of the norm of all gradients
    # together, so that one whose true value is about zero passes when it is within 1e-6 of that norm (float32
    # rounding); a buffer's is a hundredth of the root of its size (its values are of order 1).
    gnorm = math.sqrt(sum(g.double().norm().item() ** 2 for g in grads.values()))
    worst = 0.0
    for k, w in want.items():
        if k not in lathe:
            continue
        g = lathe[k]
        if tuple(g.shape) != tuple(w.shape):
            problems.append(f"{k}: shape {tuple(g.shape)}, PyTorch {tuple(w.shape)}")
            continue
        floor = 1e-2 * gnorm if k.startswith("grad.") else 1e-2 * math.sqrt(w.numel()) if k.startswith("updated.") else 0
        err = rel_error(g, w, max(floor, 1e-12))
        worst = max(worst, err)
        if not err <= TOL:
            problems.append(f"{k}: relative error {err:.2e} (|lathe| {g.double().norm():.4e}, "
                            f"|pytorch| {w.double().norm():.4e})")
    print(f"{name:18s} {len(want):3d} tensors, worst relative error {worst:.1e}  ({time.time() - t0:.1f} s)")
    return problems

def main():
    probe, src, work = sys.argv[1:4]
    names = sys.argv[4:] or list(CASES)
    torch.set_num_threads(1)
    failed = 0
    for name in names:
        problems = run_case(name, probe, src, work)
        for p in problems:
            print(f"FAIL {name}: {p}")
        failed += bool(problems)
    print(f"{len(names) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)

if __name__ == "__main__":
    main()
