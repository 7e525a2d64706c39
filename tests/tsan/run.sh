#!/usr/bin/env bash
# Every zoo model (models/*.lathe) under ThreadSanitizer: builds Lathe with -DLATHE_TSAN=ON in BUILD_DIR (the
# produced executables link the TSan runtime too), then compiles each model and runs train (the kernels' thread
# pool on 2 threads, the loader on 2 workers, a checkpoint), eval and predict on a few samples. Fails on any
# ThreadSanitizer report; tests/tsan.supp lists the few that are not Lathe's, each with why.
#
#   tests/tsan/run.sh BUILD_DIR        (about 2 minutes on 2 cores, most of it the build)
#
# Needs FashionMNIST in /usr/share/datasets/fashion-mnist (or FASHION_DIR) and python3 for the small
# generated data sets of conv_mlp, char_gpt, linear_regression and fashion_cnn_transfer.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$1"
build=$(cd "$1" && pwd)
fashion=${FASHION_DIR:-/usr/share/datasets/fashion-mnist}
[ -f "$fashion/train-images-idx3-ubyte.gz" ] || { echo "SKIP: FashionMNIST is not installed ($fashion)"; exit 77; }

cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLATHE_TSAN=ON -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target lathe >/dev/null
lathe=$build/bin/lathe

work=$(mktemp -d "${TMPDIR:-/tmp}/lathe-tsan.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
# halt_on_error=0: every report of a run is printed, not only the first
export TSAN_OPTIONS="suppressions=$src/tests/tsan.supp halt_on_error=0 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"

# The generated data sets (as tests/e2e/zoo_train.sh makes them, smaller): 3x32x32 IDX images for conv_mlp,
# a text for char_gpt, a CSV for linear_regression, NPY images and labels for fashion_cnn_transfer.
mkdir data
python3 - data <<'PY'
import random, struct, sys
d, r, n = sys.argv[1], random.Random(4), 64
labels = [r.randrange(10) for _ in range(n)]
px = bytes(r.randrange(256) for _ in range(n * 3 * 32 * 32))
open(f"{d}/train-images-idx4-ubyte", "wb").write(struct.pack(">IIIII", 0x804, n, 3, 32, 32) + px)
open(f"{d}/train-labels-idx1-ubyte", "wb").write(struct.pack(">II", 0x801, n) + bytes(labels))
words = ["the quick brown fox jumps over the lazy dog. ", "gradients flow backwards through the graph. "]
open(f"{d}/input.txt", "w").write("".join(r.choice(words) for _ in range(40)))
rows = ["x,y"] + [f"{x:.4f},{2 * x + 1:.4f}" for x in (r.uniform(0, 4) for _ in range(64))]
open(f"{d}/linear.csv", "w").write("\n".join(rows) + "\n")
def npy(path, descr, shape, data):  # NumPy's format 1.0, written by hand: python3-numpy may be absent
    h = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, "".join(f"{k}," for k in shape))
    h += " " * (63 - (10 + len(h)) % 64) + "\n"
    open(path, "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + data)
npy(f"{d}/footwear.npy", "|u1", (n, 1, 28, 28), bytes(r.randrange(256) for _ in range(n * 28 * 28)))
npy(f"{d}/footwear_labels.npy", "<i8", (n,), b"".join(struct.pack("<q", k % 2) for k in labels))
PY

# A positive control: a racy program built as the produced executables are must be reported, so that a silent
# run below means no race rather than a TSan that does not work on this machine.
cat >race.c <<'C'
#include <pthread.h>
static int shared;
static void *bump(void *arg) { shared++; return arg; }
int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, bump, NULL);
    shared++;
    pthread_join(t, NULL);
    return 0;
}
C
cc -fsanitize=thread -g race.c -o race -pthread
if TSAN_OPTIONS="exitcode=0" ./race 2>&1 | grep -q "WARNING: ThreadSanitizer: data race"; then :; else
  echo "FAIL: ThreadSanitizer does not report a plain data race on this machine" >&2
  exit 1
fi

reports=0
# run NAME LOG CMD...: runs CMD, counts its TSan reports; a failure of the command itself fails the script
run() {
  local name=$1 log=$2
  shift 2
  if ! "$@" >"$log" 2>&1; then
    grep -q "ThreadSanitizer" "$log" || { cat "$log"; echo "FAIL: $name: $*" >&2; exit 1; }
  fi
  local n
  n=$(grep -c "WARNING: ThreadSanitizer" "$log" || true)
  if [ "$n" -gt 0 ]; then
    cat "$log"
    echo "FAIL: $name: $n ThreadSanitizer report(s): $*" >&2
    reports=$((reports + n))
  fi
}

for f in "$src"/models/*.lathe; do
  name=$(basename "$f" .lathe)
  # eval and predict read the recipe's test source; where it has none, its training source stands in
  test=()
  grep -q -E '^ *test *=' "$f" || test=(--set "test=$(sed -n -E 's/^ *data *= *//p' "$f" | head -n 1)")
  case $name in
  conv_mlp | char_gpt | linear_regression | fashion_cnn_transfer) data=data ;;
  *) data=$fashion ;;
  esac
  t0=$SECONDS
  run "$name" "$name.compile.log" "$lathe" compile "$f" -o "$name"
  # grep -c, not -q: -q would stop reading, and nm's SIGPIPE would fail the pipe under pipefail
  [ "$(nm "$name" | grep -c __tsan_init)" -gt 0 ] || { echo "FAIL: $name does not link the TSan runtime" >&2; exit 1; }
  common=(--data "$data" --threads 2 --set workers=2 --limit 64 --batch 16)
  run "$name" "$name.train.log" "./$name" train "${common[@]}" --epochs 1 --checkpoint-dir "ck-$name"
  run "$name" "$name.eval.log" "./$name" eval "${common[@]}" "${test[@]}" --weights "ck-$name/last.safetensors"
  run "$name" "$name.predict.log" "./$name" predict --data "$data" --threads 2 "${test[@]}" --weights "ck-$name/last.safetensors" --index 0
  echo "$name: train, eval, predict under ThreadSanitizer ($((SECONDS - t0)) s)"
done
[ "$reports" -eq 0 ] || { echo "FAIL: $reports ThreadSanitizer report(s)" >&2; exit 1; }
echo "ok: no data race in any zoo model"
