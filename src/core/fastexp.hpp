// A vectorisable exp for float arguments x <= 0 (scores minus a running max).
// Relative error below 2e-7 on [−87, 0]; arguments below −87 give about 1e-38, not 0, which
// is negligible against a row sum that is at least 1. No libm call, so loops over it vectorise
// without -ffast-math.
//
// Written once, over the operations of a lane type: the scalar function below, and the SSE2,
// AVX2 and AVX2 + FMA lanes of the CPU backend (src/cpu/simd_*.hpp), run the same operations in
// the same order, so every lane rounds exactly as the scalar function does (the FMA lanes fuse
// each multiply-add and round once, by design).
#pragma once

#include <cstdint>
#include <cstring>

namespace ncsparse {

// Ops: V (the lane type), set1, mul, max, round (to nearest), fma(a, b, c) = a·b + c,
// fnma(a, b, c) = c − a·b, pow2(n) = 2^n for integral n.
template <class Ops>
[[gnu::always_inline]] inline typename Ops::V fast_exp_nonpos(typename Ops::V x) {
  using V = typename Ops::V;
  x = Ops::max(x, Ops::set1(-87.0f));
  // x = n·ln2 + r with |r| <= ln2/2; exp(x) = 2^n·exp(r).
  const V n = Ops::round(Ops::mul(x, Ops::set1(1.44269504088896341f)));
  const V r = Ops::fnma(n, Ops::set1(1.42860682030941723212e-6f), Ops::fnma(n, Ops::set1(0.693145751953125f), x));
  // Degree-7 Taylor polynomial of exp on [−0.347, 0.347].
  V p = Ops::set1(1.0f / 5040.0f);
  p = Ops::fma(p, r, Ops::set1(1.0f / 720.0f));
  p = Ops::fma(p, r, Ops::set1(1.0f / 120.0f));
  p = Ops::fma(p, r, Ops::set1(1.0f / 24.0f));
  p = Ops::fma(p, r, Ops::set1(1.0f / 6.0f));
  p = Ops::fma(p, r, Ops::set1(0.5f));
  p = Ops::fma(p, r, Ops::set1(1.0f));
  p = Ops::fma(p, r, Ops::set1(1.0f));
  return Ops::mul(p, Ops::pow2(n));
}

// One float lane; a·b + c is two roundings where contraction is off (src/cpu is built so).
struct ScalarExpOps {
  using V = float;
  [[gnu::always_inline]] static float set1(float a) { return a; }
  [[gnu::always_inline]] static float mul(float a, float b) { return a * b; }
  [[gnu::always_inline]] static float max(float a, float b) { return a < b ? b : a; }
  // Round to nearest without a branch or a libm call: adding 1.5·2^23 pushes the fraction
  // out of the mantissa (exact for |t| < 2^22; here |t| <= 126).
  [[gnu::always_inline]] static float round(float t) { return (t + 12582912.0f) - 12582912.0f; }
  [[gnu::always_inline]] static float fma(float a, float b, float c) { return a * b + c; }
  [[gnu::always_inline]] static float fnma(float a, float b, float c) { return c - a * b; }
  [[gnu::always_inline]] static float pow2(float n) {
    const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return scale;
  }
};

[[gnu::always_inline]] inline float fast_exp_nonpos(float x) { return fast_exp_nonpos<ScalarExpOps>(x); }

}  // namespace ncsparse
