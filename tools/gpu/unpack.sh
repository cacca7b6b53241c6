# Sourced by the device scripts: unpacks the carried Debian packages (.device/debs) into
# .device/root, puts their libraries and programs on the paths, and points the OpenCL ICD
# loader at the NVIDIA driver's library (the lent machines ship no nvidia.icd).
root=$PWD/.device/root
mkdir -p "$root"
for f in .device/debs/*.deb; do dpkg -x "$f" "$root"; done
export LD_LIBRARY_PATH=$root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PATH=$root/usr/bin:$PATH
nvidia_opencl=$(ls /usr/local/nvidia/lib64/libnvidia-opencl.so.1 \
  /usr/lib/x86_64-linux-gnu/libnvidia-opencl.so.1 2>/dev/null | head -1)
[ -n "$nvidia_opencl" ] || nvidia_opencl=$(find / -name 'libnvidia-opencl.so*' -not -path '/proc/*' 2>/dev/null | head -1)
echo "nvidia opencl library: ${nvidia_opencl:-NOT FOUND}"
if [ -z "${CHECK_DEVICE:-}" ]; then # CHECK_DEVICE=pocl: rehearse a script on the CPU
  mkdir -p "$PWD/.device/icd"
  echo "$nvidia_opencl" > "$PWD/.device/icd/nvidia.icd"
  export OCL_ICD_VENDORS=$PWD/.device/icd
fi
