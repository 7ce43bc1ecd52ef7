#!/usr/bin/env bash
# Configures and builds the sanitizer tree build-asan/: aftrd, aftrctl and the unit and bpf
# tests compiled by clang 14 with AddressSanitizer and UndefinedBehaviorSanitizer (-O1, asserts
# on; the BPF objects are the same as in build/). scripts/test.sh runs its tests after the
# normal ones. Optional arguments: targets to build (default: all).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cmake -S "$repo" -B "$repo/build-asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	-DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" -DCMAKE_C_FLAGS_DEBUG="-O1 -g" \
	-DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_C_COMPILER=clang-14 \
	-DAFTR_SANITIZE=address,undefined >/dev/null
cmake --build "$repo/build-asan" -j2 ${1:+--target "$@"}
