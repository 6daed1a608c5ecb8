// Which instruction-set path the CPU code takes.
#pragma once

namespace ncsparse::cpu {

// Whether the AVX2 + FMA paths (*_avx2.cpp) run: the CPU has both and the environment variable
// NCSPARSE_CPU_ISA is not `generic` (which forces the portable path, for tests and comparisons).
bool use_avx2();

}  // namespace ncsparse::cpu
