// The candidate-list merge over MPI (Comm::allreduce_topk): every algorithm of TopkMerge gives
// every rank the same lists, bit for bit, and they equal the pairwise merge of all ranks' lists
// computed on one rank: ties, empty rows, rows that only some ranks fill, short lists.
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "ncsparse/comm.hpp"
#include "ncsparse/flash.hpp"

namespace ncsparse {
namespace {

// Rank `rank`'s rows × L lists: its keys are indices ≡ rank (mod P); scores on a coarse grid so
// that ties are common; row r holds between 0 and L real entries, depending on (rank, row).
std::vector<Candidate> rank_lists(int rank, int size, std::size_t rows, std::size_t L, unsigned seed) {
  std::mt19937_64 rng(seed * 1000003u + static_cast<unsigned>(rank));
  std::vector<Candidate> lists(rows * L, kEmptyCandidate);
  for (std::size_t r = 0; r < rows; ++r) {
    const int kind = static_cast<int>(rng() % 4);
    const std::size_t count = kind == 0 ? 0 : kind == 1 ? L : rng() % (L + 1);
    Candidate* row = lists.data() + r * L;
    for (std::size_t j = 0; j < count; ++j) {
      row[j] = Candidate{static_cast<float>(rng() % 5) - 2.0f, static_cast<std::int64_t>(rank + size * j)};
    }
    std::sort(row, row + count, before);
  }
  return lists;
}

void check_all_algorithms(std::size_t rows, std::size_t L, unsigned seed) {
  const Comm comm(MPI_COMM_WORLD);
  const int P = comm.size();
  std::vector<Candidate> want = rank_lists(0, P, rows, L, seed);
  std::vector<Candidate> merged(L);
  for (int p = 1; p < P; ++p) {
    const std::vector<Candidate> other = rank_lists(p, P, rows, L, seed);
    for (std::size_t r = 0; r < rows; ++r) {
      merge_sorted({other.data() + r * L, L}, {want.data() + r * L, L}, merged);
      std::copy(merged.begin(), merged.end(), want.begin() + static_cast<std::ptrdiff_t>(r * L));
    }
  }
  for (TopkMerge algo : {TopkMerge::kAllreduce, TopkMerge::kTree, TopkMerge::kAllgather, TopkMerge::kRowOwner}) {
    std::vector<Candidate> got = rank_lists(comm.rank(), P, rows, L, seed);
    comm.allreduce_topk(got, static_cast<std::int64_t>(L), algo);
    for (std::size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].index, want[i].index) << to_string(algo) << " entry " << i << " on " << P << " ranks";
      ASSERT_EQ(got[i].score, want[i].score) << to_string(algo) << " entry " << i;
    }
  }
}

TEST(TopkMerge, AlgorithmsAgreeOneEntry) { check_all_algorithms(9, 1, 1); }
TEST(TopkMerge, AlgorithmsAgreeShortLists) { check_all_algorithms(31, 7, 2); }
TEST(TopkMerge, AlgorithmsAgreeLongerLists) { check_all_algorithms(13, 129, 3); }
TEST(TopkMerge, AlgorithmsAgreeOneRow) { check_all_algorithms(1, 1000, 4); }
// Fewer rows than ranks (row owner: some ranks own none) and rows not a multiple of P.
TEST(TopkMerge, AlgorithmsAgreeFewRows) { check_all_algorithms(3, 33, 5); }
TEST(TopkMerge, AlgorithmsAgreeRaggedRows) { check_all_algorithms(37, 17, 6); }

// The rule without NCSPARSE_MERGE (docs/scaling.md): the row owner from 1 MiB per rank on 4 or
// more ranks, the all-reduce otherwise; never the tree or the all-gather.
TEST(TopkMerge, ChoiceBySizeAndRanks) {
  if (std::getenv("NCSPARSE_MERGE") != nullptr) GTEST_SKIP() << "NCSPARSE_MERGE is set";
  const std::size_t big = std::size_t{256} * 16385 * 16;
  EXPECT_EQ(choose_topk_merge(2, 16 * 1024), TopkMerge::kAllreduce);
  EXPECT_EQ(choose_topk_merge(1024, 16 * 1024), TopkMerge::kAllreduce);
  EXPECT_EQ(choose_topk_merge(2, 4 << 20), TopkMerge::kAllreduce);
  EXPECT_EQ(choose_topk_merge(3, 4 << 20), TopkMerge::kAllreduce);
  EXPECT_EQ(choose_topk_merge(4, 1 << 20), TopkMerge::kRowOwner);
  EXPECT_EQ(choose_topk_merge(8, 4 << 20), TopkMerge::kRowOwner);
  EXPECT_EQ(choose_topk_merge(2, big), TopkMerge::kAllreduce);
  EXPECT_EQ(choose_topk_merge(3, big), TopkMerge::kAllreduce);
  EXPECT_EQ(choose_topk_merge(4, big), TopkMerge::kRowOwner);
  EXPECT_EQ(choose_topk_merge(1024, big), TopkMerge::kRowOwner);
}

