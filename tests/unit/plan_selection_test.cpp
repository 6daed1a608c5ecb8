// plan's selection term (src/plan/cost_model.cpp): per list entry, not per heap insertion, so
// that it does not grow with the shard beyond n_s = 8L (measured: docs/scaling.md), at most the
// shard's own keys, and cheaper per entry when the list is most of the shard. Its contention
// factors: the generator's apart from the local pass's. Its sparse softmax: one fetch per row
// up to the widest prefix window.
#include <gtest/gtest.h>

#include <string>
#include <vector>

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

// The inputs phase meets the generator's contention, not the local pass's: with two ranks on
// one node, a compute factor of 2 slows the local pass and not the generation; a generator
// factor of 2 doubles the generation and leaves the local pass alone.
TEST(PlanContention, GenerationHasItsOwnFactor) {
  JobConfig c;
  c.n = 1 << 20;
  c.model.d = 64;
  c.queries = 256;
  c.block = 256;
  c.windows = {parse_window("const:256")};
  Profile p = default_profile();
  p.ranks = 2;
  p.contention_memory = 1;
  p.first_touch = 1e30;  // the inputs are the generation alone
  NodeShape node;
  node.cores = 2;
  node.ranks_per_node = 2;
  p.contention_compute = p.contention_generate = 1;
  const Prediction alone = predict(c, 2, p, node);
  p.contention_compute = 2;
  const Prediction compute_only = predict(c, 2, p, node);
  EXPECT_DOUBLE_EQ(compute_only.inputs, alone.inputs);
  EXPECT_GT(compute_only.local_pass, 1.5 * alone.local_pass);
  p.contention_compute = 1;
  p.contention_generate = 2;
  const Prediction generate_only = predict(c, 2, p, node);
  EXPECT_NEAR(generate_only.inputs, 2 * alone.inputs, 1e-12 * alone.inputs);
  EXPECT_DOUBLE_EQ(generate_only.local_pass, alone.local_pass);
}

// The sparse softmax fetches the owned V rows once up to the widest prefix window (one running
// sum serves them all, stage_prefix.cpp): more prefix windows inside it cost nothing more.
TEST(PlanSparse, PrefixWindowsShareOneFetch) {
  auto sparse = [](std::vector<std::string> windows) {
    JobConfig c;
    c.n = 1 << 20;
    c.model.d = 64;
    c.queries = 256;
    c.block = 256;
    for (const std::string& w : windows) c.windows.push_back(parse_window(w));
    NodeShape node;
    node.cores = 1;
    return predict(c, 1, default_profile(), node).sparse;
  };
  const double one = sparse({"const:2048"});
  EXPECT_GT(one, 0);
  EXPECT_DOUBLE_EQ(sparse({"const:256", "const:1024", "const:2048"}), one);
  EXPECT_GT(sparse({"const:4096"}), 1.5 * one);
}

}  // namespace
}  // namespace ncsparse::plan
