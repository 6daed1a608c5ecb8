#!/usr/bin/env bash
# The study command end to end: checkpoint/resume under SIGKILL at random moments, SIGTERM,
# damaged records, a changed study file, the lock, existing outputs, bad study files.
# Usage: study_cli.sh MODE NCSPARSE MPIEXEC   (MODE: kill_resume sigterm changed lock force bad_file approx ranks)
set -u
mode=$1
bin=$2
mpiexec=$3
. "$(dirname "$0")/../support/script_lib.sh"  # tmp, check
export OMPI_MCA_rmaps_base_oversubscribe=1
bg=""
cleanup() {
  if [ -n "$bg" ]; then kill -KILL $bg $(pgrep -P "$bg") 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
contains() { grep -qF -- "$2" "$1" || { echo "    '$2' not in $1:"; sed 's/^/    /' "$1" | head -5; return 1; }; }

. "$(dirname "$0")/../support/study_jobs.sh"  # write_study, study_bg, ranks_of
study() {  # study OUT STUDYFILE [FLAGS...]: runs to the end; rc in $rc, stderr in $tmp/err
  local out=$1 file=$2
  shift 2
  timeout 120 "$mpiexec" -q -n 2 "$bin" study "$file" --out "$out" "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
}
report_csv() { "$bin" report "$1" --format csv; }
start_bg() { study_bg 2 "$1" "$2" "$tmp/bg.out" "$tmp/bg.err"; }  # start_bg OUT STUDYFILE: pid in $bg

write_study "$tmp/s.toml" "1, 2, 3"
case "$mode" in
kill_resume)
  mkdir "$tmp/ref" "$tmp/k"
  start=$(date +%s.%N)
  study "$tmp/ref/r.h5" "$tmp/s.toml"
  full=$(echo "$(date +%s.%N) - $start" | bc)
  check "uninterrupted run exits 0" test "$rc" -eq 0
  report_csv "$tmp/ref/r.h5" >"$tmp/ref.csv"
  check "reference has 9 configurations x 4 strategies" test "$(wc -l <"$tmp/ref.csv")" -eq 37
  echo "uninterrupted run: $full s"
  "$bin" fit "$tmp/ref/r.h5" >"$tmp/fit.txt" 2>"$tmp/err"
  check "fit of the reference exits 0" test $? -eq 0
  check "fit gives the exponent of the cert:1e-2 window" contains "$tmp/fit.txt" "k cert:1e-2"
  check "fit gives the exponent of the count above 1e-2" contains "$tmp/fit.txt" "count p>0.01"
  kills=0
  rounds=0
  # SIGKILL the whole job (mpiexec and both ranks) at random moments, resume each time.
  while [ "$kills" -lt 6 ] && [ "$rounds" -lt 20 ]; do
    rounds=$((rounds + 1))
    # A random moment within the uninterrupted run's time (15% to 90% of it), start-up included:
    # the whole job is killed, mpiexec too. (A fixed 0.3 s floor stopped killing when the MPI
    # start-up got 0.2 s faster and the whole study took 0.42 s.)
    delay=$(awk -v r="$RANDOM" -v f="$full" 'BEGIN { printf "%.3f", f * (0.15 + 0.75 * r / 32767) }')
    start_bg "$tmp/k/r.h5" "$tmp/s.toml"
    sleep "$delay"
    if kill -0 "$bg" 2>/dev/null; then
      kids=$(ranks_of "$bg")
      kill -KILL "$bg" $kids 2>/dev/null
      wait "$bg" 2>/dev/null
      bg=""
      kills=$((kills + 1))
      n=$(ls "$tmp/k/r.h5.records" 2>/dev/null | grep -c '^[0-9a-f]*\.h5$')
      echo "round $rounds: SIGKILL after $delay s; $n records"
      if [ -e "$tmp/k/r.h5" ]; then
        check "after SIGKILL $kills the results file is readable" sh -c "'$bin' report '$tmp/k/r.h5' >/dev/null"
      fi
    else
      wait "$bg"
      bg=""
      echo "round $rounds: finished before the kill at $delay s; starting over"
      rm -rf "$tmp/k"
      mkdir "$tmp/k"
    fi
  done
  check "killed at least 5 times" test "$kills" -ge 5
  # Damage two records: one truncated, one with garbage; the resume recomputes them.
  recs=($(ls "$tmp/k/r.h5.records/"*.h5 2>/dev/null))
  if [ "${#recs[@]}" -ge 2 ]; then
    truncate -s 100 "${recs[0]}"
    printf 'garbage' | dd of="${recs[1]}" bs=1 seek=3000 conv=notrunc status=none
  fi
  study "$tmp/k/r.h5" "$tmp/s.toml"
  check "final resume exits 0" test "$rc" -eq 0
  [ "${#recs[@]}" -ge 2 ] && check "damaged records are recomputed" contains "$tmp/err" "is not usable"
  report_csv "$tmp/k/r.h5" >"$tmp/k.csv"
  check "statistics identical to the uninterrupted run" cmp "$tmp/ref.csv" "$tmp/k.csv"
  check "no temporary files left" test -z "$(ls -A "$tmp/k/" "$tmp/k/r.h5.records" | grep '\.tmp$')"
  ;;
