// The device generator against the host's: bit-identical K and V for every model option, and
// the CUDA backend's generate_shard gives the same shard (and lists) as a host-generated one.
// Labelled gpu; without a visible device every test reports SKIPPED.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/generate.hpp"
#include "ncsparse/backend.hpp"
#include "ncsparse/flash.hpp"
#include "ncsparse/generator.hpp"

namespace ncsparse {
namespace {

bool device_visible() {
  int n = 0;
  const bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  cudaGetLastError();
  return ok;
}

struct Params {
  InputModel model;
  XDistribution x;
  std::int64_t d;
  double rope;
  std::int64_t sinks;
  std::int64_t begin, count;
};

std::string label(const Params& c) {
  return to_string(c.model) + " x=" + to_string(c.x) + " d=" + std::to_string(c.d) + " rope=" +
         std::to_string(c.rope) + " sinks=" + std::to_string(c.sinks) + " begin=" + std::to_string(c.begin) +
         " count=" + std::to_string(c.count);
}

ModelParams model_params(const Params& c) {
  ModelParams mp;
  mp.model = c.model;
  mp.x_dist = c.x;
  mp.d = c.d;
  mp.rope_theta = c.rope;
  mp.sinks = c.sinks;
  mp.sink_strength = c.sinks > 0 ? 6.0 : 0.0;
  mp.sigma = 1.7;
  mp.seed = 0xfeedbeef12345ULL;
  return mp;
}

std::size_t first_difference(const std::vector<float>& a, const std::vector<float>& b) {
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return i;
  }
  return a.size();
}

TEST(DeviceGenerator, BitIdenticalToTheHost) {
  if (!device_visible()) GTEST_SKIP() << "no CUDA device visible";
  const Params cases[] = {
      {InputModel::Paper, XDistribution::Gaussian, 64, 0, 0, 0, 5000},
      {InputModel::Paper, XDistribution::Uniform, 37, 0, 0, 11, 3001},
      {InputModel::Paper, XDistribution::Gaussian, 128, 10000, 4, 0, 300000},  // > one device chunk
      {InputModel::Gaussian, XDistribution::Gaussian, 13, 0, 0, 7, 4099},
      {InputModel::Gaussian, XDistribution::Gaussian, 64, 500, 3, (std::int64_t{1} << 32) - 5, 20},  // rows past 2^32
      {InputModel::Paper, XDistribution::Gaussian, 2, 0, 1, 0, 100},
  };
  for (const Params& c : cases) {
    const Generator gen(model_params(c));
    const std::size_t size = static_cast<std::size_t>(c.count * c.d);
    std::vector<float> k(size), v(size), dk(size, 7.f), dv(size, 7.f);
    gen.keys_values(c.begin, c.count, k, v);
    float *k_dev = nullptr, *v_dev = nullptr;
    ASSERT_EQ(cudaMalloc(&k_dev, size * sizeof(float)), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&v_dev, size * sizeof(float)), cudaSuccess);
    cuda::generate_keys_values(gen, c.begin, c.count, k_dev, v_dev);
    cudaMemcpy(dk.data(), k_dev, size * sizeof(float), cudaMemcpyDeviceToHost);
    cudaMemcpy(dv.data(), v_dev, size * sizeof(float), cudaMemcpyDeviceToHost);
    double host_norm = 0;
    for (std::int64_t i = 0; i < c.count; ++i) {
      double s2 = 0;
      for (std::int64_t j = 0; j < c.d; ++j) s2 += double(k[i * c.d + j]) * double(k[i * c.d + j]);
      host_norm = std::max(host_norm, s2);
    }
    EXPECT_EQ(cuda::max_row_norm(k_dev, c.count, c.d), std::sqrt(host_norm)) << label(c);
    cudaFree(k_dev);
    cudaFree(v_dev);
    const std::size_t ik = first_difference(k, dk), iv = first_difference(v, dv);
    EXPECT_EQ(ik, size) << label(c) << ": K differs at " << ik << ": host " << k[ik % size] << " device "
                        << dk[ik % size];
    EXPECT_EQ(iv, size) << label(c) << ": V differs at " << iv << ": host " << v[iv % size] << " device "
                        << dv[iv % size];
  }
}

TEST(DeviceGenerator, BackendShardGivesTheHostShardsLists) {
  if (!device_visible()) GTEST_SKIP() << "no CUDA device visible";
  const Params c{InputModel::Paper, XDistribution::Gaussian, 64, 0, 0, 1000, 40000};
  const Generator gen(model_params(c));
  const std::size_t size = static_cast<std::size_t>(c.count * c.d);
  std::vector<float> k(size), v(size), dk(size), dv(size);
  gen.keys_values(c.begin, c.count, k, v);
  auto cpu = make_backend("cpu");
  auto gpu = make_backend("cuda");
  ASSERT_FALSE(cpu->generate_shard(gen, c.begin, c.count, dk, dv));  // the CPU backend leaves it to the host
  ASSERT_TRUE(gpu->generate_shard(gen, c.begin, c.count, dk, dv));
  ASSERT_EQ(first_difference(k, dk), size);
  ASSERT_EQ(first_difference(v, dv), size);
  const std::int64_t rows = 33, L = 129;
  std::vector<std::int64_t> pos = sample_positions(c.begin + c.count, rows);
  std::vector<float> q(static_cast<std::size_t>(rows * c.d));
  gen.queries(pos, q);
  PassParams p;
  p.d = c.d;
  p.scale = 0.125;
  p.list_length = L;
  p.exact = false;
  const KeyShard host{k.data(), v.data(), c.begin, c.count}, device{dk.data(), dv.data(), c.begin, c.count};
  cpu->load_shard(host, p);
  gpu->load_shard(device, p);  // already there: uploads nothing
  std::vector<Candidate> lc(static_cast<std::size_t>(rows * L)), lg(lc.size());
  const QueryBlock block{q.data(), pos.data(), rows};
  cpu->local_pass(block, host, p, {lc, {}});
  gpu->local_pass(block, device, p, {lg, {}});
  for (std::size_t i = 0; i < lc.size(); ++i) {
    ASSERT_EQ(lg[i].index, lc[i].index) << "entry " << i;
    ASSERT_EQ(lg[i].score, lc[i].score) << "entry " << i;
  }
}

}  // namespace
}  // namespace ncsparse
