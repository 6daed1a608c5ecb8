// The precision a backend's score GEMM filters in (--score-precision). Only the filter: a key
// that passes it is re-scored canonically (core/score.hpp), so top-k lists never depend on it.
// The margin that keeps the filter rigorous for each precision is score_margin_of_bound in
// core/score.hpp, with its proof.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ncsparse {

enum class ScorePrecision { FP32, TF32, BF16 };

inline const char* precision_name(ScorePrecision p) {
  switch (p) {
    case ScorePrecision::TF32: return "tf32";
    case ScorePrecision::BF16: return "bf16";
    default: return "fp32";
  }
}

inline std::optional<ScorePrecision> parse_precision(std::string_view s) {
  if (s == "fp32") return ScorePrecision::FP32;
  if (s == "tf32") return ScorePrecision::TF32;
  if (s == "bf16") return ScorePrecision::BF16;
  return std::nullopt;
}

}  // namespace ncsparse
