#!/usr/bin/env bash
# The clang build with ASan and UBSan (build-fuzz/, or NCSPARSE_FUZZ_BUILD_DIR), which CI runs
# after the test suite:
#   1. the libFuzzer harnesses (tests/fuzz): each replays its kept crash inputs, then fuzzes for
#      SECONDS (default 45) and fails on any crash;
#   2. the unit, mpi, io, cli and study tests of the same instrumented build, the ncsparse
#      binary included, failing on any ASan, LSan or UBSan report: first the tests that run in
#      one process (gtest) with leak checking, then the command-line tests (every mpiexec
#      run of ncsparse under ASan + UBSan) without it. Leak checking needs full stack
#      unwinding at every malloc, so that the MPI stack's leaks can be told from ours by
#      suppression; that made each mpiexec start 2.6 times slower (0.63 s against 0.24 s) and
#      CI 26 minutes long. Our code's leaks are the in-process tests' to find (the same engine);
#      launch/sanitize.sh --full checks leaks in the command-line tests too (nightly). Not
#      here: the python, slurm, gpu and faults tests (the fault shim is preloaded into the
#      launcher, which is not instrumented). The GCC sanitizer build is launch/sanitize.sh.
#   launch/fuzz.sh [SECONDS] [ctest arguments]
# NCSPARSE_FUZZ_ONLY=1 skips step 2. A longer fuzzing run keeping its corpus:
# NCSPARSE_FUZZ_CORPUS=DIR tests/fuzz/run_fuzz.sh (see there).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-45}
[ $# -gt 0 ] && shift
"$root/launch/setup.sh"
build=${NCSPARSE_FUZZ_BUILD_DIR:-$root/build-fuzz}

. "$root/launch/sanitizer_env.sh"

if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNCSPARSE_FUZZ=ON \
    -DNCSPARSE_CUDA=OFF -DNCSPARSE_BENCHMARKS=OFF -DNCSPARSE_PYTHON=OFF >/dev/null
fi
cmake -S "$root" -B "$build" -DNCSPARSE_FUZZ_SECONDS="$seconds" -DNCSPARSE_TESTS=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target fuzz_h5_input fuzz_study_spec -- --no-print-directory >/dev/null
cd "$build"
ctest --output-on-failure -j "$(nproc)" -L fuzz "$@"
[ "${NCSPARSE_FUZZ_ONLY:-0}" = 1 ] && exit 0

cmake --build "$build" -j "$(nproc)" -- --no-print-directory >/dev/null
cli_tests='^(cli\.|io\.files_cli$|study\.cli\.)'
ctest --output-on-failure -j "$(nproc)" -L 'unit|mpi|io|study' -LE 'python|slurm|gpu|faults|fuzz|cli' -E "$cli_tests" "$@"
# Twice as many test slots as cores: these tests wait on process launches (mpiexec, ASan's
# start-up) more than they compute, and each takes 2 slots (PROCESSORS 2), so -j nproc ran them
# one at a time. Measured on 2 cores: cli.* and io.files_cli 275 s one at a time, 172 s two at
# a time. study.cli.* stay one at a time (RUN_SERIAL: kill_resume and sigterm time their
# signals against an uninterrupted run).
ASAN_OPTIONS="detect_leaks=0:check_initialization_order=1" \
  ctest --output-on-failure -j "$(($(nproc) * 2))" -L 'cli|study' -LE 'python|slurm|gpu|faults|fuzz' -R "$cli_tests" "$@"
