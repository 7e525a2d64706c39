#!/usr/bin/env bash
# The fuzz targets of tests/fuzz (one per reader), built with clang, libFuzzer, ASan and UBSan:
#   tests/fuzz/run.sh [SECONDS] [BUILD_DIR]         replays each seed corpus, then fuzzes each target for
#                                                   SECONDS (default 30) with a throw-away corpus
#   tests/fuzz/run.sh --long [SECONDS] [BUILD_DIR]  the same, SECONDS (default 4 hours) each, keeping what it
#                                                   finds in BUILD_DIR/fuzz/corpus-NAME for the next run
# BUILD_DIR (default build-fuzz) is configured and built when needed. FUZZ_TARGETS="lang ir ..." picks
# targets. Fails on the first crash, leak, timeout or sanitizer report, naming the input that caused it
# (saved as BUILD_DIR/fuzz/artifacts/NAME-crash-..., to be added to tests/fuzz/corpus/NAME once fixed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
long=0
if [ "${1:-}" = "--long" ]; then
  long=1
  shift
fi
seconds=${1:-$([ $long = 1 ] && echo 14400 || echo 30)}
build=${2:-$root/build-fuzz}
targets=${FUZZ_TARGETS:-lang ir safetensors idx csv npy image text}
case "$seconds" in '' | *[!0-9]*) echo "run.sh: SECONDS must be a whole number, not '$seconds'" >&2; exit 2 ;; esac

if ! command -v clang >/dev/null; then
  echo "run.sh: clang is not installed (apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLATHE_FUZZ=ON \
    -DBUILD_TESTING=OFF >/dev/null
fi
cmake --build "$build" -j"$(nproc)" --target fuzz >/dev/null

# LLVM is not linked into these targets; the leak suppressions stay for what the shared tests suppress
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$build/fuzz/artifacts"
# -timeout: one input running past 10 s is a hang; -rss_limit_mb: past 2 GiB is a memory blow-up;
# -malloc_limit_mb: one allocation of more than 1 GiB from a small input is one too
common=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1)

for t in $targets; do
  bin="$build/fuzz/fuzz_$t"
  seeds="$here/corpus/$t"
  dict=()
  [ -f "$here/$t.dict" ] && dict=(-dict="$here/$t.dict")
  [ "$t" = lang ] && dict=(-dict="$here/lathe.dict")
  echo "== fuzz_$t: replaying $(ls "$seeds" | wc -l) seed inputs"
  if ! "$bin" "${common[@]}" "$seeds"/* >"$build/fuzz/replay-$t.log" 2>&1; then
    tail -40 "$build/fuzz/replay-$t.log"
    echo "run.sh: fuzz_$t fails on its seed corpus (log: $build/fuzz/replay-$t.log)" >&2
    exit 1
  fi
  [ "$seconds" -gt 0 ] || continue
  if [ $long = 1 ]; then
    work="$build/fuzz/corpus-$t"
  else
    work=$(mktemp -d)
  fi
  mkdir -p "$work"
  echo "== fuzz_$t: fuzzing for $seconds s"
  log="$build/fuzz/fuzz-$t.log"
  if ! "$bin" "${common[@]}" "${dict[@]}" -max_total_time="$seconds" \
       -artifact_prefix="$build/fuzz/artifacts/$t-" "$work" "$seeds" >"$log" 2>&1; then
    tail -60 "$log"
    echo "run.sh: fuzz_$t found a failure (log: $log; input: $build/fuzz/artifacts/$t-*)" >&2
    [ $long = 1 ] || rm -rf "$work"
    exit 1
  fi
  # libFuzzer's last status line: executions, coverage (cov: edges, ft: features), corpus
  grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -1 || true
  grep -E 'stat::number_of_executed_units' "$log" || true
  [ $long = 1 ] || rm -rf "$work"
done
echo "run.sh: every target passed"
