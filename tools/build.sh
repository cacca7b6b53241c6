#!/usr/bin/env bash
# Configures and builds fewcl into a build directory (default build/).
# usage: tools/build.sh [build-dir] [extra cmake options...]
# FEWCL_BUILD_TARGET=fewcl builds only the tool (the demo's quick start skips the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$dir" -j "$(nproc)" ${FEWCL_BUILD_TARGET:+--target "$FEWCL_BUILD_TARGET"}
