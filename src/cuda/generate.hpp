// The generator on the device: K and V rows written straight into device memory, bit-identical
// to the host's Generator::keys_values (both evaluate src/core/gen_math.hpp).
#pragma once

#include <cstdint>

#include "ncsparse/generator.hpp"

namespace ncsparse::cuda {

// Rows [begin, begin + count) of K and V into k and v (device pointers, count·d floats each).
// Synchronous. Throws Error on a CUDA failure.
void generate_keys_values(const Generator& gen, std::int64_t begin, std::int64_t count, float* k, float* v);

// The largest Euclidean norm among `count` rows of d floats at x (device pointer), the row sums
// of squares taken in double in column order as the host does: bit-identical to the host loop.
double max_row_norm(const float* x, std::int64_t count, std::int64_t d);

}  // namespace ncsparse::cuda
