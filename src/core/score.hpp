// The canonical score of a (query, key) pair, the one that enters top-k lists.
//
// A GEMM's result for one element depends on where the element falls in the tile (edge
// kernels sum in another order), so scores from a GEMM differ in the last bits between runs
// with different shard boundaries. Lists must not: the same inputs give the same top-k for
// every number of ranks. So the GEMM only filters; a key that passes the filter is re-scored
// here in double, in a fixed order, and rounded once to float.
#pragma once

#include <cmath>
#include <cstdint>

#include "ncsparse/precision.hpp"

// Functions that host code and CUDA device code both call (the rounding margin here, the
// radix keys of src/cuda/plan.hpp).
#if defined(__CUDACC__)
#define NCSPARSE_HD __host__ __device__
#else
#define NCSPARSE_HD
#endif

namespace ncsparse {

// Always inlined: the CPU backend's AVX2 files are compiled with -mavx2, and an out-of-line copy
// made there could be the one the linker keeps for the portable path too.
[[gnu::always_inline]] inline float canonical_score(const float* q, const float* k, std::int64_t d, double scale) {
  // Eight interleaved partial sums, combined in a fixed order: deterministic, and the loop
  // vectorises without any reassociation by the compiler.
  constexpr std::int64_t kLanes = 8;
  double lane[kLanes] = {};
  std::int64_t c = 0;
  for (; c + kLanes <= d; c += kLanes) {
    for (std::int64_t u = 0; u < kLanes; ++u) lane[u] += static_cast<double>(q[c + u]) * static_cast<double>(k[c + u]);
  }
  for (std::int64_t u = 0; c < d; ++c, ++u) lane[u] += static_cast<double>(q[c]) * static_cast<double>(k[c]);
  const double dot = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  // + 0.0f turns −0 into +0, so that equal scores also have equal radix keys (CUDA backend).
  return static_cast<float>(scale * dot) + 0.0f;
}

// Bound on |GEMM score − canonical score| for a score whose terms sum in absolute value to at
// most dot_bound = scale·‖q‖·max‖k‖, plus the rounding of a score of magnitude up to
// `magnitude`. A GEMM score at or below threshold − margin has a canonical score at or below
// the threshold, whatever order the GEMM summed in (Higham's γ_d bound with Cauchy–Schwarz).
// The one formula of the CPU backend and the CUDA kernels.
NCSPARSE_HD inline float score_margin_of_bound(double dot_bound, std::int64_t d, double magnitude) {
  constexpr double u = 1.0 / 16777216.0;  // unit roundoff of float, 2^-24
  const double gamma = (static_cast<double>(d) + 2) * u / (1 - (static_cast<double>(d) + 2) * u);
  return static_cast<float>(1.01 * (gamma * dot_bound + 4 * u * (magnitude + dot_bound)));
}

// The same for a query of norm q_norm against keys of norm at most k_norm_max.
inline float score_margin(double q_norm, double k_norm_max, std::int64_t d, double scale, double magnitude) {
  return score_margin_of_bound(scale * q_norm * k_norm_max, d, magnitude);
}

// How a precision rounds: q and k are each converted with relative error at most `input`, their
// products are exact in float (11- and 8-bit significands), and the float accumulation has a
// unit roundoff of at most `accumulate`.
//   FP32: no conversion; IEEE accumulation, 2^-24.
//   TF32: the tensor cores read the top 10 mantissa bits of a float (truncation: 2^-10), and
//         BF16: converted by round-to-nearest (__float2bfloat16_rn) to 7 bits: 2^-8.
//   Tensor-core accumulation in float is not IEEE round-to-nearest (addends aligned to the
//   largest exponent, low bits truncated: Fasi, Higham, Mikaitis & Pranesh, PeerJ CS 2021), so
//   for both we take 2^-22, four times float's unit roundoff.
struct PrecisionRounding {
  double input, accumulate;
};
NCSPARSE_HD inline PrecisionRounding precision_rounding(ScorePrecision p) {
  switch (p) {
    case ScorePrecision::TF32: return {1.0 / 1024, 1.0 / 4194304};
    case ScorePrecision::BF16: return {1.0 / 256, 1.0 / 4194304};
    default: return {0.0, 1.0 / 16777216};
  }
}

// Bound on |filter score − canonical score| in precision p (for FP32 exactly
// score_margin_of_bound). Proof: write q̃_i = q_i(1 + α_i), k̃_i = k_i(1 + β_i), |α_i|, |β_i| ≤ e
// (e = input). Then |Σ q̃_i k̃_i − Σ q_i k_i| ≤ (2e + e²)·Σ|q_i k_i|. The products q̃_i k̃_i are
// exact in float, and summing d of them in any order with unit roundoff a (= accumulate) errs by
// at most γ_d(a)·Σ|q̃_i k̃_i| ≤ γ_d(a)(1 + e)²·Σ|q_i k_i| (Higham, Thm 3.1; γ_{d+2} also covers
// the float scaling by s and its rounding, as in the FP32 formula). Σ|q_i k_i| ≤ ‖q‖·‖k‖
// (Cauchy–Schwarz), and s·‖q‖·‖k‖ ≤ dot_bound. The canonical score is the exact score rounded
// once to float (its double sum errs far below the float rounding), and both scores' final
// float roundings are covered by 4u(magnitude + dot_bound), u = 2^-24. The factor 1.01 absorbs
// the rounding of this formula itself.
NCSPARSE_HD inline float score_margin_of_bound(double dot_bound, std::int64_t d, double magnitude, ScorePrecision p) {
  if (p == ScorePrecision::FP32) return score_margin_of_bound(dot_bound, d, magnitude);
  const PrecisionRounding r = precision_rounding(p);
  constexpr double u = 1.0 / 16777216.0;
  const double n = static_cast<double>(d) + 2;
  const double gamma = n * r.accumulate / (1 - n * r.accumulate);
  const double conversion = 2 * r.input + r.input * r.input;
  const double growth = (1 + r.input) * (1 + r.input);
  return static_cast<float>(1.01 * ((conversion + gamma * growth) * dot_bound + 4 * u * (magnitude + dot_bound)));
}

}  // namespace ncsparse
