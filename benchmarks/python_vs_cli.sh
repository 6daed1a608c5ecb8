#!/usr/bin/env bash
# What a user waits for: `ncsparse attend` on an HDF5 file against a Python process that imports
# ncsparse, reads the same file with h5py and calls ncsparse.attend on it (same windows, rows,
# exact pass), both timed from outside the process, alternating, several times (issue 20's
# target: the Python call at most 5% over the C++ job). Prints each run and the medians.
#
#   benchmarks/python_vs_cli.sh [BUILD_DIR] [REPEATS]      (n = 2^20, d = 64, 256 rows)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build}
repeats=${2:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
windows=(const:256 log:8 power:1,0.5 power:4,0.4 cert:1e-3)
"$build/ncsparse" generate --n 1048576 --d 64 --out "$tmp/in.h5" >/dev/null
cat >"$tmp/attend.py" <<PY
import sys, h5py, ncsparse
with h5py.File(sys.argv[1], "r") as f:
    q, k, v = f["Q"][...], f["K"][...], f["V"][...]
ncsparse.attend(q, k, v, windows="${windows[*]}".split(), queries=256, exact=True)
PY
lscpu | grep -E '^Model name' | sed 's/  */ /g'
now() { date +%s.%N; }
cli=() py=()
for i in $(seq "$repeats"); do
  t0=$(now)
  "$build/ncsparse" attend --input "$tmp/in.h5" --out "$tmp/out.h5" --force --queries 256 --exact \
    --window "${windows[@]}" >/dev/null
  t1=$(now)
  PYTHONPATH="$build/python" /usr/bin/python3 "$tmp/attend.py" "$tmp/in.h5"
  t2=$(now)
  c=$(awk "BEGIN {print $t1 - $t0}") p=$(awk "BEGIN {print $t2 - $t1}")
  cli+=("$c") py+=("$p")
  printf 'run %d: ncsparse attend %.3f s, python %.3f s\n' "$i" "$c" "$p"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mc=$(median "${cli[@]}") mp=$(median "${py[@]}")
printf 'median: ncsparse attend %.3f s, python (import + h5py read + attend) %.3f s, ratio %.3f\n' \
  "$mc" "$mp" "$(awk "BEGIN {print $mp / $mc}")"
