// The tile pass: score tiles by OpenBLAS (single-threaded: threads split the rows), each row
// filtered into its selection and, for the exact state, its running max, exponentials and
// P·V. The portable path for every shape, and the AVX2 one's for the exact state when d is
// not a multiple of 8 (with kernels_avx2.cpp's row kernels). Any x86-64 (SSE2).
#include <cblas.h>
#include <emmintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/score.hpp"
#include "cpu/scan.hpp"
#include "ncsparse/flash.hpp"

namespace ncsparse::cpu {
namespace {

// Largest of s[0..count) (a max is exact: any order gives the same float on both paths).
[[gnu::always_inline]] inline float row_max_sse2(const float* s, std::int64_t count) {
  __m128 m0 = _mm_set1_ps(-std::numeric_limits<float>::infinity()), m1 = m0, m2 = m0, m3 = m0;
  std::int64_t j = 0;
  for (; j + 16 <= count; j += 16) {
    m0 = _mm_max_ps(m0, _mm_loadu_ps(s + j));
    m1 = _mm_max_ps(m1, _mm_loadu_ps(s + j + 4));
    m2 = _mm_max_ps(m2, _mm_loadu_ps(s + j + 8));
    m3 = _mm_max_ps(m3, _mm_loadu_ps(s + j + 12));
  }
  alignas(16) float lane[4];
  _mm_store_ps(lane, _mm_max_ps(_mm_max_ps(m0, m1), _mm_max_ps(m2, m3)));
  float best = std::max(std::max(lane[0], lane[1]), std::max(lane[2], lane[3]));
  for (; j < count; ++j) best = std::max(best, s[j]);
  return best;
}

// fast_exp_nonpos (core/fastexp.hpp) on 4 lanes.
struct Sse2ExpOps {
  using V = __m128;
  [[gnu::always_inline]] static V set1(float a) { return _mm_set1_ps(a); }
  [[gnu::always_inline]] static V mul(V a, V b) { return _mm_mul_ps(a, b); }
  [[gnu::always_inline]] static V max(V a, V b) { return _mm_max_ps(a, b); }
  [[gnu::always_inline]] static V round(V t) {
    return _mm_sub_ps(_mm_add_ps(t, _mm_set1_ps(12582912.0f)), _mm_set1_ps(12582912.0f));
  }
  [[gnu::always_inline]] static V fma(V a, V b, V c) { return _mm_add_ps(_mm_mul_ps(a, b), c); }
  [[gnu::always_inline]] static V fnma(V a, V b, V c) { return _mm_sub_ps(c, _mm_mul_ps(a, b)); }
  [[gnu::always_inline]] static V pow2(V n) {
    return _mm_castsi128_ps(_mm_slli_epi32(_mm_add_epi32(_mm_cvttps_epi32(n), _mm_set1_epi32(127)), 23));
  }
};

// The exponentials of a row and their sums (scan.hpp, kExpLanes).
[[gnu::always_inline]] inline void exp_row_sse2(float* s, std::int64_t count, float mf, double& sum, double& sum2) {
  const __m128 m = _mm_set1_ps(mf);
  __m128d dp[8], dq[8];  // lanes 2v, 2v + 1
  for (int v = 0; v < 8; ++v) dp[v] = dq[v] = _mm_setzero_pd();
  std::int64_t j = 0;
  while (j + kExpLanes <= count) {
    const std::int64_t groups = std::min(kExpGroups, (count - j) / kExpLanes);
    __m128 a[4], b[4];
    for (int v = 0; v < 4; ++v) a[v] = b[v] = _mm_setzero_ps();
    for (std::int64_t g = 0; g < groups; ++g, j += kExpLanes) {
      for (int v = 0; v < 4; ++v) {
        const __m128 e = fast_exp_nonpos<Sse2ExpOps>(_mm_sub_ps(_mm_loadu_ps(s + j + 4 * v), m));
        _mm_storeu_ps(s + j + 4 * v, e);
        a[v] = _mm_add_ps(a[v], e);
        b[v] = _mm_add_ps(b[v], _mm_mul_ps(e, e));
      }
    }
    for (int v = 0; v < 4; ++v) {
      dp[2 * v] = _mm_add_pd(dp[2 * v], _mm_cvtps_pd(a[v]));
      dp[2 * v + 1] = _mm_add_pd(dp[2 * v + 1], _mm_cvtps_pd(_mm_movehl_ps(a[v], a[v])));
      dq[2 * v] = _mm_add_pd(dq[2 * v], _mm_cvtps_pd(b[v]));
      dq[2 * v + 1] = _mm_add_pd(dq[2 * v + 1], _mm_cvtps_pd(_mm_movehl_ps(b[v], b[v])));
    }
  }
  alignas(16) double part[kExpLanes], part2[kExpLanes];
  for (int v = 0; v < 8; ++v) _mm_store_pd(part + 2 * v, dp[v]), _mm_store_pd(part2 + 2 * v, dq[v]);
  exp_tail(s, j, count, mf, part, part2, sum, sum2);
}

// Bit mask of the lanes of s[0..16) that are > cut: one compare per 4 keys.
[[gnu::always_inline]] inline unsigned above16_sse2(const float* s, float cut) {
  const __m128 c = _mm_set1_ps(cut);
  const unsigned m0 = static_cast<unsigned>(_mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(s), c)));
  const unsigned m1 = static_cast<unsigned>(_mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(s + 4), c)));
  const unsigned m2 = static_cast<unsigned>(_mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(s + 8), c)));
  const unsigned m3 = static_cast<unsigned>(_mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(s + 12), c)));
  return m0 | (m1 << 4) | (m2 << 8) | (m3 << 12);
}

