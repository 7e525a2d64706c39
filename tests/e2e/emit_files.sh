# lathe compile --emit obj|asm|llvm|cuda and the usage errors of --emit and --prefix: the object is an ELF
# relocatable defining the graph entries, the assembly defines them, the LLVM IR parses (llvm-as, where
# installed), cuda writes CUDA C kernels, and a failure leaves no file behind.
source "$(dirname "$0")/common.bash"
MODEL=$LATHE_SOURCE_DIR/models/fashion_mlp.lathe

"$LATHE" compile "$MODEL" --emit obj -o m.o || fail "--emit obj"
python3 - m.o <<'PY' || fail "m.o is not an x86-64 ELF relocatable object"
import struct, sys
b = open(sys.argv[1], 'rb').read(64)
assert b[:4] == b'\x7fELF', b[:4]
assert struct.unpack('<H', b[16:18])[0] == 1, 'e_type is not ET_REL'
PY
if command -v nm >/dev/null; then
  for s in lathe_manifest lathe_train lathe_grads lathe_eval lathe_predict; do
    nm -g --defined-only m.o | grep -E " [TDR] $s\$" >/dev/null || fail "m.o does not define $s"
  done
fi

"$LATHE" compile "$MODEL" --emit asm -o m.s || fail "--emit asm"
grep -q -E '^lathe_train:' m.s || fail "m.s does not define lathe_train"
grep -q -E '\.globl\s+lathe_predict' m.s || fail "m.s does not export lathe_predict"

"$LATHE" compile "$MODEL" --emit llvm -o m.ll || fail "--emit llvm"
grep -q -E '^define .*@lathe_train\(' m.ll || fail "m.ll does not define @lathe_train"
LLVM_AS=$(command -v llvm-as || command -v llvm-as-19 || command -v llvm-as-14 || true)
if [ -n "$LLVM_AS" ]; then
  "$LLVM_AS" m.ll -o m.bc || fail "llvm-as cannot parse m.ll"
else
  echo "note: no llvm-as; m.ll checked for its definitions only"
fi

# a library object: the prefix names the API, and the entries are internal
"$LATHE" compile "$MODEL" --emit llvm --prefix my_net -o lib.ll || fail "--emit llvm --prefix"
grep -q -E '^define .*@my_net_predict\(' lib.ll || fail "lib.ll does not define my_net_predict"
grep -q -E '^define internal .*@my_net_lathe_train\(' lib.ll || fail "lib.ll's entries are not internal"

# the CUDA C source (tests/e2e/cuda_compile.sh compiles it with NVRTC)
"$LATHE" compile "$MODEL" --emit cuda -o m.cu || fail "--emit cuda"
grep -q -E '^extern "C" __global__' m.cu || fail "m.cu defines no kernel"

expect_fail "$LATHE" compile "$MODEL" --emit wasm -o m.x
expect_msg "--emit takes exe, lib, shared, obj, asm, llvm or cuda, not 'wasm'"
expect_fail "$LATHE" compile "$MODEL" --prefix net -o m2
expect_msg '--prefix goes with --emit lib, shared, obj, asm or llvm'
expect_fail "$LATHE" compile "$MODEL" --emit lib --prefix 9lives -o x
expect_msg '--prefix must be a C identifier'
expect_fail "$LATHE" compile "$MODEL" --emit lib --prefix int -o x
expect_msg '--prefix must be a C identifier'
expect_fail "$LATHE" compile "$MODEL" --emit obj -o no-such-dir/m.o
expect_msg 'no-such-dir/m.o'
expect_fail "$LATHE" compile "$MODEL" --emit lib -o no-such-dir/net
expect_msg 'no-such-dir'
[ -z "$(ls -A | grep -v -E '^(m\.o|m\.s|m\.ll|m\.bc|m\.cu|lib\.ll|err|stdout\.txt)$')" ] || fail "files left behind: $(ls -A)"

# the prefix of an output path: its base name as a C identifier
"$LATHE" compile "$MODEL" --emit lib -o My-Net.a || fail "--emit lib -o My-Net.a"
[ -f My-Net.h ] && [ -f libMy-Net.a ] || fail "--emit lib -o My-Net.a wrote $(ls)"
grep -q 'my_net \*my_net_open(const char \*path);' My-Net.h || fail "the prefix of My-Net.a is not my_net"
echo "ok"
