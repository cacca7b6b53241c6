#!/usr/bin/env bash
# fewcl against PyTorch on the same episodes, in one run (issue 7, docs/spec.md §11): for each case,
# `fewcl bench --model --json` and tools/bench/model_torch.py (same model, sizes and pattern
# input, fp32), alternating, ROUNDS times; prints each side's median and the ratio
# PyTorch time / fewcl time (above 1: fewcl is faster).
#
# CPU (default): PyTorch on T threads (default: the cores) with OpenBLAS (Debian's torch uses
# the reference BLAS unless pointed at it), glibc's malloc kept from returning large blocks to
# the OS; fewcl under the same OpenBLAS rules. Needs libopenblas0-openmp and python3-torch.
# GPU (--gpu): fewcl on the first NVIDIA OpenCL device, PyTorch on CUDA (cuDNN benchmark mode,
# TF32 off).
#
# usage: tools/bench/compare.sh [--gpu] [--rounds R] [--repeat N] [--test-episodes N]
#                               [--threads T] [--cases conv4,resnet34] [--out FILE.md]
# env: FEWCL (the binary, default build/fewcl), TORCH_PYTHON (an interpreter with torch),
#      OPENBLAS_OPENMP_DIR (the OpenMP OpenBLAS folder, e.g. unpacked with dpkg -x where the
#      package cannot be installed)
set -euo pipefail
cd "$(dirname "$0")/../.."
gpu=0 rounds=1 repeat=5 test_episodes=600 threads=$(nproc) cases=conv4,resnet34 out=
while [ $# -gt 0 ]; do
  case $1 in
  --gpu) gpu=1 ;;
  --rounds) rounds=$2; shift ;;
  --repeat) repeat=$2; shift ;;
  --test-episodes) test_episodes=$2; shift ;;
  --threads) threads=$2; shift ;;
  --cases) cases=$2; shift ;;
  --out) out=$2; shift ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
  esac
  shift
done
fewcl=${FEWCL:-build/fewcl}
[ -x "$fewcl" ] || { echo "compare.sh: no $fewcl (build first: bash tools/build.sh)" >&2; exit 1; }
py=${TORCH_PYTHON:-}
if [ -z "$py" ]; then
  for p in /usr/bin/python3 python3; do
    if "$p" -c 'import torch' 2>/dev/null; then py=$p; break; fi
  done
fi
[ -n "$py" ] || { echo "compare.sh: no python with torch (apt-get install python3-torch python3-torchvision)" >&2; exit 1; }

# The side-by-side rules of issue 7, for both tools (benchmark commands only).
runenv=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE
  GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736)
if [ $gpu = 1 ]; then
  fewcl_dev=(--device "${FEWCL_DEVICE:-nvidia}") torch_dev=(--device cuda)
else
  blas=${OPENBLAS_OPENMP_DIR:-/usr/lib/x86_64-linux-gnu/openblas-openmp}
  [ -e $blas/libopenblas.so.0 ] || { echo "compare.sh: $blas missing (apt-get install libopenblas0-openmp)" >&2; exit 1; }
  runenv+=(LD_LIBRARY_PATH=$blas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} OMP_NUM_THREADS=$threads)
  fewcl_dev=(--device "${FEWCL_DEVICE:-pocl}") torch_dev=(--device cpu --threads "$threads")
fi

# name | model flags (the same for both tools) | test episodes run for this case
declare -A flags=(
  [conv4]="--backbone conv4 --image-size 84 --n-way 5 --k-shot 5 --n-query 16"
  [resnet34]="--backbone resnet34 --image-size 224 --n-way 5 --k-shot 5 --n-query 8"
  [resnet34_84]="--backbone resnet34 --image-size 84 --n-way 5 --k-shot 5 --n-query 16"
  [resnet18_84]="--backbone resnet18 --image-size 84 --n-way 5 --k-shot 5 --n-query 16"
  [conv4_demo]="--backbone conv4 --image-size 56 --n-way 5 --k-shot 5 --n-query 5 --reduced-dim 128"
  [resnet18_84_dense]="--backbone resnet18 --image-size 84 --n-way 5 --k-shot 5 --n-query 16"
)
# fewcl's side only: the reference's Mahalanobis is always the dense Cholesky, fewcl's default
# (auto) the low-rank path when k < D′; the _dense case compares like with like.
declare -A fewcl_only=([resnet18_84_dense]="--mahalanobis dense")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
IFS=, read -ra list <<<"$cases"
for c in "${list[@]}"; do
  [ -n "${flags[$c]:-}" ] || { echo "compare.sh: unknown case $c (${!flags[*]})" >&2; exit 2; }
  te=0
  [ "$c" = conv4 ] && te=$test_episodes # the issue's 600 test episodes: on the conv4 episode
  for r in $(seq "$rounds"); do
    echo "== $c round $r/$rounds" >&2
    # shellcheck disable=SC2086
    "${runenv[@]}" "$fewcl" bench --model --json --repeat "$repeat" --test-episodes $te \
      "${fewcl_dev[@]}" ${flags[$c]} ${fewcl_only[$c]:-} | tail -1 >>"$tmp/$c.fewcl"
    # shellcheck disable=SC2086
    "${runenv[@]}" "$py" tools/bench/model_torch.py --repeat "$repeat" --test-episodes $te \
      "${torch_dev[@]}" ${flags[$c]} | tail -1 >>"$tmp/$c.torch"
  done
done

# One table: the median over rounds of each side's medians, and their ratio.
report=$("$py" - "$tmp" "$rounds" "$repeat" "${list[@]}" <<'EOF'
import json, statistics, sys
tmp, rounds, repeat, cases = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
rows, first = [], {}
for c in cases:
    f = [json.loads(l) for l in open(f"{tmp}/{c}.fewcl")]
    t = [json.loads(l) for l in open(f"{tmp}/{c}.torch")]
    first.setdefault("fewcl", f[0]["device"]); first.setdefault("torch", t[0]["tool"] + " on " + t[0]["device"] + f" ({t[0]['threads']} threads)")
    for key, label in (("train_step_s", "training step"), ("eval_forward_s", "evaluation forward"),
                       ("test_episodes_s", "test episodes")):
        if key not in f[0]:
            continue
        a = statistics.median(r[key] for r in f)
        b = statistics.median(r[key] for r in t)
        what = f"{f[0]['test_episodes']} {label}" if key == "test_episodes_s" else label
        rows.append(f"| {c} | {what} | {a:.4g} | {b:.4g} | {b / a:.2f} |")
print(f"fewcl on {first['fewcl']}; {first['torch']}; median of {repeat} runs per tool, "
      f"{rounds} round(s), alternating")
print("\n| case | what | fewcl (s) | PyTorch (s) | PyTorch / fewcl |\n|---|---|---|---|---|")
print("\n".join(rows))
EOF
)
echo "$report"
[ -z "$out" ] || echo "$report" >"$out"
