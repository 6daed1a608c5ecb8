// ncsparse fit: the power-law fit on synthetic data with a known exponent, its confidence
// interval, the quantiles behind it, the covering α; and the budget alignment of the study
// files shipped in data/studies (the paper's equal-compute protocol).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "study/fit.hpp"
#include "study/study_spec.hpp"

namespace ncsparse::study {
namespace {

std::vector<FitPoint> synthetic(double a, double c, double noise, int seeds, std::uint64_t rng_seed) {
  std::mt19937_64 rng(rng_seed);
  std::normal_distribution<double> normal(0, noise);
  std::vector<FitPoint> pts;
  for (int e = 10; e <= 22; e += 2) {
    for (int s = 0; s < seeds; ++s) {
      const double n = std::ldexp(1.0, e);
      pts.push_back({n, a * std::pow(n, c) * std::exp(noise > 0 ? normal(rng) : 0.0)});
    }
  }
  return pts;
}

TEST(Fit, QuantilesMatchTables) {
  EXPECT_NEAR(normal_quantile(0.975), 1.959964, 1e-5);
  EXPECT_NEAR(normal_quantile(0.5), 0, 1e-12);
  EXPECT_NEAR(student_t_quantile(0.975, 1), 12.7062, 1e-3);
  EXPECT_NEAR(student_t_quantile(0.975, 2), 4.3027, 1e-4);
  EXPECT_NEAR(student_t_quantile(0.975, 5), 2.5706, 1e-4);
  EXPECT_NEAR(student_t_quantile(0.975, 10), 2.2281, 1e-4);
  EXPECT_NEAR(student_t_quantile(0.995, 30), 2.7500, 1e-4);
  EXPECT_NEAR(student_t_quantile(0.025, 10), -2.2281, 1e-4);
  EXPECT_NEAR(student_t_quantile(0.975, 1e7), 1.959964, 1e-5);
}

TEST(Fit, ExactPowerLawGivesItsExponent) {
  for (double c : {-0.3, 0.0, 0.25, 0.5, 0.9}) {
    const PowerLawFit f = fit_power_law(synthetic(3.5, c, 0, 2, 1));
    ASSERT_TRUE(f.ok) << f.why;
    EXPECT_NEAR(f.c, c, 1e-10);
    EXPECT_NEAR(std::exp(f.log_a), 3.5, 1e-8);
    EXPECT_NEAR(f.c_hi - f.c_lo, 0, 1e-8);
    EXPECT_EQ(f.points, 14);
    EXPECT_DOUBLE_EQ(f.n_min, 1024);
    EXPECT_DOUBLE_EQ(f.n_max, 4194304);
  }
}

// With log-normal noise the 95% interval covers the true exponent in about 95% of repetitions,
// and its width shrinks with more seeds.
TEST(Fit, ConfidenceIntervalCoversTheKnownExponent) {
  const double c = 0.4;
  int covered = 0;
  const int reps = 400;
  double width3 = 0, width12 = 0;
  for (int r = 0; r < reps; ++r) {
    const PowerLawFit f = fit_power_law(synthetic(2, c, 0.3, 3, 100 + r));
    ASSERT_TRUE(f.ok);
    covered += f.c_lo <= c && c <= f.c_hi;
    width3 += f.c_hi - f.c_lo;
    width12 += fit_power_law(synthetic(2, c, 0.3, 12, 9000 + r)).c_hi - fit_power_law(synthetic(2, c, 0.3, 12, 9000 + r)).c_lo;
  }
  EXPECT_GE(covered, reps * 90 / 100);
  EXPECT_LE(covered, reps * 99 / 100);
  EXPECT_LT(width12, width3 * 0.6);
}

TEST(Fit, ZerosAreSkippedAndTooFewPointsSaySo) {
  std::vector<FitPoint> pts = {{1024, 0}, {4096, 5}, {16384, 10}, {65536, 20}};
  const PowerLawFit f = fit_power_law(pts);
  ASSERT_TRUE(f.ok);
  EXPECT_EQ(f.skipped, 1);
  EXPECT_EQ(f.points, 3);
  EXPECT_NEAR(f.c, 0.5, 1e-12);
  const PowerLawFit g = fit_power_law(std::vector<FitPoint>{{1024, 1}, {1024, 2}, {1024, 3}});
  EXPECT_FALSE(g.ok);
  EXPECT_NE(g.why.find("2 or more lengths"), std::string::npos) << g.why;
  EXPECT_FALSE(fit_power_law(std::vector<FitPoint>{{1024, 1}, {4096, 2}}).ok);
  EXPECT_THROW(fit_power_law(pts, 1.5), Error);
}

TEST(Fit, CoveringAlphaCoversEveryPoint) {
  const std::vector<FitPoint> pts = {{1024, 40}, {4096, 70}, {16384, 200}};
  const double c = 0.5;
  const double alpha = covering_alpha(pts, c);
  for (const FitPoint& p : pts) EXPECT_GE(std::ceil(alpha * std::pow(p.n, c)), p.y);
  EXPECT_NEAR(alpha, 1.57, 1e-12);  // 200/128 = 1.5625, rounded up to three digits
}

TEST(Fit, BadOptionsAreUsageErrors) {
  FitOptions o;
  o.confidence = 1;
  try {
    format_fit("/nonexistent.h5", o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitUsage);
  }
  EXPECT_THROW(parse_fit_format("xml"), Error);
}

// Budget alignment, by hand: lengths 1024 and 4096 with const:64 give a total of 128; sqrt
// needs ⌈32α⌉ + ⌈64α⌉ = 128, reachable (α = 1.328: 43 + 85).
TEST(BudgetAlignment, HandComputedSqrtTotal) {
  const std::vector<std::int64_t> lengths = {1024, 4096};
  ASSERT_EQ(total_k(parse_window("const:64"), lengths), 128);
  const Alignment a = align_window("sqrt", lengths, 128, "t");
  EXPECT_EQ(a.total, 128);
  EXPECT_EQ(window_k(a.spec, 1024) + window_k(a.spec, 4096), 128);
  EXPECT_GT(a.alpha, 42.0 / 32);
  EXPECT_LE(a.alpha, 43.0 / 32);
  // log at the same budget: ⌈α ln 1024⌉ + ⌈α ln 4096⌉ = 128.
  const Alignment l = align_window("log", lengths, 128, "t");
  EXPECT_EQ(l.total, 128);
}

// Every shipped study that aligns budgets spends the reference's total (to within one key per
// length, the most the ceilings can force) with every aligned strategy.
TEST(BudgetAlignment, ShippedStudiesSpendEqualCompute) {
  const std::filesystem::path dir = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "data" / "studies";
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  int aligned = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.path().extension() != ".toml") continue;
    SCOPED_TRACE(entry.path().string());
    const StudySpec s = parse_study_file(entry.path().string());
    if (!s.aligned) continue;
    ++aligned;
    EXPECT_EQ(s.reference_total, total_k(s.reference, s.n));
    for (const Alignment& a : s.alignments) {
      EXPECT_EQ(a.total, total_k(a.spec, s.n)) << a.spec.text;
      EXPECT_LE(std::llabs(a.total - s.reference_total), static_cast<long long>(s.n.size())) << a.spec.text;
    }
  }
  EXPECT_GE(aligned, 1);
}

}  // namespace
}  // namespace ncsparse::study
