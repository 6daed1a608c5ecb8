#!/usr/bin/env bash
# The run command end to end on small inputs: every output format is well formed, --help
# documents every flag with its default, and the table holds every requested strategy.
# Usage: run_smoke.sh NCSPARSE MPIEXEC
set -u
bin=$1
mpiexec=$2
. "$(dirname "$0")/../support/script_lib.sh"  # tmp, py, check

job=(run --n 3001 --d 16 --queries 40 --block 16 --tile 256 --window const:8 log:2 power:1,0.5 sqrt:0.5 eps:1e-2 mass:0.1 cert:0.2 sink:2,16)
timeout 120 "$mpiexec" -q -n 3 --oversubscribe "$bin" "${job[@]}" >"$tmp/table" 2>"$tmp/err"
check "table run exits 0" test $? -eq 0
check "nothing on stderr" test ! -s "$tmp/err"
for w in const:8 log:2 power:1,0.5 sqrt:0.5 eps:1e-2 mass:0.1 cert:0.2 sink:2,16; do
  check "table has $w" grep -q "^$w " "$tmp/table"
done
check "table states the row count" grep -q "statistics over 40 query rows" "$tmp/table"
check "table has phase times" grep -q "wall time (s, slowest rank; the phases sum to total): inputs" "$tmp/table"

t0=$(date +%s.%N)
timeout 120 "$mpiexec" -q -n 2 --oversubscribe "$bin" "${job[@]}" --format json >"$tmp/json" 2>"$tmp/err"
check "json run exits 0" test $? -eq 0
t1=$(date +%s.%N)
# The phases sum to the total, which covers the process from its start (start-up > 0) and
# fits inside the wall time seen from outside mpirun.
check "json phases sum to a total within the process's wall time" "$py" -c '
import json, sys
t = json.load(open(sys.argv[1]))["seconds"]
parts = sum(v for k, v in t.items() if k != "total")
assert abs(parts - t["total"]) <= 1e-6 * max(1.0, t["total"]), t
assert t["startup"] > 0 and t["other"] >= 0, t
assert t["total"] <= float(sys.argv[2]) - float(sys.argv[3]), (t, sys.argv[2:])
' "$tmp/json" "$t1" "$t0"
check "json parses and holds 8 strategies of 40 rows" "$py" -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert len(r["strategies"]) == 8, r
assert all(s["rows"] == 40 and s["out_rel"]["count"] == 40 for s in r["strategies"])
assert r["config"]["ranks"] == 2 and r["config"]["n"] == 3001
assert r["config"]["mpi_startup"] == "pml ob1 (all ranks on one node); TCP_NODELAY on 1 loopback socket (PMIx)", r["config"]
' "$tmp/json"
# MPI start-up settings (src/comm/mpi_startup.hpp) as the report records them: without a
# launcher, with the user's own PML, and with the library's defaults asked for.
tiny=(run --n 500 --d 8 --queries 4 --window const:4 --format json)
startup_is() {  # startup_is EXPECTED ENV... : the JSON's mpi_startup of a run without mpirun
  local expected=$1
  shift
  env "$@" timeout 60 "$bin" "${tiny[@]}" >"$tmp/tiny" 2>"$tmp/err" &&
    "$py" -c 'import json, sys; s = json.load(open(sys.argv[1]))["config"]["mpi_startup"]; assert s == sys.argv[2], s' \
      "$tmp/tiny" "$expected"
}
check "no launcher: ob1, isolated" startup_is "pml ob1, isolated (one process, no launcher)" X=1
# (not isolated: the singleton starts its daemon and connects to its PMIx server)
check "OMPI_MCA_pml is the user's" startup_is "pml ob1 (OMPI_MCA_pml, the user's); TCP_NODELAY on 1 loopback socket (PMIx)" OMPI_MCA_pml=ob1
check "NCSPARSE_MPI_DEFAULTS=library" startup_is "library defaults (NCSPARSE_MPI_DEFAULTS=library)" NCSPARSE_MPI_DEFAULTS=library

timeout 120 "$mpiexec" -q -n 4 --oversubscribe "$bin" "${job[@]}" --format csv >"$tmp/csv" 2>"$tmp/err"
check "csv run exits 0" test $? -eq 0
check "csv has a header and 8 rows of equal width" "$py" -c '
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
assert len(rows) == 9 and rows[0][0] == "strategy", rows[:2]
assert len({len(r) for r in rows}) == 1
' "$tmp/csv"

# The approximators: table lines, json fields, streamed keys, warnings on stderr from rank 0 only.
approx=(run --n 3001 --d 8 --queries 24 --block 10 --tile 300 --B 1 --R 4 --window taylor:2 taylor:4 features:4,gaussian features:8,gram)
timeout 120 "$mpiexec" -q -n 3 --oversubscribe "$bin" "${approx[@]}" >"$tmp/approx" 2>"$tmp/err"
check "approximator run exits 0" test $? -eq 0
check "taylor:4 reports t = 495" grep -q "^taylor:4: one-pass sketch with t = 495 features" "$tmp/approx"
check "features:8,gram reports e = 8" grep -q "^features:8,gram: e = 8 features" "$tmp/approx"
check "score range line" grep -q "^score range: largest s\*q.k per row" "$tmp/approx"
check "warnings once each (3 ranks), naming the window" test "$(grep -c '^ncsparse: warning: taylor:2: in ' "$tmp/err")" -eq 1
timeout 120 "$mpiexec" -q -n 2 --oversubscribe "$bin" "${approx[@]}" --stream --format json >"$tmp/ajson" 2>/dev/null
check "streamed approximator json exits 0" test $? -eq 0
check "json: features, stream and row errors" "$py" -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["config"]["stream"] is True
s = {x["strategy"]: x for x in r["strategies"]}
assert s["taylor:4"]["features"] == 495 and s["features:8,gram"]["features"] == 8, s
assert s["features:8,gram"]["attn_l1"]["max"] < 1e-5, s["features:8,gram"]["attn_l1"]
assert 0 < s["taylor:4"]["attn_l1"]["mean"] < s["taylor:2"]["attn_l1"]["mean"]
assert r["score_max"]["count"] == 24
' "$tmp/ajson"

"$mpiexec" -q -n 1 "$bin" run --help >"$tmp/help" 2>&1
check "run --help exits 0" test $? -eq 0
for flag in --n --d --queries --window --model --x-dist --B --R --sigma --seed --scale --causal --no-exact \
            --threads --block --tile --max-k --sparsity-eps --backend --score-precision --format --stream --tied; do
  check "help documents $flag" grep -qE -- "^ +$flag( |,)" "$tmp/help"
done
check "help shows defaults" grep -q "1048576" "$tmp/help"
"$mpiexec" -q -n 2 "$bin" --version >"$tmp/version" 2>&1
check "--version prints once" test "$(grep -c ncsparse "$tmp/version")" -eq 1

echo "run smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
