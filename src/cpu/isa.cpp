#include "cpu/isa.hpp"

#include <cstdlib>
#include <cstring>

namespace ncsparse::cpu {

bool use_avx2() {
  static const bool avx2 = [] {
    const char* isa = std::getenv("NCSPARSE_CPU_ISA");
    if (isa != nullptr && std::strcmp(isa, "generic") == 0) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return avx2;
}

bool use_avx512() {
  static const bool avx512 = [] {
    if (!use_avx2()) return false;
    const char* isa = std::getenv("NCSPARSE_CPU_ISA");
    if (isa != nullptr && std::strcmp(isa, "avx2") == 0) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return avx512;
}

}  // namespace ncsparse::cpu
