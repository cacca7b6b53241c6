#!/usr/bin/env bash
# One prepared check on a lent NVIDIA machine (no package access there): unpacks the carried
# Debian libraries (ICD loader, CLBlast, cmocka, cJSON, clinfo) into .device/root, points the
# ICD loader at the driver's libnvidia-opencl, then runs: ICD check, the kernel tests on the
# GPU, `fewcl bench` uncached and cached, with and without fewcl's CLBlast tuning table, and
# the same cases in PyTorch CUDA for the ratio.
# Writes everything to $OUT/log. Needs: build-gpu/ (built here) and .device/debs/ carried.
set -uo pipefail
out=${OUT:-/tmp}
log=$out/log
exec > >(tee "$log") 2>&1
root=$PWD/.device/root
mkdir -p "$root"
for f in .device/debs/*.deb; do dpkg -x "$f" "$root"; done
export LD_LIBRARY_PATH=$root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PATH=$root/usr/bin:$PATH

echo "== driver"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
ls /etc/OpenCL/vendors 2>/dev/null
lib=$(ls /usr/local/nvidia/lib64/libnvidia-opencl.so.1 /usr/lib/x86_64-linux-gnu/libnvidia-opencl.so.1 \
        /usr/local/nvidia/lib/libnvidia-opencl.so.1 2>/dev/null | head -1)
[ -n "$lib" ] || lib=$(find / -name 'libnvidia-opencl.so*' -not -path '/proc/*' 2>/dev/null | head -1)
echo "nvidia opencl library: ${lib:-NOT FOUND}"
if [ -z "${CHECK_DEVICE:-}" ]; then # CHECK_DEVICE=pocl: rehearse the script on the CPU
  icd=$PWD/.device/icd
  mkdir -p "$icd"
  echo "$lib" > "$icd/nvidia.icd"
  export OCL_ICD_VENDORS=$icd
fi
clinfo -l
export FEWCL_DEVICE=${CHECK_DEVICE:-nvidia}

echo "== fewcl devices"
./build-gpu/fewcl devices

echo "== tests on the GPU"
for t in build-gpu/tests/test_runtime build-gpu/tests/test_elementwise build-gpu/tests/test_linear; do
  timeout 120 "$t" || echo "FAILED: $t"
done

echo "== bench: first run (empty program cache), then cached"
export FEWCL_CACHE_DIR=$PWD/.device/cache
rm -rf "$FEWCL_CACHE_DIR"
time ./build-gpu/fewcl bench --quick --repeat 1
time ./build-gpu/fewcl bench --quick --repeat 1

echo "== bench (median of 20): tuned CLBlast, untuned CLBlast, PyTorch CUDA on the same cases"
mkdir -p .device/no-tuning
for i in 1 2; do
  ./build-gpu/fewcl bench --repeat 20
  FEWCL_CLBLAST_TUNING=$PWD/.device/no-tuning ./build-gpu/fewcl bench --repeat 20
  python3 tools/bench/ops_torch.py --device ${TORCH_DEVICE:-cuda} --repeat 20
done
echo "== done"
