#!/usr/bin/env bash
# The mpi.* tests of the fewcl tool at 2 ranks (tests/CMakeLists.txt registers them when
# FEWCL_MPI is on). Each rank runs through a wrapper that keeps its stderr apart (err.<rank>)
# and can change rank 1 alone, so that the checks can say which rank printed what.
# usage: run.sh test|rank_error|train|rank_killed|sigint|train_refused|plan|api FEWCL FIXTURE_DIR MPIEXEC [launch flags...]
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
if [ "\$r" = 1 ] && [ "\$mode" = kill ]; then
  # killed (SIGKILL) once rank 0 has written the first checkpoint
  "\${args[@]}" 2>"$dir/err.\$r" &
  pid=\$!
  while [ ! -e "$dir/killed/last.safetensors" ]; do sleep 0.05; done
  kill -9 \$pid
  wait \$pid
  exit \$?
fi
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
train)
  # Each step's 3 episodes split 2 + 1 over the ranks: the tensors of last and best (the
  # bytes after the safetensors header, whose JSON holds timings) and the metrics (but for
  # speed and time) equal one process's; a run of 1 epoch resumed to 2 by 2 ranks too. The
  # test after training (--test-episodes 5: blocks 3 + 2) prints one process's result, rank 0
  # alone (and writes its file), to the last digit.
  t=(train --data "$fix" --image-size 16 --n-way 3 --k-shot 2 --n-query 2 --reduced-dim 32
    --heads 2 --dim-head 8 --mlp-dim 16 --workers 1 --episodes 6 --val-episodes 3
    --meta-batch 3 --seed 4 --quiet)
  tensors() { n=$(od -An -t u8 -N8 "$1" | tr -d ' '); tail -c +$((n + 9)) "$1" | sha256sum; }
  metrics() { cut -d, -f1-8 "$1/metrics.csv"; }
  tested() { grep '^novel classes' <<<"$1" | sed -E 's/ in [0-9.]+ s$//'; }
  out=$("$fewcl" "${t[@]}" --epochs 2 --test-episodes 5 --run-dir "$dir/one" 2>"$dir/one.err") ||
    fail "one process failed: $(cat "$dir/one.err")"
  one_test=$(tested "$out")
  # (not --quiet: rank 0's progress shows its share of the test)
  out=$(ranks - "$fewcl" "${t[@]:0:${#t[@]}-1}" --epochs 2 --test-episodes 5 --run-dir "$dir/two") ||
    fail "2 ranks failed"
  [ -n "$one_test" ] && [ "$(tested "$out")" = "$one_test" ] ||
    fail "the test after training differs: one process '$one_test', 2 ranks '$(tested "$out")'"
  grep -q "test: 3/3 episodes" "$dir/err.0" || fail "rank 0 did not test episodes 0-2 alone"
  [ "$(grep -c '^novel classes' <<<"$out")" = 1 ] || fail "not rank 0 alone printed the test"
  ls "$dir/two"/test_novel_best_*.json >/dev/null 2>&1 || fail "no test result file in the run"
  ! grep -q "result saved" "$dir/err.1" || fail "rank 1 wrote the test result"
  ranks - "$fewcl" "${t[@]}" --epochs 1 --run-dir "$dir/resumed" >/dev/null ||
    fail "2 ranks, epoch 1, failed"
  ranks - "$fewcl" train --run-dir "$dir/resumed" --resume --epochs 2 --quiet >/dev/null ||
    fail "2 ranks, resumed, failed"
  for run in two resumed; do
    for f in last best; do
      [ "$(tensors "$dir/one/$f.safetensors")" = "$(tensors "$dir/$run/$f.safetensors")" ] ||
        fail "$run: $f.safetensors differs from one process's"
    done
    [ "$(metrics "$dir/one")" = "$(metrics "$dir/$run")" ] ||
      fail "$run: metrics differ: $(metrics "$dir/$run") vs $(metrics "$dir/one")"
  done
  echo "mpi.train: 2 ranks (and 2 ranks resumed) give one process's weights: $(metrics "$dir/two" | tail -1); $one_test"
  ;;
plan)
  # Every rank plans its own device for training with M = 2; rank 0 prints one table whose
  # rows are one process's plan (both ranks here: the same device, so it holds both), rank 1
  # prints nothing; a rank that does not fit (rank 1 limited to 1 MiB) makes the job fail.
  p=(plan --image-size 16 --n-way 3 --k-shot 2 --n-query 2 --reduced-dim 32 --heads 2
    --dim-head 8 --mlp-dim 16 --meta-batch 2)
  one=$("$fewcl" "${p[@]}" --json 2>"$dir/one.err") || fail "one process failed: $(cat "$dir/one.err")"
  two=$(ranks - "$fewcl" "${p[@]}" --json) || fail "2 ranks failed"
  [ ! -s "$dir/err.1" ] || fail "rank 1 printed on stderr"
  python3 - "$one" "$two" <<'PY' || fail "the ranks' table disagrees with one process's plan: $two"
import json, sys
one, two = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert two["ranks"] == 2 and two["meta_batch"] == 2 and two["fits"] is True, two
assert [r["rank"] for r in two["replicas"]] == [0, 1], two
for r in two["replicas"]:
    assert r["footprint_bytes"] == one["footprint_bytes"], (r, one)
    assert r["peak_bytes"] == one["peak_bytes"] and r["holds"] == "trainer", (r, one)
