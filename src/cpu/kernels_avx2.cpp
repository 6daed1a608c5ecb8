// The AVX2 + FMA top-k kernels: the row kernels of the tile pass, the sample seeding of the
// rows' cuts, and the fused top-k pass (key-major from 16 rows per thread, 6 × 16 blocks
// below). Compiled with -mavx2 -mfma; called only after the run-time check (backend_cpu.cpp).
#include "cpu/kernels_avx2.hpp"

#include <algorithm>

namespace ncsparse::cpu {

float row_max_avx2(const float* s, std::int64_t count) { return avx2::row_max(s, count); }

void exp_row_avx2(float* s, std::int64_t count, float mf, double& sum, double& sum2) {
  avx2::exp_row<false>(s, count, mf, sum, sum2);
}

void filter_row_avx2(const float* s, std::int64_t count, std::uint32_t key0, GemmFilterRow& row, const float* q,
                     const KeyShard& keys, const PassParams& p) {
  const std::int64_t d = p.d;
  auto rescore = [&](std::uint32_t key) { return canonical_score(q, keys.k + key * d, d, p.scale); };
  filter_row<avx2::above16>(s, count, key0, row, rescore);
}

namespace avx2 {

SeedPlan seed_cuts(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, std::int64_t r0,
                   std::int64_t rows, SeedMode seed_mode, Scratch& w) {
  const std::int64_t d = p.d;
  const std::int64_t blocks = (rows + kMr - 1) / kMr;
  const float scale = static_cast<float>(p.scale);
  alignas(32) float out_block[kMr * kNr];
  unsigned mask[kMr];
  const SeedPlan seed = plan_seed(keys.count, p.list_length, p.causal, seed_mode);
  if (!seed.on) return seed;
  // Score the sample panels for groups of row blocks, rank each row's sample scores, seed
  // its cut, and admit the sample keys above it; the scan below skips these panels.
  const std::int64_t S = seed.panels * kNr;
  float* const spack = fit(w.spack, S * d);
  for (std::int64_t sp = 0; sp < seed.panels; ++sp)
    pack_keys_avx2(keys.k + seed.start(sp) * d, kNr, d, spack + sp * kNr * d);
  constexpr std::int64_t kGroupBlocks = 8;
  float* const sample = fit(w.sample, kGroupBlocks * kMr * S);
  float* const select = fit(w.select, S);
  const float all_cut[kMr] = {-std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
  for (std::int64_t gb0 = 0; gb0 < blocks; gb0 += kGroupBlocks) {
    const std::int64_t gb1 = std::min(blocks, gb0 + kGroupBlocks);
    for (std::int64_t sp = 0; sp < seed.panels; ++sp) {
      for (std::int64_t b = gb0; b < gb1; ++b) {
        block_6x16(w.qpack.data() + b * kMr * d, spack + sp * kNr * d, d, scale, all_cut, kFullLim, out_block, mask);
        for (std::int64_t r = 0; r < kMr; ++r)
          std::copy_n(out_block + r * kNr, kNr, sample + ((b - gb0) * kMr + r) * S + sp * kNr);
      }
    }
    for (std::int64_t i = gb0 * kMr; i < std::min(rows, gb1 * kMr); ++i) {
      const float* sc = sample + (i - gb0 * kMr) * S;
      GemmFilterRow& row = w.rows[static_cast<std::size_t>(i)];
      seed_row(row, sc, S, seed, select);
      const float* qi = queries.q + (r0 + i) * d;
      auto rescore = [&](std::uint32_t key) { return canonical_score(qi, keys.k + key * d, d, p.scale); };
      for (std::int64_t sp = 0; sp < seed.panels; ++sp) {
        const std::uint32_t key0 = static_cast<std::uint32_t>(seed.start(sp));
        filter_row<above16>(sc + sp * kNr, kNr, key0, row, rescore);
      }
    }
  }
  return seed;
}

namespace {

// The top-k pass, key-major, for 16 rows or more per thread: the same products as block_6x16
// with the roles of rows and keys swapped. Six key rows are read where they lie in the shard
// (broadcast one coordinate at a time), and 16 query rows packed once per pass (pack_keys_avx2
// layout) are the vector operand. Nothing of the shard is packed or copied: at m = 64, packing
// the keys of each tile (every key once per query block) took ~10% of block_6x16's pass, and
// the rows padded to blocks of six another 3%. Each score is the same chain of fused
// multiply-adds over c = 0 .. d−1 as block_6x16's, so the GEMM scores, the admissions and the
// lists are the same.
constexpr std::int64_t kKeyBlock = 6;
constexpr std::int64_t kQueryPanel = 16;
// Packed query panels that go over a tile together (64 queries at d = 128, 128 at d = 64):
// 32 KiB (benchmarks/RESULTS.md).
constexpr std::int64_t kQueryGroupBytes = 32 * 1024;
constexpr std::int64_t kKeyAheadBytes = 8 * 1024;  // keys prefetched ahead of the first group's scan

// Scores of keys kr[0..5] (rows of d floats) against a 16-row query panel qp; mask[i] gets
// the rows whose score with key i is above their cut (and, kCausal, whose limit lim[u] is
// above the key's shard offset key + i), and out[i·16 + u] their scores. Keys whose bit in
// `valid` is clear get no mask.
// The six keys are rows kr, kr + d, ..., kr + 5·d: addressed from two pointers and the row
// stride, and the loop ends on a pointer, so that it needs few general registers (with six
// row pointers, or a counter beside them, GCC spilled some and reloaded them every step).
template <bool kCausal>
[[gnu::always_inline]] inline void block_k6q16(const float* kr, const float* qp, std::int64_t d, float scale,
                                               const float* cut, const std::int32_t* lim, std::int32_t key,
                                               unsigned valid, float* out, unsigned* mask) {
  __m256 acc[kKeyBlock][2];
  for (int i = 0; i < kKeyBlock; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  const float* a = kr;
  const float* b = kr + 3 * d;
  for (const float* const a_end = kr + d; a != a_end; ++a, ++b, qp += kQueryPanel) {
    const __m256 q0 = _mm256_loadu_ps(qp), q1 = _mm256_loadu_ps(qp + 8);
    for (int i = 0; i < kKeyBlock; ++i) {
      const __m256 k = _mm256_broadcast_ss((i < 3 ? a : b) + (i % 3) * d);
      acc[i][0] = _mm256_fmadd_ps(k, q0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(k, q1, acc[i][1]);
    }
  }
  const __m256 sc = _mm256_set1_ps(scale);
  const __m256 c0 = _mm256_loadu_ps(cut), c1 = _mm256_loadu_ps(cut + 8);
  for (int i = 0; i < kKeyBlock; ++i) {
    const __m256 s0 = _mm256_mul_ps(acc[i][0], sc), s1 = _mm256_mul_ps(acc[i][1], sc);
    unsigned m = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(s0, c0, _CMP_GT_OQ))) |
                 (static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(s1, c1, _CMP_GT_OQ))) << 8);
    if constexpr (kCausal) {
      const __m256i kk = _mm256_set1_epi32(key + i);
      const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lim));
      const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lim + 8));
      m &= static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(l0, kk)))) |
           (static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(l1, kk)))) << 8);
    }
    if (((valid >> i) & 1u) == 0) m = 0;
    mask[i] = m;
    if (m != 0) {
      _mm256_storeu_ps(out + i * kQueryPanel, s0);
      _mm256_storeu_ps(out + i * kQueryPanel + 8, s1);
    }
  }
}

