// Which instruction-set path the CPU code takes.
#pragma once

namespace ncsparse::cpu {

// Whether the AVX2 + FMA paths (*_avx2.cpp) run: the CPU has both and the environment variable
// NCSPARSE_CPU_ISA is not `generic` (which forces the portable path, for tests and comparisons).
bool use_avx2();

// Whether the AVX-512F paths (*_avx512.cpp: the generator's kernels) run: the CPU has AVX-512F,
// use_avx2() holds, and NCSPARSE_CPU_ISA is not `avx2` (which caps the code at the AVX2 paths).
bool use_avx512();

}  // namespace ncsparse::cpu