// A stand-in for the NCCL collectives: it counts its calls and changes nothing, so a merged
// result equal to the reference shows that MPI did the merge.
class CountingDevice final : public DeviceCollectives {
 public:
  std::string name() const override { return "counting"; }
  void allreduce_topk(std::span<Candidate>, std::int64_t) override { ++topk; }
  void allreduce_flash(std::span<double>, std::int64_t) override { ++flash; }
  void allreduce_sum(std::span<double>) override { ++sum; }
  int topk = 0, flash = 0, sum = 0;
};

// Every rank's flash states for `rows` rows of width d: finite, different on every rank.
std::vector<double> rank_states(int rank, std::size_t rows, std::size_t d) {
  std::mt19937_64 rng(77u + static_cast<unsigned>(rank));
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> states(rows * flash_row_size(d));
  for (std::size_t r = 0; r < rows; ++r) {
    double* row = states.data() + r * flash_row_size(d);
    row[0] = 3 * u(rng);
    row[1] = 1.5 + u(rng);
    row[2] = 1.2 + u(rng);
    for (std::size_t c = 0; c < d; ++c) row[kFlashHeader + c] = u(rng);
  }
  return states;
}

TEST(TopkMerge, DeviceMergesWithinOneNodeOnly) {
  EXPECT_TRUE(merge_on_device(1) || std::getenv("NCSPARSE_MERGE") != nullptr);
  EXPECT_FALSE(merge_on_device(2));
  EXPECT_FALSE(merge_on_device(128));
  if (std::getenv("NCSPARSE_MERGE") != nullptr) GTEST_SKIP() << "NCSPARSE_MERGE is set";
  const Comm comm(MPI_COMM_WORLD);
  const int P = comm.size();
  if (P == 1) GTEST_SKIP() << "one rank merges nothing";
  constexpr std::size_t kRows = 11, kL = 23, kD = 5;
  const std::vector<Candidate> mine = rank_lists(comm.rank(), P, kRows, kL, 9);
  const std::vector<double> states = rank_states(comm.rank(), kRows, kD);
  std::vector<Candidate> want_lists = mine;
  comm.allreduce_topk(want_lists, kL);
  std::vector<double> want_states = states;
  comm.allreduce_flash(want_states, kD);

  // The three collectives through `c`, on fresh copies of this rank's inputs.
  std::vector<Candidate> lists;
  std::vector<double> got_states;
  auto through = [&](const Comm& c) {
    lists = mine;
    got_states = states;
    std::vector<double> sums(3, 1.0);
    c.allreduce_topk(lists, kL);
    c.allreduce_flash(got_states, kD);
    c.allreduce_sum(sums);
  };

  // This machine is one node, counted so by every rank: the merges and the sum go to the device.
  const auto device = std::make_shared<CountingDevice>();
  const Comm one_node = comm.with_device(device);
  EXPECT_EQ(one_node.collectives_name(), "counting");
  through(one_node);
  EXPECT_EQ(device->topk, 1);
  EXPECT_EQ(device->flash, 1);
  EXPECT_EQ(device->sum, 1);
  EXPECT_TRUE(std::equal(lists.begin(), lists.end(), mine.begin(), [](const Candidate& a, const Candidate& b) {
    return a.index == b.index && a.score == b.score;
  })) << "the stand-in merges nothing: MPI must not have merged either";
  EXPECT_EQ(got_states, states);

  // Across nodes: the merges over MPI (the reference's bits), the sum still on the device.
  const Comm nodes = comm.with_device(device, 3);
  EXPECT_EQ(nodes.collectives_name(), "counting for sums, mpi for merges (3 nodes)");
  through(nodes);
  EXPECT_EQ(device->topk, 1);
  EXPECT_EQ(device->flash, 1);
  EXPECT_EQ(device->sum, 2);
  for (std::size_t i = 0; i < lists.size(); ++i) {
    ASSERT_EQ(lists[i].index, want_lists[i].index) << "entry " << i;
    ASSERT_EQ(lists[i].score, want_lists[i].score) << "entry " << i;
  }
  for (std::size_t i = 0; i < got_states.size(); ++i) ASSERT_EQ(got_states[i], want_states[i]) << "value " << i;
}

// Every rank agrees on whether the job is oversubscribed; here (2 cores) from 3 ranks on.
TEST(TopkMerge, OversubscriptionIsAgreed) {
  const Comm comm(MPI_COMM_WORLD);
  int over = comm.oversubscribed() ? 1 : 0, lo = over, hi = over;
  MPI_Allreduce(&over, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&over, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  EXPECT_EQ(lo, hi);
  EXPECT_EQ(comm.oversubscribed(), comm.oversubscribed());  // cached: no second collective
  // Every rank of these tests runs on this one machine.
  EXPECT_EQ(comm.oversubscribed(), comm.size() > ::sysconf(_SC_NPROCESSORS_ONLN));
}

}  // namespace
}  // namespace ncsparse
