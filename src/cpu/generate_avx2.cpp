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

// ---- Philox4x32-10 on 8 blocks, in the "split" layout ----
// Each 64-bit slot of a vector holds one block's 32-bit word in its low half: _mm256_mul_epu32
// then gives the full 32×32→64 product of 4 blocks in one instruction, its low half being the
// `lo` word and a 64-bit shift the `hi` word. The high halves of the slots carry garbage that
// no multiply reads and that the final packing drops. Blocks 0–3 in `a`, 4–7 in `b`.
struct Split {
  __m256i a, b;
};

struct Words8 {
  __m256i w[4];  // packed: 32-bit lane j is block kLaneBlock[j]
};

// The lane order after packing two split vectors with one blend: [a0 b0 a1 b1 a2 b2 a3 b3].
constexpr int kLaneBlock[kLanes] = {0, 4, 1, 5, 2, 6, 3, 7};

[[gnu::always_inline]] inline __m256i pack(__m256i a, __m256i b) {
  return _mm256_blend_epi32(a, _mm256_slli_epi64(b, 32), 0xAA);
}

// The four words of 8 Philox blocks (the same rounds as gen::philox_10_rounds); `row` and
// `group` are the blocks' counters in the split layout (64-bit slots, whole values).
[[gnu::always_inline]] inline Words8 philox8(const std::uint64_t seed, const std::uint32_t tensor, const Split& row,
                                             const Split& group) {
  const __m256i m0 = _mm256_set1_epi64x(0xD2511F53u), m1 = _mm256_set1_epi64x(0xCD9E8D57u);
  Split c0, c1 = row, c2, c3 = group;
  c0.a = c0.b = _mm256_set1_epi64x(tensor);
  c2.a = _mm256_srli_epi64(c1.a, 32);
  c2.b = _mm256_srli_epi64(c1.b, 32);
  std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    const __m256i key0 = _mm256_set1_epi32(static_cast<int>(k0)), key1 = _mm256_set1_epi32(static_cast<int>(k1));
    const __m256i p0a = _mm256_mul_epu32(c0.a, m0), p0b = _mm256_mul_epu32(c0.b, m0);
    const __m256i p1a = _mm256_mul_epu32(c2.a, m1), p1b = _mm256_mul_epu32(c2.b, m1);
    c0.a = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1a, 32), c1.a), key0);
    c0.b = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1b, 32), c1.b), key0);
    c2.a = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0a, 32), c3.a), key1);
    c2.b = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0b, 32), c3.b), key1);
    c1.a = p1a, c1.b = p1b;
    c3.a = p0a, c3.b = p0b;
  }
  return Words8{{pack(c0.a, c0.b), pack(c1.a, c1.b), pack(c2.a, c2.b), pack(c3.a, c3.b)}};
}

// ---- gen_math.hpp's transforms on 8 lanes: the same operations in the same order ----
[[gnu::always_inline]] inline __m256 u01_open(__m256i r) {
  const __m256i k = _mm256_add_epi32(_mm256_srli_epi32(r, 8), _mm256_set1_epi32(1));
  return _mm256_mul_ps(_mm256_cvtepi32_ps(k), _mm256_set1_ps(0x1p-24f));
}

[[gnu::always_inline]] inline __m256 uneg11(__m256i r) {
  return _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srai_epi32(r, 8)), _mm256_set1_ps(0x1p-23f)),
                       _mm256_set1_ps(0x1p-24f));
}

[[gnu::always_inline]] inline __m256 log_unit(__m256 u) {
  const __m256i bits = _mm256_castps_si256(u);
  const __m256i mant = _mm256_and_si256(bits, _mm256_set1_epi32(0x007FFFFF));
  const __m256i high = _mm256_srli_epi32(_mm256_sub_epi32(_mm256_set1_epi32(0x003504F3), mant), 31);
  const __m256i e = _mm256_add_epi32(_mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127)), high);
  const __m256 m = _mm256_castsi256_ps(
      _mm256_or_si256(mant, _mm256_sub_epi32(_mm256_set1_epi32(0x3F800000), _mm256_slli_epi32(high, 23))));
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 z = _mm256_div_ps(_mm256_sub_ps(m, one), _mm256_add_ps(m, one));
  const __m256 z2 = _mm256_mul_ps(z, z);
  __m256 p = _mm256_fmadd_ps(z2, _mm256_set1_ps(1.0f / 9.0f), _mm256_set1_ps(1.0f / 7.0f));
  p = _mm256_fmadd_ps(z2, p, _mm256_set1_ps(1.0f / 5.0f));
  p = _mm256_fmadd_ps(z2, p, _mm256_set1_ps(1.0f / 3.0f));
  p = _mm256_fmadd_ps(z2, p, one);
  const __m256 ln_m = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(2.0f), z), p);
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(e), _mm256_set1_ps(0.693147181f), ln_m);
}

