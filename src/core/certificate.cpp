// The certificate of DESIGN.md §4: a bound on the dropped mass of every prefix of a sorted
// list that needs no exact state.
#include <cmath>
#include <vector>

#include "ncsparse/error.hpp"
#include "ncsparse/window.hpp"

namespace ncsparse {

void certificate_mass_bounds(std::span<const Candidate> list, std::int64_t n, std::span<double> bound) {
  const std::size_t count = list.size();
  NCSPARSE_ASSERT(bound.size() >= count);
  if (count == 0) return;
  const double top = list[0].score;
  // Keys not in the list score at most the last listed score.
  const double unseen = static_cast<double>(n - static_cast<std::int64_t>(count)) *
                        std::exp(static_cast<double>(list[count - 1].score) - top);
  // tail[k] = Σ_{j>k} e^{s_j − top} over listed entries, built from the back.
  double tail = 0;
  std::vector<double> kept(count);
  double sum = 0;
  for (std::size_t j = 0; j < count; ++j) {
    sum += std::exp(static_cast<double>(list[j].score) - top);
    kept[j] = sum;
  }
  for (std::size_t k = count; k-- > 0;) {
    const double upper = tail + unseen;
    bound[k] = upper / (kept[k] + upper);
    tail += std::exp(static_cast<double>(list[k].score) - top);
  }
}

}  // namespace ncsparse
