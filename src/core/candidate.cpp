#include "ncsparse/candidate.hpp"

#include <algorithm>

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
