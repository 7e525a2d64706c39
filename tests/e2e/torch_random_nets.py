"""PyTorch parity on random small networks that nobody wrote by hand. From a seed, a generator composes a
network of convolutions (random channels, kernel, stride, padding, dilation, groups, bias), pools (max, avg,
adaptive; ceil_mode, count_include_pad), BatchNorm1d/2d, LayerNorm, Linear on rank-2 and rank-3 inputs,
every activation, Dropout(0), Flatten, residual adds, concatenated branches, attention (causal or not) and
Embedding, with one of the losses and its options, and writes it twice: as a Lathe model file and as the
source of a PyTorch nn.Module with the same state_dict names. lathe_probe runs one train step (forward and
backward; every eighth case with LLVM's -O 2) and the eval logits after it; PyTorch loads the same parameters
and must agree on the logits, the loss, every gradient, every buffer after the step and the eval logits,
within a norm-based relative error of 1e-4 of PyTorch's float64 step. FIXED holds the smallest reproducers of
the bugs this test finds (none so far).

usage: torch_random_nets.py PROBE WORK_DIR [SEEDS] [SEED ...]
  SEEDS: how many random seeds (0, 1, ...); further arguments: run only those seeds (or fixed case names).
  A failing case prints both of its sources (they are also in WORK_DIR/<case>/)."""
import math, os, random, subprocess, sys, time
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_zoo import load_safetensors, save_safetensors, rel_error  # noqa: E402

TOL = 1e-4

# Written into every Lathe file: a self-attention layer that is not nanoGPT's (causal or not, its own names).
LATHE_PRELUDE = """
layer Attn(width: int, n_head: int, causal = false) {
    qkv = Linear(width, 3 * width)
    proj = Linear(width, width, bias = false)
    forward(x) {
        n = dim(x, 0)
        t = dim(x, 1)
        y = qkv(x)
        q = transpose(reshape(y[..., 0:width], [n, t, n_head, -1]), 1, 2)
        k = transpose(reshape(y[..., width:2 * width], [n, t, n_head, -1]), 1, 2)
        v = transpose(reshape(y[..., 2 * width:], [n, t, n_head, -1]), 1, 2)
        o = transpose(attention(q, k, v, causal = causal), 1, 2)
        return proj(reshape(o, [n, t, width]))
    }
}
"""

class Attn(nn.Module):
    def __init__(self, width, n_head, causal=False):
        super().__init__()
        self.width, self.n_head, self.causal = width, n_head, causal
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width, bias=False)

    def forward(self, x):
        n, t, c = x.shape
        q, k, v = (z.reshape(n, t, self.n_head, -1).transpose(1, 2) for z in self.qkv(x).split(c, dim=2))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        if self.causal:
            att = att.masked_fill(torch.tril(torch.ones(t, t, dtype=torch.bool)).logical_not(), float("-inf"))
        return self.proj((F.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(n, t, c))

class CausalSelfAttention(nn.Module):  # nanoGPT's, as the stdlib's
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.n_head, self.c_attn, self.c_proj = n_head, nn.Linear(n_embd, 3 * n_embd), nn.Linear(n_embd, n_embd)

    def forward(self, x):
        n, t, c = x.shape
        q, k, v = (z.view(n, t, self.n_head, -1).transpose(1, 2) for z in self.c_attn(x).split(c, dim=2))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(torch.tril(torch.ones(t, t, dtype=torch.bool)).logical_not(), float("-inf"))
        return self.c_proj((F.softmax(att, dim=-1) @ v).transpose(1, 2).contiguous().view(n, t, c))

# ---------------------------------------------------------------- the generator

def lit(v):
    """A value as both languages write it (numbers, bools, strings, lists)."""
    if isinstance(v, bool):
        return ("true" if v else "false"), repr(v)
    if isinstance(v, (list, tuple)):
        parts = [lit(e) for e in v]
        tup = ", ".join(p[1] for p in parts) + ("," if len(v) == 1 else "")
        return "[" + ", ".join(p[0] for p in parts) + "]", "(" + tup + ")"
    if isinstance(v, str):
        return f'"{v}"', repr(v)
    return repr(v), repr(v)

def args(pos, kw):
    """Argument lists: (lathe, python) from positional values and keyword pairs."""
    lp = [lit(v) for v in pos]
    lk = [(k, lit(v)) for k, v in kw]
    return (", ".join([p[0] for p in lp] + [f"{k} = {v[0]}" for k, v in lk]),
            ", ".join([p[1] for p in lp] + [f"{k}={v[1]}" for k, v in lk]))

def pair(r, lo, hi):
    """A size for both spatial dims: an int, or [h, w] when they differ."""
    h, w = r.randint(lo, hi), r.randint(lo, hi)
    if r.random() < 0.5:
        w = h
    return h if h == w and r.random() < 0.7 else [h, w]

def hw(v):
    return (v[0], v[1]) if isinstance(v, list) else (v, v)

CONV_DEFAULTS = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True}
POOL_DEFAULTS = {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False, "count_include_pad": True}

