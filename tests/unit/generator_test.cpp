// The deterministic input generator: reproducible, independent of how rows are split into
// ranges (so of the number of ranks), and true to the input model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "ncsparse/error.hpp"
#include "ncsparse/generator.hpp"

namespace ncsparse {
namespace {

ModelParams params(InputModel model, std::int64_t d, std::uint64_t seed) {
  ModelParams p;
  p.model = model;
  p.d = d;
  p.seed = seed;
  return p;
}

struct KV {
  std::vector<float> k, v;
};

KV make_kv(const Generator& g, std::int64_t begin, std::int64_t count) {
  const std::size_t size = static_cast<std::size_t>(count * g.params().d);
  KV kv{std::vector<float>(size, 7.0f), std::vector<float>(size, 7.0f)};
  g.keys_values(begin, count, kv.k, kv.v);
  return kv;
}

bool bits_equal(const float* a, const float* b, std::size_t count) {
  return count == 0 || std::memcmp(a, b, count * sizeof(float)) == 0;  // memcmp of null (empty) is UB
}

std::size_t count_differences(const std::vector<float>& a, const std::vector<float>& b) {
  std::size_t diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff += a[i] != b[i];
  return diff;
}

TEST(Generator, DeterministicForASeedAndDifferentAcrossSeeds) {
  for (InputModel model : {InputModel::Paper, InputModel::Gaussian}) {
    for (std::int64_t d : {1, 6, 16, 13}) {
      SCOPED_TRACE(to_string(model) + " d=" + std::to_string(d));
      const std::int64_t n = 300;
      const Generator a(params(model, d, 42)), b(params(model, d, 42));
      const KV ka = make_kv(a, 0, n), kb = make_kv(b, 0, n);
      EXPECT_TRUE(bits_equal(ka.k.data(), kb.k.data(), ka.k.size()));
      EXPECT_TRUE(bits_equal(ka.v.data(), kb.v.data(), ka.v.size()));
      const std::vector<std::int64_t> pos = {0, 5, 17, 299, 123456};
      std::vector<float> qa(pos.size() * d), qb(pos.size() * d);
      a.queries(pos, qa);
      b.queries(pos, qb);
      EXPECT_TRUE(bits_equal(qa.data(), qb.data(), qa.size()));
      for (float x : ka.k) ASSERT_TRUE(std::isfinite(x));
      for (float x : ka.v) ASSERT_TRUE(std::isfinite(x));
      for (float x : qa) ASSERT_TRUE(std::isfinite(x));

      // Different seeds, including seeds that differ only in their upper 32 bits.
      for (std::uint64_t other : {std::uint64_t{43}, std::uint64_t{42} + (std::uint64_t{1} << 32)}) {
        const Generator c(params(model, d, other));
        const KV kc = make_kv(c, 0, n);
        EXPECT_GT(count_differences(ka.k, kc.k), ka.k.size() * 9 / 10) << "seed " << other;
        EXPECT_GT(count_differences(ka.v, kc.v), ka.v.size() * 9 / 10) << "seed " << other;
        std::vector<float> qc(pos.size() * d);
        c.queries(pos, qc);
        EXPECT_GT(count_differences(qa, qc), qa.size() * 8 / 10) << "seed " << other;
      }
      // Keys, values and queries are different tensors, and rows differ from each other.
      EXPECT_GT(count_differences(ka.k, ka.v), ka.k.size() * 9 / 10);
      std::vector<float> row0(ka.k.begin(), ka.k.begin() + d), row1(ka.k.begin() + d, ka.k.begin() + 2 * d);
      EXPECT_NE(row0, row1);
    }
  }
}

TEST(Generator, SubRangesEqualRowsOfTheFullRangeBitForBit) {
  std::mt19937_64 rng(0x5AB);
  for (InputModel model : {InputModel::Paper, InputModel::Gaussian}) {
    for (std::int64_t d : {5, 8}) {
      SCOPED_TRACE(to_string(model) + " d=" + std::to_string(d));
      // Long enough to cross the paper model's internal chunk of 16384 rows.
      const std::int64_t n = 40000;
      const Generator g(params(model, d, 0xDEADBEEFCAFEull));
      const KV full = make_kv(g, 0, n);
      std::vector<std::pair<std::int64_t, std::int64_t>> ranges = {
          {0, 1}, {n - 1, 1}, {16383, 2}, {16384, 16384}, {1, 16385}, {20000, 20000}, {7, 0}};
      for (int i = 0; i < 12; ++i) {
        const std::int64_t b = static_cast<std::int64_t>(rng() % n);
        ranges.push_back({b, static_cast<std::int64_t>(rng() % (n - b + 1))});
      }
      // A balanced split into P shards, as the engine makes.
      for (int P : {3, 7}) {
        for (int r = 0; r < P; ++r) {
          const std::int64_t lo = r * (n / P) + std::min<std::int64_t>(r, n % P);
          const std::int64_t hi = lo + n / P + (r < n % P ? 1 : 0);
          ranges.push_back({lo, hi - lo});
        }
      }
      for (auto [begin, count] : ranges) {
        const KV part = make_kv(g, begin, count);
        EXPECT_TRUE(bits_equal(part.k.data(), full.k.data() + begin * d, part.k.size()))
            << "keys [" << begin << ", " << begin + count << ")";
        EXPECT_TRUE(bits_equal(part.v.data(), full.v.data() + begin * d, part.v.size()))
            << "values [" << begin << ", " << begin + count << ")";
      }
      // Query rows likewise do not depend on which other rows are asked for.
      std::vector<std::int64_t> all_pos(200);
      for (std::int64_t i = 0; i < 200; ++i) all_pos[i] = i * 199;
      std::vector<float> qall(all_pos.size() * d);
      g.queries(all_pos, qall);
      for (std::size_t i = 0; i < all_pos.size(); i += 37) {
        std::vector<float> one(d);
        g.queries(std::span<const std::int64_t>(&all_pos[i], 1), one);
        EXPECT_TRUE(bits_equal(one.data(), qall.data() + i * d, one.size())) << "query " << all_pos[i];
      }
    }
  }
}

double weight_product_norm(const Generator& g) {
  const std::int64_t d = g.params().d;
  const auto& wq = g.w_q();
  const auto& wk = g.w_k();
  double f2 = 0;
  for (std::int64_t i = 0; i < d; ++i) {
    for (std::int64_t j = 0; j < d; ++j) {
      double dot = 0;
      for (std::int64_t t = 0; t < d; ++t) dot += double(wq[i * d + t]) * double(wk[j * d + t]);
      f2 += dot * dot;
    }
  }
  return std::sqrt(f2);
}

TEST(Generator, PaperWeightsMeetTheNormBound) {
  for (std::int64_t d : {1, 4, 16, 64}) {
    for (double B : {0.5, 1.0, 3.0}) {
      for (double R : {1.0, 20.0, 288.0}) {
        ModelParams p = params(InputModel::Paper, d, 11 + d);
        p.bound = B;
        p.weight_norm = R;
        const Generator g(p);
        ASSERT_EQ(g.w_q().size(), static_cast<std::size_t>(d * d));
        ASSERT_EQ(g.w_k().size(), static_cast<std::size_t>(d * d));
        ASSERT_EQ(g.w_v().size(), static_cast<std::size_t>(d * d));
        const double got = B * B * weight_product_norm(g);
        EXPECT_NEAR(got, R, 1e-5 * R) << "d=" << d << " B=" << B << " R=" << R;
      }
    }
  }
}

TEST(Generator, PaperModelProjectsTokenRows) {
  // K = X·W_K, V = X·W_V and Q = X·W_Q for the same token rows X.
  const std::int64_t d = 12, n = 64;
  ModelParams p = params(InputModel::Paper, d, 5);
  const Generator g(p);
  const KV kv = make_kv(g, 0, n);
  std::vector<std::int64_t> pos(n);
  for (std::int64_t i = 0; i < n; ++i) pos[i] = i;
  std::vector<float> x(n * d), q(n * d);
  g.token_rows(pos, x);
  g.queries(pos, q);
  auto check = [&](const std::vector<float>& got, const std::vector<float>& w, const char* what) {
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t j = 0; j < d; ++j) {
        double want = 0, mag = 0;
        for (std::int64_t t = 0; t < d; ++t) {
          want += double(x[i * d + t]) * double(w[t * d + j]);
          mag += std::abs(double(x[i * d + t]) * double(w[t * d + j]));
        }
        ASSERT_NEAR(got[i * d + j], want, 1e-6 * mag + 1e-30) << what << " row " << i << " col " << j;
      }
    }
  };
  check(kv.k, g.w_k(), "K");
  check(kv.v, g.w_v(), "V");
  check(q, g.w_q(), "Q");
  // Token rows are clipped N(0,1) by default: within [−B, B].
  for (float e : x) {
    EXPECT_LE(std::abs(e), static_cast<float>(p.bound));
  }
}

