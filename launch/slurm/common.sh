# Sourced by the batch scripts of launch/slurm/ (not run by itself). It:
#   - finds the checkout and the ncsparse binary (NCSPARSE_ROOT, default the submit directory;
#     NCSPARSE_BIN, default ROOT/build/ncsparse);
#   - sets what launch/slurm/step.sh adds to every ncsparse command: --threads from
#     --cpus-per-task, and --backend cuda in the GPU scripts;
#   - runs one command in the background and forwards the SIGTERM that
#     `#SBATCH --signal=B:TERM@N` (or `scancel --batch --signal=TERM`) sends to this batch shell
#     on to the ranks of the job's steps, which commit and exit 75;
#   - requeues the job when that command exited 75 (interrupted, resumable).
# docs/slurm.md describes the flow.

ncs_say() { echo "ncsparse-slurm: $*" >&2; }
ncs_die() {
  ncs_say "error: $2"
  exit "$1"
}

[ -n "${SLURM_JOB_ID:-}" ] || ncs_die 64 "not inside a Slurm job: submit this script with sbatch (docs/slurm.md)"
ncs_root=${NCSPARSE_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}
[ -f "$ncs_root/launch/slurm/step.sh" ] ||
  ncs_die 64 "$ncs_root is not an ncsparse checkout: submit from its root or set NCSPARSE_ROOT"
ncs_bin=${NCSPARSE_BIN:-$ncs_root/build/ncsparse}
[ -x "$ncs_bin" ] || ncs_die 66 "$ncs_bin is not built (launch/build.sh on a login node, or set NCSPARSE_BIN)"
ncs_threads=${SLURM_CPUS_PER_TASK:-1}
# Flags that launch/slurm/step.sh appends to the ncsparse command of each step (unless given).
export NCSPARSE_STEP_FLAGS="--threads $ncs_threads${NCSPARSE_BACKEND:+ --backend $NCSPARSE_BACKEND}"
export NCSPARSE_BIN=$ncs_bin
ncs_say "job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}) on ${SLURM_JOB_NODELIST:-?}:" \
  "${SLURM_NTASKS:-1} ranks, $ncs_threads threads each; $ncs_bin"

ncs_trapped=0
ncs_forwarded=0
ncs_on_term() {
  ncs_trapped=1
  [ "$ncs_forwarded" = 1 ] && return
  ncs_forwarded=1
  # Without --batch/--full, scancel signals every step of the job but not this batch shell:
  # the ranks themselves get SIGTERM. (SIGTERM to srun would make it kill the step instead.)
  ncs_say "SIGTERM: forwarding it to the ranks of job $SLURM_JOB_ID; they commit and exit 75"
  scancel --signal=TERM "$SLURM_JOB_ID" || kill -TERM "$ncs_pid" 2>/dev/null || true
}

# ncs_run CMD [ARGS...]: runs CMD in the background, forwarding SIGTERM, and then finishes the
# job with its exit code: 0 done; 75 requeued (or, past NCSPARSE_MAX_REQUEUES, left at 75).
ncs_run() {
  trap ncs_on_term TERM
  "$@" &
  ncs_pid=$!
  local rc
  while :; do
    ncs_trapped=0
    rc=0
    wait "$ncs_pid" || rc=$?
    # A wait cut short by the trap returns 128+15 while the command runs on: wait again.
    [ "$ncs_trapped" = 1 ] || break
  done
  trap '' TERM
  ncs_finish "$rc"
}

ncs_finish() {
  local rc=$1 max=${NCSPARSE_MAX_REQUEUES:-10}
  if [ "$rc" -ne 75 ]; then
    ncs_say "done: exit $rc"
    exit "$rc"
  fi
  if [ "${SLURM_RESTART_COUNT:-0}" -ge "$max" ]; then
    ncs_say "interrupted (exit 75) after $max requeues (NCSPARSE_MAX_REQUEUES): not requeued; resubmit to resume"
    exit 75
  fi
  ncs_say "interrupted, resumable (exit 75): requeueing job $SLURM_JOB_ID; it resumes from its records"
  scontrol requeue "$SLURM_JOB_ID" || ncs_say "scontrol requeue failed: resubmit the same command to resume"
  exit 75
}
