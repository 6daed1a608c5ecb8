#!/usr/bin/env bash
# ncsparse's CPU local pass beside FAISS, numpy and PyTorch on the same input, same threads.
#
#   benchmarks/compare_peers.sh            (after ./launch/build.sh; builds nothing)
#
# Per d it generates one HDF5 input (`ncsparse generate`, paper model, n keys), then for each
# thread count and query block m runs, in this order so that ratios come from the same minutes:
#   sgemm      square 2048³ cblas_sgemm on OpenBLAS's threads (the GEMM ceiling)
#   gemm       the pass's bare score GEMMs (same tile shapes, nothing reads them)
#   topk       ncsparse top-K pass (scores + selection, no exact state), every K
#   faiss      IndexFlatIP.search(Q, K), every K
#   numpy      chunked matmul + argpartition top-K (sorted), every K
#   exact      ncsparse exact pass (scores, exponentials, flash state, P·V; its list is K = 16)
#   torch      chunked matmul–softmax–matmul exact attention
# and prints one table (medians of REPS timed runs each, after a warm-up). Peers run with
# OMP_WAIT_POLICY=PASSIVE: FAISS calls a threaded OpenBLAS sgemm between OpenMP regions, and
# spinning OpenMP workers then take the cores from the BLAS threads (10× slower at 2 threads
# on this 2-core machine). Peers run under
# /usr/bin/python3, where Debian's python3-faiss and python3-torch live; launch/setup.sh
# installs them when missing.
#
# Environment (defaults): NCSPARSE_BUILD_DIR (build), N (1048576), DS ("64 128"),
# MS ("256"), KS ("16 256 2048 16384"), THREADS ("1 2"), REPS (3), PEERS ("faiss numpy torch"),
# WORKDIR (a temporary directory, removed at the end; inputs are 0.75–1.5 GiB per d),
# RAW (a file that keeps the raw result lines), TABLE_ONLY ("FILE..." of raw lines: only print
# their table; later lines win).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${NCSPARSE_BUILD_DIR:-$root/build}
for exe in ncsparse benchmarks/bench_local_pass; do
  if [ ! -x "$build/$exe" ]; then
    echo "compare_peers: $build/$exe not found: build first (./launch/build.sh) or set NCSPARSE_BUILD_DIR" >&2
    exit 1
  fi
done
N=${N:-1048576}
DS=${DS:-"64 128"}
MS=${MS:-"256"}
KS=${KS:-"16 256 2048 16384"}
THREADS=${THREADS:-"1 2"}
REPS=${REPS:-3}
PEERS=${PEERS:-"faiss numpy torch"}
PY=/usr/bin/python3

if ! $PY -c 'import faiss, torch, h5py, numpy' 2>/dev/null; then
  echo "compare_peers: installing the Debian peers (python3-faiss, python3-torch) with launch/setup.sh" >&2
  "$root/launch/setup.sh"
fi

if [ -n "${TABLE_ONLY:-}" ]; then  # only print the table of existing raw result files
  raw=$(mktemp)
  trap 'rm -f "$raw"' EXIT
  cat $TABLE_ONLY >"$raw"
else
if [ -n "${WORKDIR:-}" ]; then
  work=$WORKDIR
  mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/ncsparse-peers.XXXXXX")
  trap 'rm -rf "$work"' EXIT
fi
raw=${RAW:-$work/raw.txt}
: >"$raw"
klist=$(echo "$KS" | tr ' ' ',')

{
  echo "# date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "# host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;" \
    "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
  echo "# config: N=$N DS='$DS' MS='$MS' KS='$KS' THREADS='$THREADS' REPS=$REPS PEERS='$PEERS'"
  echo "# load before: $(uptime | sed 's/.*load average/load average/')"
} | tee -a "$raw"