TEST(Generator, TokenDistributionsRespectTheBound) {
  for (double B : {0.5, 1.0, 3.0}) {
    for (XDistribution dist : {XDistribution::Uniform, XDistribution::Gaussian}) {
      SCOPED_TRACE(to_string(dist) + " B=" + std::to_string(B));
      ModelParams p = params(InputModel::Paper, 16, 99);
      p.bound = B;
      p.x_dist = dist;
      const Generator g(p);
      const std::int64_t rows = 5000;
      std::vector<std::int64_t> pos(rows);
      for (std::int64_t i = 0; i < rows; ++i) pos[i] = 1000 + 3 * i;
      std::vector<float> x(rows * 16);
      g.token_rows(pos, x);
      float lo = 1e30f, hi = -1e30f;
      double sum = 0;
      std::size_t at_bound = 0;
      for (float e : x) {
        ASSERT_TRUE(std::isfinite(e));
        ASSERT_LE(e, static_cast<float>(B));
        ASSERT_GE(e, -static_cast<float>(B));
        lo = std::min(lo, e);
        hi = std::max(hi, e);
        sum += e;
        at_bound += std::abs(e) == static_cast<float>(B);
      }
      // The values fill the interval and are centred.
      EXPECT_LT(lo, -0.95 * B);
      EXPECT_GT(hi, 0.95 * B);
      EXPECT_NEAR(sum / static_cast<double>(x.size()), 0.0, 0.02 * B);
      if (dist == XDistribution::Uniform) {
        // Uniform on [−B, B]: variance B²/3, nothing piles up at the bound.
        double var = 0;
        for (float e : x) var += double(e) * double(e);
        var /= static_cast<double>(x.size());
        EXPECT_NEAR(var, B * B / 3.0, 0.03 * B * B);
        EXPECT_LT(at_bound, x.size() / 1000);
      } else if (B <= 1.0) {
        // Clipped normal: P(|z| > 1) ≈ 32% of the entries sit exactly at ±B.
        EXPECT_GT(at_bound, x.size() / 10);
      }
    }
  }
}

