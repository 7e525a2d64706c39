#!/usr/bin/env bash
# The CPU-speed benchmark of issue 4, in one run: each case of the issue's table trained for a FashionMNIST
# epoch with Lathe (--threads 1 and 2, the faster counted) and with the PyTorch reference
# (../shared/reference/torch_fashion.py, at 1 and 2 threads, each as given and with OPENBLAS_NUM_THREADS
# pinned: Debian's PyTorch does not pass its thread count on to OpenBLAS; the fastest of the four is
# "PyTorch's best"), beside the GEMM-bound limit: the step's GEMMs alone through OpenBLAS, the fastest of 1
# thread, 2 OpenBLAS threads, and 2 threads splitting each GEMM by rows as Lathe's pool does
# (bench/gemm_mlp.c, bench/gemm_cnn.c: the shapes and transposes of Lathe's step). Also measured, with no
# target: `lathe compile` wall seconds of every model in models/, the peak resident memory of the training
# binary and of PyTorch on the same 1-thread job, and the memory plan's peak (`lathe compile --mem-report`)
# beside Lathe's measured peak.
# Prints markdown tables, one line per case (the README's "CPU speed" section holds one).
# usage: bench/cpu_speed.sh [BUILD_DIR]   (default: build; a Release build)
#   BENCH_EPOCHS=1  epochs of every run; the fastest epoch counts. The reference's 2-thread runs are slow
#                   (OpenBLAS's threads spin on small GEMMs) and it has no --limit: they train one epoch,
#                   whatever BENCH_EPOCHS says.
#   BENCH_CASES=mlp64,mlp512,cnn64  the cases to run (default all); BENCH_COMPILE=0 skips the compile times.
#   PYTHON=/usr/bin/python3  the Python with Debian's python3-torch.
# Needs scripts/setup.sh --test (cc, OpenBLAS, python3-torch, dataset-fashion-mnist). About 6 minutes on the
# 2-core development machine. The machine must be otherwise idle: OpenBLAS's threads spin, and on a busy
# machine every 2-thread figure collapses (the header prints the load average; above 0.5 it warns).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
epochs=${BENCH_EPOCHS:-1}
py=${PYTHON:-/usr/bin/python3}
ref=${LATHE_REFERENCE:-$root/../shared/reference/torch_fashion.py}
data=/usr/share/datasets/fashion-mnist

die() { echo "cpu_speed: $*" >&2; exit 1; }
[ -x "$build/bin/lathe" ] ||
  die "no $build/bin/lathe: build first (cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j)"
[ -x "$py" ] || die "no $py: run scripts/setup.sh --test (python3, python3-numpy, python3-torch)"
"$py" -c 'import torch, numpy' 2>/dev/null ||
  die "$py cannot import torch and numpy: run scripts/setup.sh --test (python3-torch, python3-numpy)"
for f in {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz; do
  [ -f "$data/$f" ] || die "no $data/$f: run scripts/setup.sh (dataset-fashion-mnist)"
done
[ -f "$ref" ] || die "no PyTorch reference at $ref (LATHE_REFERENCE=FILE to name it)"
case $epochs in '' | *[!0-9]* | 0) die "BENCH_EPOCHS must be a positive integer (got '$epochs')" ;; esac

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
for g in gemm_mlp gemm_cnn; do
  cc -O2 -pthread "$root/bench/$g.c" -o "$work/$g" -lopenblas || die "cannot build bench/$g.c (libopenblas-dev?)"
done

# The driver: runs every process itself, each reaped with os.wait4 for its own peak RSS.
"$py" - "$root" "$build/bin/lathe" "$work" "$epochs" "$ref" "$data" "${BENCH_CASES:-}" "${BENCH_COMPILE:-1}" <<'PY'
import json, os, re, subprocess, sys, time
root, lathe, work, epochs, ref, data, only, compile_times = sys.argv[1:]
epochs = int(epochs)
t_start = time.perf_counter()
load = os.getloadavg()[0]
if load > 0.5:
    print(f"cpu_speed: warning: load average {load:.2f}: the machine is busy, the figures will be low and noisy",
          file=sys.stderr)

def note(msg):
    print(f"[{time.perf_counter() - t_start:5.0f}s] {msg}", file=sys.stderr, flush=True)

def run(cmd, env=None, check=True):
    """Runs cmd; returns (stdout, stderr, status, peak RSS in KiB, wall seconds)."""
    out, err = os.path.join(work, "out"), os.path.join(work, "err")
    e = dict(os.environ, **(env or {}))
    t0 = time.perf_counter()
    with open(out, "w") as fo, open(err, "w") as fe:
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=e)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    text, etext = open(out).read(), open(err).read()
    if check and p.returncode != 0:
        sys.exit(f"cpu_speed: failed ({p.returncode}): {' '.join(cmd)}\n{etext[-2000:]}")
    return text, etext, p.returncode, usage.ru_maxrss, wall

def sps(text):
    """samples_per_s of the fastest epoch in JSON lines."""
    return max(json.loads(l)["samples_per_s"] for l in text.splitlines() if l.strip().startswith("{"))

mlp = ["784", "512", "512", "10"]
cases = [  # id, name, model file, the reference's --model, batch, the GEMM-bound limit at THREADS, target
    ("mlp64", "fashion_mlp b64", "fashion_mlp", "mlp", 64, lambda t: [f"{work}/gemm_mlp", t, "64", "60000"] + mlp,
     2.0),
    ("mlp512", "fashion_mlp b512", "fashion_mlp", "mlp", 512,
     lambda t: [f"{work}/gemm_mlp", t, "512", "60000"] + mlp, 1.5),
    ("cnn64", "fashion_cnn b64", "fashion_cnn", "cnn", 64, lambda t: [f"{work}/gemm_cnn", t, "64", "60000"], 2.0),
]
if only:
    wanted = only.split(",")
    unknown = [c for c in wanted if c not in [case[0] for case in cases]]
    if unknown:
        sys.exit(f"cpu_speed: BENCH_CASES: no case {', '.join(unknown)} (cases: mlp64, mlp512, cnn64)")
    cases = [c for c in cases if c[0] in wanted]

