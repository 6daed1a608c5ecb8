#!/usr/bin/env bash
# The fault campaign's disk faults (CTest label faults): a write that fails with ENOSPC on one
# rank (the LD_PRELOAD shim enospc_shim.c, given to every rank, armed on one), at several byte
# offsets, on rank 0, a middle rank and the last rank, at P = 1, 2 and 3. Each case must end
# every rank with exit 74 and exactly one line on stderr naming the rank, the file and the
# errno, within BOUND seconds of the fault; leave no temporary file; leave an existing output
# untouched. A study interrupted so must resume to the same `report --format csv` as an
# uninterrupted run. Prints the time from the fault to the job's exit for every case and their
# p50/max per command and P ("fault-to-exit" lines, docs/reliability.md).
# Usage: faults.sh MODE NCSPARSE MPIEXEC SHIM   (MODE: generate attend study)
set -u
mode=$1
bin=$2
mpiexec=$3
shim=$4
bound=${NCSPARSE_FAULT_BOUND:-20}
. "$(dirname "$0")/../support/script_lib.sh"  # tmp, ok, fail
export OMPI_MCA_rmaps_base_oversubscribe=1
run() { timeout 60 "$mpiexec" -q -n "$1" --oversubscribe "$bin" "${@:2}"; }
out="$tmp/out"
mkdir "$out"
: >"$tmp/times"

# faulty P RANK OFFSET ARGS...: runs ncsparse ARGS on P ranks with the shim armed on RANK after
# OFFSET bytes written under $out; sets rc, took (fault to exit, s) and leaves stderr in $tmp/err.
# An OFFSET ending in "n" (e.g. 150000n) turns the shim's reservations off (NO_RESERVE): a file
# system where posix_fallocate guarantees nothing, so rank 0's raw writes can fail too.
faulty() {
  local np=$1 rank=$2 offset=$3 nores=0
  shift 3
  case $offset in *n) nores=1 offset=${offset%n} ;; esac
  rm -f "$tmp/stamp"
  timeout 60 "$mpiexec" -q -n "$np" --oversubscribe -x LD_PRELOAD="$shim" -x NCSPARSE_ENOSPC_AFTER="$offset" \
    -x NCSPARSE_ENOSPC_NO_RESERVE="$nores" \
    -x NCSPARSE_ENOSPC_RANK="$rank" -x NCSPARSE_ENOSPC_DIR="$out" -x NCSPARSE_ENOSPC_STAMP="$tmp/stamp" \
    "$bin" "$@" >"$tmp/stdout" 2>"$tmp/err"
  rc=$?
  local end
  end=$(date +%s.%N)
  took=""
  [ -s "$tmp/stamp" ] && took=$(echo "$end - $(cat "$tmp/stamp")" | bc)
}

# expect_fault WHAT NP RANK: the checks of one faulty run (after `faulty`).
expect_fault() {
  local what=$1 np=$2 rank=$3 why=""
  [ -z "$took" ] && why="the fault never happened (the rank wrote fewer bytes than the offset)"
  [ -z "$why" ] && [ "$rc" -eq 124 ] && why="hung (killed after 60 s)"
  [ -z "$why" ] && [ "$rc" -ne 74 ] && why="exit code $rc, expected 74"
  # One line of ncsparse's; OpenMPI's fbtl may add one line of its own on the failing rank.
  [ -z "$why" ] && [ "$(grep -c '^ncsparse: ' "$tmp/err")" -ne 1 ] && why="$(grep -c '^ncsparse: ' "$tmp/err") ncsparse lines on stderr, expected 1"
  [ -z "$why" ] && [ "$(grep -vc -e '^ncsparse: ' -e '^mca_fbtl_posix_pwritev: error in (p)write(v):No space left on device$' "$tmp/err")" -ne 0 ] && why="other lines on stderr"
  [ -z "$why" ] && ! grep -q "^ncsparse: error: rank $rank: $out/" "$tmp/err" && why="the line does not name rank $rank and a file under $out"
  [ -z "$why" ] && ! grep -q "No space left on device (errno 28)" "$tmp/err" && why="the line does not name ENOSPC (errno 28)"
  [ -z "$why" ] && ls -A "$out" | grep -q '\.tmp' && why="a temporary file was left behind: $(ls -A "$out" | grep '\.tmp')"
  [ -z "$why" ] && awk -v t="$took" -v b="$bound" 'BEGIN { exit !(t > b) }' && why="took $took s from the fault to the exit (bound $bound s)"
  if [ -n "$why" ]; then
    fail "$what: $why"
    sed 's/^/    stderr: /' "$tmp/err" | head -n 10
  else
    ok "$what -> 74 in $took s: $(grep '^ncsparse: ' "$tmp/err" | cut -c1-200)"
    echo "$mode $np $took" >>"$tmp/times"
  fi
}

# The ranks to fail at P ranks: the first, a middle one and the last (each once).
ranks_of() { echo 0 $(( $1 / 2 )) $(( $1 - 1 )) | tr ' ' '\n' | sort -un | tr '\n' ' '; }

