// The generator's bulk kernels on AVX-512F (compiled with -mavx512f -mfma; run only when
// use_avx512()). The same operations in the same order as the portable path (generate.cpp) and
// the AVX2 path, hence the same bits: gen_math.hpp's functions written out on 16 lanes, each
// operation an IEEE basic operation or an exact integer one, and the projection a register
// blocked kernel whose every element is one in-order chain of fused multiply-adds.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "core/gen_math.hpp"
#include "cpu/generate.hpp"

namespace ncsparse::cpu::avx512 {

namespace {

constexpr int kLanes = 16;

// ---- Philox4x32-10 on 16 blocks, in the "split" layout of generate_avx2.cpp ----
// Each 64-bit slot holds one block's word in its low half, so that _mm512_mul_epu32 forms the
// whole 32×32→64 product of 8 blocks at once; the high halves carry garbage that no multiply
// reads and that packing drops. Blocks 0–7 in `a`, 8–15 in `b`.
struct Split {
  __m512i a, b;
};

struct Words16 {
  __m512i w[4];  // packed: lane j is block j
};

// The low halves of a's and b's slots, in block order (one two-source permute).
[[gnu::always_inline]] inline __m512i pack(__m512i a, __m512i b) {
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  return _mm512_permutex2var_epi32(a, even, b);
}

// The four words of 16 Philox blocks (the same rounds as gen::philox_10_rounds); `row` and
// `group` are the blocks' counters in the split layout (64-bit slots, whole values).
[[gnu::always_inline]] inline Words16 philox16(std::uint64_t seed, std::uint32_t tensor, const Split& row,
                                               const Split& group) {
  const __m512i m0 = _mm512_set1_epi64(0xD2511F53u), m1 = _mm512_set1_epi64(0xCD9E8D57u);
  Split c0, c1 = row, c2, c3 = group;
  c0.a = c0.b = _mm512_set1_epi64(tensor);
  c2.a = _mm512_srli_epi64(c1.a, 32);
  c2.b = _mm512_srli_epi64(c1.b, 32);
  std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    const __m512i key0 = _mm512_set1_epi32(static_cast<int>(k0)), key1 = _mm512_set1_epi32(static_cast<int>(k1));
    const __m512i p0a = _mm512_mul_epu32(c0.a, m0), p0b = _mm512_mul_epu32(c0.b, m0);
    const __m512i p1a = _mm512_mul_epu32(c2.a, m1), p1b = _mm512_mul_epu32(c2.b, m1);
    // 0x96: the three-way exclusive or.
    c0.a = _mm512_ternarylogic_epi32(_mm512_srli_epi64(p1a, 32), c1.a, key0, 0x96);
    c0.b = _mm512_ternarylogic_epi32(_mm512_srli_epi64(p1b, 32), c1.b, key0, 0x96);
    c2.a = _mm512_ternarylogic_epi32(_mm512_srli_epi64(p0a, 32), c3.a, key1, 0x96);
    c2.b = _mm512_ternarylogic_epi32(_mm512_srli_epi64(p0b, 32), c3.b, key1, 0x96);
    c1.a = p1a, c1.b = p1b;
    c3.a = p0a, c3.b = p0b;
  }
  return Words16{{pack(c0.a, c0.b), pack(c1.a, c1.b), pack(c2.a, c2.b), pack(c3.a, c3.b)}};
}

// ---- gen_math.hpp's transforms on 16 lanes: the same operations in the same order ----
[[gnu::always_inline]] inline __m512 u01_open(__m512i r) {
  const __m512i k = _mm512_add_epi32(_mm512_srli_epi32(r, 8), _mm512_set1_epi32(1));
  return _mm512_mul_ps(_mm512_cvtepi32_ps(k), _mm512_set1_ps(0x1p-24f));
}

[[gnu::always_inline]] inline __m512 uneg11(__m512i r) {
  return _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srai_epi32(r, 8)), _mm512_set1_ps(0x1p-23f)),
                       _mm512_set1_ps(0x1p-24f));
}

