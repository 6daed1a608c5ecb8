#!/usr/bin/env bash
# Builds ncsparse with AddressSanitizer + UndefinedBehaviorSanitizer (-DNCSPARSE_SANITIZE=ON)
# in its own folder (build-asan/, or NCSPARSE_SANITIZE_BUILD_DIR) and runs tests under them.
#   launch/sanitize.sh          unit, mpi, io and cli tests but cli.bad_input (docs/reliability.md §8)
#   launch/sanitize.sh --full   every unit, mpi, io, cli and study test (the nightly command;
#                               cli.bad_input and the study.cli tests outlast their limits under ASan)
# Extra arguments go to ctest. No CUDA, benchmarks, Python, Slurm or fault-injection tests
# here (the fault shim is preloaded into mpirun, which is not instrumented). Any ASan or UBSan
# report ends its process with a non-zero status and so fails its test; leaks are reported
# except those of the MPI stack and HDF5 (tests/sanitize/lsan.supp).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
full=0
if [ "${1:-}" = "--full" ]; then
  full=1
  shift
fi
"$root/launch/setup.sh"
build=${NCSPARSE_SANITIZE_BUILD_DIR:-$root/build-asan}

# Read by every instrumented process, the build's test discovery (gtest_discover_tests runs
# the test binaries) and every MPI rank included: mpiexec passes the environment on.
# Leak stacks are unwound in full (fast_unwind_on_malloc=0) and OpenMPI keeps its plugins
# loaded (disable_dlclose): otherwise their frames read as "<unknown module>" and the
# suppressions cannot name them.
export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:check_initialization_order=1"
export LSAN_OPTIONS="suppressions=$root/tests/sanitize/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export OMPI_MCA_mca_base_component_disable_dlclose=1
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNCSPARSE_SANITIZE=ON -DNCSPARSE_CUDA=OFF \
    -DNCSPARSE_BENCHMARKS=OFF -DNCSPARSE_PYTHON=OFF >/dev/null
fi
cmake --build "$build" -j "$(nproc)" -- --no-print-directory >/dev/null

cd "$build"
if [ $full -eq 1 ]; then
  ctest --output-on-failure -j "$(nproc)" -L 'unit|mpi|io|cli|study' -LE 'python|slurm|gpu|faults' "$@"
else
  # cli.bad_input (about 80 mpiexec runs) outlasts its 600 s limit under ASan: --full only.
  ctest --output-on-failure -j "$(nproc)" -L 'unit|mpi|io|cli' -LE 'python|slurm|gpu|faults' -E '^cli\.bad_input$' "$@"
fi
