#!/usr/bin/env bash
# Installs and builds what is missing, then runs the whole test suite with CTest: unit tests,
# MPI tests at 1, 2, 3 and 4 ranks (oversubscribed where there are fewer cores), and the
# command-line tests. Extra arguments go to ctest, e.g. -L mpi or -R invariance.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/launch/build.sh"
build=${NCSPARSE_BUILD_DIR:-$root/build}
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
cd "$build"
ctest --output-on-failure -j "$(nproc)" "$@"
