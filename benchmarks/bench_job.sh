#!/usr/bin/env bash
# Wall time of the default job for two ncsparse builds, runs alternating (issue 15, "Speed").
#
#   benchmarks/bench_job.sh [OPTIONS] BEFORE AFTER [-- RUN_ARGS...]
#
# BEFORE and AFTER are two ncsparse binaries. Each timed run is one process tree
#   mpirun -q -np NP BINARY run [RUN_ARGS]
# (RUN_ARGS empty: the default job of launch/run.sh and the README's quick start: 1,048,576
# tokens, d = 64, 256 queries, windows const:256 log:8 power:1,0.5 power:4,0.4 cert:1e-3, 2 ranks),
# timed from outside with /usr/bin/time -f %e (GNU time; bash's clock when it is missing). After
# WARMUP untimed runs of each build, round i runs BEFORE then AFTER when i is odd, AFTER then
# BEFORE when i is even (ABBA), so drifts of a shared machine fall on both. hyperfine is not used
# even when installed: it times one command's runs back to back, which is not alternating.
#
# Prints each round, then per build the median and min of the external wall time and the median
# of the job's own "total" (its table's wall-time line, max over ranks), the ratio after/before
# of the medians, the CPU model and whether it has avx2 / avx512f: a block to paste into
# benchmarks/RESULTS.md. OPENBLAS_* variables are left as they are (the job uses no numpy).
#
# Options:
#   -r, --runs N     timed runs of each build (default 5)
#   -w, --warmup N   untimed runs of each build first (default 1)
#   --np P           MPI ranks (default 2, as launch/run.sh; --oversubscribe when P > cores)
#   --keep DIR       keep each run's stdout/stderr in DIR (default: a temporary directory, removed)
#   -h, --help       this text
# Environment: MPIRUN (mpirun).
# Exit status: 0, 1 when a run fails (its stderr is shown), 2 usage.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "bench_job: $*" >&2; exit 2; }

MPIRUN=${MPIRUN:-mpirun}
runs=5
warmup=1
np=2
keep=""
pos=()
run_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -r|--runs) [ $# -ge 2 ] || die "$1 needs a value"; runs=$2; shift 2 ;;
    -w|--warmup) [ $# -ge 2 ] || die "$1 needs a value"; warmup=$2; shift 2 ;;
    --np) [ $# -ge 2 ] || die "$1 needs a value"; np=$2; shift 2 ;;
    --keep) [ $# -ge 2 ] || die "$1 needs a value"; keep=$2; shift 2 ;;
    --) shift; run_args=("$@"); break ;;
    -*) die "unknown option $1 (see --help; flags for 'ncsparse run' go after --)" ;;
    *) pos+=("$1"); shift ;;
  esac
