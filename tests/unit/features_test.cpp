// Feature-dimension sparsification (PAPERS.md §4): the gram projection reproduces XXᵀ, the random
// projections depend on the seed alone, and in the paper's regime (d ≫ n, ‖XXᵀ‖∞ = r < 0.1) the
// attention matrix of Y = XR is within O(r) of that of X.
#include "ncsparse/features.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "ncsparse/error.hpp"

namespace ncsparse {
namespace {

std::vector<float> random_matrix(std::mt19937_64& rng, std::int64_t rows, std::int64_t cols, double sd) {
  std::normal_distribution<double> normal(0, sd);
  std::vector<float> x(static_cast<std::size_t>(rows * cols));
  for (float& v : x) v = static_cast<float>(normal(rng));
  return x;
}

// XXᵀ in double (n × n).
template <class T>
std::vector<double> outer_gram(const std::vector<T>& x, std::int64_t n, std::int64_t d) {
  std::vector<double> g(static_cast<std::size_t>(n * n));
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (std::int64_t c = 0; c < d; ++c) s += double(x[i * d + c]) * double(x[j * d + c]);
      g[i * n + j] = s;
    }
  }
  return g;
}

TEST(FeatureProjection, GramReproducesTheGramMatrix) {
  std::mt19937_64 rng(61);
  for (auto [n, d] : std::vector<std::pair<std::int64_t, std::int64_t>>{{50, 20}, {10, 40}, {30, 30}, {7, 200}}) {
    const auto x = random_matrix(rng, n, d, 1.0);
    // The Gram matrix summed over two shards of rows, as ranks would all-reduce it.
    std::vector<double> g(static_cast<std::size_t>(d * d), 0.0);
    const std::int64_t half = n / 3;
    add_gram(x, half, d, g);
    add_gram(std::span<const float>(x).subspan(half * d), n - half, d, g);
    const FeatureProjection p = FeatureProjection::gram(g, d);
    EXPECT_EQ(p.e(), std::min(n, d)) << "e is the numerical rank";
    std::vector<double> y(static_cast<std::size_t>(n * p.e()));
    p.apply(x, n, y);
    const auto want = outer_gram(x, n, d), got = outer_gram(y, n, p.e());
    double scale = 0, err = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      scale = std::max(scale, std::abs(want[i]));
      err = std::max(err, std::abs(got[i] - want[i]));
    }
    EXPECT_LE(err, 1e-10 * scale) << "n " << n << " d " << d;
  }
}

TEST(FeatureProjection, RandomKindsDependOnTheSeedAlone) {
  for (ProjectionKind kind : {ProjectionKind::Gaussian, ProjectionKind::Sparse}) {
    const auto a = FeatureProjection::random(kind, 64, 24, 7), b = FeatureProjection::random(kind, 64, 24, 7);
    const auto c = FeatureProjection::random(kind, 64, 24, 8);
    EXPECT_EQ(a.matrix(), b.matrix()) << to_string(kind);
    EXPECT_NE(a.matrix(), c.matrix()) << to_string(kind);
    // Rows of X projected in shards of any size equal the whole projection.
    std::mt19937_64 rng(3);
    const std::int64_t n = 37;
    const auto x = random_matrix(rng, n, 64, 1.0);
    std::vector<double> whole(static_cast<std::size_t>(n * 24)), parts(whole.size());
    a.apply(x, n, whole);
    for (std::int64_t lo = 0; lo < n; lo += 10) {
      const std::int64_t rows = std::min<std::int64_t>(10, n - lo);
      a.apply(std::span<const float>(x).subspan(lo * 64), rows, std::span<double>(parts).subspan(lo * 24));
    }
    for (std::size_t i = 0; i < whole.size(); ++i) EXPECT_NEAR(parts[i], whole[i], 1e-12 * (1 + std::abs(whole[i])));
  }
}

TEST(FeatureProjection, SparseRowsHoldFewSignedEntries) {
  const auto p = FeatureProjection::random(ProjectionKind::Sparse, 100, 30, 11);
  for (std::int64_t i = 0; i < 100; ++i) {
    int nnz = 0;
    for (std::int64_t c = 0; c < 30; ++c) {
      const double v = p.matrix()[i * 30 + c];
      if (v == 0) continue;
      ++nnz;
      EXPECT_DOUBLE_EQ(std::abs(v), 0.5);
    }
    EXPECT_EQ(nnz, 4) << "row " << i;
  }
}

TEST(FeatureProjection, RejectsBadParameters) {
  EXPECT_THROW(FeatureProjection::random(ProjectionKind::Gaussian, 16, 0, 1), Error);
  EXPECT_THROW(FeatureProjection::random(ProjectionKind::Sparse, 16, 17, 1), Error);
  EXPECT_THROW(parse_projection_kind("fourier"), Error);
}

// Row-normalised exp(ZZᵀ): D(Z)⁻¹ exp(ZZᵀ).
std::vector<double> attention(const std::vector<double>& gram, std::int64_t n) {
  std::vector<double> a(gram.size());
  for (std::int64_t i = 0; i < n; ++i) {
    double sum = 0;
    for (std::int64_t j = 0; j < n; ++j) sum += a[i * n + j] = std::exp(gram[i * n + j]);
    for (std::int64_t j = 0; j < n; ++j) a[i * n + j] /= sum;
  }
  return a;
}

// The paper's regime: d ≫ n, ‖XXᵀ‖∞ = r = 0.05. The entries of both attention matrices are about
// 1/n, so O(r) is checked as ‖B − A‖∞ ≤ r (and the gram kind must be exact up to rounding).
TEST(FeatureProjection, AttentionErrorIsOrderRInThePapersRegime) {
  std::mt19937_64 rng(67);
  const std::int64_t n = 16, d = 1500, e = 500;
  const double r = 0.05;
  auto x = random_matrix(rng, n, d, 1.0);
  double top = 0;
  for (double v : outer_gram(x, n, d)) top = std::max(top, std::abs(v));
  for (float& v : x) v = static_cast<float>(v * std::sqrt(r / top));
  const auto a = attention(outer_gram(x, n, d), n);
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    for (ProjectionKind kind : {ProjectionKind::Gaussian, ProjectionKind::Sparse}) {
      const auto p = FeatureProjection::random(kind, d, e, seed);
      std::vector<double> y(static_cast<std::size_t>(n * e));
      p.apply(x, n, y);
      const auto b = attention(outer_gram(y, n, e), n);
      double err = 0;
      for (std::size_t i = 0; i < a.size(); ++i) err = std::max(err, std::abs(b[i] - a[i]));
      EXPECT_LE(err, r) << to_string(kind) << " seed " << seed;
    }
  }
  std::vector<double> g(static_cast<std::size_t>(d * d), 0.0);
  add_gram(x, n, d, g);
  const auto p = FeatureProjection::gram(g, d);
  std::vector<double> y(static_cast<std::size_t>(n * p.e()));
  p.apply(x, n, y);
  const auto b = attention(outer_gram(y, n, p.e()), n);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], a[i], 1e-12);
}

}  // namespace
}  // namespace ncsparse
