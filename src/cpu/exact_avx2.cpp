// The exact pass on AVX2 + FMA, fused: no BLAS call, and nothing the size of a score tile
// leaves L1. For each tile of keys (packed as in the top-k pass) and each block of kMr rows:
//   1. the kMr × T scores are computed by block_6x16 into a small buffer, and the keys above a
//      row's cut go to its selection on the way;
//   2. each row's running max, its exponentials (exp_row<true>) and their sums are taken in
//      that buffer, which then holds P = exp(s − m);
//   3. the kMr × d output O = P·V of the tile is accumulated in registers (pv_strip) from P
//      and the value rows of the tile as they lie in memory, and folded into the double state:
//      o ← o·α + O.
// The tile is sized so that its packed keys and its values stay in L2 while every row block
// of the thread goes over them. Its state agrees with the tile pass's to float rounding, not
// bit for bit. Compiled with -mavx2 -mfma; called only after the run-time check.
#include <algorithm>
#include <cmath>

#include "cpu/kernels_avx2.hpp"
#include "ncsparse/flash.hpp"

namespace ncsparse::cpu {
namespace {

constexpr std::int64_t kExactTileBytes = 128 * 1024;  // packed keys of one tile

// acc[r] (kW vectors of 8 columns) = Σ_j P[r][j] · v[j][0 .. 8·kW) for j < count, for kMr rows
// of P (row stride ld), then folded into the rows' double states. v: a strip of packed values,
// 8·kW floats per key, 32-byte aligned.
template <int kW>
[[gnu::always_inline]] inline void pv_strip(const float* P, std::int64_t ld, const float* v, std::int64_t count,
                                            std::int64_t nr, const double* alpha, double* const* o) {
  __m256 acc[kMr][kW];
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r)
#pragma GCC unroll 2
    for (int u = 0; u < kW; ++u) acc[r][u] = _mm256_setzero_ps();
  for (std::int64_t j = 0; j < count; ++j) {
    __m256 b[kW];
#pragma GCC unroll 2
    for (int u = 0; u < kW; ++u) b[u] = _mm256_load_ps(v + j * 8 * kW + 8 * u);
#pragma GCC unroll 8
    for (int r = 0; r < kMr; ++r) {
      const __m256 a = _mm256_broadcast_ss(P + r * ld + j);
#pragma GCC unroll 2
      for (int u = 0; u < kW; ++u) acc[r][u] = _mm256_fmadd_ps(a, b[u], acc[r][u]);
    }
  }
  // A loop over the constant kMr (not nr) keeps acc in registers: a runtime index would put
  // the array in memory and store it on every key.
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r) {
    if (r >= nr) break;
    const __m256d al = _mm256_set1_pd(alpha[r]);
#pragma GCC unroll 2
    for (int u = 0; u < kW; ++u) {
      double* out = o[r] + 8 * u;
      const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(acc[r][u]));
      const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(acc[r][u], 1));
      _mm256_storeu_pd(out, _mm256_add_pd(_mm256_mul_pd(_mm256_loadu_pd(out), al), lo));
      _mm256_storeu_pd(out + 4, _mm256_add_pd(_mm256_mul_pd(_mm256_loadu_pd(out + 4), al), hi));
    }
  }
}

// One tile of the pass: tc keys from shard offset t0, their packed keys and values.
struct ExactTile {
  std::int64_t t0, tc, g0;  // g0: global index of the first key
  std::int64_t TK, ld;      // keys per tile (value strip stride), score buffer row stride
  const float* kpack;
  const float* vp;
};

// Values in strips of 16 columns (8 for the last when d mod 16 = 8), each strip's keys
// consecutive: pv_strip then reads whole cache lines in order.
void pack_values(const KeyShard& keys, std::int64_t d, const ExactTile& t, float* vp) {
  for (std::int64_t j = 0; j < t.tc; ++j) {
    const float* src = keys.v + (t.t0 + j) * d;
    std::int64_t c0 = 0;
    for (; c0 + 16 <= d; c0 += 16) {
      _mm256_store_ps(vp + c0 * t.TK + j * 16, _mm256_loadu_ps(src + c0));
      _mm256_store_ps(vp + c0 * t.TK + j * 16 + 8, _mm256_loadu_ps(src + c0 + 8));
    }
    if (c0 < d) _mm256_store_ps(vp + c0 * t.TK + j * 8, _mm256_loadu_ps(src + c0));
  }
}

