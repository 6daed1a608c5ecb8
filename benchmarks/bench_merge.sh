#!/usr/bin/env bash
# The candidate-list merge's MPI algorithms side by side (benchmarks/bench_merge.cpp) at
# P = 1, 2, 4, 8 ranks on this machine (P > cores is oversubscribed), for m rows × (K + 1)
# candidates per rank. Prints the machine, the date and one table per P; RESULTS.md keeps it.
# Usage: benchmarks/bench_merge.sh [BUILD_DIR] [REPS] [M_LIST] [K_LIST] [P_LIST]
set -eu
build=${1:-build}
reps=${2:-7}
ms=${3:-16,256}
ks=${4:-256,1024,4096,16384}
ps=${5:-"1 2 4 8"}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(mpirun --version | head -n 1)"
echo "# $0 $build $reps $ms $ks \"$ps\""
for p in $ps; do
  mpirun -q -n "$p" --oversubscribe --bind-to none "$build/benchmarks/bench_merge" --m "$ms" --K "$ks" --reps "$reps" |
    { [ "$p" = "$(echo $ps | cut -d' ' -f1)" ] && cat || tail -n +2; }
done
