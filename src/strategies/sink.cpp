// sink:S,W — StreamingLLM's set: the first S positions and the W positions ending at the row.
// Not a prefix of the list: the key-set stage scores these keys through the backend.
#include <algorithm>
#include <cmath>

#include "strategies/builtin.hpp"

namespace ncsparse {
namespace {

class SinkWindow final : public KeySetStrategy {
 public:
  SinkWindow(const SpecArgs& a, double s, double w) : KeySetStrategy(a.name(), a.spec(), {s, w}) {}

  double fixed_target(std::int64_t) const override { return value(0) + value(1); }
  std::int64_t nominal_size() const override { return static_cast<std::int64_t>(value(0) + value(1)); }

  void ranges(std::int64_t pos, std::int64_t n_visible, std::vector<KeyRange>& out) const override {
    const std::int64_t s = static_cast<std::int64_t>(value(0)), w = static_cast<std::int64_t>(value(1));
    out.clear();
    const std::int64_t s_end = std::min(s, n_visible);
    if (s_end > 0) out.push_back({0, s_end});
    const std::int64_t r_begin = std::max(s, pos - w + 1), r_end = std::min(pos + 1, n_visible);
    if (r_end > r_begin) out.push_back({r_begin, r_end});
  }
};

}  // namespace

StrategyKind sink_strategy() {
  return {"sink",
          "sink:S,W",
          "the first S keys and the W keys ending at the row",
          [](const SpecArgs& a) -> std::shared_ptr<const Strategy> {
            a.need(2);
            const double s = a.number(0, "S"), w = a.number(1, "W");
            if (s < 0 || s != std::floor(s)) a.fail("S (sink tokens) must be a whole number >= 0");
            if (w < 1 || w != std::floor(w)) a.fail("W (recent window) must be a whole number >= 1");
            return std::make_shared<SinkWindow>(a, s, w);
          },
          {},
          {}};
}

}  // namespace ncsparse