sigterm)
  mkdir "$tmp/ref" "$tmp/t"
  # Long enough that the signal lands mid-study however fast the machine is: wait for the
  # first committed configuration, then signal the ranks.
  write_study "$tmp/long.toml" "1, 2, 3, 4, 5, 6, 7, 8"
  study "$tmp/ref/r.h5" "$tmp/long.toml"
  report_csv "$tmp/ref/r.h5" >"$tmp/ref.csv"
  start_bg "$tmp/t/r.h5" "$tmp/long.toml"
  for _ in $(seq 300); do grep -q '\[ *1/' "$tmp/bg.err" 2>/dev/null && break; sleep 0.05; done
  kids=$(ranks_of "$bg")
  t0=$(date +%s.%N)
  kill -TERM $kids
  wait "$bg"
  rc=$?
  bg=""
  took=$(echo "$(date +%s.%N) - $t0" | bc)
  echo "SIGTERM to exit: $took s"
  check "SIGTERM exits 75" test "$rc" -eq 75
  check "SIGTERM exits within 30 s" awk -v t="$took" 'BEGIN { exit !(t < 30) }'
  check "one line names the interruption" contains "$tmp/bg.err" "ncsparse: error: interrupted by SIGTERM"
  study "$tmp/t/r.h5" "$tmp/long.toml"
  check "resume after SIGTERM exits 0" test "$rc" -eq 0
  report_csv "$tmp/t/r.h5" >"$tmp/t.csv"
  check "statistics identical to the uninterrupted run" cmp "$tmp/ref.csv" "$tmp/t.csv"
  ;;
changed)
  write_study "$tmp/a.toml" "1, 2"
  study "$tmp/r.h5" "$tmp/a.toml"
  check "first run exits 0" test "$rc" -eq 0
  write_study "$tmp/a.toml" "1, 2, 3"
  study "$tmp/r.h5" "$tmp/a.toml"
  check "changed study refused with 64" test "$rc" -eq 64
  check "the refusal names the change" contains "$tmp/err" "seeds (was [1, 2], now [1, 2, 3])"
  check "the refusal names --restart" contains "$tmp/err" "--restart"
  study "$tmp/r.h5" "$tmp/a.toml" --restart
  check "--restart accepted" test "$rc" -eq 0
  check "--restart recomputes everything" contains "$tmp/err" "(9 computed, 0 recorded earlier)"
  check "report shows 9 of 9" sh -c "'$bin' report '$tmp/r.h5' | grep -q '9 of 9 configurations recorded'"
  ;;
lock)
  # Long enough (180 configurations) to outlast the second job's start on any machine.
  write_study "$tmp/big.toml" "$(seq -s ', ' 1 60)"
  start_bg "$tmp/r.h5" "$tmp/big.toml"
  for _ in $(seq 50); do [ -s "$tmp/r.h5.records/lock" ] && break; sleep 0.1; done
  study "$tmp/r.h5" "$tmp/big.toml"
  check "second job refused with 73" test "$rc" -eq 73
  check "the refusal names the other job" contains "$tmp/err" "another ncsparse study job"
  check "the refusal is one line" test "$(grep -c . "$tmp/err")" -eq 1
  kill -TERM $(ranks_of "$bg")
  wait "$bg"
  rc=$?
  bg=""
  check "the first job, stopped by SIGTERM, exits 75" test "$rc" -eq 75
  ;;
