// The generator's bulk kernels on AVX2 + FMA (compiled with -mavx2 -mfma; run only when
// use_avx2()). Same operations in the same order as the portable path (generate.cpp), hence
// the same bits: the standard values are gen_math.hpp's scalar functions, evaluated on 8 Philox
// blocks at once in lane loops that the compiler vectorises; the projection is a register
// blocked kernel whose every element is one in-order chain of fused multiply-adds.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/gen_math.hpp"
#include "cpu/generate.hpp"

namespace ncsparse::cpu::avx2 {

namespace {

constexpr int kLanes = 8;

// 8 Philox blocks into v[c][lane]: lane l is block (row[l], group[l]) (rows relative to s.first).
[[gnu::always_inline]] inline void blocks8(const StandardRows& s, const std::int64_t row[kLanes],
                                           const std::int64_t group[kLanes], float v[4][kLanes]) {
  std::uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    const auto r = static_cast<std::uint64_t>(s.first + row[l]);
    c0[l] = s.tensor;
    c1[l] = static_cast<std::uint32_t>(r);
    c2[l] = static_cast<std::uint32_t>(r >> 32);
    c3[l] = static_cast<std::uint32_t>(group[l]);
  }
  std::uint32_t k0 = static_cast<std::uint32_t>(s.seed), k1 = static_cast<std::uint32_t>(s.seed >> 32);
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    for (int l = 0; l < kLanes; ++l) {
      const std::uint64_t p0 = std::uint64_t{0xD2511F53u} * c0[l], p1 = std::uint64_t{0xCD9E8D57u} * c2[l];
      const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1[l] ^ k0;
      const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3[l] ^ k1;
      c1[l] = static_cast<std::uint32_t>(p1);
      c3[l] = static_cast<std::uint32_t>(p0);
      c0[l] = n0;
      c2[l] = n2;
    }
  }
  if (s.uniform) {
    for (int l = 0; l < kLanes; ++l) {
      v[0][l] = gen::uneg11(c0[l]);
      v[1][l] = gen::uneg11(c1[l]);
      v[2][l] = gen::uneg11(c2[l]);
      v[3][l] = gen::uneg11(c3[l]);
    }
    return;
  }
  for (int l = 0; l < kLanes; ++l) {
    const gen::Pair a = gen::normal_pair(c0[l], c1[l]);
    v[0][l] = a.a;
    v[1][l] = a.b;
  }
  for (int l = 0; l < kLanes; ++l) {
    const gen::Pair b = gen::normal_pair(c2[l], c3[l]);
    v[2][l] = b.a;
    v[3][l] = b.b;
  }
}

[[gnu::always_inline]] inline float post(const StandardRows& s, float x) {
  if (s.post == Post::Clamp) return std::min(std::max(x, -s.b), s.b);
  if (s.post == Post::Scale) return gen::fmul(x, s.b);
  return x;
}

}  // namespace

void standard_rows(const StandardRows& s, float* out) {
  // The blocks in row-major order, 8 at a time; (row, group) advance by counting, not dividing.
  const std::int64_t groups = (s.d + 3) / 4, total = s.rows * groups;
  float v[4][kLanes];
  std::int64_t row[kLanes], group[kLanes];
  std::int64_t next_row = 0, next_group = 0;
  for (std::int64_t f0 = 0; f0 < total; f0 += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      row[l] = next_row;
      group[l] = next_group;
      if (++next_group == groups) next_group = 0, ++next_row;
    }
    blocks8(s, row, group, v);
    for (int l = 0; l < kLanes && f0 + l < total; ++l) {
      float* dst = out + row[l] * s.d + 4 * group[l];
      if (4 * group[l] + 4 <= s.d) {
        dst[0] = post(s, v[0][l]), dst[1] = post(s, v[1][l]), dst[2] = post(s, v[2][l]), dst[3] = post(s, v[3][l]);
      } else {
        for (std::int64_t c = 0; 4 * group[l] + c < s.d; ++c) dst[c] = post(s, v[c][l]);
      }
    }
  }
}

namespace {

// Rows i0 .. i0 + R − 1 (R ≤ 4), columns j0 .. j0 + 15: 2R accumulators, t in order.
template <int R>
[[gnu::always_inline]] inline void block16(const float* x, const float* w, std::int64_t i0, std::int64_t j0,
                                           std::int64_t inner, std::int64_t cols, float* out) {
  __m256 acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (std::int64_t t = 0; t < inner; ++t) {
    const __m256 w0 = _mm256_loadu_ps(w + t * cols + j0), w1 = _mm256_loadu_ps(w + t * cols + j0 + 8);
    for (int r = 0; r < R; ++r) {
      const __m256 a = _mm256_broadcast_ss(x + (i0 + r) * inner + t);
      acc[r][0] = _mm256_fmadd_ps(a, w0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(a, w1, acc[r][1]);
    }
  }
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_ps(out + (i0 + r) * cols + j0, acc[r][0]);
    _mm256_storeu_ps(out + (i0 + r) * cols + j0 + 8, acc[r][1]);
  }
}

}  // namespace

void project_canonical(const float* x, const float* w, std::int64_t rows, std::int64_t inner, std::int64_t cols,
                       float* out) {
  const std::int64_t full = cols - cols % 16;
  std::int64_t i = 0;
  for (; i + 4 <= rows; i += 4) {
    for (std::int64_t j = 0; j < full; j += 16) block16<4>(x, w, i, j, inner, cols, out);
  }
  for (; i < rows; ++i) {
    for (std::int64_t j = 0; j < full; j += 16) block16<1>(x, w, i, j, inner, cols, out);
  }
  // Columns past the last multiple of 16: scalar fused chains (std::fma is vfmadd here).
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t j = full; j < cols; ++j) {
      float acc = 0;
      for (std::int64_t t = 0; t < inner; ++t) acc = std::fma(x[r * inner + t], w[t * cols + j], acc);
      out[r * cols + j] = acc;
    }
  }
}

}  // namespace ncsparse::cpu::avx2
