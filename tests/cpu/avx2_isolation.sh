#!/usr/bin/env bash
# The CPU backend's *_avx2.cpp files are compiled with -mavx2 -mfma, its *_avx512.cpp files
# with -mavx512f, and each runs only after its run-time check. Two things would let such code
# run on a CPU without the instructions:
#   1. an inline or template function (a weak symbol) defined both in an AVX2 or AVX-512 object
#      and in a portable one (or in an AVX-512 object and an AVX2 one): the linker keeps one
#      copy, maybe the wider one, for both callers;
#   2. AVX instructions in a portable object.
# This checks both on the object files of the kernels library (arguments: every object file).
set -euo pipefail
avx2=() avx512=() portable=()
IFS=';' read -r -a objects <<<"$*"  # CTest may pass the object list as one ;-separated argument
IFS=' ' read -r -a objects <<<"${objects[*]}"
for o in "${objects[@]}"; do
  case "$o" in
    */src/cpu/*_avx2.cpp.o) avx2+=("$o") ;;
    */src/cpu/*_avx512.cpp.o) avx512+=("$o") ;;
    */src/cpu/*.cpp.o) portable+=("$o") ;;
  esac
done
[ ${#avx2[@]} -gt 0 ] && [ ${#portable[@]} -gt 0 ] || { echo "no CPU backend objects among the arguments" >&2; exit 1; }
# Weak code and data; DW.ref.* are the personality-routine pointers of exception tables, and
# _ZTI*/_ZTS* the typeinfo objects and names that clang's -fsanitize=function emits for function
# types (the sanitizer builds): constant data, no code.
weak() { nm --defined-only "$@" 2>/dev/null | awk '$2 ~ /^[WVu]$/ && $3 !~ /^DW\.ref\./ && $3 !~ /^_ZT[IS]/ {print $3}' | sort -u; }
shared=$(comm -12 <(weak "${avx2[@]}" "${avx512[@]}") <(weak "${portable[@]}"))
fail=0
if [ -n "$shared" ]; then
  echo "weak symbols defined in both vector-ISA and portable objects (the linker may give the portable path the AVX copy):" >&2
  echo "$shared" | c++filt | head -20 >&2
  fail=1
fi
if [ ${#avx512[@]} -gt 0 ]; then
  shared=$(comm -12 <(weak "${avx512[@]}") <(weak "${avx2[@]}"))
  if [ -n "$shared" ]; then
    echo "weak symbols defined in both AVX-512 and AVX2 objects (the linker may give the AVX2 path the AVX-512 copy):" >&2
    echo "$shared" | c++filt | head -20 >&2
    fail=1
  fi
fi
for o in "${portable[@]}"; do
  if objdump -d --no-show-raw-insn "$o" | grep -E '%ymm|\bv[a-z0-9]+[[:space:]].*%xmm' >/dev/null; then
    echo "$o: AVX instructions in a portable object" >&2
    fail=1
  fi
done
[ $fail -eq 0 ] && echo "ok: ${#avx2[@]} AVX2 and ${#avx512[@]} AVX-512 objects share no weak symbol with ${#portable[@]} portable ones (nor with each other), which hold no AVX instructions"
exit $fail