force)
  echo "not a study" >"$tmp/r.h5"
  study "$tmp/r.h5" "$tmp/s.toml"
  check "existing non-study output refused with 73" test "$rc" -eq 73
  check "the refusal names --force" contains "$tmp/err" "use --force"
  check "the file is untouched" grep -q "not a study" "$tmp/r.h5"
  write_study "$tmp/b.toml" "1"
  study "$tmp/o.h5" "$tmp/b.toml"
  rm -rf "$tmp/o.h5.records"
  study "$tmp/o.h5" "$tmp/s.toml"
  check "another study's results refused with 73" test "$rc" -eq 73
  check "the refusal says it is another study's" contains "$tmp/err" "another study's results"
  study "$tmp/r.h5" "$tmp/s.toml" --force
  check "--force overwrites" test "$rc" -eq 0
  study "$tmp/r.h5" "$tmp/s.toml"
  check "rerun of a finished study exits 0" test "$rc" -eq 0
  check "and computes nothing" contains "$tmp/err" "(0 computed, 9 recorded earlier)"
  ;;
bad_file)
  bad() {  # bad CODE PATTERN TOML-TEXT
    printf '%s\n' "$3" >"$tmp/bad.toml"
    study "$tmp/bad.h5" "$tmp/bad.toml"
    local lines
    lines=$(grep -c . "$tmp/err")
    if [ "$rc" -eq "$1" ] && [ "$lines" -eq 1 ] && grep -qF -- "$2" "$tmp/err"; then
      passed=$((passed + 1)); echo "ok:   $rc: $(cat "$tmp/err")"
    else
      failed=$((failed + 1)); echo "FAIL: expected $1 '$2', got $rc:"; sed 's/^/    /' "$tmp/err" | head -5
    fi
  }
  good=$(cat "$tmp/s.toml")
  bad 64 "bad.toml:8: study.bogus: unknown key" "$(echo "$good" | sed 's/^sparsity_eps.*/&\nbogus = 3/')"
  bad 64 "study.n: must not be an empty list" "$(echo "$good" | sed 's/^n = .*/n = []/')"
  bad 64 "study.queries: must be an integer" "$(echo "$good" | sed 's/^queries = .*/queries = "48"/')"
  bad 64 "windows.strategies" "$(echo "$good" | sed 's/cert:1e-2/cert:7/')"
  bad 64 "not valid TOML" "$(echo "$good" | sed 's/^d = .*/d = [32/')"
  bad 64 "model.x_dist: unknown distribution" "$(echo "$good" | sed 's/^model = "paper"/&\nx_dist = "cauchy"/')"
  bad 64 "--d" "$(echo "$good" | sed 's/^queries = .*/queries = 48\nmax_k = 1/; s/^d = .*/d = [1000000000]/')"
  rm -f "$tmp/bad.toml"
  # --score-precision: reduced precision is the cuda backend's alone; unknown names refused.
  for flags in "tf32|only the cuda backend scores in reduced precision" "fp64|unknown precision 'fp64'"; do
    study "$tmp/bad.h5" "$tmp/s.toml" --score-precision "${flags%%|*}"
    check "study --score-precision ${flags%%|*} exits 64 with one line" test "$rc" -eq 64 -a "$(grep -c . "$tmp/err")" -eq 1
    check "and says '${flags#*|}'" contains "$tmp/err" "${flags#*|}"
    check "and leaves no output" test ! -e "$tmp/bad.h5" -a ! -e "$tmp/bad.h5.records"
  done
  study "$tmp/bad.h5" "$tmp/missing.toml"
  check "missing study file exits 66" test "$rc" -eq 66
  study "$tmp/nodir/r.h5" "$tmp/s.toml"
  check "missing output directory exits 73" test "$rc" -eq 73
  "$bin" report "$tmp/s.toml" >"$tmp/out" 2>"$tmp/err"
  check "report of a non-HDF5 file exits 65" test $? -eq 65
  "$bin" report "$tmp/s.toml" --format xml >"$tmp/out" 2>"$tmp/err"
  check "report --format xml exits 64" test $? -eq 64
  bad 64 "model.rope_theta: must be a base > 1" "$(echo "$good" | sed 's/^model = "paper"/&\nrope_theta = 0.5/')"
  bad 64 "model.sink_strength: needs model.sinks > 0" "$(echo "$good" | sed 's/^model = "paper"/&\nsink_strength = 3.0/')"
  bad 64 "taylor:3" "$(echo "$good" | sed 's/cert:1e-2/taylor:3/')"
  bad 64 "unknown KIND 'dense'" "$(echo "$good" | sed 's/cert:1e-2/features:4,dense/')"
  bad 64 "E = 64 is larger than d = 32" "$(echo "$good" | sed 's/cert:1e-2/features:64,gaussian/')"
  bad 64 "model.tied: must be" "$(echo "$good" | sed 's/^model = "paper"/&\ntied = 1/')"
  "$bin" fit "$tmp/s.toml" >"$tmp/out" 2>"$tmp/err"
  check "fit of a non-HDF5 file exits 65" test $? -eq 65
  "$bin" fit "$tmp/missing.h5" >"$tmp/out" 2>"$tmp/err"
  check "fit of a missing file exits 66" test $? -eq 66
  "$bin" fit "$tmp/s.toml" --format xml >"$tmp/out" 2>"$tmp/err"
  check "fit --format xml exits 64" test $? -eq 64
  check "and prints nothing on stdout" test ! -s "$tmp/out"
  ;;
