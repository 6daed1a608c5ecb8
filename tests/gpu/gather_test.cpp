// The CUDA backend's gather of the prefix strategies' outputs (PrefixGather) against the same
// loop on the host: bit-identical, with keys of other ranks, empty slots and prefixes of
// different lengths. Labelled gpu; without a visible device the test reports SKIPPED.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "ncsparse/backend.hpp"

namespace ncsparse {
namespace {

bool device_visible() {
  int n = 0;
  const bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  cudaGetLastError();
  return ok;
}

TEST(DeviceGather, BitIdenticalToTheHostLoop) {
  if (!device_visible()) GTEST_SKIP() << "no CUDA device visible";
  setenv("NCSPARSE_CUDA_GATHER", "1", 1);  // the backend's switch (off by default until this passes)
  for (std::int64_t d : {64, 37, 130}) {
    const std::int64_t begin = 5000, count = 20000, rows = 19, L = 700, P = 3;
    std::mt19937_64 rng(static_cast<std::uint64_t>(d));
    std::normal_distribution<float> nd;
    std::vector<float> k(static_cast<std::size_t>(count * d)), v(k.size());
    for (float& x : v) x = nd(rng);
    for (float& x : k) x = nd(rng);
    std::vector<Candidate> lists(static_cast<std::size_t>(rows * L), kEmptyCandidate);
    std::vector<std::int64_t> kk(static_cast<std::size_t>(P * rows));
    std::int64_t width = 0;
    for (std::int64_t i = 0; i < rows; ++i) {
      const std::int64_t valid = i == 3 ? 0 : 1 + static_cast<std::int64_t>(rng() % L);
      for (std::int64_t j = 0; j < valid; ++j) {  // a third of the keys belong to other ranks
        lists[i * L + j] = {1.0f - 0.001f * j, static_cast<std::int64_t>(rng() % (3 * count))};
      }
      for (std::int64_t s = 0; s < P; ++s) {
        kk[s * rows + i] = valid == 0 ? 0 : 1 + static_cast<std::int64_t>(rng() % valid);
        width = std::max(width, kk[s * rows + i]);
      }
    }
    std::vector<double> weights(static_cast<std::size_t>(rows * width)), inv_z(static_cast<std::size_t>(P * rows));
    for (double& w : weights) w = std::uniform_real_distribution<double>(0, 1)(rng);
    for (double& z : inv_z) z = std::uniform_real_distribution<double>(0.01, 1)(rng);
    std::vector<double> want(static_cast<std::size_t>(P * rows * d), 0.0), got(want.size(), -1.0);
    for (std::int64_t i = 0; i < rows; ++i) {  // the running sum of the contract, in list order
      std::vector<double> sum(static_cast<std::size_t>(d), 0.0);
      for (std::int64_t j = 0; j <= width; ++j) {
        for (std::int64_t s = 0; s < P; ++s) {
          if (kk[s * rows + i] != j) continue;
          for (std::int64_t c = 0; c < d; ++c) want[(s * rows + i) * d + c] = sum[c] * inv_z[s * rows + i];
        }
        if (j == width) break;
        const std::int64_t g = lists[i * L + j].index - begin;
        if (g < 0 || g >= count) continue;
        for (std::int64_t c = 0; c < d; ++c) sum[c] += weights[i * width + j] * v[g * d + c];
      }
    }
    auto cuda = make_backend("cuda");
    PassParams pp;
    pp.d = d;
    cuda->load_shard(KeyShard{k.data(), v.data(), begin, count}, pp);
    const PrefixGather g{lists, L, rows, d, width, weights, P, kk, inv_z, got};
    ASSERT_TRUE(cuda->gather_outputs(g));
    EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(double)), 0) << "d " << d;
  }
}

}  // namespace
}  // namespace ncsparse
