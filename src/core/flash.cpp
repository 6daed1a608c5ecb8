#include "ncsparse/flash.hpp"

#include <algorithm>

#include "ncsparse/error.hpp"

namespace ncsparse {

void flash_clear(std::span<double> row) {
  row[0] = -std::numeric_limits<double>::infinity();
  std::fill(row.begin() + 1, row.end(), 0.0);
}

void flash_merge(std::span<double> a, std::span<const double> b) {
  NCSPARSE_ASSERT(a.size() == b.size());
  const double ma = a[0], mb = b[0];
  if (mb == -std::numeric_limits<double>::infinity()) return;  // b empty: nothing to add
  if (ma == -std::numeric_limits<double>::infinity()) {
    std::copy(b.begin(), b.end(), a.begin());
    return;
  }
  const double m = std::max(ma, mb);
  const double fa = std::exp(ma - m), fb = std::exp(mb - m);
  a[0] = m;
  a[1] = a[1] * fa + b[1] * fb;
  a[2] = a[2] * fa * fa + b[2] * fb * fb;
  for (std::size_t i = kFlashHeader; i < a.size(); ++i) a[i] = a[i] * fa + b[i] * fb;
}

void flash_output(std::span<const double> row, std::span<double> out) {
  const double l = row[1];
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = l > 0 ? row[kFlashHeader + i] / l : 0.0;
}

}  // namespace ncsparse
