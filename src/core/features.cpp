#include "ncsparse/features.hpp"

#include <Random123/boxmuller.hpp>
#include <Random123/philox.h>
#include <Random123/uniform.hpp>
#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "ncsparse/error.hpp"

extern "C" void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
                        double* work, const int* lwork, int* iwork, const int* liwork, int* info);

namespace ncsparse {
namespace {

// Four random 32-bit words for (seed, row, block of four columns).
r123::Philox4x32::ctr_type draw(std::uint64_t seed, std::int64_t row, std::int64_t block) {
  using Rng = r123::Philox4x32;
  const Rng::key_type key = {{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}};
  const auto r = static_cast<std::uint64_t>(row);
  constexpr std::uint32_t kProjectionStream = 0x5e7c;  // apart from the generator's tensors
  const Rng::ctr_type ctr = {{kProjectionStream, static_cast<std::uint32_t>(r), static_cast<std::uint32_t>(r >> 32),
                              static_cast<std::uint32_t>(block)}};
  return Rng()(ctr, key);
}

}  // namespace

ProjectionKind parse_projection_kind(const std::string& name, const std::string& where) {
  if (name == "gaussian") return ProjectionKind::Gaussian;
  if (name == "sparse") return ProjectionKind::Sparse;
  if (name == "gram") return ProjectionKind::Gram;
  throw usage_error(where + ": unknown KIND '" + name + "' (use gaussian, sparse or gram)");
}

std::string to_string(ProjectionKind kind) {
  switch (kind) {
    case ProjectionKind::Gaussian: return "gaussian";
    case ProjectionKind::Sparse: return "sparse";
    case ProjectionKind::Gram: return "gram";
  }
  return "?";
}

FeatureProjection FeatureProjection::random(ProjectionKind kind, std::int64_t d, std::int64_t e, std::uint64_t seed) {
  if (e < 1 || e > d) {
    throw usage_error("features: e must lie in [1, d] = [1, " + std::to_string(d) + "], got " + std::to_string(e));
  }
  NCSPARSE_ASSERT(kind != ProjectionKind::Gram);
  FeatureProjection p;
  p.kind_ = kind;
  p.d_ = d;
  p.e_ = e;
  p.r_.assign(static_cast<std::size_t>(d * e), 0.0);
  if (kind == ProjectionKind::Gaussian) {
    const double sd = 1 / std::sqrt(double(e));
    for (std::int64_t i = 0; i < d; ++i) {
      for (std::int64_t c = 0; c < e; c += 4) {
        const auto r = draw(seed, i, c / 4);
        const r123::float2 a = r123::boxmuller(r[0], r[1]), b = r123::boxmuller(r[2], r[3]);
        const double v[4] = {a.x, a.y, b.x, b.y};
        for (std::int64_t k = 0; k < 4 && c + k < e; ++k) p.r_[i * e + c + k] = sd * v[k];
      }
    }
    return p;
  }
  // Sparse: s distinct columns per row (rejection of repeats, counter-based), signs ±1/√s.
  const std::int64_t s = std::min<std::int64_t>(4, e);
  const double w = 1 / std::sqrt(double(s));
  for (std::int64_t i = 0; i < d; ++i) {
    std::vector<std::int64_t> cols;
    for (std::int64_t block = 0; std::int64_t(cols.size()) < s; ++block) {
      const auto r = draw(seed, i, block);
      for (int k = 0; k < 4 && std::int64_t(cols.size()) < s; k += 2) {
        const std::int64_t col = static_cast<std::int64_t>(r[k] % static_cast<std::uint32_t>(e));
        if (std::find(cols.begin(), cols.end(), col) != cols.end()) continue;
        cols.push_back(col);
        p.r_[i * e + col] = (r[k + 1] & 1u) ? w : -w;
      }
    }
  }
  return p;
}

FeatureProjection FeatureProjection::gram(std::span<const double> gram_matrix, std::int64_t d, double rel_tol,
                                          std::int64_t max_e) {
  NCSPARSE_ASSERT(static_cast<std::int64_t>(gram_matrix.size()) == d * d);
  if (d > 46340) throw usage_error("features:gram: d = " + std::to_string(d) + " is too large for a d x d eigensolver");
  std::vector<double> a(gram_matrix.begin(), gram_matrix.end()), lambda(static_cast<std::size_t>(d));
  const int n = static_cast<int>(d);
  int info = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0;
  // Row-major symmetric = column-major symmetric: eigenvectors land in the columns (column-major).
  dsyevd_("V", "U", &n, a.data(), &n, lambda.data(), &work_query, &lwork, &iwork_query, &liwork, &info);
  lwork = static_cast<int>(work_query);
  liwork = iwork_query;
  std::vector<double> work(static_cast<std::size_t>(std::max(lwork, 1)));
  std::vector<int> iwork(static_cast<std::size_t>(std::max(liwork, 1)));
  dsyevd_("V", "U", &n, a.data(), &n, lambda.data(), work.data(), &lwork, iwork.data(), &liwork, &info);
  if (info != 0) throw Error(kExitInternal, "features:gram: the eigensolver (LAPACK dsyevd) failed, info " + std::to_string(info));
  const double top = lambda.back();  // ascending order
  FeatureProjection p;
  p.kind_ = ProjectionKind::Gram;
  p.d_ = d;
  std::vector<std::int64_t> keep;
  for (std::int64_t j = d - 1; j >= 0 && static_cast<std::int64_t>(keep.size()) < max_e; --j) {
    if (top > 0 && lambda[j] > rel_tol * top) keep.push_back(j);
  }
  p.e_ = static_cast<std::int64_t>(keep.size());
  p.r_.assign(static_cast<std::size_t>(d * std::max<std::int64_t>(p.e_, 1)), 0.0);
  for (std::int64_t c = 0; c < p.e_; ++c) {
    const std::int64_t j = keep[c];
    for (std::int64_t i = 0; i < d; ++i) p.r_[i * p.e_ + c] = a[j * d + i];  // column j of the column-major result
  }
  if (p.e_ == 0) p.e_ = 1;  // all-zero X: one zero feature, so that attention stays defined (uniform)
  return p;
}

void FeatureProjection::apply(std::span<const float> x, std::int64_t rows, std::span<double> y) const {
  NCSPARSE_ASSERT(static_cast<std::int64_t>(x.size()) >= rows * d_ && static_cast<std::int64_t>(y.size()) >= rows * e_);
  std::vector<double> xd(static_cast<std::size_t>(rows * d_));
  for (std::size_t i = 0; i < xd.size(); ++i) xd[i] = x[i];
  if (rows == 0) return;
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(e_), int(d_), 1.0, xd.data(), int(d_), r_.data(),
              int(e_), 0.0, y.data(), int(e_));
}

void add_gram(std::span<const float> x, std::int64_t rows, std::int64_t d, std::span<double> g) {
  NCSPARSE_ASSERT(static_cast<std::int64_t>(g.size()) == d * d);
  if (rows == 0) return;
  std::vector<double> xd(static_cast<std::size_t>(rows * d));
  for (std::size_t i = 0; i < xd.size(); ++i) xd[i] = x[i];
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, int(d), int(rows), 1.0, xd.data(), int(d), 1.0, g.data(), int(d));
  for (std::int64_t i = 0; i < d; ++i) {  // mirror the upper triangle
    for (std::int64_t j = 0; j < i; ++j) g[i * d + j] = g[j * d + i];
  }
}

}  // namespace ncsparse
