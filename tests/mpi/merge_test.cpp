// The candidate-list merge over MPI (Comm::allreduce_topk): every algorithm of TopkMerge gives
// every rank the same lists, bit for bit, and they equal the pairwise merge of all ranks' lists
// computed on one rank: ties, empty rows, rows that only some ranks fill, short lists.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <vector>

#include "ncsparse/comm.hpp"

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

// Every rank agrees on whether the job is oversubscribed; here (2 cores) from 3 ranks on.
TEST(TopkMerge, OversubscriptionIsAgreed) {
  const Comm comm(MPI_COMM_WORLD);
  int over = comm.oversubscribed() ? 1 : 0, lo = over, hi = over;
  MPI_Allreduce(&over, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&over, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  EXPECT_EQ(lo, hi);
  EXPECT_EQ(comm.oversubscribed(), comm.oversubscribed());  // cached: no second collective
}

}  // namespace
}  // namespace ncsparse