// The rows' query panels, limits (causal: row u sees the keys at shard offsets below lims[u];
// padded rows see none) and cuts (padded rows: +∞) for the key-major scan; returns how far
// into the shard any row sees.
std::int64_t prepare_panels(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, std::int64_t r0,
                            std::int64_t rows, std::int64_t panels, Scratch& w) {
  const std::int64_t d = p.d;
  pack_keys_avx2(queries.q + r0 * d, rows, d, fit(w.qpanel, panels * kQueryPanel * d));
  std::int32_t* const lims = fill(w.lims, panels * kQueryPanel, 0);
  std::int64_t reach = keys.count;  // keys past every row's limit are not scanned
  if (p.causal) {
    reach = 0;
    for (std::int64_t i = 0; i < rows; ++i) {
      const std::int64_t lim = std::clamp<std::int64_t>(queries.positions[r0 + i] - keys.begin + 1, 0, keys.count);
      lims[i] = static_cast<std::int32_t>(lim);
      reach = std::max(reach, lim);
    }
  }
  float* const cuts = fill(w.cuts, panels * kQueryPanel, std::numeric_limits<float>::infinity());
  for (std::int64_t i = 0; i < rows; ++i) cuts[i] = w.rows[static_cast<std::size_t>(i)].cut();
  return reach;
}

