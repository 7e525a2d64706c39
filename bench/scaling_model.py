#!/usr/bin/env python3
"""scaling_model.py: the data-parallel cost model of docs/scaling.md, computed for every model in models/.

For each model it compiles the model (`lathe compile`) and reads the binary's `info` (the trainable
parameters, the number of kernels of the training graph, the recipe's batch), and it counts the
floating-point operations of one training step per sample from `lathe ir MODEL --after dce` (every matmul,
conv2d, conv2d_bwd_input and conv2d_bwd_weight of the grads graph, that is forward and backward as compiled;
the forward alone from the predict graph). Then, for K ranks in a ring allreduce:

    gradient bytes      S = 4 x trainable parameters                    (f32 gradients, one buffer)
    sent per rank       2 (K - 1) / K x S          (and as many received)
    allreduce time      2 (K - 1) x latency + 2 (K - 1) / K x S / bandwidth
    compute time        b x train FLOPs per sample / (peak x efficiency) + kernels x launch
    step time           compute + allreduce        (no overlap of the two: an upper bound)

where b is the per-GPU batch: the recipe's batch for weak scaling (the global batch grows with K), the
global batch / K for strong scaling (the global batch fixed). Every assumption is a flag; the defaults are
the ones docs/scaling.md states. Prints the doc's tables as Markdown.

usage: /usr/bin/python3 bench/scaling_model.py [--lathe build/bin/lathe] [--models models] [options]
"""
import argparse
import glob
import math
import os
import re
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One IR line: `  %12 = conv2d %7, %8 {stride=[1,1], ...} : f32[N,16,10,10]  # file:line:col`
NODE_RE = re.compile(r"^\s*%(\d+) = (\S+)(.*?) : [a-z0-9]+\[([^\]]*)\]\s*(#.*)?$")
OUTPUT_RE = re.compile(r'^\s*output "([^"]+)" = %(\d+)')
OPERAND_RE = re.compile(r"%(\d+)")


def die(msg):
    sys.exit("scaling_model.py: error: " + msg)


def run(cmd):
    """stdout of cmd; its stderr and exit status in the error when it fails."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if p.returncode != 0:
        die("%s: exit %d: %s" % (" ".join(cmd), p.returncode, p.stderr.strip()[-500:]))
    return p.stdout


def dims(text):
    """[N,16,10,10] as a list of ints, the batch dimension N as 1 (so counts are per sample)."""
    out = []
    for d in text.split(","):
        d = d.strip()
        if not d:
            continue
        out.append(1 if d == "N" else int(d))
    return out


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def parse_graphs(ir_text):
    """{graph name: {"nodes": {id: (op, operand ids, attrs text, shape)}, "outputs": {name: id}}}"""
    graphs, cur = {}, None
    for line in ir_text.splitlines():
        m = re.match(r"^graph (\S+) \{", line)
        if m:
            cur = graphs.setdefault(m.group(1), {"nodes": {}, "outputs": {}})
            continue
        if cur is None:
            continue
        m = NODE_RE.match(line)
        if m:
            nid, op, rest, shape = int(m.group(1)), m.group(2), m.group(3), m.group(4)
            attrs = rest[rest.index("{"):] if "{" in rest else ""
            operands = [int(x) for x in OPERAND_RE.findall(rest.split("{")[0])]
            cur["nodes"][nid] = (op, operands, attrs, dims(shape))
            continue
        m = OUTPUT_RE.match(line)
        if m:
            cur["outputs"][m.group(1)] = int(m.group(2))
    return graphs


def node_flops(nodes, op, operands, attrs, shape):
    """Multiply-adds x 2 of a matmul or a convolution (forward or backward), per sample; 0 for other ops.
    Every count is linear in the batch N (N appears once), so N = 1 gives the count per sample."""
    if op == "matmul":
        a = nodes[operands[0]][3]
        inner = a[-2] if "transpose_a" in attrs else a[-1]
        return 2 * numel(shape) * inner
    if op in ("conv2d", "conv2d_bwd_input", "conv2d_bwd_weight"):
        # 2 x (elements of the convolution's output) x (C / groups x kh x kw): the same for all three
        if op == "conv2d":
            out, w = shape, nodes[operands[1]][3]
        elif op == "conv2d_bwd_input":
            out, w = nodes[operands[0]][3], nodes[operands[1]][3]
        else:
            out, w = nodes[operands[1]][3], shape
        return 2 * numel(out) * numel(w[1:])
    return 0


def graph_flops(graph):
    nodes = graph["nodes"]
    return sum(node_flops(nodes, op, ops, attrs, shape) for op, ops, attrs, shape in nodes.values())


def parse_info(text):
    """trainable values and tensors, frozen values, kernels of the training graph, the recipe's batch."""
    info = {"trainable": 0, "tensors": 0, "frozen": 0, "kernels": {}, "batch": None}
    section = None
    for line in text.splitlines():
        if line.endswith(":") and not line.startswith(" "):
            section = line[:-1]
            continue
        if section == "parameters" and line.startswith("  "):
            count = int(line.split()[-2] if line.rstrip().endswith("(frozen)") else line.split()[-1])
            if "(frozen)" in line:
                info["frozen"] += count
            else:
                info["trainable"] += count
                info["tensors"] += 1
        m = re.match(r"^  (train|grads|eval|predict)\s+\d+\s+\(.*?(\d+) kernels\)", line)
        if m:
            info["kernels"][m.group(1)] = int(m.group(2))
        m = re.match(r"^  batch\s+(\d+)$", line)
        if m and section == "recipe":
            info["batch"] = int(m.group(1))
    return info