TEST(Generator, GaussianModelMomentsAndPaperValueWeights) {
  for (double sigma : {0.5, 2.0}) {
    ModelParams p = params(InputModel::Gaussian, 32, 1234);
    p.sigma = sigma;
    const Generator g(p);
    const KV kv = make_kv(g, 100, 4000);
    for (const std::vector<float>* t : {&kv.k, &kv.v}) {
      double s = 0, s2 = 0;
      for (float e : *t) {
        s += e;
        s2 += double(e) * e;
      }
      const double N = static_cast<double>(t->size());
      EXPECT_NEAR(s / N, 0.0, 0.02 * sigma) << "sigma " << sigma;
      EXPECT_NEAR(s2 / N, sigma * sigma, 0.03 * sigma * sigma) << "sigma " << sigma;
    }
  }
  // W_V has N(0, 1/d) entries.
  const std::int64_t d = 64;
  const Generator g(params(InputModel::Paper, d, 3));
  double s2 = 0;
  for (float w : g.w_v()) s2 += double(w) * w;
  EXPECT_NEAR(s2 / static_cast<double>(d * d), 1.0 / d, 0.1 / d);
}

TEST(SamplePositions, StrictlyIncreasingEndingAtLastRow) {
  std::mt19937_64 rng(17);
  std::vector<std::pair<std::int64_t, std::int64_t>> cases = {{1, 1},
                                                              {2, 1},
                                                              {2, 2},
                                                              {10, 3},
                                                              {777, 50},
                                                              {200, 200},
                                                              {1 << 20, 256},
                                                              {std::int64_t{1} << 40, 1000},
                                                              {(std::int64_t{1} << 62) + 3, 7}};
  for (int i = 0; i < 200; ++i) {
    const std::int64_t n = 1 + static_cast<std::int64_t>(rng() % 100000);
    cases.push_back({n, 1 + static_cast<std::int64_t>(rng() % std::min<std::int64_t>(n, 3000))});
  }
  for (auto [n, m] : cases) {
    SCOPED_TRACE("n=" + std::to_string(n) + " m=" + std::to_string(m));
    const std::vector<std::int64_t> pos = sample_positions(n, m);
    ASSERT_EQ(pos.size(), static_cast<std::size_t>(m));
    EXPECT_EQ(pos.back(), n - 1);
    EXPECT_GE(pos.front(), 0);
    for (std::size_t i = 1; i < pos.size(); ++i) ASSERT_LT(pos[i - 1], pos[i]) << i;
    for (std::int64_t i = 0; i < m; i += std::max<std::int64_t>(1, m / 17)) {
      const long double want =
          std::floor(static_cast<long double>(i + 1) * static_cast<long double>(n) / static_cast<long double>(m)) - 1;
      if (n < (std::int64_t{1} << 50)) {
        EXPECT_EQ(pos[i], static_cast<std::int64_t>(want)) << i;
      }
    }
    if (m == n) {
      for (std::int64_t i = 0; i < n; ++i) ASSERT_EQ(pos[i], i);
    }
  }
}