# compile time of every model, and the executables the cases train
compile_s = []
for f in sorted(os.listdir(os.path.join(root, "models"))):
    name = f[:-len(".lathe")]
    if not f.endswith(".lathe") or (compile_times == "0" and name not in [c[2] for c in cases]):
        continue
    note(f"lathe compile models/{f}")
    _, err, rc, _, wall = run([lathe, "compile", os.path.join(root, "models", f), "-o", os.path.join(work, name)],
                              check=False)
    compile_s.append((name, wall if rc == 0 else None, err.strip().splitlines()[-1:] if rc else []))

def plan_peak(model, batch):
    """The memory plan's peak in bytes from `lathe compile --mem-report`, or None where it is not there."""
    text, err, rc, _, _ = run([lathe, "compile", os.path.join(root, "models", model + ".lathe"), "--mem-report",
                               "--batch", str(batch), "-o", os.path.join(work, "memreport")], check=False)
    if rc != 0:
        return None
    m = re.findall(r"^peak: (\d+) bytes at batch (\d+) ", text + "\n" + err, re.M)
    return int(m[-1][0]) if m and int(m[-1][1]) == batch else None

rows = []
for _, case, model, ref_model, batch, gemm_cmd, target in cases:
    exe = os.path.join(work, model)
    if not os.path.exists(exe):
        sys.exit(f"cpu_speed: models/{model}.lathe did not compile")
    r = {"case": case, "target": target}
    for t in (1, 2):
        note(f"{case}: lathe, {t} thread(s)")
        log = os.path.join(work, f"log{t}.jsonl")
        if os.path.exists(log):
            os.remove(log)
        _, _, _, rss, _ = run([exe, "train", "--data", data, "--epochs", str(epochs), "--batch", str(batch),
                               "--no-shuffle", "--threads", str(t), "--log-json", log])
        r[f"lathe{t}"] = sps(open(log).read())
        if t == 1:
            r["lathe_rss"] = rss
    torch = []
    for t in (1, 2):
        for pinned in (False, True):
            how = f"{t}t" + (" pinned" if pinned else "")
            note(f"{case}: PyTorch, {how}")
            env = {"OPENBLAS_NUM_THREADS": str(t)} if pinned else None
            text, _, _, rss, _ = run([sys.executable, ref, "--model", ref_model, "--batch", str(batch), "--epochs",
                                      str(epochs if t == 1 else 1), "--threads", str(t), "--no-shuffle"], env)
            torch.append((sps(text), how))
            if t == 1 and pinned:
                r["torch_rss"] = rss
    r["torch"], r["torch_how"] = max(torch)
    r["torch_all"] = torch
    gemm = []
    for t, how in (("1", "1t"), ("2", "2t"), ("2r", "2t split")):
        note(f"{case}: GEMMs alone, {how}")
        gemm += [(sps(run(gemm_cmd(t))[0]), how) for _ in range(epochs)]
    r["gemm"], r["gemm_how"] = max(gemm)
    r["plan"] = plan_peak(model, batch)
    rows.append(r)

def n(x):
    return f"{x:,.0f}"

def mib(b):
    return "n/a" if b is None else f"{b / 2**20:,.1f}"

cpu = "?"
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    pass
import torch as _torch
print(f"CPU speed: {cpu}, {os.cpu_count()} cores, load average {load:.2f} at the start; PyTorch "
      f"{_torch.__version__}; training samples/s, fastest of {epochs} FashionMNIST epoch(s) (PyTorch at 2 "
      "threads: 1 epoch)\n")
print("| case | Lathe 1 thread | Lathe 2 threads | PyTorch's best | Lathe / PyTorch | GEMM-bound limit "
      "| Lathe / limit | target |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    best = max(r["lathe1"], r["lathe2"])
    ratio = best / r["torch"]
    print(f"| {r['case']} | {n(r['lathe1'])} | {n(r['lathe2'])} | {n(r['torch'])} ({r['torch_how']}) | "
          f"{ratio:.2f}x | {n(r['gemm'])} ({r['gemm_how']}) | {100 * best / r['gemm']:.0f}% | >= {r['target']:.1f}x "
          f"({'met' if ratio >= r['target'] else 'not met'}) |")
print("\nPyTorch's four runs (1t, 1t pinned, 2t, 2t pinned): " +
      "; ".join(f"{r['case']}: " + ", ".join(n(s) for s, _ in r["torch_all"]) for r in rows))
print("\n| case | Lathe peak RSS MiB | PyTorch peak RSS MiB | memory plan's peak MiB |")
print("| --- | --- | --- | --- |")
for r in rows:
    print(f"| {r['case']} | {mib(r['lathe_rss'] * 1024)} | {mib(r['torch_rss'] * 1024)} | {mib(r['plan'])} |")
print("\n(peak RSS of the 1-thread run, train and test, OPENBLAS_NUM_THREADS=1 for PyTorch, whose test pass "
      "takes the 10,000 test images in one batch; the plan's peak: the tensors' bytes at the case's batch)")
print("\n| model | `lathe compile` s |")
print("| --- | --- |")
for name, s, err in compile_s:
    print(f"| {name} | {'failed: ' + err[0] if s is None and err else 'failed' if s is None else f'{s:.2f}'} |")
print(f"\nbench/cpu_speed.sh took {time.perf_counter() - t_start:.0f} s")
PY
