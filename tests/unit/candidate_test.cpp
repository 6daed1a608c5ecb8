// Top-k selection (TopKRow) and the merge of sorted candidate lists (merge_sorted), checked
// against sorting under the total order (score descending, index ascending) on inputs with
// many ties.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <span>
#include <vector>

#include "ncsparse/candidate.hpp"

namespace ncsparse {
namespace {

bool same(const Candidate& a, const Candidate& b) {
  // Bitwise-equal score semantics for finite and infinite values; indices exactly.
  return a.index == b.index && (a.score == b.score);
}

::testing::AssertionResult lists_equal(const std::vector<Candidate>& got, const std::vector<Candidate>& want) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  }
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (!same(got[i], want[i])) {
      return ::testing::AssertionFailure() << "entry " << i << ": got (" << got[i].score << ", " << got[i].index
                                           << ") want (" << want[i].score << ", " << want[i].index << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

// The first `keep` entries of the candidates under `before`, padded with empty slots.
std::vector<Candidate> reference_top(std::vector<Candidate> all, std::size_t keep) {
  const std::size_t take = std::min(keep, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(take), all.end(), before);
  std::vector<Candidate> out(keep, kEmptyCandidate);
  std::copy(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(take), out.begin());
  return out;
}

std::vector<Candidate> run_topk(TopKRow& top, const std::vector<Candidate>& keys, std::size_t keep) {
  top.reset(keep);
  for (const Candidate& c : keys) top.push(c.score, c.index);
  std::vector<Candidate> out(keep, Candidate{123.0f, 42});  // garbage the finish must overwrite
  top.finish(out);
  return out;
}

// Scores drawn from a small set of values, so that ties are everywhere.
float tied_score(std::mt19937_64& rng, int distinct) {
  std::uniform_int_distribution<int> pick(0, distinct - 1);
  return static_cast<float>(pick(rng)) * 0.75f - 1.5f;
}

// Keys in increasing global index order, with random gaps between indices.
std::vector<Candidate> make_keys(std::mt19937_64& rng, std::size_t n, int distinct, bool gaps) {
  std::vector<Candidate> keys(n);
  std::int64_t index = static_cast<std::int64_t>(rng() % 1000);
  std::uniform_int_distribution<std::int64_t> gap(1, 5);
  for (std::size_t i = 0; i < n; ++i) {
    keys[i] = Candidate{tied_score(rng, distinct), index};
    index += gaps ? gap(rng) : 1;
  }
  return keys;
}

TEST(TopKRow, MatchesPartialSortWithManyTies) {
  std::mt19937_64 rng(0x70C0FFEE);
  TopKRow top;
  const std::size_t sizes[] = {0, 1, 2, 3, 16, 17, 18, 50, 333, 1000, 4099};
  const int distinct_counts[] = {1, 2, 3, 5, 40};
  int checked = 0;
  for (std::size_t n : sizes) {
    for (int distinct : distinct_counts) {
      const std::vector<Candidate> keys = make_keys(rng, n, distinct, (n % 2) == 1);
      const std::size_t keeps[] = {1, 2, 17, 64, n == 0 ? 1 : n, n + 1, 3 * n + 5};
      for (std::size_t keep : keeps) {
        const std::vector<Candidate> got = run_topk(top, keys, keep);
        EXPECT_TRUE(lists_equal(got, reference_top(keys, keep)))
            << "n=" << n << " distinct=" << distinct << " keep=" << keep;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 300);
}

TEST(TopKRow, MatchesPartialSortOnAdversarialOrders) {
  std::mt19937_64 rng(12345);
  TopKRow top;
  for (std::size_t keep : {1, 2, 7, 17, 100}) {
    for (int pattern = 0; pattern < 5; ++pattern) {
      const std::size_t n = 3000;
      std::vector<Candidate> keys(n);
      for (std::size_t i = 0; i < n; ++i) {
        float s = 0;
        switch (pattern) {
          case 0:
            s = static_cast<float>(i);
            break;  // increasing: every push enters
          case 1:
            s = -static_cast<float>(i);
            break;  // decreasing
          case 2:
            s = 1.0f;
            break;  // all equal
          case 3:
            s = static_cast<float>(i % 7);
            break;  // saw tooth with ties
          default:
            s = static_cast<float>(static_cast<int>(i / 50)) * (i % 2 ? 1.0f : -1.0f);
            break;
        }
        keys[i] = Candidate{s, static_cast<std::int64_t>(i) * 3 + 11};
      }
      EXPECT_TRUE(lists_equal(run_topk(top, keys, keep), reference_top(keys, keep)))
          << "pattern " << pattern << " keep " << keep;
    }
  }
  // Near-ties: scores a few ulps apart, and random scores in a tiny range, so that after each
  // shrink many later scores sit just above the threshold.
  for (int trial = 0; trial < 40; ++trial) {
    std::vector<Candidate> keys(500 + rng() % 3000);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      float s = 1.0f;
      if (trial % 2 == 0) {
        for (std::uint64_t u = rng() % 8; u > 0; --u) s = std::nextafter(s, 2.0f);
      } else {
        s = std::uniform_real_distribution<float>(0.0f, 1e-3f)(rng);
      }
      keys[i] = Candidate{s, static_cast<std::int64_t>(i)};
    }
    const std::size_t keep = 1 + rng() % 64;
    EXPECT_TRUE(lists_equal(run_topk(top, keys, keep), reference_top(keys, keep))) << "near-tie trial " << trial;
  }
  // Random continuous scores with extreme values mixed in.
  for (int trial = 0; trial < 50; ++trial) {
    std::normal_distribution<float> normal(0.0f, 10.0f);
    std::vector<Candidate> keys(1 + rng() % 2000);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      float s = normal(rng);
      if (rng() % 13 == 0) s = 1e30f;
      if (rng() % 17 == 0) s = -1e30f;
      keys[i] = Candidate{s, static_cast<std::int64_t>(i)};
    }
    const std::size_t keep = 1 + rng() % 40;
    EXPECT_TRUE(lists_equal(run_topk(top, keys, keep), reference_top(keys, keep))) << "trial " << trial;
  }
}

TEST(TopKRow, ResetReusesStorageForLargerAndSmallerKeeps) {
  std::mt19937_64 rng(99);
  TopKRow top(3);
  for (std::size_t keep : {3, 500, 2, 1, 1200, 17, 17, 4000}) {
    const std::vector<Candidate> keys = make_keys(rng, 2500, 4, true);
    EXPECT_TRUE(lists_equal(run_topk(top, keys, keep), reference_top(keys, keep))) << "keep " << keep;
  }
}

TEST(TopKRow, KeepZeroGivesEmptyOutput) {
  TopKRow top(0);
  top.push(1.0f, 0);
  top.push(2.0f, 1);
  std::vector<Candidate> out;
  top.finish(out);
  EXPECT_TRUE(out.empty());
}

TEST(TopKRow, ThresholdNeverExceedsKeptScores) {
  // The threshold is a lower bound below which nothing can enter: it must never be above the
  // worst score that ends up in the list.
  std::mt19937_64 rng(7);
  TopKRow top;
  for (int trial = 0; trial < 20; ++trial) {
    const std::size_t keep = 1 + rng() % 30;
    const std::vector<Candidate> keys = make_keys(rng, 1000, 6, false);
    top.reset(keep);
    for (const Candidate& c : keys) top.push(c.score, c.index);
    const float threshold = top.threshold();
    std::vector<Candidate> out(keep);
    top.finish(out);
    EXPECT_LE(threshold, out.back().score) << "trial " << trial;
  }
}

TEST(CountValid, CountsLeadingRealEntries) {
  std::vector<Candidate> list = {{3.0f, 1}, {2.0f, 5}, {2.0f, 9}, kEmptyCandidate, kEmptyCandidate};
  EXPECT_EQ(count_valid(list), 3u);
  EXPECT_EQ(count_valid(std::span<const Candidate>(list).first(2)), 2u);
  EXPECT_EQ(count_valid(std::span<const Candidate>()), 0u);
  std::vector<Candidate> empty(4, kEmptyCandidate);
  EXPECT_EQ(count_valid(empty), 0u);
  // A real entry may have score -inf: only the index marks an empty slot.
  std::vector<Candidate> neg = {{-std::numeric_limits<float>::infinity(), 0}, kEmptyCandidate};
  EXPECT_EQ(count_valid(neg), 1u);
}

// ---------------------------------------------------------------------------------------------
// merge_sorted

std::vector<Candidate> merge(const std::vector<Candidate>& a, const std::vector<Candidate>& b, std::size_t L) {
  std::vector<Candidate> out(L, Candidate{7.0f, 7});
  merge_sorted(a, b, out);
  return out;
}

// A sorted list of `count` real entries padded to `L` (count <= L), from the given candidates.
std::vector<Candidate> sorted_padded(std::vector<Candidate> entries, std::size_t L) {
  std::sort(entries.begin(), entries.end(), before);
  entries.resize(L, kEmptyCandidate);
  return entries;
}

struct Triple {
  std::vector<Candidate> a, b, c;
  std::vector<Candidate> all;  // every real entry of the three
};

// Three sorted lists over disjoint index sets with tied scores; some shorter than L.
Triple random_triple(std::mt19937_64& rng, std::size_t L, int distinct) {
  std::vector<std::int64_t> indices(3 * L + 5);
  std::iota(indices.begin(), indices.end(), std::int64_t{0});
  for (auto& x : indices) x = x * 2 + static_cast<std::int64_t>(rng() % 2);  // distinct, gapped
  std::shuffle(indices.begin(), indices.end(), rng);
  std::size_t next = 0;
  auto part = [&](std::size_t count) {
    std::vector<Candidate> e(count);
    for (auto& c : e) c = Candidate{tied_score(rng, distinct), indices[next++]};
    return e;
  };
  auto count = [&] {
    const int r = static_cast<int>(rng() % 4);
    if (r == 0) return std::size_t{0};
    if (r == 1) return L;
    return static_cast<std::size_t>(rng() % (L + 1));
  };
  Triple t;
  const std::vector<Candidate> ea = part(count()), eb = part(count()), ec = part(count());
  t.a = sorted_padded(ea, L);
  t.b = sorted_padded(eb, L);
  t.c = sorted_padded(ec, L);
  t.all = ea;
  t.all.insert(t.all.end(), eb.begin(), eb.end());
  t.all.insert(t.all.end(), ec.begin(), ec.end());
  return t;
}

TEST(MergeSorted, AssociativeCommutativeAndEqualToTopOfUnion) {
  std::mt19937_64 rng(0xABCDEF);
  int trials = 0;
  for (std::size_t L : {1, 2, 3, 5, 17, 64}) {
    for (int distinct : {1, 2, 4, 100}) {
      for (int rep = 0; rep < 60; ++rep) {
        const Triple t = random_triple(rng, L, distinct);
        const auto ab = merge(t.a, t.b, L), ba = merge(t.b, t.a, L);
        ASSERT_TRUE(lists_equal(ab, ba)) << "commutativity, L=" << L;
        const auto bc = merge(t.b, t.c, L);
        const auto left = merge(ab, t.c, L), right = merge(t.a, bc, L);
        ASSERT_TRUE(lists_equal(left, right)) << "associativity, L=" << L;
        ASSERT_TRUE(lists_equal(left, reference_top(t.all, L))) << "top of union, L=" << L;
        // Other trees and orders give the same list.
        ASSERT_TRUE(lists_equal(merge(merge(t.c, t.a, L), t.b, L), left));
        ASSERT_TRUE(lists_equal(merge(t.b, merge(t.c, t.a, L), L), left));
        // Merging with an all-empty list is the identity.
        const std::vector<Candidate> none(L, kEmptyCandidate);
        ASSERT_TRUE(lists_equal(merge(t.a, none, L), t.a));
        ASSERT_TRUE(lists_equal(merge(none, t.a, L), t.a));
        ++trials;
      }
    }
  }
  EXPECT_EQ(trials, 6 * 4 * 60);
}

TEST(MergeSorted, ManyWayMergeInRandomTreesMatchesSort) {
  // A reduction over many "ranks" in random tree shapes gives the top-L of the union.
  std::mt19937_64 rng(2024);
  for (int trial = 0; trial < 200; ++trial) {
    const std::size_t L = 1 + rng() % 20;
    const std::size_t parts = 1 + rng() % 9;
    std::vector<Candidate> all;
    std::vector<std::vector<Candidate>> lists;
    std::int64_t index = 0;
    for (std::size_t p = 0; p < parts; ++p) {
      // Each part: a contiguous index range (like a shard), scanned by TopKRow.
      const std::size_t count = rng() % (3 * L + 2);
      std::vector<Candidate> keys(count);
      for (auto& c : keys) c = Candidate{tied_score(rng, 3), index++};
      all.insert(all.end(), keys.begin(), keys.end());
      TopKRow top(L);
      for (const auto& c : keys) top.push(c.score, c.index);
      std::vector<Candidate> out(L);
      top.finish(out);
      lists.push_back(out);
    }
    while (lists.size() > 1) {
      const std::size_t i = rng() % lists.size();
      std::size_t j = rng() % lists.size();
      if (i == j) continue;
      lists[i] = merge(lists[i], lists[j], L);
      lists.erase(lists.begin() + static_cast<std::ptrdiff_t>(j));
    }
    ASSERT_TRUE(lists_equal(lists[0], reference_top(all, L))) << "trial " << trial;
  }
}

// merge_sorted_many (the all-gather merge's) equals the pairwise merge of the same lists, on
// lists with ties, empty lists, lists of different lengths and outputs shorter or longer.
TEST(MergeSortedMany, EqualsPairwiseMerges) {
  std::mt19937_64 rng(77);
  for (int trial = 0; trial < 300; ++trial) {
    const std::size_t parts = rng() % 11;  // 0 lists too
    const std::size_t lout = rng() % 24;
    std::vector<std::vector<Candidate>> lists;
    std::vector<Candidate> all;
    std::int64_t index = 0;
    for (std::size_t p = 0; p < parts; ++p) {
      const std::size_t L = rng() % 16, count = rng() % (L + 1);
      std::vector<Candidate> e(count);
      for (auto& c : e) c = Candidate{tied_score(rng, 3), index++};
      all.insert(all.end(), e.begin(), e.end());
      lists.push_back(sorted_padded(e, L));
    }
    std::vector<std::span<const Candidate>> spans(lists.begin(), lists.end());
    std::vector<Candidate> got(lout, Candidate{7.0f, 7});
    merge_sorted_many(spans, got);
    std::vector<Candidate> pairwise(lout, kEmptyCandidate);
    for (const auto& l : lists) pairwise = merge(pairwise, l, lout);
    ASSERT_TRUE(lists_equal(got, pairwise)) << "trial " << trial;
    ASSERT_TRUE(lists_equal(got, reference_top(all, lout))) << "trial " << trial;
  }
}

TEST(MergeSorted, InputsOfDifferentLengthsAndShortOutputs) {
  std::mt19937_64 rng(31);
  for (int trial = 0; trial < 300; ++trial) {
    const std::size_t la = rng() % 8, lb = rng() % 8, lout = rng() % 12;
    std::vector<Candidate> ea(la), eb(lb);
    std::int64_t index = 0;
    for (auto& c : ea) c = Candidate{tied_score(rng, 2), index++};
    for (auto& c : eb) c = Candidate{tied_score(rng, 2), index++};
    std::vector<Candidate> a = ea, b = eb;
    std::sort(a.begin(), a.end(), before);
    std::sort(b.begin(), b.end(), before);
    std::vector<Candidate> all = ea;
    all.insert(all.end(), eb.begin(), eb.end());
    ASSERT_TRUE(lists_equal(merge(a, b, lout), reference_top(all, lout))) << "trial " << trial;
  }
}

}  // namespace
}  // namespace ncsparse
