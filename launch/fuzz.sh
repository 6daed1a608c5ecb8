#!/usr/bin/env bash
# The clang build with ASan and UBSan (build-fuzz/, or NCSPARSE_FUZZ_BUILD_DIR), which CI runs
# after the test suite:
#   1. the libFuzzer harnesses (tests/fuzz): each replays its kept crash inputs, then fuzzes for
#      SECONDS (default 45) and fails on any crash;
#   2. the unit, mpi and io tests of the same instrumented build (labels unit, mpi, io, less
#      the CLI-driven io.files_cli: about 70 s of tests on two cores), failing on any ASan,
#      LSan or UBSan report. The GCC sanitizer build of every suite is launch/sanitize.sh.
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

cmake --build "$build" -j "$(nproc)" --target unit_tests io_unit_tests mpi_invariance mpi_merge mpi_errors io_roundtrip \
  -- --no-print-directory >/dev/null
ctest --output-on-failure -j "$(nproc)" -L 'unit|mpi|io' -LE 'python|slurm|gpu|faults|cli|study' -E '^io\.files_cli$' "$@"
