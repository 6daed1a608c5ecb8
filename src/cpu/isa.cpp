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

}  // namespace ncsparse::cpu
