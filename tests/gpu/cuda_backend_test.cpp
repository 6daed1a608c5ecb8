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
#include "ncsparse/precision.hpp"

namespace ncsparse {
namespace {

bool have_device() {
  int n = 0;
  const bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  cudaGetLastError();
  return ok;
}

struct Case {
  std::int64_t n, rows, L, d, tile;  // tile 0: the backend's own growing tiles
  bool causal, exact;
  InputModel model;
  double bound;  // tiny bound: tokens repeat, scores tie
  std::uint64_t seed = 99;
  std::int64_t begin = 0;  // global index of the shard's first key
  std::int64_t query_offset = 0;  // query positions are sampled in [0, n) and shifted by this
  ScorePrecision precision = ScorePrecision::FP32;  // of the CUDA backend's filter GEMM
};

void compare(const Case& c) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device visible";
  ModelParams mp;
  mp.model = c.model;
  mp.d = c.d;
  mp.bound = c.bound;
  mp.weight_norm = c.bound < 1 ? 3.0 : 120.0;
  mp.seed = c.seed;
  const Generator gen(mp);
  std::vector<float> k(c.n * c.d), v(k.size()), q(c.rows * c.d);
  gen.keys_values(0, c.n, k, v);
  std::vector<std::int64_t> pos = sample_positions(std::max<std::int64_t>(c.n, c.rows), c.rows);
  for (auto& x : pos) x += c.query_offset;
  gen.queries(pos, q);
  PassParams p;
  p.d = c.d;
  p.scale = 1.0 / std::sqrt(double(c.d));
  p.causal = c.causal;
  p.exact = c.exact;
  p.list_length = c.L;
  p.tile = c.tile > 0 ? c.tile : 2048;
  p.device_tile = c.tile;
  PassParams pg = p;  // the CPU backend scores in FP32 only
  pg.score_precision = c.precision;
  const std::size_t width = flash_row_size(c.d);
  // Poisoned outputs: every entry must be written.
  std::vector<Candidate> lc(c.rows * c.L, Candidate{1.5f, -7}), lg(lc.size(), Candidate{2.5f, -9});
  std::vector<double> fc(c.exact ? c.rows * width : 0, std::nan("")), fg(fc.size(), -std::nan(""));
  const KeyShard shard{k.data(), v.data(), c.begin, c.n};
  const QueryBlock block{q.data(), pos.data(), c.rows};
  auto cpu = make_backend("cpu");
  auto gpu = make_backend("cuda");
  cpu->load_shard(shard, p);
  gpu->load_shard(shard, pg);
  cpu->local_pass(block, shard, p, {lc, fc});
  gpu->local_pass(block, shard, pg, {lg, fg});
  for (std::size_t i = 0; i < lc.size(); ++i) {
    ASSERT_EQ(lg[i].index, lc[i].index) << "entry " << i << " (" << precision_name(c.precision) << ")";
    ASSERT_EQ(lg[i].score, lc[i].score) << "entry " << i << " (" << precision_name(c.precision) << ")";
  }
  // Flash states: m is each backend's largest GEMM score (cuBLAS and OpenBLAS round differently),
  // so m within rounding, and l, l2, o within 1e-5 relative once brought to the same m.
  for (std::int64_t r = 0; r < (c.exact ? c.rows : 0); ++r) {
    const double* a = fc.data() + r * width;
    const double* g = fg.data() + r * width;
    ASSERT_FALSE(std::isnan(a[0]) || std::isnan(g[0])) << "row " << r << " not written";
    if (a[0] == -INFINITY || g[0] == -INFINITY) {  // a row that sees no key
      EXPECT_EQ(a[0], g[0]) << "row " << r;
      EXPECT_EQ(g[1], 0.0) << "row " << r;
      continue;
    }
    const double shift = std::exp(g[0] - a[0]);  // express the GPU state at the CPU's m
    EXPECT_NEAR(g[0], a[0], 1e-5 * (1 + std::abs(a[0]))) << "row " << r;
    EXPECT_NEAR(g[1] * shift, a[1], 1e-5 * a[1]) << "row " << r << " l";
    EXPECT_NEAR(g[2] * shift * shift, a[2], 1e-5 * a[2]) << "row " << r << " l2";
    double norm = 0;
    for (std::int64_t j = 0; j < c.d; ++j) norm += a[kFlashHeader + j] * a[kFlashHeader + j];
    norm = std::sqrt(norm);
    for (std::int64_t j = 0; j < c.d; ++j) {
      EXPECT_NEAR(g[kFlashHeader + j] * shift, a[kFlashHeader + j], 1e-5 * norm) << "row " << r << " o[" << j << "]";
    }
  }
}

TEST(CudaBackend, MatchesCpu) { compare({20000, 64, 65, 64, 2048, false, true, InputModel::Paper, 3.0}); }
TEST(CudaBackend, MatchesCpuCausal) { compare({9000, 37, 129, 32, 512, true, true, InputModel::Gaussian, 3.0}); }
TEST(CudaBackend, LargeK) { compare({70000, 8, 65537, 64, 4096, false, false, InputModel::Paper, 3.0}); }
TEST(CudaBackend, KLargerThanShard) { compare({300, 16, 1025, 16, 128, false, true, InputModel::Gaussian, 3.0}); }
TEST(CudaBackend, EmptyShard) { compare({0, 4, 9, 16, 128, false, true, InputModel::Gaussian, 3.0}); }
TEST(CudaBackend, TiesBreakByIndex) { compare({5000, 16, 200, 3, 256, false, true, InputModel::Paper, 1e-3}); }
TEST(CudaBackend, GrowingTilesManySeeds) {
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    compare({100000 + std::int64_t(seed) * 7919, 100, 65, 64, 0, false, true, InputModel::Paper, 3.0, seed});
    compare({60000, 33, 2049, 128, 0, seed % 2 == 0, true, InputModel::Gaussian, 3.0, seed});
  }
}
TEST(CudaBackend, DimensionNotAMultipleOfEight) { compare({30000, 20, 300, 37, 0, false, true, InputModel::Paper, 3.0}); }
// A shard of keys after every query position under the causal mask: every row sees nothing.
TEST(CudaBackend, FullyMaskedRows) { compare({4000, 12, 17, 16, 0, true, true, InputModel::Gaussian, 3.0, 5, 50000}); }
// Some rows see part of the shard, some none (the shard starts at 3000).
TEST(CudaBackend, PartlyMaskedShard) {
  compare({8000, 40, 129, 32, 1024, true, true, InputModel::Gaussian, 3.0, 6, 3000});
}

