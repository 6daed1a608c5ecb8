#!/usr/bin/env bash
# Installs what is missing (launch/setup.sh), configures and builds ncsparse in build/.
# Extra arguments go to cmake's configure step, e.g. -DNCSPARSE_SANITIZE=ON.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/launch/setup.sh"
build=${NCSPARSE_BUILD_DIR:-$root/build}
# Configure once (or when options are given); later builds re-run CMake by themselves when a
# CMakeLists.txt or a globbed folder changes.
if [ ! -f "$build/CMakeCache.txt" ] || [ $# -gt 0 ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
fi
cmake --build "$build" -j "$(nproc)" -- --no-print-directory >/dev/null
