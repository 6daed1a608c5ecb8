// The CUDA backend against the CPU backend on the same inputs: identical top-k lists (ties
// included: the canonical scores are bit-identical) and flash states within 1e-5 relative.
// Labelled gpu; without a visible device every test reports SKIPPED, which CTest shows.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ncsparse/backend.hpp"
#include "ncsparse/flash.hpp"
#include "ncsparse/generator.hpp"

namespace ncsparse {
namespace {

bool have_device() {
  int n = 0;
  const bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  cudaGetLastError();
  return ok;
}

struct Case {
  std::int64_t n, rows, L, d, tile;
  bool causal, exact;
  InputModel model;
  double bound;  // tiny bound: tokens repeat, scores tie
};

void compare(const Case& c) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device visible";
  ModelParams mp;
  mp.model = c.model;
  mp.d = c.d;
  mp.bound = c.bound;
  mp.weight_norm = c.bound < 1 ? 3.0 : 120.0;
  mp.seed = 99;
  const Generator gen(mp);
  std::vector<float> k(c.n * c.d), v(k.size()), q(c.rows * c.d);
  gen.keys_values(0, c.n, k, v);
  const std::vector<std::int64_t> pos = sample_positions(std::max<std::int64_t>(c.n, c.rows), c.rows);
  gen.queries(pos, q);
  PassParams p;
  p.d = c.d;
  p.scale = 1.0 / std::sqrt(double(c.d));
  p.causal = c.causal;
  p.exact = c.exact;
  p.list_length = c.L;
  p.tile = c.tile;
  const std::size_t width = flash_row_size(c.d);
  std::vector<Candidate> lc(c.rows * c.L), lg(lc.size());
  std::vector<double> fc(c.exact ? c.rows * width : 0), fg(fc.size());
  const KeyShard shard{k.data(), v.data(), 0, c.n};
  const QueryBlock block{q.data(), pos.data(), c.rows};
  auto cpu = make_backend("cpu");
  auto gpu = make_backend("cuda");
  cpu->load_shard(shard, p);
  gpu->load_shard(shard, p);
  cpu->local_pass(block, shard, p, {lc, fc});
  gpu->local_pass(block, shard, p, {lg, fg});
  for (std::size_t i = 0; i < lc.size(); ++i) {
    ASSERT_EQ(lg[i].index, lc[i].index) << "entry " << i;
    ASSERT_EQ(lg[i].score, lc[i].score) << "entry " << i;
  }
  for (std::size_t i = 0; i < fc.size(); ++i) {
    EXPECT_NEAR(fg[i], fc[i], 1e-5 * (1 + std::abs(fc[i]))) << "flash value " << i;
  }
}

TEST(CudaBackend, MatchesCpu) { compare({20000, 64, 65, 64, 2048, false, true, InputModel::Paper, 3.0}); }
TEST(CudaBackend, MatchesCpuCausal) { compare({9000, 37, 129, 32, 512, true, true, InputModel::Gaussian, 3.0}); }
TEST(CudaBackend, LargeK) { compare({70000, 8, 65537, 64, 4096, false, false, InputModel::Paper, 3.0}); }
TEST(CudaBackend, KLargerThanShard) { compare({300, 16, 1025, 16, 128, false, true, InputModel::Gaussian, 3.0}); }
TEST(CudaBackend, EmptyShard) { compare({0, 4, 9, 16, 128, false, true, InputModel::Gaussian, 3.0}); }
TEST(CudaBackend, TiesBreakByIndex) { compare({5000, 16, 200, 3, 256, false, true, InputModel::Paper, 1e-3}); }

}  // namespace
}  // namespace ncsparse
