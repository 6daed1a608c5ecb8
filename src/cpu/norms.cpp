#include "cpu/norms.hpp"

#include <algorithm>

#include "cpu/isa.hpp"

namespace ncsparse::cpu {

// Portable: 8 rows at a time for independent chains (a single row's 64 dependent additions
// took 4 cycles each), each row summed in column order.
double max_row_norm_sq_generic(const float* x, std::int64_t rows, std::int64_t d) {
  constexpr std::int64_t R = 8;
  double most = 0;
  std::int64_t j = 0;
  for (; j + R <= rows; j += R) {
    double s[R] = {};
    const float* b = x + j * d;
    for (std::int64_t c = 0; c < d; ++c) {
      for (std::int64_t l = 0; l < R; ++l) {
        const double e = b[l * d + c];
        s[l] += e * e;
      }
    }
    for (std::int64_t l = 0; l < R; ++l) most = std::max(most, s[l]);
  }
  for (; j < rows; ++j) {
    double s = 0;
    for (std::int64_t c = 0; c < d; ++c) {
      const double e = x[j * d + c];
      s += e * e;
    }
    most = std::max(most, s);
  }
  return most;
}

double max_row_norm_sq(const float* x, std::int64_t rows, std::int64_t d) {
  if (rows <= 0 || d <= 0) return 0;
  return use_avx2() ? avx2::max_row_norm_sq(x, rows, d) : max_row_norm_sq_generic(x, rows, d);
}

}  // namespace ncsparse::cpu