// One row of a score tile (limit visible keys of tc): filtered into the row's selection and,
// with the exact state, turned into P = exp(s − m) with the row's state rescaled; returns α
// (o ← o·α + P·V is the caller's), 1 when the row sees nothing.
template <bool kAvx2>
[[gnu::always_inline]] inline double tile_row(float* s, std::int64_t limit, std::int64_t tc, std::uint32_t key0,
                                              const float* qi, const KeyShard& keys, const PassParams& p,
                                              GemmFilterRow& row, double* st) {
  if constexpr (kAvx2) {
    filter_row_avx2(s, limit, key0, row, qi, keys, p);
  } else {
    const std::int64_t d = p.d;
    auto rescore = [&](std::uint32_t key) { return canonical_score(qi, keys.k + key * d, d, p.scale); };
    filter_row<above16_sse2>(s, limit, key0, row, rescore);
  }
  if (!p.exact) return 1.0;
  if (limit == 0) {
    std::fill(s, s + tc, 0.0f);  // no weight from this tile
    return 1.0;
  }
  const float tile_max = kAvx2 ? row_max_avx2(s, limit) : row_max_sse2(s, limit);
  const double m_new = std::max(st[0], static_cast<double>(tile_max));
  // 0 when the row was empty; exp(0) = 1 exactly, so the call is skipped then.
  const double alpha = m_new == st[0] ? 1.0 : std::exp(st[0] - m_new);
  double sum, sum2;
  if constexpr (kAvx2) {
    exp_row_avx2(s, limit, static_cast<float>(m_new), sum, sum2);
  } else {
    exp_row_sse2(s, limit, static_cast<float>(m_new), sum, sum2);
  }
  std::fill(s + limit, s + tc, 0.0f);
  st[0] = m_new;
  st[1] = st[1] * alpha + sum;
  st[2] = st[2] * alpha * alpha + sum2;
  return alpha;
}