for d in $DS; do
  input=$work/input_d$d.h5
  if [ ! -f "$input" ]; then
    echo "compare_peers: generating n=$N d=$d -> $input" >&2
    "$build/ncsparse" generate --n "$N" --d "$d" --out "$input" --force >/dev/null
  fi
  for t in $THREADS; do
    export OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t
    for m in $MS; do
      echo "compare_peers: d=$d threads=$t m=$m" >&2
      bl="$build/benchmarks/bench_local_pass --input $input --m $m --threads $t --reps $REPS"
      "$build/benchmarks/bench_local_pass" --n 4096 --d 64 --m 1 --threads "$t" --reps "$REPS" --mode sgemm \
        --k 1 | sed "s/ d=64 m=1 n=4096/ d=$d m=$m n=$N/" >>"$raw"
      $bl --mode gemm --k 1 >>"$raw"
      $bl --mode topk --k "$klist" >>"$raw"
      for peer in $PEERS; do
        [ "$peer" = torch ] && continue
        OMP_WAIT_POLICY=PASSIVE $PY "$root/benchmarks/peers.py" --input "$input" --tool "$peer" --m "$m" \
          --k "$klist" --threads "$t" --reps "$REPS" >>"$raw"
      done
      $bl --mode exact --k 16 >>"$raw"
      case " $PEERS " in *" torch "*)
        OMP_WAIT_POLICY=PASSIVE $PY "$root/benchmarks/peers.py" --input "$input" --tool torch --m "$m" --k 16 \
          --threads "$t" --reps "$REPS" >>"$raw" ;;
      esac
    done
  done
  [ -n "${WORKDIR:-}" ] || rm -f "$input"
done
echo "# load after: $(uptime | sed 's/.*load average/load average/')" | tee -a "$raw"
fi

$PY - "$raw" <<'EOF'
import sys
rows = {}
for line in open(sys.argv[1]):
    if line.startswith("#") or "=" not in line:
        continue
    f = dict(kv.split("=", 1) for kv in line.split())
    tool = f.get("mode") or f.get("tool")
    key = (int(f["d"]), int(f["m"]), int(f["threads"]))
    rows.setdefault(key, {})[(tool, int(f["K"]))] = float(f["median_s"])

def fmt(x):
    return "–" if x is None else (f"{x:.3f}" if x < 10 else f"{x:.1f}")

def ratio(a, b):
    return "–" if a is None or b is None else f"{a / b:.2f}"

n = None
for line in open(sys.argv[1]):
    if "n=" in line and not line.startswith("#"):
        n = int(dict(kv.split("=", 1) for kv in line.split())["n"])
        break
print()
print("| d | m | thr | K | ncsparse top-k s | bare GEMM s | top-k/GEMM | FAISS s | FAISS/ncs | numpy s | numpy/ncs "
      "| exact s | exact GFLOP/s | % of sgemm | torch s | torch/ncs |")
print("|" + "---|" * 16)
for (d, m, t), r in sorted(rows.items()):
    gemm = r.get(("gemm", 1))
    sg = r.get(("sgemm", 1))
    sg_rate = 2 * 2048**3 / sg * 1e-9 if sg else None
    ex = r.get(("exact", 16))
    ex_rate = 4 * m * n * d / ex * 1e-9 if ex else None
    torch = r.get(("torch", 16))
    ks = sorted(k for (tool, k) in r if tool == "topk")
    for i, k in enumerate(ks):
        tk = r.get(("topk", k))
        fa, nu = r.get(("faiss", k)), r.get(("numpy", k))
        first = i == 0
        print(f"| {d} | {m} | {t} | {k} | {fmt(tk)} | {fmt(gemm)} | {ratio(tk, gemm)} | {fmt(fa)} | {ratio(fa, tk)} "
              f"| {fmt(nu)} | {ratio(nu, tk)} | "
              + (f"{fmt(ex)} | {ex_rate:.1f} | {100 * ex_rate / sg_rate:.0f}% of {sg_rate:.1f} | {fmt(torch)} | {ratio(torch, ex)} |"
                 if first and ex and sg_rate else "| | | | |"))
print()
print("Seconds are medians; ratios > 1 mean ncsparse is faster (top-k/GEMM: the pass over its bare score GEMMs).")
print("exact GFLOP/s counts 4·m·n·d; % of sgemm compares with a square 2048³ cblas_sgemm on the same threads.")
EOF
