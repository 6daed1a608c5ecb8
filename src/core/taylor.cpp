#include "ncsparse/taylor.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "ncsparse/error.hpp"

namespace ncsparse {
namespace {

// Visits the non-decreasing index sequences c_1 ≤ … ≤ c_left (the monomials of one degree) in
// lexicographic order, calling leaf(product of x over the sequence, α!) for each.
template <class Leaf>
void visit(int left, std::int64_t start, std::int64_t last, int run, double prod, double alpha_fact,
           const float* x, std::int64_t d, Leaf& leaf) {
  if (left == 0) {
    leaf(prod, alpha_fact);
    return;
  }
  for (std::int64_t c = start; c < d; ++c) {
    const int r = c == last ? run + 1 : 1;
    visit(left - 1, c, c, r, x != nullptr ? prod * double(x[c]) : prod, alpha_fact * r, x, d, leaf);
  }
}

}  // namespace

double taylor_series(double x, int q) {
  double term = 1, sum = 1;
  for (int j = 1; j <= q; ++j) {
    term *= x / j;
    sum += term;
  }
  return sum;
}

std::int64_t TaylorFeatures::count(std::int64_t d, int q) {
  unsigned __int128 total = 0, c = 1;  // C(d + j − 1, j), from C(d + j − 2, j − 1)
  const unsigned __int128 cap = static_cast<unsigned __int128>(std::numeric_limits<std::int64_t>::max());
  for (int j = 0; j <= q; ++j) {
    if (j > 0) {
      c = c * static_cast<unsigned __int128>(d + j - 1) / static_cast<unsigned __int128>(j);  // exact: C·(n)/j
      if (c > cap) return std::numeric_limits<std::int64_t>::max();
    }
    total += c;
    if (total > cap) return std::numeric_limits<std::int64_t>::max();
  }
  return static_cast<std::int64_t>(total);
}

TaylorFeatures::TaylorFeatures(std::int64_t d, int q, double scale) : d_(d), q_(q) {
  if (d < 1) throw usage_error("Taylor features: d must be >= 1, got " + std::to_string(d));
  if (q < 1 || q > 64) throw usage_error("Taylor features: the degree q must lie in [1, 64], got " + std::to_string(q));
  if (!(scale > 0) || !std::isfinite(scale)) {
    throw usage_error("Taylor features: the score scale must be positive, got " + std::to_string(scale));
  }
  const std::int64_t t = count(d, q);
  if (t > (std::int64_t(1) << 31)) {
    throw usage_error("taylor:" + std::to_string(q) + " at d = " + std::to_string(d) + " needs " + std::to_string(t) +
                      " features (more than 2^31); use a smaller q or d");
  }
  weight_.reserve(static_cast<std::size_t>(t));
  for (int j = 0; j <= q; ++j) {
    const double sj = std::pow(scale, j);
    auto leaf = [&](double, double alpha_fact) { weight_.push_back(std::sqrt(sj / alpha_fact)); };
    visit(j, 0, -1, 0, 1.0, 1.0, nullptr, d, leaf);
  }
  NCSPARSE_ASSERT(static_cast<std::int64_t>(weight_.size()) == t);
  // Degree j's sequences in lexicographic order are the degree j−1 ones, in order, each
  // extended by every c ≥ its last index: the order visit() produces.
  std::vector<std::int32_t> last(static_cast<std::size_t>(t), 0);  // last index of each sequence
  std::int64_t prev_begin = 0, prev_end = 1, pos = 1;             // degree 0: the empty sequence
  for (int j = 1; j <= q; ++j) {
    for (std::int64_t p = prev_begin; p < prev_end; ++p) {
      const std::int32_t first = j == 1 ? 0 : last[p];
      runs_.push_back({p, first});
      for (std::int64_t c = first; c < d; ++c) last[pos++] = static_cast<std::int32_t>(c);
    }
    prev_begin = prev_end;
    prev_end = pos;
  }
  NCSPARSE_ASSERT(pos == t);
}

void TaylorFeatures::map(std::span<const float> x, std::span<double> out) const {
  monomials(x, out);
  for (std::size_t f = 0; f < weight_.size(); ++f) out[f] *= weight_[f];
}

void TaylorFeatures::monomials(std::span<const float> x, std::span<double> out) const {
  NCSPARSE_ASSERT(static_cast<std::int64_t>(x.size()) == d_ && out.size() == weight_.size());
  double xd[512];
  std::vector<double> xbig;
  double* xs = xd;
  if (d_ > 512) {
    xbig.resize(static_cast<std::size_t>(d_));
    xs = xbig.data();
  }
  for (std::int64_t c = 0; c < d_; ++c) xs[c] = x[c];
  double* o = out.data();
  o[0] = 1.0;  // the products x^α, parents before children
  std::size_t pos = 1;
  for (const Run& r : runs_) {
    const double base = o[r.parent];
    for (std::int64_t c = r.first; c < d_; ++c) o[pos++] = base * xs[c];
  }
}

TaylorSketch::TaylorSketch(const TaylorFeatures& features)
    : features_(features),
      state_(static_cast<std::size_t>(features.size() * (features.d() + 1)), 0.0),
      phi_(static_cast<std::size_t>(features.size())) {}

void TaylorSketch::add(std::span<const float> k, std::span<const float> v, std::int64_t count) {
  const std::int64_t t = features_.size(), d = features_.d();
  NCSPARSE_ASSERT(static_cast<std::int64_t>(k.size()) >= count * d && static_cast<std::int64_t>(v.size()) >= count * d);
  // Blocks of keys: the monomials M (rows × t) and (V | 1) (rows × (d + 1)) in double, then one
  // dgemm adds Mᵀ (V | 1) of the block. Blocks of 32 keys keep M in the L2 cache.
  constexpr std::int64_t kBlock = 32;
  const std::int64_t w = d + 1;
  std::vector<double> phi(static_cast<std::size_t>(kBlock * t)), vb(static_cast<std::size_t>(kBlock * w));
  for (std::int64_t i0 = 0; i0 < count; i0 += kBlock) {
    const std::int64_t rows = std::min(kBlock, count - i0);
    for (std::int64_t r = 0; r < rows; ++r) {
      features_.monomials(k.subspan(static_cast<std::size_t>((i0 + r) * d), static_cast<std::size_t>(d)),
                          {phi.data() + r * t, static_cast<std::size_t>(t)});
      for (std::int64_t c = 0; c < d; ++c) vb[r * w + c] = v[(i0 + r) * d + c];
      vb[r * w + d] = 1.0;
    }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(t), int(w), int(rows), 1.0, phi.data(), int(t), vb.data(),
                int(w), 1.0, state_.data(), int(w));
  }
}

