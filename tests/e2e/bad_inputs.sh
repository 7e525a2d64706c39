# Bad input to lathe and to a produced executable: one clear message, a non-zero exit, no crash, nothing
# half-written left behind.
source "$(dirname "$0")/common.bash"
M="$LATHE_SOURCE_DIR/models/fashion_mlp.lathe"

expect_fail "$LATHE" compile missing.lathe -o out;   expect_msg 'missing.lathe.*(No such file|cannot read)'
[ -e out ] && fail "output left behind"
expect_fail "$LATHE" frobnicate "$M";                expect_msg 'unknown command'
expect_fail "$LATHE" compile "$M";                   expect_msg '-o'
printf 'model M {\n    fc = Linear(784, 10)\n    forward(x: f32[N, 100]) -> f32[N, 10] {\n        return fc(x)\n    }\n}\ntrain M {\n    loss = cross_entropy(logits, label)\n    optimizer = SGD(lr = 0.1)\n}\n' >bad.lathe
expect_fail "$LATHE" compile bad.lathe -o out;       expect_msg '^bad.lathe:4:[0-9]+: error: .*784.*100|^bad.lathe:4:[0-9]+: error: .*100.*784'
[ -e out ] && fail "output left behind after a model error"
printf 'model M {\n    forward(x: f32[N, 4]) -> f32[N, 4] { return x @ }\n}\n' >syntax.lathe
expect_fail "$LATHE" check syntax.lathe;             expect_msg '^syntax.lathe:2:[0-9]+: error:'

"$LATHE" compile "$M" -o mlp || fail "compile"
expect_fail ./mlp train --epochs abc;                expect_msg 'epochs'
expect_fail ./mlp train --bogus;                     expect_msg 'bogus'
expect_fail ./mlp train --data "$WORK/nowhere" --epochs 1; expect_msg 'nowhere'
expect_fail ./mlp eval --weights nothing.safetensors --data "$WORK"; expect_msg 'nothing.safetensors'
head -c 100 /dev/urandom >junk.safetensors
expect_fail ./mlp eval --weights junk.safetensors --data "$WORK"; expect_msg 'junk.safetensors'
printf 'not gzip and not idx' >train-images-idx3-ubyte.gz; cp train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz
expect_fail ./mlp train --data "$WORK" --epochs 1;   expect_msg 'train-images-idx3-ubyte.gz'
echo "ok"
