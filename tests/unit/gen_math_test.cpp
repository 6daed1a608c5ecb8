// The generator's own arithmetic (src/core/gen_math.hpp) and its CPU paths: the Philox stream
// is Random123's, the transcendental pieces are accurate, and the portable and AVX2 paths give
// the same bits (the CUDA kernels are checked against the same host values in tests/gpu).
#include <gtest/gtest.h>

#include <Random123/philox.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/gen_math.hpp"
#include "cpu/generate.hpp"
#include "cpu/isa.hpp"
#include "ncsparse/generator.hpp"

namespace ncsparse {
namespace {

TEST(GenMath, PhiloxIsRandom123sPhilox4x32) {
  std::mt19937_64 rng(11);
  r123::Philox4x32 ref;
  for (int i = 0; i < 2000; ++i) {
    const std::uint64_t seed = rng(), row = rng() >> (i % 40);
    const std::uint32_t tensor = static_cast<std::uint32_t>(rng() % 8), group = static_cast<std::uint32_t>(rng());
    const r123::Philox4x32::ctr_type ctr = {
        {tensor, static_cast<std::uint32_t>(row), static_cast<std::uint32_t>(row >> 32), group}};
    const r123::Philox4x32::key_type key = {{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}};
    const auto want = ref(ctr, key);
    const gen::U32x4 got = gen::philox_block(seed, tensor, row, group);
    for (int c = 0; c < 4; ++c) ASSERT_EQ(got.v[c], want[c]) << "block " << i << " word " << c;
  }
}

TEST(GenMath, UniformValuesAreOpenAndSymmetric) {
  EXPECT_EQ(gen::u01_open(0), 0x1p-24f);
  EXPECT_EQ(gen::u01_open(0xFFFFFFFFu), 1.0f);
  EXPECT_EQ(gen::uneg11(0x80000000u), -1.0f + 0x1p-24f);
  EXPECT_EQ(gen::uneg11(0x7FFFFFFFu), 1.0f - 0x1p-24f);
  EXPECT_EQ(gen::uneg11(0), 0x1p-24f);
}

TEST(GenMath, LogIsAccurateOnTheWholeUnitInterval) {
  double worst = 0;
  for (std::uint32_t k = 1; k <= (1u << 24); k += 37) {  // every 37th of the 2^24 inputs
    const float u = static_cast<float>(k) * 0x1p-24f;
    const double want = std::log(static_cast<double>(u));
    const double err = std::abs(gen::log_unit(u) - want);
    worst = std::max(worst, err / std::max(std::abs(want), 1e-3));
  }
  EXPECT_EQ(gen::log_unit(1.0f), 0.0f);
  EXPECT_LT(worst, 1e-6);
}

TEST(GenMath, NormalPairIsRadiusTimesCosAndSinOfTheAngle) {
  std::mt19937 rng(3);
  double worst = 0;
  for (int i = 0; i < 200000; ++i) {
    const std::uint32_t r1 = rng(), r2 = rng();
    const gen::Pair p = gen::normal_pair(r1, r2);
    const double u1 = ((r1 >> 8) + 1.0) * 0x1p-24, u2 = (r2 >> 8) * 0x1p-24;
    const double radius = std::sqrt(-2 * std::log(u1)), angle = 2 * M_PI * u2;
    worst = std::max({worst, std::abs(p.a - radius * std::cos(angle)), std::abs(p.b - radius * std::sin(angle))});
  }
  EXPECT_LT(worst, 5e-6);  // radius ≤ 5.8: a few float ulps
}

TEST(GenMath, DoubleSinCosForRope) {
  double worst = 0;
  for (int i = 0; i <= 100000; ++i) {
    const double a = 2 * M_PI * i / 100001.0;
    const gen::SinCosD sc = gen::sincos_angle(a);
    worst = std::max({worst, std::abs(sc.s - std::sin(a)), std::abs(sc.c - std::cos(a))});
  }
  EXPECT_LT(worst, 1e-15);
}

// Both paths of the bulk kernels on shapes with every kind of remainder.
class GenPaths : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cpu::use_avx2()) GTEST_SKIP() << "no AVX2 + FMA on this CPU (or NCSPARSE_CPU_ISA=generic)";
  }
};

