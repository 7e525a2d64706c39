#!/bin/bash
# The host emulation of CUDA (emu/lathe_cuda_emu.h) on hand-written kernels (emu_selftest.cu): block
# reduction through shared memory, warp shuffles, a 1024-thread block, wmma TF32. Skips (77) without g++.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v g++ >/dev/null || { echo "SKIP: no g++"; exit 77; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
g++ -std=c++17 -O1 -Wall -Wextra -Werror -DLATHE_CUDA_EMULATE -include "$here/emu/lathe_cuda_emu.h" \
    -x c++ "$here/emu_selftest.cu" -o "$out/selftest"
"$out/selftest"
