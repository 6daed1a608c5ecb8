#include "core/host_buffer.hpp"

#include <sys/mman.h>

#include <cstdlib>
#include <new>

namespace ncsparse::detail {

void* allocate_host(std::size_t bytes) {
  constexpr std::size_t kHuge = std::size_t{2} << 20, kLarge = std::size_t{4} << 20;
  void* p = nullptr;
  if (bytes >= kLarge) {
    p = std::aligned_alloc(kHuge, (bytes + kHuge - 1) / kHuge * kHuge);
    if (p != nullptr) madvise(p, bytes, MADV_HUGEPAGE);  // a hint: ignored where THP is off
  } else {
    p = std::malloc(bytes);
  }
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void FreeHost::operator()(void* p) const { std::free(p); }

}  // namespace ncsparse::detail
