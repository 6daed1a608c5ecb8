#!/usr/bin/env bash
# The clang build with ASan and UBSan (build-fuzz/, or NCSPARSE_FUZZ_BUILD_DIR), which CI runs
# after the test suite:
#   1. the libFuzzer harnesses (tests/fuzz): each replays its kept crash inputs, then fuzzes for
#      SECONDS (default 45) and fails on any crash;
#   2. the unit, mpi, io, cli and study tests of the same instrumented build, the ncsparse
#      binary included (every command-line test runs it under ASan + UBSan: about 5 minutes
#      of tests on two cores), failing on any ASan, LSan or UBSan report. Not here: the
#      python, slurm, gpu and faults tests (the fault shim is preloaded into the launcher,
#      which is not instrumented). The GCC sanitizer build is launch/sanitize.sh.
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
ctest --output-on-failure -j "$(nproc)" -L 'unit|mpi|io|cli|study' -LE 'python|slurm|gpu|faults|fuzz' "$@"
