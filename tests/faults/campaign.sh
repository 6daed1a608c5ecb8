#!/usr/bin/env bash
# The kill campaign (CTest label faults; docs/reliability.md §6): a small study on 2 and 3 ranks
# is stopped at random moments, and the same command resumes it each time; its final
# `report --format csv` must equal an uninterrupted run's on the same rank count, byte for byte.
# The faults, in turn:
#   job   SIGKILL to the launcher and every rank at once (a node lost, `kill -9` of the job);
#   rank  SIGKILL to one rank (the launcher must end the others);
#   term  SIGTERM to every rank once the study has started (scancel, a preemption): exit 75 and
#         one line "interrupted by SIGTERM" (or exit 0 and no line, when the study had ended).
# Every fault must end the job (launcher and ranks gone) within BOUND seconds; the time from the
# fault to the job's exit is printed per fault ("fault-to-exit" lines) with p50/max per kind.
# A resume may itself be killed (one time in three) before the resume that runs to the end.
#
# Usage: campaign.sh NCSPARSE|BUILD_DIR [--kills N] [--terms N] [--seed S] [--bound SECONDS]
#                    [--mpiexec MPIEXEC] [--no-startup-rank-kills]
#   --kills  SIGKILL faults (default 60; job and rank kills alternate, P = 2 and 3 alternate)
#   --terms  SIGTERM faults (default 10)
#   --seed   seeds bash's RANDOM, which draws the moments and the killed rank (default: from the
#            clock; printed). The same seed gives the same draws; the machine's timing does not
#            repeat, so where in the study a moment lands may differ.
#   --no-startup-rank-kills  kill one rank only once the study has started (its lock taken): a
#            rank killed during MPI start-up can leave the job hanging (docs/reliability.md §6,
#            open), which CI leaves out
#   --bound  most seconds from a fault to the job's exit (default NCSPARSE_FAULT_BOUND or 20)
set -u
bin=$1
shift
[ -d "$bin" ] && bin="$bin/ncsparse"
[ -x "$bin" ] || { echo "usage: campaign.sh NCSPARSE|BUILD_DIR [--kills N] [--terms N] [--seed S] [--bound S] [--mpiexec M]"; exit 2; }
kills=60
terms=10
seed=$(( $(date +%s%N) % 1000000 ))
bound=${NCSPARSE_FAULT_BOUND:-20}
mpiexec=mpiexec
startup_rank_kills=yes
while [ $# -gt 0 ]; do
  case $1 in
  --kills) kills=$2 ;;
  --terms) terms=$2 ;;
  --seed) seed=$2 ;;
  --bound) bound=$2 ;;
  --mpiexec) mpiexec=$2 ;;
  --no-startup-rank-kills) startup_rank_kills=no; shift; continue ;;
  *) echo "campaign.sh: unknown option $1"; exit 2 ;;
  esac
  shift 2
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
. "$(dirname "$0")/../support/study_jobs.sh"  # write_study, study_bg, ranks_of
tmp=$(mktemp -d)
bg=""
cleanup() {
  if [ -n "$bg" ]; then kill -KILL $bg $(pgrep -P "$bg") 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
RANDOM=$seed
echo "campaign: seed $seed, $kills kills, $terms SIGTERMs, bound $bound s (rerun: $0 $bin --kills $kills --terms $terms --seed $seed)"
passed=0
failed=0
ok() { passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }
now() { date +%s.%N; }
uniform() { awk -v r="$RANDOM" -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a + (r / 32768) * (b - a) }'; }

# 2 lengths x 2 seeds: one uninterrupted run takes a few seconds on two shared cores.
write_study "$tmp/s.toml" "1, 2" "2048, 4096"
declare -A full ref
for np in 2 3; do
  mkdir -p "$tmp/ref$np"
  t0=$(now)
  timeout 120 "$mpiexec" -q -n "$np" "$bin" study "$tmp/s.toml" --out "$tmp/ref$np/r.h5" >/dev/null 2>"$tmp/err"
  rc=$?
  full[$np]=$(echo "$(now) - $t0" | bc)
  [ "$rc" -eq 0 ] || { echo "the uninterrupted run on $np ranks exited $rc:"; cat "$tmp/err"; exit 1; }
  "$bin" report "$tmp/ref$np/r.h5" --format csv >"$tmp/ref$np.csv"
  echo "uninterrupted run, P = $np: ${full[$np]} s, $(($(wc -l <"$tmp/ref$np.csv") - 1)) rows"
done

# gone PIDS...: true when none of the processes runs any more (a zombie counts as gone).
gone() {
  local p
  for p in "$@"; do
    [ -e "/proc/$p" ] && [ "$(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null)" != Z ] && return 1
  done
  return 0
}

# fault KIND NP OUT WHAT SPAN: starts the study and, at a random moment, applies the fault. Sets
# rc, took (fault to exit, s; empty when the job finished first), and leaves stderr in $tmp/err.
fault() {
  local kind=$1 np=$2 out=$3 what=$4 span=$5 delay victim ranks t0 wd
  took=""
  study_bg "$np" "$out" "$tmp/s.toml" /dev/null "$tmp/err"
  if [ "$kind" = term ] || { [ "$kind" = rank ] && [ "$startup_rank_kills" = no ]; }; then
    # "During a block": once this job has taken the study's lock (the lock names its holder's
    # pid: a resume finds the killed job's lock file already there, and a rank killed while
    # the new job is still in MPI start-up can deadlock the launcher, docs/reliability.md §6),
    # at a random moment of the rest.
    for _ in $(seq 400); do
      holder=$(sed -n 's/^pid \([0-9]*\) .*/\1/p' "$out.records/lock" 2>/dev/null)
      [ -n "$holder" ] && ranks_of "$bg" | grep -qx "$holder" && break
      sleep 0.01
    done
    delay=$(uniform 0 "$(echo "${full[$np]} * $span * 0.6" | bc)")
  else
    delay=$(uniform 0 "$(echo "${full[$np]} * $span" | bc)")  # start-up included
  fi
  sleep "$delay"
  ranks=$(ranks_of "$bg")
  # Before the launcher has started the ranks: the fault comes when it has.
  for _ in $(seq 200); do
    [ -n "$ranks" ] || ! kill -0 "$bg" 2>/dev/null && break
    sleep 0.01
    ranks=$(ranks_of "$bg")
  done
  if ! kill -0 "$bg" 2>/dev/null || [ -z "$ranks" ]; then
    { wait "$bg"; } 2>/dev/null
    rc=$?
    bg=""
    echo "  $what: finished (exit $rc) before the fault at $delay s"
    return
  fi
  set -- $ranks
  victim=$(( RANDOM % $# + 1 ))
  victim=${!victim}
  t0=$(now)
  case $kind in
  job) kill -KILL "$bg" $ranks 2>/dev/null ;;
  rank) kill -KILL "$victim" 2>/dev/null ;;
  term) kill -TERM $ranks 2>/dev/null ;;
  esac
  # Nothing hangs: past 3 x BOUND the watchdog ends the job (and the fault fails below).
  (sleep $((3 * bound)); kill -KILL "$bg" $ranks 2>/dev/null) &
  wd=$!
  { wait "$bg"; } 2>/dev/null
  rc=$?
  while ! gone $ranks; do
    [ "$(echo "$(now) - $t0 > 3 * $bound" | bc)" -eq 1 ] && { kill -KILL $ranks 2>/dev/null; break; }
    sleep 0.01
  done
  took=$(echo "$(now) - $t0" | bc)
  kill "$wd" 2>/dev/null
  wait "$wd" 2>/dev/null
  bg=""
  [ "$kind" = rank ] && kind="rank (pid $victim of $(echo $ranks))"
  printf '  %s, P = %s: %s at %s s, exit %s, fault-to-exit %.3f s\n' "$what" "$np" "$kind" "$delay" "$rc" "$took"
  kind=${kind%% *}
  echo "$kind $np $took" >>"$tmp/times"
}

