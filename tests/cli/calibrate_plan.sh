#!/usr/bin/env bash
# ncsparse calibrate and plan end to end: `calibrate --quick` at 1 and 2 ranks writes a profile
# whose rates are positive and finite (alpha and beta of the merges measured at 2 ranks), refuses
# to overwrite it without --force (exit 73); `plan` on the default job and on a study file prints
# a prediction and exits 0; bad input is one line on stderr with its sysexits code.
# Usage: calibrate_plan.sh NCSPARSE MPIEXEC STUDY_FILE
set -u
bin=$1
mpiexec=$2
study=$3
. "$(dirname "$0")/../support/script_lib.sh"  # tmp, py, check, error_why, report

# The profile's fields: every rate positive and finite; the machine and date recorded.
check_profile() {  # check_profile FILE RANKS
  "$py" - "$1" "$2" <<'EOF'
import json, math, sys
p = json.load(open(sys.argv[1]))
ranks = int(sys.argv[2])
def pos(x, what):
    assert isinstance(x, (int, float)) and math.isfinite(x) and x > 0, (what, x)
assert p["ncsparse_profile"] == 3 and p["ncsparse_version"] and p["date"].startswith("20"), p
assert p["machine"]["cpu_model"] and p["machine"]["cores"] >= 1 and isinstance(p["machine"]["cpu_flags"], list)
assert p["ranks"] == ranks and p["threads"] == 1 and p["quick"] is True
for key in ("score_seconds_per_row_key", "exact_seconds_per_row_key"):
    assert [e["d"] for e in p[key]] == [32, 64, 128], p[key]
    for e in p[key]: pos(e["seconds"], key)
for key in ("paper", "gaussian"):
    for e in p["generator_seconds_per_row"][key]: pos(e["seconds"], key)
pos(p["selection"]["seconds_per_list_entry"], "selection")
assert len(p["selection"]["points"]) >= 2
for key in ("exp_seconds", "stats_seconds_per_entry", "hdf5_read_bytes_per_second", "startup_seconds", "job_seconds"):
    pos(p[key], key)
for key in ("bandwidth_bytes_per_second", "first_touch_bytes_per_second", "gather_seconds_per_value"):
    pos(p["memory"][key], key)
for key in ("compute", "memory", "generate"):
    pos(p["contention"][key], key)
for key in ("allreduce_topk", "allreduce_flash"):
    c = p[key]
    assert c["ranks"] == ranks, c
    if ranks > 1:
        assert len(c["points"]) >= 2, c
        for e in c["points"]: pos(e["bytes"], key); pos(e["seconds"], key)
        pos(c["alpha_seconds"] + c["beta_seconds_per_byte"], key + " alpha + beta")
        assert c["alpha_seconds"] >= 0 and c["beta_seconds_per_byte"] >= 0, c
EOF
}

for np in 1 2; do
  prof="$tmp/profile$np.json"
  t0=$(date +%s)
  timeout 120 "$mpiexec" -q -n $np --oversubscribe "$bin" calibrate --quick --out "$prof" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  t1=$(date +%s)
  check "calibrate --quick at $np rank(s) exits 0 (took $((t1 - t0)) s)" test $rc -eq 0
  check "calibrate at $np rank(s): nothing on stderr" test ! -s "$tmp/err"
  check "calibrate at $np rank(s) names the profile on stdout" grep -q "profile written to $prof" "$tmp/out"
  check "profile at $np rank(s) has every field, positive and finite" check_profile "$prof" $np
  # Never overwritten without --force: exit 73 (cannot create output), one line, file unchanged.
  cp "$prof" "$tmp/before.json"
  timeout 120 "$mpiexec" -q -n $np --oversubscribe "$bin" calibrate --quick --out "$prof" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  check "calibrate at $np rank(s) refuses an existing profile with exit 73 (got $rc)" test $rc -eq 73
  check "... with one line on stderr naming --force" test "$(grep -c . "$tmp/err")" -eq 1 -a "$(grep -c -- --force "$tmp/err")" -eq 1
  check "... and leaves the profile as it was" cmp -s "$prof" "$tmp/before.json"
  timeout 120 "$mpiexec" -q -n $np --oversubscribe "$bin" calibrate --quick --out "$prof" --force >/dev/null 2>"$tmp/err"
  check "calibrate --force at $np rank(s) overwrites it" test $? -eq 0 -a ! -s "$tmp/err"
done

