#!/usr/bin/env bash
# The CPU backend's *_avx2.cpp files are compiled with -mavx2 -mfma and run only after the
# run-time check. Two things would let AVX2 code run on a CPU without it:
#   1. an inline or template function (a weak symbol) defined both in an AVX2 object and in a
#      portable one: the linker keeps one copy, maybe the AVX2 one, for both callers;
#   2. AVX instructions in a portable object.
# This checks both on the object files of the kernels library (arguments: every object file).
set -euo pipefail
avx2=() portable=()
IFS=';' read -r -a objects <<<"$*"  # CTest may pass the object list as one ;-separated argument
IFS=' ' read -r -a objects <<<"${objects[*]}"
for o in "${objects[@]}"; do
  case "$o" in
    */src/cpu/*_avx2.cpp.o) avx2+=("$o") ;;
    */src/cpu/*.cpp.o) portable+=("$o") ;;
  esac
done
[ ${#avx2[@]} -gt 0 ] && [ ${#portable[@]} -gt 0 ] || { echo "no CPU backend objects among the arguments" >&2; exit 1; }
# Weak code and data; DW.ref.* are the personality-routine pointers of exception tables (no code).
weak() { nm --defined-only "$@" 2>/dev/null | awk '$2 ~ /^[WVu]$/ && $3 !~ /^DW\.ref\./ {print $3}' | sort -u; }
shared=$(comm -12 <(weak "${avx2[@]}") <(weak "${portable[@]}"))
fail=0
if [ -n "$shared" ]; then
  echo "weak symbols defined in both AVX2 and portable objects (the linker may give the portable path the AVX2 copy):" >&2
  echo "$shared" | c++filt | head -20 >&2
  fail=1
fi
for o in "${portable[@]}"; do
  if objdump -d --no-show-raw-insn "$o" | grep -E '%ymm|\bv[a-z0-9]+[[:space:]].*%xmm' >/dev/null; then
    echo "$o: AVX instructions in a portable object" >&2
    fail=1
  fi
done
[ $fail -eq 0 ] && echo "ok: ${#avx2[@]} AVX2 objects share no weak symbol with ${#portable[@]} portable ones, which hold no AVX instructions"
exit $fail
