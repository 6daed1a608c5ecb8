// Error statistics (DESIGN.md §4) against a brute-force n × n double computation of the full
// softmax rows p and the sparse rows p̂, and the aggregates over rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "ncsparse/candidate.hpp"
#include "ncsparse/stats.hpp"
#include "ncsparse/window.hpp"

namespace ncsparse {
namespace {

double close_tol(double ref, double abs_floor) { return 1e-9 * std::abs(ref) + abs_floor; }

struct Problem {
  std::int64_t n, m, d;
  std::vector<float> q, k, v;  // m×d, n×d, n×d
};

Problem make_problem(std::mt19937_64& rng, std::int64_t n, std::int64_t m, std::int64_t d) {
  Problem p{n, m, d, {}, {}, {}};
  std::normal_distribution<double> normal(0.0, 1.0);
  auto fill = [&](std::vector<float>& x, std::int64_t rows, double offset) {
    x.resize(static_cast<std::size_t>(rows * d));
    for (auto& e : x) e = static_cast<float>(normal(rng) + offset);
  };
  fill(p.q, m, 0.0);
  fill(p.k, n, 0.0);
  fill(p.v, n, 0.3);
  return p;
}

TEST(Stats, PrefixKeptSetAndErrorsAgainstBruteForce) {
  std::mt19937_64 rng(0x57A7);
  const std::int64_t n = 300, m = 20, d = 8;
  int checked = 0;
  for (double sharp : {0.3, 1.0, 4.0}) {
    const Problem P = make_problem(rng, n, m, d);
    const double scale = sharp / std::sqrt(static_cast<double>(d));
    for (std::int64_t i = 0; i < m; ++i) {
      // Float scores (what the candidate lists hold); they are the truth for this test.
      std::vector<double> s(static_cast<std::size_t>(n));
      std::vector<Candidate> all(static_cast<std::size_t>(n));
      for (std::int64_t j = 0; j < n; ++j) {
        double dot = 0;
        for (std::int64_t c = 0; c < d; ++c) dot += double(P.q[i * d + c]) * double(P.k[j * d + c]);
        const float sf = static_cast<float>(scale * dot);
        s[j] = sf;
        all[j] = Candidate{sf, j};
      }
      std::sort(all.begin(), all.end(), before);
      double mx = -INFINITY;
      for (double x : s) mx = std::max(mx, x);
      double l = 0, l2 = 0;
      for (double x : s) {
        l += std::exp(x - mx);
        l2 += std::exp(2 * (x - mx));
      }
      std::vector<double> p(static_cast<std::size_t>(n));
      for (std::int64_t j = 0; j < n; ++j) p[j] = std::exp(s[j] - mx) / l;
      std::vector<double> o(static_cast<std::size_t>(d), 0.0);
      for (std::int64_t j = 0; j < n; ++j) {
        for (std::int64_t c = 0; c < d; ++c) o[c] += p[j] * P.v[j * d + c];
      }

      for (std::int64_t L : {std::int64_t{61}, n + 1}) {
        const std::span<const Candidate> list(all.data(), static_cast<std::size_t>(std::min(L, n)));
        std::vector<std::int64_t> ks = {1, 2, 3, 7, 20, 60};
        if (L > n) ks.insert(ks.end(), {150, n - 1, n});
        for (std::int64_t k : ks) {
          SCOPED_TRACE("sharp " + std::to_string(sharp) + " row " + std::to_string(i) + " L " + std::to_string(L) +
                       " k " + std::to_string(k));
          // Brute force over the whole row.
          std::vector<char> in(static_cast<std::size_t>(n), 0);
          for (std::int64_t j = 0; j < k; ++j) in[list[j].index] = 1;
          double M = 0, sum_sq = 0, p_max = 0, p_drop = 0;
          for (std::int64_t j = 0; j < n; ++j) {
            if (in[j]) {
              M += p[j];
              sum_sq += p[j] * p[j];
              p_max = std::max(p_max, p[j]);
            } else {
              p_drop = std::max(p_drop, p[j]);
            }
          }
          double a1 = 0, a2 = 0, ainf = 0;
          std::vector<double> oh(static_cast<std::size_t>(d), 0.0);
          for (std::int64_t j = 0; j < n; ++j) {
            const double ph = in[j] ? p[j] / M : 0.0;
            const double e = std::abs(ph - p[j]);
            a1 += e;
            a2 += e * e;
            ainf = std::max(ainf, e);
            for (std::int64_t c = 0; c < d; ++c) oh[c] += ph * P.v[j * d + c];
          }
          a2 = std::sqrt(a2);
          double e2 = 0, emax = 0, o2 = 0;
          for (std::int64_t c = 0; c < d; ++c) {
            e2 += (oh[c] - o[c]) * (oh[c] - o[c]);
            emax = std::max(emax, std::abs(oh[c] - o[c]));
            o2 += o[c] * o[c];
          }

          const KeptSet kept = prefix_kept_set(list, k, mx, l, n, l2 / (l * l));
          EXPECT_NEAR(kept.mass, M, close_tol(M, 1e-15));
          EXPECT_NEAR(kept.sum_sq, sum_sq, close_tol(sum_sq, 1e-18));
          EXPECT_NEAR(kept.p_max, p_max, close_tol(p_max, 1e-18));
          EXPECT_NEAR(kept.p_dropped, p_drop, close_tol(p_drop, 1e-18));
          if (k == n) {
            EXPECT_EQ(kept.p_dropped, 0.0);
          }

          RowStats st;
          const double sum_sq_all = l2 / (l * l);
          fill_errors(kept, sum_sq_all, oh, o, st);
          EXPECT_NEAR(st.kept_mass, M, close_tol(M, 1e-15));
          EXPECT_NEAR(st.attn_l1, a1, close_tol(a1, 1e-14));
          // ℓ2 from the formula of DESIGN.md §4 subtracts Σ_S p² from Σ_all p²: its absolute
          // precision cannot beat ~√(ε·Σp²) (ε = double rounding), whatever the implementation.
          EXPECT_NEAR(st.attn_l2, a2, close_tol(a2, std::sqrt(1e-14 * sum_sq_all)));
          EXPECT_NEAR(st.attn_linf, ainf, close_tol(ainf, 1e-15));
          EXPECT_NEAR(st.out_l2, std::sqrt(e2), close_tol(std::sqrt(e2), 1e-15));
          EXPECT_NEAR(st.out_linf, emax, close_tol(emax, 1e-15));
          EXPECT_NEAR(st.out_rel, std::sqrt(e2 / o2), close_tol(std::sqrt(e2 / o2), 1e-15));
          // Fields fill_errors does not own stay as they were.
          EXPECT_TRUE(std::isnan(st.cert_mass));
          EXPECT_TRUE(std::isnan(st.cert_out));
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, 3 * 20 * (6 + 9));
}

// ℓ∞ ≤ ℓ2 ≤ ℓ1 holds for every vector; the reported attention errors must keep it. The
// dropped part's Σp² is at most p_(k+1)·(1 − M), which also bounds the rounding of the
// subtraction Σ_all p² − Σ_S p², so a window that keeps (nearly) the whole row must not
// report an ℓ2 error far above its ℓ1 error.
TEST(Stats, AttentionErrorsAreConsistent) {
  std::mt19937_64 rng(0xC0115);
  const std::int64_t n = 300, d = 8;
  int violations = 0;
  double worst_l2 = 0, worst_l1 = 0;
  std::string worst_case;
  for (int trial = 0; trial < 60; ++trial) {
    const Problem P = make_problem(rng, n, 1, d);
    const double scale = (1.0 + trial % 4) / std::sqrt(static_cast<double>(d));
    std::vector<Candidate> all(static_cast<std::size_t>(n));
    std::vector<double> s(static_cast<std::size_t>(n));
    for (std::int64_t j = 0; j < n; ++j) {
      double dot = 0;
      for (std::int64_t c = 0; c < d; ++c) dot += double(P.q[c]) * double(P.k[j * d + c]);
      s[j] = static_cast<float>(scale * dot);
      all[j] = Candidate{static_cast<float>(s[j]), j};
    }
    std::sort(all.begin(), all.end(), before);
    const double mx = all[0].score;
    double l = 0, l2 = 0;
    for (double x : s) {
      l += std::exp(x - mx);
      l2 += std::exp(2 * (x - mx));
    }
    const std::vector<double> zero(static_cast<std::size_t>(d), 0.0);
    for (std::int64_t k : {n - 3, n - 2, n - 1, n}) {
      const KeptSet kept = prefix_kept_set(all, k, mx, l, n, l2 / (l * l));
      RowStats st;
      fill_errors(kept, l2 / (l * l), zero, zero, st);
      const bool ok =
          st.attn_linf <= st.attn_l2 * (1 + 1e-12) + 1e-15 && st.attn_l2 <= st.attn_l1 * (1 + 1e-12) + 1e-15;
      if (!ok) {
        ++violations;
        if (st.attn_l2 - st.attn_l1 > worst_l2 - worst_l1) {
          worst_l2 = st.attn_l2;
          worst_l1 = st.attn_l1;
          std::ostringstream text;
          text << "trial " << trial << " k=" << k << " of n=" << n << ": attn_linf " << st.attn_linf;
          worst_case = text.str();
        }
      }
    }
  }
  EXPECT_EQ(violations, 0) << "fill_errors reported attn_l2 > attn_l1 (or attn_linf > attn_l2); worst: " << worst_case
                           << " attn_l2 " << worst_l2 << " > attn_l1 " << worst_l1;
}

TEST(Stats, FillErrorsEdgeCases) {
  // Nothing kept (M = 0): p̂ = 0, so ℓ1 = 2 (Σ|p| + ... ) by the formula 2(1 − M).
  RowStats st;
  KeptSet none;
  none.p_dropped = 0.4;
  const std::vector<double> zero = {0.0, 0.0}, o = {3.0, 4.0};
  fill_errors(none, 0.3, zero, o, st);
  EXPECT_DOUBLE_EQ(st.kept_mass, 0.0);
  EXPECT_DOUBLE_EQ(st.attn_l1, 2.0);
  EXPECT_DOUBLE_EQ(st.attn_l2, std::sqrt(0.3));
  EXPECT_DOUBLE_EQ(st.attn_linf, 0.4);
  EXPECT_DOUBLE_EQ(st.out_l2, 5.0);
  EXPECT_DOUBLE_EQ(st.out_linf, 4.0);
  EXPECT_DOUBLE_EQ(st.out_rel, 1.0);
  // o = 0 exactly: relative error 0 when ô = 0 too, +inf otherwise.
  RowStats a, b;
  KeptSet all;
  all.mass = 1;
  all.sum_sq = 0.5;
  all.p_max = 0.5;
  fill_errors(all, 0.5, zero, zero, a);
  EXPECT_EQ(a.out_rel, 0.0);
  EXPECT_EQ(a.attn_l1, 0.0);
  EXPECT_EQ(a.attn_l2, 0.0);
  EXPECT_EQ(a.attn_linf, 0.0);
  fill_errors(all, 0.5, o, zero, b);
  EXPECT_TRUE(std::isinf(b.out_rel));
}

TEST(Stats, CertificateOutputBoundFormula) {
  const std::vector<double> oh = {3.0, 4.0};
  EXPECT_DOUBLE_EQ(certificate_output_bound(0.1, oh, 2.0), 0.1 * (5.0 + 2.0));
  EXPECT_DOUBLE_EQ(certificate_output_bound(0.0, oh, 2.0), 0.0);
}

// ---------------------------------------------------------------------------------------------
// summarize

double quantile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double pos = p * static_cast<double>(v.size() - 1);
  const std::size_t lo = static_cast<std::size_t>(pos);
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

TEST(Summarize, MatchesDirectComputationAndSkipsNaN) {
  std::mt19937_64 rng(0x5EED);
  for (int trial = 0; trial < 300; ++trial) {
    const std::size_t size = 1 + rng() % 500;
    std::vector<double> values, real;
    std::lognormal_distribution<double> logn(0.0, 2.0);
    for (std::size_t i = 0; i < size; ++i) {
      if (rng() % 5 == 0) {
        values.push_back(kNaN);
      } else {
        const double x = (rng() % 2 ? 1.0 : -1.0) * logn(rng);
        values.push_back(x);
        real.push_back(x);
      }
    }
    const Summary s = summarize(values);
    SCOPED_TRACE("trial " + std::to_string(trial));
    ASSERT_EQ(s.count, static_cast<std::int64_t>(real.size()));
    if (real.empty()) {
      EXPECT_TRUE(std::isnan(s.mean));
      continue;
    }
    double sum = 0;
    for (double x : real) sum += x;
    double scale = 0;
    for (double x : real) scale = std::max(scale, std::abs(x));
    EXPECT_NEAR(s.mean, sum / static_cast<double>(real.size()), 1e-12 * scale);
    EXPECT_EQ(s.min, *std::min_element(real.begin(), real.end()));
    EXPECT_EQ(s.max, *std::max_element(real.begin(), real.end()));
    EXPECT_NEAR(s.p50, quantile(real, 0.5), 1e-12 * scale);
    EXPECT_NEAR(s.p90, quantile(real, 0.9), 1e-12 * scale);
    EXPECT_NEAR(s.p99, quantile(real, 0.99), 1e-12 * scale);
  }
}

TEST(Summarize, HandComputedValues) {
  const Summary s = summarize(std::vector<double>{4.0, kNaN, 1.0, 3.0, 2.0});
  EXPECT_EQ(s.count, 4);
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_DOUBLE_EQ(s.min, 1.0);
  EXPECT_DOUBLE_EQ(s.max, 4.0);
  EXPECT_DOUBLE_EQ(s.p50, 2.5);
  EXPECT_DOUBLE_EQ(s.p90, 3.7);
  EXPECT_DOUBLE_EQ(s.p99, 3.97);

  const Summary one = summarize(std::vector<double>{kNaN, 7.0});
  EXPECT_EQ(one.count, 1);
  EXPECT_EQ(one.mean, 7.0);
  EXPECT_EQ(one.p50, 7.0);
  EXPECT_EQ(one.p99, 7.0);
  EXPECT_EQ(one.min, 7.0);
  EXPECT_EQ(one.max, 7.0);

  // 101 values 0..100: pX is X exactly.
  std::vector<double> hundred;
  for (int i = 100; i >= 0; --i) hundred.push_back(i);
  const Summary h = summarize(hundred);
  EXPECT_DOUBLE_EQ(h.p50, 50.0);
  EXPECT_DOUBLE_EQ(h.p90, 90.0);
  EXPECT_DOUBLE_EQ(h.p99, 99.0);

  for (const std::vector<double>& empty : {std::vector<double>{}, std::vector<double>{kNaN, kNaN}}) {
    const Summary e = summarize(empty);
    EXPECT_EQ(e.count, 0);
    EXPECT_TRUE(std::isnan(e.mean));
    EXPECT_TRUE(std::isnan(e.min));
    EXPECT_TRUE(std::isnan(e.max));
    EXPECT_TRUE(std::isnan(e.p50));
    EXPECT_TRUE(std::isnan(e.p90));
    EXPECT_TRUE(std::isnan(e.p99));
  }
}

}  // namespace
}  // namespace ncsparse
