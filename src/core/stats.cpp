#include "ncsparse/stats.hpp"

#include <algorithm>
#include <cmath>

#include "ncsparse/error.hpp"

namespace ncsparse {

KeptSet prefix_kept_set(std::span<const Candidate> list, std::int64_t k, double m, double l,
                        std::int64_t n_visible) {
  NCSPARSE_ASSERT(k >= 0 && static_cast<std::size_t>(k) <= list.size());
  KeptSet s;
  for (std::int64_t j = 0; j < k; ++j) {
    const double p = std::exp(static_cast<double>(list[j].score) - m) / l;
    s.mass += p;
    s.sum_sq += p * p;
    s.p_max = std::max(s.p_max, p);
  }
  if (k < n_visible) {
    // The list holds at least k + 1 entries whenever k < n_visible (K + 1 are kept).
    NCSPARSE_ASSERT(static_cast<std::size_t>(k) < list.size());
    s.p_dropped = std::exp(static_cast<double>(list[k].score) - m) / l;
  }
  return s;
}

void fill_errors(const KeptSet& kept, double sum_sq_all, std::span<const double> o_sparse,
                 std::span<const double> o_exact, RowStats& st) {
  const double M = kept.mass;
  st.kept_mass = M;
  st.attn_l1 = 2.0 * std::max(0.0, 1.0 - M);
  if (M > 0) {
    const double f = 1.0 / M - 1.0;
    const double l2sq = f * f * kept.sum_sq + std::max(0.0, sum_sq_all - kept.sum_sq);
    st.attn_l2 = std::sqrt(l2sq);
    st.attn_linf = std::max(kept.p_max * std::max(0.0, f), kept.p_dropped);
  } else {
    st.attn_l2 = std::sqrt(sum_sq_all);
    st.attn_linf = kept.p_dropped;
  }
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
  for (double x : values) if (!std::isnan(x)) v.push_back(x);
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
