#!/usr/bin/env bash
# Scaling over MPI ranks on one machine (issue 16): test episodes per second and training steps
# per second with 1 and 2 ranks, each rank pinned to its core (PoCL on one compute unit, host
# convolutions on one thread), and what a training step's gradient reduction costs for the conv4
# and ResNet-34 parameter counts (`fewcl bench --reduce`). On the demo's data and model (conv4
# 56x56, projection 128, 5-way 5-shot 5-query), rendered and trained for one short epoch first.
# Prints one Markdown table; each time is the median of ROUNDS runs, 1 and 2 ranks alternating.
#
# usage: tools/bench/scaling.sh [--episodes N] [--steps S] [--rounds R] [--out FILE.md]
#   --episodes N  test episodes per run (default 120)
#   --steps S     training steps of M = 2 episodes per run (default 40)
# env: FEWCL (default build/fewcl, built with MPI), SCALING_DIR (data and runs, default a temp dir)
set -euo pipefail
cd "$(dirname "$0")/../.."
episodes=120 steps=40 rounds=3 out=
while [ $# -gt 0 ]; do
  case $1 in
  --episodes) episodes=$2; shift ;;
  --steps) steps=$2; shift ;;
  --rounds) rounds=$2; shift ;;
  --out) out=$2; shift ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
  esac
  shift
done
fewcl=$(realpath "${FEWCL:-build/fewcl}")
command -v mpirun >/dev/null || { echo "scaling.sh: no mpirun (apt-get install openmpi-bin)" >&2; exit 1; }
dir=${SCALING_DIR:-$(mktemp -d)}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# One core per rank: PoCL's work-groups and fewcl's host threads on that core alone.
launch() {
  mpirun -np "$1" --bind-to core --map-by core --mca btl_vader_single_copy_mechanism none \
    -x POCL_CPU_MAX_CU_COUNT=1 -x FEWCL_HOST_THREADS=1 -x FEWCL_FIND=off "${@:2}"
}

if [ ! -d "$dir/data-56" ] || ! ls "$dir"/run-*/best.safetensors >/dev/null 2>&1; then
  echo "scaling.sh: rendering the demo data and training one short epoch in $dir" >&2
  "$fewcl" demo --out "$dir" --epochs 1 --episodes 20 --test-episodes 0 --quiet >/dev/null
fi
weights=$(ls "$dir"/run-*/best.safetensors | head -1)
model=(--image-size 56 --reduced-dim 128 --n-query 5)

seconds() { # the wall time of a command, its output to a file
  local t0 t1
  t0=$(date +%s.%N)
  "${@:2}" >"$1" 2>&1 || { cat "$1" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

rm -f "$dir"/test-[12].s "$dir"/train-[12].s # this run's times only
for r in $(seq "$rounds"); do
  for np in 1 2; do
    echo "== round $r/$rounds, $np rank(s)" >&2
    seconds "$dir/test-$np.json" launch "$np" "$fewcl" test --weights "$weights" \
      --data "$dir/data-56" --episodes "$episodes" --workers 1 --json >>"$dir/test-$np.s"
    rm -rf "$dir/train-$np"
    seconds "$dir/train-$np.log" launch "$np" "$fewcl" train --data "$dir/data-56" "${model[@]}" \
      --run-dir "$dir/train-$np" --meta-batch 2 --epochs 1 --episodes $((2 * steps)) \
      --val-episodes 0 --quiet >>"$dir/train-$np.s"
  done
done
# Sharded evaluation equals one rank's to the last digit: the same accuracy line.
acc1=$(grep -o '"accuracy":[^,}]*' "$dir/test-1.json" || true)
acc2=$(grep -o '"accuracy":[^,}]*' "$dir/test-2.json" || true)
[ "$acc1" = "$acc2" ] || echo "scaling.sh: 1 and 2 ranks tested differently: $acc1 vs $acc2" >&2
reduce=$(launch 2 "$fewcl" bench --reduce 2>&1)

t1=$(median <"$dir/test-1.s") t2=$(median <"$dir/test-2.s")
s1=$(median <"$dir/train-1.s") s2=$(median <"$dir/train-2.s")
report=$(cat <<EOF
$episodes test episodes and $steps training steps (M = 2 episodes each) of the demo's model
(conv4 56x56 -> 128, 5-way 5-shot 5-query), each rank pinned to one core; wall time of the
whole command (start-up included), median of $rounds; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs).

| what | 1 rank | 2 ranks | speed-up |
|---|---|---|---|
| fewcl test, episodes/s | $(ratio "$episodes" "$t1") | $(ratio "$episodes" "$t2") | $(ratio "$t1" "$t2")x |
| fewcl train --meta-batch 2, steps/s | $(ratio "$steps" "$s1") | $(ratio "$steps" "$s2") | $(ratio "$s1" "$s2")x |

Gradient reduction over 2 ranks (\`fewcl bench --reduce\`):

\`\`\`
$reduce
\`\`\`
EOF
)
echo "$report"
[ -z "$out" ] || echo "$report" >"$out"
