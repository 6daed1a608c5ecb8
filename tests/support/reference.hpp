// Double-precision references shared by the unit tests, written independently of src/ so that a
// bug in the library's own versions cannot hide in the comparison.
#pragma once

namespace ncsparse::test {

// Σ_{j≤q} x^j / j!, the degree-q Taylor polynomial of e^x.
inline double truncated_exp(double x, int q) {
  double term = 1, sum = 1;
  for (int j = 1; j <= q; ++j) {
    term *= x / j;
    sum += term;
  }
  return sum;
}

}  // namespace ncsparse::test