: >"$tmp/times"
done_kills=0
done_terms=0
trial=0
resumes=0
identical=0
while [ "$done_kills" -lt "$kills" ] || [ "$done_terms" -lt "$terms" ]; do
  trial=$((trial + 1))
  [ "$trial" -gt $((3 * (kills + terms) + 10)) ] && { fail "too many trials finished before their fault"; break; }
  # Kills and SIGTERMs interleave; P and the kind of kill alternate.
  if [ "$done_terms" -lt "$terms" ] && { [ "$done_kills" -ge "$kills" ] || [ $((trial % 6)) -eq 0 ]; }; then
    kind=term
    np=$((2 + done_terms % 2))
  else
    kind=$([ $((done_kills / 2 % 2)) -eq 0 ] && echo job || echo rank)
    np=$((2 + done_kills % 2))
  fi
  dir="$tmp/t$trial"
  mkdir "$dir"
  out="$dir/r.h5"
  attempt=0
  # One fault, and one time in three a second fault during the resume.
  while :; do
    attempt=$((attempt + 1))
    # A resume has less left to do: its moments are drawn from the first half of a run.
    fault "$kind" "$np" "$out" "trial $trial.$attempt" "$([ "$attempt" -eq 1 ] && echo 0.8 || echo 0.4)"
    [ -z "$took" ] && break
    if [ "$kind" = term ]; then
      done_terms=$((done_terms + 1))
      # Exit 0 and no line: the ranks had agreed on the study's end before the signal (§4).
      if [ "$rc" -eq 75 ] && [ "$(grep -c '^ncsparse: ' "$tmp/err")" -eq 1 ] &&
        grep -q '^ncsparse: error: interrupted by SIGTERM' "$tmp/err"; then ok
      elif [ "$rc" -eq 0 ] && ! grep -q '^ncsparse: ' "$tmp/err"; then ok; else
        fail "trial $trial.$attempt: SIGTERM gave exit $rc, expected 75 and one line: $(grep '^ncsparse' "$tmp/err" | head -c 400)"
      fi
    else
      done_kills=$((done_kills + 1))
      # Exit 0: the killed process had ended already (a zombie the launcher had not reaped), so
      # the study must be complete.
      if [ "$rc" -ne 0 ] || "$bin" report "$out" 2>/dev/null | grep -q ' \([0-9]*\) of \1 configurations recorded'; then ok; else
        fail "trial $trial.$attempt: $kind kill, yet the launcher exited 0 with the study incomplete"
      fi
    fi
    awk -v t="$took" -v b="$bound" 'BEGIN { exit !(t <= b) }' && ok ||
      fail "trial $trial.$attempt: $kind fault took $took s to end the job (bound $bound s)"
    [ -e "$out" ] && { "$bin" report "$out" >/dev/null 2>&1 && ok || fail "trial $trial.$attempt: $out is not readable after the fault"; }
    [ "$attempt" -ge 2 ] || [ $((RANDOM % 3)) -ne 0 ] || [ "$kind" = term ] && break
    [ "$done_kills" -ge "$kills" ] && break
  done
  [ -z "$took" ] && [ "$attempt" -eq 1 ] && { rm -rf "$dir"; continue; }
  # The resume: the same command, to the end, and the same report as the uninterrupted run.
  resumes=$((resumes + 1))
  timeout 120 "$mpiexec" -q -n "$np" "$bin" study "$tmp/s.toml" --out "$out" >/dev/null 2>"$tmp/err"
  rc=$?
  if [ "$rc" -ne 0 ]; then
    fail "trial $trial: the resume exited $rc: $(grep '^ncsparse' "$tmp/err" | head -c 400)"
  elif "$bin" report "$out" --format csv 2>/dev/null | cmp -s - "$tmp/ref$np.csv"; then
    identical=$((identical + 1))
    ok
  else
    fail "trial $trial: the resumed report differs from the uninterrupted run's (P = $np)"
  fi
  left=$(find "$dir" -name '*.tmp*')
  [ -z "$left" ] && ok || fail "trial $trial: temporary files left: $left"
  rm -rf "$dir"
done

echo "campaign: seed $seed; $done_kills kills, $done_terms SIGTERMs, $resumes resumes, $identical identical to the uninterrupted run"
for kind in job rank term; do
  for np in 2 3; do
    awk -v k="$kind" -v p="$np" '$1 == k && $2 == p { print $3 }' "$tmp/times" | sort -g >"$tmp/t"
    c=$(grep -c . "$tmp/t")
    [ "$c" -eq 0 ] && continue
    p50=$(sed -n "$(((c + 1) / 2))p" "$tmp/t")
    printf 'fault-to-exit %-4s P=%s: %3d faults, p50 %.2f s, max %.2f s\n' "$kind" "$np" "$c" "$p50" "$(tail -n 1 "$tmp/t")"
  done
done
echo "campaign: $passed checks passed, $failed failed"
[ "$failed" -eq 0 ]
