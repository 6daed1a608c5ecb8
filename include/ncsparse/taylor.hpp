// The one-pass streaming Taylor sketch of PAPERS.md §3 (window `taylor:q`).
//
// φ collects, for every degree j = 0..q, the C(d+j−1, j) distinct monomials x^α (|α| = j) of x
// with weights √(s^j / α!), α! = ∏_c α_c!, so that
//     φ(x)·φ(y) = Σ_{j≤q} (s·x·y)^j / j!,
// the degree-q Taylor polynomial of exp(s·x·y) (the multinomial theorem: (x·y)^j = Σ_{|α|=j}
// j!/α! · x^α y^α). One pass over the keys accumulates S = Σ_i φ(k_i) v_iᵀ (t × d) and
// z = Σ_i φ(k_i) (t); partial sums of shards add. The output of a query q is
//     ô = φ(q)ᵀ S / φ(q)ᵀ z.
// Memory is O(t·d), independent of n. For even q the truncated series is positive for every
// argument; the denominator can still be tiny relative to its terms, which the sketch reports.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace ncsparse {

// The truncated series Σ_{j≤q} x^j / j! (the kernel the sketch computes: T_q(s·x·y)).
double taylor_series(double x, int q);

class TaylorFeatures {
 public:
  // Throws a usage Error when q is not even and ≥ 2, or d < 1.
  TaylorFeatures(std::int64_t d, int q, double scale);

  // t = Σ_{j≤q} C(d+j−1, j); saturates at INT64_MAX instead of overflowing.
  static std::int64_t count(std::int64_t d, int q);

  std::int64_t size() const { return static_cast<std::int64_t>(weight_.size()); }
  std::int64_t d() const { return d_; }
  int degree() const { return q_; }

  // φ(x) into out (size() doubles).
  void map(std::span<const float> x, std::span<double> out) const;
  // The unweighted monomials x^α (φ(x)_f = weight(f)·x^α), in the same order.
  void monomials(std::span<const float> x, std::span<double> out) const;
  const std::vector<double>& weights() const { return weight_; }

 private:
  std::int64_t d_;
  int q_;
  std::vector<double> weight_;  // √(s^j / α!) per feature, in the order map() writes them
  // The features of degree j ≥ 1 come in runs: the children of one degree-(j−1) feature p are
  // p's monomial times x[c] for c = first..d−1, stored contiguously. map() is one vector
  // multiply per run, with the rounding of the left-to-right product over the sequence.
  struct Run {
    std::int64_t parent;
    std::int32_t first;
  };
  std::vector<Run> runs_;
};

// The sketch of one shard (or, after a sum over shards, of all): t rows of d + 1 doubles,
// row f = (S_f, z_f)/weight(f) with S = Σ φ(k)vᵀ and z = Σ φ(k): the sums of the unweighted
// monomials (the weight of a feature factors out of the sum over keys; output() applies it).
class TaylorSketch {
 public:
  explicit TaylorSketch(const TaylorFeatures& features);
  // Adds rows [0, count) of K and V (count × d, row-major).
  void add(std::span<const float> k, std::span<const float> v, std::int64_t count);
  // The flat state (t·(d + 1) doubles): what a sum-reduction over ranks adds.
  std::span<double> state() { return state_; }
  std::span<const double> state() const { return state_; }

  // ô for one query row; returns the denominator φ(q)ᵀz = Σ_j T_q(s·q·k_j) and sets
  // `cancellation` to |φ(q)ᵀz| / Σ_f |φ(q)_f z_f| (1 when no term cancels, near 0 when the sum
  // is mostly lost to rounding) and `last_share` to |D_q| / |φ(q)ᵀz|, the share of the degree-q
  // terms D_q = Σ_j (s·q·k_j)^q / q! (near 0 when the series has converged at the row's
  // scores, of order 1 when it has not).
  double output(std::span<const float> q, std::span<double> out, double* cancellation,
                double* last_share = nullptr) const;

  const TaylorFeatures& features() const { return features_; }

 private:
  const TaylorFeatures& features_;
  std::vector<double> state_;
  mutable std::vector<double> phi_;
};

}  // namespace ncsparse
