// AVX2 + FMA building blocks of the fused kernels (kernels_avx2.cpp, exact_avx2.cpp): lane
// helpers, the 6 × 16 score block and the admission of its keys. Only for files compiled with
// -mavx2 -mfma (CMakeLists.txt), and everything here is always inlined, so that no out-of-line
// AVX2 copy of anything exists for the linker to share with the portable path.
#pragma once

#if !defined(__AVX2__) || !defined(__FMA__)
#error "kernels_avx2.hpp is for the *_avx2.cpp files, compiled with -mavx2 -mfma"
#endif

#include <immintrin.h>

#include <cstdint>
#include <limits>
#include <type_traits>

#include "core/score.hpp"
#include "cpu/scan.hpp"

namespace ncsparse::cpu::avx2 {

// Largest of s[0..count) (a max is exact: any order gives the same float on both paths).
[[gnu::always_inline]] inline float row_max(const float* s, std::int64_t count) {
  __m256 m0 = _mm256_set1_ps(-std::numeric_limits<float>::infinity()), m1 = m0;
  std::int64_t j = 0;
  for (; j + 16 <= count; j += 16) {
    m0 = _mm256_max_ps(m0, _mm256_loadu_ps(s + j));
    m1 = _mm256_max_ps(m1, _mm256_loadu_ps(s + j + 8));
  }
  alignas(32) float lane[8];
  _mm256_store_ps(lane, _mm256_max_ps(m0, m1));
  float best = lane[0];
  for (int u = 1; u < 8; ++u) best = best < lane[u] ? lane[u] : best;
  for (; j < count; ++j) best = best < s[j] ? s[j] : best;
  return best;
}

// fast_exp_nonpos (core/fastexp.hpp) on 8 lanes, rounding as the scalar function does.
struct ExpOps {
  using V = __m256;
  [[gnu::always_inline]] static V set1(float a) { return _mm256_set1_ps(a); }
  [[gnu::always_inline]] static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  [[gnu::always_inline]] static V max(V a, V b) { return _mm256_max_ps(a, b); }
  [[gnu::always_inline]] static V round(V t) {
    return _mm256_sub_ps(_mm256_add_ps(t, _mm256_set1_ps(12582912.0f)), _mm256_set1_ps(12582912.0f));
  }
  [[gnu::always_inline]] static V fma(V a, V b, V c) { return _mm256_add_ps(_mm256_mul_ps(a, b), c); }
  [[gnu::always_inline]] static V fnma(V a, V b, V c) { return _mm256_sub_ps(c, _mm256_mul_ps(a, b)); }
  [[gnu::always_inline]] static V pow2(V n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23));
  }
};
// The same polynomial with fused multiply-adds and a rounding instruction: 15 operations
// instead of 25, and rounded differently in the last bit. For the fused exact pass only, whose
// scores differ from the portable path's in the last bits anyway.
struct FmaExpOps : ExpOps {
  [[gnu::always_inline]] static V round(V t) {
    return _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  [[gnu::always_inline]] static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  [[gnu::always_inline]] static V fnma(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
  [[gnu::always_inline]] static V pow2(V n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
  }
};

// The exponentials of a row and their sums (scan.hpp, kExpLanes), lane by lane as the SSE2
// version. kFma: with FmaExpOps and e² summed by fused multiply-adds (the fused exact pass).
template <bool kFma>
[[gnu::always_inline]] inline void exp_row(float* s, std::int64_t count, float mf, double& sum, double& sum2) {
  using Ops = std::conditional_t<kFma, FmaExpOps, ExpOps>;
  const __m256 m = _mm256_set1_ps(mf);
  __m256d dp[4], dq[4];  // lanes 4v .. 4v + 3
  for (int v = 0; v < 4; ++v) dp[v] = dq[v] = _mm256_setzero_pd();
  std::int64_t j = 0;
  while (j + kExpLanes <= count) {
    const std::int64_t groups = kExpGroups < (count - j) / kExpLanes ? kExpGroups : (count - j) / kExpLanes;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
    for (std::int64_t g = 0; g < groups; ++g, j += kExpLanes) {
      const __m256 e0 = fast_exp_nonpos<Ops>(_mm256_sub_ps(_mm256_loadu_ps(s + j), m));
      const __m256 e1 = fast_exp_nonpos<Ops>(_mm256_sub_ps(_mm256_loadu_ps(s + j + 8), m));
      _mm256_storeu_ps(s + j, e0);
      _mm256_storeu_ps(s + j + 8, e1);
      a0 = _mm256_add_ps(a0, e0);
      a1 = _mm256_add_ps(a1, e1);
      b0 = Ops::fma(e0, e0, b0);
      b1 = Ops::fma(e1, e1, b1);
    }
    dp[0] = _mm256_add_pd(dp[0], _mm256_cvtps_pd(_mm256_castps256_ps128(a0)));
    dp[1] = _mm256_add_pd(dp[1], _mm256_cvtps_pd(_mm256_extractf128_ps(a0, 1)));
    dp[2] = _mm256_add_pd(dp[2], _mm256_cvtps_pd(_mm256_castps256_ps128(a1)));
    dp[3] = _mm256_add_pd(dp[3], _mm256_cvtps_pd(_mm256_extractf128_ps(a1, 1)));
    dq[0] = _mm256_add_pd(dq[0], _mm256_cvtps_pd(_mm256_castps256_ps128(b0)));
    dq[1] = _mm256_add_pd(dq[1], _mm256_cvtps_pd(_mm256_extractf128_ps(b0, 1)));
    dq[2] = _mm256_add_pd(dq[2], _mm256_cvtps_pd(_mm256_castps256_ps128(b1)));
    dq[3] = _mm256_add_pd(dq[3], _mm256_cvtps_pd(_mm256_extractf128_ps(b1, 1)));
  }
  alignas(32) double part[kExpLanes], part2[kExpLanes];
  for (int v = 0; v < 4; ++v) _mm256_store_pd(part + 4 * v, dp[v]), _mm256_store_pd(part2 + 4 * v, dq[v]);
  exp_tail(s, j, count, mf, part, part2, sum, sum2);
}

// Bit mask of the lanes of s[0..16) that are > cut: one compare per 8 keys.
[[gnu::always_inline]] inline unsigned above16(const float* s, float cut) {
  const __m256 c = _mm256_set1_ps(cut);
  const unsigned m0 = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(s), c, _CMP_GT_OQ)));
  const unsigned m1 = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(s + 8), c, _CMP_GT_OQ)));
  return m0 | (m1 << 8);
}

