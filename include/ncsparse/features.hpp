// Feature-dimension sparsification of PAPERS.md §4 (window `features:e,KIND`): attend with
// QR and KR (V unchanged), R ∈ ℝ^{d×e}.
//   gaussian: R = S, i.i.d. N(0, 1/e) entries;
//   sparse:   R = S, each row holds s = min(4, e) non-zeros ±1/√s in distinct random columns
//             (a CountSketch/OSNAP-style embedding);
//   gram:     R = U_e, the eigenvectors of the d × d Gram matrix XᵀX (summed over the shards:
//             one all-reduce of d × d, independent of n) whose eigenvalues exceed the numerical
//             rank cut; then YYᵀ = X U_e U_eᵀ Xᵀ = XXᵀ, with e = rank(X) ≤ min(n, d).
// The random kinds draw every entry from (seed, row, column) with Philox, so R is the same on
// every rank and in every run with the same seed, and no rank needs another's keys.
#pragma once

#include <cstdint>
#include <climits>
#include <span>
#include <string>
#include <vector>

namespace ncsparse {

enum class ProjectionKind { Gaussian, Sparse, Gram };

// gaussian, sparse or gram; a usage Error "<where>: unknown KIND '<name>' (...)" for others.
ProjectionKind parse_projection_kind(const std::string& name, const std::string& where = "features");
std::string to_string(ProjectionKind kind);

class FeatureProjection {
 public:
  // A random projection (gaussian or sparse) of d features to e. Usage Error for e < 1 or e > d.
  static FeatureProjection random(ProjectionKind kind, std::int64_t d, std::int64_t e, std::uint64_t seed);
  // The gram projection from the d × d Gram matrix G = XᵀX (row-major, summed over all keys):
  // its eigenvectors with eigenvalue > rel_tol·λ_max, largest first, at most max_e of them;
  // e = their count (≥ 1: an all-zero G gives one zero feature). With max_e ≥ rank(X),
  // YYᵀ = XXᵀ; with fewer, YYᵀ is the best rank-max_e approximation.
  static FeatureProjection gram(std::span<const double> gram_matrix, std::int64_t d, double rel_tol = 1e-12,
                                std::int64_t max_e = INT64_MAX);

  std::int64_t d() const { return d_; }
  std::int64_t e() const { return e_; }
  ProjectionKind kind() const { return kind_; }
  const std::vector<double>& matrix() const { return r_; }  // d × e, row-major

  // Y = X R for `rows` rows of X (rows × d) into y (rows × e); double accumulation.
  void apply(std::span<const float> x, std::int64_t rows, std::span<double> y) const;

 private:
  ProjectionKind kind_ = ProjectionKind::Gaussian;
  std::int64_t d_ = 0, e_ = 0;
  std::vector<double> r_;
};

// Adds XᵀX of `rows` rows of X (rows × d) into g (d × d, row-major, double).
void add_gram(std::span<const float> x, std::int64_t rows, std::int64_t d, std::span<double> g);

}  // namespace ncsparse
