// A vectorisable exp for float arguments x <= 0 (scores minus a running max).
// Relative error below 2e-7 on [−87, 0]; arguments below −87 give about 1e-38, not 0, which
// is negligible against a row sum that is at least 1. No libm call, so loops over it vectorise
// without -ffast-math.
#pragma once

#include <cstdint>
#include <cstring>

namespace ncsparse {

inline float fast_exp_nonpos(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;
  constexpr float kLn2Lo = 1.42860682030941723212e-6f;
  x = x < -87.0f ? -87.0f : x;
  // x = n·ln2 + r with |r| <= ln2/2; exp(x) = 2^n·exp(r).
  const float t = x * kLog2e;
  // Round to nearest without a branch or a libm call: adding 1.5·2^23 pushes the fraction
  // out of the mantissa (exact for |t| < 2^22; here |t| <= 126).
  constexpr float kRound = 12582912.0f;
  const float n = (t + kRound) - kRound;
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  // Degree-7 Taylor polynomial of exp on [−0.347, 0.347].
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

}  // namespace ncsparse
