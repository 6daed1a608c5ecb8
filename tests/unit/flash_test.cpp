// The exact (flash) softmax state and its log-sum-exp merge, against a one-shot double
// computation; and the vectorisable exp used by the CPU backend.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/fastexp.hpp"
#include "ncsparse/flash.hpp"

namespace ncsparse {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Reference {
  double m = -kInf, l = 0, l2 = 0;
  std::vector<double> o;
  double o_scale = 0;  // Σ e^{s−m}·|v| per component bound, for tolerances
};

Reference one_shot(const std::vector<double>& s, const std::vector<std::vector<double>>& v, std::size_t d) {
  Reference r;
  r.o.assign(d, 0.0);
  for (double x : s) r.m = std::max(r.m, x);
  for (std::size_t j = 0; j < s.size(); ++j) {
    const double e = std::exp(s[j] - r.m);
    r.l += e;
    r.l2 += std::exp(2.0 * (s[j] - r.m));
    double vmax = 0;
    for (std::size_t c = 0; c < d; ++c) {
      r.o[c] += e * v[j][c];
      vmax = std::max(vmax, std::abs(v[j][c]));
    }
    r.o_scale += e * vmax;
  }
  return r;
}

std::vector<double> singleton(double s, const std::vector<double>& v) {
  std::vector<double> st(flash_row_size(v.size()));
  st[0] = s;
  st[1] = 1;
  st[2] = 1;
  std::copy(v.begin(), v.end(), st.begin() + kFlashHeader);
  return st;
}

std::vector<double> cleared(std::size_t d) {
  std::vector<double> st(flash_row_size(d), 12345.0);  // garbage that flash_clear must replace
  flash_clear(st);
  return st;
}

void expect_matches(const std::vector<double>& st, const Reference& r, const std::string& what) {
  const std::size_t d = r.o.size();
  ASSERT_EQ(st.size(), flash_row_size(d));
  if (r.l == 0) {  // empty set
    EXPECT_EQ(st[0], -kInf) << what;
    EXPECT_EQ(st[1], 0.0) << what;
    EXPECT_EQ(st[2], 0.0) << what;
    for (std::size_t c = 0; c < d; ++c) EXPECT_EQ(st[kFlashHeader + c], 0.0) << what;
    return;
  }
  EXPECT_EQ(st[0], r.m) << what;  // the max is exact
  EXPECT_NEAR(st[1], r.l, 1e-12 * r.l) << what;
  EXPECT_NEAR(st[2], r.l2, 1e-12 * r.l2) << what;
  for (std::size_t c = 0; c < d; ++c) {
    EXPECT_NEAR(st[kFlashHeader + c], r.o[c], 1e-12 * r.o_scale + 1e-300) << what << " o[" << c << "]";
  }
  for (double x : st) EXPECT_FALSE(std::isnan(x)) << what;
}

// Scores of one row with a given flavour of extremes.
std::vector<double> make_scores(std::mt19937_64& rng, std::size_t n, int flavour) {
  std::normal_distribution<double> normal(0.0, 3.0);
  std::vector<double> s(n);
  for (auto& x : s) x = normal(rng);
  if (n == 0) return s;
  switch (flavour) {
    case 1:
      s[rng() % n] = 1e3;
      break;  // one huge score
    case 2:
      s[rng() % n] = 80.0;
      s[rng() % n] = 79.5;
      break;  // large, e^80 overflows float
    case 3:
      for (auto& x : s)
        if (rng() % 2) x = -1e3;
      break;  // many tiny scores
    case 4:
      for (auto& x : s) x = -1e3 + normal(rng);
      break;  // every score tiny
    case 5:
      for (auto& x : s) x = 700.0 + normal(rng);
      break;  // every score huge
    case 6:
      for (auto& x : s) x = (rng() % 2) ? 1e3 : -1e3;
      break;  // two far clusters
    default:
      break;
  }
  return s;
}

TEST(FlashMerge, RandomPartitionsAndTreesMatchOneShot) {
  std::mt19937_64 rng(0xF1A5);
  std::normal_distribution<double> normal(0.0, 1.0);
  int checked = 0;
  for (int trial = 0; trial < 700; ++trial) {
    const std::size_t d = 1 + rng() % 9;
    const std::size_t n = rng() % 120;
    const int flavour = trial % 7;
    const std::vector<double> s = make_scores(rng, n, flavour);
    std::vector<std::vector<double>> v(n, std::vector<double>(d));
    for (auto& row : v)
      for (auto& x : row) x = normal(rng) + 0.5;
    const Reference ref = one_shot(s, v, d);

    // Split the keys into random parts (some empty); build each part by sequential merges.
    const std::size_t parts = 1 + rng() % 8;
    std::vector<std::vector<double>> states(parts, cleared(d));
    for (std::size_t j = 0; j < n; ++j) {
      const std::size_t p = rng() % parts;
      flash_merge(states[p], singleton(s[j], v[j]));
    }
    // Merge the parts in a random tree and order.
    while (states.size() > 1) {
      const std::size_t i = rng() % states.size();
      const std::size_t k = rng() % states.size();
      if (i == k) continue;
      flash_merge(states[i], states[k]);
      states.erase(states.begin() + static_cast<std::ptrdiff_t>(k));
    }
    expect_matches(states[0], ref, "trial " + std::to_string(trial) + " flavour " + std::to_string(flavour));
    if (n > 0) {
      std::vector<double> out(d, 99.0);
      flash_output(states[0], out);
      for (std::size_t c = 0; c < d; ++c) {
        EXPECT_NEAR(out[c], ref.o[c] / ref.l, 1e-12 * ref.o_scale / ref.l) << "trial " << trial;
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, 700);
}

TEST(FlashMerge, BothEmptyStaysEmpty) {
  for (std::size_t d : {1, 4, 16}) {
    std::vector<double> a = cleared(d);
    const std::vector<double> b = cleared(d);
    flash_merge(a, b);
    Reference empty;
    empty.o.assign(d, 0.0);
    expect_matches(a, empty, "empty+empty");
    std::vector<double> out(d, 5.0);
    flash_output(a, out);
    for (double x : out) EXPECT_EQ(x, 0.0);
  }
}

TEST(FlashMerge, EmptyAndNonEmptyInBothOrders) {
  std::mt19937_64 rng(4);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (double score : {0.0, -1e3, 1e3, 80.0, -745.5, 1e300}) {
    const std::size_t d = 3;
    std::vector<double> v(d);
    for (auto& x : v) x = normal(rng);
    const std::vector<double> one = singleton(score, v);
    std::vector<double> a = cleared(d);
    flash_merge(a, one);
    EXPECT_EQ(a, one) << "empty + {" << score << "}";
    std::vector<double> b = one;
    flash_merge(b, cleared(d));
    EXPECT_EQ(b, one) << "{" << score << "} + empty";
    std::vector<double> out(d);
    flash_output(a, out);
    for (std::size_t c = 0; c < d; ++c) EXPECT_DOUBLE_EQ(out[c], v[c]);
  }
}

TEST(FlashMerge, HugeAndTinyScoresTogether) {
  // 1e3 against −1e3: the small side's weight underflows to 0, never NaN or inf.
  const std::size_t d = 2;
  std::vector<double> a = singleton(1e3, {1.0, 2.0});
  const std::vector<double> b = singleton(-1e3, {5.0, 7.0});
  std::vector<double> a2 = a;
  flash_merge(a, b);
  EXPECT_EQ(a[0], 1e3);
  EXPECT_EQ(a[1], 1.0);
  EXPECT_EQ(a[2], 1.0);
  EXPECT_EQ(a[3], 1.0);
  EXPECT_EQ(a[4], 2.0);
  std::vector<double> bb = b;
  flash_merge(bb, a2);
  EXPECT_EQ(bb, a);
  // Two equal huge scores: weights add.
  std::vector<double> c = singleton(1e3, {1.0, 0.0});
  flash_merge(c, singleton(1e3, {0.0, 1.0}));
  std::vector<double> out(d);
  flash_output(c, out);
  EXPECT_DOUBLE_EQ(out[0], 0.5);
  EXPECT_DOUBLE_EQ(out[1], 0.5);
  EXPECT_DOUBLE_EQ(c[1], 2.0);
  EXPECT_DOUBLE_EQ(c[2], 2.0);
}

TEST(FlashLayout, RowSize) {
  EXPECT_EQ(flash_row_size(0), kFlashHeader);
  EXPECT_EQ(flash_row_size(64), kFlashHeader + 64);
  EXPECT_EQ(kFlashHeader, 3u);
}

// ---------------------------------------------------------------------------------------------
// fast_exp_nonpos

double rel_err(float x) {
  const double want = std::exp(static_cast<double>(x));
  return std::abs(static_cast<double>(fast_exp_nonpos(x)) - want) / want;
}

TEST(FastExp, RelativeErrorBelow3e7OnWholeRange) {
  double worst = 0;
  float worst_x = 0;
  // A dense even sweep of [−87, 0] ...
  const int steps = 2'000'000;
  for (int i = 0; i <= steps; ++i) {
    const float x = static_cast<float>(-87.0 * static_cast<double>(i) / steps);
    const double e = rel_err(x);
    if (e > worst) worst = e, worst_x = x;
  }
  // ... random floats ...
  std::mt19937_64 rng(0xE4B);
  std::uniform_real_distribution<float> uni(-87.0f, 0.0f);
  for (int i = 0; i < 1'000'000; ++i) {
    const float x = uni(rng);
    const double e = rel_err(x);
    if (e > worst) worst = e, worst_x = x;
  }
  // ... every float near 0 and near the range reduction's switch points (half-integers of
  // x·log2 e), where the rounding of n changes.
  std::vector<float> special = {0.0f, -0.0f, -1e-30f, -1e-7f, -87.0f, -86.99999f};
  for (int k = 0; k <= 126; ++k) {
    const double x0 = -(k + 0.5) / 1.44269504088896341;
    float x = static_cast<float>(x0);
    for (int step = 0; step < 64; ++step) x = std::nextafter(x, 1.0f);
    for (int step = 0; step < 128; ++step) {
      if (x >= -87.0f && x <= 0.0f) special.push_back(x);
      x = std::nextafter(x, -100.0f);
    }
  }
  for (float x : special) {
    const double e = rel_err(x);
    if (e > worst) worst = e, worst_x = x;
  }
  EXPECT_LT(worst, 3e-7) << "worst relative error " << worst << " at x = " << worst_x;
  EXPECT_EQ(fast_exp_nonpos(0.0f), 1.0f);
}

TEST(FastExp, BelowRangeIsTinyPositiveAndFinite) {
  for (float x : {-87.5f, -100.0f, -1e3f, -1e30f, -std::numeric_limits<float>::max()}) {
    const float y = fast_exp_nonpos(x);
    EXPECT_TRUE(std::isfinite(y)) << x;
    EXPECT_GE(y, 0.0f) << x;
    EXPECT_LT(y, 2e-38f) << x;
  }
}

}  // namespace
}  // namespace ncsparse
