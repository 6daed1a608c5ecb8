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
  // e[j] = e^{s_j − top}, once; kept[j] = Σ_{i≤j} e_i from the front, the tail Σ_{i>k} e_i
  // from the back (each exponential computed once, the sums in the same order as always).
  std::vector<double> e(count), kept(count);
  double sum = 0;
  for (std::size_t j = 0; j < count; ++j) {
    e[j] = std::exp(static_cast<double>(list[j].score) - top);
    sum += e[j];
    kept[j] = sum;
  }
  double tail = 0;
  for (std::size_t k = count; k-- > 0;) {
    const double upper = tail + unseen;
    bound[k] = upper / (kept[k] + upper);
    tail += e[k];
  }
}

}  // namespace ncsparse
