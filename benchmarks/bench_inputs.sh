#!/usr/bin/env bash
# How fast `ncsparse attend` gets K and V from an HDF5 file into the pass, by storage layout and
# element type, against reading the same file with cat and dd from the page cache (issue 16).
#
#   benchmarks/bench_inputs.sh [-r RUNS] [--n N] [--d D] [--binary PATH] [--dir DIR]
#
# Makes (once, in DIR, with h5py) four files of the same N(0,1) values, Q 64 x d, K and V N x d:
#   f32          float32, contiguous       (mapped in place: no read, no copy)
#   f32-chunked  float32, chunks of 4096 rows (read chunk by chunk into the shard)
#   f16          float16, contiguous       (read into the shard's upper half, widened in place)
#   bf16         bfloat16 (uint16 + attribute ncsparse_dtype), contiguous (the same)
# and f32 once more with NCSPARSE_NO_MMAP=1 (f32-read: HDF5 reads into the shard). Each round
# runs every case once, in a rotating order, after `cat FILE > /dev/null` has put the file in
# the page cache; the time is the `inputs` phase of attend's own report (--exact --format json,
# 64 queries, so that the rest is short). Also times `cat FILE > /dev/null` and
# `dd if=FILE of=/dev/null bs=8M` on each file (the page cache's read rate, no conversion).
# Prints medians: seconds, and GB/s of the file's K and V bytes and of the float32 bytes made.
set -euo pipefail

die() { echo "bench_inputs: $*" >&2; exit 2; }
bin=build/ncsparse runs=5 n=1048576 d=64 dir=/tmp/ncsparse-bench-inputs
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    -r|--runs) runs=$2; shift 2 ;;
    --n) n=$2; shift 2 ;;
    --d) d=$2; shift 2 ;;
    --binary) bin=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[ -x "$bin" ] || die "$bin: no ncsparse binary (build first, or give --binary)"
mkdir -p "$dir"
/usr/bin/python3 - "$dir" "$n" "$d" <<'PY'
import os, sys, h5py, numpy as np
out, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(16)
q = rng.standard_normal((64, d), dtype=np.float32)
k = rng.standard_normal((n, d), dtype=np.float32)
v = rng.standard_normal((n, d), dtype=np.float32)
def bf16(x):  # round to nearest even, as ncsparse and PyTorch do
    u = x.view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
for name, kind in (("f32", "f32"), ("f32-chunked", "chunked"), ("f16", "f16"), ("bf16", "bf16")):
    path = f"{out}/{name}_n{n}_d{d}.h5"
    if os.path.exists(path):
        continue
    with h5py.File(path + ".tmp", "w") as f:
        for key, x in (("Q", q), ("K", k), ("V", v)):
            if kind == "f32":
                f[key] = x
            elif kind == "chunked":
                f.create_dataset(key, data=x, chunks=(min(4096, x.shape[0]), d))
            elif kind == "f16":
                f[key] = x.astype(np.float16)
            else:
                f[key] = bf16(x)
                f[key].attrs["ncsparse_dtype"] = "bfloat16"
    os.replace(path + ".tmp", path)
PY

cases=(f32 f32-read f32-chunked f16 bf16)
file_of() { local c=${1%-read}; echo "$dir/${c}_n${n}_d${d}.h5"; }
declare -A times
run_case() {
  local c=$1 f env=()
  f=$(file_of "$c")
  [ "$c" = f32-read ] && env=(NCSPARSE_NO_MMAP=1)
  cat "$f" >/dev/null
  env "${env[@]}" "$bin" attend --input "$f" --window const:64 --queries 64 --exact --format json \
    --out "$dir/out.h5" --force | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["seconds"]["inputs"])'
}
for ((r = 0; r < runs; r++)); do
  for ((i = 0; i < ${#cases[@]}; i++)); do
    c=${cases[$(((i + r) % ${#cases[@]}))]}
    t=$(run_case "$c")
    times[$c]="${times[$c]:-} $t"
    f=$(file_of "$c")
    if [ "$c" != f32-read ]; then
      s=$( { /usr/bin/time -f %e cat "$f" >/dev/null; } 2>&1 )
      times[cat-$c]="${times[cat-$c]:-} $s"
      s=$(dd if="$f" of=/dev/null bs=8M 2>&1 | tail -1 | awk '{print $(NF-3)}')
      times[dd-$c]="${times[dd-$c]:-} $s"
    fi
  done
done

echo "# $(date -u +%FT%TZ) $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || true); $(lscpu | sed -n 's/^Model name: *//p')"
echo "# flags: $(lscpu | sed -n 's/^Flags: *//p' | tr ' ' '\n' | grep -E '^(avx2|fma|f16c|avx512f)$' | tr '\n' ' ')"
echo "# K and V: $n x $d each; $runs rounds; medians"
printf '%-12s %10s %12s %14s %10s %10s\n' case "inputs(s)" "file GB/s" "float32 GB/s" "cat(s)" "dd(s)"
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
f32_bytes=$((2 * n * d * 4))
for c in "${cases[@]}"; do
  m=$(echo "${times[$c]}" | median)
  bytes=$f32_bytes
  case "$c" in f16|bf16) bytes=$((f32_bytes / 2)) ;; esac
  cm=-; dm=-
  if [ "$c" != f32-read ]; then
    cm=$(echo "${times[cat-$c]}" | median)
    dm=$(echo "${times[dd-$c]}" | median)
  fi
  awk -v c="$c" -v m="$m" -v b="$bytes" -v fb="$f32_bytes" -v cm="$cm" -v dm="$dm" \
    'BEGIN {printf "%-12s %10.3f %12.2f %14.2f %10s %10s\n", c, m, b / m / 1e9, fb / m / 1e9, cm, dm}'
done
echo "# cat and dd read the whole file (Q, K, V and HDF5's metadata) from the page cache."