[[gnu::always_inline]] inline __m512 log_unit(__m512 u) {
  const __m512i bits = _mm512_castps_si512(u);
  const __m512i mant = _mm512_and_si512(bits, _mm512_set1_epi32(0x007FFFFF));
  const __m512i high = _mm512_srli_epi32(_mm512_sub_epi32(_mm512_set1_epi32(0x003504F3), mant), 31);
  const __m512i e = _mm512_add_epi32(_mm512_sub_epi32(_mm512_srli_epi32(bits, 23), _mm512_set1_epi32(127)), high);
  const __m512 m = _mm512_castsi512_ps(
      _mm512_or_si512(mant, _mm512_sub_epi32(_mm512_set1_epi32(0x3F800000), _mm512_slli_epi32(high, 23))));
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 z = _mm512_div_ps(_mm512_sub_ps(m, one), _mm512_add_ps(m, one));
  const __m512 z2 = _mm512_mul_ps(z, z);
  __m512 p = _mm512_fmadd_ps(z2, _mm512_set1_ps(1.0f / 9.0f), _mm512_set1_ps(1.0f / 7.0f));
  p = _mm512_fmadd_ps(z2, p, _mm512_set1_ps(1.0f / 5.0f));
  p = _mm512_fmadd_ps(z2, p, _mm512_set1_ps(1.0f / 3.0f));
  p = _mm512_fmadd_ps(z2, p, one);
  const __m512 ln_m = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(2.0f), z), p);
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(e), _mm512_set1_ps(0.693147181f), ln_m);
}

// gen::normal_pair on 16 lanes: x gets the cosine value, y the sine value.
[[gnu::always_inline]] inline void normal_pair(__m512i r1, __m512i r2, __m512& x, __m512& y) {
  const __m512 radius = _mm512_sqrt_ps(_mm512_mul_ps(_mm512_set1_ps(-2.0f), log_unit(u01_open(r1))));
  const __m512i k = _mm512_srli_epi32(r2, 8);
  const __m512i q = _mm512_srli_epi32(_mm512_add_epi32(k, _mm512_set1_epi32(1 << 21)), 22);
  const __m512i rem = _mm512_sub_epi32(k, _mm512_slli_epi32(q, 22));
  const __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(rem), _mm512_set1_ps(0x1.921fb6p-22f));
  const __m512 t2 = _mm512_mul_ps(t, t);
  __m512 ps = _mm512_fmadd_ps(t2, _mm512_set1_ps(1.0f / 362880.0f), _mm512_set1_ps(-1.0f / 5040.0f));
  ps = _mm512_fmadd_ps(t2, ps, _mm512_set1_ps(1.0f / 120.0f));
  ps = _mm512_fmadd_ps(t2, ps, _mm512_set1_ps(-1.0f / 6.0f));
  const __m512 s = _mm512_fmadd_ps(_mm512_mul_ps(t, t2), ps, t);
  __m512 pc = _mm512_fmadd_ps(t2, _mm512_set1_ps(-1.0f / 3628800.0f), _mm512_set1_ps(1.0f / 40320.0f));
  pc = _mm512_fmadd_ps(t2, pc, _mm512_set1_ps(-1.0f / 720.0f));
  pc = _mm512_fmadd_ps(t2, pc, _mm512_set1_ps(1.0f / 24.0f));
  pc = _mm512_fmadd_ps(t2, pc, _mm512_set1_ps(-0.5f));
  const __m512 c = _mm512_fmadd_ps(t2, pc, _mm512_set1_ps(1.0f));
  // Quadrant: swap on bit 0 of q, negate (exact: the sign bit) on bit 1 of q for the sine and
  // of q + 1 for the cosine.
  const __mmask16 odd = _mm512_test_epi32_mask(q, _mm512_set1_epi32(1));
  const __m512 s0 = _mm512_mask_blend_ps(odd, s, c), c0 = _mm512_mask_blend_ps(odd, c, s);
  const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  const __m512i s_sign = _mm512_and_si512(_mm512_slli_epi32(q, 30), sign);
  const __m512i c_sign = _mm512_and_si512(_mm512_slli_epi32(_mm512_add_epi32(q, _mm512_set1_epi32(1)), 30), sign);
  x = _mm512_mul_ps(radius, _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(c0), c_sign)));
  y = _mm512_mul_ps(radius, _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(s0), s_sign)));
}