// gen::normal_pair on 8 lanes: x gets the cosine value, y the sine value.
[[gnu::always_inline]] inline void normal_pair(__m256i r1, __m256i r2, __m256& x, __m256& y) {
  const __m256 radius = _mm256_sqrt_ps(_mm256_mul_ps(_mm256_set1_ps(-2.0f), log_unit(u01_open(r1))));
  const __m256i k = _mm256_srli_epi32(r2, 8);
  const __m256i q = _mm256_srli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(1 << 21)), 22);
  const __m256i rem = _mm256_sub_epi32(k, _mm256_slli_epi32(q, 22));
  const __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(rem), _mm256_set1_ps(0x1.921fb6p-22f));
  const __m256 t2 = _mm256_mul_ps(t, t);
  __m256 ps = _mm256_fmadd_ps(t2, _mm256_set1_ps(1.0f / 362880.0f), _mm256_set1_ps(-1.0f / 5040.0f));
  ps = _mm256_fmadd_ps(t2, ps, _mm256_set1_ps(1.0f / 120.0f));
  ps = _mm256_fmadd_ps(t2, ps, _mm256_set1_ps(-1.0f / 6.0f));
  const __m256 s = _mm256_fmadd_ps(_mm256_mul_ps(t, t2), ps, t);
  __m256 pc = _mm256_fmadd_ps(t2, _mm256_set1_ps(-1.0f / 3628800.0f), _mm256_set1_ps(1.0f / 40320.0f));
  pc = _mm256_fmadd_ps(t2, pc, _mm256_set1_ps(-1.0f / 720.0f));
  pc = _mm256_fmadd_ps(t2, pc, _mm256_set1_ps(1.0f / 24.0f));
  pc = _mm256_fmadd_ps(t2, pc, _mm256_set1_ps(-0.5f));
  const __m256 c = _mm256_fmadd_ps(t2, pc, _mm256_set1_ps(1.0f));
  // Quadrant: swap on bit 0 of q (blendv reads the sign bit), negate (exact) on bit 1 of q for
  // the sine and of q + 1 for the cosine.
  const __m256 odd = _mm256_castsi256_ps(_mm256_slli_epi32(q, 31));
  const __m256 s0 = _mm256_blendv_ps(s, c, odd), c0 = _mm256_blendv_ps(c, s, odd);
  const __m256 s_sign = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_srli_epi32(q, 1), 31));
  const __m256 c_sign =
      _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_srli_epi32(_mm256_add_epi32(q, _mm256_set1_epi32(1)), 1), 31));
  x = _mm256_mul_ps(radius, _mm256_xor_ps(c0, c_sign));
  y = _mm256_mul_ps(radius, _mm256_xor_ps(s0, s_sign));
}

[[gnu::always_inline]] inline __m256 post(const StandardRows& s, __m256 x) {
  if (s.post == Post::Clamp) return _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-s.b)), _mm256_set1_ps(s.b));
  if (s.post == Post::Scale) return _mm256_mul_ps(x, _mm256_set1_ps(s.b));
  return x;
}

// The four values of 8 blocks (after `post`): v[c] lane j is value c of block kLaneBlock[j].
[[gnu::always_inline]] inline void values8(const StandardRows& s, const Split& row, const Split& group, __m256 v[4]) {
  const Words8 r = philox8(s.seed, s.tensor, row, group);
  if (s.uniform) {
    for (int c = 0; c < 4; ++c) v[c] = uneg11(r.w[c]);
  } else {
    normal_pair(r.w[0], r.w[1], v[0], v[1]);
    normal_pair(r.w[2], r.w[3], v[2], v[3]);
  }
  for (int c = 0; c < 4; ++c) v[c] = post(s, v[c]);
}

