// plan's selection term (src/plan/cost_model.cpp): per list entry, not per heap insertion, so
// that it does not grow with the shard beyond n_s = 8L (measured: docs/scaling.md), at most the
// shard's own keys, and cheaper per entry when the list is most of the shard.
#include <gtest/gtest.h>

#include <string>

#include "ncsparse/engine.hpp"
#include "ncsparse/window.hpp"
#include "plan/cost_model.hpp"
#include "plan/profile.hpp"

namespace ncsparse::plan {
namespace {

// The local pass's selection part alone: a profile whose score tiles cost nothing.
double selection_seconds(std::int64_t n, const std::string& window) {
  JobConfig c;
  c.n = n;
  c.model.d = 64;
  c.queries = 256;
  c.block = 256;
  c.exact = false;
  c.windows = {parse_window(window)};
  Profile p = default_profile();
  p.score = {{64, 1e-30}};
  p.bandwidth = 1e30;
  p.selection = 1e-7;
  NodeShape node;
  node.cores = 1;
  return predict(c, 1, p, node).local_pass;
}

TEST(PlanSelection, PerListEntryAndFlatBeyondEightKeysPerEntry) {
  const double L = 8193, rows = 256, sigma = 1e-7;
  EXPECT_NEAR(selection_seconds(1 << 20, "const:8192"), rows * sigma * L, 1e-9);
  EXPECT_NEAR(selection_seconds(1 << 22, "const:8192"), rows * sigma * L, 1e-9);  // n does not matter
  EXPECT_NEAR(selection_seconds(1 << 20, "const:256"), rows * sigma * 257, 1e-9);
}

TEST(PlanSelection, AListAsLongAsTheShardCostsHalfPerEntry) {
  // n = 4096 with K = 4096: L = 4097 entries asked, 4096 keys in the shard.
  EXPECT_NEAR(selection_seconds(4096, "const:4096"), 256 * 1e-7 * 4096 * 0.5, 1e-9);
  EXPECT_DOUBLE_EQ(selection_scale(1), 0.5);
  EXPECT_DOUBLE_EQ(selection_scale(8), 1.0);
  EXPECT_DOUBLE_EQ(selection_scale(1000), 1.0);
  EXPECT_GT(selection_scale(4), selection_scale(2));
}

}  // namespace
}  // namespace ncsparse::plan
