# Every model of the zoo (models/*.lathe) compiled and trained briefly on small data: FashionMNIST subsets for
# the 28x28 ones, generated files for conv_mlp (IDX 3x32x32 images), char_gpt (a text file) and
# linear_regression (a CSV). Each must end with a mean training loss well below its first batch's loss;
# char_gpt's well below the unigram entropy of its text (what a model that ignores the context reaches).
source "$(dirname "$0")/common.bash"
need_data
M="$LATHE_SOURCE_DIR/models"
mkdir data

# The small data sets, made with the standard library only (no numpy): class k of the 3x32x32 images is a
# bright square at a place and in a channel that depend on k, over noise; the text repeats a few sentences
# in random order; the CSV samples y = 2x + 1 with a little noise.
python3 - data <<'PY'
import random, struct, sys
d = sys.argv[1]
r = random.Random(4)
n = 640
labels = [r.randrange(10) for _ in range(n)]
px = bytearray()
for k in labels:
    img = bytearray(r.randrange(60) for _ in range(3 * 32 * 32))
    c, y0, x0 = k % 3, 4 + 8 * (k // 3 % 3), 4 + 6 * (k % 4)
    for y in range(y0, y0 + 8):
        for x in range(x0, x0 + 8):
            img[c * 1024 + y * 32 + x] = 200 + r.randrange(56)
    px += img
open(f"{d}/train-images-idx4-ubyte", "wb").write(struct.pack(">IIIII", 0x804, n, 3, 32, 32) + bytes(px))
open(f"{d}/train-labels-idx1-ubyte", "wb").write(struct.pack(">II", 0x801, n) + bytes(labels))
words = ["the quick brown fox jumps over the lazy dog. ", "a compiler turns models into programs. ",
         "pack my box with five dozen liquor jugs. ", "gradients flow backwards through the graph. "]
open(f"{d}/input.txt", "w").write("".join(r.choice(words) for _ in range(500)))
rows = ["x,y"] + [f"{x:.4f},{2 * x + 1 + r.gauss(0, 0.05):.4f}" for x in (r.uniform(0, 4) for _ in range(64))]
open(f"{d}/linear.csv", "w").write("\n".join(rows) + "\n")
PY

# train NAME FLAGS...: compiles models/NAME.lathe, trains it with FLAGS and logs to NAME.jsonl
train() {
  local name=$1
  shift
  "$LATHE" compile "$M/$name.lathe" -o "$name" || fail "$name: compile"
  local t0=$SECONDS
  "./$name" train --log-json "$name.jsonl" "$@" >"$name.out" 2>&1 || { cat "$name.out"; fail "$name: train"; }
  first=$(grep -m1 -E '^loss:' "$name.out" | awk '{print $2}')
  last=$(json_get "$name.jsonl" train_loss)
  echo "$name: first batch loss $first, last epoch mean $last ($((SECONDS - t0)) s)"
}
# falls NAME RATIO: the last epoch's mean loss is below RATIO times the first batch's
falls() {
  python3 -c "import sys; sys.exit(0 if $last < $2 * $first else 1)" \
    || fail "$1: the loss did not fall enough: first batch $first, last epoch mean $last"
}

# Compiled as a user would (-O3 by default; identical kernels share one function, so even resnet20 compiles
# in seconds). Learning rates and batches are chosen so that a few
# dozen steps show learning; the recipes' own values are for full runs.
F=(--data "$DATA")
train fashion_mlp "${F[@]}" --limit 1024 --epochs 2 --batch 32 --lr 0.1 && falls fashion_mlp 0.75
train fashion_cnn "${F[@]}" --limit 1024 --epochs 2 --batch 32 --lr 0.05 && falls fashion_cnn 0.75
train lenet5 "${F[@]}" --limit 1024 --epochs 4 --batch 16 --lr 0.05 && falls lenet5 0.75
train resnet20 "${F[@]}" --limit 512 --epochs 2 --batch 32 --lr 0.05 && falls resnet20 0.8
train vgg11_bn "${F[@]}" --limit 512 --epochs 2 --batch 32 && falls vgg11_bn 0.8
train vit_tiny "${F[@]}" --limit 1024 --epochs 2 --set warmup=0 && falls vit_tiny 0.8
train conv_mlp --data data --epochs 4 && falls conv_mlp 0.7  # its final ReLU (as the seed's) leaves dead logits
train linear_regression --data data --epochs 100 && falls linear_regression 0.05

train char_gpt --data data --epochs 4
python3 - data/input.txt "$last" <<'PY' || fail "char_gpt: the loss $last is not well below the text's unigram entropy"
import collections, math, sys
text = open(sys.argv[1], "rb").read()
counts = collections.Counter(text)
h = -sum(c / len(text) * math.log(c / len(text)) for c in counts.values())
print(f"char_gpt: unigram entropy {h:.3f} nats, last epoch mean loss {float(sys.argv[2]):.3f}")
sys.exit(0 if float(sys.argv[2]) < 0.6 * h else 1)
PY
echo "ok"
