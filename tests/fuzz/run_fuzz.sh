#!/usr/bin/env bash
# Usage: run_fuzz.sh [--library-crashes DIR] HARNESS SECONDS REGRESSIONS_DIR SEED_DIR...
# Replays every file of REGRESSIONS_DIR (inputs that once crashed: each must now pass), then
# fuzzes for SECONDS from the seeds into a temporary corpus (the seed folders are only read).
# Exit 0 when nothing of ours crashed; otherwise libFuzzer's non-zero status, with the crashing
# input kept as $NCSPARSE_FUZZ_ARTIFACTS/crash-* (default: a temporary folder, printed): add it
# to REGRESSIONS_DIR once fixed. NCSPARSE_FUZZ_CORPUS names a corpus folder to keep and reuse.
#
# --library-crashes DIR (fuzz_h5_input): HDF5 1.10 itself faults on some corrupt files, inside
# H5Fopen, before any check of ours can run. ncsparse turns such a fault into one line and exit
# 65 (h5::UntrustedFileScope), and so does the harness, after writing the input to
# $NCSPARSE_FUZZ_LIBRARY_CRASHES. Each file of DIR (such inputs, kept) must end that way; a
# library fault found while fuzzing is kept, counted and printed, and fuzzing goes on with the
# time left (at most 50 such restarts). Any other crash, report or exit code fails.
set -euo pipefail
library_regressions=
if [ "${1:-}" = --library-crashes ]; then
  library_regressions=$2
  shift 2
fi
harness=$1 seconds=$2 regressions=$3
shift 3
work=$(mktemp -d "${TMPDIR:-/tmp}/ncsparse-fuzz.XXXXXX")
corpus=${NCSPARSE_FUZZ_CORPUS:-$work/corpus}
artifacts=${NCSPARSE_FUZZ_ARTIFACTS:-$work}
library=$artifacts/library-crashes
mkdir -p "$corpus" "$artifacts" "$library"
export NCSPARSE_FUZZ_LIBRARY_CRASHES=$library
name=$(basename "$harness")
# A single malloc may be large: HDF5 1.10 sizes some buffers from fields of the file (4 GB from
# a 5 KB corrupt file, regressions/h5_input/oom-*), untouched and freed when it fails. What is
# really used stays bounded by the RSS limit.
opts=(-timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=65536 -print_final_stats=1 -artifact_prefix="$artifacts/")

shopt -s nullglob
replay=("$regressions"/*)
if [ ${#replay[@]} -gt 0 ]; then
  echo "$name: replaying ${#replay[@]} regression inputs from $regressions"
  "$harness" "${opts[@]}" "${replay[@]}"
fi
if [ -n "$library_regressions" ]; then
  for f in "$library_regressions"/*; do
    status=0
    "$harness" "${opts[@]}" "$f" >"$work/replay.log" 2>&1 || status=$?
    if [ $status -ne 65 ] || ! grep -q 'the HDF5 library crashed' "$work/replay.log"; then
      cat "$work/replay.log"
      echo "$name: $f: expected the one line and exit 65 of a fault inside HDF5, got exit $status" >&2
      exit 1
    fi
    echo "$name: $(basename "$f"): a fault inside HDF5, ended as ncsparse ends it (one line, exit 65)"
  done
fi

seeds=()
for d in "$@"; do [ -d "$d" ] && seeds+=("$d"); done
echo "$name: fuzzing for $seconds s from ${seeds[*]} (corpus $corpus, artifacts $artifacts)"
deadline=$((SECONDS + seconds))
restarts=0
while :; do
  left=$((deadline - SECONDS))
  [ $left -ge 1 ] || break
  touch "$work/stamp"
  sleep 0.01  # a file written from now on is newer than the stamp
  status=0
  "$harness" "${opts[@]}" -max_total_time="$left" "$corpus" "${seeds[@]}" || status=$?
  [ $status -eq 0 ] && break
  new=$(find "$library" -type f -newer "$work/stamp" | head -n 1)
  if [ $status -eq 65 ] && [ -n "$new" ] && [ $restarts -lt 50 ]; then
    restarts=$((restarts + 1))
    echo "$name: a fault inside the HDF5 library (ended as ncsparse ends it: one line, exit 65); input kept as $new; fuzzing goes on for the $((deadline - SECONDS)) s left"
    continue
  fi
  echo "$name: FAILED (exit $status); crashing inputs kept in $artifacts:" >&2
  ls -l "$artifacts" >&2
  exit $status
done
echo "$name: corpus $(ls "$corpus" | wc -l) files; $restarts fault(s) inside the HDF5 library"
if [ $restarts -gt 0 ]; then
  echo "$name: the inputs that crashed HDF5 are kept in $library (add new kinds to the library regressions)"
elif [ -z "${NCSPARSE_FUZZ_ARTIFACTS:-}" ] && [ -z "${NCSPARSE_FUZZ_CORPUS:-}" ]; then
  rm -rf "$work"
fi