// Fused score + filter (AVX2 + FMA): a 6 × 16 block of scores is computed in registers from
// packed queries and keys and compared with the 6 rows' cuts there; only the blocks with a key
// above a cut are written out. The GEMM scores differ from a BLAS GEMM's in the last bits; the
// margin bounds both (any summation order, FMA or not), and the canonical re-scoring makes the
// lists identical to the portable path's.
constexpr int kFullLim[kMr] = {kNr, kNr, kNr, kNr, kNr, kNr};  // every key of a panel visible

// Scores of one 6 × 16 block; mask[r] gets the keys of row r above cut[r] (and below lim[r]),
// whose scores go to out[r·16 + u].
// kAll: store every row's scores (at out + r·ld), not only those of rows with a key above the cut.
template <bool kAll = false>
[[gnu::always_inline]] inline void block_6x16(const float* qp, const float* kp, std::int64_t d, float scale,
                                              const float* cut, const int* lim, float* out, unsigned* mask,
                                              std::int64_t ld = kNr) {
  __m256 acc[kMr][2];
  for (int r = 0; r < kMr; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (std::int64_t c = 0; c < d; ++c) {
    const __m256 b0 = _mm256_loadu_ps(kp + c * kNr), b1 = _mm256_loadu_ps(kp + c * kNr + 8);
    for (int r = 0; r < kMr; ++r) {
      const __m256 a = _mm256_broadcast_ss(qp + c * kMr + r);
      acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
    }
  }
  const __m256 sc = _mm256_set1_ps(scale);
  for (int r = 0; r < kMr; ++r) {
    const __m256 s0 = _mm256_mul_ps(acc[r][0], sc), s1 = _mm256_mul_ps(acc[r][1], sc);
    const __m256 cr = _mm256_set1_ps(cut[r]);
    unsigned m = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(s0, cr, _CMP_GT_OQ))) |
                 (static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(s1, cr, _CMP_GT_OQ))) << 8);
    m &= lim[r] >= kNr ? 0xFFFFu : (lim[r] <= 0 ? 0u : (1u << lim[r]) - 1u);
    mask[r] = m;
    if (kAll || m != 0) {
      _mm256_storeu_ps(out + r * ld, s0);
      _mm256_storeu_ps(out + r * ld + 8, s1);
    }
  }
}

// Admits key `key` with GEMM score `score` to row i (within the thread's rows, which start at
// r0 in the block) if it beats the row's cut; returns the row's cut afterwards.
[[gnu::always_inline]] inline float admit(std::int64_t i, float score, std::uint32_t key, const QueryBlock& queries,
                                          const KeyShard& keys, const PassParams& p, std::int64_t r0, Scratch& w) {
  GemmFilterRow& row = w.rows[static_cast<std::size_t>(i)];
  if (score > row.cut()) {
    const float* qi = queries.q + (r0 + i) * p.d;
    row.add(score, key, [&](std::uint32_t k) { return canonical_score(qi, keys.k + k * p.d, p.d, p.scale); });
  }
  return row.cut();
}

// Admits to the selections of rows i0 .. i0 + nr − 1 (within the thread's rows, which start at
// r0 in the block) the keys that block_6x16 marked in mask: key key0 + u of row r has its
// score at out[r·ld + u]. cut[r] gets the row's cut afterwards.
[[gnu::always_inline]] inline void admit_block(const unsigned* mask, std::int64_t nr, std::int64_t i0, const float* out,
                                               std::int64_t ld, std::uint32_t key0, const QueryBlock& queries,
                                               const KeyShard& keys, const PassParams& p, std::int64_t r0, Scratch& w,
                                               float* cut) {
  for (std::int64_t r = 0; r < nr; ++r) {
    for (unsigned m = mask[r]; m != 0; m &= m - 1) {
      const int u = __builtin_ctz(m);
      cut[r] = admit(i0 + r, out[r * ld + u], key0 + static_cast<std::uint32_t>(u), queries, keys, p, r0, w);
    }
  }
}

// Seeds the cuts of rows [r0, r0 + rows) from a sample of the shard (SeedPlan) and admits the
// sample keys above them; the scans then skip the sampled panels (the top-k pass) or score them
// without admitting (the exact pass). w.qpack holds the rows' packed queries. Returns the plan
// (on = false: nothing done). kernels_avx2.cpp.
SeedPlan seed_cuts(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, std::int64_t r0,
                   std::int64_t rows, SeedMode seed_mode, Scratch& w);

}  // namespace ncsparse::cpu::avx2
