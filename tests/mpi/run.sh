#!/usr/bin/env bash
# The mpi.* tests of the fewcl tool at 2 ranks (tests/CMakeLists.txt registers them when
# FEWCL_MPI is on). Each rank runs through a wrapper that keeps its stderr apart (err.<rank>)
# and can change rank 1 alone, so that the checks can say which rank printed what.
# usage: run.sh test|rank_error|train_refused|api FEWCL FIXTURE_DIR MPIEXEC [launch flags...]
#   FIXTURE_DIR: what tests/mpi/mpi_fixture wrote (ctest's mpi.fixture), only read here;
#   api: FEWCL is test_mpi_dist, run on that folder.
set -euo pipefail
what=$1 fewcl=$2 fix=$3
shift 3
launch=("$@")
dir=$(mktemp -d /tmp/fewcl-mpi-XXXXXX)
trap 'rm -rf "$dir"' EXIT
fail() {
  echo "mpi.$what: $*" >&2
  for f in "$dir"/err.*; do [ -f "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }; done
  exit 1
}

# rank.sh MODE CMD...: MODE for rank 1 only: - (none), mem (FEWCL_MEM_LIMIT=1M), weights
# (b.safetensors instead of a.safetensors).
cat >"$dir/rank.sh" <<WRAP
#!/usr/bin/env bash
r=\${OMPI_COMM_WORLD_RANK:-\${PMIX_RANK:-0}}
mode=\$1; shift
args=()
for a in "\$@"; do
  if [ "\$r" = 1 ] && [ "\$mode" = weights ] && [ "\$a" = "$fix/a.safetensors" ]; then
    a=$fix/b.safetensors
  fi
  args+=("\$a")
done
[ "\$r" = 1 ] && [ "\$mode" = mem ] && export FEWCL_MEM_LIMIT=1M
exec "\${args[@]}" 2>"$dir/err.\$r"
WRAP
chmod +x "$dir/rank.sh"
# Both ranks' stdout comes back through mpiexec; a hang is a failure, not a stuck CI.
ranks() { timeout 120 "${launch[@]}" "$dir/rank.sh" "$@"; }

args=(test --weights "$fix/a.safetensors" --data "$fix" --episodes 7 --seed 3)
case "$what" in
test)
  # Text and JSON equal to one process's, but for the time taken; 7 episodes: blocks 4 + 3.
  one=$("$fewcl" "${args[@]}" 2>"$dir/one.err") || fail "one process failed: $(cat "$dir/one.err")"
  two=$(ranks - "$fewcl" "${args[@]}") || fail "2 ranks failed"
  cp "$dir/err.0" "$dir/err.0.text" && cp "$dir/err.1" "$dir/err.1.text"
  strip() { sed -E 's/ in [0-9.]+ s$//; s/"seconds":[-0-9.e+]+//'; }
  [ -n "$one" ] && [ "$(strip <<<"$one")" = "$(strip <<<"$two")" ] ||
    fail "text differs: one process '$one', 2 ranks '$two'"
  one=$("$fewcl" "${args[@]}" --json 2>/dev/null)
  two=$(ranks - "$fewcl" "${args[@]}" --json) || fail "2 ranks --json failed"
  [ "$(strip <<<"$one")" = "$(strip <<<"$two")" ] ||
    fail "JSON differs: one process '$one', 2 ranks '$two'"
  # The episodes were shared: rank 0's progress covers its 4, rank 1 prints nothing (the text
  # runs' stderr, not a terminal: one progress line at the end).
  grep -q "test: 7/7 episodes" "$dir/one.err" || fail "one process: no 7/7 progress line"
  grep -q "test: 4/4 episodes" "$dir/err.0.text" ||
    fail "rank 0 did not evaluate episodes 0-3 alone"
  [ ! -s "$dir/err.1.text" ] || fail "rank 1 printed on stderr"
  echo "mpi.test: 2 ranks print the one-process result: $(strip <<<"$two")"
  ;;
rank_error)
  # Rank 1 out of device memory: the job ends (no hang), non-zero, and rank 0 names rank 1.
  if ranks mem "$fewcl" "${args[@]}" >/dev/null; then fail "the job succeeded"; fi
  grep -q "out of memory: rank 1 of 2 (host " "$dir/err.0" ||
    fail "rank 0's stderr does not name rank 1's failure"
  # Other weights on rank 1: refused before any episode, naming rank 1.
  if ranks weights "$fewcl" "${args[@]}" >/dev/null; then fail "mismatched weights accepted"; fi
  grep -q "rank 1 of 2 (host .*): its weights differ from rank 0's" "$dir/err.0" ||
    fail "rank 0's stderr does not name rank 1's other weights"
  echo "mpi.rank_error: $(grep -o 'rank 1 of 2.*' "$dir/err.0" | head -1)"
  ;;
train_refused)
  # Refused before the run folder (or the demo's folder) is touched.
  if ranks - "$fewcl" train --data "$dir/none" --run-dir "$dir/run" >/dev/null; then
    fail "train ran"
  fi
  grep -q "training across MPI ranks is not available yet" "$dir/err.0" || fail "no message"
  [ ! -e "$dir/run" ] || fail "the run folder was created"
  if ranks - "$fewcl" demo --out "$dir/demo" >/dev/null; then fail "demo ran"; fi
  [ ! -e "$dir/demo" ] || fail "the demo folder was created"
  echo "mpi.train_refused: $(head -1 "$dir/err.0")"
  ;;
api)
  ranks - "$fewcl" "$fix" || fail "test_mpi_dist failed"
  ;;
*)
  echo "usage: $0 test|rank_error|train_refused|api FEWCL FIXTURE_DIR MPIEXEC [flags]" >&2
  exit 2
  ;;
esac