ModelParams positional(InputModel model, std::int64_t d, double theta, std::int64_t sinks, double strength) {
  ModelParams p = params(model, d, 0xC0FFEEull);
  p.rope_theta = theta;
  p.sinks = sinks;
  p.sink_strength = strength;
  return p;
}

// RoPE and sinks are functions of (row, position) only: any split of the rows into ranges (so
// any rank count) gives the same bits, and query rows do not depend on their neighbours.
TEST(GeneratorPositions, RopeAndSinksKeepRowsIndependentOfTheSplit) {
  for (InputModel model : {InputModel::Paper, InputModel::Gaussian}) {
    SCOPED_TRACE(to_string(model));
    const std::int64_t d = 8, n = 9000;
    const Generator g(positional(model, d, 10000, 4, 6));
    const KV full = make_kv(g, 0, n);
    for (int P : {1, 2, 3, 7}) {
      for (int r = 0; r < P; ++r) {
        const std::int64_t lo = r * (n / P) + std::min<std::int64_t>(r, n % P);
        const std::int64_t hi = lo + n / P + (r < n % P ? 1 : 0);
        const KV part = make_kv(g, lo, hi - lo);
        EXPECT_TRUE(bits_equal(part.k.data(), full.k.data() + lo * d, part.k.size())) << "P=" << P << " r=" << r;
        EXPECT_TRUE(bits_equal(part.v.data(), full.v.data() + lo * d, part.v.size())) << "P=" << P << " r=" << r;
      }
    }
    const std::vector<std::int64_t> pos = {0, 3, 4, 77, 8999, 4194303};
    std::vector<float> qall(pos.size() * d);
    g.queries(pos, qall);
    for (std::size_t i = 0; i < pos.size(); ++i) {
      std::vector<float> one(d);
      g.queries(std::span<const std::int64_t>(&pos[i], 1), one);
      EXPECT_TRUE(bits_equal(one.data(), qall.data() + i * d, one.size())) << "query " << pos[i];
    }
    // Values are untouched by RoPE and sinks.
    const Generator plain(params(model, d, 0xC0FFEEull));
    const KV base = make_kv(plain, 0, 100);
    EXPECT_TRUE(bits_equal(base.v.data(), full.v.data(), base.v.size()));
  }
}