// Stores 8 whole blocks (32 consecutive values) from the lane order of values8.
[[gnu::always_inline]] inline void store_blocks8(const __m256 v[4], float* dst) {
  // 4 × 8 transpose: t0 = [block of lane 0 | lane 4], t1 = [1 | 5], t2 = [2 | 6], t3 = [3 | 7].
  const __m256 a = _mm256_unpacklo_ps(v[0], v[1]), b = _mm256_unpackhi_ps(v[0], v[1]);
  const __m256 c = _mm256_unpacklo_ps(v[2], v[3]), d = _mm256_unpackhi_ps(v[2], v[3]);
  const __m256 t0 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(a), _mm256_castps_pd(c)));
  const __m256 t1 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(a), _mm256_castps_pd(c)));
  const __m256 t2 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(b), _mm256_castps_pd(d)));
  const __m256 t3 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(b), _mm256_castps_pd(d)));
  // Lanes 0..7 hold blocks 0 4 1 5 2 6 3 7: t0 = [0 | 2], t1 = [4 | 6], t2 = [1 | 3], t3 = [5 | 7].
  _mm256_storeu_ps(dst, _mm256_permute2f128_ps(t0, t2, 0x20));
  _mm256_storeu_ps(dst + 8, _mm256_permute2f128_ps(t0, t2, 0x31));
  _mm256_storeu_ps(dst + 16, _mm256_permute2f128_ps(t1, t3, 0x20));
  _mm256_storeu_ps(dst + 24, _mm256_permute2f128_ps(t1, t3, 0x31));
}

}  // namespace

void standard_rows(const StandardRows& s, float* out) {
  // The blocks in row-major order, 8 at a time. Their (row, group) counters live in vectors and
  // advance by counting: group += 8, then each lane past the row's end wraps to the next row
  // (several times when a row has fewer than 8 groups).
  const std::int64_t groups = (s.d + 3) / 4, total = s.rows * groups;
  const bool whole = s.d % 4 == 0;  // then block f is values 4f .. 4f + 3 of `out`
  alignas(32) std::int64_t r0[kLanes], g0[kLanes];
  for (int l = 0; l < kLanes; ++l) r0[l] = s.first + l / groups, g0[l] = l % groups;
  Split row{_mm256_load_si256(reinterpret_cast<const __m256i*>(r0)),
            _mm256_load_si256(reinterpret_cast<const __m256i*>(r0 + 4))};
  Split group{_mm256_load_si256(reinterpret_cast<const __m256i*>(g0)),
              _mm256_load_si256(reinterpret_cast<const __m256i*>(g0 + 4))};
  const __m256i step = _mm256_set1_epi64x(kLanes), wrap = _mm256_set1_epi64x(groups),
                last = _mm256_set1_epi64x(groups - 1);
  __m256 v[4];
  for (std::int64_t f0 = 0; f0 < total; f0 += kLanes) {
    values8(s, row, group, v);
    if (whole && f0 + kLanes <= total) {
      store_blocks8(v, out + 4 * f0);
    } else {
      alignas(32) float lanes[4][kLanes];
      for (int c = 0; c < 4; ++c) _mm256_store_ps(lanes[c], v[c]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(r0), row.a);
      _mm256_store_si256(reinterpret_cast<__m256i*>(r0 + 4), row.b);
      _mm256_store_si256(reinterpret_cast<__m256i*>(g0), group.a);
      _mm256_store_si256(reinterpret_cast<__m256i*>(g0 + 4), group.b);
      for (int j = 0; j < kLanes; ++j) {
        const int l = kLaneBlock[j];
        if (f0 + l >= total) continue;
        float* dst = out + (r0[l] - s.first) * s.d + 4 * g0[l];
        for (std::int64_t c = 0; c < 4 && 4 * g0[l] + c < s.d; ++c) dst[c] = lanes[c][j];
      }
    }
    group.a = _mm256_add_epi64(group.a, step);
    group.b = _mm256_add_epi64(group.b, step);
    for (;;) {
      const __m256i ma = _mm256_cmpgt_epi64(group.a, last), mb = _mm256_cmpgt_epi64(group.b, last);
      if (_mm256_testz_si256(_mm256_or_si256(ma, mb), _mm256_or_si256(ma, mb))) break;
      group.a = _mm256_sub_epi64(group.a, _mm256_and_si256(ma, wrap));
      group.b = _mm256_sub_epi64(group.b, _mm256_and_si256(mb, wrap));
      row.a = _mm256_sub_epi64(row.a, ma);  // ma is −1 where the lane wraps
      row.b = _mm256_sub_epi64(row.b, mb);
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