done
[ ${#pos[@]} -eq 2 ] || { usage >&2; die "expected BEFORE AFTER, got ${#pos[@]} arguments"; }
for v in runs warmup np; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "--$v must be a non-negative integer, got '${!v}'"
done
[ "$runs" -ge 1 ] || die "--runs must be at least 1"
[ "$np" -ge 1 ] || die "--np must be at least 1"
before=${pos[0]} after=${pos[1]}
. "$(dirname "${BASH_SOURCE[0]}")/build_pair.sh"
check_build_pair
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
mpi=("$MPIRUN" -q -np "$np")
[ "$np" -gt "$(nproc)" ] && mpi+=(--oversubscribe)

if [ -n "$keep" ]; then
  mkdir -p "$keep"
  work=$(realpath "$keep")
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
have_time=0
[ -x /usr/bin/time ] && /usr/bin/time -f %e true 2>/dev/null && have_time=1

# one timed run: sets T_EXT (seconds) and T_INT (the job's own total; "n/a" when not printed)
timed() {
  local side=$1 tag=$2 exe=${!1}
  local stem="$work/$side-$tag" rc=0 t
  if [ $have_time -eq 1 ]; then
    /usr/bin/time -f %e -o "$stem.time" "${mpi[@]}" "$exe" run "${run_args[@]}" \
      >"$stem.out" 2>"$stem.err" || rc=$?
    t=$(tail -n 1 "$stem.time")
  else
    local t0 t1
    t0=$(date +%s.%N)
    "${mpi[@]}" "$exe" run "${run_args[@]}" >"$stem.out" 2>"$stem.err" || rc=$?
    t1=$(date +%s.%N)
    t=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  fi
  if [ $rc -ne 0 ]; then
    echo "bench_job: [$side] run $tag exited $rc:" >&2
    cat "$stem.err" >&2
    exit 1
  fi
  local internal
  internal=$(grep -o 'total [0-9.]*' "$stem.out" | tail -n 1 | awk '{print $2}' || true)
  T_EXT=$t
  T_INT=${internal:-n/a}
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "n/a"; exit }
  if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
has() { [[ " $flags " == *" $1 "* ]] && echo yes || echo no; }
cmdline="${mpi[*]} ncsparse run ${run_args[*]:-(defaults)}"

echo "bench_job: $cmdline; $warmup warm-up + $runs timed runs per build, alternating (ABBA)" >&2
for ((i = 1; i <= warmup; i++)); do
  timed before "warmup$i"
  timed after "warmup$i"
done
b_ext=() a_ext=() b_int=() a_int=()
rounds=""
for ((i = 1; i <= runs; i++)); do
  if [ $((i % 2)) -eq 1 ]; then order=(before after); else order=(after before); fi
  for side in "${order[@]}"; do
    timed "$side" "$i"
    ext=$T_EXT int=$T_INT
    if [ "$side" = before ]; then b_ext+=("$ext"); b_int+=("$int"); bx=$ext bi=$int
    else a_ext+=("$ext"); a_int+=("$int"); ax=$ext ai=$int; fi
  done
  line=$(printf "| %d | %s | %s | %s | %s | %s |" "$i" "${order[0]}" "$bx" "$bi" "$ax" "$ai")
  rounds+="$line"$'\n'
  echo "bench_job: round $i: before ${bx}s (job total $bi), after ${ax}s (job total $ai)" >&2
done

bm=$(printf '%s\n' "${b_ext[@]}" | median)
am=$(printf '%s\n' "${a_ext[@]}" | median)
bmin=$(printf '%s\n' "${b_ext[@]}" | sort -g | head -n 1)
amin=$(printf '%s\n' "${a_ext[@]}" | sort -g | head -n 1)
bim=$(printf '%s\n' "${b_int[@]}" | grep -v n/a | median || true)
aim=$(printf '%s\n' "${a_int[@]}" | grep -v n/a | median || true)
ratio=$(awk -v a="$am" -v b="$bm" 'BEGIN { printf "%.3f", a / b }')
iratio=$(awk -v a="$aim" -v b="$bim" 'BEGIN { if (b + 0 > 0) printf "%.3f", a / b; else print "n/a" }')

cat <<EOF

### Default job, before vs after ($(date -u +%Y-%m-%d))
- command: \`$cmdline\`
- before: \`$before\`; after: \`$after\`
- machine: ${cpu:-unknown CPU}, $(nproc) cores visible; avx2: $(has avx2), avx512f: $(has avx512f)
- timing: $(if [ $have_time -eq 1 ]; then echo "/usr/bin/time -f %e"; else echo "bash clock (date +%s.%N)"; fi) around mpirun (external wall time, startup included); "job total" is the job's own wall-time line (max over ranks); $warmup warm-up run(s) per build, then $runs rounds alternating ABBA

| round | first | before (s) | before job total (s) | after (s) | after job total (s) |
|---|---|---|---|---|---|
${rounds%$'\n'}

| | before | after | after/before |
|---|---|---|---|
| median wall (s) | $bm | $am | $ratio |
| min wall (s) | $bmin | $amin | $(awk -v a="$amin" -v b="$bmin" 'BEGIN { printf "%.3f", a / b }') |
| median job total (s) | $bim | $aim | $iratio |
EOF