def model_stats(lathe, path, tmp):
    name = os.path.splitext(os.path.basename(path))[0]
    binary = os.path.join(tmp, name)
    run([lathe, "compile", path, "-O", "0", "-o", binary])  # -O 0: the counts do not depend on it
    info = parse_info(run([binary, "info"]))
    graphs = parse_graphs(run([lathe, "ir", path, "--after", "dce"]))
    train_graph = "grads" if "grads" in graphs else "train"
    grad_values = sum(numel(graphs[train_graph]["nodes"][nid][3])
                      for out, nid in graphs[train_graph]["outputs"].items() if out.startswith("grad."))
    if grad_values != info["trainable"]:
        die("%s: info lists %d trainable values, the grads graph %d gradients" % (name, info["trainable"], grad_values))
    kernels = info["kernels"].get("train", info["kernels"].get("grads"))
    return {"name": name, "trainable": info["trainable"], "tensors": info["tensors"], "frozen": info["frozen"],
            "batch": info["batch"], "kernels": kernels,
            "fwd_flops": graph_flops(graphs["predict"]), "train_flops": graph_flops(graphs[train_graph])}


def allreduce_s(k, s_bytes, a):
    """The ring's 2 (K - 1) steps, each one hop's latency and S / K bytes; --latency-model tree counts
    2 log2(K) latencies instead (a tree's depth, as NCCL's trees take for small messages), same bytes."""
    if k <= 1:
        return 0.0
    hops = 2 * math.ceil(math.log2(k)) if a.latency_model == "tree" else 2 * (k - 1)
    return hops * a.latency_us * 1e-6 + 2 * (k - 1) / k * s_bytes / (a.bandwidth_gbit * 1e9 / 8)


def compute_s(m, per_gpu_batch, a):
    flops = per_gpu_batch * m["train_flops"]
    return flops / (a.peak_tflops * 1e12 * a.efficiency) + m["kernels"] * a.launch_us * 1e-6


def fmt_int(n):
    return "{:,}".format(n)


def fmt_bytes(b):
    for unit, f in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= f:
            return "%.2f %s" % (b / f, unit)
    return "%d B" % b


def fmt_ms(s):
    return "%.3g" % (s * 1e3)


