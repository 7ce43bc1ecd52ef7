#!/usr/bin/env bash
# Configures and builds everything (daemon, BPF objects, tests, benchmarks) into build/.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cmake -S "$repo" -B "$repo/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# Optional arguments: targets to build (default: all).
cmake --build "$repo/build" -j2 ${1:+--target "$@"}
