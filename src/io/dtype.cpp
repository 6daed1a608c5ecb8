#include "io/dtype.hpp"

#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "ncsparse/error.hpp"

namespace ncsparse::io {

std::string to_string(Dtype t) {
  switch (t) {
    case Dtype::Float16:
      return "float16";
    case Dtype::BFloat16:
      return "bfloat16";
    case Dtype::Float32:
      return "float32";
    case Dtype::Float64:
      return "float64";
  }
  return "?";
}

Dtype parse_dtype(const std::string& text) {
  if (text == "float16") return Dtype::Float16;
  if (text == "bfloat16") return Dtype::BFloat16;
  if (text == "float32") return Dtype::Float32;
  if (text == "float64") return Dtype::Float64;
  throw usage_error("--dtype: unknown element type '" + text + "' (use float32, float64, float16 or bfloat16)");
}

namespace {

// float16 → float with F16C, 8 values per instruction (compiled for it; called only after the
// run-time check).
__attribute__((target("avx,f16c"))) void widen_half_f16c(const std::uint16_t* src, float* dst, std::size_t n) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  }
  for (; i < n; ++i) dst[i] = half_to_float(src[i]);
}

bool have_f16c() {
  static const bool f16c = [] {
    // F16C from CPUID itself: clang 14's __builtin_cpu_supports does not know "f16c".
    __builtin_cpu_init();
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __builtin_cpu_supports("avx") && __get_cpuid(1, &a, &b, &c, &d) != 0 && (c & bit_F16C) != 0;
  }();
  return f16c;
}

}  // namespace

void widen(Dtype t, const std::uint16_t* src, float* dst, std::size_t n) {
  if (t == Dtype::BFloat16) {
    for (std::size_t i = 0; i < n; ++i) dst[i] = bf16_to_float(src[i]);
  } else if (have_f16c()) {
    widen_half_f16c(src, dst, n);
  } else {
    for (std::size_t i = 0; i < n; ++i) dst[i] = half_to_float(src[i]);
  }
}

void widen_in_place(Dtype t, float* buf, std::size_t n) {
  // Front to back in blocks of kBlock values, each copied out before its floats are written.
  // The floats of a block [i, i + kBlock) end at byte 4(i + kBlock); the 16-bit values of the
  // blocks after it start at byte 2n + 2(i + kBlock), which is not below that while
  // i + kBlock ≤ n: writing never reaches a value not yet read.
  constexpr std::size_t kBlock = 2048;
  std::uint16_t block[kBlock];
  const auto* src = reinterpret_cast<const unsigned char*>(buf) + 2 * n;
  for (std::size_t i = 0; i < n; i += kBlock) {
    const std::size_t m = std::min(kBlock, n - i);
    std::memcpy(block, src + 2 * i, 2 * m);
    widen(t, block, buf + i, m);
  }
}

// The first non-finite value of x[0, count), or count: a branch-free scan of the exponent bits
// (vectorised), then a search only where one was found.
std::size_t first_non_finite(const float* x, std::size_t count) {
  constexpr std::uint32_t kExp = 0x7f800000u;
  constexpr std::size_t kStep = std::size_t{1} << 16;
  for (std::size_t i0 = 0; i0 < count; i0 += kStep) {
    const std::size_t i1 = std::min(count, i0 + kStep), n = i1 - i0;
    const float* p = x + i0;
    // Bit 31 of (exponent bits + one exponent step) is set exactly when the exponent is all
    // ones (Inf or NaN): and, add, or only. The function stays out of line (in its own file):
    // inlined into H5Input::map, GCC 12 left this loop scalar (a quarter of attend's samples).
    std::uint32_t any = 0;
    for (std::size_t i = 0; i < n; ++i) {
      std::uint32_t b;
      std::memcpy(&b, p + i, sizeof b);
      any |= (b & kExp) + 0x00800000u;
    }
    if ((any >> 31) != 0) {
      for (std::size_t i = i0; i < i1; ++i) {
        if (!std::isfinite(x[i])) return i;
      }
    }
  }
  return count;
}

std::string bad_value_text(const std::string& source, const std::string& what, const std::string& tensor,
                           std::int64_t row, std::int64_t col, std::int64_t head) {
  return source + ": " + what + " in " + tensor + " row " + std::to_string(row) + ", column " + std::to_string(col) +
         (head >= 0 ? " of head " + std::to_string(head) : "") +
         " (ncsparse rejects NaN, Inf and values beyond the float range: clean the input)";
}

std::string beyond_float_text(double x) {
  char text[64];
  std::snprintf(text, sizeof text, "value %.6g (beyond the float32 range)", x);
  return text;
}

}  // namespace ncsparse::io
