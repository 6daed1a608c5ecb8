#!/usr/bin/env bash
# The sbatch scripts of launch/slurm/ on a real Slurm: Debian's slurmctld and slurmd started
# here as a one-node cluster, configured in a temporary directory (auth/none: nothing in /etc
# is read or changed), and stopped on every exit.
#   tests/slurm/slurm_test.sh NCSPARSE_BINARY
# It checks that
#   1. run_cpu.sbatch runs 2 ranks with --threads = --cpus-per-task;
#   2. study_cpu.sbatch runs the quickstart study to the end;
#   3. the same study, sent SIGTERM in its batch shell (what --signal=B:TERM@N does) after its
#      first record, stops with exit 75, requeues itself, resumes from its records, and its
#      report (--format csv) equals that of the uninterrupted run byte for byte;
#   4. a failing job's exit code (66: missing study file) reaches sacct, or `scontrol show job`
#      where accounting is off (as here).
# Exit 77 (CTest's SKIP_RETURN_CODE) with the reason when Slurm is not installed, when not
# root (the daemons run as root here), or when the daemons do not start. Every wait is bounded.
set -uo pipefail

bin=${1:?usage: slurm_test.sh NCSPARSE_BINARY}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
t_start=$(date +%s)

skip() {
  echo "SKIP: $*"
  exit 77
}
for tool in slurmctld slurmd sbatch scontrol scancel squeue srun sinfo; do
  command -v "$tool" >/dev/null || skip "Slurm's $tool is not installed (launch/setup.sh installs Debian's slurmctld, slurmd, slurm-client)"
