#!/usr/bin/env bash
# Results of two ncsparse builds side by side (issue 15, "What must not change: Results").
#
#   benchmarks/compare_builds.sh [OPTIONS] BEFORE AFTER OUTDIR
#
# BEFORE and AFTER are two ncsparse binaries (e.g. a Release build of the pre-refactor commit and
# one of the refactored tree). Every case runs with each binary, the same arguments, in
# OUTDIR/before/CASE and OUTDIR/after/CASE (relative paths, so that paths recorded in the
# outputs agree), then benchmarks/compare_results.py compares the two trees and prints the table
# (one row per file; also written to OUTDIR/compare.txt; one row per field group of each file,
# with up to 20 differences per group listed, in OUTDIR/compare_groups.txt). Exit status: the
# comparator's (0 all agree, 1 any difference beyond 1e-6 relative, a changed integer, a missing
# name or exit code), 2 usage.
#
# Cases (names for --cases):
#   default     the default job (`ncsparse run`, default windows const:256 log:8 power:1,0.5
#               power:4,0.4 cert:1e-3, d = 64, 256 queries) at --n N (default 65536), at 1 rank
#               (json, csv and table) and 2 ranks (json, csv)
#   quickstart  data/studies/quickstart.toml at 2 ranks: results HDF5, OUT.records/ files,
#               `report` (table, csv, markdown) and `fit`   (~15 s per build on 2 cores)
#   allwin      every window kind: const log power sqrt eps mass cert sink taylor features
#               (gaussian, sparse, gram), n = 4096, d = 16, 64 queries, at 1 and 3 ranks:
#               `run` (json, csv); `generate` -> in.h5; `attend --exact --save-lists
#               --save-cert` -> att.h5 (+ json); `run --input in.h5` (json)
#   gqa         grouped-query `attend`: 4 query heads over 2 key/value heads (a file made from
#               `generate --heads 4`), every window kind, 2 ranks
#
# Options:
#   --cases "LIST"   cases to run (default: "default quickstart allwin gqa")
#   --n N            keys of the default job (default 65536; the README's default is 1048576)
#   --strict         names added AFTER are failures too (passed to the comparator)
#   --force          reuse a non-empty OUTDIR (its before/ and after/ are removed first)
#   --compare-only   only run the comparator on an existing OUTDIR
#   --also ARG       pass ARG to the comparator (repeatable), e.g. --also --split=OLD=NEW1,NEW2
#                    or --also --exclude-line=REGEX for a change the two builds are known to make
#   -h, --help       this text
# Environment: MPIRUN (mpirun), PYTHON (/usr/bin/python3, needs h5py and numpy).
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "compare_builds: $*" >&2; exit 2; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
MPIRUN=${MPIRUN:-mpirun}
cases="default quickstart allwin gqa"
n_default=65536
strict=()
also=()
force=0
compare_only=0
pos=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --cases) [ $# -ge 2 ] || die "--cases needs a value"; cases=$2; shift 2 ;;
    --n) [ $# -ge 2 ] || die "--n needs a value"; n_default=$2; shift 2 ;;
    --strict) strict=(--strict); shift ;;
    --force) force=1; shift ;;
    --compare-only) compare_only=1; shift ;;
    --also) [ $# -ge 2 ] || die "--also needs a value"; also+=("$2"); shift 2 ;;
    --) shift; pos+=("$@"); break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) pos+=("$1"); shift ;;
  esac
done
[ ${#pos[@]} -eq 3 ] || { usage >&2; die "expected BEFORE AFTER OUTDIR, got ${#pos[@]} arguments"; }
before=${pos[0]} after=${pos[1]} out=${pos[2]}
[[ "$n_default" =~ ^[0-9]+$ ]] || die "--n must be a positive integer, got '$n_default'"
for c in $cases; do
  case "$c" in default|quickstart|allwin|gqa) ;; *) die "unknown case '$c' (default quickstart allwin gqa)" ;; esac
done
"$PYTHON" -c 'import h5py, numpy' 2>/dev/null || die "$PYTHON cannot import h5py and numpy"
compare() {
  set +e
  "$PYTHON" "$root/benchmarks/compare_results.py" "${strict[@]}" "${also[@]}" --by file \
    "$out/before" "$out/after" | tee "$out/compare.txt"
  local rc=${PIPESTATUS[0]}
  "$PYTHON" "$root/benchmarks/compare_results.py" "${strict[@]}" "${also[@]}" --by group --verbose --max-notes 20 \
    "$out/before" "$out/after" >"$out/compare_groups.txt"
  set -e
  echo "table written to $out/compare.txt; per field group, with the differences: $out/compare_groups.txt"
  exit "$rc"
}
if [ $compare_only -eq 1 ]; then
  [ -d "$out/before" ] && [ -d "$out/after" ] || die "$out has no before/ and after/ to compare"
  compare