summary() {
  for np in 1 2 3; do
    awk -v np="$np" -v m="$mode" '$1 == m && $2 == np { print $3 }' "$tmp/times" | sort -g >"$tmp/t.$np"
    local count
    count=$(grep -c . "$tmp/t.$np")
    [ "$count" -eq 0 ] && continue
    echo "fault-to-exit: $mode np=$np cases=$count p50=$(sed -n "$(( (count + 1) / 2 ))p" "$tmp/t.$np") s max=$(tail -n 1 "$tmp/t.$np") s"
  done
}

case $mode in
generate | attend)
  if [ "$mode" = attend ]; then
    run 2 generate --n 4096 --d 16 --out "$tmp/in.h5" >/dev/null 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
    args=(attend --input "$tmp/in.h5" --window const:64 --exact --save-lists --format csv)
  else
    args=(generate --n 16384 --d 16)
  fi
  for np in 1 2 3; do
    for rank in $(ranks_of "$np"); do
      # 0: the first write; 2048: inside the metadata; 150000: the raw data (on rank 0, whose
      # reservation of the whole file comes first, these fail the reservation); 150000n: the
      # raw data on a file system without reservations.
      for offset in 0 2048 150000 150000n; do
        # An existing output, replaced only by a complete one (--force): it must stay as it was.
        echo "the old output" >"$out/o.h5"
        faulty "$np" "$rank" "$offset" "${args[@]}" --out "$out/o.h5" --force
        expect_fault "$mode np=$np rank $rank ENOSPC after $offset bytes" "$np" "$rank"
        [ "$(cat "$out/o.h5")" = "the old output" ] && ok "$mode np=$np rank $rank offset $offset: the old output untouched" ||
          fail "$mode np=$np rank $rank offset $offset: the old output changed"
        rm -f "$out/o.h5"
        # A new output: nothing at all appears.
        faulty "$np" "$rank" "$offset" "${args[@]}" --out "$out/n.h5"
        expect_fault "$mode np=$np rank $rank ENOSPC after $offset bytes, new file" "$np" "$rank"
        [ -z "$(ls -A "$out")" ] && ok "$mode np=$np rank $rank offset $offset: nothing left in the directory" ||
          { fail "$mode np=$np rank $rank offset $offset: left $(ls -A "$out")"; rm -f "$out"/* "$out"/.??*; }
      done
    done
  done
  # And without a fault the same commands succeed (the shim loaded, unarmed).
  faulty 2 0 "" "${args[@]}" --out "$out/n.h5"
  [ "$rc" -eq 0 ] && [ -s "$out/n.h5" ] && ok "$mode np=2 with the shim unarmed -> 0" || { fail "$mode unarmed: exit $rc"; cat "$tmp/err"; }
  ;;
study)
  cat >"$tmp/s.toml" <<'TOML'
[study]
name = "faults"
n = [1024, 2048]
d = [16]
seeds = [1, 2]
queries = 32
[[model]]
model = "paper"
[windows]
strategies = ["const:16", "log:1"]
TOML
  for np in 1 2 3; do
    # The reference at the same P: exact-pass floats differ between rank counts by rounding.
    rm -rf "$tmp"/ref.h5*
    run "$np" study "$tmp/s.toml" --out "$tmp/ref.h5" >/dev/null 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
    "$bin" report "$tmp/ref.h5" --format csv >"$tmp/ref.csv"
    # Only rank 0 writes a study's files (records, results.h5, study.txt); the offsets land in
    # study.txt (0), results.h5 (600, 3000, 60000: its first build and later rebuilds) and a
    # record's commit (20000); each case names the file it hit.
    for offset in 0 600 3000 20000 60000; do
      rm -rf "$out"/* "$out"/.??*
      faulty "$np" 0 "$offset" study "$tmp/s.toml" --out "$out/r.h5"
      expect_fault "study np=$np ENOSPC after $offset bytes ($(grep -o "$out/[^:]*" "$tmp/err" | head -n 1))" "$np" 0
      [ -z "$(find "$out" -name '*.tmp*')" ] && ok "study np=$np offset $offset: no temporary file" ||
        fail "study np=$np offset $offset: left $(find "$out" -name '*.tmp*')"
      run "$np" study "$tmp/s.toml" --out "$out/r.h5" >/dev/null 2>"$tmp/err2"
      rc=$?
      "$bin" report "$out/r.h5" --format csv >"$tmp/r.csv" 2>>"$tmp/err2"
      [ "$rc" -eq 0 ] && cmp -s "$tmp/ref.csv" "$tmp/r.csv" && ok "study np=$np offset $offset: resumed to the same report" ||
        { fail "study np=$np offset $offset: resume exit $rc or a different report"; head -n 5 "$tmp/err2"; }
    done
  done
  ;;
*)
  echo "unknown mode $mode"
  exit 2
  ;;
esac
summary
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
