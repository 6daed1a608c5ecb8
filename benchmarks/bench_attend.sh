#!/usr/bin/env bash
# Whole-process `ncsparse attend` against a user's h5py + FAISS pipeline (issue 16).
#
#   benchmarks/bench_attend.sh [OPTIONS]
#
# Makes (once, in DIR) an HDF5 file of float32 Q (M x d), K and V (N x d), N(0,1) entries, then
# times from outside, with /usr/bin/time, rounds of three commands in turn (the order rotates
# from round to round, so drifts of a shared machine fall on all three):
#   attend      BINARY attend --input F --window const:K --out DIR/a.h5 --force --threads T
#   attend-mpi  the same under MPIRUN -q -np 1
#   pipeline    /usr/bin/python3 benchmarks/attend_pipeline.py (h5py reads, FAISS IndexFlatIP
#               top-K, softmax, gather of V, h5py write), OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
#               unset for it alone, FAISS and BLAS on T threads
# The file is read once with dd first, so every command reads it from the page cache; dd's
# rate from the page cache is printed beside the commands'. Prints each run, then per command
# the median wall time, user and system time, peak RSS (max of the process tree's largest
# process, as time -v reports it), the ratio pipeline / attend of the median wall times, the
# RSS target of issue 16 (1.1 x the bytes of K and V + 256 MiB), and whether attend's outputs
# equal the pipeline's (the check of attend_pipeline.py --check). Also the CPU model and flags.
#
# Options:
#   --binary PATH   ncsparse (default build/ncsparse)
#   -r, --runs R    rounds (default 5; plus one untimed warm-up round)
#   --n N           keys (default 1048576)   --d D   (default 64)
#   --m M           queries (default 1024)    --k K   window (default 256)
#   --threads T     (default 1)
#   --before PATH   also time PATH attend ... (another build; command name "before")
#   --no-mmap       also time BINARY attend with NCSPARSE_NO_MMAP=1 (command name "attend-read")
#   --dir DIR       where the input and outputs go (default /tmp/ncsparse-bench-attend; kept)
#   -h, --help      this text
# Environment: MPIRUN (mpirun). Exit status: 0, 1 when a run fails or outputs differ, 2 usage.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "bench_attend: $*" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MPIRUN=${MPIRUN:-mpirun}
before='' no_mmap=0 bin=build/ncsparse runs=5 n=1048576 d=64 m=1024 k=256 threads=1 dir=/tmp/ncsparse-bench-attend
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --binary) bin=$2; shift 2 ;;
    -r|--runs) runs=$2; shift 2 ;;
    --n) n=$2; shift 2 ;;
    --d) d=$2; shift 2 ;;
    --m) m=$2; shift 2 ;;
    --k) k=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --before) before=$2; shift 2 ;;
    --no-mmap) no_mmap=1; shift ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[ -x "$bin" ] || die "$bin: no ncsparse binary (build first, or give --binary)"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (apt-get install time)"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
mkdir -p "$dir"
input=$dir/input_n${n}_d${d}_m${m}.h5
if [ ! -f "$input" ]; then
  /usr/bin/python3 - "$input" "$n" "$d" "$m" <<'PY'
import sys, h5py, numpy as np
path, n, d, m = sys.argv[1], *map(int, sys.argv[2:5])
rng = np.random.default_rng(16)
with h5py.File(path + ".tmp", "w") as f:
    f["Q"] = rng.standard_normal((m, d), dtype=np.float32)
    for name in ("K", "V"):
        f[name] = rng.standard_normal((n, d), dtype=np.float32)
import os; os.replace(path + ".tmp", path)
PY
fi
dd_rate=$(dd if="$input" of=/dev/null bs=8M 2>&1 | tail -1 | sed 's/.*, //')
dd_rate2=$(dd if="$input" of=/dev/null bs=8M 2>&1 | tail -1 | sed 's/.*, //')

export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
attend=("$bin" attend --input "$input" --window "const:$k" --out "$dir/a.h5" --force --threads "$threads")
declare -A cmd
cmd[attend]="${attend[*]}"
cmd[attend-mpi]="$MPIRUN -q -np 1 ${attend[*]}"
cmd[pipeline]="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads /usr/bin/python3 $here/attend_pipeline.py --input $input --out $dir/p.h5 --k $k --threads $threads"
names=(attend attend-mpi pipeline)
if [ -n "$before" ]; then
  cmd[before]="$before ${attend[*]:1}"
  names+=(before)
fi
if [ "$no_mmap" = 1 ]; then
  cmd[attend-read]="env NCSPARSE_NO_MMAP=1 ${attend[*]}"
  names+=(attend-read)
fi
count=${#names[@]}
log=$dir/runs.txt
: >"$log"
one() {  # name round (round 0: warm-up, not recorded)
  if ! /usr/bin/time -o "$dir/time.$1" -f "%e %U %S %M" ${cmd[$1]} >/dev/null 2>"$dir/err.$1"; then
    cat "$dir/err.$1" >&2
    echo "bench_attend: $1 failed" >&2
    exit 1
  fi
  if [ "$2" -gt 0 ]; then
    echo "$1 $(tail -1 "$dir/time.$1")" >>"$log"
    echo "round $2: $1 $(tail -1 "$dir/time.$1") (wall, user, system s; peak RSS KiB)"
  fi
}
for r in $(seq 0 "$runs"); do
  for j in $(seq 0 $((count - 1))); do one "${names[$(( (r + j) % count ))]}" "$r"; done
done

echo
echo "bench_attend: n=$n d=$d m=$m window const:$k threads=$threads, $runs rounds, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(grep -o -w -E 'avx2|fma|avx512f' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "dd of the input from the page cache: $dd_rate, $dd_rate2 ($(du -h "$input" | cut -f1))"
/usr/bin/python3 - "$log" "$n" "$d" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    name, e, u, s, rss = line.split()
    rows.setdefault(name, []).append((float(e), float(u), float(s), int(rss)))
n, d = int(sys.argv[2]), int(sys.argv[3])
kv = 2 * n * d * 4
limit = 1.1 * kv + 256 * 2**20
print("| command | wall median (s) | wall min (s) | user (s) | system (s) | peak RSS (MiB) |")
print("|---|---|---|---|---|---|")
med = {}
for name, r in rows.items():
    med[name] = st.median(x[0] for x in r)
    print("| %s | %.2f | %.2f | %.2f | %.2f | %.0f |" % (name, med[name], min(x[0] for x in r),
          st.median(x[1] for x in r), st.median(x[2] for x in r), st.median(x[3] for x in r) / 1024))
print("pipeline / attend: %.2fx; pipeline / attend under mpirun: %.2fx" % (
    med["pipeline"] / med["attend"], med["pipeline"] / med["attend-mpi"]))
for other in ("before", "attend-read"):
    if other in med:
        print("%s / attend: %.2fx" % (other, med[other] / med["attend"]))
rss = st.median(x[3] for x in rows["attend"]) * 1024
print("attend peak RSS %.0f MiB; target 1.1 x K,V (%.0f MiB) + 256 MiB = %.0f MiB: %s" % (
    rss / 2**20, kv / 2**20, limit / 2**20, "met" if rss <= limit else "missed"))
PY
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 "$here/attend_pipeline.py" --input "$input" \
  --out "$dir/p.h5" --k "$k" --threads "$threads" --check "$dir/a.h5"
