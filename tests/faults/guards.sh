#!/usr/bin/env bash
# Refusals that must come before any work, and signals from the first instruction (CTest label
# faults):
#   outputs  an output path that is a symbolic link, a directory, a FIFO (a device node behaves
#            the same: not a regular file) or the input itself is refused with exit 73 and one
#            line, even with --force, and is left as it was;
#   args     arguments are validated before the output path is looked at (attend --head -1 with
#            an existing output is 64), a study with more queries than its longest n is 64, and
#            a refused study leaves no lock file it made;
#   unshared an output directory that is not the same file-system object on every rank (here a
#            relative --out, each rank started in a different working directory by mpiexec's
#            -wdir: the same path names different directories) is refused with exit 73 and one
#            line naming the first rank that does not see it, by generate, attend and study,
#            leaving nothing behind; the same relative path in one shared directory works;
#   signals  SIGTERM or SIGINT to the ranks during start-up (MPI initialisation, parsing) exits 75
#            with one line, at P = 1 and 2; SIGTERM as a 2-rank job finishes exits 0 with no
#            line or 75 with one (NCSPARSE_LATE_SIGNALS runs, default 20; longer runs: docs/reliability.md §4).
# Usage: guards.sh MODE NCSPARSE MPIEXEC
set -u
mode=$1
bin=$2
mpiexec=$3
. "$(dirname "$0")/../support/script_lib.sh"  # tmp, ok, fail
export OMPI_MCA_rmaps_base_oversubscribe=1
run() { timeout -k 5 60 "$mpiexec" -q -n "$1" --oversubscribe "$bin" "${@:2}"; }

