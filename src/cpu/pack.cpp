#include "cpu/pack.hpp"

#include <algorithm>

namespace ncsparse::cpu {

void pack_queries(const float* q, std::int64_t rows, std::int64_t d, float* qp) {
  for (std::int64_t c = 0; c < d; ++c)
    for (std::int64_t r = 0; r < kMr; ++r) qp[c * kMr + r] = r < rows ? q[r * d + c] : 0.0f;
}

void pack_keys(const float* k, std::int64_t count, std::int64_t d, float* kp) {
  for (std::int64_t j0 = 0; j0 < count; j0 += kNr) {
    float* out = kp + j0 * d;
    const std::int64_t n = std::min(kNr, count - j0);
    for (std::int64_t u = 0; u < n; ++u)
      for (std::int64_t c = 0; c < d; ++c) out[c * kNr + u] = k[(j0 + u) * d + c];
    for (std::int64_t u = n; u < kNr; ++u)
      for (std::int64_t c = 0; c < d; ++c) out[c * kNr + u] = 0.0f;
  }
}

std::int64_t pack_query_blocks(const float* q, std::int64_t rows, std::int64_t d, std::vector<float>& qpack) {
  const std::int64_t blocks = (rows + kMr - 1) / kMr;
  qpack.resize(static_cast<std::size_t>(blocks * kMr * d));
  for (std::int64_t b = 0; b < blocks; ++b)
    pack_queries(q + b * kMr * d, std::min(kMr, rows - b * kMr), d, qpack.data() + b * kMr * d);
  return blocks;
}

}  // namespace ncsparse::cpu
