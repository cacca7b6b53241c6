#!/usr/bin/env bash
# Runs CLBlast's tuners (Debian clblast-utils) on a lent NVIDIA GPU for the fp32 GEMM kernels
# fewcl uses, each under its own time limit, and returns the JSON results as
# $OUT/tuning.tar.gz (plus the full log). Needs .device/debs carried (see device-check.sh).
# The sizes follow the model's GEMMs: ~100 rows x 512 x 1600 (direct kernel) and large
# square products (indirect kernel).
set -uo pipefail
out=${OUT:-/tmp}
exec > >(tee "$out/log") 2>&1
source tools/gpu/unpack.sh
clinfo -l
work=$PWD/.device/tuning
mkdir -p "$work" && cd "$work"
tune() { # seconds, tuner, args...
  local limit=$1; shift
  echo "== $* (limit ${limit}s)"
  local t0=$SECONDS
  timeout "$limit" "$@" > "$1.log" 2>&1
  echo "rc $? after $((SECONDS - t0)) s"
  grep -E "Best|best" "$1.log" | tail -3
}
tune 130 clblast_tuner_xgemm_direct -precision 32 -m 128 -n 512 -k 1024 -fraction 0.002 -runs 2
tune 200 clblast_tuner_xgemm -precision 32 -m 1024 -n 1024 -k 1024 -fraction 0.005 -runs 2
for t in copy_fast copy_pad transpose_fast transpose_pad; do
  tune 20 clblast_tuner_$t -precision 32 -m 1024 -n 1024
done
tune 50 clblast_tuner_routine_xgemm -precision 32
ls -la
tar czf "$out/tuning.tar.gz" *.json *.log
echo "== done"
