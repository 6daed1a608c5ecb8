#!/usr/bin/env bash
# Runs the main job: installs and builds what is missing, then
#   mpirun -np $NCSPARSE_NP ncsparse run [ARGS]
# with the built-in default (1,048,576 tokens of the paper's input model, d = 64, 2 ranks)
# when no ARGS are given. ARGS are flags of `ncsparse run` (see ./launch/run.sh --help).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/launch/build.sh"
np=${NCSPARSE_NP:-2}
flags=(-q -np "$np")
[ "$np" -gt "$(nproc)" ] && flags+=(--oversubscribe)
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
exec mpirun "${flags[@]}" "${NCSPARSE_BUILD_DIR:-$root/build}/ncsparse" run "$@"
