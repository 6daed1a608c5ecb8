#!/usr/bin/env bash
# One job step of ncsparse inside a Slurm allocation:
#   launch/slurm/step.sh NCSPARSE_BINARY COMMAND [ARGS...]
# runs `srun --mpi=pmix NCSPARSE_BINARY COMMAND ARGS... $NCSPARSE_STEP_FLAGS` on every task of
# the allocation (one MPI rank per task), adding each flag of NCSPARSE_STEP_FLAGS (set by
# common.sh: --threads from --cpus-per-task, --backend cuda in the GPU scripts) only when ARGS
# lack it. srun's exit code is the ranks' (75: interrupted, resumable). launch/reproduce.sh
# takes it as NCSPARSE_LAUNCHER in place of `mpirun -np P`.
#   NCSPARSE_SRUN_MPI    srun's --mpi plugin (default pmix; `srun --mpi=list` shows a site's)
#   NCSPARSE_SRUN_FLAGS  more srun flags, e.g. "--cpu-bind=cores"
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: step.sh NCSPARSE_BINARY COMMAND [ARGS...]" >&2; exit 64; }
args=("$@")
read -r -a extra <<<"${NCSPARSE_STEP_FLAGS:-}"
i=0
while [ $i -lt ${#extra[@]} ]; do
  flag=${extra[$i]} value=${extra[$((i + 1))]:-}
  given=0
  for a in "$@"; do
    [ "$a" = "$flag" ] || [[ $a == "$flag="* ]] && given=1
  done
  [ $given = 1 ] || args+=("$flag" "$value")
  i=$((i + 2))
done
read -r -a srun_flags <<<"${NCSPARSE_SRUN_FLAGS:-}"
# srun of Slurm 22.05 to 23.02 does not take --cpus-per-task from the batch job: without it a
# task bound to its CPUs would run its --threads on one CPU.
[ -z "${SLURM_CPUS_PER_TASK:-}" ] || srun_flags=(--cpus-per-task="$SLURM_CPUS_PER_TASK" ${srun_flags[@]+"${srun_flags[@]}"})
exec srun --mpi="${NCSPARSE_SRUN_MPI:-pmix}" ${srun_flags[@]+"${srun_flags[@]}"} "${args[@]}"
