#!/usr/bin/env bash
# Generation rate, new against the issue-16 baseline (the generator of ae8891f), side by side
# in one process (benchmarks/oldgen/driver.cpp), per ISA path and thread count:
#
#   benchmarks/bench_generator.sh [BUILD_DIR]     (default build; needs git history and g++)
#
# Compiles ae8891f's src/core/generator.cpp and its header (from git, in namespace
# ncsparse_old) with -O3 -ffp-contract=off beside the driver, links the current libraries of
# BUILD_DIR, and runs each model with the AVX-512 path (where the CPU has it), the AVX2 path
# (NCSPARSE_CPU_ISA=avx2) and the portable one (generic), 1 and 2 threads. OpenBLAS (which the
# old paper model calls) runs on one thread; OPENBLAS_CORETYPE is left as it is.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ncsparse"
git -C "$root" show ae8891f:src/core/generator.cpp |
  sed 's|#include "ncsparse/generator.hpp"|#include "ncsparse/generator_old.hpp"|;
       s|#include "ncsparse/error.hpp"|#include "ncsparse/error.hpp"\nnamespace ncsparse_old { using ncsparse::Error; using ncsparse::usage_error; using ncsparse::kExitUsage; }|;
       s|^namespace ncsparse {|namespace ncsparse_old {|; s|^}  // namespace ncsparse$|}  // namespace ncsparse_old|' >"$work/gen_old.cpp"
git -C "$root" show ae8891f:include/ncsparse/generator.hpp |
  sed 's|^namespace ncsparse {|namespace ncsparse_old {|; s|^}  // namespace ncsparse$|}  // namespace ncsparse_old|' >"$work/ncsparse/generator_old.hpp"
blas_inc=/usr/include/x86_64-linux-gnu/openblas-pthread
flags=(-O3 -std=c++20 -ffp-contract=off -fopenmp -I"$work" -I"$root/include" -I"$blas_inc")
g++ "${flags[@]}" -c "$work/gen_old.cpp" -o "$work/gen_old.o"
g++ "${flags[@]}" "$root/benchmarks/oldgen/driver.cpp" "$work/gen_old.o" -o "$work/driver" \
  "$build/libncsparse_engine.a" "$build/libncsparse_kernels.a" -lopenblas -ldl
echo "# $(date -u +%FT%TZ) $(git -C "$root" rev-parse --short HEAD); $(lscpu | sed -n 's/^Model name: *//p')"
echo "# flags: $(lscpu | sed -n 's/^Flags: *//p' | tr ' ' '\n' | grep -E '^(avx2|fma|avx512f)$' | tr '\n' ' ')"
export OPENBLAS_NUM_THREADS=1
for model in gaussian paper; do
  for isa in "" avx2 generic; do
    for t in 1 2; do
      printf '%-8s ' "${isa:-best}"
      NCSPARSE_CPU_ISA=$isa "$work/driver" "$model" "$t" 262144 7
    done
  done
done
