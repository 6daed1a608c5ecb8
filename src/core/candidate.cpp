#include "ncsparse/candidate.hpp"

#include <algorithm>
#include <vector>

#include "ncsparse/error.hpp"

namespace ncsparse {

void merge_sorted(std::span<const Candidate> a, std::span<const Candidate> b, std::span<Candidate> out) {
  std::size_t i = 0, j = 0;
  for (Candidate& slot : out) {
    const bool have_a = i < a.size() && a[i].index != kNoIndex;
    const bool have_b = j < b.size() && b[j].index != kNoIndex;
    if (have_a && (!have_b || before(a[i], b[j]))) {
      slot = a[i++];
    } else if (have_b) {
      slot = b[j++];
    } else {
      slot = kEmptyCandidate;
    }
  }
}

void merge_sorted_many(std::span<const std::span<const Candidate>> lists, std::span<Candidate> out) {
  // heap holds the lists whose head is a real entry; the best head on top.
  thread_local std::vector<std::size_t> heap, pos;
  heap.clear();
  pos.assign(lists.size(), 0);
  const auto head = [&](std::size_t l) -> const Candidate& { return lists[l][pos[l]]; };
  const auto worse = [&](std::size_t x, std::size_t y) { return before(head(y), head(x)); };
  for (std::size_t l = 0; l < lists.size(); ++l) {
    if (!lists[l].empty() && lists[l][0].index != kNoIndex) heap.push_back(l);
  }
  std::make_heap(heap.begin(), heap.end(), worse);
  for (Candidate& slot : out) {
    if (heap.empty()) {
      slot = kEmptyCandidate;
      continue;
    }
    std::pop_heap(heap.begin(), heap.end(), worse);
    const std::size_t l = heap.back();
    slot = head(l);
    if (++pos[l] < lists[l].size() && lists[l][pos[l]].index != kNoIndex) {
      std::push_heap(heap.begin(), heap.end(), worse);
    } else {
      heap.pop_back();
    }
  }
}

std::size_t count_valid(std::span<const Candidate> list) {
  std::size_t n = 0;
  while (n < list.size() && list[n].index != kNoIndex) ++n;
  return n;
}

void TopKRow::reset(std::size_t keep) {
  keep_ = keep;
  threshold_ = keep == 0 ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
  size_ = 0;
  const std::size_t want = 2 * keep + 16;
  if (capacity_ < want) {
    storage_ = std::make_unique<Candidate[]>(want);
    capacity_ = want;
  }
  buffer_ = storage_.get();
}

void TopKRow::push_slow(float score, std::int64_t index) {
  if (size_ == capacity_) shrink();
  if (!(score > threshold_)) return;  // shrink may have raised the threshold
  buffer_[size_++] = Candidate{score, index};
}

// Keeps the best keep_ entries and raises the threshold to the worst of them: any later key
// with an equal score has a larger index and loses the tie.
void TopKRow::shrink() {
  NCSPARSE_ASSERT(size_ >= keep_);
  std::nth_element(buffer_, buffer_ + (keep_ - 1), buffer_ + size_, before);
  size_ = keep_;
  threshold_ = buffer_[keep_ - 1].score;
}

void TopKRow::finish(std::span<Candidate> out) {
  NCSPARSE_ASSERT(out.size() == keep_);
  if (size_ > keep_) {
    std::nth_element(buffer_, buffer_ + (keep_ - 1), buffer_ + size_, before);
    size_ = keep_;
  }
  std::sort(buffer_, buffer_ + size_, before);
  std::copy(buffer_, buffer_ + size_, out.begin());
  std::fill(out.begin() + static_cast<std::ptrdiff_t>(size_), out.end(), kEmptyCandidate);
}

}  // namespace ncsparse