// The first group of panels reads the tile from DRAM: the keys kKeyAheadBytes past key j fetched.
[[gnu::always_inline]] inline void fetch_keys_ahead(const KeyShard& keys, std::int64_t j, std::int64_t d) {
  const char* ahead = reinterpret_cast<const char*>(keys.k + j * d) + kKeyAheadBytes;
  const char* end = reinterpret_cast<const char*>(keys.k + keys.count * d);
  for (std::int64_t b = 0; b < kKeyBlock * d * static_cast<std::int64_t>(sizeof(float)) && ahead + b < end; b += 64)
    _mm_prefetch(ahead + b, _MM_HINT_T0);
}

template <bool kCausal>
void keymajor_topk_scan(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, std::int64_t r0,
                        std::int64_t rows, const SeedPlan& seed, Scratch& w) {
  const std::int64_t d = p.d;
  const float scale = static_cast<float>(p.scale);
  const std::int64_t panels = (rows + kQueryPanel - 1) / kQueryPanel;
  const std::int64_t reach = prepare_panels(queries, keys, p, r0, rows, panels, w);
  // Tiles of keys that stay in L2 while each group of query panels (in L1) goes over them.
  const std::int64_t TK = std::max<std::int64_t>(
      kKeyBlock, std::min(p.tile, kTileBytes / static_cast<std::int64_t>(sizeof(float)) / d) / kKeyBlock * kKeyBlock);
  const std::int64_t G = std::clamp<std::int64_t>(
      kQueryGroupBytes / (kQueryPanel * d * static_cast<std::int64_t>(sizeof(float))), 1, panels);
  alignas(32) float out[kKeyBlock * kQueryPanel];
  unsigned mask[kKeyBlock];
  float* const ktail = fit(w.ktail, kKeyBlock * d);
  for (std::int64_t t0 = 0; t0 < reach; t0 += TK) {
    const std::int64_t t1 = std::min(reach, t0 + TK);
    for (std::int64_t g0 = 0; g0 < panels; g0 += G) {
      const std::int64_t g1 = std::min(panels, g0 + G);
      std::int64_t g_reach = t1;
      if constexpr (kCausal) {
        std::int64_t r = 0;
        for (std::int64_t u = g0 * kQueryPanel; u < g1 * kQueryPanel; ++u) r = std::max<std::int64_t>(r, w.lims[u]);
        g_reach = std::min(t1, r);
      }
      SampleCursor sample(seed, t0);
      for (std::int64_t j = t0; j < g_reach; j += kKeyBlock) {
        const std::int64_t nk = std::min(kKeyBlock, g_reach - j);
        if (g0 == 0) fetch_keys_ahead(keys, j, d);
        const unsigned valid = ((1u << nk) - 1u) & ~sample.skip(j, nk);
        if (valid == 0) continue;
        const float* kr = keys.k + j * d;
        if (j + kKeyBlock > keys.count) {  // the shard's last keys: a copy padded with zeros (masked)
          std::fill(ktail, ktail + kKeyBlock * d, 0.0f);
          std::copy_n(kr, (keys.count - j) * d, ktail);
          kr = ktail;
        }
        for (std::int64_t pn = g0; pn < g1; ++pn) {
          const std::int64_t u0 = pn * kQueryPanel;
          block_k6q16<kCausal>(kr, w.qpanel.data() + u0 * d, d, scale, w.cuts.data() + u0, w.lims.data() + u0,
                               static_cast<std::int32_t>(j), valid, out, mask);
          for (std::int64_t i = 0; i < nk; ++i) {
            for (unsigned m = mask[i]; m != 0; m &= m - 1) {
              const std::int64_t row_i = u0 + __builtin_ctz(m);
              w.cuts[static_cast<std::size_t>(row_i)] =
                  admit(row_i, out[i * kQueryPanel + __builtin_ctz(m)], static_cast<std::uint32_t>(j + i), queries,
                        keys, p, r0, w);
            }
          }
        }
      }
    }
  }
}

// The visible keys of row block b on panel j0 of a tile of tc keys at global index g0, in lim;
// false when the block sees none of them.
[[gnu::always_inline]] inline bool block_limits(const QueryBlock& queries, const PassParams& p, std::int64_t r0,
                                                std::int64_t i0, std::int64_t nr, std::int64_t g0, std::int64_t tc,
                                                std::int64_t j0, int* lim) {
  bool any = false;
  for (std::int64_t r = 0; r < kMr; ++r) {
    const std::int64_t row_lim = r >= nr    ? 0
                                 : p.causal ? std::clamp<std::int64_t>(queries.positions[r0 + i0 + r] - g0 + 1, 0, tc)
                                            : tc;
    lim[r] = static_cast<int>(std::clamp<std::int64_t>(row_lim - j0, 0, kNr));
    any = any || lim[r] > 0;
  }
  return any;
}

