#!/usr/bin/env bash
# The static analyzer over Lathe's own C sources: zero findings. A finding that is a real bug is fixed; a false
# positive is suppressed on its line with `// cppcheck-suppress ID ; why` so the reason stays beside the code.
# Skips (exit 77) where cppcheck is not installed (scripts/setup.sh --test installs it).
set -euo pipefail
src=${LATHE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v cppcheck >/dev/null || { echo "SKIP: cppcheck is not installed (apt-get install cppcheck)"; exit 77; }
cd "$src"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# The checks: errors (undefined behaviour, leaks, out-of-bounds), warnings (suspicious code) and portability;
# style and performance are taste, left to review.
# --max-configs=1: the configuration the build compiles (every #ifdef combination would take minutes and
# check code no build compiles); __GNUC__ and __x86_64__ as on the machines Lathe targets.
# Project-wide suppressions, each for a reason that holds everywhere:
# - invalidPointerCast: byte buffers (char *) hold typed arrays that malloc aligned; the cast is how C reads them.
# - preprocessorErrorDirective in kern_window.c: the file includes itself once per element type (KW_T,
#   KW_SUFFIX), which cppcheck's preprocessor does not follow; its kernels are checked by the unit tests under
#   ASan and UBSan instead.
# - missingInclude*, unmatchedSuppression, checkersReport: information about the run, not about the code.
cppcheck --quiet --std=c11 --enable=warning,portability --inline-suppr --error-exitcode=0 -j"$(nproc)" \
  --max-configs=1 -D__GNUC__ -D__x86_64__ \
  -Iruntime -Iir -Ifrontend -Ipasses -Icodegen -Icodegen/llvm -Icli \
  --suppress=invalidPointerCast \
  --suppress=preprocessorErrorDirective:runtime/kern_window.c \
  --suppress=missingInclude --suppress=missingIncludeSystem --suppress=unmatchedSuppression \
  --template='{file}:{line}:{column}: {severity}: {message} [{id}]' \
  cli frontend ir passes codegen runtime 2>"$out" >/dev/null || true
if grep -q . "$out"; then
  cat "$out"
  echo "FAIL: cppcheck has $(grep -c ': ' "$out") finding(s) (fix them, or suppress a false positive inline with why)"
  exit 1
fi
echo "ok: cppcheck found nothing in cli/ frontend/ ir/ passes/ codegen/ runtime/"
