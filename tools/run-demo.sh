#!/usr/bin/env bash
# Quick start, command 1: install the packages, build, and run the main job on the default
# device. Until the training demo lands (`fewcl demo`), the main job lists the devices and
# runs the kernel benchmark, which checks every result against the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh build
./build/fewcl devices
./build/fewcl bench --quick
