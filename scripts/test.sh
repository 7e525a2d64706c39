#!/usr/bin/env bash
# The whole test suite on a fresh machine: set up (with the test tools and python3-torch), build, run every
# test under ctest, then build again with AddressSanitizer and UndefinedBehaviorSanitizer and run the suite
# there too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLATHE_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
# LLVM itself is not instrumented; leaks inside libLLVM's global state are not ours to report
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$PWD/../tests/lsan.supp \
   ctest --output-on-failure -j"$jobs" -LE slow)
# every reader's libFuzzer target (clang, ASan, UBSan): its seed corpus replayed, then 10 s of fuzzing each
bash tests/fuzz/run.sh 10 build-fuzz
