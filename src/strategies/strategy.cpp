// The strategy base classes, the registry and the spec parser every strategy shares.
#include "ncsparse/strategy.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "ncsparse/error.hpp"
#include "ncsparse/window.hpp"
#include "strategies/builtin.hpp"

namespace ncsparse {
namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t pos = s.find(sep, start);
    parts.push_back(s.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  return parts;
}

std::vector<StrategyKind>& registry() {
  static std::vector<StrategyKind> kinds = builtin_strategies();
  return kinds;
}

}  // namespace

double Strategy::fixed_target(std::int64_t) const { return std::numeric_limits<double>::quiet_NaN(); }
double Strategy::list_need(std::int64_t, std::int64_t) const { return 0; }
void Strategy::validate(const JobConfig&, double) const {}
double Strategy::state_bytes(std::int64_t, std::int64_t) const { return 0; }
std::string Strategy::summary_line(const StrategyResult&) const { return {}; }

double PrefixStrategy::list_need(std::int64_t n, std::int64_t) const {
  // The largest fixed window over rows is the one of the row that sees all n keys.
  return fixed_target(n);
}

WindowChoice PrefixStrategy::clamp(double target, std::span<const Candidate> list, std::int64_t list_capacity,
                                   std::int64_t n_visible) {
  const std::int64_t max_window = std::min(list_capacity - 1, n_visible);
  const std::int64_t available = std::min<std::int64_t>(n_visible, static_cast<std::int64_t>(list.size()));
  WindowChoice c;
  std::int64_t k = target >= 9.0e18 ? INT64_MAX : static_cast<std::int64_t>(target);
  const std::int64_t hi = std::max<std::int64_t>(1, std::min(max_window, available));
  if (k < 1 || k > hi) {
    c.clamped = true;
    k = std::clamp<std::int64_t>(k, 1, hi);
  }
  c.k = k;
  return c;
}

double KeySetStrategy::list_need(std::int64_t n, std::int64_t) const { return fixed_target(n); }
double ApproxStrategy::list_need(std::int64_t, std::int64_t) const { return 0; }

SpecArgs::SpecArgs(std::string flag, std::string spec, std::string name, std::vector<std::string> args,
                   std::string form)
    : flag_(std::move(flag)),
      spec_(std::move(spec)),
      name_(std::move(name)),
      form_(std::move(form)),
      args_(std::move(args)) {}

void SpecArgs::need(std::size_t count) const {
  if (args_.size() != count) {
    throw usage_error(flag_ + ": '" + spec_ + "' takes " + std::to_string(count) + (count == 1 ? " value" : " values") +
                      " (write it as " + form_ + ")");
  }
}

double SpecArgs::number(std::size_t i, const char* what) const {
  const std::string& text = args_.at(i);
  double value = 0;
  const char* last = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), last, value);
  if (text.empty() || ec != std::errc() || ptr != last || !std::isfinite(value)) {
    throw usage_error(flag_ + ": '" + spec_ + "': " + what + " '" + text +
                      "' is not a number (forms: " + strategy_forms() + ")");
  }
  return value;
}

void SpecArgs::fail(const std::string& why) const { throw usage_error(flag_ + ": '" + spec_ + "': " + why); }

void register_strategy(StrategyKind kind) {
  if (find_strategy_kind(kind.name) != nullptr) {
    throw usage_error("strategy '" + kind.name + "' is registered twice (give each strategy one name)");
  }
  registry().push_back(std::move(kind));
}

const std::vector<StrategyKind>& strategy_kinds() { return registry(); }

const StrategyKind* find_strategy_kind(const std::string& name) {
  for (const StrategyKind& k : registry()) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

std::string strategy_forms() {
  std::string out;
  const auto& kinds = registry();
  for (std::size_t i = 0; i < kinds.size(); ++i) {
    out += (i == 0 ? "" : i + 1 == kinds.size() ? " or " : ", ") + kinds[i].form;
  }
  return out;
}

std::string alignable_forms() {
  std::string out;
  for (const StrategyKind& k : registry()) {
    if (!k.align_form.empty()) out += (out.empty() ? "" : ", ") + k.align_form;
  }
  return out;
}

WindowSpec parse_window(const std::string& spec, const std::string& flag) {
  const std::size_t colon = spec.find(':');
  if (colon == std::string::npos) {
    throw usage_error(flag + ": '" + spec + "' is not a window strategy (use one of " + strategy_forms() + ")");
  }
  const std::string name = spec.substr(0, colon);
  const StrategyKind* kind = find_strategy_kind(name);
  if (kind == nullptr) {
    throw usage_error(flag + ": unknown window strategy '" + name + "' in '" + spec + "' (use one of " +
                      strategy_forms() + ")");
  }
  const SpecArgs args(flag, spec, name, split(spec.substr(colon + 1), ','), kind->form);
  return WindowSpec{spec, kind->parse(args)};
}

double fixed_window_target(const WindowSpec& w, std::int64_t n) { return w->fixed_target(n); }

std::int64_t list_length(std::span<const WindowSpec> windows, std::int64_t n, std::int64_t max_k) {
  double k = 1;
  for (const WindowSpec& w : windows) k = std::max(k, w->list_need(n, max_k));
  return static_cast<std::int64_t>(std::min(k, static_cast<double>(n))) + 1;
}

WindowChoice choose_window(const WindowSpec& w, std::span<const Candidate> list, std::int64_t list_capacity,
                           std::int64_t n_visible, const RowNormaliser* exact) {
  switch (w->family()) {
    case Family::Prefix:
      return static_cast<const PrefixStrategy&>(*w).choose(list, list_capacity, n_visible, RowFacts{exact, {}});
    case Family::KeySet: {
      const std::int64_t size = static_cast<const KeySetStrategy&>(*w).nominal_size();
      WindowChoice c;
      c.k = std::min(size, n_visible);
      c.clamped = c.k < size;
      return c;
    }
    default:
      return WindowChoice{n_visible, false};  // every visible key contributes
  }
}

}  // namespace ncsparse
