// The adaptive windows: k read off the row's merged list.
//   eps:E   the entries with p_j >= E (needs the exact state)
//   mass:D  the shortest prefix with kept mass >= 1 − D (needs the exact state)
//   cert:D  the shortest prefix whose certified dropped mass is <= D (no exact state)
// Capped at --max-k: the list holds at most that many candidates for them.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ncsparse/error.hpp"
#include "ncsparse/window.hpp"
#include "strategies/builtin.hpp"

namespace ncsparse {
namespace {

// A threshold in (0, 1), named `what` in messages.
double unit_interval(const SpecArgs& a, const char* what) {
  a.need(1);
  const double v = a.number(0, what);
  if (!(v > 0 && v < 1)) a.fail(std::string(what) + " must lie in (0, 1)");
  return v;
}

class EpsWindow final : public PrefixStrategy {
 public:
  explicit EpsWindow(const SpecArgs& a) : PrefixStrategy(a.name(), a.spec(), {unit_interval(a, "epsilon")}) {}
  bool needs_exact() const override { return true; }
  double list_need(std::int64_t, std::int64_t max_k) const override {
    return std::min<double>(std::floor(1.0 / value(0)), static_cast<double>(max_k));
  }
  WindowChoice choose(std::span<const Candidate> list, std::int64_t list_capacity, std::int64_t n_visible,
                      const RowFacts& row) const override {
    const RowNormaliser* exact = row.exact;
    NCSPARSE_ASSERT(exact != nullptr);
    const std::int64_t available = std::min<std::int64_t>(n_visible, static_cast<std::int64_t>(list.size()));
    // p_j >= ε  ⇔  s_j >= m + ln(ε·l)
    const double cut = exact->m + std::log(value(0) * exact->l);
    std::int64_t k = 0;
    while (k < available && static_cast<double>(list[k].score) >= cut) ++k;
    return clamp(static_cast<double>(k), list, list_capacity, n_visible);
  }
};

class MassWindow final : public PrefixStrategy {
 public:
  explicit MassWindow(const SpecArgs& a) : PrefixStrategy(a.name(), a.spec(), {unit_interval(a, "delta")}) {}
  bool needs_exact() const override { return true; }
  double list_need(std::int64_t, std::int64_t max_k) const override { return static_cast<double>(max_k); }
  WindowChoice choose(std::span<const Candidate> list, std::int64_t list_capacity, std::int64_t n_visible,
                      const RowFacts& row) const override {
    const RowNormaliser* exact = row.exact;
    NCSPARSE_ASSERT(exact != nullptr);
    const std::int64_t available = std::min<std::int64_t>(n_visible, static_cast<std::int64_t>(list.size()));
    double mass = 0;
    std::int64_t k = 0;
    const double goal = 1.0 - value(0);
    while (k < available && mass < goal) {
      mass += std::exp(static_cast<double>(list[k].score) - exact->m) / exact->l;
      ++k;
    }
    if (mass < goal) k = INT64_MAX;  // not reached within the list: clamp and flag
    return clamp(static_cast<double>(k), list, list_capacity, n_visible);
  }
};

class CertWindow final : public PrefixStrategy {
 public:
  explicit CertWindow(const SpecArgs& a) : PrefixStrategy(a.name(), a.spec(), {unit_interval(a, "delta")}) {}
  double list_need(std::int64_t, std::int64_t max_k) const override { return static_cast<double>(max_k); }
  WindowChoice choose(std::span<const Candidate> list, std::int64_t list_capacity, std::int64_t n_visible,
                      const RowFacts& row) const override {
    const std::int64_t available = std::min<std::int64_t>(n_visible, static_cast<std::int64_t>(list.size()));
    std::vector<double> own;
    std::span<const double> bound = row.cert_bounds;
    if (bound.size() != list.size()) {
      own.resize(list.size());
      certificate_mass_bounds(list, n_visible, own);
      bound = own;
    }
    std::int64_t k = INT64_MAX;
    for (std::int64_t j = 0; j < available; ++j) {
      if (bound[j] <= value(0)) {
        k = j + 1;
        break;
      }
    }
    return clamp(static_cast<double>(k), list, list_capacity, n_visible);
  }
};

template <class Window>
std::shared_ptr<const Strategy> make(const SpecArgs& a) {
  return std::make_shared<Window>(a);
}

}  // namespace

StrategyKind eps_strategy() {
  return {"eps", "eps:E", "keys with p >= E; needs the exact pass", make<EpsWindow>, {}, {}};
}
StrategyKind mass_strategy() {
  return {"mass", "mass:D", "kept mass >= 1 - D; needs the exact pass", make<MassWindow>, {}, {}};
}
StrategyKind cert_strategy() { return {"cert", "cert:D", "certified dropped mass <= D", make<CertWindow>, {}, {}}; }

}  // namespace ncsparse
