// Results do not depend on the number of ranks: the same job on MPI_COMM_WORLD (P ranks) and
// on MPI_COMM_SELF (one rank, run by rank 0) gives identical top-k lists (indices and scores)
// and outputs within 1e-6 relative, for shards of unequal and zero size.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>

#include "ncsparse/engine.hpp"

namespace ncsparse {
namespace {

JobConfig make_job(std::int64_t n, std::int64_t queries, InputModel model, bool causal) {
  JobConfig c;
  c.n = n;
  c.queries = queries;
  c.model.model = model;
  c.model.d = 24;
  c.model.seed = 20261125;
  c.model.weight_norm = 90;  // scores of standard deviation ~ 2: ties are rare but lists matter
  c.causal = causal;
  c.block = 7;  // several query blocks, the last one short
  c.tile = 37;  // several key tiles per shard, edges everywhere
  c.max_k = 64;
  c.keep_rows = true;
  for (const char* w :
       {"const:5", "log:2", "power:1,0.5", "sqrt:0.5", "eps:0.02", "mass:0.2", "cert:0.3", "sink:2,6"}) {
    c.windows.push_back(parse_window(w));
  }
  return c;
}

double rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::abs(a[i] - b[i]));
    den = std::max(den, std::abs(b[i]));
  }
  return den > 0 ? num / den : num;
}

void check_invariant(const JobConfig& job) {
  const Comm world(MPI_COMM_WORLD);
  const JobResult got = run_job(world, job);
  if (world.rank() != 0) return;
  const JobResult want = run_job(Comm(MPI_COMM_SELF), job);
  ASSERT_EQ(got.list_length, want.list_length);
  ASSERT_EQ(got.lists.size(), want.lists.size());
  for (std::size_t i = 0; i < got.lists.size(); ++i) {
    ASSERT_EQ(got.lists[i].index, want.lists[i].index) << "list entry " << i << " on " << world.size() << " ranks";
    ASSERT_EQ(got.lists[i].score, want.lists[i].score) << "list entry " << i;
  }
  EXPECT_LT(rel_diff(got.o_exact, want.o_exact), 1e-6);
  EXPECT_LT(rel_diff(got.o_sparse, want.o_sparse), 1e-6);
  for (std::size_t w = 0; w < got.strategies.size(); ++w) {
    for (std::size_t r = 0; r < got.strategies[w].rows.size(); ++r) {
      const RowStats& a = got.strategies[w].rows[r];
      const RowStats& b = want.strategies[w].rows[r];
      EXPECT_EQ(a.k, b.k) << got.strategies[w].spec.text << " row " << r;
      EXPECT_EQ(a.clamped, b.clamped);
      EXPECT_NEAR(a.kept_mass, b.kept_mass, 1e-6);
      EXPECT_NEAR(a.out_rel, b.out_rel, 1e-6 * (1 + std::abs(b.out_rel)));
      if (got.strategies[w].spec.name() != "sink") {  // sink windows carry no certificate
        // The measured error carries the float32 rounding of the exact pass (~1e-7·|v|max).
        EXPECT_GE(a.cert_out * (1 + 1e-6) + 1e-5 * got.v_max_norm, a.out_l2) << "certificate below the true error";
      }
    }
  }
  // Every rank computed the same exact-state merge; the sparse output matches the top-k list.
  EXPECT_EQ(got.ranks, world.size());
}

TEST(Invariance, UnevenShards) { check_invariant(make_job(1001, 29, InputModel::Paper, false)); }
TEST(Invariance, UnevenShardsCausal) { check_invariant(make_job(1001, 29, InputModel::Paper, true)); }
TEST(Invariance, GaussianModel) { check_invariant(make_job(997, 40, InputModel::Gaussian, false)); }
TEST(Invariance, AllRowsCausal) { check_invariant(make_job(150, 150, InputModel::Gaussian, true)); }
// Fewer keys than ranks: some shards are empty when P > n.
TEST(Invariance, FewerKeysThanRanks) { check_invariant(make_job(2, 2, InputModel::Paper, false)); }
TEST(Invariance, SingleKey) { check_invariant(make_job(1, 1, InputModel::Gaussian, true)); }
TEST(Invariance, ThreeKeysCausal) { check_invariant(make_job(3, 3, InputModel::Paper, true)); }

// With a tiny bound B almost every entry of X is clipped to ±B, so with d = 3 there are only
// eight distinct tokens: scores tie everywhere and the index order must break the ties the
// same way on every number of ranks.
TEST(Invariance, ManyExactTies) {
  JobConfig job = make_job(701, 31, InputModel::Paper, false);
  job.model.d = 3;
  job.model.bound = 1e-3;
  job.model.weight_norm = 3;
  check_invariant(job);
  const JobResult r = run_job(Comm(MPI_COMM_SELF), job);
  std::size_t ties = 0;
  for (std::size_t i = 1; i < r.lists.size(); ++i) ties += r.lists[i].score == r.lists[i - 1].score ? 1 : 0;
  EXPECT_GT(ties, r.lists.size() / 2) << "the inputs were meant to tie";
}

