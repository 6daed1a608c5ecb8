#!/usr/bin/env bash
# Validation of the cost model of `ncsparse plan` (issue 18; docs/scaling.md, "The cost model
# of `plan`"): calibrates this machine, then compares plan's predicted phase times with measured
# runs and prints one table.
#
#   benchmarks/validate_plan.sh [--reps R] [--ranks "1 2 4"] [--cal-ranks C] [--n N] [--no-study]
#                               [--profile FILE] [--keep DIR]
#
# 1. `mpirun -np C ncsparse calibrate` (C = 2 by default: the merges' alpha and beta are
#    measured at 2 ranks);
# 2. for each P: R runs of the default job (`mpirun -np P ncsparse run --format json`: 2^20
#    tokens, d = 64, 256 queries, const:256 log:8 power:1,0.5 power:4,0.4 cert:1e-3), the median
#    of each phase over the runs, against `ncsparse plan --ranks P --ranks-per-node P` (all ranks
#    on this node: P above its cores is oversubscribed, and plan models it so);
#    --n N: the default job at N tokens instead (e.g. 4194304 = 2^22); --profile FILE: skip step
#    1 and use that profile (so that several runs of this script share one calibration);
# 3. unless --no-study, the quickstart study (data/studies/quickstart.toml) once at each P: its
#    "compute" time (the sum of its configurations' jobs) against plan's total without start-up.
# The 1-minute load average before each run (/proc/loadavg) and the runnable threads of other
# work sampled just before it (procs_running of /proc/stat over 1 s) are in the table: on a
# shared machine other work slows every phase. plan is not told of it (the profile was measured
# beside whatever ran then): the table shows how far that carries.
#
# Verdicts: a phase is judged when it takes at least 10% of the measured total; "ok" when the
# prediction is within ±25% of the median measured, "off" otherwise.
#
# Environment: NCSPARSE_BIN (default build/ncsparse), MPIEXEC (default mpirun).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${NCSPARSE_BIN:-$root/build/ncsparse}
mpiexec=${MPIEXEC:-mpirun}
reps=3
ranks="1 2 4"
cal_ranks=2
study=1
keep=""
n=""
profile=""
while [ $# -gt 0 ]; do
  case $1 in
    --reps) reps=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --cal-ranks) cal_ranks=$2; shift 2 ;;
    --no-study) study=0; shift ;;
    --keep) keep=$2; shift 2 ;;
    --n) n=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "validate_plan.sh: unknown option $1 (see --help)" >&2; exit 64 ;;
  esac
done
[ -x "$bin" ] || { echo "validate_plan.sh: $bin not built (./launch/build.sh)" >&2; exit 66; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ -n "$keep" ]; then mkdir -p "$keep"; dir=$keep; else dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT; fi
load() { cut -d' ' -f1 /proc/loadavg; }
# Runnable threads of other work now: procs_running of /proc/stat over 1 s, less this sampler.
background() {
  /usr/bin/python3 -c '
import time
v = []
for _ in range(50):
    for line in open("/proc/stat"):
        if line.startswith("procs_running"): v.append(int(line.split()[1]))
    time.sleep(0.02)
print(f"{max(0.0, sum(v) / len(v) - 1):.2f}")'
}

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, flags:" \
  "$(grep -o -w -E 'avx2|fma|avx512f' /proc/cpuinfo | sort -u | tr '\n' ' ')"
if [ -n "$profile" ]; then
  echo "# profile: $profile (not calibrated again)"
  cp "$profile" "$dir/profile.json"
else
  echo "# calibrate: $mpiexec -np $cal_ranks $bin calibrate --out $dir/profile.json --force (load $(load))"
  "$mpiexec" -q -np "$cal_ranks" --oversubscribe "$bin" calibrate --out "$dir/profile.json" --force | sed 's/^/#   /'
fi
job=()
[ -n "$n" ] && job=(--n "$n")