template <bool kAvx2>
void tile_pass_impl(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, std::int64_t r0,
                    std::int64_t rows, Scratch& w) {
  const std::int64_t d = p.d;
  const std::size_t frow = flash_row_size(static_cast<std::size_t>(d));
  // Tile: up to p.tile keys, fewer when rows × keys would not stay in L2; then the rows are
  // split into sub-blocks that do.
  const std::int64_t budget = kTileBytes / static_cast<std::int64_t>(sizeof(float));
  std::int64_t T = std::max<std::int64_t>(1, std::min(p.tile, keys.count));
  T = std::min(T, std::max(kMinTileKeys, budget / std::max<std::int64_t>(rows, 1)));
  const std::int64_t RB = std::clamp<std::int64_t>(budget / T, 1, std::max<std::int64_t>(rows, 1));
  w.scores.resize(static_cast<std::size_t>(RB * T));
  w.pv.resize(p.exact ? static_cast<std::size_t>(RB * d) : 0);
  w.alpha.resize(p.exact ? static_cast<std::size_t>(RB) : 0);
  for (std::int64_t t0 = 0; t0 < keys.count; t0 += T) {
    const std::int64_t tc = std::min(T, keys.count - t0);
    const std::int64_t g0 = keys.begin + t0;  // global index of the tile's first key
    for (std::int64_t b0 = 0; b0 < rows; b0 += RB) {
      const std::int64_t rb = std::min(RB, rows - b0);
      std::int64_t max_pos = std::numeric_limits<std::int64_t>::min();
      for (std::int64_t i = r0 + b0; i < r0 + b0 + rb; ++i) max_pos = std::max(max_pos, queries.positions[i]);
      if (p.causal && g0 > max_pos) continue;  // the tile is masked for every row of the sub-block
      float* tile = w.scores.data();
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rb), static_cast<int>(tc),
                  static_cast<int>(d), static_cast<float>(p.scale), queries.q + (r0 + b0) * d, static_cast<int>(d),
                  keys.k + t0 * d, static_cast<int>(d), 0.0f, tile, static_cast<int>(tc));
      bool any_visible = false;
      for (std::int64_t ib = 0; ib < rb; ++ib) {
        const std::int64_t i = b0 + ib;  // row within this thread's rows
        std::int64_t limit = tc;
        if (p.causal) limit = std::clamp<std::int64_t>(queries.positions[r0 + i] - g0 + 1, 0, tc);
        double* st = p.exact ? w.state.data() + i * frow : nullptr;
        const double alpha =
            tile_row<kAvx2>(tile + ib * tc, limit, tc, static_cast<std::uint32_t>(t0), queries.q + (r0 + i) * d, keys,
                            p, w.rows[static_cast<std::size_t>(i)], st);
        if (!p.exact) continue;
        w.alpha[static_cast<std::size_t>(ib)] = alpha;  // o ← o·alpha + P·V below
        any_visible = any_visible || limit > 0;
      }
      if (p.exact && any_visible) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rb), static_cast<int>(d),
                    static_cast<int>(tc), 1.0f, tile, static_cast<int>(tc), keys.v + t0 * d, static_cast<int>(d), 0.0f,
                    w.pv.data(), static_cast<int>(d));
        for (std::int64_t ib = 0; ib < rb; ++ib) {
          double* o = w.state.data() + (b0 + ib) * frow + kFlashHeader;
          const float* x = w.pv.data() + ib * d;
          const double alpha = w.alpha[static_cast<std::size_t>(ib)];
          for (std::int64_t c = 0; c < d; ++c) o[c] = o[c] * alpha + x[c];
        }
      }
    }
  }
}

}  // namespace

void tile_pass(bool avx2, const QueryBlock& queries, const KeyShard& keys, const PassParams& p, std::int64_t r0,
               std::int64_t rows, Scratch& w) {
  if (avx2) {
    tile_pass_impl<true>(queries, keys, p, r0, rows, w);
  } else {
    tile_pass_impl<false>(queries, keys, p, r0, rows, w);
  }
}

}  // namespace ncsparse::cpu
