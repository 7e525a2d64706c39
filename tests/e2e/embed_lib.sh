# Model libraries (lathe compile --emit lib|shared): examples/embed_predict.c, built with cc and c++ against the
# static and the shared library, predicts the same classes as the produced binary's predict from the same
# checkpoint; two models' libraries link into one program (tests/tools/embed_two.c) whose train_step loops give
# bit for bit the checkpoints of the binaries' own train runs, which the binaries' eval loads.
source "$(dirname "$0")/common.bash"
need_data
command -v cc >/dev/null || skip "no C compiler (cc)"
command -v nm >/dev/null || skip "no nm (binutils)"
SRC=$LATHE_SOURCE_DIR
cat >tiny.lathe <<'LATHE'
model Tiny {
    fc = Linear(28 * 28, 10)

    forward(x: f32[N, 1, 28, 28]) -> f32[N, 10] {
        return fc(flatten(x))
    }
}

train Tiny {
    data      = idx("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", scale = 1 / 255)
    test      = idx("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", scale = 1 / 255)
    batch     = 64
    shuffle   = false
    loss      = cross_entropy(logits, label)
    optimizer = Adam(lr = 1e-3)
    metrics   = [accuracy]
}
LATHE
mkdir -p st sh
for m in "$SRC/models/fashion_mlp.lathe:fashion_mlp" "tiny.lathe:tiny"; do
  file=${m%%:*} name=${m##*:}
  "$LATHE" compile "$file" --emit lib -o "st/$name" || fail "--emit lib $name"
  "$LATHE" compile "$file" --emit shared -o "sh/$name" || fail "--emit shared $name"
  "$LATHE" compile "$file" -o "$name.exe" || fail "compile $name"
  [ -f "st/$name.h" ] && [ -f "st/lib$name.a" ] && [ -f "sh/$name.h" ] && [ -f "sh/lib$name.so" ] \
    || fail "--emit lib/shared wrote $(ls st sh)"
  # every global symbol the libraries define is the model's
  others=$(nm -g --defined-only "st/lib$name.a" | awk 'NF == 3 {print $3}' | grep -v "^${name}_" || true)
  [ -z "$others" ] || fail "lib$name.a defines global symbols without the prefix: $others"
  others=$(nm -D --defined-only "sh/lib$name.so" | awk 'NF == 3 {print $3}' | grep -v "^${name}_" || true)
  [ -z "$others" ] || fail "lib$name.so exports symbols without the prefix: $others"
  ls st sh | grep -q tmp && fail "temporary files left in st/ or sh/"
done
grep -q 'define FASHION_MLP_INPUT_SHAPE {1, 28, 28}' st/fashion_mlp.h || fail "header lacks the input shape"
grep -q 'typedef int64_t fashion_mlp_label_t' st/fashion_mlp.h || fail "header lacks the label type"
# the link lines that the headers document (with the sanitizer flags in a sanitizer build)
link_st=$(sed -n 's/^   link: //p' st/fashion_mlp.h)
link_sh=$(sed -n 's/^   link: //p' sh/fashion_mlp.h)
[ -n "$link_st" ] && [ -n "$link_sh" ] || fail "no link line in the headers"
echo "static: $link_st; shared: $link_sh"

./fashion_mlp.exe train --data "$DATA" --limit 2000 --epochs 1 --lr 0.05 --checkpoint-dir ckpt >/dev/null \
  || fail "train"
EX=$SRC/examples/embed_predict.c
cc -Wall -Wextra -Werror "$EX" -Ist -Lst $link_st -o ex_c || fail "cc with the static library"
examples="ex_c ex_so"
if command -v c++ >/dev/null; then
  c++ -Wall -Wextra -Werror -x c++ "$EX" -x none -Ist -Lst $link_st -o ex_cxx || fail "c++ with the static library"
  examples="$examples ex_cxx"
else
  echo "note: no C++ compiler (c++): the example is built as C only"
fi
cc -Wall -Wextra -Werror "$EX" -Ish -Lsh $link_sh -lz -o ex_so || fail "cc with the shared library"
ldd ex_c | grep -q libfashion_mlp && fail "ex_c should hold the static library"
ldd ex_so | grep 'libfashion_mlp.so' >/dev/null || fail "ex_so should load the shared library"
n=8
for i in $(seq 0 $((n - 1))); do
  ./fashion_mlp.exe predict --weights ckpt/last.safetensors --data "$DATA" --index "$i" |
    sed -E 's/^Predicted: ("[^"]*").*/\1/'
done >want.txt
for ex in $examples; do
  LD_LIBRARY_PATH=sh "./$ex" ckpt/last.safetensors "$DATA" $n >out.txt || fail "$ex"
  sed -E 's/^[0-9]+: Predicted: //' out.txt >got.txt
  diff want.txt got.txt >/dev/null || { paste want.txt got.txt; fail "$ex predicts other classes than the binary"; }
done
[ "$(sort -u want.txt | wc -l)" -gt 1 ] || fail "the check needs more than one predicted class: $(cat want.txt)"
expect_fail ./ex_c no-such.safetensors "$DATA" 1
expect_msg 'no-such.safetensors: cannot open'
# a checkpoint of a run with another optimizer: its weights load, its Adam state is left out
./fashion_mlp.exe train --data "$DATA" --limit 200 --epochs 1 --set 'optimizer=Adam(lr = 1e-3)' \
  --checkpoint-dir ckpt_adam >/dev/null || fail "train with Adam"
./ex_c ckpt_adam/last.safetensors "$DATA" 2 >/dev/null || fail "a checkpoint with Adam's state does not open"

# two models in one program: static, then shared
TWO=$SRC/tests/tools/embed_two.c
# the documented line with both libraries in place of one
cc -Wall -Wextra -Werror "$TWO" -Ist -Lst -lfashion_mlp -ltiny $(echo "$link_st" | cut -d' ' -f2-) -o two_st \
  || fail "linking two models' static libraries into one program"
cc -Wall -Wextra -Werror "$TWO" -Ish -Lsh -lfashion_mlp -ltiny $(echo "$link_sh" | cut -d' ' -f2-) -lz -lm -o two_sh \
  || fail "linking two models' shared libraries into one program"
./two_st "$DATA" 2000 mlp.safetensors tiny.safetensors || fail "two models (static)"
LD_LIBRARY_PATH=sh ./two_sh "$DATA" 2000 mlp_so.safetensors tiny_so.safetensors || fail "two models (shared)"
./tiny.exe train --data "$DATA" --limit 2000 --epochs 1 --checkpoint-dir ckpt_tiny >/dev/null || fail "train tiny"
cat >same.py <<'PY'
import json, struct, sys
def load(p):
    b = open(p, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); meta = h.pop('__metadata__', {})
    return {k: b[8 + n + v['data_offsets'][0]: 8 + n + v['data_offsets'][1]] for k, v in h.items()}, meta
a, ma = load(sys.argv[1]); b, mb = load(sys.argv[2])
assert sorted(a) == sorted(b), (sorted(a), sorted(b))
bad = [k for k in a if a[k] != b[k]]
assert not bad, 'tensors differ: %s' % bad
for k in ('step', 'optimizer_steps', 'hash'):
    assert ma.get(k) == mb.get(k), (k, ma.get(k), mb.get(k))
PY
python3 same.py mlp.safetensors ckpt/last.safetensors || fail "fashion_mlp: train_step differs from train (fused SGD)"
python3 same.py tiny.safetensors ckpt_tiny/last.safetensors || fail "tiny's train_step loop differs from train (Adam)"
python3 same.py mlp_so.safetensors mlp.safetensors || fail "the shared library trains otherwise than the static one"
./fashion_mlp.exe eval --weights mlp.safetensors --data "$DATA" --limit 500 --json >eval.json 2>eval.err \
  || fail "the binary's eval cannot load the library's checkpoint"
grep -q warning eval.err && fail "eval warns about the library's checkpoint: $(cat eval.err)"
./tiny.exe eval --weights tiny.safetensors --data "$DATA" --limit 500 --json >/dev/null || fail "tiny eval"
./tiny.exe train --resume tiny.safetensors --data "$DATA" --limit 500 --epochs 1 >/dev/null || fail "tiny --resume"
echo "ok"