TEST_F(GenPaths, StandardRowsBitIdentical) {
  for (bool uniform : {false, true}) {
    for (std::int64_t d : {1, 3, 4, 13, 20, 64, 130}) {
      for (cpu::Post post : {cpu::Post::None, cpu::Post::Clamp, cpu::Post::Scale}) {
        for (std::int64_t rows : {1, 3, 37}) {
          cpu::StandardRows s;
          s.seed = 0x123456789abcdefULL + static_cast<std::uint64_t>(d);
          s.tensor = 2;
          s.first = (std::int64_t{1} << 33) + 5;  // rows past 2^32 use the counter's third word
          s.rows = rows;
          s.d = d;
          s.uniform = uniform;
          s.post = post;
          s.b = 2.5f;
          std::vector<float> a(static_cast<std::size_t>(s.rows * d)), b(a.size()), c(a.size());
          cpu::portable::standard_rows(s, a.data());
          cpu::avx2::standard_rows(s, b.data());
          cpu::standard_rows(s, c.data(), 3);
          ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << "d " << d << " uniform " << uniform;
          if (cpu::use_avx512()) {
            std::fill(b.begin(), b.end(), 9.f);
            cpu::avx512::standard_rows(s, b.data());
            ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << "AVX-512, d " << d << " uniform " << uniform;
          }
          ASSERT_EQ(std::memcmp(a.data(), c.data(), a.size() * 4), 0) << "threads, d " << d;
        }
      }
    }
  }
}

TEST_F(GenPaths, ProjectionIsTheInOrderFusedChain) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  for (auto [rows, inner, cols] :
       {std::tuple<int, int, int>{1, 1, 1}, {7, 5, 3}, {9, 64, 64}, {13, 130, 37}, {6, 64, 100}, {5, 16, 80}}) {
    std::vector<float> x(static_cast<std::size_t>(rows * inner)), w(static_cast<std::size_t>(inner * cols));
    for (float& v : x) v = nd(rng);
    for (float& v : w) v = nd(rng);
    std::vector<float> a(static_cast<std::size_t>(rows * cols), 9.f), b(a.size(), 9.f), c(a.size(), 9.f);
    cpu::portable::project_canonical(x.data(), w.data(), rows, inner, cols, a.data());
    cpu::avx2::project_canonical(x.data(), w.data(), rows, inner, cols, b.data());
    cpu::project_canonical(x.data(), w.data(), rows, inner, cols, c.data(), 2);
    if (cpu::use_avx512()) {
      std::vector<float> e(a.size(), 9.f);
      cpu::avx512::project_canonical(x.data(), w.data(), rows, inner, cols, e.data());
      ASSERT_EQ(std::memcmp(a.data(), e.data(), a.size() * 4), 0) << "AVX-512 " << rows << "x" << inner << "x" << cols;
    }
    for (int i = 0; i < rows; ++i) {
      for (int j = 0; j < cols; ++j) {
        float acc = 0;
        double exact = 0;
        for (int t = 0; t < inner; ++t) {
          acc = std::fma(x[i * inner + t], w[t * cols + j], acc);
          exact += double(x[i * inner + t]) * w[t * cols + j];
        }
        const std::size_t e = static_cast<std::size_t>(i * cols + j);
        ASSERT_EQ(std::memcmp(&a[e], &acc, 4), 0) << rows << "x" << inner << "x" << cols;
        ASSERT_EQ(std::memcmp(&b[e], &acc, 4), 0) << rows << "x" << inner << "x" << cols;
        ASSERT_EQ(std::memcmp(&c[e], &acc, 4), 0) << rows << "x" << inner << "x" << cols;
        EXPECT_NEAR(acc, exact, 1e-5 * inner * (1 + std::abs(exact)));
      }
    }
  }
}

TEST(GenThreads, KeysValuesDoNotDependOnTheThreadCount) {
  for (InputModel model : {InputModel::Paper, InputModel::Gaussian}) {
    ModelParams p;
    p.model = model;
    p.d = 48;
    p.seed = 9;
    p.rope_theta = 500;
    p.sinks = 3;
    p.sink_strength = 4;
    Generator one(p), two(p);
    two.set_threads(2);
    const std::int64_t count = 9000;  // more than a chunk of the paper model
    std::vector<float> k1(static_cast<std::size_t>(count * p.d)), v1(k1.size()), k2(k1.size()), v2(k1.size());
    one.keys_values(1, count, k1, v1);
    two.keys_values(1, count, k2, v2);
    EXPECT_EQ(std::memcmp(k1.data(), k2.data(), k1.size() * 4), 0) << to_string(model);
    EXPECT_EQ(std::memcmp(v1.data(), v2.data(), v1.size() * 4), 0) << to_string(model);
  }
}

}  // namespace
}  // namespace ncsparse
