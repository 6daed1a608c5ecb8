// The fixed windows: k depends only on the number of keys n the row sees.
//   const:K    k = K
//   log:A      k = ⌈A ln n⌉
//   power:A,C  k = ⌈A n^C⌉
//   sqrt:A     k = ⌈A √n⌉
#include <algorithm>
#include <cmath>
#include <functional>

#include "strategies/builtin.hpp"

namespace ncsparse {
namespace {

// A fixed window: its target length as a function of n (at least 1 key seen).
class FixedWindow final : public PrefixStrategy {
 public:
  using Target = std::function<double(double n)>;
  FixedWindow(const SpecArgs& a, std::vector<double> values, Target target)
      : PrefixStrategy(a.name(), a.spec(), std::move(values)), target_(std::move(target)) {}

  double fixed_target(std::int64_t n) const override {
    return target_(static_cast<double>(std::max<std::int64_t>(n, 1)));
  }
  WindowChoice choose(std::span<const Candidate> list, std::int64_t list_capacity, std::int64_t n_visible,
                      const RowFacts&) const override {
    return clamp(fixed_target(n_visible), list, list_capacity, n_visible);
  }

 private:
  Target target_;
};

double positive_alpha(const SpecArgs& a) {
  const double alpha = a.number(0, "alpha");
  if (alpha <= 0) a.fail("alpha must be > 0");
  return alpha;
}

// An entry whose only value is α > 0 (log, sqrt): aligned by writing NAME:α.
StrategyKind alpha_kind(const std::string& name, const std::string& help, double (*grow)(double n)) {
  return {name,
          name + ":A",
          help,
          [grow](const SpecArgs& a) -> std::shared_ptr<const Strategy> {
            a.need(1);
            const double alpha = positive_alpha(a);
            return std::make_shared<FixedWindow>(a, std::vector<double>{alpha},
                                                 [alpha, grow](double n) { return std::ceil(alpha * grow(n)); });
          },
          name,
          [name](const std::string& alpha, const std::vector<std::string>&) { return name + ":" + alpha; }};
}

}  // namespace

StrategyKind const_strategy() {
  return {"const",
          "const:K",
          "k = K",
          [](const SpecArgs& a) -> std::shared_ptr<const Strategy> {
            a.need(1);
            const double k = a.number(0, "K");
            if (k < 1 || k != std::floor(k)) a.fail("K must be a whole number >= 1");
            return std::make_shared<FixedWindow>(a, std::vector<double>{k}, [k](double) { return k; });
          },
          {},
          {}};
}

StrategyKind log_strategy() {
  return alpha_kind("log", "k = ceil(A ln n)", [](double n) { return std::log(n); });
}

StrategyKind power_strategy() {
  return {"power",
          "power:A,C",
          "k = ceil(A n^C)",
          [](const SpecArgs& a) -> std::shared_ptr<const Strategy> {
            a.need(2);
            const double alpha = positive_alpha(a);
            const double c = a.number(1, "C");
            if (!(c > 0 && c <= 1)) a.fail("C must lie in (0, 1]");
            return std::make_shared<FixedWindow>(a, std::vector<double>{alpha, c},
                                                 [alpha, c](double n) { return std::ceil(alpha * std::pow(n, c)); });
          },
          "power:C",
          [](const std::string& alpha, const std::vector<std::string>& rest) {
            return "power:" + alpha + "," + (rest.empty() ? std::string() : rest[0]);
          }};
}

StrategyKind sqrt_strategy() {
  return alpha_kind("sqrt", "k = ceil(A sqrt(n))", [](double n) { return std::sqrt(n); });
}

}  // namespace ncsparse
