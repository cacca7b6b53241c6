#!/usr/bin/env bash
# The plain suite under the machine differences that have changed results before: the host
# convolution's thread count (its dW partial sums are split per thread) and OpenBLAS's kernels
# for other CPU models (OPENBLAS_CORETYPE picks them as if on that CPU). A test whose outcome
# depends on these is a defect; run this before a submission that touches numerics.
#   usage: tools/portability/variants.sh [ctest -R regex]     (default: every plain test)
#   VARIANTS='FEWCL_HOST_THREADS=1 OPENBLAS_CORETYPE=Zen' overrides the list (space-separated).
# Needs a plain build in build/ (tools/run-tests.sh plain makes one). Prints one line per variant.
set -uo pipefail
cd "$(dirname "$0")/../.."
regex=${1:-.}
variants=${VARIANTS:-FEWCL_HOST_THREADS=1 FEWCL_HOST_THREADS=3 OPENBLAS_CORETYPE=Haswell OPENBLAS_CORETYPE=Sandybridge}
[ -f build/CTestTestfile.cmake ] || { echo "variants: no build/ (run tools/run-tests.sh plain first)" >&2; exit 2; }
failed=0
for v in $variants; do
  start=$(date +%s)
  log=$(mktemp /tmp/fewcl-variant.XXXX)
  if env "$v" ctest --test-dir build -LE 'oclgrind|rusticl|profiles' -R "$regex" >"$log" 2>&1; then
    result=passed
  else
    result="FAILED: $(grep -oE '[0-9]+ - [^ ]+' "$log" | cut -d' ' -f3 | tr '\n' ' ')"
    failed=1
  fi
  echo "variants: $v: $(grep -oE '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$log") — $result ($(( $(date +%s) - start )) s, log $log)"
done
exit $failed
