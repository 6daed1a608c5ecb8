#!/usr/bin/env bash
# Bad input on the command line: each case must exit with the expected sysexits code, print
# exactly one line on stderr (from rank 0, naming the flag), nothing on stdout, and never hang.
# Usage: bad_input.sh NCSPARSE MPIEXEC
set -u
bin=$1
mpiexec=$2
. "$(dirname "$0")/../support/script_lib.sh"  # tmp, ok, fail, error_why, report

# expect CODE PATTERN RANKS ARGS...: PATTERN is a fixed string the error line must contain.
expect() {
  local code=$1 pattern=$2 ranks=$3
  shift 3
  timeout 60 "$mpiexec" -q -n "$ranks" --oversubscribe "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  report "ncsparse $* (np $ranks)" "$rc" "$(error_why "$rc" "$code" "$pattern")"
}

small=(--n 1000 --queries 10 --d 8)
for np in 1 2 4; do
  expect 64 "unknown window strategy 'foo'" $np run "${small[@]}" --window foo:3
  expect 64 "--window" $np run "${small[@]}" --window const:0
done
expect 64 "K must be a whole number >= 1" 2 run "${small[@]}" --window const:-5
expect 64 "K must be a whole number >= 1" 2 run "${small[@]}" --window const:2.5
expect 64 "C must lie in (0, 1]" 2 run "${small[@]}" --window power:1,0
expect 64 "C must lie in (0, 1]" 2 run "${small[@]}" --window power:1,1.5
expect 64 "C must lie in (0, 1]" 2 run "${small[@]}" --window power:1,-0.5
expect 64 "alpha must be > 0" 2 run "${small[@]}" --window power:0,0.5
expect 64 "alpha must be > 0" 2 run "${small[@]}" --window log:-1
expect 64 "alpha must be > 0" 2 run "${small[@]}" --window sqrt:0
expect 64 "epsilon must lie in (0, 1)" 2 run "${small[@]}" --window eps:1.5
expect 64 "delta must lie in (0, 1)" 2 run "${small[@]}" --window cert:0
expect 64 "delta must lie in (0, 1)" 2 run "${small[@]}" --window mass:-0.1
expect 64 "W (recent window)" 2 run "${small[@]}" --window sink:4,0
expect 64 "takes 2 values" 2 run "${small[@]}" --window power:1
expect 64 "is not a number" 2 run "${small[@]}" --window log:abc
expect 64 "is not a window strategy" 2 run "${small[@]}" --window 256
expect 64 "needs the exact pass" 2 run "${small[@]}" --window mass:0.1 --no-exact
# The approximators (issue 8): bad degrees, dimensions and kinds, impossible combinations.
expect 64 "the degree Q must be an even whole number" 2 run "${small[@]}" --window taylor:3
expect 64 "the degree Q must be an even whole number" 2 run "${small[@]}" --window taylor:0
expect 64 "E (the reduced feature dimension) must be a whole number >= 1" 2 run "${small[@]}" --window features:0,gaussian
expect 64 "unknown KIND 'dense'" 2 run "${small[@]}" --window features:4,dense
expect 64 "takes 2 values" 2 run "${small[@]}" --window features:4
expect 64 "E = 9 is larger than d = 8" 2 run "${small[@]}" --window features:9,gaussian
expect 64 "has no causal form" 2 run "${small[@]}" --window taylor:2 --causal
expect 64 "--stream: only taylor and features windows" 2 run "${small[@]}" --window taylor:2 const:4 --stream
expect 64 "features, about" 2 run --n 1000 --queries 10 --d 256 --window taylor:6
for np in 1 3; do
  expect 64 "--n: must be >= 1" $np run --n 0 --queries 1 --d 8
  expect 64 "--d: must be >= 1" $np run --n 100 --queries 1 --d 0
  expect 64 "--queries: 2000 is more than the 1000 rows" $np run --n 1000 --queries 2000 --d 8
done
expect 64 "--n: must be >= 1" 2 run --n -3 --queries 1
expect 64 "--queries: must be >= 1" 2 run --n 10 --queries 0
expect 64 "--n" 2 run --n abc
expect 64 "--d" 2 run --d 6.5
expect 64 "--queries" 2 run --queries 1e
expect 64 "--seed" 2 run --seed foo
expect 64 "--B" 2 run "${small[@]}" --B 0
expect 64 "--R" 2 run "${small[@]}" --R -1
expect 64 "--sigma" 2 run "${small[@]}" --model gaussian --sigma 0
expect 64 "--scale" 2 run "${small[@]}" --scale -1
expect 64 "--threads" 2 run "${small[@]}" --threads 0
expect 64 "--model: unknown input model 'llama'" 2 run "${small[@]}" --model llama
expect 64 "--x-dist" 2 run "${small[@]}" --x-dist cauchy
expect 64 "--format: unknown format 'xml'" 2 run "${small[@]}" --format xml
expect 64 "--max-k" 2 run "${small[@]}" --max-k 0
expect 64 "--sparsity-eps" 2 run "${small[@]}" --sparsity-eps 2
expect 64 "--bogus" 2 run "${small[@]}" --bogus 3
expect 64 "each rank needs about" 2 run --n 100000000000 --queries 10 --d 64
expect 69 "--backend cuda" 2 run "${small[@]}" --backend cuda
expect 64 "--backend: unknown backend 'tpu'" 2 run "${small[@]}" --backend tpu
expect 64 "--score-precision: unknown precision 'fp16'" 2 run "${small[@]}" --score-precision fp16
expect 64 "--score-precision tf32: only the cuda backend" 2 run "${small[@]}" --score-precision tf32
# study checks the backend before it creates anything (no results file, no records).
study_file=$(cd "$(dirname "$0")/../.." && pwd)/data/studies/quickstart.toml
expect 69 "--backend cuda" 2 study "$study_file" --out "$tmp/study.h5" --backend cuda
expect 64 "--backend: unknown backend 'tpu'" 2 study "$study_file" --out "$tmp/study.h5" --backend tpu
check "a study with an unusable backend left no output" test ! -e "$tmp/study.h5" -a ! -e "$tmp/study.h5.records"
# A failure on one rank alone is agreed on by all: one message naming the rank, one exit code.
for np in 2 3 4; do
  NCSPARSE_INJECT_FAILURE=$((np - 1)) expect 74 "rank $((np - 1)): injected failure" $np run "${small[@]}"
done
# A failing MPI call returns (MPI_ERRORS_RETURN) and becomes the same one line and exit code 70,
# instead of MPI's own abort.
NCSPARSE_INJECT_MPI_FAILURE=0 expect 70 "MPI call failed: MPI_Send" 1 run "${small[@]}"
NCSPARSE_INJECT_MPI_FAILURE=2 expect 70 "rank 2: MPI call failed: MPI_Send" 3 run "${small[@]}"

echo "bad input: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