[[gnu::always_inline]] inline __m512 post(const StandardRows& s, __m512 x) {
  if (s.post == Post::Clamp) return _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-s.b)), _mm512_set1_ps(s.b));
  if (s.post == Post::Scale) return _mm512_mul_ps(x, _mm512_set1_ps(s.b));
  return x;
}

// The four values of 16 blocks (after `post`): v[c] lane j is value c of block j.
[[gnu::always_inline]] inline void values16(const StandardRows& s, const Split& row, const Split& group, __m512 v[4]) {
  const Words16 r = philox16(s.seed, s.tensor, row, group);
  if (s.uniform) {
    for (int c = 0; c < 4; ++c) v[c] = uneg11(r.w[c]);
  } else {
    normal_pair(r.w[0], r.w[1], v[0], v[1]);
    normal_pair(r.w[2], r.w[3], v[2], v[3]);
  }
  for (int c = 0; c < 4; ++c) v[c] = post(s, v[c]);
}

// Stores 16 whole blocks (64 consecutive values): a 4 × 16 transpose.
[[gnu::always_inline]] inline void store_blocks16(const __m512 v[4], float* dst) {
  const __m512 a = _mm512_unpacklo_ps(v[0], v[1]), b = _mm512_unpackhi_ps(v[0], v[1]);
  const __m512 c = _mm512_unpacklo_ps(v[2], v[3]), d = _mm512_unpackhi_ps(v[2], v[3]);
  // t_j, 128-bit lane i: block 4i + j.
  const __m512 t0 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(c)));
  const __m512 t1 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(c)));
  const __m512 t2 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(b), _mm512_castps_pd(d)));
  const __m512 t3 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(b), _mm512_castps_pd(d)));
  // A 4 × 4 transpose of 128-bit lanes.
  const __m512 u0 = _mm512_shuffle_f32x4(t0, t1, 0x44), u1 = _mm512_shuffle_f32x4(t2, t3, 0x44);
  const __m512 u2 = _mm512_shuffle_f32x4(t0, t1, 0xEE), u3 = _mm512_shuffle_f32x4(t2, t3, 0xEE);
  _mm512_storeu_ps(dst, _mm512_shuffle_f32x4(u0, u1, 0x88));
  _mm512_storeu_ps(dst + 16, _mm512_shuffle_f32x4(u0, u1, 0xDD));
  _mm512_storeu_ps(dst + 32, _mm512_shuffle_f32x4(u2, u3, 0x88));
  _mm512_storeu_ps(dst + 48, _mm512_shuffle_f32x4(u2, u3, 0xDD));
}

}  // namespace