# wait_bounded PID: waits for the launcher PID (started in the background) and returns its exit
# code; or 124 when it still runs after 60 s with a rank alive (launcher and ranks are killed);
# or 125 when it outlives every one of its ranks by 15 s. That last one is the launcher's own
# deadlock in PMIx_server_finalize (Debian 12's OpenMPI 4.1.4 with libpmix 4.2.2), which a rank
# that ends during MPI start-up can set off about once in 60 (docs/reliability.md §6): the ranks
# did their part, and nothing of ncsparse is left to end. SIGTERM cannot end that launcher.
wait_bounded() {
  local pid=$1 tick=0 orphaned=0 alive
  while kill -0 "$pid" 2>/dev/null && [ "$tick" -lt 600 ]; do
    alive=$(for c in $(pgrep -P "$pid"); do ps -o stat= -p "$c"; done | grep -vc '^Z')
    if [ "$alive" -eq 0 ]; then orphaned=$((orphaned + 1)); else orphaned=0; fi
    [ "$orphaned" -ge 150 ] && break
    sleep 0.1
    tick=$((tick + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    pkill -KILL -P "$pid" 2>/dev/null
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    [ "$orphaned" -ge 150 ] && return 125
    return 124
  fi
  wait "$pid"
}

# The stderr of a run whose launcher deadlocked after its ranks (wait_bounded's 125), without
# the launcher's own PMIx lines: what the ranks wrote.
ranks_stderr() { grep -v "PMIX ERROR" "$1"; }
state() { (cd "$tmp" && find . -path ./err -prune -o -path ./stdout -prune -o -printf '%p %y %l %s\n' | sort; find . -type f -name '*.h5' -exec md5sum {} + | sort); }

# expect CODE PATTERN RANKS ARGS...: exit code, one 'ncsparse: error:' line naming PATTERN,
# and nothing in $tmp changed (no file replaced, made or left behind).
expect() {
  local code=$1 pattern=$2 ranks=$3
  shift 3
  local before why=""
  before=$(state)
  run "$ranks" "$@" >"$tmp/stdout" 2>"$tmp/err"
  local rc=$?
  [ "$rc" -eq 124 ] && why="hung"
  [ -z "$why" ] && [ "$rc" -ne "$code" ] && why="exit code $rc, expected $code"
  [ -z "$why" ] && [ "$(grep -c . "$tmp/err")" -ne 1 ] && why="$(grep -c . "$tmp/err") lines on stderr, expected 1"
  [ -z "$why" ] && ! grep -qF -- "$pattern" "$tmp/err" && why="stderr does not mention '$pattern'"
  [ -z "$why" ] && [ "$before" != "$(state)" ] && why="files in the test directory changed"
  if [ -n "$why" ]; then
    fail "ncsparse $* (np $ranks): $why"
    sed 's/^/    stderr: /' "$tmp/err" | head -n 5
  else
    ok "ncsparse $* (np $ranks) -> $rc: $(cat "$tmp/err")"
  fi
}

case $mode in
outputs)
  run 2 generate --n 64 --d 8 --out "$tmp/in.h5" >/dev/null 2>&1 || { echo "generate failed"; exit 1; }
  echo "precious" >"$tmp/target.txt"
  ln -s "$tmp/target.txt" "$tmp/link.h5"
  mkdir "$tmp/dir.h5"
  mkfifo "$tmp/fifo.h5"
  ln "$tmp/in.h5" "$tmp/hard.h5"
  attend=(attend --input "$tmp/in.h5" --window const:4)
  for np in 1 2; do
    expect 73 "is a symbolic link" "$np" "${attend[@]}" --out "$tmp/link.h5" --force
    expect 73 "is a symbolic link" "$np" generate --n 64 --d 8 --out "$tmp/link.h5" --force
    expect 73 "is a directory" "$np" "${attend[@]}" --out "$tmp/dir.h5" --force
    expect 73 "is not a regular file" "$np" "${attend[@]}" --out "$tmp/fifo.h5" --force
    expect 73 "is not a regular file" "$np" generate --n 64 --d 8 --out "$tmp/fifo.h5" --force
    expect 73 "is the input file" "$np" "${attend[@]}" --out "$tmp/in.h5" --force
    expect 73 "is the input file" "$np" "${attend[@]}" --out "$tmp/hard.h5" --force
    expect 73 "is the input file" "$np" "${attend[@]}" --out "$tmp/in.h5"
  done
  cat >"$tmp/s.toml" <<'TOML'
[study]
n = [256]
d = [8]
seeds = [1]
queries = 8
[[model]]
model = "paper"
[windows]
strategies = ["const:4"]
TOML
  expect 73 "is a symbolic link" 2 study "$tmp/s.toml" --out "$tmp/link.h5" --force
  expect 73 "is not a regular file" 2 study "$tmp/s.toml" --out "$tmp/fifo.h5" --force
  [ "$(cat "$tmp/target.txt")" = precious ] && [ -L "$tmp/link.h5" ] && [ -p "$tmp/fifo.h5" ] &&
    ok "the link, its target and the FIFO are as they were" || fail "a refused output was changed"
  ;;
args)
  run 2 generate --n 64 --d 8 --out "$tmp/in.h5" >/dev/null 2>&1 || { echo "generate failed"; exit 1; }
  run 2 attend --input "$tmp/in.h5" --window const:4 --out "$tmp/out.h5" >/dev/null 2>&1 || { echo "attend failed"; exit 1; }
  expect 64 "--head: must be >= 0, got -1" 2 attend --input "$tmp/in.h5" --window const:4 --head -1 --out "$tmp/out.h5"
  expect 64 "--head: must be >= 0, got -3" 1 attend --input "$tmp/in.h5" --window const:4 --head -3 --out "$tmp/out.h5"
  printf '[study]\nn = [256, 512]\nd = [8]\nseeds = [1]\nqueries = 600\n[[model]]\nmodel = "paper"\n[windows]\nstrategies = ["const:4"]\n' >"$tmp/q.toml"
  expect 64 "q.toml:5" 2 study "$tmp/q.toml" --out "$tmp/q.h5"
  grep -q "study.queries: 600 query rows, but the longest sequence has n = 512" "$tmp/err" &&
    ok "the message names the key and the numbers" || fail "queries message: $(cat "$tmp/err")"
  # Sizes: more than the file system holds, or more than 64 bits count: 73 with the numbers.
  expect 73 "bytes, and its file system has" 2 generate --n 1099511627776 --d 16 --out "$tmp/big.h5"
  expect 73 "overflows a 64-bit size" 1 generate --n 1099511627776 --d 65536 --heads 1000000 --out "$tmp/big.h5"
  # Refused for another reason than the lock (the output holds something else): the records
  # directory and lock it made are gone again.
  printf '[study]\nn = [256]\nd = [8]\nseeds = [1]\nqueries = 8\n[[model]]\nmodel = "paper"\n[windows]\nstrategies = ["const:4"]\n' >"$tmp/s.toml"
  expect 73 "something other than study results" 2 study "$tmp/s.toml" --out "$tmp/in.h5"
  [ ! -e "$tmp/in.h5.records" ] && ok "no records directory or lock left by the refused study" ||
    fail "left $(find "$tmp/in.h5.records")"
  ;;
