// The exact (flash) softmax state of one query row over a set of keys, and its one merge.
//
// For scores s_j over the keys seen: m = max s_j, l = Σ exp(s_j − m), l2 = Σ exp(2(s_j − m)),
// o = Σ exp(s_j − m)·v_j. An empty set has m = −∞, l = l2 = 0, o = 0. The merge is the
// log-sum-exp merge of DESIGN.md §3; it is associative and commutative up to rounding.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <span>

namespace ncsparse {

// Layout of one row's state in a flat array of doubles: [m, l, l2, o_0 .. o_{d-1}].
inline constexpr std::size_t kFlashHeader = 3;
inline std::size_t flash_row_size(std::size_t d) { return kFlashHeader + d; }

// Sets a row's state to the empty set.
void flash_clear(std::span<double> row);

// Merges state b into a (both of length flash_row_size(d)). Guards the case where both sides
// are empty (max = −∞), which must stay empty rather than become NaN.
void flash_merge(std::span<double> a, std::span<const double> b);

// Attention output o / l of a merged state; a row whose every key is masked gives 0.
void flash_output(std::span<const double> row, std::span<double> out);

}  // namespace ncsparse
