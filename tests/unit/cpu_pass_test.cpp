// The CPU backend's lists against brute force (every key re-scored canonically, sorted by the
// total order): the top-k pass (fused AVX2 kernel where the CPU has it) and the pass with the
// exact state must both give exactly that list, on shapes that leave partial row blocks and key
// panels, causal masks, heavy ties, lists longer than the shard, and 1 or 2 threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
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

TEST(CpuPass, ListsEqualBruteForceWithAndWithoutExactState) {
  const Shape shapes[] = {
      {1, 1, 8, 1, false, 1, 0},      {17, 7, 8, 5, false, 1, 0},     {100, 13, 64, 20, false, 2, 0},
      {1000, 13, 64, 64, true, 1, 0}, {1000, 6, 33, 1003, false, 1, 0}, {777, 19, 64, 40, false, 2, 3},
      {3000, 12, 16, 300, false, 1, 1}, {2500, 25, 128, 200, true, 2, 7}, {5000, 8, 64, 1, false, 1, 0},
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
    PassParams p;
    p.d = s.d;
    p.scale = 1.0 / std::sqrt(static_cast<double>(s.d));
    p.causal = s.causal;
    p.list_length = s.L;
    p.threads = s.threads;
    const KeyShard shard{k.data(), v.data(), begin, s.n};
    const auto want = brute(q, k, s, pos, begin, p.scale);
    for (const bool exact : {false, true}) {
      p.exact = exact;
      std::vector<Candidate> lists(want.size());
      std::vector<double> flash(exact ? static_cast<std::size_t>(s.rows) * flash_row_size(s.d) : 0);
      backend->local_pass(QueryBlock{q.data(), pos.data(), s.rows}, shard, p, LocalOutput{lists, flash});
      for (std::size_t t = 0; t < want.size(); ++t) {
        ASSERT_EQ(lists[t].index, want[t].index) << "n " << s.n << " rows " << s.rows << " L " << s.L << " exact "
                                                  << exact << " slot " << t;
        ASSERT_EQ(lists[t].score, want[t].score) << "slot " << t;
      }
    }
  }
}

}  // namespace
}  // namespace ncsparse
