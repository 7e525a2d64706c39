#!/usr/bin/env bash
# Installs what Lathe needs on Debian (as root): the build tools and libraries, FashionMNIST, and with
# --test the test tools and the PyTorch reference (python3-torch). Runs apt-get only for what is missing.
set -euo pipefail
pkgs=(cmake gcc make pkg-config llvm-dev libopenblas-dev zlib1g-dev libjansson-dev libpng-dev libcmocka-dev
      protobuf-c-compiler libprotobuf-c-dev openmpi-bin libopenmpi-dev dataset-fashion-mnist)
if [ "${1:-}" = "--test" ]; then
  pkgs+=(python3 python3-numpy python3-torch graphviz g++ cppcheck clang libclang-rt-14-dev)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
