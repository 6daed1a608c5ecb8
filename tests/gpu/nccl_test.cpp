// The NCCL collectives' device merges against the host merges they replace, NCCL calls on a
// one-rank communicator, and the bounded wait: a communicator whose second rank never comes
// fails within its timeout instead of hanging. Labelled gpu; SKIPPED without a device.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <random>
#include <vector>

#include "cuda/nccl.hpp"
#include "ncsparse/error.hpp"
#include "ncsparse/flash.hpp"

namespace ncsparse {
namespace {

bool have_device() {
  int n = 0;
  const bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  cudaGetLastError();
  return ok;
}

// P sorted, padded lists per row with disjoint indices; scores from a small set so they tie.
std::vector<Candidate> random_lists(std::mt19937_64& rng, int P, std::int64_t rows, std::int64_t L) {
  std::vector<Candidate> g(std::size_t(P) * rows * L, kEmptyCandidate);
  std::uniform_int_distribution<int> level(-20, 20);
  for (int p = 0; p < P; ++p) {
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t filled = std::int64_t(rng() % std::uint64_t(L + 1));  // 0 .. L entries
      Candidate* row = g.data() + (std::size_t(p) * rows + r) * L;
      for (std::int64_t j = 0; j < filled; ++j) {
        row[j] = Candidate{0.25f * float(level(rng)), std::int64_t(rng() % 1000000) * P + p};  // disjoint per rank
      }
      std::sort(row, row + filled, before);
    }
  }
  return g;
}

TEST(NcclMerge, ListsMatchTheHostMerge) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device visible";
  std::mt19937_64 rng(17);
  for (int P = 1; P <= 4; ++P) {
    for (std::int64_t L : {1, 2, 33, 1025}) {
      const std::int64_t rows = 9;
      const std::vector<Candidate> g = random_lists(rng, P, rows, L);
      std::vector<Candidate> device(std::size_t(rows) * L, Candidate{7.0f, -3});
      cuda::merge_gathered_lists(g.data(), P, rows, L, device.data());
      std::vector<Candidate> acc(L), next(L);
      for (std::int64_t r = 0; r < rows; ++r) {
        std::copy_n(g.data() + r * L, L, acc.data());
        for (int p = 1; p < P; ++p) {
          merge_sorted(acc, {g.data() + (std::size_t(p) * rows + r) * L, std::size_t(L)}, next);
          acc.swap(next);
        }
        for (std::int64_t j = 0; j < L; ++j) {
          ASSERT_EQ(device[r * L + j].index, acc[j].index) << "P " << P << " L " << L << " row " << r << " slot " << j;
          if (acc[j].index != kNoIndex) {
            ASSERT_EQ(device[r * L + j].score, acc[j].score);
          }
        }
      }
    }
  }
}

TEST(NcclMerge, StatesMatchTheHostMerge) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device visible";
  std::mt19937_64 rng(23);
  std::normal_distribution<double> normal(0, 3);
  const std::int64_t d = 19, rows = 13;
  const std::size_t width = flash_row_size(d);
  for (int P = 1; P <= 4; ++P) {
    std::vector<double> g(std::size_t(P) * rows * width);
    for (std::size_t i = 0; i < g.size(); i += width) {
      if (rng() % 4 == 0) {  // an empty state
        flash_clear({g.data() + i, width});
        continue;
      }
      g[i] = normal(rng) * 10;
      g[i + 1] = 1 + std::abs(normal(rng));
      g[i + 2] = g[i + 1] * 0.5;
      for (std::size_t c = kFlashHeader; c < width; ++c) g[i + c] = normal(rng);
    }
    std::vector<double> device(std::size_t(rows) * width, std::nan(""));
    cuda::merge_gathered_flash(g.data(), P, rows, d, device.data());
    for (std::int64_t r = 0; r < rows; ++r) {
      std::vector<double> acc(width);
      flash_clear(acc);
      for (int p = 0; p < P; ++p) flash_merge(acc, {g.data() + (std::size_t(p) * rows + r) * width, width});
      for (std::size_t c = 0; c < width; ++c) {
        const double x = device[r * width + c];
        if (std::isinf(acc[c])) {
          EXPECT_EQ(x, acc[c]) << "P " << P << " row " << r << " entry " << c;
        } else {
          EXPECT_NEAR(x, acc[c], 1e-12 * (1 + std::abs(acc[c]))) << "P " << P << " row " << r << " entry " << c;
        }
      }
    }
  }
}

// One rank: every call goes through NCCL (all-gather, device merge, all-reduce) and must give
// its input back.
TEST(NcclCollectives, OneRankRoundTrip) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device visible";
  auto nccl = cuda::make_nccl_collectives(cuda::nccl_unique_id(), 0, 1, 30);
  std::mt19937_64 rng(5);
  const std::int64_t rows = 6, L = 40, d = 8;
  std::vector<Candidate> lists = random_lists(rng, 1, rows, L), before_lists = lists;
  nccl->allreduce_topk(lists, L);
  for (std::size_t i = 0; i < lists.size(); ++i) {
    ASSERT_EQ(lists[i].index, before_lists[i].index);
    if (lists[i].index != kNoIndex) {
      ASSERT_EQ(lists[i].score, before_lists[i].score);
    }
  }
  std::vector<double> states(rows * flash_row_size(d));
  for (std::size_t i = 0; i < states.size(); ++i) states[i] = 0.5 + double(i % 17);
  const std::vector<double> before_states = states;
  nccl->allreduce_flash(states, d);
  EXPECT_EQ(states, before_states);
  std::vector<double> sums = {1.5, -2.25, 3e300, 0};
  nccl->allreduce_sum(sums);
  EXPECT_EQ(sums, (std::vector<double>{1.5, -2.25, 3e300, 0}));
}

// Rank 1 of 2 never joins: the init must fail within its timeout, naming it, and not hang.
TEST(NcclCollectives, MissingRankTimesOut) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device visible";
  const auto t0 = std::chrono::steady_clock::now();
  try {
    auto nccl = cuda::make_nccl_collectives(cuda::nccl_unique_id(), 0, 2, 3.0);
    FAIL() << "a two-rank communicator with one rank was created";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitUnavailable);
    EXPECT_NE(std::string(e.what()).find("did not complete within 3 s"), std::string::npos) << e.what();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(seconds, 30) << "the timeout is 3 s";
}

}  // namespace
}  // namespace ncsparse
