#include "ncsparse/stats.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ncsparse/error.hpp"

namespace ncsparse {

namespace {

// Adds the dropped part and normalises; kept* describe the set, listed entries flagged out of
// the set (in_set(j) false) are summed exactly, in list order, unlisted ones come from the exact
// state within the list's bounds. p holds the listed entries' p_j = exp(s_j − m) / l.
template <class InSet>
KeptSet finish_kept_set(std::span<const double> p, InSet in_set, std::int64_t set_size, double kept, double kept_sq,
                        double kept_max, std::int64_t n_visible, double sum_sq_all) {
  const std::int64_t listed = static_cast<std::int64_t>(p.size());
  NCSPARSE_ASSERT(listed <= n_visible);
  double dropped = 0, dropped_sq = 0, p_dropped = 0;
  const double p_last = listed > 0 ? p[static_cast<std::size_t>(listed - 1)] : 0.0;
  std::int64_t listed_in = 0;
  for (std::int64_t j = 0; j < listed; ++j) {
    const double pj = p[static_cast<std::size_t>(j)];
    if (in_set(j)) {
      ++listed_in;
      continue;
    }
    dropped += pj;
    dropped_sq += pj * pj;
    p_dropped = std::max(p_dropped, pj);
  }
  const std::int64_t unlisted_out = (n_visible - listed) - (set_size - listed_in);
  if (unlisted_out > 0) {
    // Each unlisted key scores at most the last listed one.
    const double beyond = std::clamp(1.0 - kept - dropped, 0.0, static_cast<double>(unlisted_out) * p_last);
    const double beyond_sq = std::clamp(sum_sq_all - kept_sq - dropped_sq, 0.0, p_last * beyond);
    dropped += beyond;
    dropped_sq += beyond_sq;
    // An upper bound on the largest unlisted entry (exact whenever a listed entry is dropped).
    if (p_dropped == 0) p_dropped = std::min(p_last, beyond);
  }
  const double total = kept + dropped;  // normalise so that kept + dropped = 1 exactly
  KeptSet s;
  if (total <= 0) return s;
  s.mass = kept / total;
  s.sum_sq = kept_sq / (total * total);
  s.dropped_sq = dropped_sq / (total * total);
  s.p_max = kept_max / total;
  s.p_dropped = p_dropped / total;
  return s;
}

}  // namespace

void listed_probabilities(std::span<const Candidate> list, double m, double l, std::span<double> p) {
  NCSPARSE_ASSERT(p.size() == list.size());
  for (std::size_t j = 0; j < list.size(); ++j) p[j] = std::exp(static_cast<double>(list[j].score) - m) / l;
}

KeptSet prefix_kept_set(std::span<const double> p, std::int64_t k, std::int64_t n_visible, double sum_sq_all) {
  NCSPARSE_ASSERT(k >= 0 && static_cast<std::size_t>(k) <= p.size());
  double kept = 0, kept_sq = 0, kept_max = 0;
  for (std::int64_t j = 0; j < k; ++j) {
    const double pj = p[static_cast<std::size_t>(j)];
    kept += pj;
    kept_sq += pj * pj;
    kept_max = std::max(kept_max, pj);
  }
  return finish_kept_set(p, [k](std::int64_t j) { return j < k; }, k, kept, kept_sq, kept_max, n_visible, sum_sq_all);
}

KeptSet prefix_kept_set(std::span<const Candidate> list, std::int64_t k, double m, double l, std::int64_t n_visible,
                        double sum_sq_all) {
  NCSPARSE_ASSERT(k >= 0 && static_cast<std::size_t>(k) <= list.size());
  std::vector<double> p(list.size());
  listed_probabilities(list, m, l, p);
  return prefix_kept_set(std::span<const double>(p), k, n_visible, sum_sq_all);
}

KeptSet general_kept_set(std::span<const Candidate> list, std::span<const std::uint8_t> in_set, std::int64_t set_size,
                         double kept_mass, double kept_sq, double kept_max, double m, double l, std::int64_t n_visible,
                         double sum_sq_all) {
  NCSPARSE_ASSERT(in_set.size() == list.size());
  std::vector<double> p(list.size());
  listed_probabilities(list, m, l, p);
  return finish_kept_set(std::span<const double>(p), [in_set](std::int64_t j) { return in_set[static_cast<std::size_t>(j)] != 0; },
                         set_size, kept_mass, kept_sq, kept_max, n_visible, sum_sq_all);
}

void fill_errors(const KeptSet& kept, double sum_sq_all, std::span<const double> o_sparse,
                 std::span<const double> o_exact, RowStats& st) {
  const double M = kept.mass;
  st.kept_mass = M;
  st.attn_l1 = 2.0 * std::max(0.0, 1.0 - M);
  if (M > 0) {
    const double f = 1.0 / M - 1.0;
    const double dropped_sq = std::isnan(kept.dropped_sq) ? std::max(0.0, sum_sq_all - kept.sum_sq) : kept.dropped_sq;
    const double l2sq = f * f * kept.sum_sq + dropped_sq;
    st.attn_l2 = std::sqrt(l2sq);
    st.attn_linf = std::max(kept.p_max * std::max(0.0, f), kept.p_dropped);
  } else {
    st.attn_l2 = std::sqrt(std::isnan(kept.dropped_sq) ? sum_sq_all : kept.dropped_sq);
    st.attn_linf = kept.p_dropped;
  }
  fill_output_errors(o_sparse, o_exact, st);
}

void fill_output_errors(std::span<const double> o_sparse, std::span<const double> o_exact, RowStats& st) {
  double e2 = 0, emax = 0, o2 = 0;
  for (std::size_t c = 0; c < o_exact.size(); ++c) {
    const double e = o_sparse[c] - o_exact[c];
    e2 += e * e;
    emax = std::max(emax, std::abs(e));
    o2 += o_exact[c] * o_exact[c];
  }
  st.out_l2 = std::sqrt(e2);
  st.out_linf = emax;
  st.out_rel = o2 > 0 ? std::sqrt(e2 / o2) : (e2 > 0 ? std::numeric_limits<double>::infinity() : 0.0);
}

double certificate_output_bound(double bound_mass, std::span<const double> o_sparse, double v_max_norm) {
  double n2 = 0;
  for (double x : o_sparse) n2 += x * x;
  return bound_mass * (std::sqrt(n2) + v_max_norm);
}

Summary summarize(std::span<const double> values) {
  std::vector<double> v;
  v.reserve(values.size());
  for (double x : values)
    if (!std::isnan(x)) v.push_back(x);
  Summary s;
  s.count = static_cast<std::int64_t>(v.size());
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  s.min = v.front();
  s.max = v.back();
  auto q = [&](double p) {
    const double pos = p * static_cast<double>(v.size() - 1);
    const std::size_t lo = static_cast<std::size_t>(std::floor(pos));
    const std::size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
  };
  s.p50 = q(0.5);
  s.p90 = q(0.9);
  s.p99 = q(0.99);
  return s;
}

}  // namespace ncsparse
