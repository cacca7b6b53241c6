#!/usr/bin/env bash
# Downloads (here, where Debian's archive is reachable) the packages the device scripts unpack
# on a lent GPU machine, which has no package access: .device/debs/*.deb.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
mkdir -p .device/debs
cd .device/debs
apt-get download ocl-icd-libopencl1 libclblast1 libclfft2 libcmocka0 libcjson1 libstb0 clinfo clblast-utils \
  fonts-dejavu-core fonts-dejavu-extra # the fonts: test_demo and `fewcl demo`
