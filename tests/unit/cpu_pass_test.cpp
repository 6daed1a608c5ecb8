// The CPU backend's lists against brute force (every key re-scored canonically, sorted by the
// total order): the top-k pass (fused AVX2 kernels where the CPU has them: rows in blocks of
// six below 16 rows per thread, key-major from 16 rows) and the pass with the exact state must
// both give exactly that list, on shapes that leave partial row blocks, query panels and key
// blocks, causal masks, heavy ties, lists longer than the shard, small tiles, and 1 or 2
// threads. The exact
// state (max, Σe, Σe², Σe·v) against a double reference, on every kernel path: the fused AVX2
// kernel (d a multiple of 16, or of 8 with a half strip) with its own tiles or small ones, and
// the BLAS path (other d).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/score.hpp"
#include "ncsparse/backend.hpp"
#include "ncsparse/flash.hpp"

namespace ncsparse {
namespace {

struct Shape {
  std::int64_t n, rows, d, L;
  bool causal;
  int threads;
  int ties;  // 0: Gaussian keys; k > 0: only k distinct key rows
  std::int64_t tile = 2048;  // PassParams::tile
};

std::vector<Candidate> brute(const std::vector<float>& q, const std::vector<float>& k, const Shape& s,
                             const std::vector<std::int64_t>& pos, std::int64_t begin, double scale) {
  std::vector<Candidate> out(static_cast<std::size_t>(s.rows * s.L), kEmptyCandidate);
  for (std::int64_t i = 0; i < s.rows; ++i) {
    std::vector<Candidate> all;
    for (std::int64_t j = 0; j < s.n; ++j) {
      if (s.causal && begin + j > pos[static_cast<std::size_t>(i)]) break;
      all.push_back({canonical_score(q.data() + i * s.d, k.data() + j * s.d, s.d, scale), begin + j});
    }
    std::sort(all.begin(), all.end(), before);
    for (std::size_t t = 0; t < std::min(all.size(), static_cast<std::size_t>(s.L)); ++t)
      out[static_cast<std::size_t>(i * s.L) + t] = all[t];
  }
  return out;
}

// The pass's parameters at the scale 1/√d.
PassParams pass_params(std::int64_t d, bool causal, std::int64_t L, int threads) {
  PassParams p;
  p.d = d;
  p.scale = 1.0 / std::sqrt(static_cast<double>(d));
  p.causal = causal;
  p.list_length = L;
  p.threads = threads;
  return p;
}

TEST(CpuPass, ListsEqualBruteForceWithAndWithoutExactState) {
  const Shape shapes[] = {
      {1, 1, 8, 1, false, 1, 0},      {17, 7, 8, 5, false, 1, 0},     {100, 13, 64, 20, false, 2, 0},
      {1000, 13, 64, 64, true, 1, 0}, {1000, 6, 33, 1003, false, 1, 0}, {777, 19, 64, 40, false, 2, 3},
      {3000, 12, 16, 300, false, 1, 1}, {2500, 25, 128, 200, true, 2, 7}, {5000, 8, 64, 1, false, 1, 0},
      // 16 rows or more per thread: the key-major kernel (partial query panels, a last key
      // block of fewer than six keys, small tiles, a sampled seed at n >= 64·L).
      {3001, 40, 64, 50, false, 1, 0},   {2003, 37, 64, 30, true, 2, 0},  {1500, 33, 24, 100, false, 1, 5},
      {20000, 16, 40, 128, false, 1, 0}, {700, 20, 33, 9, true, 1, 0},   {1, 20, 8, 1, false, 1, 0},
      {5, 17, 8, 10, true, 1, 0},        {1999, 48, 128, 17, true, 1, 0, 37}, {4099, 70, 64, 256, false, 2, 3, 100},
      // more query panels than go over a tile together (32 KiB of them: 64 rows at d = 128,
      // 128 at d = 64): several groups per tile, each with its own causal reach
      {3000, 150, 128, 20, true, 1, 0, 500}, {9000, 140, 64, 128, false, 1, 0},
  };
  std::mt19937 rng(42);
  std::normal_distribution<float> normal;
  auto backend = make_backend("cpu");
  for (const Shape& s : shapes) {
    std::vector<float> q(static_cast<std::size_t>(s.rows * s.d)), k(static_cast<std::size_t>(s.n * s.d)), v(k.size());
    for (float& x : q) x = normal(rng);
    for (float& x : v) x = normal(rng);
    if (s.ties == 0) {
      for (float& x : k) x = normal(rng);
    } else {
      std::vector<float> base(static_cast<std::size_t>(s.ties * s.d));
      for (float& x : base) x = normal(rng);
      for (std::int64_t j = 0; j < s.n; ++j)
        std::copy_n(base.begin() + (j % s.ties) * s.d, s.d, k.begin() + j * s.d);
    }
    const std::int64_t begin = 1000;  // a shard that is not the first one
    std::vector<std::int64_t> pos(static_cast<std::size_t>(s.rows));
    for (std::int64_t i = 0; i < s.rows; ++i) pos[static_cast<std::size_t>(i)] = begin + (i * 37) % (s.n + 5) - 2;
    PassParams p = pass_params(s.d, s.causal, s.L, s.threads);
    p.tile = s.tile;
    const KeyShard shard{k.data(), v.data(), begin, s.n};
    const auto want = brute(q, k, s, pos, begin, p.scale);
    for (const bool exact : {false, true}) {
      p.exact = exact;
      std::vector<Candidate> lists(want.size());
      std::vector<double> flash(exact ? static_cast<std::size_t>(s.rows) * flash_row_size(s.d) : 0);
      backend->local_pass(QueryBlock{q.data(), pos.data(), s.rows}, shard, p, LocalOutput{lists, flash});
      for (std::size_t t = 0; t < want.size(); ++t) {
        ASSERT_EQ(lists[t].index, want[t].index) << "n " << s.n << " rows " << s.rows << " d " << s.d << " L " << s.L
                                                  << " exact " << exact << " slot " << t;
        ASSERT_EQ(lists[t].score, want[t].score) << "slot " << t;
      }
    }
  }
}

// What the state of a row must be, in double: the max score m, Σ exp(s − m), Σ exp(2(s − m))
// and Σ exp(s − m)·v over the visible keys.
struct RefRow {
  double m = -INFINITY, sum = 0, sum2 = 0;
  std::vector<double> o;
};

RefRow reference_row(const float* q, const std::vector<float>& k, const std::vector<float>& v, std::int64_t visible,
                     std::int64_t d, double scale) {
  RefRow r;
  r.o.assign(static_cast<std::size_t>(d), 0.0);
  std::vector<double> s(static_cast<std::size_t>(visible));
  for (std::int64_t j = 0; j < visible; ++j) {
    double x = 0;
    for (std::int64_t c = 0; c < d; ++c) x += double(q[c]) * double(k[static_cast<std::size_t>(j * d + c)]);
    s[static_cast<std::size_t>(j)] = scale * x;
    r.m = std::max(r.m, scale * x);
  }
  for (std::int64_t j = 0; j < visible; ++j) {
    const double e = std::exp(s[static_cast<std::size_t>(j)] - r.m);
    r.sum += e;
    r.sum2 += e * e;
    for (std::int64_t c = 0; c < d; ++c) r.o[static_cast<std::size_t>(c)] += e * v[static_cast<std::size_t>(j * d + c)];
  }
  return r;
}

TEST(CpuPass, ExactStateMatchesDoubleReference) {
  struct ExactShape {
    std::int64_t n, rows, d, tile;
    bool causal;
    int threads;
    double sigma;  // of the queries: scores of standard deviation about sigma
  };
  const ExactShape shapes[] = {
      {5000, 13, 64, 2048, false, 1, 3.0},  // fused, 16-column strips, several tiles
      {3001, 20, 24, 2048, true, 2, 3.0},   // fused, a half strip, causal, 2 threads
      {2000, 7, 8, 2048, false, 1, 6.0},    // fused, one half strip, peaked rows
      {1500, 9, 128, 37, true, 1, 2.0},     // fused with small tiles that split panels
      {800, 11, 40, 2048, false, 2, 3.0},   // fused, 2 strips and a half
      {1200, 10, 33, 2048, true, 1, 3.0},   // the BLAS path (d not a multiple of 8)
      {700, 6, 64, 2048, false, 1, 0.0},    // all scores 0: uniform rows
  };
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  auto backend = make_backend("cpu");
  for (const ExactShape& s : shapes) {
    std::vector<float> q(static_cast<std::size_t>(s.rows * s.d)), k(static_cast<std::size_t>(s.n * s.d)), v(k.size());
    for (float& x : q) x = static_cast<float>(s.sigma) * normal(rng);
    for (float& x : k) x = normal(rng);
    for (float& x : v) x = normal(rng);
    const std::int64_t begin = 500;
    std::vector<std::int64_t> pos(static_cast<std::size_t>(s.rows));
    for (std::int64_t i = 0; i < s.rows; ++i) pos[static_cast<std::size_t>(i)] = begin + (i * 613) % (s.n + 40) - 20;
    PassParams p = pass_params(s.d, s.causal, 3, s.threads);
    p.tile = s.tile;
    p.exact = true;
    const std::size_t frow = flash_row_size(static_cast<std::size_t>(s.d));
    std::vector<Candidate> lists(static_cast<std::size_t>(s.rows * p.list_length));
    std::vector<double> flash(static_cast<std::size_t>(s.rows) * frow);
    backend->local_pass(QueryBlock{q.data(), pos.data(), s.rows}, KeyShard{k.data(), v.data(), begin, s.n}, p,
                        LocalOutput{lists, flash});
    for (std::int64_t i = 0; i < s.rows; ++i) {
      const std::int64_t visible =
          s.causal ? std::clamp<std::int64_t>(pos[static_cast<std::size_t>(i)] - begin + 1, 0, s.n) : s.n;
      const RefRow want = reference_row(q.data() + i * s.d, k, v, visible, s.d, p.scale);
      const double* st = flash.data() + static_cast<std::size_t>(i) * frow;
      const std::string where = "d " + std::to_string(s.d) + " tile " + std::to_string(s.tile) + " row " +
                                std::to_string(i) + " visible " + std::to_string(visible);
      if (visible == 0) {
        EXPECT_EQ(st[1], 0.0) << where;
        continue;
      }
      // Scores are float sums: |m − m_ref| <= a few ulps of the largest |score|.
      const double smax = std::max(1.0, std::abs(want.m));
      ASSERT_NEAR(st[0], want.m, 1e-5 * smax) << where;
      // The state's sums are relative to its own m: scale them to the reference's.
      const double f = std::exp(st[0] - want.m);
      EXPECT_NEAR(st[1] * f, want.sum, 2e-5 * smax * want.sum) << where;
      EXPECT_NEAR(st[2] * f * f, want.sum2, 4e-5 * smax * want.sum2) << where;
      double err = 0, norm = 0;
      for (std::int64_t c = 0; c < s.d; ++c) {
        const double o = st[kFlashHeader + static_cast<std::size_t>(c)] / st[1];
        const double o_ref = want.o[static_cast<std::size_t>(c)] / want.sum;
        err = std::max(err, std::abs(o - o_ref));
        norm = std::max(norm, std::abs(o_ref));
      }
      // The output: relative to the largest |v| (the softmax averages values of size ~1).
      EXPECT_LT(err, 2e-5 * smax) << where << " output";
    }
  }
}

}  // namespace
}  // namespace ncsparse