// Tensor-core filters (--score-precision tf32, bf16): the lists are the CPU's, ties included, and
// the exact pass (scored again in FP32) agrees as in FP32. Paper inputs with B = 3 put many keys
// inside the wider margins; B = 1e-3 makes every score tie.
TEST(CudaBackend, ReducedPrecisionFiltersKeepTheLists) {
  for (const ScorePrecision precision : {ScorePrecision::TF32, ScorePrecision::BF16}) {
    SCOPED_TRACE(precision_name(precision));
    Case c{20000, 64, 65, 64, 2048, false, true, InputModel::Paper, 3.0};
    c.precision = precision;
    compare(c);
    c = {9000, 37, 129, 32, 512, true, true, InputModel::Gaussian, 3.0};
    c.precision = precision;
    compare(c);
    c = {5000, 16, 200, 3, 256, false, true, InputModel::Paper, 1e-3};
    c.precision = precision;
    compare(c);
    c = {70000, 8, 4097, 64, 0, false, false, InputModel::Paper, 3.0};
    c.precision = precision;
    compare(c);
    c = {30000, 20, 300, 37, 0, false, true, InputModel::Paper, 3.0};  // d not a multiple of 8
    c.precision = precision;
    compare(c);
    c = {8000, 40, 129, 32, 1024, true, true, InputModel::Gaussian, 3.0, 6, 3000};  // partly masked shard
    c.precision = precision;
    compare(c);
  }
}

}  // namespace
}  // namespace ncsparse