unshared)
  run 2 generate --n 64 --d 8 --out "$tmp/in.h5" >/dev/null 2>&1 || { echo "generate failed"; exit 1; }
  printf '[study]\nn = [256]\nd = [8]\nseeds = [1]\nqueries = 8\n[[model]]\nmodel = "paper"\n[windows]\nstrategies = ["const:4"]\n' >"$tmp/s.toml"
  mkdir "$tmp/a" "$tmp/b"
  # mpmd WDIR... -- ARGS: one rank per WDIR, rank r started in the r-th directory.
  mpmd() {
    local dirs=() spec=()
    while [ "$1" != "--" ]; do dirs+=("$1"); shift; done
    shift
    for d in "${dirs[@]}"; do
      [ ${#spec[@]} -gt 0 ] && spec+=(":")
      spec+=(-n 1 -wdir "$tmp/$d" "$bin" "$@")
    done
    timeout 60 "$mpiexec" -q --oversubscribe "${spec[@]}"
  }
  # refused RANK DIRS... -- ARGS: exit 73, one line naming RANK and the fix, $tmp unchanged.
  refused() {
    local rank=$1 before why=""
    shift
    before=$(state)
    mpmd "$@" >"$tmp/stdout" 2>"$tmp/err"
    local rc=$?
    [ "$rc" -eq 124 ] && why="hung"
    [ -z "$why" ] && [ "$rc" -ne 73 ] && why="exit code $rc, expected 73"
    [ -z "$why" ] && [ "$(grep -c . "$tmp/err")" -ne 1 ] && why="$(grep -c . "$tmp/err") lines on stderr, expected 1"
    [ -z "$why" ] && ! grep -q "rank $rank: .* is not shared by all ranks.*a path on a file system every rank shares" "$tmp/err" &&
      why="stderr does not name rank $rank and the shared directory"
    [ -z "$why" ] && [ "$before" != "$(state)" ] && why="files in the test directory changed"
    if [ -n "$why" ]; then
      fail "ncsparse $* : $why"
      sed 's/^/    stderr: /' "$tmp/err" | head -n 5
    else
      ok "ncsparse $* -> 73: $(cat "$tmp/err")"
    fi
  }
  attend=(attend --input "$tmp/in.h5" --window const:4 --out out.h5)
  refused 1 a b -- generate --n 64 --d 8 --out out.h5
  refused 1 a b -- "${attend[@]}"
  refused 2 a a b -- "${attend[@]}"
  refused 1 a b a -- study "$tmp/s.toml" --out res.h5
  # The check itself passes where the directory is shared: the same relative paths, one directory.
  if mpmd a a -- "${attend[@]}" >/dev/null 2>"$tmp/err" && mpmd a a a -- study "$tmp/s.toml" --out res.h5 >/dev/null 2>>"$tmp/err" &&
    [ -f "$tmp/a/out.h5" ] && [ -f "$tmp/a/res.h5" ] && [ -z "$(find "$tmp" -name '.ncsparse-shared-*')" ]; then
    ok "a shared working directory: attend and study write their outputs, no probe file is left"
  else
    fail "shared directory: $(head -c 300 "$tmp/err")"
  fi
  ;;
signals)
  # The ranks get the signal at several moments of their start-up (the launcher forwards what
  # it gets, so it is sent to the ranks themselves, as scancel does). Delays stay inside start-up
  # (MPI initialisation takes about 0.35 s here); the moments as the job finishes follow.
  for np in 1 2; do
    for sig in TERM INT; do
      for delay in 0 0.05; do
        "$mpiexec" -q -n "$np" --oversubscribe "$bin" run --n 4096 --d 16 --queries 64 --window const:8 \
          >/dev/null 2>"$tmp/err" &
        launcher=$!
        # From main()'s first instruction: wait until every rank has its handler (SigCgt holds
        # SIGTERM), which the dynamic loader's milliseconds before main() do not; then the
        # delay lands in MPI initialisation or parsing.
        ranks=""
        for _ in $(seq 500); do
          ranks=$(pgrep -f "^$bin run --n 4096" | tr '\n' ' ')
          caught=0
          for p in $ranks; do
            mask=$(awk '/^SigCgt/ { print $2 }' "/proc/$p/status" 2>/dev/null)
            [ -n "$mask" ] && [ $(( 0x$mask & 0x4000 )) -ne 0 ] && caught=$((caught + 1))
          done
          [ "$caught" -ge "$np" ] && break
          sleep 0.002
        done
        sleep "$delay"
        t0=$(date +%s.%N)
        kill -"$sig" $ranks 2>/dev/null
        wait_bounded "$launcher"
        rc=$?
        took=$(echo "$(date +%s.%N) - $t0" | bc)
        if [ "$rc" -eq 125 ] && [ "$(ranks_stderr "$tmp/err" | grep -c .)" -eq 1 ] &&
          ranks_stderr "$tmp/err" | grep -q "^ncsparse: error: interrupted by SIG$sig"; then
          ok "np=$np SIG$sig after ${delay}s: the ranks ended with one line ($(ranks_stderr "$tmp/err")), then mpirun deadlocked in its PMIx shutdown (OpenMPI's, docs/reliability.md §6; killed)"
        elif [ "$rc" -eq 0 ]; then
          ok "np=$np SIG$sig after ${delay}s: the run had finished already (exit 0)"
        elif [ "$rc" -eq 75 ] && [ "$(grep -c . "$tmp/err")" -eq 1 ] && grep -q "^ncsparse: error: interrupted by SIG$sig" "$tmp/err"; then
          ok "np=$np SIG$sig after ${delay}s -> 75 in $took s: $(cat "$tmp/err")"
        else
          fail "np=$np SIG$sig after ${delay}s: exit $rc, stderr: $(head -c 300 "$tmp/err")"
        fi
      done
    done
  done
  # As the job finishes: one uninterrupted run gives its duration, then LATE runs (default 8,
  # NCSPARSE_LATE_SIGNALS) at P = 2 get SIGTERM at random moments from half of it to 1.2 times
  # it. Each must exit 0 with no line, or 75 with one (docs/reliability.md §4); before the
  # ranks agreed on the outcome, 7 of 50 exited 1 (no line or the start-up line) and one SIGSEGV.
  late=${NCSPARSE_LATE_SIGNALS:-20}
  seed=${NCSPARSE_LATE_SEED:-$(( $(date +%s%N) % 32768 ))}
  RANDOM=$seed
  job=(run --n 4096 --d 16 --queries 64 --window const:8)
  t0=$(date +%s.%N)
  timeout -k 5 60 "$mpiexec" -q -n 2 "$bin" "${job[@]}" >/dev/null 2>&1
  full=$(echo "$(date +%s.%N) - $t0" | bc)
  echo "late signals: $late runs, seed $seed (NCSPARSE_LATE_SEED), one run takes $full s"
  declare -A outcomes
  for i in $(seq "$late"); do
    delay=$(awk -v r="$RANDOM" -v f="$full" 'BEGIN { printf "%.3f", f * (0.5 + 0.7 * r / 32768) }')
    "$mpiexec" -q -n 2 "$bin" "${job[@]}" >/dev/null 2>"$tmp/err" &
    launcher=$!
    sleep "$delay"
    ranks=$(pgrep -P "$launcher")
    [ -n "$ranks" ] && kill -TERM $ranks 2>/dev/null
    wait_bounded "$launcher"
    rc=$?
    lines=$(grep -c . "$tmp/err")
    if [ "$rc" -eq 125 ]; then  # the launcher's deadlock after its ranks: judge what they wrote
      lines=$(ranks_stderr "$tmp/err" | grep -c .)
      [ "$lines" -eq 0 ] && rc=0 || rc=75
      outcomes["launcher deadlock"]=$(( ${outcomes["launcher deadlock"]:-0} + 1 ))
    elif [ "$rc" -gt 128 ] && grep -q "^\[[^]]*:$launcher\] \*\*\* Process received signal" "$tmp/err"; then
      # The launcher itself died of a signal (Open MPI's backtrace carries its PID, not a rank's):
      # twice in about 1,240 late runs, a SIGSEGV of mpiexec (docs/reliability.md §4). Its
      # backtrace goes to the log; the ranks are judged by what they wrote.
      echo "note: late SIGTERM $i at $delay s: the launcher (PID $launcher), not a rank, died with exit $rc:"
      sed 's/^/    /' "$tmp/err"
      lines=$(grep -vc "^\[[^]]*:$launcher\] " "$tmp/err")
      [ "$lines" -eq 0 ] && rc=0 || rc=75
      outcomes["launcher crash"]=$(( ${outcomes["launcher crash"]:-0} + 1 ))
      grep -v "^\[[^]]*:$launcher\] " "$tmp/err" > "$tmp/err.ranks"
      mv "$tmp/err.ranks" "$tmp/err"
    fi
    outcomes["exit $rc"]=$(( ${outcomes["exit $rc"]:-0} + 1 ))
    if { [ "$rc" -eq 0 ] && [ "$lines" -eq 0 ]; } ||
      { [ "$rc" -eq 75 ] && [ "$lines" -eq 1 ] && grep -q "^ncsparse: error: interrupted by SIGTERM" "$tmp/err"; }; then
      passed=$((passed + 1))
    else
      fail "late SIGTERM $i at $delay s: exit $rc, $lines lines:"
      sed 's/^/    /' "$tmp/err"
    fi
  done
  echo "late signals: $(for k in "${!outcomes[@]}"; do printf '%s: %s; ' "$k" "${outcomes[$k]}"; done)"
  ;;
*)
  echo "unknown mode $mode"
  exit 2
  ;;
esac
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