(d,) = two["devices"]
assert d["replicas"] == 2 and d["footprint_bytes"] == 2 * one["footprint_bytes"], d
PY
  table=$(ranks - "$fewcl" "${p[@]}") || fail "2 ranks (text) failed"
  grep -qE '^  0 .* trainer$' <<<"$table" && grep -qE '^  1 .* trainer$' <<<"$table" &&
    [ "$(grep -c '^fits: yes$' <<<"$table")" = 1 ] || fail "no table of both ranks: $table"
  if text=$(ranks mem "$fewcl" "${p[@]}"); then fail "rank 1 does not fit, yet the job succeeded"; fi
  grep -q "does not fit" <<<"$text" && grep -q '^fits: no$' <<<"$text" ||
    fail "rank 0 does not say that rank 1 does not fit: $text"
  echo "mpi.plan: $(grep '^device' <<<"$table"); rank 1 limited: $(grep '^device' <<<"$text")"
  ;;
rank_killed)
  # Rank 1 killed (SIGKILL) once the first epoch's checkpoint is written: the job ends (no
  # hang), non-zero, mpiexec names the rank, and the checkpoint loads and resumes.
  t=(train --data "$fix" --image-size 16 --n-way 3 --k-shot 2 --n-query 2 --reduced-dim 32
    --heads 2 --dim-head 8 --mlp-dim 16 --workers 1 --episodes 6 --val-episodes 0
    --meta-batch 2 --seed 4 --epochs 500 --quiet --run-dir "$dir/killed")
  if ranks kill "$fewcl" "${t[@]}" >"$dir/out" 2>"$dir/mpiexec.err"; then fail "the job succeeded"; fi
  grep -qiE "rank 1|process rank 1|\[\[[0-9]+,[0-9]+\],1\]" "$dir/mpiexec.err" ||
    fail "mpiexec does not name rank 1: $(cat "$dir/mpiexec.err")"
  "$fewcl" test --weights "$dir/killed/last.safetensors" --data "$fix" --split base --episodes 2 \
    >/dev/null 2>"$dir/test.err" || fail "the last checkpoint does not load: $(cat "$dir/test.err")"
  echo "mpi.rank_killed: $(grep -iE 'rank 1|\[\[' "$dir/mpiexec.err" | head -1)"
  ;;
sigint)
  # SIGINT to mpiexec during training: every rank stops after the same step, rank 0 saves.
  t=(train --data "$fix" --image-size 16 --n-way 3 --k-shot 2 --n-query 2 --reduced-dim 32
    --heads 2 --dim-head 8 --mlp-dim 16 --workers 1 --episodes 6 --val-episodes 0
    --meta-batch 2 --seed 4 --epochs 500 --quiet --run-dir "$dir/stopped")
  # (mpiexec itself in the background, not under timeout, which would not pass SIGINT on)
  "${launch[@]}" "$dir/rank.sh" - "$fewcl" "${t[@]}" >/dev/null 2>"$dir/mpiexec.err" &
  job=$!
  (exec >/dev/null 2>&1; sleep 120 && kill -9 $job) & # a hang fails, without holding the output
  watchdog=$!
  for _ in $(seq 600); do [ -e "$dir/stopped/last.safetensors" ] && break; sleep 0.1; done
  kill -INT $job
  if wait $job; then fail "the job ended with status 0"; fi
  kill $watchdog 2>/dev/null || true
  grep -q "stopped after .*; saved .*last.safetensors" "$dir/err.0" || fail "rank 0 did not save"
  grep -q "stopped after" "$dir/err.1" || fail "rank 1 did not stop cleanly"
  "$fewcl" test --weights "$dir/stopped/last.safetensors" --data "$fix" --split base \
    --episodes 2 >/dev/null 2>"$dir/test.err" || fail "the saved checkpoint does not load"
  echo "mpi.sigint: $(grep -o 'stopped after.*' "$dir/err.0" | head -1)"
  ;;
train_refused)
  # Refused before the run folder (or the demo's folder) is touched.
  if ranks - "$fewcl" train --data "$fix" --run-dir "$dir/run" >/dev/null; then
    fail "train ran"
  fi
  grep -q "training across 2 MPI ranks shares the episodes of a meta-batch step" "$dir/err.0" ||
    fail "no message"
  [ ! -e "$dir/run" ] || fail "the run folder was created"
  if ranks - "$fewcl" demo --out "$dir/demo" >/dev/null; then fail "demo ran"; fi
  [ ! -e "$dir/demo" ] || fail "the demo folder was created"
  grep -q "fewcl demo runs as one rank" "$dir/err.0" || fail "no message for demo"
  echo "mpi.train_refused: $(head -1 "$dir/err.0")"
  ;;
api)
  ranks - "$fewcl" "$fix" || fail "test_mpi_dist failed"
  ;;
*)
  echo "usage: $0 test|rank_error|train|rank_killed|sigint|train_refused|plan|api FEWCL FIXTURE_DIR MPIEXEC [flags]" >&2
  exit 2
  ;;
esac
