// Window strategies: one spec string each, the same in the CLI and in study files
// (DESIGN.md §5). This is the one place that turns a spec into a window length.
//
// Every window of a sorted candidate list is a prefix, so one merged top-(K+1) list answers
// every strategy at once; only `sink` is not a prefix of the list.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ncsparse/candidate.hpp"

namespace ncsparse {

enum class WindowKind { Const, Log, Power, Sqrt, Eps, Mass, Cert, Sink, Taylor, Features };

struct WindowSpec {
  WindowKind kind = WindowKind::Const;
  double a = 0;      // k, α, ε or δ; s for sink; q for taylor; e for features
  double b = 0;      // C for power; w for sink; the ProjectionKind (as a number) for features
  std::string text;  // the spec as the user wrote it, canonicalised

  // Fixed windows depend only on the row's key count; adaptive ones read the list.
  bool fixed() const;
  bool needs_exact() const { return kind == WindowKind::Eps || kind == WindowKind::Mass; }
  // The approximators of PAPERS.md §3–4: not a selection of keys, so not read off the list.
  bool approximator() const { return kind == WindowKind::Taylor || kind == WindowKind::Features; }
};

// Parses `const:k`, `log:α`, `power:α,C`, `sqrt:α`, `eps:ε`, `mass:δ`, `cert:δ`, `sink:s,w`,
// `taylor:q` (q even, >= 2) and `features:e,KIND` (KIND gaussian, sparse or gram).
// Throws a usage Error naming the flag and the accepted form.
WindowSpec parse_window(const std::string& spec, const std::string& flag = "--window");

// Target length of a fixed window for a row that sees n keys, before clamping:
// const k, ⌈α ln n⌉, ⌈α n^C⌉, ⌈α √n⌉. For sink it is s + w.
double fixed_window_target(const WindowSpec& w, std::int64_t n);

// Length of the candidate list (K + 1) that the strategies need for rows seeing up to n keys;
// adaptive strategies are capped at max_k; approximators need none (they count as k = 1).
std::int64_t list_length(std::span<const WindowSpec> windows, std::int64_t n, std::int64_t max_k);

// Certificate bound on the dropped mass 1 − M_k for each prefix length k = 1..K of a sorted
// list, without the exact state (DESIGN.md §4). `list` holds the valid entries only; n is
// the number of keys the row sees. Returns bound[k-1] for k = 1..list.size().
void certificate_mass_bounds(std::span<const Candidate> list, std::int64_t n, std::span<double> bound);

struct WindowChoice {
  std::int64_t k = 0;
  bool clamped = false;  // the strategy asked for a k outside [1, available] and was clamped
};

// The exact state a window may read: m and l of the row's full softmax.
struct RowNormaliser {
  double m;
  double l;
};

// Window length for one row. `list` holds the valid entries of the merged list (at most K+1);
// windows longer than K = list_capacity − 1 are clamped (and flagged). exact may be null for
// strategies that do not need it.
WindowChoice choose_window(const WindowSpec& w, std::span<const Candidate> list, std::int64_t list_capacity,
                           std::int64_t n_visible, const RowNormaliser* exact);

}  // namespace ncsparse
