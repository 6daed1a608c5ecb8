#!/usr/bin/env bash
# HDF5 files on the command line: generate -> attend and run --input agree with the in-memory
# path; bad input files and unusable outputs each give one clear line on stderr (from rank 0),
# the right exit code, no hang, no partial output, and leave every existing file untouched.
# Usage: files_cli.sh NCSPARSE MPIEXEC
set -u
bin=$1
mpiexec=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../support/script_lib.sh"  # tmp, py, ok, fail, error_why, report
run() { timeout 120 "$mpiexec" -q -n "$1" --oversubscribe "$bin" "${@:2}"; }
sums() { (cd "$tmp" && find . -type f ! -name 'out' ! -name 'err' -print0 | sort -z | xargs -0 md5sum); }

# expect CODE PATTERN RANKS ARGS...: exit code, exactly one 'ncsparse: error:' line naming
# PATTERN, nothing on stdout, every file in $tmp unchanged and no new file (no partial output,
# no temporary left behind).
expect() {
  local code=$1 pattern=$2 ranks=$3
  shift 3
  local before
  before=$(sums)
  run "$ranks" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$? why
  why=$(error_why "$rc" "$code" "$pattern")
  [ -z "$why" ] && [ "$before" != "$(sums)" ] && why="files in the test directory changed"
  report "ncsparse $* (np $ranks)" "$rc" "$why"
}

