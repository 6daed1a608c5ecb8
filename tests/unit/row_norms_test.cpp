// cpu::max_row_norm_sq (src/cpu/norms.hpp): the same bits as the one-row loop in double, on
// the portable and the AVX2 path, for every d and row count (partial groups of 8 included),
// with NaN rows skipped as std::max skips them.
#include "cpu/norms.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "cpu/isa.hpp"
#include "engine/job.hpp"

namespace ncsparse::cpu {
namespace {

double reference(const std::vector<float>& x, std::int64_t rows, std::int64_t d) {
  double most = 0;
  for (std::int64_t j = 0; j < rows; ++j) {
    double s = 0;
    for (std::int64_t c = 0; c < d; ++c) s += double(x[j * d + c]) * double(x[j * d + c]);
    most = std::max(most, s);
  }
  return most;
}

TEST(RowNorms, BitIdenticalToTheOrderedLoop) {
  std::mt19937_64 rng(20261206);
  for (std::int64_t d : {1, 3, 8, 17, 64, 129}) {
    for (std::int64_t rows : {0, 1, 7, 8, 9, 63, 1000}) {
      std::vector<float> x(static_cast<std::size_t>(rows * d));
      // Wide exponents, so that the order of a row's sum matters in the last bits.
      std::normal_distribution<float> g(0.0f, 1.0f);
      std::uniform_int_distribution<int> e(-20, 20);
      for (float& v : x) v = std::ldexp(g(rng), e(rng));
      const double want = reference(x, rows, d);
      EXPECT_EQ(max_row_norm_sq(x.data(), rows, d), want) << "d " << d << " rows " << rows;
      EXPECT_EQ(max_row_norm_sq_generic(x.data(), rows, d), want) << "generic, d " << d << " rows " << rows;
      if (use_avx2()) EXPECT_EQ(avx2::max_row_norm_sq(x.data(), rows, d), want) << "avx2, d " << d << " rows " << rows;
    }
  }
}

TEST(RowNorms, NaNRowsAreSkippedOnEveryPath) {
  const std::int64_t d = 5, rows = 19;
  std::vector<float> x(static_cast<std::size_t>(rows * d), 1.0f);
  x[3 * d + 2] = std::numeric_limits<float>::quiet_NaN();   // in the first group of 8
  x[12 * d + 0] = std::numeric_limits<float>::quiet_NaN();  // in the second
  x[10 * d + 4] = 3.0f;                                      // the largest: 4 + 9 = 13
  EXPECT_EQ(max_row_norm_sq(x.data(), rows, d), 13.0);
  EXPECT_EQ(max_row_norm_sq_generic(x.data(), rows, d), 13.0);
  if (use_avx2()) EXPECT_EQ(avx2::max_row_norm_sq(x.data(), rows, d), 13.0);
}

}  // namespace
}  // namespace ncsparse::cpu

// engine::max_row_norm_bound: never below the true largest norm (a long double reference),
// and within 1e-11 of it, at the widths the engine meets and a very wide one.
TEST(RowNorms, BoundIsAnUpperBoundOfTheTrueNorm) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::uniform_int_distribution<int> e(-8, 8);
  for (std::int64_t d : {1, 16, 64, 128, 4096}) {
    const std::int64_t rows = 200;
    std::vector<float> x(static_cast<std::size_t>(rows * d));
    for (float& v : x) v = std::ldexp(g(rng), e(rng));
    long double most = 0;
    for (std::int64_t j = 0; j < rows; ++j) {
      long double s = 0;
      for (std::int64_t c = 0; c < d; ++c) s += static_cast<long double>(x[j * d + c]) * x[j * d + c];
      most = std::max(most, std::sqrt(s));
    }
    const double bound = ncsparse::engine::max_row_norm_bound(x.data(), rows, d);
    EXPECT_GE(static_cast<long double>(bound), most) << "d " << d;
    EXPECT_LE(static_cast<long double>(bound), most * (1 + 1e-11L)) << "d " << d;
  }
}
