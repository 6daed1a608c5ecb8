// The prefix strategies' sparse outputs summed on the device (PrefixGather in backend.hpp).
#pragma once

#include <cstdint>

#include "ncsparse/backend.hpp"

namespace ncsparse::cuda {

// The most strategies one launch sums (their accumulators live in registers).
inline constexpr std::int64_t kGatherStrategies = 8;

// g.out from the device's V rows v (count × d, global rows [begin, begin + count)). Synchronous.
// Needs g.strategies <= kGatherStrategies.
void gather_outputs(const PrefixGather& g, const float* v, std::int64_t begin, std::int64_t count);

}  // namespace ncsparse::cuda
