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

mkdir outdir
expect_fail "$LATHE" compile "$M" -o outdir;         expect_msg 'cannot create outdir: it is a folder'
expect_fail env LATHE_RUNTIME="$WORK/nope.a" "$LATHE" compile "$M" -o out; expect_msg 'nope.a \(from LATHE_RUNTIME\)'
[ -e out ] && fail "output left behind without a runtime library"
# a CPU without 64-bit mode is a fatal error inside LLVM: one message and exit 1, not an abort, and the
# temporary object file is removed
mkdir tmp
rc=0; TMPDIR="$WORK/tmp" "$LATHE" compile "$M" -o out --cpu i386 2>err || rc=$?
[ "$rc" = 1 ] || { cat err; fail "--cpu i386 exited $rc"; }
grep -q "error: LLVM cannot generate code for CPU 'i386'" err || { cat err; fail "--cpu i386: no message"; }
[ -z "$(ls tmp)" ] || fail "temporary object left behind: $(ls tmp)"
[ -e out ] && fail "output left behind after an LLVM error"
# nine parameters of 2^60 values each: their count overflows an int64, which check must not print negative
{ echo 'layer Big() {'; echo '    w = param f32[1073741824, 1073741824] init zeros()'; echo '    forward(x) { return x }'; echo '}'
  echo 'model M {'; for i in 1 2 3 4 5 6 7 8 9; do echo "    b$i = Big()"; done; echo '    fc = Linear(4, 3)'
  echo '    forward(x: f32[N, 4]) -> f32[N, 3] { return fc(b9(b8(b7(b6(b5(b4(b3(b2(b1(x)))))))))) }'; echo '}'
  echo 'train M {'; echo '    loss = cross_entropy(logits, label)'; echo '    optimizer = SGD(lr = 0.1)'; echo '}'; } >huge.lathe
"$LATHE" check huge.lathe >check.txt 2>err || { cat err; fail "check of a model with 2^63+ parameter values"; }
grep -q 'parameter tensors (over [0-9]* values)' check.txt || { cat check.txt; fail "parameter count overflowed"; }

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