// Studies and attend's heads share one shard buffer (JobWorkspace) across jobs: a job after a
// larger one, on the buffer that still holds the larger job's values, gives exactly what it
// gives on its own buffers.
TEST(Invariance, WorkspaceReuseDoesNotChangeResults) {
  const Comm world(MPI_COMM_WORLD);
  JobWorkspace ws;
  JobConfig small = make_job(513, 21, InputModel::Gaussian, true);
  small.model.seed = 7;
  run_job(world, make_job(1001, 29, InputModel::Paper, false), nullptr, nullptr, &ws);
  const JobResult got = run_job(world, small, nullptr, nullptr, &ws);
  const JobResult want = run_job(world, small);
  ASSERT_EQ(got.lists.size(), want.lists.size());
  for (std::size_t i = 0; i < got.lists.size(); ++i) {
    ASSERT_EQ(got.lists[i].index, want.lists[i].index) << "list entry " << i;
    ASSERT_EQ(got.lists[i].score, want.lists[i].score) << "list entry " << i;
  }
  EXPECT_EQ(got.o_exact, want.o_exact);
  EXPECT_EQ(got.o_sparse, want.o_sparse);
}

TEST(Invariance, ThreadsDoNotChangeResults) {
  JobConfig job = make_job(513, 21, InputModel::Paper, false);
  job.threads = 2;
  check_invariant(job);
}


// The approximators: sketches add over ranks (sum-reduction), projections are the same on every
// rank, the gram variant all-reduces d × d; outputs and row errors agree with one rank, with the
// keys held or streamed.
JobConfig make_approx_job(std::int64_t n, std::int64_t queries, bool causal, bool stream) {
  JobConfig c;
  c.n = n;
  c.queries = queries;
  c.model.model = InputModel::Gaussian;
  c.model.sigma = 0.6;
  c.model.d = 12;
  c.model.seed = 20261126;
  c.causal = causal;
  c.stream = stream;
  c.block = 7;
  c.tile = 37;
  c.keep_rows = true;
  const std::vector<const char*> windows =
      causal ? std::vector<const char*>{"features:4,gaussian", "features:5,sparse", "features:12,gram", "features:3,gram"}
             : std::vector<const char*>{"taylor:2", "taylor:4", "features:4,gaussian", "features:5,sparse",
                                        "features:12,gram", "features:3,gram"};
  for (const char* w : windows) c.windows.push_back(parse_window(w));
  return c;
}

void check_approx_invariant(JobConfig job) {
  const Comm world(MPI_COMM_WORLD);
  const JobResult got = run_job(world, job);
  if (world.rank() != 0) return;
  job.stream = false;  // the reference: one rank, keys in memory
  const JobResult want = run_job(Comm(MPI_COMM_SELF), job);
  EXPECT_LT(rel_diff(got.o_exact, want.o_exact), 1e-6);
  EXPECT_LT(rel_diff(got.o_sparse, want.o_sparse), 1e-6);
  for (std::size_t w = 0; w < got.strategies.size(); ++w) {
    const StrategyResult& a = got.strategies[w];
    const StrategyResult& b = want.strategies[w];
    EXPECT_EQ(a.features, b.features) << a.spec.text;
    for (std::size_t r = 0; r < a.rows.size(); ++r) {
      EXPECT_EQ(a.rows[r].k, b.rows[r].k);
      EXPECT_NEAR(a.rows[r].attn_l1, b.rows[r].attn_l1, 1e-6 * (1 + b.rows[r].attn_l1)) << a.spec.text << " row " << r;
      EXPECT_NEAR(a.rows[r].attn_linf, b.rows[r].attn_linf, 1e-6) << a.spec.text << " row " << r;
      EXPECT_NEAR(a.rows[r].out_rel, b.rows[r].out_rel, 1e-6 * (1 + b.rows[r].out_rel)) << a.spec.text << " row " << r;
    }
  }
}

TEST(ApproxInvariance, UnevenShards) { check_approx_invariant(make_approx_job(1001, 29, false, false)); }
TEST(ApproxInvariance, UnevenShardsStreamed) { check_approx_invariant(make_approx_job(1001, 29, false, true)); }
TEST(ApproxInvariance, CausalFeatures) { check_approx_invariant(make_approx_job(500, 31, true, false)); }
TEST(ApproxInvariance, FewerKeysThanRanks) { check_approx_invariant(make_approx_job(2, 2, false, false)); }
TEST(ApproxInvariance, FewerKeysThanRanksStreamed) { check_approx_invariant(make_approx_job(3, 3, false, true)); }

}  // namespace
}  // namespace ncsparse