TEST(GeneratorPositions, RopePreservesNormsAndDependsOnRelativePosition) {
  const std::int64_t d = 64;
  const std::vector<double> f = rope_inverse_frequencies(10000, d);
  ASSERT_EQ(f.size(), 32u);
  EXPECT_DOUBLE_EQ(f[0], 1.0);
  EXPECT_NEAR(f[31], std::pow(10000.0, -62.0 / 64), 1e-15);
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> q(d), k(d);
  for (auto& x : q) x = normal(rng);
  for (auto& x : k) x = normal(rng);
  auto dot = [&](const std::vector<float>& a, const std::vector<float>& b) {
    double s = 0;
    for (std::int64_t j = 0; j < d; ++j) s += double(a[j]) * double(b[j]);
    return s;
  };
  auto rotated = [&](std::vector<float> x, std::int64_t p) {
    apply_rope(x.data(), d, p, f);
    return x;
  };
  // Norms are kept (to float rounding), at small and at million-token positions.
  for (std::int64_t p : {0LL, 1LL, 1000LL, 4194303LL}) {
    const auto r = rotated(q, p);
    EXPECT_NEAR(std::sqrt(dot(r, r)), std::sqrt(dot(q, q)), 1e-5 * std::sqrt(dot(q, q))) << "position " << p;
  }
  EXPECT_EQ(rotated(q, 0), q);  // position 0: no rotation
  // <R_m q, R_n k> depends only on m − n.
  for (auto [m, n, t] : std::vector<std::tuple<std::int64_t, std::int64_t, std::int64_t>>{
           {5, 2, 100}, {1000, 10, 123457}, {3000000, 2999000, 1000000}, {17, 40, 4000000}}) {
    const double a = dot(rotated(q, m), rotated(k, n)), b = dot(rotated(q, m + t), rotated(k, n + t));
    EXPECT_NEAR(a, b, 1e-4 * std::sqrt(dot(q, q) * dot(k, k))) << m << "," << n << " shifted by " << t;
  }
  // ... and it does depend on it: the rotation is not the identity.
  EXPECT_GT(std::abs(dot(rotated(q, 10), rotated(k, 0)) - dot(q, k)), 1e-3);
}

TEST(GeneratorPositions, SinksRaiseEveryQueryScoreOnTheSinkKeysByTheStrength) {
  const std::int64_t d = 16, n = 64, sinks = 4;
  const double strength = 5;
  for (InputModel model : {InputModel::Paper, InputModel::Gaussian}) {
    SCOPED_TRACE(to_string(model));
    ModelParams with = positional(model, d, 10000, sinks, strength), without = with;
    without.sink_strength = 0;  // same direction removed, no boost
    const Generator gs(with), g0(without);
    const KV ks = make_kv(gs, 0, n), k0 = make_kv(g0, 0, n);
    const std::vector<std::int64_t> pos = {5, 40, 63};
    std::vector<float> qs(pos.size() * d), q0(pos.size() * d);
    gs.queries(pos, qs);
    g0.queries(pos, q0);
    EXPECT_TRUE(bits_equal(qs.data(), q0.data(), qs.size()));  // queries do not depend on the strength
    for (std::size_t i = 0; i < pos.size(); ++i) {
      for (std::int64_t j = 0; j < n; ++j) {
        double a = 0, b = 0;
        for (std::int64_t c = 0; c < d; ++c) {
          a += double(qs[i * d + c]) * double(ks.k[j * d + c]);
          b += double(q0[i * d + c]) * double(k0.k[j * d + c]);
        }
        const double boost = j < sinks ? strength * std::sqrt(double(d)) : 0.0;
        EXPECT_NEAR(a - b, boost, 1e-3 * (1 + std::abs(a))) << "query " << pos[i] << " key " << j;
      }
    }
  }
}

TEST(GeneratorPositions, ValidationNamesTheFlag) {
  ModelParams p = params(InputModel::Paper, 7, 1);
  p.rope_theta = 10000;
  EXPECT_THROW(validate_model(p), Error);
  p.d = 8;
  EXPECT_NO_THROW(validate_model(p));
  p.rope_theta = 0.5;
  EXPECT_THROW(validate_model(p), Error);
  p.rope_theta = 0;
  p.sinks = -1;
  EXPECT_THROW(validate_model(p), Error);
  p.sinks = 2;
  p.sink_strength = -1;
  EXPECT_THROW(validate_model(p), Error);
  EXPECT_EQ(position_label(params(InputModel::Paper, 8, 1)), "");
  ModelParams q = positional(InputModel::Paper, 8, 10000, 4, 8);
  EXPECT_EQ(position_label(q), ",rope=10000,sinks=4x8");
}

}  // namespace
}  // namespace ncsparse