# plan: the default job with the measured profile and with the built-in one; a study file.
timeout 60 "$mpiexec" -q -n 1 "$bin" plan --ranks 2 --profile "$tmp/profile2.json" >"$tmp/plan" 2>"$tmp/err"
check "plan of the default job exits 0" test $? -eq 0 -a ! -s "$tmp/err"
check "plan prints the phases, memory and fit" grep -q "^n=1048576 d=64 paper .* GiB of .* GiB: fits" "$tmp/plan"
check "plan prints the best rank counts" grep -q "^fastest: P = [0-9]* (.*); fewest rank-hours: P = [0-9]*" "$tmp/plan"
check "plan names the measured profile" grep -q "^profile: $tmp/profile2.json (" "$tmp/plan"
timeout 60 "$mpiexec" -q -n 1 "$bin" plan --ranks 4 --format json >"$tmp/plan.json" 2>"$tmp/err"
check "plan --format json with the built-in profile exits 0" test $? -eq 0 -a ! -s "$tmp/err"
check "json plan: labelled built-in, phases sum to the total, search over P = 1..1024" "$py" - "$tmp/plan.json" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
assert p["builtin_profile"] is True and p["ranks"] == 4, p
t = p["total"]
parts = sum(v for k, v in t.items() if k not in ("total", "exact_in_local_pass"))
assert abs(parts - t["total"]) < 1e-4 * max(1, t["total"]) and t["total"] > 0, t
assert [s["ranks"] for s in p["search"]] == [2 ** i for i in range(11)], p["search"]
assert p["best_ranks_time"] >= 1 and p["best_ranks_rank_hours"] >= 1
EOF
timeout 60 "$mpiexec" -q -n 1 "$bin" plan --ranks 4 >"$tmp/planb" 2>&1
check "plan without --profile says it uses the built-in default profile" grep -q "^profile: built-in default profile" "$tmp/planb"
timeout 60 "$mpiexec" -q -n 1 "$bin" plan "$study" --ranks 2 --profile "$tmp/profile1.json" >"$tmp/plans" 2>"$tmp/err"
check "plan of a study file exits 0" test $? -eq 0 -a ! -s "$tmp/err"
configs=$(grep -c "^n=[0-9]* d=" "$tmp/plans")
check "plan of the study has one line per configuration and a total ($configs configurations)" \
  test "$configs" -ge 2 -a "$(grep -c '^total ' "$tmp/plans")" -eq 1
timeout 60 "$mpiexec" -q -n 2 --oversubscribe "$bin" plan --ranks 8 --n 65536 --window const:64 --threads 2 \
  --mem-per-rank 1G --ranks-per-node 4 >"$tmp/plan2" 2>"$tmp/err"
check "plan under mpirun -n 2 prints once, with run's flags" test $? -eq 0 -a "$(grep -c '^n=65536 d=64' "$tmp/plan2")" -eq 1
check "plan: --mem-per-rank is the limit" grep -q "GiB of 1.00 GiB" "$tmp/plan2"

# Bad input: one line on stderr, nothing on stdout, the documented code.
expect() {  # expect CODE PATTERN ARGS...
  local code=$1 pattern=$2
  shift 2
  timeout 60 "$mpiexec" -q -n 1 "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  report "ncsparse $*" "$rc" "$(error_why "$rc" "$code" "$pattern")"
}
expect 66 "no such profile" plan --ranks 2 --profile "$tmp/missing.json"
echo '{"ncsparse_profile": 1, "date": ' >"$tmp/broken.json"
expect 65 "broken.json" plan --ranks 2 --profile "$tmp/broken.json"
sed 's/"ncsparse_profile": 3/"ncsparse_profile": 2/' "$tmp/profile1.json" >"$tmp/old.json"
expect 65 "calibrate again" plan --ranks 2 --profile "$tmp/old.json"
sed 's/"exp_seconds": [^,]*/"exp_seconds": -1/' "$tmp/profile1.json" >"$tmp/negative.json"
expect 65 "exp_seconds" plan --ranks 2 --profile "$tmp/negative.json"
expect 64 "--ranks" plan --ranks 0
expect 64 "--ranks" plan
expect 64 "--mem-per-rank" plan --ranks 2 --mem-per-rank 4X
expect 64 "--n" plan "$study" --ranks 2 --n 4096
expect 66 "missing.toml" plan "$tmp/missing.toml" --ranks 2
expect 64 "--window" plan --ranks 2 --window bogus:1
expect 73 "--out" calibrate --quick --out "$tmp/nodir/profile.json"
expect 64 "--threads" calibrate --quick --threads 0 --out "$tmp/p.json"

echo "passed $passed, failed $failed"
[ "$failed" -eq 0 ]
