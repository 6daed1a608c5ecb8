// Host-side logic of the CUDA backend, checked on every machine (no GPU needed): the launch
// plan and the radix key of the device selection.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "cuda/plan.hpp"
#include "ncsparse/candidate.hpp"
#include "ncsparse/error.hpp"

namespace ncsparse::cuda {
namespace {

TEST(CudaPlan, WholeBlockWhenItFits) {
  const PassPlan p = make_plan(256, 1 << 20, 4096, 2049, 128, std::int64_t(8) << 30);
  EXPECT_EQ(p.rows_per_launch, 256);
  EXPECT_EQ(p.tile, 4096);
  EXPECT_EQ(p.candidate_capacity, 2 * 2049 + 4096);
  EXPECT_EQ(p.bytes, plan_bytes(256, 4096, 2049, 128));
}

TEST(CudaPlan, ShrinksTileThenRowsToFitTheBudget) {
  const std::int64_t budget = plan_bytes(64, 256, 65537, 128);
  const PassPlan p = make_plan(1024, 1 << 22, 8192, 65537, 128, budget);
  EXPECT_EQ(p.tile, 256) << "the tile goes down to 256 keys before rows are cut";
  EXPECT_LE(p.bytes, budget);
  EXPECT_GE(p.rows_per_launch, 32);
  EXPECT_LE(p.rows_per_launch, 64);
  // Every plan fits, for many budgets and shapes.
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 500; ++trial) {
    const std::int64_t rows = 1 + std::int64_t(rng() % 2048), keys = std::int64_t(rng() % (1 << 22));
    const std::int64_t L = 2 + std::int64_t(rng() % 65536), d = 1 + std::int64_t(rng() % 256);
    const std::int64_t need = plan_bytes(1, 256, L, d);
    const std::int64_t budget = need + std::int64_t(rng() % (std::int64_t(1) << 33));
    const PassPlan q = make_plan(rows, keys, 1 + std::int64_t(rng() % 16384), L, d, budget);
    EXPECT_LE(q.bytes, budget);
    EXPECT_GE(q.rows_per_launch, 1);
    EXPECT_LE(q.rows_per_launch, rows);
    EXPECT_GE(q.tile, 1);
    EXPECT_LE(q.tile, std::max<std::int64_t>(keys, 1));
    EXPECT_EQ(q.candidate_capacity, 2 * L + q.tile);
  }
}

TEST(CudaPlan, TileNeverExceedsTheShardAndEmptyShardsWork) {
  EXPECT_EQ(make_plan(8, 100, 4096, 17, 16, std::int64_t(1) << 30).tile, 100);
  EXPECT_EQ(make_plan(8, 0, 4096, 17, 16, std::int64_t(1) << 30).tile, 1);
}

TEST(CudaPlan, TooLittleMemoryIsAnUnavailableError) {
  try {
    make_plan(8, 1 << 20, 4096, 65537, 128, 1000);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitUnavailable);
    EXPECT_NE(std::string(e.what()).find("--max-k"), std::string::npos);
  }
}

TEST(CudaPlan, AutoTileFillsTheDeviceWithinBounds) {
  EXPECT_EQ(auto_tile(64), std::int64_t(1) << 20);
  EXPECT_EQ(auto_tile(1024), std::int64_t(1) << 16);
  EXPECT_EQ(auto_tile(1 << 20), 4096);
  for (std::int64_t rows : {1, 3, 100, 777, 5000}) EXPECT_EQ(auto_tile(rows) % kChunk, 0);
}

TEST(CudaPlan, TileSizesCoverTheShardInOrder) {
  EXPECT_TRUE(tile_sizes(0, 65, 4096, true).empty());
  EXPECT_EQ(tile_sizes(10000, 65, 4096, false), (std::vector<std::int64_t>{4096, 4096, 1808}));
  // Growing: 2L rounded up to the chunk, then doubling, capped by the largest tile.
  EXPECT_EQ(tile_sizes(40000, 65, 16384, true), (std::vector<std::int64_t>{2048, 4096, 8192, 16384, 9280}));
  EXPECT_EQ(tile_sizes(100000, 16385, 65536, true), (std::vector<std::int64_t>{34816, 65184}));
  EXPECT_EQ(tile_sizes(500, 65537, 256, true), (std::vector<std::int64_t>{256, 244}));
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    const std::int64_t keys = std::int64_t(rng() % 300000), L = 1 + std::int64_t(rng() % 70000);
    const std::int64_t max_tile = 1 + std::int64_t(rng() % 100000);
    for (bool grow : {false, true}) {
      const auto sizes = tile_sizes(keys, L, max_tile, grow);
      std::int64_t sum = 0;
      for (std::int64_t t : sizes) {
        EXPECT_GE(t, 1);
        EXPECT_LE(t, max_tile);
        sum += t;
      }
      EXPECT_EQ(sum, keys);
    }
  }
}

// The radix key orders scores like the total order's first criterion: larger key, better.
TEST(CudaPlan, ScoreKeyOrdersLikeScores) {
  std::mt19937 rng(3);
  std::vector<float> s = {0.0f, 1.0f, -1.0f, 1e-38f, -1e-38f, 3e38f, -3e38f, 1e-45f, -1e-45f, 0.5f, -0.5f};
  std::normal_distribution<float> normal(0, 10);
  for (int i = 0; i < 2000; ++i) s.push_back(normal(rng));
  for (float a : s) {
    for (float b : {s[0], s[1], s[2], s[5], s[6], s[rng() % s.size()]}) {
      EXPECT_EQ(score_key(a) > score_key(b), a > b) << a << " vs " << b;
      EXPECT_EQ(score_key(a) == score_key(b), a == b) << a << " vs " << b;
    }
  }
}

// The 64-bit sort key of the device sorts: descending key order is the total order (ties by
// the smaller index), the empty candidate sorts last, and the key decodes to the candidate.
// Scores are canonical, so never −0 (canonical_score adds +0.0f): −0 and +0 compare equal but
// have different keys.
TEST(CudaPlan, CandidateKeyOrdersLikeTheTotalOrderAndRoundTrips) {
  std::mt19937_64 rng(13);
  std::vector<Candidate> c = {kEmptyCandidate, {0.0f, 0}, {3e38f, 7}, {-3e38f, 8}, {1e-45f, 4294967294}};
  for (int i = 0; i < 3000; ++i) c.push_back({0.5f * float(int(rng() % 21) - 10), std::int64_t(rng() % 4294967295u)});
  for (const Candidate& a : c) {
    const Candidate back = candidate_of_key(candidate_key(a));
    EXPECT_EQ(back.index, a.index);
    if (a.index != kNoIndex) {
      EXPECT_EQ(back.score, a.score);
    }
    for (int t = 0; t < 8; ++t) {
      const Candidate& b = c[rng() % c.size()];
      if (a.index == b.index) continue;
      EXPECT_EQ(candidate_key(a) > candidate_key(b), before(a, b)) << a.score << "/" << a.index << " vs " << b.score
                                                                   << "/" << b.index;
    }
  }
}

}  // namespace
}  // namespace ncsparse::cuda