def drop_defaults(r, kw, defaults):
    """The keyword arguments, some of those equal to their default left out (the defaults are tested too)."""
    return [(k, v) for k, v in kw if v != defaults.get(k, object()) or (v is not None and r.random() < 0.3)]

ACTS = ["ReLU", "LeakyReLU", "GELU", "GELU_tanh", "SiLU", "Sigmoid", "Tanh", "Softmax", "Dropout"]

class Net:
    """A network being written: members (sub-layers) and forward statements in both languages, and the shape
    of the current tensor `h` (the batch dim left out)."""

    def __init__(self, rng):
        self.rng, self.members, self.lf, self.pf, self.k, self.big = rng, [], [], [], 0, False

    def name(self, base):
        self.k += 1
        return f"{base}{self.k}"

    def layer(self, base, lathe_ctor, py_ctor):
        name = self.name(base)
        self.members.append((f"{name} = {lathe_ctor}", f"self.{name} = nn.{py_ctor}" if not py_ctor.startswith("@")
                             else f"self.{name} = {py_ctor[1:]}"))
        return name

    def stmt(self, lathe, py):
        self.lf.append(lathe)
        self.pf.append(py)

    def act(self, shape):
        r, kind = self.rng, self.rng.choice(ACTS)
        if kind == "LeakyReLU":
            s = r.choice([0.01, 0.2, 0.5])
            name = self.layer("act", f"LeakyReLU({s})", f"LeakyReLU({s})")
        elif kind == "GELU_tanh":
            name = self.layer("act", 'GELU(approximate = "tanh")', 'GELU(approximate="tanh")')
        elif kind == "Softmax":
            d = r.choice([1, -1])
            name = self.layer("act", f"Softmax(dim = {d})", f"Softmax(dim={d})")
        elif kind == "Dropout":
            name = self.layer("act", "Dropout(0.0)", "Dropout(0.0)")
        else:
            name = self.layer("act", f"{kind}()", f"{kind}()")
        self.stmt(f"h = {name}(h)", f"h = self.{name}(h)")
        return shape

    # ---- image stages, shape (C, H, W)

    def conv(self, shape, out=None, same=False):
        r, (c, hh, ww) = self.rng, shape
        for _ in range(50):
            g = r.choice([d for d in range(1, c + 1) if c % d == 0])
            o = out if out is not None else g * r.randint(1, max(1, (16 if self.big else 6) // g))
            if o % g:
                g = 1
            if same:
                k = r.choice([1, 3, 5]); s, p, d = 1, (k - 1) // 2, 1
            else:
                k, s, p, d = r.randint(1, 5), pair(r, 1, 3), pair(r, 0, 2), pair(r, 1, 2)
            oh = (hh + 2 * hw(p)[0] - hw(d)[0] * (k - 1) - 1) // hw(s)[0] + 1
            ow = (ww + 2 * hw(p)[1] - hw(d)[1] * (k - 1) - 1) // hw(s)[1] + 1
            # a kernel wider than the unpadded input makes python3-torch's CPU convolution corrupt its heap
            # (double free; see the report), so the kernel fits inside the input
            if oh >= 1 and ow >= 1 and hw(d)[0] * (k - 1) < hh and hw(d)[1] * (k - 1) < ww:
                break
        else:
            return None
        bias = r.random() < 0.6
        kw = [("stride", s), ("padding", p), ("dilation", d), ("groups", g), ("bias", bias)]
        a = args([c, o, k], drop_defaults(r, kw, CONV_DEFAULTS))
        return self.layer("conv", f"Conv2d({a[0]})", f"Conv2d({a[1]})"), (o, oh, ow)

    def pool_size(self, n, k, s, p, d, ceil):
        num = n + 2 * p - d * (k - 1) - 1
        if ceil:
            o = -(-num // s) + 1
            if (o - 1) * s >= n + p:
                o -= 1
        else:
            o = num // s + 1
        return o

    def image_stage(self, shape):
        r = self.rng
        kind = r.choice(["conv", "conv", "bn", "act", "maxpool", "avgpool", "adaptive", "residual", "cat"])
        c, hh, ww = shape
        if kind == "conv":
            made = self.conv(shape)
            if made:
                self.stmt(f"h = {made[0]}(h)", f"h = self.{made[0]}(h)")
                return made[1]
        elif kind == "bn":
            kw = [("eps", r.choice([1e-5, 1e-3])), ("momentum", r.choice([0.1, 0.3])), ("affine", r.random() < 0.7)]
            a = args([c], [kv for kv in kw if r.random() < 0.6])
            name = self.layer("bn", f"BatchNorm2d({a[0]})", f"BatchNorm2d({a[1]})")
            self.stmt(f"h = {name}(h)", f"h = self.{name}(h)")
            return shape
        elif kind == "act":
            return self.act(shape)
        elif kind in ("maxpool", "avgpool"):
            k = pair(r, 1, 3)
            s = r.choice([None, pair(r, 1, 3)])
            p = [r.randint(0, hw(k)[0] // 2), r.randint(0, hw(k)[1] // 2)]
            p = p[0] if p[0] == p[1] else p
            ceil = r.random() < 0.5
            d = pair(r, 1, 2) if kind == "maxpool" and r.random() < 0.4 else 1
            (kh, kw_), (sh, sw), (ph, pw), (dh, dw) = hw(k), hw(s or k), hw(p), hw(d)
            if dh * (kh - 1) < hh and dw * (kw_ - 1) < ww:
                oh = self.pool_size(hh, kh, sh, ph, dh, ceil)
                ow = self.pool_size(ww, kw_, sw, pw, dw, ceil)
                kw = [("stride", s), ("padding", p), ("ceil_mode", ceil)]
                kw += [("dilation", d)] if kind == "maxpool" else [("count_include_pad", r.random() < 0.5)]
                kw = drop_defaults(r, kw, POOL_DEFAULTS)
                a = args([k], kw)
                layer = "MaxPool2d" if kind == "maxpool" else "AvgPool2d"
                name = self.layer("pool", f"{layer}({a[0]})", f"{layer}({a[1]})")
                self.stmt(f"h = {name}(h)", f"h = self.{name}(h)")
                return (c, oh, ow)
        elif kind == "adaptive":
            oh, ow = r.randint(1, hh), r.randint(1, ww)
            size = oh if oh == ow and r.random() < 0.5 else [oh, ow]
            a = args([size], [])
            name = self.layer("pool", f"AdaptiveAvgPool2d({a[0]})", f"AdaptiveAvgPool2d({a[1]})")
            self.stmt(f"h = {name}(h)", f"h = self.{name}(h)")
            return (c, oh, ow)
        elif kind == "residual":
            made = self.conv(shape, out=c, same=True)
            if made:
                self.stmt(f"h = h + relu({made[0]}(h))", f"h = h + F.relu(self.{made[0]}(h))")
                return shape
        elif kind == "cat":
            a = self.conv(shape, same=True)
            b = self.conv(shape, same=True)
            if a and b:
                self.stmt(f"h = cat([{a[0]}(h), sigmoid({b[0]}(h))], axis = 1)",
                          f"h = torch.cat([self.{a[0]}(h), torch.sigmoid(self.{b[0]}(h))], dim=1)")
                return (a[1][0] + b[1][0], hh, ww)
        return shape

    # ---- sequence stages, shape (T, E)

    def seq_stage(self, shape):
        r, (t, e) = self.rng, shape
        kind = r.choice(["ln", "linear", "act", "attn", "residual", "bn1d", "cat", "blocks"])
        if kind == "ln":
            kw = [("eps", r.choice([1e-5, 1e-3])), ("elementwise_affine", r.random() < 0.7)]
            a = args([e], [kv for kv in kw if r.random() < 0.6])
            name = self.layer("ln", f"LayerNorm({a[0]})", f"LayerNorm({a[1]})")
            self.stmt(f"h = {name}(h)", f"h = self.{name}(h)")
        elif kind == "linear":
            o, bias = r.choice([4, 6, 8, 12]), r.random() < 0.6
            a = args([e, o], [("bias", bias)])
            name = self.layer("fc", f"Linear({a[0]})", f"Linear({a[1]})")
            self.stmt(f"h = {name}(h)", f"h = self.{name}(h)")
            return (t, o)
        elif kind == "act":
            return self.act(shape)
        elif kind == "attn":
            heads = r.choice([h for h in (1, 2, 3, 4) if e % h == 0])
            if r.random() < 0.4:
                name = self.layer("attn", f"CausalSelfAttention({e}, {heads})", f"@CausalSelfAttention({e}, {heads})")
            else:
                causal = r.random() < 0.5
                a = args([e, heads], [("causal", causal)])
                name = self.layer("attn", f"Attn({a[0]})", f"@Attn({a[1]})")
            self.stmt(f"h = h + {name}(h)", f"h = h + self.{name}(h)")
        elif kind == "residual":
            a = args([e, e], [("bias", r.random() < 0.5)])
            name = self.layer("fc", f"Linear({a[0]})", f"Linear({a[1]})")
            self.stmt(f"h = h + {name}(tanh(h))", f"h = h + self.{name}(torch.tanh(h))")
        elif kind == "blocks":  # a list of layers (ModuleList) and a for loop over it
            m = r.randint(1, 3)
            name = self.layer("blocks", f"[Linear({e}, {e}) for i in range({m})]",
                              f"@nn.ModuleList([nn.Linear({e}, {e}) for i in range({m})])")
            self.stmt(f"for b in {name} {{ h = h + sigmoid(b(h)) }}",
                      f"for b in self.{name}: h = h + torch.sigmoid(b(h))")
        elif kind == "bn1d":
            a = args([e], [("momentum", r.choice([0.1, 0.5]))])
            name = self.layer("bn", f"BatchNorm1d({a[0]})", f"BatchNorm1d({a[1]})")
            self.stmt(f"h = transpose({name}(transpose(h, 1, 2)), 1, 2)",
                      f"h = self.{name}(h.transpose(1, 2)).transpose(1, 2)")
        elif kind == "cat":
            o1, o2 = r.choice([2, 4]), r.choice([3, 4])
            a = self.layer("fc", f"Linear({e}, {o1})", f"Linear({e}, {o1})")
            b = self.layer("fc", f"Linear({e}, {o2}, bias = false)", f"Linear({e}, {o2}, bias=False)")
            self.stmt(f"h = cat([{a}(h), relu({b}(h))], axis = 2)",
                      f"h = torch.cat([self.{a}(h), F.relu(self.{b}(h))], dim=2)")
            return (t, o1 + o2)
        return shape

    # ---- flat stages, shape (F,)

    def flat_stage(self, shape):
        r, (f,) = self.rng, shape
        kind = r.choice(["linear", "act", "bn1d", "ln"])
        if kind == "linear":
            o = r.choice([5, 8, 16])
            a = args([f, o], [("bias", r.random() < 0.6)])
            name = self.layer("fc", f"Linear({a[0]})", f"Linear({a[1]})")
            self.stmt(f"h = {name}(h)", f"h = self.{name}(h)")
            return (o,)
        if kind == "act":
            return self.act(shape)
        if kind == "bn1d":
            kw = [("eps", r.choice([1e-5, 1e-2])), ("momentum", r.choice([0.1, 0.7])), ("affine", r.random() < 0.7)]
            a = args([f], [kv for kv in kw if r.random() < 0.6])
            name = self.layer("bn", f"BatchNorm1d({a[0]})", f"BatchNorm1d({a[1]})")
        else:
            a = args([f], [("elementwise_affine", r.random() < 0.7)])
            name = self.layer("ln", f"LayerNorm({a[0]})", f"LayerNorm({a[1]})")
        self.stmt(f"h = {name}(h)", f"h = self.{name}(h)")
        return shape

    def head(self, f, k):
        a = args([f, k], [("bias", self.rng.random() < 0.7)])
        name = self.layer("head", f"Linear({a[0]})", f"Linear({a[1]})")
        self.stmt(f"h = {name}(h)", f"h = self.{name}(h)")

def gen_loss(r, k, kdim):
    """A loss of logits [N, K] (or [N, K, T] when kdim) and class labels: (lathe def body, python body, the
    ignored class or None)."""
    red = r.choice(["mean", "sum"])
    kinds = ["ce", "ce", "nll"] + ([] if kdim else ["mse", "l1", "smooth_l1", "bce", "bce_logits"])
    kind = r.choice(kinds)
    if kind in ("ce", "nll"):
        kw = [("reduction", red)]
        ignore = r.randint(0, k - 1) if r.random() < 0.5 else None
        if ignore is not None:
            kw.append(("ignore_index", ignore))
        if kind == "ce" and r.random() < 0.5:
            kw.append(("label_smoothing", r.choice([0.1, 0.25])))
        a = args([], kw)
        lw, pw = "", ""
        if r.random() < 0.5:
            lw, pw = ", weight = w", ", weight=w"
        fn, pfn = ("cross_entropy", "F.cross_entropy") if kind == "ce" else ("nll_loss", "F.nll_loss")
        inp = ("logits", "logits") if kind == "ce" else ("log_softmax(logits, 1)", "F.log_softmax(logits, 1)")
        return (f"w = cast(arange({k}), f32) * 0.3 + 0.4\n    return {fn}({inp[0]}, label{lw}, {a[0]})",
                f"w = torch.arange({k}, dtype=DT) * 0.3 + 0.4\n    return {pfn}({inp[1]}, label{pw}, {a[1]})", ignore)
    t = (f"t = one_hot(label, {k})\n    w = cast(arange({k}), f32) * 0.2 + 0.5",
         f"t = F.one_hot(label, {k}).to(DT)\n    w = torch.arange({k}, dtype=DT) * 0.2 + 0.5")
    lw, pw = (", weight = w", ", weight=w") if r.random() < 0.4 else ("", "")
    if kind == "mse":
        body = (f"mse_loss(softmax(logits, 1), t, reduction = \"{red}\")",
                f"F.mse_loss(F.softmax(logits, 1), t, reduction=\"{red}\")")
    elif kind == "l1":
        body = (f"l1_loss(logits, t, reduction = \"{red}\")", f"F.l1_loss(logits, t, reduction=\"{red}\")")
    elif kind == "smooth_l1":
        beta = r.choice([0.0, 0.5, 1.0, 2.0])
        body = (f"smooth_l1_loss(logits, t, beta = {beta}, reduction = \"{red}\")",
                f"F.smooth_l1_loss(logits, t, beta={beta}, reduction=\"{red}\")")
    elif kind == "bce":
        body = (f"binary_cross_entropy(sigmoid(logits), t{lw}, reduction = \"{red}\")",
                f"F.binary_cross_entropy(torch.sigmoid(logits), t{pw}, reduction=\"{red}\")")
    else:
        if r.random() < 0.5:
            body = (f"binary_cross_entropy_with_logits(logits, t, reduction = \"{red}\", "
                    f"pos_weight = full([{k}], 1.5))",
                    f"F.binary_cross_entropy_with_logits(logits, t, reduction=\"{red}\", "
                    f"pos_weight=torch.full([{k}], 1.5, dtype=DT))")
        else:
            body = (f"binary_cross_entropy_with_logits(logits, t{lw}, reduction = \"{red}\")",
                    f"F.binary_cross_entropy_with_logits(logits, t{pw}, reduction=\"{red}\")")
    return f"{t[0]}\n    return {body[0]}", f"{t[1]}\n    return {body[1]}", None

def generate(seed):
    """One random case: a dict with the two sources, the data source and the batch."""
    r = random.Random(seed)
    net = Net(r)
    family = ["image", "image", "seq", "tokens", "flat"][seed % 5]
    n = r.randint(2, 5)
    k = r.randint(2, 6)
    npr = np.random.RandomState(seed)
    data, kdim = 'idx("i", "l")', False
    if family == "image":
        net.big = r.random() < 0.25  # more channels and pixels: the kernels' GEMM and scratch paths
        shape = ((r.randint(1, 8), r.choice([13, 16, 17]), r.choice([13, 15])) if net.big else
                 (r.randint(1, 4), r.choice([5, 7, 9, 11]), r.choice([5, 7, 8, 9])))
        xtype = f"f32[N, {shape[0]}, {shape[1]}, {shape[2]}]"
        x = npr.standard_normal((n,) + shape).astype(np.float32)
        for _ in range(r.randint(2, 4)):
            shape = net.image_stage(shape)
        c, hh, ww = shape
        how = r.choice(["flatten", "flatten12", "flatten23"])
        if how == "flatten":
            name = net.layer("flat", "Flatten()", "Flatten()")
            net.stmt(f"h = {name}(h)", f"h = self.{name}(h)")
            f = c * hh * ww
        elif how == "flatten12":  # [N, C * H, W], a Linear on rank 3, then flat
            name = net.layer("flat", "Flatten(1, 2)", "Flatten(1, 2)")
            net.stmt(f"h = {name}(h)", f"h = self.{name}(h)")
            shape = net.seq_stage((c * hh, ww))
            net.stmt("h = flatten(h)", "h = torch.flatten(h, 1)")
            f = shape[0] * shape[1]
        else:  # [N, C, H * W]: the mean over the positions
            name = net.layer("flat", "Flatten(start_dim = 2)", "Flatten(start_dim=2)")
            net.stmt(f"h = mean({name}(h), axis = 2)", f"h = self.{name}(h).mean(2)")
            f = c
        if r.random() < 0.5:
            (f,) = net.flat_stage((f,))
        net.head(f, k)
    elif family in ("seq", "tokens"):
        t, e = r.randint(2, 6), r.choice([4, 6, 8, 12])
        if family == "seq":
            xtype = f"f32[N, {t}, {e}]"
            x = npr.standard_normal((n, t, e)).astype(np.float32)
            net.stmt("h = x", "h = x")
        else:
            kdim, v = r.random() < 0.7, r.randint(5, 12)
            xtype = f"i64[N, {t}]"
            data = f'text("t.txt", context = {t})'
            x = npr.randint(0, v, size=(n, t)).astype(np.int64)
            emb = net.layer("emb", f"Embedding({v}, {e})", f"Embedding({v}, {e})")
            pos = net.layer("pos", f"Embedding({t}, {e})", f"Embedding({t}, {e})")
            net.stmt(f"h = {emb}(x) + {pos}(arange({t}))", f"h = self.{emb}(x) + self.{pos}(torch.arange({t}))")
        shape = (t, e)
        for _ in range(r.randint(2, 4)):
            shape = net.seq_stage(shape)
        if kdim:  # logits [N, K, T] for the loss over [N, C, d] inputs
            net.head(shape[1], k)
            net.stmt("h = transpose(h, 1, 2)", "h = h.transpose(1, 2)")
        else:
            how = r.choice(["mean", "first", "flatten"])
            if how == "mean":
                net.stmt("h = mean(h, axis = 1)", "h = h.mean(1)")
                f = shape[1]
            elif how == "first":
                net.stmt("h = h[:, -1]", "h = h[:, -1]")
                f = shape[1]
            else:
                name = net.layer("flat", "Flatten()", "Flatten()")
                net.stmt(f"h = {name}(h)", f"h = self.{name}(h)")
                f = shape[0] * shape[1]
            net.head(f, k)
    else:
        f = r.randint(3, 10)
        xtype = f"f32[N, {f}]"
        x = npr.standard_normal((n, f)).astype(np.float32)
        shape = (f,)
        for _ in range(r.randint(2, 5)):
            shape = net.flat_stage(shape)
        net.head(shape[0], k)
    if family != "tokens":
        net.lf.insert(0, "h = x")
        net.pf.insert(0, "h = x")
    label = npr.randint(0, k, size=(n, x.shape[1]) if kdim else (n,)).astype(np.int64)
    if family == "tokens" and not kdim:
        data = 'idx("i", "l")'  # x i64[N, T] with class labels [N]
    loss_l, loss_p, ignore = gen_loss(r, k, kdim)
    if ignore is not None and (label == ignore).all():  # a mean over no element is nan in both
        label.flat[0] = (ignore + 1) % k
    out = f"f32[N, {k}, {x.shape[1]}]" if kdim else f"f32[N, {k}]"
    case = make_case(net, xtype, out, data, loss_l, loss_p, x, label)
    case["opt"] = "2" if seed % 8 == 7 else "0"
    return case

def make_case(net, xtype, out, data, loss_l, loss_p, x, label):
    with_params = [m[0].split(" = ")[0] for m in net.members if m[0].split(" = ")[1].startswith(
        ("Linear", "Conv2d", "Embedding", "Attn", "CausalSelfAttention", "[")) and not m[0].startswith("head")]
    if with_params and net.rng.random() < 0.2:  # `freeze`: no gradient for that layer's parameters
        frozen = net.rng.choice(with_params)
        net.members.append((f"freeze {frozen}",
                            f"[p.requires_grad_(False) for p in self.{frozen}.parameters()]"))
    members = "\n".join("    " + m[0] for m in net.members)
    fwd = "\n".join("        " + s for s in net.lf)
    lathe = f"""{LATHE_PRELUDE}
model M {{
{members}
    forward(x: {xtype}) -> {out} {{
{fwd}
        return h
    }}
}}
def the_loss(logits, label) {{
    {loss_l}
}}
train M {{
    data      = {data}
    batch     = 8
    loss      = the_loss(logits, label)
    optimizer = SGD(lr = 0.1)
}}
"""
    init = "\n".join("        " + m[1] for m in net.members) or "        pass"
    fwd = "\n".join("        " + s for s in net.pf)
    py = f"""class M(nn.Module):
    def __init__(self):
        super().__init__()
{init}

    def forward(self, x):
{fwd}
        return h

def the_loss(logits, label):
    {loss_p}
"""
    return {"lathe": lathe, "py": py, "x": x, "label": label, "opt": "0"}

# ---------------------------------------------------------------- fixed cases: reproducers of bugs found

FIXED = {}

# ---------------------------------------------------------------- running and comparing

def torch_step(case, lathe, dtype):
    """PyTorch's train step and eval logits after it, in dtype, from the parameters Lathe initialised."""
    scope = {"nn": nn, "F": F, "torch": torch, "Attn": Attn, "CausalSelfAttention": CausalSelfAttention,
             "DT": dtype}
    exec(case["py"], scope)
    model = scope["M"]()
    model.load_state_dict({k: v for k, v in lathe.items() if k in model.state_dict()}, strict=True)
    model.to(dtype)  # floating parameters and buffers only; num_batches_tracked stays i64
    model.train()
    x, label = torch.from_numpy(case["x"]), torch.from_numpy(case["label"])
    if x.is_floating_point():
        x = x.to(dtype)
    logits = model(x)
    loss = scope["the_loss"](logits, label)
    loss.backward()
    want = {"logits": logits.detach(), "loss": loss.detach().reshape(())}
    want.update({f"grad.{k}": (p.grad if p.grad is not None else torch.zeros_like(p))
                 for k, p in model.named_parameters() if p.requires_grad})
    want.update({f"updated.{k}": b.clone() for k, b in model.named_buffers()})
    model.eval()  # the predict graph: running statistics, no dropout
    with torch.no_grad():
        want["eval_logits"] = model(x)
    return {k: v.double() if v.is_floating_point() else v for k, v in want.items()}

def run_case(name, case, probe, work):
    t0 = time.time()
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    model_file, batch, out = (os.path.join(d, f) for f in ("m.lathe", "batch.safetensors", "out.safetensors"))
    open(model_file, "w").write(case["lathe"])
    open(os.path.join(d, "m.py"), "w").write(case["py"])
    save_safetensors(batch, {"x": case["x"], "label": case["label"]})
    # every eighth case JIT-compiled with LLVM's optimizer on (as produced executables are; it is slow)
    r = subprocess.run([probe, model_file, "--seed", "5", "--batch-file", batch, "--out", out, "-O", case["opt"]],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return [f"lathe_probe failed:\n{r.stderr.strip()}"]
    lathe = load_safetensors(out)

    want64 = torch_step(case, lathe, torch.float64)
    want32 = torch_step(case, lathe, torch.float32)
    problems = []
    missing = sorted(k for k in want64 if k not in lathe)
    extra = sorted(k for k in lathe if k.startswith(("grad.", "updated.")) and k not in want64)
    problems += [f"missing from Lathe's step: {missing}"] if missing else []
    problems += [f"not in PyTorch's model: {extra}"] if extra else []
    # Lathe's float32 step is compared with PyTorch's float64 one: python3-torch's float32 F.gelu backward
    # returns garbage for a non-contiguous gradient (gelu followed by a transpose), and float64 is the better
    # reference anyway; PyTorch's float32 error is printed beside a mismatch, to tell an ill-conditioned case
    # from a bug. Floors of the relative error as torch_zoo.py: a hundredth of the norm of all gradients
    # together for a gradient, a hundredth of the root of the size for a buffer.
    gnorm = math.sqrt(sum(g.norm().item() ** 2 for k, g in want64.items() if k.startswith("grad.")))
    worst = 0.0
    for k, w in want64.items():
        if k not in lathe:
            continue
        g = lathe[k]
        if tuple(g.shape) != tuple(w.shape):
            problems.append(f"{k}: shape {tuple(g.shape)}, PyTorch {tuple(w.shape)}")
            continue
        floor = max(1e-2 * gnorm if k.startswith("grad.") else
                    1e-2 * math.sqrt(w.numel()) if k.startswith("updated.") else 0, 1e-12)
        err, own = rel_error(g, w, floor), rel_error(want32[k], w, floor)
        worst = max(worst, err)
        # the bound: 1e-4, or 4 times PyTorch's own float32 error up to 1e-3 where float32 cannot do better (a
        # gradient that is 0 in exact arithmetic, such as a conv bias that a BatchNorm follows)
        if not err <= max(TOL, min(4 * own, 1e-3)):
            problems.append(f"{k}: relative error {err:.2e} (PyTorch float32's own {own:.1e}; |lathe| "
                            f"{g.double().norm():.4e}, |pytorch| {w.norm():.4e})")
    print(f"{name:14s} {len(want64):3d} tensors, worst relative error {worst:.1e}  ({time.time() - t0:.1f} s)")
    return problems

def main():
    probe, work = sys.argv[1:3]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    only = sys.argv[4:]
    torch.set_num_threads(1)
    cases = {f"seed{s}": (lambda s=s: generate(s)) for s in range(count)}
    cases.update({k: (lambda v=v: v()) for k, v in FIXED.items()})
    if only:
        cases = {k: (cases.get(k) or (lambda s=int(k.replace("seed", "")): generate(s))) for k in only}
    failed = 0
    for name, make in cases.items():
        case = make()
        try:
            problems = run_case(name, case, probe, work)
        except Exception as e:  # PyTorch refusing the state_dict or the model: a failure of this case only
            problems = [f"PyTorch: {type(e).__name__}: {e}"]
        for p in problems:
            print(f"FAIL {name}: {p}")
        if problems:
            failed += 1
            print(f"---- {name}: the Lathe model\n{case['lathe']}\n---- {name}: the PyTorch model\n{case['py']}")
    print(f"{len(cases) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)

if __name__ == "__main__":
    main()
