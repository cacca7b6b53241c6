#!/usr/bin/env bash
# Installs the Debian packages fewcl needs (docs/spec.md §2; Mesa's rusticl as a second OpenCL
# implementation for the tests; Open MPI for the multi-rank build and its mpi.* tests; clang and
# its runtime for the libFuzzer targets). Idempotent;
# runs apt-get directly as root, else through sudo. Set FEWCL_WITH_TORCH=1 to add PyTorch for the fixture generators.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  ocl-icd-opencl-dev opencl-headers pocl-opencl-icd mesa-opencl-icd clinfo
  libclblast-dev libclfft-dev libopenblas-dev
  libcmocka-dev libstb-dev libcjson-dev
  fonts-dejavu-core fonts-dejavu-extra
  oclgrind
  libopenmpi-dev openmpi-bin
  clang libclang-rt-14-dev
  python3 python3-numpy python3-pip python3-setuptools
)
if [ "${FEWCL_WITH_TORCH:-0}" = 1 ]; then
  packages+=(python3-torch python3-torchvision)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages are installed"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null; then
  as_root=(sudo)
else
  echo "setup: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
"${as_root[@]}" apt-get update
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
