// The Taylor feature map and the streaming sketch (PAPERS.md §3) against direct double-precision
// computations: φ(x)·φ(y) is the truncated exponential series; the sketch equals the brute-force
// attention with the truncated kernel, is close to exact attention within the Taylor remainder
// when |s·q·k| ≤ 0.5, and its partial sums add across any split of the keys.
#include "ncsparse/taylor.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "ncsparse/error.hpp"
#include "support/reference.hpp"

namespace ncsparse {
namespace {

std::vector<float> random_vector(std::mt19937_64& rng, std::size_t n, double sd) {
  std::normal_distribution<double> normal(0, sd);
  std::vector<float> x(n);
  for (float& v : x) v = static_cast<float>(normal(rng));
  return x;
}

double dot(const float* a, const float* b, std::int64_t d) {
  double s = 0;
  for (std::int64_t c = 0; c < d; ++c) s += double(a[c]) * double(b[c]);
  return s;
}

using test::truncated_exp;

TEST(TaylorFeatures, CountsTheDistinctMonomials) {
  EXPECT_EQ(TaylorFeatures::count(64, 2), 1 + 64 + 2080);
  EXPECT_EQ(TaylorFeatures::count(1, 8), 9);
  EXPECT_EQ(TaylorFeatures::count(3, 4), 1 + 3 + 6 + 10 + 15);
  EXPECT_EQ(TaylorFeatures::count(1 << 20, 64), std::numeric_limits<std::int64_t>::max()) << "saturates";
  for (std::int64_t d : {1, 2, 5, 9}) {
    for (int q : {1, 2, 3, 6}) EXPECT_EQ(TaylorFeatures(d, q, 0.7).size(), TaylorFeatures::count(d, q));
  }
}

TEST(TaylorFeatures, InnerProductIsTheTruncatedSeries) {
  std::mt19937_64 rng(41);
  for (int q = 1; q <= 8; ++q) {
    for (std::int64_t d : {1, 2, 3, 5}) {
      const double scale = 1 / std::sqrt(double(d));
      const TaylorFeatures phi(d, q, scale);
      std::vector<double> a(phi.size()), b(phi.size());
      for (int trial = 0; trial < 20; ++trial) {
        const auto x = random_vector(rng, d, 1.0), y = random_vector(rng, d, 1.0);
        phi.map(x, a);
        phi.map(y, b);
        double ip = 0;
        for (std::size_t f = 0; f < a.size(); ++f) ip += a[f] * b[f];
        const double want = truncated_exp(scale * dot(x.data(), y.data(), d), q);
        EXPECT_NEAR(ip, want, 1e-12 * std::abs(want)) << "q " << q << " d " << d;
      }
    }
  }
}

TEST(TaylorFeatures, RejectsBadParameters) {
  EXPECT_THROW(TaylorFeatures(0, 2, 1.0), Error);
  EXPECT_THROW(TaylorFeatures(4, 0, 1.0), Error);
  EXPECT_THROW(TaylorFeatures(4, 2, 0.0), Error);
  EXPECT_THROW(TaylorFeatures(4096, 8, 1.0), Error) << "more than 2^31 features";
}

// Brute force in double: weights T_q(s·q·k_i), ô = Σ w_i v_i / Σ w_i.
std::vector<double> brute_force(const std::vector<float>& k, const std::vector<float>& v, const float* q,
                                std::int64_t n, std::int64_t d, int degree, double scale, bool exact) {
  std::vector<double> out(d, 0.0);
  double den = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double x = scale * dot(q, k.data() + i * d, d);
    const double w = exact ? std::exp(x) : truncated_exp(x, degree);
    den += w;
    for (std::int64_t c = 0; c < d; ++c) out[c] += w * v[i * d + c];
  }
  for (double& o : out) o /= den;
  return out;
}

TEST(TaylorSketch, MatchesTheBruteForceTruncatedKernel) {
  std::mt19937_64 rng(43);
  const std::int64_t n = 700, d = 4;
  const double scale = 0.5;
  for (int q : {2, 4, 6}) {
    const TaylorFeatures phi(d, q, scale);
    const auto k = random_vector(rng, n * d, 1.0), v = random_vector(rng, n * d, 1.0);
    TaylorSketch sketch(phi);
    sketch.add(k, v, n);
    for (int r = 0; r < 10; ++r) {
      const auto qv = random_vector(rng, d, 1.0);
      std::vector<double> out(d);
      double cancellation = 0;
      sketch.output(qv, out, &cancellation);
      const auto want = brute_force(k, v, qv.data(), n, d, q, scale, false);
      for (std::int64_t c = 0; c < d; ++c) EXPECT_NEAR(out[c], want[c], 1e-9 * (1 + std::abs(want[c]))) << "q " << q;
      EXPECT_GT(cancellation, 0);
      EXPECT_LE(cancellation, 1 + 1e-12);
    }
  }
}

// |s·q·k| ≤ 0.5: each weight is within ε = e^0.5·0.5^(q+1)/(q+1)! of exp, relative to exp ≥ e^−0.5,
// so the output is within 2ε'/(1 − ε')·max‖v‖, ε' = e·0.5^(q+1)/(q+1)!.
TEST(TaylorSketch, CloseToExactAttentionWithinTheRemainder) {
  std::mt19937_64 rng(47);
  const std::int64_t n = 2000, d = 3;
  const double scale = 1.0;
  for (int q : {2, 4, 6}) {
    const TaylorFeatures phi(d, q, scale);
    auto k = random_vector(rng, n * d, 1.0);
    for (std::int64_t i = 0; i < n; ++i) {  // ‖k_i‖ = 0.5 and ‖q‖ ≤ 1 give |s·q·k| ≤ 0.5
      const double norm = std::sqrt(dot(k.data() + i * d, k.data() + i * d, d));
      for (std::int64_t c = 0; c < d; ++c) k[i * d + c] = float(0.5 * k[i * d + c] / norm);
    }
    const auto v = random_vector(rng, n * d, 1.0);
    double vmax = 0;
    for (std::int64_t i = 0; i < n; ++i) vmax = std::max(vmax, std::sqrt(dot(v.data() + i * d, v.data() + i * d, d)));
    TaylorSketch sketch(phi);
    sketch.add(k, v, n);
    double fact = 1;
    for (int j = 2; j <= q + 1; ++j) fact *= j;
    const double eps = std::exp(1.0) * std::pow(0.5, q + 1) / fact;
    const double bound = 2 * eps / (1 - eps) * vmax;
    for (int r = 0; r < 10; ++r) {
      auto qv = random_vector(rng, d, 1.0);
      const double norm = std::sqrt(dot(qv.data(), qv.data(), d));
      for (float& x : qv) x = float(x / norm * 0.999);
      std::vector<double> out(d);
      sketch.output(qv, out, nullptr);
      const auto exact = brute_force(k, v, qv.data(), n, d, q, scale, true);
      double err = 0;
      for (std::int64_t c = 0; c < d; ++c) err += (out[c] - exact[c]) * (out[c] - exact[c]);
      EXPECT_LE(std::sqrt(err), bound) << "q " << q;
    }
  }
}

// Shards of any size, empty ones included, add up to the one-shard sketch (up to rounding).
TEST(TaylorSketch, PartialSumsAddAcrossShards) {
  std::mt19937_64 rng(53);
  const std::int64_t n = 501, d = 5;
  const TaylorFeatures phi(d, 4, 0.4);
  const auto k = random_vector(rng, n * d, 1.0), v = random_vector(rng, n * d, 1.0);
  TaylorSketch whole(phi);
  whole.add(k, v, n);
  for (int P = 1; P <= 4; ++P) {
    TaylorSketch sum(phi);
    for (int r = 0; r < P; ++r) {
      // Shard r of P, with rank 1 empty whenever P > 2.
      std::int64_t lo = n * r / P, hi = n * (r + 1) / P;
      if (P > 2 && r == 1) hi = lo;
      if (P > 2 && r == 2) lo = n * 1 / P;
      TaylorSketch part(phi);
      part.add(std::span<const float>(k).subspan(lo * d), std::span<const float>(v).subspan(lo * d), hi - lo);
      for (std::size_t i = 0; i < sum.state().size(); ++i) sum.state()[i] += part.state()[i];
    }
    for (std::size_t i = 0; i < whole.state().size(); ++i) {
      EXPECT_NEAR(sum.state()[i], whole.state()[i], 1e-12 * (1 + std::abs(whole.state()[i]))) << "P " << P;
    }
  }
}

TEST(TaylorSketch, LastDegreeShareIsTheSeriesTail) {
  // |D_q| / den with D_q = Σ_j x_j^q / q! and den = Σ_j T_q(x_j), x_j = s·q·k_j.
  std::mt19937_64 rng(7);
  const std::int64_t d = 4, n = 50;
  for (int q : {2, 4, 6}) {
    for (double sd : {0.1, 1.0, 3.0}) {
      const double scale = 0.5;
      const TaylorFeatures phi(d, q, scale);
      TaylorSketch sketch(phi);
      const auto k = random_vector(rng, n * d, sd), v = random_vector(rng, n * d, 1.0), x = random_vector(rng, d, sd);
      sketch.add(k, v, n);
      double tail = 0, den = 0, fact = 1;
      for (int j = 2; j <= q; ++j) fact *= j;
      for (std::int64_t j = 0; j < n; ++j) {
        const double s = scale * dot(x.data(), k.data() + j * d, d);
        tail += std::pow(s, q) / fact;
        den += truncated_exp(s, q);
      }
      std::vector<double> out(d);
      double cancellation = 0, share = 0;
      sketch.output(x, out, &cancellation, &share);
      EXPECT_NEAR(share, std::abs(tail) / den, 1e-10 * (1 + share)) << "q " << q << " sd " << sd;
    }
  }
}

}  // namespace
}  // namespace ncsparse