void standard_rows(const StandardRows& s, float* out) {
  // The blocks in row-major order, 16 at a time. Their (row, group) counters live in vectors
  // and advance by counting: group += 16, then each lane past the row's end wraps to the next
  // row (several times when a row has fewer than 16 groups).
  const std::int64_t groups = (s.d + 3) / 4, total = s.rows * groups;
  const bool whole = s.d % 4 == 0;  // then block f is values 4f .. 4f + 3 of `out`
  alignas(64) std::int64_t r0[kLanes], g0[kLanes];
  for (int l = 0; l < kLanes; ++l) r0[l] = s.first + l / groups, g0[l] = l % groups;
  Split row{_mm512_load_si512(r0), _mm512_load_si512(r0 + 8)};
  Split group{_mm512_load_si512(g0), _mm512_load_si512(g0 + 8)};
  const __m512i step = _mm512_set1_epi64(kLanes), wrap = _mm512_set1_epi64(groups), one = _mm512_set1_epi64(1);
  __m512 v[4];
  for (std::int64_t f0 = 0; f0 < total; f0 += kLanes) {
    values16(s, row, group, v);
    if (whole && f0 + kLanes <= total) {
      store_blocks16(v, out + 4 * f0);
    } else {
      alignas(64) float lanes[4][kLanes];
      for (int c = 0; c < 4; ++c) _mm512_store_ps(lanes[c], v[c]);
      _mm512_store_si512(r0, row.a);
      _mm512_store_si512(r0 + 8, row.b);
      _mm512_store_si512(g0, group.a);
      _mm512_store_si512(g0 + 8, group.b);
      for (int l = 0; l < kLanes && f0 + l < total; ++l) {
        float* dst = out + (r0[l] - s.first) * s.d + 4 * g0[l];
        for (std::int64_t c = 0; c < 4 && 4 * g0[l] + c < s.d; ++c) dst[c] = lanes[c][l];
      }
    }
    group.a = _mm512_add_epi64(group.a, step);
    group.b = _mm512_add_epi64(group.b, step);
    for (;;) {
      const __mmask8 ma = _mm512_cmpge_epi64_mask(group.a, wrap), mb = _mm512_cmpge_epi64_mask(group.b, wrap);
      if ((ma | mb) == 0) break;
      group.a = _mm512_mask_sub_epi64(group.a, ma, group.a, wrap);
      group.b = _mm512_mask_sub_epi64(group.b, mb, group.b, wrap);
      row.a = _mm512_mask_add_epi64(row.a, ma, row.a, one);
      row.b = _mm512_mask_add_epi64(row.b, mb, row.b, one);
    }
  }
}

namespace {

// Rows i0 .. i0 + R − 1, columns j0 .. j0 + 16·C − 1 (the last vector masked by `tail`):
// R·C accumulators, t in order, one fused multiply-add per element and step.
template <int R, int C>
[[gnu::always_inline]] inline void block(const float* x, const float* w, std::int64_t i0, std::int64_t j0,
                                         std::int64_t inner, std::int64_t cols, __mmask16 tail, float* out) {
  __m512 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  for (std::int64_t t = 0; t < inner; ++t) {
    __m512 wt[C];
    for (int c = 0; c < C; ++c) {
      const __mmask16 m = c == C - 1 ? tail : static_cast<__mmask16>(0xFFFF);
      wt[c] = _mm512_maskz_loadu_ps(m, w + t * cols + j0 + 16 * c);
    }
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(x[(i0 + r) * inner + t]);
      for (int c = 0; c < C; ++c) acc[r][c] = _mm512_fmadd_ps(a, wt[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      const __mmask16 m = c == C - 1 ? tail : static_cast<__mmask16>(0xFFFF);
      _mm512_mask_storeu_ps(out + (i0 + r) * cols + j0 + 16 * c, m, acc[r][c]);
    }
  }
}

template <int R>
[[gnu::always_inline]] inline void row_block(const float* x, const float* w, std::int64_t i, std::int64_t inner,
                                             std::int64_t cols, float* out) {
  std::int64_t j = 0;
  for (; j + 64 <= cols; j += 64) block<R, 4>(x, w, i, j, inner, cols, 0xFFFF, out);
  for (; j + 16 <= cols; j += 16) block<R, 1>(x, w, i, j, inner, cols, 0xFFFF, out);
  if (j < cols) block<R, 1>(x, w, i, j, inner, cols, static_cast<__mmask16>((1u << (cols - j)) - 1), out);
}

}  // namespace

void project_canonical(const float* x, const float* w, std::int64_t rows, std::int64_t inner, std::int64_t cols,
                       float* out) {
  std::int64_t i = 0;
  for (; i + 4 <= rows; i += 4) row_block<4>(x, w, i, inner, cols, out);
  for (; i < rows; ++i) row_block<1>(x, w, i, inner, cols, out);
}

}  // namespace ncsparse::cpu::avx512
