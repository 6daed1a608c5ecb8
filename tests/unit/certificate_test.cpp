// The certificate of DESIGN.md §4: a bound on the dropped mass 1 − M_k from the top-L list
// alone, and the output bound derived from it. Both must be true upper bounds: they are held
// here against brute force over every score of the row.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "ncsparse/candidate.hpp"
#include "ncsparse/stats.hpp"
#include "ncsparse/window.hpp"

namespace ncsparse {
namespace {

struct Row {
  std::vector<float> scores;      // all n
  std::vector<Candidate> sorted;  // all n, sorted by `before`
};

Row finish_row(std::vector<float> scores) {
  Row r;
  r.scores = std::move(scores);
  r.sorted.resize(r.scores.size());
  for (std::size_t j = 0; j < r.scores.size(); ++j) r.sorted[j] = Candidate{r.scores[j], static_cast<std::int64_t>(j)};
  std::sort(r.sorted.begin(), r.sorted.end(), before);
  return r;
}

// True dropped mass 1 − M_k for k = 1..K, by suffix sums over all n sorted scores.
std::vector<double> true_dropped(const Row& r, std::size_t K) {
  const std::size_t n = r.sorted.size();
  const double top = r.sorted[0].score;
  std::vector<double> e(n), suffix(n + 1, 0.0), prefix(n + 1, 0.0);
  for (std::size_t j = 0; j < n; ++j) e[j] = std::exp(static_cast<double>(r.sorted[j].score) - top);
  for (std::size_t j = n; j-- > 0;) suffix[j] = suffix[j + 1] + e[j];
  for (std::size_t j = 0; j < n; ++j) prefix[j + 1] = prefix[j] + e[j];
  std::vector<double> out(K);
  for (std::size_t k = 1; k <= K; ++k) out[k - 1] = suffix[k] / (prefix[k] + suffix[k]);
  return out;
}

// Checks the bound for every prefix of the row's top-L list; returns the number of prefixes.
int check_row(const Row& r, std::size_t L, const std::string& what) {
  const std::size_t n = r.sorted.size();
  const std::size_t K = std::min(L, n);
  const std::span<const Candidate> list(r.sorted.data(), K);
  std::vector<double> bound(K, -1.0);
  certificate_mass_bounds(list, static_cast<std::int64_t>(n), bound);
  const std::vector<double> truth = true_dropped(r, K);
  for (std::size_t k = 0; k < K; ++k) {
    // Never below the truth (beyond the last bits of rounding).
    EXPECT_GE(bound[k], truth[k] * (1.0 - 1e-12))
        << what << ": k=" << k + 1 << " n=" << n << " L=" << L << " bound " << bound[k] << " < true " << truth[k];
    EXPECT_LE(bound[k], 1.0) << what;
    EXPECT_GE(bound[k], 0.0) << what;
    if (n == K) {
      // The list holds every key: the bound is the dropped mass itself.
      EXPECT_NEAR(bound[k], truth[k], 1e-12 * truth[k] + 1e-300) << what << ": exact case k=" << k + 1 << " n=" << n;
    }
    if (::testing::Test::HasFailure()) return static_cast<int>(k);
  }
  return static_cast<int>(K);
}

TEST(Certificate, NeverBelowTrueDroppedMassOnRandomRows) {
  std::mt19937_64 rng(0xCE27);
  int prefixes = 0, rows = 0;
  for (int trial = 0; trial < 3000 && !HasFailure(); ++trial) {
    const std::size_t n = 1 + rng() % 1500;
    const std::size_t L = 1 + rng() % 120;
    const double sd = std::vector<double>{0.1, 1.0, 3.0, 10.0, 40.0}[rng() % 5];
    std::normal_distribution<double> normal(0.0, sd);
    std::vector<float> s(n);
    for (auto& x : s) x = static_cast<float>(normal(rng));
    prefixes += check_row(finish_row(s), L, "random trial " + std::to_string(trial));
    ++rows;
  }
  EXPECT_EQ(rows, 3000);
  EXPECT_GT(prefixes, 50000);
}

TEST(Certificate, AdversarialRows) {
  std::mt19937_64 rng(77);
  std::normal_distribution<double> normal(0.0, 1.0);
  int rows = 0;
  for (int trial = 0; trial < 120 && !HasFailure(); ++trial) {
    const std::size_t L = 1 + rng() % 40;
    const std::size_t sizes[] = {L, L + 1, 2 * L, 10 * L + 3, 1000 * L};
    for (std::size_t n : sizes) {
      if (n > 20000) n = 20000;
      for (int kind = 0; kind < 6; ++kind) {
        std::vector<float> s(n);
        switch (kind) {
          case 0:  // all equal
            for (auto& x : s) x = 2.5f;
            break;
          case 1:  // one huge score
            for (auto& x : s) x = static_cast<float>(normal(rng));
            s[rng() % n] = 1e3f;
            break;
          case 2: {  // heavy tail just below (or at) the list's last score
            for (auto& x : s) x = static_cast<float>(normal(rng));
            std::vector<float> top = s;
            std::sort(top.begin(), top.end(), std::greater<>());
            const float last = top[std::min(L, n) - 1];
            for (auto& x : s) {
              if (x < last) x = (rng() % 2) ? std::nextafter(last, -INFINITY) : last;
            }
            break;
          }
          case 3:  // distinct top scores, the rest all equal to the smallest of them
            for (std::size_t j = 0; j < n; ++j) s[j] = j < L ? static_cast<float>(L - j) : 1.0f;
            std::shuffle(s.begin(), s.end(), rng);
            break;
          case 4:  // scores spread far apart: most weights underflow
            for (auto& x : s) x = static_cast<float>(300.0 * normal(rng));
            break;
          default:  // few distinct values, many ties
            for (auto& x : s) x = static_cast<float>(rng() % 3);
            break;
        }
        check_row(finish_row(s), L, "adversarial kind " + std::to_string(kind));
        ++rows;
      }
    }
  }
  EXPECT_EQ(rows, 120 * 5 * 6);
}

TEST(Certificate, ManyKeysFewCandidates) {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (int trial = 0; trial < 6; ++trial) {
    const std::size_t n = 200000;
    std::vector<float> s(n);
    for (auto& x : s) x = static_cast<float>((trial % 2 ? 6.0 : 1.0) * normal(rng));
    check_row(finish_row(s), 1 + trial * 7, "large n trial " + std::to_string(trial));
  }
}

TEST(Certificate, OutputBoundHoldsForRandomValues) {
  std::mt19937_64 rng(0xB0B);
  int checks = 0;
  for (int trial = 0; trial < 1500 && !HasFailure(); ++trial) {
    const std::size_t n = 2 + rng() % 400;
    const std::size_t L = 1 + rng() % 50;
    const std::size_t d = 1 + rng() % 12;
    const double sd = std::vector<double>{0.2, 1.0, 4.0}[rng() % 3];
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<float> s(n);
    for (auto& x : s) x = static_cast<float>(sd * normal(rng));
    if (trial % 5 == 0)
      for (auto& x : s) x = std::round(x);  // ties
    const Row r = finish_row(s);
    // Values with a common offset (outputs do not cancel) or centred, and varying norms.
    const double offset = (trial % 3 == 0) ? 3.0 : 0.0;
    std::vector<std::vector<double>> v(n, std::vector<double>(d));
    double vmax = 0;
    for (auto& row : v) {
      const double scale = std::exp(normal(rng));
      double nrm = 0;
      for (auto& x : row) {
        x = static_cast<float>(scale * normal(rng) + offset);  // float-representable like V
        nrm += x * x;
      }
      vmax = std::max(vmax, std::sqrt(nrm));
    }
    const double top = r.sorted[0].score;
    std::vector<double> o(d, 0.0);
    double l = 0;
    for (std::size_t j = 0; j < n; ++j) {
      const double e = std::exp(static_cast<double>(s[j]) - top);
      l += e;
      for (std::size_t c = 0; c < d; ++c) o[c] += e * v[j][c];
    }
    for (auto& x : o) x /= l;
    const std::size_t K = std::min(L, n);
    std::vector<double> bound(K);
    certificate_mass_bounds(std::span<const Candidate>(r.sorted.data(), K), static_cast<std::int64_t>(n), bound);
    for (std::size_t k = 1; k <= K; ++k) {
      std::vector<double> oh(d, 0.0);
      double z = 0;
      for (std::size_t j = 0; j < k; ++j) {
        const double e = std::exp(static_cast<double>(r.sorted[j].score) - top);
        z += e;
        for (std::size_t c = 0; c < d; ++c) oh[c] += e * v[static_cast<std::size_t>(r.sorted[j].index)][c];
      }
      double err2 = 0;
      for (std::size_t c = 0; c < d; ++c) {
        oh[c] /= z;
        err2 += (oh[c] - o[c]) * (oh[c] - o[c]);
      }
      const double got = certificate_output_bound(bound[k - 1], oh, vmax);
      double oh2 = 0;
      for (double x : oh) oh2 += x * x;
      EXPECT_DOUBLE_EQ(got, bound[k - 1] * (std::sqrt(oh2) + vmax));
      EXPECT_GE(got * (1 + 1e-12) + 1e-14 * vmax, std::sqrt(err2)) << "trial " << trial << " k=" << k << " n=" << n;
      ++checks;
    }
  }
  EXPECT_GT(checks, 10000);
}

TEST(Certificate, EmptyListLeavesBoundUntouched) {
  std::vector<double> bound(3, 42.0);
  certificate_mass_bounds(std::span<const Candidate>(), 10, std::span<double>(bound.data(), 0));
  EXPECT_EQ(bound[0], 42.0);
}

}  // namespace
}  // namespace ncsparse