def fmt_flops(f):
    for unit, d in (("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if f >= d:
            return "%.3g %s" % (f / d, unit)
    return "%d FLOP" % f


def print_tables(models, a):
    ks = a.ranks
    print("Assumptions: allreduce at %g Gb/s per GPU and %g us per hop (%s latency); compute at %g%% of %g "
          "TFLOP/s plus %g us per kernel; no overlap of compute and allreduce.\n"
          % (a.bandwidth_gbit, a.latency_us, a.latency_model, a.efficiency * 100, a.peak_tflops, a.launch_us))

    print("| model | trainable parameters | gradient bytes S | " +
          " | ".join("sent per rank, K = %d" % k for k in ks) + " | forward FLOPs / sample | train FLOPs / sample | kernels |")
    print("| --- " * (6 + len(ks)) + "|")
    for m in models:
        frozen = " (+%s frozen)" % fmt_int(m["frozen"]) if m["frozen"] else ""
        s = 4 * m["trainable"]
        print("| `%s` | %s%s | %s | %s | %s | %s | %d |" % (
            m["name"], fmt_int(m["trainable"]), frozen, fmt_bytes(s),
            " | ".join(fmt_bytes(2 * (k - 1) / k * s) for k in ks),
            fmt_flops(m["fwd_flops"]), fmt_flops(m["train_flops"]), m["kernels"]))

    print("\nWeak scaling: each GPU takes the recipe's batch b; the global batch is K x b. "
          "Step time in ms = compute + allreduce; efficiency = compute / step.\n")
    print("| model | b | compute ms | " +
          " | ".join("K = %d: allreduce ms | step ms | eff." % k for k in ks) + " |")
    print("| --- " * (3 + 3 * len(ks)) + "|")
    for m in models:
        c = compute_s(m, m["batch"], a)
        cells = []
        for k in ks:
            r = allreduce_s(k, 4 * m["trainable"], a)
            cells.append("%s | %s | %.0f%%" % (fmt_ms(r), fmt_ms(c + r), 100 * c / (c + r)))
        print("| `%s` | %d | %s | %s |" % (m["name"], m["batch"], fmt_ms(c), " | ".join(cells)))

    g = a.global_batch
    print("\nStrong scaling: the global batch is fixed at %d (`--batch %d`), each GPU takes %d / K. "
          "Step time in ms and speed-up over one GPU (its step: compute alone).\n" % (g, g, g))
    print("| model | 1 GPU ms | " + " | ".join("K = %d: per-GPU batch | step ms | speed-up" % k for k in ks) + " |")
    print("| --- " * (2 + 3 * len(ks)) + "|")
    for m in models:
        one = compute_s(m, g, a)
        cells = []
        for k in ks:
            b = g / k
            t = compute_s(m, b, a) + allreduce_s(k, 4 * m["trainable"], a)
            cells.append("%g | %s | %.1fx" % (b, fmt_ms(t), one / t))
        print("| `%s` | %s | %s |" % (m["name"], fmt_ms(one), " | ".join(cells)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lathe", default=os.path.join(REPO, "build", "bin", "lathe"), help="the lathe command")
    p.add_argument("--models", default=os.path.join(REPO, "models"), help="folder of .lathe files")
    p.add_argument("--ranks", default="8,64,512", help="values of K (comma-separated)")
    p.add_argument("--bandwidth-gbit", type=float, default=200, help="link bandwidth per GPU, Gb/s (HDR IB: 200)")
    p.add_argument("--latency-us", type=float, default=5, help="latency of one ring hop, us")
    p.add_argument("--latency-model", choices=("ring", "tree"), default="ring",
                   help="ring: 2 (K - 1) latencies per allreduce; tree: 2 log2(K)")
    p.add_argument("--peak-tflops", type=float, default=67, help="peak f32 TFLOP/s of one GPU (H100 SXM: 67)")
    p.add_argument("--efficiency", type=float, default=0.3, help="fraction of peak the GEMMs reach")
    p.add_argument("--launch-us", type=float, default=3, help="cost of one kernel launch, us")
    p.add_argument("--global-batch", type=int, default=4096, help="global batch of the strong-scaling table")
    a = p.parse_args()
    try:
        a.ranks = [int(k) for k in a.ranks.split(",")]
    except ValueError:
        die("--ranks: a comma-separated list of integers, got '%s'" % a.ranks)
    if any(k < 1 for k in a.ranks) or a.efficiency <= 0 or a.peak_tflops <= 0 or a.bandwidth_gbit <= 0:
        die("--ranks must be >= 1; --efficiency, --peak-tflops and --bandwidth-gbit > 0")
    if not os.access(a.lathe, os.X_OK):
        die("%s: not an executable (build Lathe first, or give --lathe)" % a.lathe)
    paths = sorted(glob.glob(os.path.join(a.models, "*.lathe")))
    if not paths:
        die("%s: no .lathe files" % a.models)
    with tempfile.TemporaryDirectory(prefix="scaling_model.") as tmp:
        models = [model_stats(a.lathe, path, tmp) for path in paths]
    print_tables(models, a)


if __name__ == "__main__":
    main()
