#!/usr/bin/env bash
# SIGKILL one of two ranks during MPI start-up, many times, and report every launcher still alive
# 20 s later, with what is left of the job (ps) and where each survivor waits (gdb backtraces).
# Not a CTest test: it reproduces the launcher's PMIx shutdown deadlock of docs/reliability.md §6
# (about 1 in 60 trials on a 2-core machine), which a test could only ever report as flaky.
#   tests/faults/startup_kills.sh [BIN] [TRIALS]     (BIN default build/ncsparse, TRIALS 60)
set -u
bin=${1:-build/ncsparse}
trials=${2:-60}
[ "$(id -u)" -ne 0 ] || export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
hangs=0
for i in $(seq 1 "$trials"); do
  delay=$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.3f", rand() * 0.4 }')
  victim=$((RANDOM % 2))
  mpirun -q -np 2 --oversubscribe "$bin" run --n 4096 --d 16 --queries 16 >/dev/null 2>/dev/null &
  launcher=$!
  pids=()
  for _ in $(seq 1 300); do
    mapfile -t pids < <(pgrep -P "$launcher" -x ncsparse | sort -n)
    [ ${#pids[@]} -ge 2 ] && break
    sleep 0.01
  done
  sleep "$delay"
  [ ${#pids[@]} -gt "$victim" ] && kill -KILL "${pids[$victim]}" 2>/dev/null
  for _ in $(seq 1 200); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$launcher" 2>/dev/null; then
    hangs=$((hangs + 1))
    echo "HANG in trial $i: rank index $victim killed ${delay} s after both ranks existed"
    ps -o pid,ppid,stat,args --ppid "$launcher" --pid "$launcher"
    for p in "$launcher" $(pgrep -P "$launcher"); do
      echo "== $p $(cat "/proc/$p/comm" 2>/dev/null)"
      gdb -p "$p" -batch -ex "thread apply all bt 10" 2>/dev/null | grep -E "^#|^Thread" | head -30
    done
    pkill -KILL -P "$launcher"; kill -KILL "$launcher"
  fi
  wait "$launcher" 2>/dev/null
done
echo "startup kills: $hangs launcher hang(s) in $trials trials"
