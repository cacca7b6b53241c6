#!/usr/bin/env bash
# One prepared check on a lent NVIDIA machine (no package access there): unpacks the carried
# Debian packages (ICD loader, CLBlast, cmocka, cJSON, stb, clinfo, DejaVu fonts) into
# .device/root, points the ICD loader at the driver's libnvidia-opencl, then runs:
#   1. the ICD check and `fewcl devices`;
#   2. the whole test suite on the GPU (ctest -LE oclgrind, 8 at a time);
#   3. `fewcl bench --conv`: each convolution algorithm on every convolution of conv4 and
#      resnet34 (it also fills the find database the next steps use);
#   4. tools/bench/compare.sh --gpu: fewcl vs PyTorch CUDA, whole model, same episodes;
#   5. `fewcl bench --model` per-kernel profiles of the training step;
#   6. `fewcl demo` end to end (rendering, training, 600 test episodes);
#   7. with OPS=1, the per-op `fewcl bench` against tools/bench/ops_torch.py as well.
# STEPS="tests conv compare profile demo" (the default) chooses among 2-6; CTEST_ARGS adds ctest
# arguments (-R episode, say).
# Writes everything to $OUT/log. Prepare here: bash tools/gpu/fetch-debs.sh, then
# bash tools/build.sh build-gpu -DFEWCL_HOST_BLAS=OFF; carry build-gpu and .device/debs.
# Rehearse on the CPU: CHECK_DEVICE=pocl OUT=/tmp/x CTEST_ARGS="-R runtime" CASES=conv4_demo
#   DEMO_ARGS="--epochs 1 --episodes 5 --test-episodes 10" bash tools/gpu/device-check.sh
set -uo pipefail
out=${OUT:-/tmp}
log=$out/log
exec > >(tee "$log") 2>&1
source tools/gpu/unpack.sh
start=$(date +%s)
stamp() { echo "   [$(($(date +%s) - start)) s]"; }

# The build's tests carry absolute paths of the development checkout (/work/main): make that
# path lead here.
built_in=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' build-gpu/CMakeCache.txt)
if [ "$built_in" != "$PWD" ] && [ ! -e "$built_in" ]; then
  mkdir -p "$(dirname "$built_in")" && ln -s "$PWD" "$built_in"
fi
# The demo and test_demo read the fonts from their Debian place.
fonts=/usr/share/fonts/truetype/dejavu
if [ ! -e $fonts ] && [ -e "$root$fonts" ]; then
  mkdir -p "$(dirname $fonts)" && ln -s "$root$fonts" $fonts
fi

echo "== driver"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
clinfo -l
export FEWCL_DEVICE=${CHECK_DEVICE:-nvidia}
./build-gpu/fewcl devices

steps=" ${STEPS:-tests conv compare profile demo} "
want() { [[ $steps == *" $1 "* ]]; }

if want tests; then
echo "== tests on the GPU"; stamp
timeout 180 ctest --test-dir build-gpu -j 8 -LE oclgrind --timeout 240 --output-on-failure ${CTEST_ARGS:-} >"$out/ctest.log" 2>&1; tail -40 "$out/ctest.log"
stamp
fi

if want conv; then
echo "== convolution algorithms (bench --conv)"
for flags in "" "--backbone resnet34 --image-size 224 --n-query 8"; do
  # shellcheck disable=SC2086
  timeout ${CONV_TIMEOUT:-90} ./build-gpu/fewcl bench --conv $flags
done
stamp
fi

if want compare; then
echo "== fewcl vs PyTorch (whole model)"
gpu=--gpu
[ -n "${CHECK_DEVICE:-}" ] && gpu=
FEWCL=build-gpu/fewcl timeout 200 bash tools/bench/compare.sh $gpu --rounds "${ROUNDS:-2}" \
  --cases "${CASES:-conv4,resnet34,conv4_demo}" --test-episodes 600
stamp
fi

if want profile; then
echo "== per-kernel profiles of one training step, and its GEMMs by shape"
for flags in "" "--backbone resnet34 --image-size 224 --n-query 8"; do
  # shellcheck disable=SC2086
  FEWCL_PROFILE_GEMMS=1 timeout 45 ./build-gpu/fewcl bench --model --repeat 3 $flags \
    2>"$out/gemms.txt"
  awk '/^gemm/ {k = $2 " " $3 " " $4 " " $5; t[k] += $6; c[k]++; all += $6}
       END {for (k in t) printf "%9.3f ms %4d x %s\n", t[k], c[k], k; printf "%9.3f ms total\n", all}' \
    "$out/gemms.txt" | sort -rn | head -16
done
stamp
fi

if want demo; then
echo "== fewcl demo"
time timeout 120 ./build-gpu/fewcl demo --out "$PWD/.device/demo" ${DEMO_ARGS:-}
stamp
fi

if [ "${OPS:-0}" = 1 ]; then
  echo "== per-op bench vs PyTorch"
  ./build-gpu/fewcl bench --repeat 20
  python3 tools/bench/ops_torch.py --device "${TORCH_DEVICE:-cuda}" --repeat 20
fi
echo "== done"; stamp
