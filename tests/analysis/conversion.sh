#!/usr/bin/env bash
# The readers of files users did not write by hand (model files, text IR, checkpoints, data sets, flags and
# --set expressions) compile without a warning under -Wall -Wextra -Wconversion -Wsign-conversion: every
# narrowing or sign change in them is written out, after a check that the value fits. The build compiles the
# same files with these flags (CMakeLists.txt, LATHE_READER_SRC); this test makes a warning fail.
#   CC=cc CBLAS_INCLUDE=/usr/include/openblas tests/analysis/conversion.sh
set -euo pipefail
src=${LATHE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cc=${CC:-cc}
cd "$src"
readers=(runtime/idx.c runtime/npy.c runtime/textdata.c runtime/imgdir.c runtime/safetensors.c runtime/data.c
  runtime/dataspec.c runtime/manifest.c runtime/rexpr.c runtime/flags.c frontend/lex.c frontend/parse.c ir/parse.c)
inc=(-Iruntime -Iir -Ifrontend)
[ -n "${CBLAS_INCLUDE:-}" ] && inc+=(-I"$CBLAS_INCLUDE")
[ -n "${LATHE_BINARY_DIR:-}" ] && inc+=(-I"$LATHE_BINARY_DIR/proto")
failed=0
for f in "${readers[@]}"; do
  if ! "$cc" -std=gnu11 -fsyntax-only -Wall -Wextra -Wno-unused-parameter -Wconversion -Wsign-conversion \
    -Werror "${inc[@]}" "$f"; then
    echo "FAIL: $f has conversion warnings (convert explicitly, after checking that the value fits)" >&2
    failed=1
  fi
done
[ "$failed" -eq 0 ] || exit 1
echo "ok: ${#readers[@]} readers are clean under -Wconversion -Wsign-conversion"
