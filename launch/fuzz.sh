#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz) with clang, ASan and UBSan in their own folder
# (build-fuzz/, or NCSPARSE_FUZZ_BUILD_DIR) and runs them: each replays its kept crash inputs,
# then fuzzes for SECONDS (default 45) and fails on any crash.
#   launch/fuzz.sh [SECONDS] [ctest arguments]
# A longer run keeping its corpus: NCSPARSE_FUZZ_CORPUS=DIR tests/fuzz/run_fuzz.sh (see there).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-45}
[ $# -gt 0 ] && shift
"$root/launch/setup.sh"
build=${NCSPARSE_FUZZ_BUILD_DIR:-$root/build-fuzz}
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNCSPARSE_FUZZ=ON \
    -DNCSPARSE_TESTS=OFF -DNCSPARSE_CUDA=OFF -DNCSPARSE_BENCHMARKS=OFF -DNCSPARSE_PYTHON=OFF >/dev/null
fi
cmake -S "$root" -B "$build" -DNCSPARSE_FUZZ_SECONDS="$seconds" >/dev/null
cmake --build "$build" -j "$(nproc)" --target fuzz_h5_input fuzz_study_spec -- --no-print-directory >/dev/null
cd "$build"
ctest --output-on-failure -j "$(nproc)" -L fuzz "$@"
