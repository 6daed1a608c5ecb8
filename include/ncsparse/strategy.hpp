// Window strategies: one interface, one registry (DESIGN.md §5).
//
// A strategy is parsed from its spec string (`const:256`, `sink:4,64`, `taylor:4`, ...) by the
// registry entry of its name, and tells the engine what it needs from the pass. The engine runs
// it in the stage of its family:
//   - Prefix: a window that is a prefix of the merged, sorted top-(K+1) list. It only chooses
//     k per row; the stage forms the sparse softmax of every prefix strategy in one walk.
//   - KeySet: a set of keys given by position ranges (sink + recent window). The stage scores
//     the set's keys through the backend and merges their flash states over ranks.
//   - Approximator: not a selection of keys (taylor, features): its own pass over the keys and
//     its own outputs (src/engine/approx.hpp).
// Adding a strategy: one file in src/strategies/ with its class and its registry entry, and one
// name in NCSPARSE_BUILTIN_STRATEGIES (src/strategies/builtin.hpp), or register_strategy at run time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ncsparse/backend.hpp"
#include "ncsparse/candidate.hpp"

namespace ncsparse {

struct JobConfig;
struct StrategyResult;

enum class Family { Prefix, KeySet, Approximator };

struct WindowChoice {
  std::int64_t k = 0;
  bool clamped = false;  // the strategy asked for a k outside [1, available] and was clamped
};

// The exact state a window may read: m and l of the row's full softmax.
struct RowNormaliser {
  double m;
  double l;
};

// What a prefix window may read of its row besides the list, each part absent when empty.
struct RowFacts {
  const RowNormaliser* exact = nullptr;  // set with the exact pass (always when needs_exact())
  std::span<const double> cert_bounds;   // certificate_mass_bounds of the list, when computed already
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  // The spec as the user wrote it (canonical text), the registry name and the spec's numbers
  // in the order of its form (e.g. power:A,C gives {A, C}).
  const std::string& text() const { return text_; }
  const std::string& name() const { return name_; }
  std::span<const double> values() const { return values_; }
  double value(std::size_t i) const { return values_.at(i); }

  virtual Family family() const = 0;
  // Needs the exact state (m, l) of each row to choose its window.
  virtual bool needs_exact() const { return false; }
  // Reads only its own pass over the keys, so the keys may be streamed (--stream).
  virtual bool streams() const { return false; }
  // The window length before clamping for a row that sees n keys, when it depends on n alone
  // (the fixed windows const, log, power, sqrt; s + w for sink); NaN otherwise.
  virtual double fixed_target(std::int64_t n) const;
  // How many candidates of the merged list (K) it may read for rows seeing up to n keys.
  virtual double list_need(std::int64_t n, std::int64_t max_k) const;
  // Throws a usage Error when it cannot run in this job (memory_bytes: this machine's memory).
  virtual void validate(const JobConfig& job, double memory_bytes) const;
  // Bytes per rank of its own state, for the memory plan.
  virtual double state_bytes(std::int64_t d, std::int64_t block) const;
  // A line of its own numbers under the report's table (its columns), or "".
  virtual std::string summary_line(const StrategyResult& result) const;

 protected:
  Strategy(std::string name, std::string text, std::vector<double> values)
      : name_(std::move(name)), text_(std::move(text)), values_(std::move(values)) {}

 private:
  std::string name_, text_;
  std::vector<double> values_;
};

class PrefixStrategy : public Strategy {
 public:
  Family family() const final { return Family::Prefix; }
  double list_need(std::int64_t n, std::int64_t max_k) const override;
  // Window length for one row. `list` holds the valid entries of the merged list (at most
  // K + 1); windows longer than K = list_capacity − 1 are clamped (and flagged). row.exact is
  // null unless needs_exact(); row.cert_bounds, when given, is the certificate of `list` (the
  // stage computes it once per row for every window and the statistics).
  virtual WindowChoice choose(std::span<const Candidate> list, std::int64_t list_capacity, std::int64_t n_visible,
                              const RowFacts& row) const = 0;

 protected:
  using Strategy::Strategy;
  // The clamp every prefix window shares: k into [1, min(K, available)], flagged when moved.
  static WindowChoice clamp(double target, std::span<const Candidate> list, std::int64_t list_capacity,
                            std::int64_t n_visible);
};

class KeySetStrategy : public Strategy {
 public:
  Family family() const final { return Family::KeySet; }
  double list_need(std::int64_t n, std::int64_t max_k) const override;
  // The set of the row at sequence position `pos` that sees n_visible keys, as disjoint
  // ranges in increasing order, each within [0, n_visible).
  virtual void ranges(std::int64_t pos, std::int64_t n_visible, std::vector<KeyRange>& out) const = 0;
  // The set's size when nothing cuts it (a smaller set is flagged as clamped).
  virtual std::int64_t nominal_size() const = 0;

 protected:
  using Strategy::Strategy;
};

namespace approx {
class Approximator;
struct Context;
}  // namespace approx

class ApproxStrategy : public Strategy {
 public:
  Family family() const final { return Family::Approximator; }
  bool streams() const override { return true; }
  double list_need(std::int64_t n, std::int64_t max_k) const override;
  // Its state for one job (src/engine/approx.hpp).
  virtual std::unique_ptr<approx::Approximator> start(const approx::Context& context) const = 0;

 protected:
  using Strategy::Strategy;
};

// A spec being parsed: its name, its comma-separated values and the flag it came from, with
// the checks every parser shares. Each failure is a usage Error naming flag, spec and form.
class SpecArgs {
 public:
  SpecArgs(std::string flag, std::string spec, std::string name, std::vector<std::string> args, std::string form);
  const std::string& spec() const { return spec_; }
  const std::string& name() const { return name_; }
  const std::string& flag() const { return flag_; }
  const std::string& arg(std::size_t i) const { return args_.at(i); }
  // Throws unless there are exactly `count` values.
  void need(std::size_t count) const;
  double number(std::size_t i, const char* what) const;
  [[noreturn]] void fail(const std::string& why) const;

 private:
  std::string flag_, spec_, name_, form_;
  std::vector<std::string> args_;
};

// A registry entry: one per strategy name.
struct StrategyKind {
  std::string name;  // before the colon
  std::string form;  // e.g. "power:A,C"
  std::string help;  // one phrase for --help and docs, e.g. "k = ceil(A n^C)"
  std::function<std::shared_ptr<const Strategy>(const SpecArgs&)> parse;
  // Budget alignment of studies (α chosen so the total k matches a reference): the form
  // without α (e.g. "power:C", "log"), and the spec for α (as text) and the values after the
  // name (e.g. {"0.5"} for power:C = 0.5); empty for strategies that cannot be aligned.
  std::string align_form;
  std::function<std::string(const std::string& alpha, const std::vector<std::string>& rest)> aligned_spec;
};

// Adds an entry (e.g. a test's own strategy); throws when the name is taken.
void register_strategy(StrategyKind kind);
const std::vector<StrategyKind>& strategy_kinds();
const StrategyKind* find_strategy_kind(const std::string& name);
// "const:K, log:A, ..." over the registry.
std::string strategy_forms();
// The alignable forms over the registry, "log, sqrt, power:C".
std::string alignable_forms();

}  // namespace ncsparse