fi

. "$(dirname "${BASH_SOURCE[0]}")/build_pair.sh"
check_build_pair
if [ -e "$out" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
  [ $force -eq 1 ] || die "$out exists and is not empty (use --force to reuse it)"
  rm -rf "$out/before" "$out/after" "$out/compare.txt" "$out/compare_groups.txt"
fi
mkdir -p "$out"
out=$(realpath "$out")
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# run NP STDOUT_FILE ARGS... : one command of the current binary ($exe) in the current case
# directory; stdout to STDOUT_FILE, stderr to STDOUT_FILE's stem .err, the exit code to
# exit_codes.txt (compared: a command that fails on one side only is a failure).
run() {
  local np=$1 file=$2
  shift 2
  local cmd=("$exe")
  if [ "$np" -gt 1 ]; then
    cmd=("$MPIRUN" -q -np "$np")
    [ "$np" -gt "$(nproc)" ] && cmd+=(--oversubscribe)
    cmd+=("$exe")
  fi
  local rc=0
  "${cmd[@]}" "$@" >"$file" 2>"${file%.*}.err" || rc=$?
  echo "${file%.*} np=$np rc=$rc" >>exit_codes.txt
  if [ $rc -ne 0 ]; then
    echo "  warning: [$side] ${file%.*} exited $rc: $(head -c 300 "${file%.*}.err")" >&2
  fi
}

allwin=(const:16 log:2 power:1,0.5 sqrt:1 eps:0.01 mass:0.1 cert:0.05 sink:2,8 taylor:2
        features:8,gaussian features:4,sparse features:8,gram)

case_default() {
  mkdir -p default-1r default-2r
  (cd default-1r
   run 1 run.json run --n "$n_default" --format json
   run 1 run.csv run --n "$n_default" --format csv
   run 1 run.txt run --n "$n_default")
  (cd default-2r
   run 2 run.json run --n "$n_default" --format json
   run 2 run.csv run --n "$n_default" --format csv)
}

case_quickstart() {
  mkdir -p quickstart-2r
  (cd quickstart-2r
   cp "$root/data/studies/quickstart.toml" quickstart.toml
   run 2 study.log study quickstart.toml --out res.h5
   run 1 report.txt report res.h5
   run 1 report.csv report res.h5 --format csv
   run 1 report_md.txt report res.h5 --format markdown
   run 1 fit.txt fit res.h5)
}

case_allwin() {
  local np
  for np in 1 3; do
    mkdir -p "allwin-${np}r"
    (cd "allwin-${np}r"
     local common=(--n 4096 --d 16 --queries 64)
     run "$np" run.json run "${common[@]}" --window "${allwin[@]}" --format json
     run "$np" run.csv run "${common[@]}" --window "${allwin[@]}" --format csv
     run "$np" generate.txt generate --n 4096 --d 16 --out in.h5
     run "$np" attend.json attend --input in.h5 --queries 64 --window "${allwin[@]}" \
       --exact --save-lists --save-cert --format json --out att.h5
     run "$np" run_input.json run --input in.h5 --queries 64 --window "${allwin[@]}" --format json)
  done
}

case_gqa() {
  mkdir -p gqa-2r
  (cd gqa-2r
   run 2 generate.txt generate --n 2048 --d 16 --heads 4 --out in4.h5
   # Q keeps its 4 heads, K and V keep heads 0 and 1: query head h uses kv head h/2
   "$PYTHON" - <<'EOF'
import h5py
with h5py.File("in4.h5", "r") as f, h5py.File("gqa_in.h5", "w") as g:
    g["Q"] = f["Q"][()]
    g["K"] = f["K"][:2]
    g["V"] = f["V"][:2]
EOF
   run 2 attend.json attend --input gqa_in.h5 --heads-kv 2 --queries 48 --window "${allwin[@]}" \
     --exact --save-lists --save-cert --format json --out gqa.h5)
}

for c in $cases; do
  for side in before after; do
    exe=${!side}
    mkdir -p "$out/$side"
    echo "compare_builds: [$side] $c ($exe)" >&2
    t0=$SECONDS
    (cd "$out/$side" && "case_$c")
    echo "compare_builds: [$side] $c done in $((SECONDS - t0)) s" >&2
  done
done
compare
