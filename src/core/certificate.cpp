// The certificate of DESIGN.md §4: a bound on the dropped mass of every prefix of a sorted
// list that needs no exact state.
#include <cmath>
#include <vector>

#include "ncsparse/error.hpp"
#include "ncsparse/window.hpp"

namespace ncsparse {

void prefix_weights(std::span<const Candidate> list, std::span<double> e) {
  NCSPARSE_ASSERT(e.size() >= list.size());
  if (list.empty()) return;
  const double top = list[0].score;
  for (std::size_t j = 0; j < list.size(); ++j) e[j] = std::exp(static_cast<double>(list[j].score) - top);
}

void certificate_mass_bounds(std::span<const double> e, std::int64_t n, std::span<double> bound) {
  const std::size_t count = e.size();
  NCSPARSE_ASSERT(bound.size() >= count);
  if (count == 0) return;
  // Keys not in the list score at most the last listed score.
  const double unseen = static_cast<double>(n - static_cast<std::int64_t>(count)) * e[count - 1];
  // The kept mass Σ_{i≤k} e_i from the front (held in bound until the backward walk reads it),
  // the tail Σ_{i>k} e_i from the back.
  double sum = 0;
  for (std::size_t j = 0; j < count; ++j) bound[j] = (sum += e[j]);
  double tail = 0;
  for (std::size_t k = count; k-- > 0;) {
    const double upper = tail + unseen;
    bound[k] = upper / (bound[k] + upper);
    tail += e[k];
  }
}

void certificate_mass_bounds(std::span<const Candidate> list, std::int64_t n, std::span<double> bound) {
  std::vector<double> e(list.size());
  prefix_weights(list, e);
  certificate_mass_bounds(std::span<const double>(e), n, bound);
}

}  // namespace ncsparse