approx)
  # The approximators in a study: the symmetric setting (tied, scale 1) of the sparsification
  # paper and the Taylor sketch; records and the summary carry t or e and the score range.
  cat >"$tmp/a.toml" <<TOML
[study]
name = "approx"
n = [64, 128]
d = [256]
seeds = [1]
queries = 64
scale = 1.0

[[model]]
model = "gaussian"
sigma = 0.0125
tied = true

[windows]
strategies = ["features:16,gaussian", "features:16,sparse", "features:256,gram", "taylor:2", "const:8"]
TOML
  study "$tmp/a.h5" "$tmp/a.toml"
  check "approximator study exits 0" test "$rc" -eq 0
  check "summary carries e, t, the score range and the errors" /usr/bin/python3 -c '
import h5py, sys
s = h5py.File(sys.argv[1])["summary"]
st = [x.decode() for x in s["strategy"][:]]
i = {(int(n), k): j for j, (n, k) in enumerate(zip(s["n"][:], st))}
f, lin = s["features"][:], s["attn_linf_max"][:]
for n in (64, 128):
    assert f[i[n, "features:16,gaussian"]] == 16 and f[i[n, "taylor:2"]] == 257 * 258 // 2 + 0 * n, f
    assert f[i[n, "features:256,gram"]] == n, (n, f[i[n, "features:256,gram"]])  # e = rank(X) = n < d
    assert lin[i[n, "features:256,gram"]] < 1e-6, lin  # YY^T = XX^T
    r = s["score_max_max"][i[n, "features:16,gaussian"]]  # ||XX^T||_inf = max ||x||^2 ~ d sigma^2 = 0.04
    assert 0.03 < r < 0.06, r
    assert 0 < lin[i[n, "features:16,gaussian"]] < 10 * r, (lin, r)  # O(r)
' "$tmp/a.h5"
  ;;
ranks)
  # The rank count is part of a record's identity: a study interrupted on 3 ranks and rerun on
  # 2 recomputes the 3-rank records, says so, and ends with exactly the 2-rank results.
  write_study "$tmp/r.toml" "1"
  timeout 120 "$mpiexec" -q -n 3 "$bin" study "$tmp/r.toml" --out "$tmp/p3.h5" >"$tmp/out" 2>"$tmp/err"
  check "study on 3 ranks exits 0" test $? -eq 0
  rm "$tmp/p3.h5"  # as if interrupted after its last record
  study "$tmp/p3.h5" "$tmp/r.toml"
  check "rerun on 2 ranks exits 0" test "$rc" -eq 0
  check "and names the change" contains "$tmp/err" "made on 3 ranks; this run has 2"
  check "and recomputes every record" contains "$tmp/err" "(3 computed, 0 recorded earlier)"
  study "$tmp/p2.h5" "$tmp/r.toml"
  check "uninterrupted run on 2 ranks exits 0" test "$rc" -eq 0
  report_csv "$tmp/p3.h5" >"$tmp/a.csv"
  report_csv "$tmp/p2.h5" >"$tmp/b.csv"
  check "the rerun's report is the 2-rank run's, byte for byte" cmp -s "$tmp/a.csv" "$tmp/b.csv"
  ;;
*)
  echo "unknown mode $mode"
  exit 2
  ;;
esac
echo "study $mode: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
