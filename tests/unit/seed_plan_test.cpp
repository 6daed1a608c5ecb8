// When the CPU top-k pass seeds its rows' cuts from a sample (cpu/select.hpp, plan_seed, the
// default `auto` mode): lists of at least 128 entries and shards of at least 3 keys per list
// entry, no causal mask. Below 3 keys per entry seeding stopped paying; the old limit, 64 keys
// per entry, left a rank of the default job at 2 ranks (2^19 keys, L = 8193) unseeded and its
// local pass 1.36x slower (benchmarks/RESULTS.md, "Seeding from n ≥ 3L").
#include <gtest/gtest.h>

#include "cpu/select.hpp"

namespace ncsparse::cpu {
namespace {

TEST(SeedPlan, AutoSeedsFromThreeKeysPerListEntry) {
  const std::int64_t L = 8193;
  EXPECT_TRUE(plan_seed(std::int64_t{1} << 19, L, false, SeedMode::kAuto).on);  // the default job's rank at P = 2
  EXPECT_TRUE(plan_seed(3 * L, L, false, SeedMode::kAuto).on);
  EXPECT_FALSE(plan_seed(3 * L - 1, L, false, SeedMode::kAuto).on);
  EXPECT_TRUE(plan_seed(3 * L - 1, L, false, SeedMode::kAlways).on);  // the tests' mode: whenever the shape allows
}

TEST(SeedPlan, AutoLeavesShortListsCausalMasksAndOffAlone) {
  EXPECT_FALSE(plan_seed(std::int64_t{1} << 20, 127, false, SeedMode::kAuto).on);  // short lists fill cheaply
  EXPECT_TRUE(plan_seed(std::int64_t{1} << 20, 128, false, SeedMode::kAuto).on);
  EXPECT_FALSE(plan_seed(std::int64_t{1} << 20, 8193, true, SeedMode::kAuto).on);
  EXPECT_FALSE(plan_seed(std::int64_t{1} << 20, 8193, false, SeedMode::kOff).on);
}

// The sample's rank stays inside the sample and above the expected count of its keys in a
// row's top L, at the smallest shard auto now seeds.
TEST(SeedPlan, RankFitsTheSampleAtThreeKeysPerEntry) {
  const std::int64_t L = 8193, n = 3 * L;
  const SeedPlan s = plan_seed(n, L, false, SeedMode::kAuto);
  ASSERT_TRUE(s.on);
  const double lambda = static_cast<double>(L) * static_cast<double>(s.panels * kNr) / static_cast<double>(n);
  EXPECT_GT(static_cast<double>(s.rank), lambda);
  EXPECT_LE(s.rank, s.panels * kNr);
  EXPECT_LE(s.start(s.panels - 1) + kNr, n);
}

}  // namespace
}  // namespace ncsparse::cpu