// Below 16 rows per thread: rows in blocks of six against key panels packed per tile
// (block_6x16), which wastes less on padded rows. w.qpack holds the packed row blocks.
void blocked_topk_scan(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, std::int64_t r0,
                       std::int64_t rows, std::int64_t blocks, const SeedPlan& seed, Scratch& w) {
  const std::int64_t d = p.d;
  // Keys in tiles of ~256 KiB packed.
  const std::int64_t TK =
      std::max<std::int64_t>(kNr, (kTileBytes / static_cast<std::int64_t>(sizeof(float)) / d) / kNr * kNr);
  float* const kpack = fit(w.kpack, ((std::min(TK, keys.count) + kNr - 1) / kNr) * kNr * d);
  alignas(32) float out_block[kMr * kNr];
  int lim[kMr];
  unsigned mask[kMr];
  const float scale = static_cast<float>(p.scale);
  // The rows' cuts side by side, so that a block reads its six at once; padded rows get +∞
  // (never admitted). Refreshed after each row's admissions.
  float* const cuts = fill(w.cuts, blocks * kMr, std::numeric_limits<float>::infinity());
  for (std::int64_t i = 0; i < rows; ++i) cuts[i] = w.rows[static_cast<std::size_t>(i)].cut();
  for (std::int64_t t0 = 0; t0 < keys.count; t0 += TK) {
    const std::int64_t tc = std::min(TK, keys.count - t0);
    const std::int64_t g0 = keys.begin + t0;
    pack_keys_avx2(keys.k + t0 * d, tc, d, kpack);
    // The next tile's keys, a share per panel (a third of the pass at m = 64 without this).
    const std::int64_t next_bytes =
        std::min(TK, std::max<std::int64_t>(0, keys.count - t0 - TK)) * d * static_cast<std::int64_t>(sizeof(float));
    const std::int64_t panels = (tc + kNr - 1) / kNr;
    SampleCursor sample(seed, t0);
    // Panel outside, row blocks inside: the 16-key panel stays in L1 for every row block.
    for (std::int64_t j0 = 0; j0 < tc; j0 += kNr) {
      prefetch_share(keys.k + std::min(t0 + TK, keys.count) * d, next_bytes, j0 / kNr, panels);
      if (sample.skip(t0 + j0, kNr) != 0) continue;
      const float* kb = kpack + j0 * d;
      for (std::int64_t b = 0; b < blocks; ++b) {
        const std::int64_t i0 = b * kMr;  // first row of the block, within this thread's rows
        const std::int64_t nr = std::min(kMr, rows - i0);
        const int* lim_b = kFullLim;
        if (p.causal || j0 + kNr > tc) {
          if (!block_limits(queries, p, r0, i0, nr, g0, tc, j0, lim)) continue;
          lim_b = lim;
        }
        block_6x16(w.qpack.data() + b * kMr * d, kb, d, scale, cuts + i0, lim_b, out_block, mask);
        admit_block(mask, nr, i0, out_block, kNr, static_cast<std::uint32_t>(t0 + j0), queries, keys, p, r0, w,
                    cuts + i0);
      }
    }
  }
}

}  // namespace
}  // namespace avx2

// Optionally after seeding the cuts from a sample (SeedPlan): from 16 rows per thread the
// key-major scan (keys read in place), below it the blocked one.
void fused_topk_avx2(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, std::int64_t r0,
                     std::int64_t rows, SeedMode seed_mode, Scratch& w) {
  const std::int64_t blocks = pack_query_blocks(queries.q + r0 * p.d, rows, p.d, w.qpack);
  const SeedPlan seed = avx2::seed_cuts(queries, keys, p, r0, rows, seed_mode, w);
  if (rows >= avx2::kQueryPanel && keys.count < (std::int64_t{1} << 31)) {  // key offsets compared as int32
    if (p.causal) {
      avx2::keymajor_topk_scan<true>(queries, keys, p, r0, rows, seed, w);
    } else {
      avx2::keymajor_topk_scan<false>(queries, keys, p, r0, rows, seed, w);
    }
  } else {
    avx2::blocked_topk_scan(queries, keys, p, r0, rows, blocks, seed, w);
  }
}

}  // namespace ncsparse::cpu
