#!/usr/bin/env bash
# Runs the commands of README.md's usage sections as written (every ```sh block, continuation
# lines joined), from the repository root after the quick start, and its Python example.
# Left out: the quick start's two commands (run them first), and unless FULL=1 the 8-epoch
# training (minutes), tools/bench/compare.sh (needs PyTorch: FEWCL_WITH_TORCH=1 setup) and
# tools/bench/scaling.sh (minutes).
# When the quick start's glyph data is missing, a one-episode `fewcl demo` renders it.
# usage: tools/portability/readme-commands.sh   (exit 1 at the first command that fails)
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x build/fewcl ] || { echo "readme-commands: build/fewcl missing: run the quick start first" >&2; exit 1; }
[ -d fewcl-demo/data-56 ] || build/fewcl demo --epochs 1 --episodes 1 --test-episodes 1 --quiet
rm -rf runs/glyphs runs/greek-lists
# The README's mpirun command as written, also as root in a container on few cores: Open MPI
# refuses root without these, and its shared-memory single copy needs ptrace (docs/distributed.md).
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
commands=$(awk '/^```sh/{f=1;next} /^```/{f=0} f' README.md | sed -e ':a' -e '/\\$/N; s/\\\n//; ta')
n=0
while IFS= read -r cmd; do
  case "$cmd" in
    *run-demo.sh*|*run-tests.sh*) continue ;;
    *glyphs-8*|*compare.sh*|*scaling.sh*) [ "${FULL:-0}" = 1 ] || { echo "== skipped (FULL=1 runs it): $cmd"; continue; } ;;
  esac
  echo "== $cmd"
  bash -c "$cmd" > /tmp/readme-command.out 2>&1 || { cat /tmp/readme-command.out; echo "readme-commands: failed: $cmd" >&2; exit 1; }
  tail -2 /tmp/readme-command.out
  n=$((n + 1))
done <<< "$commands"
echo "== the Python example"
awk '/^```python/{f=1;next} /^```/{f=0} f' README.md > /tmp/readme-example.py
PYTHONPATH=bindings/python /usr/bin/python3 /tmp/readme-example.py
echo "readme-commands: $n commands and the Python example ran"
