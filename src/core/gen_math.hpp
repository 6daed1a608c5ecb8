// The generator's arithmetic, one definition for the CPU (portable and AVX2 paths) and the CUDA
// kernels, so that every generated value is bit-identical wherever it is made.
//
// Why this is exact everywhere: every operation here is an IEEE-754 basic operation in
// round-to-nearest (+, −, ×, ÷, √ and the fused multiply-add), each of which has one correctly
// rounded result, plus integer and bit operations. Nothing calls a libm function whose last bit
// may differ between libraries (log, sin, cos): those are written out below as short
// polynomials. On the host the files that include this are compiled with -ffp-contract=off, so
// that the compiler fuses nothing on its own; on the device every operation goes through an
// explicitly rounded intrinsic (__fmul_rn, __fadd_rn, __fmaf_rn, ...), which nvcc never fuses.
// The transcendental approximations are accurate to a few units in the last place, far below
// what a random input model needs; what matters is that they are the same function everywhere.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define NCSPARSE_GEN_HD __host__ __device__ __forceinline__
#else
#define NCSPARSE_GEN_HD [[gnu::always_inline]] inline  // no out-of-line copy: AVX2 and portable objects share this header
#endif

namespace ncsparse::gen {

// ---- IEEE basic operations, never contracted ----
#if defined(__CUDA_ARCH__)
NCSPARSE_GEN_HD float fmul(float a, float b) { return __fmul_rn(a, b); }
NCSPARSE_GEN_HD float fadd(float a, float b) { return __fadd_rn(a, b); }
NCSPARSE_GEN_HD float fsub(float a, float b) { return __fsub_rn(a, b); }
NCSPARSE_GEN_HD float ffma(float a, float b, float c) { return __fmaf_rn(a, b, c); }
NCSPARSE_GEN_HD float fdiv(float a, float b) { return __fdiv_rn(a, b); }
NCSPARSE_GEN_HD float fsqrt(float a) { return __fsqrt_rn(a); }
NCSPARSE_GEN_HD double dmul(double a, double b) { return __dmul_rn(a, b); }
NCSPARSE_GEN_HD double dadd(double a, double b) { return __dadd_rn(a, b); }
NCSPARSE_GEN_HD double dsub(double a, double b) { return __dsub_rn(a, b); }
NCSPARSE_GEN_HD float to_float(double a) { return __double2float_rn(a); }
NCSPARSE_GEN_HD std::uint32_t mulhi32(std::uint32_t a, std::uint32_t b) { return __umulhi(a, b); }
NCSPARSE_GEN_HD float bits_to_float(std::uint32_t u) { return __uint_as_float(u); }
NCSPARSE_GEN_HD std::uint32_t float_to_bits(float f) { return __float_as_uint(f); }
#else
NCSPARSE_GEN_HD float fmul(float a, float b) { return a * b; }
NCSPARSE_GEN_HD float fadd(float a, float b) { return a + b; }
NCSPARSE_GEN_HD float fsub(float a, float b) { return a - b; }
NCSPARSE_GEN_HD float ffma(float a, float b, float c) { return std::fma(a, b, c); }
NCSPARSE_GEN_HD float fdiv(float a, float b) { return a / b; }
NCSPARSE_GEN_HD float fsqrt(float a) { return std::sqrt(a); }
NCSPARSE_GEN_HD double dmul(double a, double b) { return a * b; }
NCSPARSE_GEN_HD double dadd(double a, double b) { return a + b; }
NCSPARSE_GEN_HD double dsub(double a, double b) { return a - b; }
NCSPARSE_GEN_HD float to_float(double a) { return static_cast<float>(a); }
NCSPARSE_GEN_HD std::uint32_t mulhi32(std::uint32_t a, std::uint32_t b) {
  return static_cast<std::uint32_t>((static_cast<std::uint64_t>(a) * b) >> 32);
}
NCSPARSE_GEN_HD float bits_to_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
NCSPARSE_GEN_HD std::uint32_t float_to_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
#endif

// ---- Philox4x32-10 (Salmon et al., SC'11): the stream of Random123's r123::Philox4x32 ----
struct U32x4 {
  std::uint32_t v[4];
};

NCSPARSE_GEN_HD U32x4 philox_10_rounds(U32x4 ctr, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    const std::uint32_t hi0 = mulhi32(kM0, ctr.v[0]), lo0 = kM0 * ctr.v[0];
    const std::uint32_t hi1 = mulhi32(kM1, ctr.v[2]), lo1 = kM1 * ctr.v[2];
    ctr = U32x4{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
  }
  return ctr;
}

// The four words for (seed, tensor, row, group of 4 columns): every value of the generator is
// a function of these alone.
NCSPARSE_GEN_HD U32x4 philox_block(std::uint64_t seed, std::uint32_t tensor, std::uint64_t row, std::uint32_t group) {
  return philox_10_rounds(U32x4{{tensor, static_cast<std::uint32_t>(row), static_cast<std::uint32_t>(row >> 32), group}},
                    static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

// ---- uniform values ----
// (0, 1]: the top 24 bits plus one, times 2^−24 (exact).
NCSPARSE_GEN_HD float u01_open(std::uint32_t r) {
  return fmul(static_cast<float>(static_cast<std::int32_t>((r >> 8) + 1u)), 0x1p-24f);  // signed: no branch
}
// (−1, 1), symmetric: the top 24 bits as a signed integer, times 2^−23, plus 2^−24 (exact).
NCSPARSE_GEN_HD float uneg11(std::uint32_t r) {
  return fadd(fmul(static_cast<float>(static_cast<std::int32_t>(r) >> 8), 0x1p-23f), 0x1p-24f);
}

// ---- natural logarithm of u in (0, 1], float ----
// u = m·2^e with m in [√½, √2); ln m = 2·atanh(z), z = (m − 1)/(m + 1), |z| ≤ 0.172: the odd
// series to z⁹ leaves a truncation error below 2e−9 relative. m − 1 is exact (Sterbenz).
NCSPARSE_GEN_HD float log_unit(float u) {
  const std::uint32_t bits = float_to_bits(u), mant = bits & 0x007FFFFFu;
  // m in [1, 2) from the mantissa bits; above √2 (float 0x3FB504F3) halve it and raise e.
  // Integer arithmetic instead of branches, so that lane loops vectorise.
  const std::uint32_t high = (0x003504F3u - mant) >> 31;
  const int e = static_cast<int>(bits >> 23) - 127 + static_cast<int>(high);
  const float m = bits_to_float(mant | (0x3F800000u - (high << 23)));
  const float z = fdiv(fsub(m, 1.0f), fadd(m, 1.0f));
  const float z2 = fmul(z, z);
  float p = ffma(z2, 1.0f / 9.0f, 1.0f / 7.0f);
  p = ffma(z2, p, 1.0f / 5.0f);
  p = ffma(z2, p, 1.0f / 3.0f);
  p = ffma(z2, p, 1.0f);
  const float ln_m = fmul(fmul(2.0f, z), p);
  return ffma(static_cast<float>(e), 0.693147181f, ln_m);
}

// ---- sin and cos of x in [−π/4, π/4], float (Taylor to x⁹ and x¹⁰: error < 3e−9) ----
struct SinCos {
  float s, c;
};
NCSPARSE_GEN_HD SinCos sincos_reduced(float x) {
  const float x2 = fmul(x, x);
  float ps = ffma(x2, 1.0f / 362880.0f, -1.0f / 5040.0f);
  ps = ffma(x2, ps, 1.0f / 120.0f);
  ps = ffma(x2, ps, -1.0f / 6.0f);
  const float s = ffma(fmul(x, x2), ps, x);
  float pc = ffma(x2, -1.0f / 3628800.0f, 1.0f / 40320.0f);
  pc = ffma(x2, pc, -1.0f / 720.0f);
  pc = ffma(x2, pc, 1.0f / 24.0f);
  pc = ffma(x2, pc, -0.5f);
  const float c = ffma(x2, pc, 1.0f);
  return {s, c};
}

// ---- two standard normal values from two words (Box–Muller) ----
// radius √(−2 ln u1) with u1 in (0, 1]; angle 2π·u2 with u2 = k/2^24, k the top 24 bits of the
// second word. The angle is reduced with integers: quadrant q = round(4·u2), remainder
// (k − q·2^22) exact, times (π/2)/2^22 into [−π/4, π/4).
struct Pair {
  float a, b;
};
NCSPARSE_GEN_HD Pair normal_pair(std::uint32_t r1, std::uint32_t r2) {
  const float radius = fsqrt(fmul(-2.0f, log_unit(u01_open(r1))));
  const std::uint32_t k = r2 >> 8;
  const std::uint32_t q = (k + (1u << 21)) >> 22;  // 0 .. 4
  const std::int32_t rem = static_cast<std::int32_t>(k) - static_cast<std::int32_t>(q << 22);
  const SinCos t = sincos_reduced(fmul(static_cast<float>(rem), 0x1.921fb6p-22f));  // (π/2)/2^22
  // Quadrant q: (sin, cos) = (s, c), (c, −s), (−s, −c), (−c, s) for q mod 4 = 0, 1, 2, 3;
  // written as selects (no branches), so that lane loops vectorise.
  const float s0 = (q & 1u) ? t.c : t.s, c0 = (q & 1u) ? t.s : t.c;
  const float s = (q & 2u) ? -s0 : s0, c = ((q + 1u) & 2u) ? -c0 : c0;
  return {fmul(radius, c), fmul(radius, s)};
}

// Four standard values from one Philox block: normal (two Box–Muller pairs) or uniform on
// (−1, 1).
NCSPARSE_GEN_HD void standard_values(const U32x4& r, bool uniform, float out[4]) {
  if (uniform) {
    for (int i = 0; i < 4; ++i) out[i] = uneg11(r.v[i]);
    return;
  }
  const Pair p = normal_pair(r.v[0], r.v[1]);
  const Pair q = normal_pair(r.v[2], r.v[3]);
  out[0] = p.a, out[1] = p.b, out[2] = q.a, out[3] = q.b;
}

// ---- double sin and cos for RoPE: the angle in [0, 2π) ----
// q = round(a·2/π), r = a − q·π/2 in two parts (the high part has 33 significant bits, so
// q·hi is exact for q ≤ 4), then Taylor to x¹⁷ and x¹⁸ on [−π/4, π/4] (error < 1e−18).
struct SinCosD {
  double s, c;
};
NCSPARSE_GEN_HD SinCosD sincos_angle(double a) {
  constexpr double kTwoOverPi = 0.63661977236758134308;
  constexpr double kPio2Hi = 1.5707963267341256141662597656250;  // 33 significant bits
  constexpr double kPio2Lo = 6.0771005065061922518e-11;          // π/2 − kPio2Hi
  const double q = ::floor(dadd(dmul(a, kTwoOverPi), 0.5));
  const double x = dsub(dsub(a, dmul(q, kPio2Hi)), dmul(q, kPio2Lo));
  const double x2 = dmul(x, x);
  // sin: x·(1 + x²·(−1/3! + x²·(1/5! − ...))), cos: 1 + x²·(−1/2! + ...)
  constexpr double s_coef[8] = {-1.0 / 6, 1.0 / 120, -1.0 / 5040, 1.0 / 362880, -1.0 / 39916800,
                                1.0 / 6227020800.0, -1.0 / 1307674368000.0, 1.0 / 355687428096000.0};
  constexpr double c_coef[9] = {-1.0 / 2, 1.0 / 24, -1.0 / 720, 1.0 / 40320, -1.0 / 3628800, 1.0 / 479001600.0,
                                -1.0 / 87178291200.0, 1.0 / 20922789888000.0, -1.0 / 6402373705728000.0};
  double ps = s_coef[7];
  for (int i = 6; i >= 0; --i) ps = dadd(dmul(x2, ps), s_coef[i]);
  const double s = dadd(x, dmul(dmul(x, x2), ps));
  double pc = c_coef[8];
  for (int i = 7; i >= 0; --i) pc = dadd(dmul(x2, pc), c_coef[i]);
  const double c = dadd(1.0, dmul(x2, pc));
  const int quadrant = static_cast<int>(q) & 3;
  switch (quadrant) {
    case 0: return {s, c};
    case 1: return {c, -s};
    case 2: return {-s, -c};
    default: return {-c, s};
  }
}

// ---- RoPE and planted sinks on one finished row of Q or K (PAPERS.md; generator.hpp) ----
struct PositionTables {
  const double* rope_inv_freq = nullptr;  // d/2 values, or null: no RoPE
  const double* sink_dir = nullptr;       // d values (unit), or null: no sinks
  std::int64_t sinks = 0;                 // keys at positions < sinks are the sinks
  double sink_boost = 0;                  // strength·√d
};

NCSPARSE_GEN_HD void position_features(float* row, std::int64_t d, std::int64_t position, bool is_key,
                                   const PositionTables& t) {
  if (t.rope_inv_freq != nullptr) {
    const double p = static_cast<double>(position);
    for (std::int64_t i = 0; i < d / 2; ++i) {
      // fmod is exact (IEEE remainder semantics, no rounding) on both sides.
      const double angle = ::fmod(dmul(p, t.rope_inv_freq[i]), 6.283185307179586477);
      const SinCosD sc = sincos_angle(angle);
      const double x = row[2 * i], y = row[2 * i + 1];
      row[2 * i] = to_float(dsub(dmul(x, sc.c), dmul(y, sc.s)));
      row[2 * i + 1] = to_float(dadd(dmul(x, sc.s), dmul(y, sc.c)));
    }
  }
  if (t.sink_dir == nullptr) return;
  double along = 0;
  for (std::int64_t j = 0; j < d; ++j) along = dadd(along, dmul(static_cast<double>(row[j]), t.sink_dir[j]));
  double add = -along;
  if (!is_key) add = dadd(add, 1.0);
  if (is_key && position < t.sinks) add = dadd(add, t.sink_boost);
  for (std::int64_t j = 0; j < d; ++j) row[j] = to_float(dadd(static_cast<double>(row[j]), dmul(add, t.sink_dir[j])));
}

}  // namespace ncsparse::gen
