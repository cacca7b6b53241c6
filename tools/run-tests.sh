#!/usr/bin/env bash
# Quick start, command 2: install the packages, build, and run the tests.
# usage: tools/run-tests.sh [plain|sanitize|tsan|oclgrind|portable|mpi|fuzz|all]
#   (default: plain + oclgrind + portable + mpi)
#   plain     the cmocka tests on the default device, also with GPU-like limits
#   portable  the kernel and model tests on Mesa rusticl (llvmpipe: as a CPU device, and with
#             the GPU kernels + CLBlast) and on PoCL under AMD-like and Intel-like GPU limits
#   sanitize  the same tests built with AddressSanitizer + UndefinedBehaviorSanitizer
#   tsan      test_api (two contexts on two threads, a job cancelled from another thread) and
#             test_devices (replicas on their own threads, sharded evaluation) built with
#             ThreadSanitizer
#   oclgrind  the kernel tests on small shapes under oclgrind (out-of-bounds, races, API)
#   mpi       the tool and the distributed layer at 2 ranks under Open MPI's mpiexec (ctest
#             label mpi; registered when the build has MPI, which tools/setup.sh installs)
#   fuzz      each libFuzzer target (safetensors, filelist, image) for FUZZ_SECONDS (10) on the
#             committed seed corpus, with ASan+UBSan
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-default}
bash tools/setup.sh
NOT_PLAIN='oclgrind|rusticl|profiles|mpi' # the labels of the runs that have a mode of their own
# Tests in parallel, one per core: no test depends on the thread count or on another test (each
# writes under its own temporary names; the program-binary cache is written atomically).
JOBS=${FEWCL_TEST_JOBS:-$(nproc)}

plain() {
  bash tools/build.sh build -DFEWCL_WERROR=ON -DFEWCL_OCLGRIND=ON
  ctest --test-dir build --output-on-failure -j "$JOBS" -LE "$NOT_PLAIN"
}
portable() {
  bash tools/build.sh build -DFEWCL_WERROR=ON -DFEWCL_OCLGRIND=ON
  ctest --test-dir build --output-on-failure -j "$JOBS" -L 'rusticl|profiles'
}
oclgrind_tests() {
  bash tools/build.sh build -DFEWCL_WERROR=ON -DFEWCL_OCLGRIND=ON
  ctest --test-dir build --output-on-failure -j "$JOBS" -L oclgrind
}
# One test at a time (RUN_SERIAL): each launches 2 ranks, which fill the cores. A build
# without MPI has no such tests: that is a failure here, not a silent pass.
mpi_tests() {
  bash tools/build.sh build -DFEWCL_WERROR=ON -DFEWCL_OCLGRIND=ON -DFEWCL_MPI=ON
  ctest --test-dir build --output-on-failure -L mpi --no-tests=error
}
ASAN_SKIP='\.tiled$|^(api|backbone|checkpointing|cli_errors|episode|fit|plan|train)\.gpu-profile$'
sanitize() {
  bash tools/build.sh build-asan -DFEWCL_WERROR=ON -DFEWCL_SANITIZE=ON
  # Two tests at a time, then the failed ones again one at a time with four retries:
  # LeakSanitizer's tracer crashes (signal 11, "LeakSanitizer has encountered a fatal error")
  # now and then after all tests of a binary have passed, with PoCL's threads still running,
  # mostly with two tests side by side (1 of 4 linear twins per -j2 round on a loaded machine,
  # session 8; both linear twins, then linear once alone, in a session-10 run), rarely alone.
  # A real leak or error fails every try; the serial run this replaces took ~45% of CI.
  # Left out, to keep CI short: the .tiled twins (they change only which GEMM kernel runs,
  # through the launch code every kernel takes; the .clblast twins stay, CLBlast's calls being
  # host code), and the .gpu-profile twins of the whole-model and tool tests, whose host code
  # is that of their plain runs (the profile changes kernels and launch shapes, which the
  # op tests' .gpu-profile twins still cover here). backbone.gpu-profile is one of those: whole
  # backbones against the plain-C reference, whose instrumented loops made it one of the
  # longest runs here; the plain backbone run covers its host code under the sanitizers.
  if ! UBSAN_OPTIONS=print_stacktrace=1 ctest --test-dir build-asan --output-on-failure \
    -j "$JOBS" -LE "$NOT_PLAIN" -E "$ASAN_SKIP"; then
    echo "sanitize: the failed tests again, one at a time (four retries)"
    UBSAN_OPTIONS=print_stacktrace=1 ctest --test-dir build-asan --output-on-failure \
      --rerun-failed --repeat until-pass:5
  fi
}

tsan() {
  FEWCL_BUILD_TARGET=test_api bash tools/build.sh build-tsan -DFEWCL_WERROR=ON -DFEWCL_TSAN=ON
  FEWCL_BUILD_TARGET=test_devices bash tools/build.sh build-tsan -DFEWCL_WERROR=ON -DFEWCL_TSAN=ON
  # halt_on_error: a report fails the run (TSan's exit code 66), not only a log line.
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build-tsan/tests/test_api
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build-tsan/tests/test_devices
}

fuzz() {
  bash tools/build.sh build-fuzz -DCMAKE_C_COMPILER=clang -DFEWCL_FUZZ=ON -DFEWCL_TESTS=OFF
  for target in safetensors filelist image; do
    work=$(mktemp -d)
    echo "fuzz_$target: ${FUZZ_SECONDS:-10} s"
    build-fuzz/tests/fuzz/fuzz_$target -max_total_time="${FUZZ_SECONDS:-10}" -rss_limit_mb=2048 \
      -artifact_prefix="$work/" "$work" "tests/fuzz/corpus/$target" 2>&1 | grep -E "^Done|ERROR|SUMMARY" || true
    if ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* >/dev/null 2>&1; then
      echo "fuzz_$target found a failing input: $(ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* 2>/dev/null)" >&2
      exit 1
    fi
  done
}

case "$mode" in
  plain) plain ;;
  sanitize) sanitize ;;
  oclgrind) oclgrind_tests ;;
  portable) portable ;;
  mpi) mpi_tests ;;
  default) plain; oclgrind_tests; portable; mpi_tests ;;
  fuzz) fuzz ;;
  tsan) tsan ;;
  all) plain; sanitize; tsan; oclgrind_tests; portable; mpi_tests; fuzz ;;
  *) echo "usage: $0 [plain|sanitize|tsan|oclgrind|portable|mpi|fuzz|all]" >&2; exit 2 ;;
esac
