# `lathe` finds its runtime library after `cmake --install` as well as in the build tree, and the produced
# executable needs no library a user must install besides OpenBLAS and zlib.
source "$(dirname "$0")/common.bash"
: "${LATHE_BINARY_DIR:?}"
cmake --install "$LATHE_BINARY_DIR" --prefix "$WORK/prefix" >/dev/null || fail "cmake --install"
[ -f "$WORK/prefix/lib/lathe/liblathe_rt.a" ] || fail "runtime library not installed"
cp "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" .
env -u LATHE_RUNTIME "$WORK/prefix/bin/lathe" compile fashion_mlp.lathe -o mlp || fail "installed lathe cannot compile"
./mlp info >info.txt || fail "produced executable does not start"
# the model hash that checkpoints carry does not depend on the folder the model file was compiled from
"$LATHE" compile "$LATHE_SOURCE_DIR/models/fashion_mlp.lathe" -o mlp2 || fail "compile from the source tree"
./mlp2 info >info2.txt
[ "$(grep '^hash:' info.txt)" = "$(grep '^hash:' info2.txt)" ] || fail "the hash depends on the model file's path"
libs=$(ldd mlp | awk '{print $1}' | grep -v -E '^(linux-vdso|/lib64/ld-linux)' | sed 's/\.so.*//' | sort -u | tr '\n' ' ')
for l in $libs; do
  case $l in
    libopenblas|libz|libm|libc|libpthread|libgfortran|libquadmath|libgcc_s|libdl|librt|libasan|libubsan|libstdc++) ;;
    *) fail "the executable links $l" ;;
  esac
done
echo "ok ($libs)"
