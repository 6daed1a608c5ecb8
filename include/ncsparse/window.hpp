// A job's window strategies as the user wrote them: one spec string each, the same in the CLI
// and in study files (DESIGN.md §5), parsed by the strategy registry (strategy.hpp).
//
// Every window of a sorted candidate list is a prefix, so one merged top-(K+1) list answers
// every prefix strategy at once; key-set windows (sink) and approximators have stages of their
// own.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ncsparse/candidate.hpp"
#include "ncsparse/strategy.hpp"

namespace ncsparse {

// A parsed spec: its text and the strategy it names.
struct WindowSpec {
  std::string text;  // the spec as the user wrote it, canonicalised
  std::shared_ptr<const Strategy> strategy;

  const Strategy& operator*() const { return *strategy; }
  const Strategy* operator->() const { return strategy.get(); }
  const std::string& name() const { return strategy->name(); }
  // Fixed windows are prefixes whose length depends only on the row's key count.
  bool fixed() const { return strategy->family() == Family::Prefix && !std::isnan(strategy->fixed_target(1)); }
  bool needs_exact() const { return strategy->needs_exact(); }
  // The approximators of PAPERS.md §3–4: not a selection of keys, so not read off the list.
  bool approximator() const { return strategy->family() == Family::Approximator; }
};

// Parses a spec by its registry entry (strategy_forms() lists them). Throws a usage Error
// naming the flag and the accepted form.
WindowSpec parse_window(const std::string& spec, const std::string& flag = "--window");

// Target length of a fixed window for a row that sees n keys, before clamping:
// const k, ⌈α ln n⌉, ⌈α n^C⌉, ⌈α √n⌉. For sink it is s + w; NaN for the others.
double fixed_window_target(const WindowSpec& w, std::int64_t n);

// Length of the candidate list (K + 1) that the strategies need for rows seeing up to n keys;
// adaptive strategies are capped at max_k; approximators need none (they count as k = 1).
std::int64_t list_length(std::span<const WindowSpec> windows, std::int64_t n, std::int64_t max_k);

// Certificate bound on the dropped mass 1 − M_k for each prefix length k = 1..K of a sorted
// list, without the exact state (DESIGN.md §4). `list` holds the valid entries only; n is
// the number of keys the row sees. Returns bound[k-1] for k = 1..list.size().
void certificate_mass_bounds(std::span<const Candidate> list, std::int64_t n, std::span<double> bound);
// The same from the list's weights e_j = exp(s_j − s_0) (prefix_weights; e.size() entries).
void certificate_mass_bounds(std::span<const double> e, std::int64_t n, std::span<double> bound);
// e_j = exp(s_j − s_0) for j < list.size(), in double: the unnormalised weights every prefix
// window of a sorted list shares (its softmax over the first k is e_j / Σ_{i<k} e_i).
void prefix_weights(std::span<const Candidate> list, std::span<double> e);

// Window length of a prefix strategy for one row (PrefixStrategy::choose); for a key-set
// window its size s + w cut to n_visible, for an approximator n_visible.
WindowChoice choose_window(const WindowSpec& w, std::span<const Candidate> list, std::int64_t list_capacity,
                           std::int64_t n_visible, const RowNormaliser* exact);

}  // namespace ncsparse
