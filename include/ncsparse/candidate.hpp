// Top-k candidates and the one merge of sorted candidate lists.
//
// Order is total: a higher score comes first; equal scores are ordered by the smaller
// global key index. Under this order the merge of two sorted lists keeping the first L
// entries is associative and commutative, so any MPI reduction tree yields the same list.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>

namespace ncsparse {

struct Candidate {
  float score;
  std::int64_t index;  // global key index; kNoIndex marks an empty slot
};

inline constexpr std::int64_t kNoIndex = std::numeric_limits<std::int64_t>::max();
inline constexpr Candidate kEmptyCandidate{-std::numeric_limits<float>::infinity(), kNoIndex};

// True when a comes strictly before b in the total order.
inline bool before(const Candidate& a, const Candidate& b) {
  return a.score > b.score || (a.score == b.score && a.index < b.index);
}

// Merges two lists sorted by `before` (empty slots last) into out, keeping out.size() entries
// and padding with empty slots. out may not alias a or b.
void merge_sorted(std::span<const Candidate> a, std::span<const Candidate> b, std::span<Candidate> out);

// The same merge of any number of sorted lists (a heap over their heads, O(log lists.size())
// per entry kept): the first out.size() entries of their union, padded with empty slots. Equal
// to merging them pairwise with merge_sorted in any order. out may not alias the lists.
void merge_sorted_many(std::span<const std::span<const Candidate>> lists, std::span<Candidate> out);

// Number of real (non-empty) entries at the front of a sorted, padded list.
std::size_t count_valid(std::span<const Candidate> list);

// Running top-L selection for one row, fed keys in increasing index order.
//
// Keeps a threshold (the L-th best score seen once L are held) so that most scores are
// rejected with a single compare, and a buffer that is shrunk by a selection when it fills.
// Because keys arrive in increasing index order, a score equal to the threshold always
// loses the tie, so the strict compare is exact.
class TopKRow {
 public:
  explicit TopKRow(std::size_t keep = 0) { reset(keep); }
  void reset(std::size_t keep);

  float threshold() const { return threshold_; }
  void push(float score, std::int64_t index) {
    if (score > threshold_) push_slow(score, index);
  }
  // Writes the kept entries sorted by `before` into out (out.size() == keep), padding with
  // empty slots.
  void finish(std::span<Candidate> out);

 private:
  void push_slow(float score, std::int64_t index);
  void shrink();

  std::size_t keep_ = 0;
  float threshold_ = -std::numeric_limits<float>::infinity();
  std::size_t size_ = 0;
  Candidate* buffer_ = nullptr;  // points into storage_
  std::size_t capacity_ = 0;
  std::unique_ptr<Candidate[]> storage_;
};

}  // namespace ncsparse
