#!/usr/bin/env bash
# Usage: run_fuzz.sh HARNESS SECONDS REGRESSIONS_DIR SEED_DIR...
# Replays every file of REGRESSIONS_DIR (inputs that once crashed: each must now pass), then
# fuzzes for SECONDS from the seeds into a temporary corpus (the seed folders are only read).
# Exit 0 when nothing crashed; otherwise libFuzzer's non-zero status, with the crashing input
# kept as $NCSPARSE_FUZZ_ARTIFACTS/crash-* (default: a temporary folder, printed): add it to
# REGRESSIONS_DIR once fixed. NCSPARSE_FUZZ_CORPUS names a corpus folder to keep and reuse.
set -euo pipefail
harness=$1 seconds=$2 regressions=$3
shift 3
work=$(mktemp -d "${TMPDIR:-/tmp}/ncsparse-fuzz.XXXXXX")
corpus=${NCSPARSE_FUZZ_CORPUS:-$work/corpus}
artifacts=${NCSPARSE_FUZZ_ARTIFACTS:-$work}
mkdir -p "$corpus" "$artifacts"
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

seeds=()
for d in "$@"; do [ -d "$d" ] && seeds+=("$d"); done
echo "$name: fuzzing for $seconds s from ${seeds[*]} (corpus $corpus, artifacts $artifacts)"
status=0
"$harness" "${opts[@]}" -max_total_time="$seconds" "$corpus" "${seeds[@]}" || status=$?
if [ $status -ne 0 ]; then
  echo "$name: FAILED (exit $status); crashing inputs kept in $artifacts:" >&2
  ls -l "$artifacts" >&2
  exit $status
fi
echo "$name: corpus $(ls "$corpus" | wc -l) files"
[ -n "${NCSPARSE_FUZZ_ARTIFACTS:-}" ] || [ -n "${NCSPARSE_FUZZ_CORPUS:-}" ] || rm -rf "$work"