done
[ "$(id -u)" -eq 0 ] || skip "the test starts slurmctld and slurmd as root; run it as root"
[ -x "$bin" ] || { echo "FAIL: $bin is not executable"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ncsparse-slurm.XXXXXX")
ctld_pid="" slurmd_pid=""
cleanup() {
  trap '' EXIT INT TERM
  if [ -n "$ctld_pid" ] && kill -0 "$ctld_pid" 2>/dev/null; then
    # Cancel what is left (a failed test), and give the steps a moment to end.
    # shellcheck disable=SC2046 # one job id a word
    timeout 10 scancel --full $(timeout 10 squeue -h -o %i 2>/dev/null) >/dev/null 2>&1
    for _ in $(seq 1 20); do
      [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
  for pid in $slurmd_pid $ctld_pid; do
    kill "$pid" 2>/dev/null
  done
  for pid in $slurmd_pid $ctld_pid; do
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null
  done
  if [ -n "${NCSPARSE_SLURM_KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

dump() {
  for f in "$tmp"/*.out "$tmp"/slurmctld.log "$tmp"/slurmd.log; do
    [ -f "$f" ] || continue
    echo "---- ${f##*/} (last 30 lines)"
    tail -n 30 "$f"
  done
}
fail() { # to stderr: it may run inside $(...)
  {
    echo "FAIL: $*"
    dump
  } >&2
  exit 1
}

# --- the cluster: one node (this machine, over loopback), one partition -------------------
host=$(hostname -s)
port=$((20000 + RANDOM % 20000))
mkdir -p "$tmp/state" "$tmp/spool"
cat >"$tmp/slurm.conf" <<EOF
ClusterName=ncsparse-test
# Job ids of their own, so that two such clusters at once do not share /tmp/spmix_appdir_0_JOB.STEP.
FirstJobId=$((1000 + RANDOM * 16))
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/none
CredType=cred/none
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
# The main scheduling loop every second (default 60 s): a requeued job starts once eligible.
SchedulerParameters=sched_interval=1
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$tmp/jobcomp.txt
ReturnToService=2
# A requeued job may start again after cred_expire + 1 s (default 120 s).
AuthInfo=cred_expire=5
KillWait=10
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=4 RealMemory=1000 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$tmp/slurm.conf
slurmctld -D -f "$SLURM_CONF" >"$tmp/slurmctld.stdout" 2>&1 &
ctld_pid=$!
slurmd -D -f "$SLURM_CONF" >"$tmp/slurmd.stdout" 2>&1 &
slurmd_pid=$!
up=0
for _ in $(seq 1 60); do
  { kill -0 "$ctld_pid" && kill -0 "$slurmd_pid"; } 2>/dev/null || break # a daemon died
  state=$(timeout 5 sinfo -h -n "$host" -o %t 2>/dev/null)
  [ "$state" = idle ] && { up=1; break; }
  sleep 0.5
done
if [ $up = 0 ]; then
  echo "slurmctld/slurmd did not come up (node state '${state:-none}'):"
  tail -n 5 "$tmp"/slurmctld.stdout "$tmp"/slurmd.stdout "$tmp"/slurmctld.log "$tmp"/slurmd.log 2>/dev/null
  skip "the Slurm daemons could not start on this machine"
fi
echo "slurm: one-node cluster up in $(($(date +%s) - t_start)) s ($(slurmctld -V), port $port)"

# --- helpers ----------------------------------------------------------------------------
export NCSPARSE_ROOT=$root NCSPARSE_BIN=$bin
field() { # field JOB NAME: a field of `scontrol show job`
  timeout 10 scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}
submit() { # submit NAME SBATCH_ARGS...: prints the job id
  local name=$1 id
  shift
  id=$(cd "$tmp" && timeout 20 sbatch --parsable --output="$tmp/$name.out" "$@") || fail "sbatch $* failed"
  echo "${id%%;*}"
}
wait_done() { # wait_done JOB SECONDS: until the job leaves PENDING/RUNNING/REQUEUED/COMPLETING
  local job=$1 limit=$2 s="" t0
  t0=$(date +%s)
  while [ $(($(date +%s) - t0)) -lt "$limit" ]; do
    s=$(field "$job" JobState)
    case $s in
      PENDING | RUNNING | REQUEUED | REQUEUE_FED | REQUEUE_HOLD | COMPLETING | CONFIGURING | "") sleep 0.3 ;;
      *) echo "$s"; return 0 ;;
    esac
  done
  fail "job $job still ${s:-unknown} after $limit s"
}
exit_code() { # exit_code JOB: "CODE:SIGNAL" from sacct, or from scontrol when accounting is off
  local e
  e=$(timeout 10 sacct -n -X -P -j "$1" -o ExitCode 2>/dev/null | head -n 1)
  if [ -n "$e" ]; then
    echo "sacct $e"
  else
    echo "scontrol $(field "$1" ExitCode)"
  fi
}
study=$root/data/studies/quickstart.toml
sb=$root/launch/slurm

# --- 1. run_cpu.sbatch: ranks and --threads from the allocation -------------------------
t0=$(date +%s)
job=$(submit run --ntasks=2 --cpus-per-task=2 "$sb/run_cpu.sbatch" --n 4096 --d 16 --queries 32 --window const:8)
[ "$(wait_done "$job" 60)" = COMPLETED ] || fail "run_cpu.sbatch: job $job did not complete"
grep -q "ranks=2 threads/rank=2" "$tmp/run.out" || fail "run_cpu.sbatch: the header does not say ranks=2 threads/rank=2"
echo "ok 1: run_cpu.sbatch ran 2 ranks x 2 threads (--cpus-per-task=2) in $(($(date +%s) - t0)) s"

# --- 2. the uninterrupted study ----------------------------------------------------------
t0=$(date +%s)
mkdir -p "$tmp/ref" "$tmp/pre"
job=$(submit ref "$sb/study_cpu.sbatch" "$study" "$tmp/ref/results.h5")
[ "$(wait_done "$job" 120)" = COMPLETED ] || fail "study_cpu.sbatch: job $job did not complete"
timeout 30 "$bin" report "$tmp/ref/results.h5" --format csv >"$tmp/ref.csv" || fail "report of the uninterrupted study"
echo "ok 2: the quickstart study through study_cpu.sbatch in $(($(date +%s) - t0)) s"

# --- 3. preempted, requeued, resumed -----------------------------------------------------
t0=$(date +%s)
job=$(submit pre "$sb/study_cpu.sbatch" "$study" "$tmp/pre/results.h5")
records=0
for _ in $(seq 1 300); do
  records=$(find "$tmp/pre/results.h5.records" -name '*.h5' 2>/dev/null | wc -l)
  [ "$records" -ge 1 ] && break
  sleep 0.1
done
[ "$records" -ge 1 ] || fail "the study recorded nothing in 30 s"
# What --signal=B:TERM@N does before the time limit: SIGTERM to the batch shell only.
timeout 10 scancel --batch --signal=TERM "$job" || fail "scancel --batch --signal=TERM $job"
t_signal=$(date +%s)
[ "$(wait_done "$job" 180)" = COMPLETED ] || fail "the preempted study (job $job) did not complete after its requeue"
grep -q "interrupted by SIGTERM: [0-9]* of 10 configurations recorded" "$tmp/pre.out" ||
  fail "the study did not stop on SIGTERM (no 'interrupted by SIGTERM' in its log)"
grep -q "requeueing job $job" "$tmp/pre.out" || fail "the batch script did not requeue job $job"
grep -q "configurations already recorded in .*; resuming" "$tmp/pre.out" || fail "the requeued job did not resume"
[ "$(field "$job" Restarts)" = 1 ] || fail "job $job: Restarts=$(field "$job" Restarts), expected 1"
stopped=$(grep -o "interrupted by SIGTERM: [0-9]* of 10" "$tmp/pre.out" | head -n 1)
timeout 30 "$bin" report "$tmp/pre/results.h5" --format csv >"$tmp/pre.csv" || fail "report of the resumed study"
cmp "$tmp/ref.csv" "$tmp/pre.csv" || fail "the resumed study's report differs from the uninterrupted one"
echo "ok 3: SIGTERM to the batch shell: $stopped, requeued, resumed, finished $(($(date +%s) - t_signal)) s" \
  "after the signal; report CSV identical to the uninterrupted run ($(wc -l <"$tmp/ref.csv") lines)"

# --- 4. a failing job's exit code --------------------------------------------------------
t0=$(date +%s)
job=$(submit fail "$sb/study_cpu.sbatch" "$tmp/missing.toml" "$tmp/fail.h5")
state=$(wait_done "$job" 60)
code=$(exit_code "$job")
[ "$state" = FAILED ] || fail "job $job (missing study file): state $state, expected FAILED"
[ "${code#* }" = 66:0 ] || fail "job $job (missing study file): exit code '$code', expected 66:0"
echo "ok 4: a failing job (missing study file) ends FAILED with ExitCode 66:0 (${code%% *}) in $(($(date +%s) - t0)) s"

echo "slurm test passed in $(($(date +%s) - t_start)) s"