// Steps 1–3 for row block b (rows i0 = b·kMr ..) of the thread's rows on one tile.
void exact_block(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, std::int64_t r0,
                 std::int64_t rows, std::int64_t b, const ExactTile& t, const SeedPlan& seed, Scratch& w) {
  const std::int64_t d = p.d;
  const std::size_t frow = flash_row_size(static_cast<std::size_t>(d));
  const float no_cut[kMr] = {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity(),
                             std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity(),
                             std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity()};
  const float scale = static_cast<float>(p.scale);
  float* const S = w.scores.data();
  float cut[kMr];
  int lim[kMr];
  unsigned mask[kMr];
  std::int64_t limit[kMr];
  double alpha[kMr];
  double* o[kMr];
  const std::int64_t i0 = b * kMr;
  const std::int64_t nr = std::min(kMr, rows - i0);
  std::int64_t seen = 0;  // keys of the tile that some row of the block sees
  for (std::int64_t r = 0; r < kMr; ++r) {
    limit[r] = r >= nr    ? 0
               : p.causal ? std::clamp<std::int64_t>(queries.positions[r0 + i0 + r] - t.g0 + 1, 0, t.tc)
                          : t.tc;
    seen = std::max(seen, limit[r]);
    cut[r] = r < nr ? w.rows[static_cast<std::size_t>(i0 + r)].cut() : 0.0f;
  }
  if (seen == 0) return;
  // 1. Scores, and the selection (the sampled panels' keys, admitted already, are not again).
  SampleCursor sample(seed, t.t0);
  for (std::int64_t j0 = 0; j0 < seen; j0 += kNr) {
    for (std::int64_t r = 0; r < kMr; ++r) lim[r] = static_cast<int>(std::clamp<std::int64_t>(limit[r] - j0, 0, kNr));
    avx2::block_6x16<true>(w.qpack.data() + b * kMr * d, t.kpack + j0 * d, d, scale,
                           sample.skip(t.t0 + j0, kNr) != 0 ? no_cut : cut, lim, S + j0, mask, t.ld);
    avx2::admit_block(mask, nr, i0, S + j0, t.ld, static_cast<std::uint32_t>(t.t0 + j0), queries, keys, p, r0, w, cut);
  }
  // 2. Running max, exponentials and their sums; P is 0 past each row's limit.
  for (std::int64_t r = 0; r < kMr; ++r) {
    float* s = S + r * t.ld;
    alpha[r] = 1.0;
    o[r] = r < nr ? w.state.data() + (i0 + r) * static_cast<std::int64_t>(frow) + kFlashHeader : nullptr;
    if (limit[r] > 0) {
      double* st = w.state.data() + (i0 + r) * static_cast<std::int64_t>(frow);
      const double m_new = std::max(st[0], static_cast<double>(avx2::row_max(s, limit[r])));
      // 0 when the row was empty; exp(0) = 1 exactly, so the call is skipped then.
      alpha[r] = m_new == st[0] ? 1.0 : std::exp(st[0] - m_new);
      double sum, sum2;
      avx2::exp_row<true>(s, limit[r], static_cast<float>(m_new), sum, sum2);
      st[0] = m_new;
      st[1] = st[1] * alpha[r] + sum;
      st[2] = st[2] * alpha[r] * alpha[r] + sum2;
    }
    std::fill(s + limit[r], s + seen, 0.0f);
  }
  // 3. O = P·V over the seen keys, folded into the states.
  std::int64_t c0 = 0;
  for (; c0 + 16 <= d; c0 += 16) {
    pv_strip<2>(S, t.ld, t.vp + c0 * t.TK, seen, nr, alpha, o);
    for (std::int64_t r = 0; r < nr; ++r) o[r] += 16;
  }
  if (c0 < d) pv_strip<1>(S, t.ld, t.vp + c0 * t.TK, seen, nr, alpha, o);
}

// Whether no row of [r0, r0 + rows) sees the keys from global index g0 on.
bool tile_masked(const QueryBlock& queries, const PassParams& p, std::int64_t r0, std::int64_t rows, std::int64_t g0) {
  // Cheap test first, when both ends of the block are before the tile (positions rise in a
  // block as a rule); then row by row.
  if (!p.causal || g0 <= queries.positions[r0 + rows - 1] || g0 <= queries.positions[r0]) return false;
  for (std::int64_t i = 0; i < rows; ++i)
    if (queries.positions[r0 + i] >= g0) return false;
  return true;
}

}  // namespace

void fused_exact_avx2(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, std::int64_t r0,
                      std::int64_t rows, SeedMode seed_mode, Scratch& w) {
  const std::int64_t d = p.d;
  const std::int64_t blocks = pack_query_blocks(queries.q + r0 * d, rows, d, w.qpack);
  // p.tile caps it (tests use small tiles to put tile edges everywhere).
  const std::int64_t TK = std::min(
      std::max<std::int64_t>(kNr, (kExactTileBytes / static_cast<std::int64_t>(sizeof(float)) / d) / kNr * kNr),
      std::max<std::int64_t>(1, p.tile));
  // Row stride of the score buffer: whole panels, plus 8 floats off the 4 KiB aliasing.
  const std::int64_t ld = (TK + kNr - 1) / kNr * kNr + 8;
  float* const kpack = fit(w.kpack, ((std::min(TK, keys.count) + kNr - 1) / kNr) * kNr * d);
  fit(w.scores, kMr * ld);
  float* const vp = align32(fit(w.vpack, TK * d + 8));
  // Seeded cuts as in the top-k pass when tiles hold whole 16-key panels of the shard (the
  // sample is made of those); the sampled panels are scored here like the others.
  const SeedPlan seed = TK % kNr == 0 ? avx2::seed_cuts(queries, keys, p, r0, rows, seed_mode, w) : SeedPlan{};
  for (std::int64_t t0 = 0; t0 < keys.count; t0 += TK) {
    const ExactTile t{t0, std::min(TK, keys.count - t0), keys.begin + t0, TK, ld, kpack, vp};
    if (tile_masked(queries, p, r0, rows, t.g0)) continue;
    pack_keys_avx2(keys.k + t0 * d, t.tc, d, kpack);
    pack_values(keys, d, t, vp);
    // The next tile's keys and values, a share per row block.
    const std::int64_t next_bytes =
        std::min(TK, std::max<std::int64_t>(0, keys.count - t0 - TK)) * d * static_cast<std::int64_t>(sizeof(float));
    for (std::int64_t b = 0; b < blocks; ++b) {
      prefetch_share(keys.k + std::min(t0 + TK, keys.count) * d, next_bytes, b, blocks);
      prefetch_share(keys.v + std::min(t0 + TK, keys.count) * d, next_bytes, b, blocks);
      exact_block(queries, keys, p, r0, rows, b, t, seed, w);
    }
  }
}

}  // namespace ncsparse::cpu
