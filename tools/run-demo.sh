#!/usr/bin/env bash
# Quick start, command 1: install the packages, build, and run the main job on the default
# device: `fewcl demo` renders a glyph dataset from the system's DejaVu fonts, plans the
# memory, trains the enhanced FS-CT on it and tests on unseen alphabets (accuracy ± 95% CI).
# Extra arguments go to `fewcl demo` (see `build/fewcl demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
FEWCL_BUILD_TARGET=fewcl bash tools/build.sh build
./build/fewcl devices
./build/fewcl demo "$@"
