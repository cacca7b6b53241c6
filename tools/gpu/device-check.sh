#!/usr/bin/env bash
# One prepared check on a lent NVIDIA machine (no package access there): unpacks the carried
# Debian libraries (ICD loader, CLBlast, cmocka, cJSON, clinfo) into .device/root, points the
# ICD loader at the driver's libnvidia-opencl, then runs: ICD check, the kernel tests on the
# GPU, `fewcl bench` uncached and cached, with and without fewcl's CLBlast tuning table, and
# the same cases in PyTorch CUDA for the ratio (ROUNDS=n rounds of the benchmarks, default 2).
# Writes everything to $OUT/log. Prepare here: bash tools/gpu/fetch-debs.sh, then
# bash tools/build.sh build-gpu; carry build-gpu and .device/debs.
set -uo pipefail
out=${OUT:-/tmp}
log=$out/log
exec > >(tee "$log") 2>&1
source tools/gpu/unpack.sh

echo "== driver"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
ls /etc/OpenCL/vendors 2>/dev/null
clinfo -l
export FEWCL_DEVICE=${CHECK_DEVICE:-nvidia}

echo "== fewcl devices"
./build-gpu/fewcl devices

echo "== tests on the GPU"
export FEWCL_FIXTURE_DIR=$PWD/tests/fixtures
for t in build-gpu/tests/test_*; do
  [ "$t" = build-gpu/tests/test_oob ] && continue # the planted bug is for oclgrind only
  timeout 120 "$t" || echo "FAILED: $t"
done

echo "== bench: first run (empty program cache), then cached"
export FEWCL_CACHE_DIR=$PWD/.device/cache
rm -rf "$FEWCL_CACHE_DIR"
time ./build-gpu/fewcl bench --quick --repeat 1
time ./build-gpu/fewcl bench --quick --repeat 1

echo "== bench (median of 20): tuned CLBlast, untuned CLBlast, PyTorch CUDA on the same cases"
mkdir -p .device/no-tuning
for i in $(seq "${ROUNDS:-2}"); do
  ./build-gpu/fewcl bench --repeat 20
  FEWCL_CLBLAST_TUNING=$PWD/.device/no-tuning ./build-gpu/fewcl bench --repeat 20
  python3 tools/bench/ops_torch.py --device ${TORCH_DEVICE:-cuda} --repeat 20
done
echo "== done"