double TaylorSketch::output(std::span<const float> q, std::span<double> out, double* cancellation,
                            double* last_share) const {
  const std::int64_t t = features_.size(), d = features_.d();
  features_.map(q, phi_);
  const std::int64_t w = d + 1;
  std::fill(out.begin(), out.end(), 0.0);
  double den = 0, den_abs = 0, last = 0;
  // map() writes the features degree by degree: the last C(d+q−1, q) are of degree q.
  const std::int64_t first_last = TaylorFeatures::count(d, features_.degree() - 1);
  const std::vector<double>& weight = features_.weights();
  for (std::int64_t f = 0; f < t; ++f) {
    const double p = phi_[f] * weight[f];  // φ(q)_f times the weight the state left out
    if (p == 0) continue;
    const double* row = state_.data() + f * w;
    const double zf = row[d];
    den += p * zf;
    if (f >= first_last) last += p * zf;
    den_abs += std::abs(p * zf);
    for (std::int64_t c = 0; c < d; ++c) out[c] += p * row[c];
  }
  if (cancellation != nullptr) *cancellation = den_abs > 0 ? std::abs(den) / den_abs : 0.0;
  if (last_share != nullptr) *last_share = den != 0 ? std::abs(last) / std::abs(den) : 1.0;
  if (den != 0) {
    for (double& o : out) o /= den;
  }
  return den;
}

}  // namespace ncsparse
