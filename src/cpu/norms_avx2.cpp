// max_row_norm_sq with rows in the lanes: 4 rows at a time (two groups of 4 for independent
// chains), 4 columns of each loaded, widened to double and transposed, then added column by
// column, so that each lane sums its row in column order as the portable loop does: the same
// bits (cpu/norms.hpp). Measured in cache at d = 64: about twice as fast as gathering a column.
#include <immintrin.h>

#include <algorithm>

#include "cpu/norms.hpp"

namespace ncsparse::cpu::avx2 {

namespace {

// Adds columns c..c+3 of rows b, b + d, b + 2d, b + 3d to the lanes of s, column c first.
[[gnu::always_inline]] inline __m256d add_four_columns(__m256d s, const float* b, std::int64_t d) {
  const __m256d r0 = _mm256_cvtps_pd(_mm_loadu_ps(b));
  const __m256d r1 = _mm256_cvtps_pd(_mm_loadu_ps(b + d));
  const __m256d r2 = _mm256_cvtps_pd(_mm_loadu_ps(b + 2 * d));
  const __m256d r3 = _mm256_cvtps_pd(_mm_loadu_ps(b + 3 * d));
  const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
  const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
  const __m256d c0 = _mm256_permute2f128_pd(t0, t2, 0x20), c1 = _mm256_permute2f128_pd(t1, t3, 0x20);
  const __m256d c2 = _mm256_permute2f128_pd(t0, t2, 0x31), c3 = _mm256_permute2f128_pd(t1, t3, 0x31);
  s = _mm256_add_pd(s, _mm256_mul_pd(c0, c0));
  s = _mm256_add_pd(s, _mm256_mul_pd(c1, c1));
  s = _mm256_add_pd(s, _mm256_mul_pd(c2, c2));
  return _mm256_add_pd(s, _mm256_mul_pd(c3, c3));
}

// Adds column c of the four rows.
[[gnu::always_inline]] inline __m256d add_column(__m256d s, const float* b, std::int64_t d) {
  const __m256d col = _mm256_setr_pd(b[0], b[d], b[2 * d], b[3 * d]);
  return _mm256_add_pd(s, _mm256_mul_pd(col, col));
}

// max_pd(a, b) gives b when a is NaN: a NaN row is skipped, as std::max skips it.
[[gnu::always_inline]] inline __m256d keep_max(__m256d best, __m256d s) { return _mm256_max_pd(s, best); }

}  // namespace

double max_row_norm_sq(const float* x, std::int64_t rows, std::int64_t d) {
  __m256d best = _mm256_setzero_pd();
  std::int64_t j = 0;
  for (; j + 8 <= rows; j += 8) {
    const float* a = x + j * d;
    const float* b = a + 4 * d;
    __m256d sa = _mm256_setzero_pd(), sb = _mm256_setzero_pd();
    std::int64_t c = 0;
    for (; c + 4 <= d; c += 4) {
      sa = add_four_columns(sa, a + c, d);
      sb = add_four_columns(sb, b + c, d);
    }
    for (; c < d; ++c) {
      sa = add_column(sa, a + c, d);
      sb = add_column(sb, b + c, d);
    }
    best = keep_max(keep_max(best, sa), sb);
  }
  for (; j + 4 <= rows; j += 4) {
    const float* a = x + j * d;
    __m256d sa = _mm256_setzero_pd();
    std::int64_t c = 0;
    for (; c + 4 <= d; c += 4) sa = add_four_columns(sa, a + c, d);
    for (; c < d; ++c) sa = add_column(sa, a + c, d);
    best = keep_max(best, sa);
  }
  alignas(32) double lane[4];
  _mm256_store_pd(lane, best);
  const double most = std::max(std::max(lane[0], lane[1]), std::max(lane[2], lane[3]));
  // The last rows (fewer than 4) by the portable loop: a function of the portable object, not an
  // inline copy (tests/cpu/avx2_isolation.sh).
  return std::max(most, max_row_norm_sq_generic(x + j * d, rows - j, d));
}

}  // namespace ncsparse::cpu::avx2
