// Error statistics of sparse attention against exact attention, computed exactly without an
// n × n matrix (DESIGN.md §4), and their aggregates over rows.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "ncsparse/candidate.hpp"

namespace ncsparse {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// What sparse attention kept of one row, in softmax terms of the full row.
struct KeptSet {
  double mass = 0;       // M = Σ_{j∈S} p_j
  double sum_sq = 0;     // Σ_{j∈S} p_j²
  double p_max = 0;      // max_{j∈S} p_j
  double p_dropped = 0;  // max_{j∉S} p_j (0 when nothing is dropped)
  // Σ_{j∉S} p_j² when known without cancellation; NaN: fill_errors uses Σ_all p² − Σ_S p².
  double dropped_sq = kNaN;
};

// The kept set of a prefix of length k of a sorted list (valid entries only), for a row with
// exact state (m, l, Σ_all p² = l2/l²) that sees n_visible keys.
//
// The exact state is float-accurate (~1e-7 relative), so 1 − M and Σ_all p² − Σ_S p² computed
// by subtraction would drown small errors in that noise. Instead the dropped part is summed
// from the listed entries, and only the part beyond the list comes from the exact state,
// clamped to what the list allows (each unlisted entry is at most the last listed one). When
// the list holds every visible key, the result does not depend on l at all.
KeptSet prefix_kept_set(std::span<const Candidate> list, std::int64_t k, double m, double l, std::int64_t n_visible,
                        double sum_sq_all);

// p_j = exp(s_j − m) / l of every listed entry: computed once per row, then given to the
// overload below for each of the row's windows (the same values, bit for bit, as the one above
// computes; a row of K = 8192 and five windows was 51,000 exponentials, now 8,192).
void listed_probabilities(std::span<const Candidate> list, double m, double l, std::span<double> p);
KeptSet prefix_kept_set(std::span<const double> listed_p, std::int64_t k, std::int64_t n_visible, double sum_sq_all);

// The same for a kept set that is not a prefix (sink windows): `in_set` flags the listed
// entries that belong to it, set_size is its size, and kept_mass, kept_sq, kept_max are its
// Σ p, Σ p² and max p from its own merged state.
KeptSet general_kept_set(std::span<const Candidate> list, std::span<const std::uint8_t> in_set, std::int64_t set_size,
                         double kept_mass, double kept_sq, double kept_max, double m, double l, std::int64_t n_visible,
                         double sum_sq_all);

struct RowStats {
  std::int64_t k = 0;
  bool clamped = false;
  // Attention-row errors (need the exact state; NaN otherwise).
  double kept_mass = kNaN;
  double attn_l1 = kNaN;
  double attn_l2 = kNaN;
  double attn_linf = kNaN;
  // Output errors ô − o.
  double out_l2 = kNaN;
  double out_linf = kNaN;
  double out_rel = kNaN;  // ‖ô − o‖₂ / ‖o‖₂
  // Certificate (no exact state needed): bound on 1 − M and on ‖ô − o‖₂.
  double cert_mass = kNaN;
  double cert_out = kNaN;
};

// Fills the attention-row and output errors. sum_sq_all = Σ_all p² = l2 / l².
void fill_errors(const KeptSet& kept, double sum_sq_all, std::span<const double> o_sparse,
                 std::span<const double> o_exact, RowStats& stats);

// Fills only the output errors (out_l2, out_linf, out_rel) of ô against o.
void fill_output_errors(std::span<const double> o_sparse, std::span<const double> o_exact, RowStats& stats);

// ‖ô − o‖₂ ≤ (1 − M)·‖ô − ō‖₂ ≤ bound_mass·(‖ô‖₂ + max_j ‖v_j‖₂).
double certificate_output_bound(double bound_mass, std::span<const double> o_sparse, double v_max_norm);

// Aggregate of one statistic over rows; NaN values (not available) are left out of count.
struct Summary {
  std::int64_t count = 0;
  double mean = kNaN, min = kNaN, p50 = kNaN, p90 = kNaN, p99 = kNaN, max = kNaN;
};

// Quantiles by linear interpolation between order statistics.
Summary summarize(std::span<const double> values);

}  // namespace ncsparse
