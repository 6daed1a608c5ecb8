// The filter margins of the low-precision score GEMMs (core/score.hpp, ScorePrecision) against
// brute force: every emulated way a tensor core may round (input conversion by truncation or
// round-to-nearest, float accumulation sequential or pairwise, round-to-nearest or toward zero,
// in groups of four aligned products) stays within the margin of the canonical score.
#include <gtest/gtest.h>

#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/score.hpp"

namespace ncsparse {
namespace {

float from_bits(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
std::uint32_t bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float tf32_truncate(float x) { return from_bits(bits(x) & ~0x1FFFu); }
float tf32_nearest(float x) {
  const std::uint32_t u = bits(x);
  return from_bits((u + 0xFFFu + ((u >> 13) & 1u)) & ~0x1FFFu);
}
float bf16_nearest(float x) {
  const std::uint32_t u = bits(x);
  return from_bits((u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u);
}

// Float addition rounded toward zero (the tensor cores' truncating accumulation).
float add_toward_zero(float a, float b) {
  const int old = std::fegetround();
  std::fesetround(FE_TOWARDZERO);
  volatile float x = a, y = b;
  volatile float r = x + y;
  std::fesetround(old);
  return r;
}

enum class Sum { Sequential, Pairwise, TowardZero, GroupsOfFour };

float accumulate(const std::vector<float>& p, Sum how) {
  switch (how) {
    case Sum::Sequential: {
      float acc = 0;
      for (float x : p) acc += x;
      return acc;
    }
    case Sum::Pairwise: {
      std::vector<float> v = p;
      while (v.size() > 1) {
        std::vector<float> next;
        for (std::size_t i = 0; i + 1 < v.size(); i += 2) next.push_back(v[i] + v[i + 1]);
        if (v.size() % 2) next.push_back(v.back());
        v = next;
      }
      return v.empty() ? 0.0f : v[0];
    }
    case Sum::TowardZero: {
      float acc = 0;
      for (float x : p) acc = add_toward_zero(acc, x);
      return acc;
    }
    default: {  // four products added exactly, then to the accumulator, toward zero
      float acc = 0;
      for (std::size_t i = 0; i < p.size(); i += 4) {
        double g = 0;
        for (std::size_t j = i; j < i + 4 && j < p.size(); ++j) g += p[j];
        acc = add_toward_zero(acc, static_cast<float>(g));
      }
      return acc;
    }
  }
}

TEST(ScorePrecision, Fp32IsTheCpuFormula) {
  for (std::int64_t d : {1, 64, 128, 4096}) {
    EXPECT_EQ(score_margin_of_bound(3.5, d, 2.0, ScorePrecision::FP32), score_margin_of_bound(3.5, d, 2.0));
  }
  // Lower precision, larger margin.
  EXPECT_LT(score_margin_of_bound(3.5, 128, 2.0, ScorePrecision::FP32),
            score_margin_of_bound(3.5, 128, 2.0, ScorePrecision::TF32));
  EXPECT_LT(score_margin_of_bound(3.5, 128, 2.0, ScorePrecision::TF32),
            score_margin_of_bound(3.5, 128, 2.0, ScorePrecision::BF16));
}

TEST(ScorePrecision, EmulatedFilterScoresStayWithinTheMargin) {
  struct Mode {
    ScorePrecision precision;
    float (*convert)(float);
    const char* name;
  };
  const Mode modes[] = {{ScorePrecision::FP32, [](float x) { return x; }, "fp32"},
                        {ScorePrecision::TF32, tf32_truncate, "tf32 truncated"},
                        {ScorePrecision::TF32, tf32_nearest, "tf32 nearest"},
                        {ScorePrecision::BF16, bf16_nearest, "bf16 nearest"}};
  std::mt19937_64 rng(2026);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> positive(0.5f, 1.0f);
  for (const Mode& mode : modes) {
    double worst = 0;  // largest error / margin seen
    for (std::int64_t d : {8, 64, 128, 256, 1000}) {
      for (int trial = 0; trial < 300; ++trial) {
        // Half the trials adversarial: all products positive, so nothing cancels and the
        // rounding errors add up; the others Gaussian, with a large common factor.
        const bool adversarial = trial % 2 == 0;
        const float big = trial % 3 == 0 ? 37.0f : 1.0f;
        std::vector<float> q(static_cast<std::size_t>(d)), k(q.size());
        for (std::size_t i = 0; i < q.size(); ++i) {
          q[i] = adversarial ? positive(rng) : big * normal(rng);
          k[i] = adversarial ? positive(rng) : normal(rng);
        }
        const double scale = 1.0 / std::sqrt(static_cast<double>(d));
        double qn = 0, kn = 0;
        for (std::size_t i = 0; i < q.size(); ++i) qn += double(q[i]) * q[i], kn += double(k[i]) * k[i];
        const float canonical = canonical_score(q.data(), k.data(), d, scale);
        const float margin = score_margin_of_bound(scale * std::sqrt(qn) * std::sqrt(kn), d, std::abs(canonical),
                                                   mode.precision);
        std::vector<float> products(q.size());
        for (std::size_t i = 0; i < q.size(); ++i) products[i] = mode.convert(q[i]) * mode.convert(k[i]);
        for (Sum how : {Sum::Sequential, Sum::Pairwise, Sum::TowardZero, Sum::GroupsOfFour}) {
          // FP32 filters are SIMT GEMMs: IEEE round-to-nearest, no truncating accumulation.
          if (mode.precision == ScorePrecision::FP32 && (how == Sum::TowardZero || how == Sum::GroupsOfFour)) continue;
          const float filter = static_cast<float>(scale) * accumulate(products, how);
          const double err = std::abs(double(filter) - double(canonical));
          ASSERT_LE(err, margin) << mode.name << " d " << d << " trial " << trial << " sum " << int(how);
          worst = std::max(worst, err / margin);
        }
      }
    }
    // The margin is a bound, not a guess: the worst case seen uses a fair part of it.
    EXPECT_GT(worst, 0.02) << mode.name;
    std::printf("%s: largest error seen is %.3f of the margin\n", mode.name, worst);
  }
}

TEST(ScorePrecision, ProductsOfConvertedInputsAreExactInFloat) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal;
  for (int i = 0; i < 100000; ++i) {
    const float a = normal(rng), b = normal(rng);
    for (auto convert : {tf32_truncate, tf32_nearest, bf16_nearest}) {
      const float x = convert(a), y = convert(b);
      ASSERT_EQ(double(x * y), double(x) * double(y));
    }
  }
}

}  // namespace
}  // namespace ncsparse