# ---- round trips through the command line ----
run 2 generate --n 40 --d 8 --out "$tmp/good.h5" || fail "generate"
"$py" "$here/make_files.py" "$tmp" "$tmp/good.h5" || fail "make_files.py"
strip() { "$py" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(json.dumps([j["strategies"], j.get("sparsity")], sort_keys=True))' "$1"; }
win=(--window const:4 log:1 cert:0.1 mass:0.2 sink:1,3)
for np in 1 3; do
  run "$np" run --n 40 --d 8 --queries 40 "${win[@]}" --causal --format json >"$tmp/a.json" 2>"$tmp/err" &&
    run "$np" run --input "$tmp/good.h5" --queries 40 "${win[@]}" --causal --format json >"$tmp/b.json" 2>>"$tmp/err" &&
    [ "$(strip "$tmp/a.json")" = "$(strip "$tmp/b.json")" ] && ok "run --input == run (np $np)" ||
    { fail "run --input differs from run (np $np)"; cat "$tmp/err"; }
done
# attend: /O of a file equals run_job's; checked in detail by io_roundtrip; here the layout.
run 3 attend --input "$tmp/good.h5" "${win[@]}" --exact --save-lists --save-cert --out "$tmp/o.h5" >"$tmp/out" 2>"$tmp/err" &&
  "$py" - "$tmp/o.h5" <<'PY' && ok "attend layout" || { fail "attend layout"; cat "$tmp/err"; }
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
assert f["O/const:4"].shape == (40, 8) and f["O/const:4"].dtype == np.float32
assert f["O/const:4"].attrs["window"] == b"const:4"
assert f["lists/index"].dtype == np.int64 and f["lists/score"].shape == f["lists/index"].shape
assert f["O_exact"].shape == (40, 8) and f["stats/mass:0.2/out_l2"].shape == (40,)
assert np.all(f["stats/const:4/k"][...] == 4) and np.all(np.isfinite(f["stats/cert:0.1/cert_out"][...]))
assert f.attrs["windows"] == b"const:4 log:1 cert:0.1 mass:0.2 sink:1,3" and f.attrs["exact"] == 1
assert sorted(p for p in __import__("os").listdir(__import__("os").path.dirname(sys.argv[1])) if ".tmp-" in p) == []
PY
rm -f "$tmp/o.h5"
# Accepted storage: deflate + shuffle + fletcher32, a soft link, big-endian V; same as good.h5.
run 2 attend --input "$tmp/deflate.h5" --window const:4 --out "$tmp/o1.h5" >/dev/null 2>"$tmp/err" &&
  run 2 attend --input "$tmp/good.h5" --window const:4 --out "$tmp/o2.h5" >/dev/null 2>>"$tmp/err" &&
  "$py" -c 'import sys,h5py,numpy as np; a,b=(h5py.File(p,"r")["O/const:4"][...] for p in sys.argv[1:]); assert np.array_equal(a,b)' "$tmp/o1.h5" "$tmp/o2.h5" &&
  ok "deflate/shuffle/fletcher32 + soft link + big-endian accepted" || { fail "deflate file"; cat "$tmp/err"; }
# Contiguous float32 K and V are read in place (mapped from the page cache); through HDF5's
# reads (NCSPARSE_NO_MMAP=1) and behind a user block the outputs and lists are identical.
same3() {
  "$py" -c 'import sys,h5py,numpy as np
fs=[h5py.File(p,"r") for p in sys.argv[1:]]
for key in ("O/const:4","O/cert:0.1","O_exact","lists/index","lists/score"):
    a=fs[0][key][...]
    assert all(np.array_equal(a,f[key][...]) for f in fs[1:]), key' "$@"
}
rm -f "$tmp"/o[123].h5
run 3 attend --input "$tmp/good.h5" --window const:4 cert:0.1 --exact --save-lists --out "$tmp/o1.h5" >/dev/null 2>"$tmp/err" &&
  NCSPARSE_NO_MMAP=1 run 3 attend --input "$tmp/good.h5" --window const:4 cert:0.1 --exact --save-lists --out "$tmp/o2.h5" >/dev/null 2>>"$tmp/err" &&
  run 3 attend --input "$tmp/userblock.h5" --window const:4 cert:0.1 --exact --save-lists --out "$tmp/o3.h5" >/dev/null 2>>"$tmp/err" &&
  same3 "$tmp/o1.h5" "$tmp/o2.h5" "$tmp/o3.h5" &&
  ok "K, V in place == read by HDF5 == behind a user block (np 3)" || { fail "in-place K, V"; cat "$tmp/err"; }
rm -f "$tmp"/o[123].h5
# A chunked float32 file reads as the contiguous one; bfloat16 tagged by h5py (a UTF-8 str
# attribute) reads as its values widened to float32.
run 3 attend --input "$tmp/chunked.h5" --window const:4 cert:0.1 --exact --save-lists --out "$tmp/o1.h5" >/dev/null 2>"$tmp/err" &&
  run 3 attend --input "$tmp/good.h5" --window const:4 cert:0.1 --exact --save-lists --out "$tmp/o2.h5" >/dev/null 2>>"$tmp/err" &&
  same3 "$tmp/o1.h5" "$tmp/o2.h5" &&
  ok "chunked float32 == contiguous (np 3)" || { fail "chunked float32"; cat "$tmp/err"; }
rm -f "$tmp"/o[123].h5
run 2 attend --input "$tmp/bf16_h5py.h5" --window const:4 cert:0.1 --exact --save-lists --out "$tmp/o1.h5" >/dev/null 2>"$tmp/err" &&
  run 2 attend --input "$tmp/bf16_as_f32.h5" --window const:4 cert:0.1 --exact --save-lists --out "$tmp/o2.h5" >/dev/null 2>>"$tmp/err" &&
  same3 "$tmp/o1.h5" "$tmp/o2.h5" &&
  ok "bfloat16 tagged by h5py (UTF-8 attribute) == its float32 values (np 2)" || { fail "bfloat16 from h5py"; cat "$tmp/err"; }
rm -f "$tmp"/o[123].h5
# Grouped-query attention: query head 3 of 4 uses kv head 1 of 2.
run 2 attend --input "$tmp/gqa.h5" --heads-kv 2 --window const:5 --out "$tmp/o1.h5" --force >/dev/null 2>"$tmp/err" &&
  run 2 attend --input "$tmp/gqa_head3.h5" --window const:5 --out "$tmp/o2.h5" --force >/dev/null 2>>"$tmp/err" &&
  "$py" -c 'import sys,h5py,numpy as np; a=h5py.File(sys.argv[1],"r")["O/const:5"][3]; b=h5py.File(sys.argv[2],"r")["O/const:5"][...]; assert a.shape==b.shape and np.array_equal(a,b)' "$tmp/o1.h5" "$tmp/o2.h5" &&
  ok "grouped-query attention head mapping" || { fail "gqa"; cat "$tmp/err"; }
# 16-bit generate: float16 is an HDF5 IEEE half, bfloat16 uint16 + attribute; attend reads both.
for t in float16 bfloat16; do
  run 2 generate --n 40 --d 8 --heads 2 --dtype $t --out "$tmp/$t.h5" 2>"$tmp/err" &&
    run 2 attend --input "$tmp/$t.h5" --window const:4 --out "$tmp/o_$t.h5" >/dev/null 2>>"$tmp/err" &&
    "$py" -c 'import sys,h5py; f=h5py.File(sys.argv[1],"r"); k=f["K"]; assert k.shape==(2,40,8); assert (k.dtype.name=="float16") if sys.argv[2]=="float16" else (k.dtype.name=="uint16" and k.attrs["ncsparse_dtype"]==b"bfloat16"); assert f.attrs["dtype"]==sys.argv[2].encode()' "$tmp/$t.h5" $t &&
    ok "generate --dtype $t" || { fail "generate --dtype $t"; cat "$tmp/err"; }
done
rm -f "$tmp"/o*.h5 "$tmp"/*.json

# ---- bad inputs ----
w=(--window const:4)
for np in 1 2 4; do
  expect 66 "$tmp/none.h5: No such file" $np attend --input "$tmp/none.h5" "${w[@]}" --out "$tmp/o.h5"
  expect 65 "not an HDF5 file" $np attend --input "$tmp/random.h5" "${w[@]}" --out "$tmp/o.h5"
done
expect 65 "truncated" 2 attend --input "$tmp/truncated.h5" "${w[@]}" --out "$tmp/o.h5"
expect 65 "no dataset '/V'" 2 attend --input "$tmp/missing_v.h5" "${w[@]}" --out "$tmp/o.h5"
expect 65 "no dataset '/X'" 2 attend --input "$tmp/good.h5" --q /X "${w[@]}" --out "$tmp/o.h5"
expect 65 "has shape (40): expected (n, d) or (heads, n, d)" 2 attend --input "$tmp/rank1.h5" "${w[@]}" --out "$tmp/o.h5"
expect 65 "has shape (1, 1, 40, 8)" 3 attend --input "$tmp/rank4.h5" "${w[@]}" --out "$tmp/o.h5"
expect 65 "must have the same d" 2 attend --input "$tmp/q_other_d.h5" "${w[@]}" --out "$tmp/o.h5"
expect 65 "must have the same shape" 2 attend --input "$tmp/v_other_n.h5" "${w[@]}" --out "$tmp/o.h5"
expect 65 "Q has 80 rows but K only 40" 2 attend --input "$tmp/q_longer.h5" "${w[@]}" --out "$tmp/o.h5"
expect 65 "holds int32, which ncsparse does not convert" 2 attend --input "$tmp/int32.h5" "${w[@]}" --out "$tmp/o.h5"
expect 65 "holds uint16" 2 attend --input "$tmp/uint16_no_attr.h5" "${w[@]}" --out "$tmp/o.h5"
expect 65 "rank 2: $tmp/nan_k_row30.h5: NaN in dataset '/K' row 30" 3 attend --input "$tmp/nan_k_row30.h5" "${w[@]}" --out "$tmp/o.h5"
expect 65 "rank 1: $tmp/nan_k_row30.h5: NaN in dataset '/K' row 30" 2 run --input "$tmp/nan_k_row30.h5" "${w[@]}" --queries 4
expect 65 "rank 0: $tmp/nan_k_row30.h5: NaN in dataset '/K' row 30" 1 attend --input "$tmp/nan_k_row30.h5" "${w[@]}" --out "$tmp/o.h5"
expect 65 "rank 0: $tmp/inf_v_row5.h5: Inf in dataset '/V' row 5" 3 attend --input "$tmp/inf_v_row5.h5" "${w[@]}" --out "$tmp/o.h5"
expect 65 "NaN in dataset '/Q' row 7" 2 attend --input "$tmp/nan_q_row7.h5" "${w[@]}" --out "$tmp/o.h5"
expect 65 "beyond the float32 range" 2 attend --input "$tmp/f64_huge.h5" "${w[@]}" --out "$tmp/o.h5"
expect 65 "external or user-defined link" 2 attend --input "$tmp/external_link.h5" "${w[@]}" --out "$tmp/o.h5"
expect 65 "keeps its data in external files" 2 attend --input "$tmp/external_storage.h5" "${w[@]}" --out "$tmp/o.h5"
expect 65 "is a virtual dataset" 2 attend --input "$tmp/virtual.h5" "${w[@]}" --out "$tmp/o.h5"
expect 65 "uses filter 32000" 2 attend --input "$tmp/lzf.h5" "${w[@]}" --out "$tmp/o.h5"
# A file on which HDF5 1.10 itself crashes in H5Fopen (its root group's B-tree address is all
# ones; found by fuzz_h5_input): one rank reads it with the serial driver and the fault becomes
# one line and 65; ranks > 1 read through MPI-IO, which refuses it (Open MPI adds a line of its
# own there, so only the code and the missing output are checked).
lib_crash=$here/../fuzz/regressions/h5_library/segv-accumulator-undefined-btree-address
expect 65 "$lib_crash: the HDF5 library crashed (SIGSEGV) reading this file" 1 \
  attend --input "$lib_crash" "${w[@]}" --out "$tmp/o.h5"
run 2 attend --input "$lib_crash" "${w[@]}" --out "$tmp/o.h5" >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc -eq 65 ] && [ ! -e "$tmp/o.h5" ]; then ok "library-crash file at np 2 -> 65"; else fail "library-crash file at np 2 -> $rc"; fi
# ---- usage ----
expect 64 "needs the exact pass (add --exact)" 2 attend --input "$tmp/good.h5" --window mass:0.1 --out "$tmp/o.h5"
expect 64 "--n: not allowed with --input" 2 run --input "$tmp/good.h5" --n 40 "${w[@]}"
expect 64 "--heads-kv 3" 2 attend --input "$tmp/gqa.h5" --heads-kv 3 "${w[@]}" --out "$tmp/o.h5"
expect 64 "--queries: 41 is more than the 40 rows" 2 attend --input "$tmp/good.h5" --queries 41 "${w[@]}" --out "$tmp/o.h5"
expect 64 "--queries: must be >= 1, got 0" 2 attend --input "$tmp/good.h5" --queries 0 "${w[@]}" --out "$tmp/o.h5"
expect 64 "--q: give a dataset name" 2 attend --input "$tmp/good.h5" --q '' "${w[@]}" --out "$tmp/o.h5"
expect 66 "$tmp: is a directory" 2 attend --input "$tmp" "${w[@]}" --out "$tmp/o.h5"
expect 64 "--v: give a dataset name" 2 run --input "$tmp/good.h5" --v '' "${w[@]}"
expect 64 "--head: must be >= 0, got -1" 2 run --input "$tmp/good.h5" --head -1 "${w[@]}"
expect 64 "--dtype: unknown element type 'int8'" 2 generate --n 10 --d 4 --dtype int8 --out "$tmp/g.h5"
# ---- outputs that cannot be made ----
for np in 1 2 3; do
  expect 73 "$tmp/good.h5: exists (use --force" $np generate --n 10 --d 4 --out "$tmp/good.h5"
  expect 73 "$tmp/good.h5: exists (use --force" $np attend --input "$tmp/gqa.h5" "${w[@]}" --out "$tmp/good.h5"
done
expect 73 "directory '$tmp/nodir'" 2 generate --n 10 --d 4 --out "$tmp/nodir/g.h5"
expect 73 "directory '$tmp/good.h5'" 2 attend --input "$tmp/gqa.h5" "${w[@]}" --out "$tmp/good.h5/o.h5"
# Read-only even for root: sysfs refuses new files.
expect 73 "/sys/ncsparse-test.h5: cannot create the output" 2 generate --n 10 --d 4 --out /sys/ncsparse-test.h5
expect 73 "/sys/ncsparse-test.h5: cannot create the output" 1 attend --input "$tmp/good.h5" "${w[@]}" --out /sys/ncsparse-test.h5
# --force replaces, atomically.
run 2 generate --n 12 --d 4 --out "$tmp/good.h5" --force 2>"$tmp/err" &&
  "$py" -c 'import sys,h5py; assert h5py.File(sys.argv[1],"r")["K"].shape==(12,4)' "$tmp/good.h5" &&
  ok "--force replaces an existing file" || { fail "--force"; cat "$tmp/err"; }

echo "files: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