for P in $ranks; do
  for r in $(seq 1 "$reps"); do
    echo "$(load) $(background)" >"$dir/load_job_${P}_$r"
    "$mpiexec" -q -np "$P" --oversubscribe "$bin" run "${job[@]}" --format json >"$dir/run_job_${P}_$r.json"
  done
  "$bin" plan "${job[@]}" --ranks "$P" --ranks-per-node "$P" --profile "$dir/profile.json" --format json >"$dir/plan_job_$P.json"
  if [ "$study" -eq 1 ]; then
    rm -rf "$dir/study_$P.h5" "$dir/study_$P.h5.records"
    echo "$(load) $(background)" >"$dir/load_study_$P"
    "$bin" plan "$root/data/studies/quickstart.toml" --ranks "$P" --ranks-per-node "$P" \
      --profile "$dir/profile.json" --format json >"$dir/plan_study_$P.json"
    "$mpiexec" -q -np "$P" --oversubscribe "$bin" study "$root/data/studies/quickstart.toml" --out "$dir/study_$P.h5" \
      >/dev/null 2>"$dir/study_$P.log"
  fi
done

/usr/bin/python3 - "$dir" "$reps" "$ranks" "$study" "$n" <<'EOF'
import json, re, statistics, sys
d, reps, ranks, study = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4] == "1"
workload = "default job" + (f", n = {sys.argv[5]}" if sys.argv[5] else "")
phases = ["startup", "inputs", "local_pass", "merge", "sparse", "stats", "other", "total"]
judged = []
print("| workload | P | load / other threads | phase | predicted s | measured s (median of %d) | predicted / measured | share of measured | verdict |" % reps)
print("|---|---|---|---|---|---|---|---|---|")
for P in ranks:
    plan = json.load(open(f"{d}/plan_job_{P}.json"))["total"]
    runs = [json.load(open(f"{d}/run_job_{P}_{r}.json"))["seconds"] for r in range(1, reps + 1)]
    loads = [open(f"{d}/load_job_{P}_{r}").read().strip().replace(" ", " / ") for r in range(1, reps + 1)]
    total = statistics.median(x["total"] for x in runs)
    for ph in phases:
        meas = statistics.median(x[ph] for x in runs)
        pred = plan.get(ph)
        share = meas / total if total > 0 else 0
        if pred is None:
            verdict, ratio, ptext = "not predicted", "-", "-"
        else:
            ratio = f"{pred / meas:.2f}" if meas > 0 else "-"
            ptext = f"{pred:.3f}"
            if ph == "total" or share >= 0.10:
                ok = meas > 0 and abs(pred / meas - 1) <= 0.25
                verdict = "ok (±25%)" if ok else f"off ({100 * (pred / meas - 1):+.0f}%)"
                judged.append((f"{workload} P={P} {ph}", ok))
            else:
                verdict = "< 10%, not judged"
        print(f"| {workload} | {P} | {'; '.join(loads)} | {ph} | {ptext} | {meas:.3f} | {ratio} | {100 * share:.0f}% | {verdict} |")
if study:
    for P in ranks:
        plan = json.load(open(f"{d}/plan_study_{P}.json"))
        pred = plan["total"]["total"] - plan["total"]["startup"]
        log = open(f"{d}/study_{P}.log").read()
        m = re.search(r"; compute ([0-9.]+) s", log)
        meas = float(m.group(1)) if m else float("nan")
        ok = meas > 0 and abs(pred / meas - 1) <= 0.25
        judged.append((f"quickstart P={P} compute", ok))
        load = open(f"{d}/load_study_{P}").read().strip().replace(" ", " / ")
        print(f"| quickstart study (10 configurations) | {P} | {load} | compute (sum of jobs) | {pred:.3f} | {meas:.3f} | "
              f"{pred / meas:.2f} | 100% | {'ok (±25%)' if ok else f'off ({100 * (pred / meas - 1):+.0f}%)'} |")
good = sum(ok for _, ok in judged)
print(f"\njudged: {len(judged)}; within ±25%: {good}; off: " + (", ".join(w for w, ok in judged if not ok) or "none"))
EOF
