#include "engine/approx.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "ncsparse/error.hpp"
#include "ncsparse/flash.hpp"

namespace ncsparse::approx {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaNd = std::numeric_limits<double>::quiet_NaN();

// A row whose denominator φ(q)ᵀz kept less than this share of its terms' magnitude has lost
// more than half of double precision's digits to cancellation: its output is not reported.
constexpr double kLostCancellation = 1e-8;
// A row whose degree-q terms carry more than this share of the denominator is evaluated where
// the truncated series has not converged: reported (counted and warned), output kept.
constexpr double kUnconvergedShare = 0.1;

// Keys of a tile [first, first + count) that the query at `pos` sees.
std::int64_t visible_in_tile(std::int64_t first, std::int64_t count, std::int64_t pos, bool causal) {
  if (!causal) return count;
  return std::clamp<std::int64_t>(pos + 1 - first, 0, count);
}

// c (rows × cols) = a (rows × inner) · bᵀ (b: cols × inner), floats.
void gemm_nt(const float* a, const float* b, std::int64_t rows, std::int64_t cols, std::int64_t inner, float* c) {
  if (rows == 0 || cols == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(rows), int(cols), int(inner), 1.0f, a, int(inner), b,
              int(inner), 0.0f, c, int(cols));
}

// c (rows × cols) = a (rows × inner) · b (inner × cols), floats.
void gemm_nn(const float* a, const float* b, std::int64_t rows, std::int64_t cols, std::int64_t inner, float* c) {
  if (rows == 0 || cols == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(cols), int(inner), 1.0f, a, int(inner), b,
              int(cols), 0.0f, c, int(cols));
}

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

// The sketch of `taylor:q`: S = Σ φ(k)vᵀ and z = Σ φ(k) over the shard, summed over ranks.
class TaylorApprox final : public Approximator {
 public:
  TaylorApprox(const WindowSpec& spec, std::int64_t d, double scale)
      : Approximator(spec),
        q_(static_cast<int>(spec.a)),
        phi_(std::make_unique<TaylorFeatures>(d, q_, scale)),
        sketch_(std::make_unique<TaylorSketch>(*phi_)) {
    features_ = phi_->size();
    state_bytes_ = static_cast<double>(sketch_->state().size()) * sizeof(double);
  }

  void add_keys(std::int64_t, std::int64_t rows, const float* k, const float* v) override {
    const std::size_t size = static_cast<std::size_t>(rows * phi_->d());
    sketch_->add({k, size}, {v, size}, rows);
  }

  void reduce(const Comm& comm) override {
    // In pieces: one MPI count is an int.
    const std::span<double> state = sketch_->state();
    constexpr std::size_t kPiece = std::size_t(1) << 26;
    for (std::size_t i = 0; i < state.size(); i += kPiece) comm.allreduce_sum(state.subspan(i, std::min(kPiece, state.size() - i)));
  }

  void outputs(const Comm&, KeyTiles&, const Queries& q, bool, std::span<double> out) override {
    const std::int64_t d = phi_->d();
    den_.assign(static_cast<std::size_t>(q.rows), kNaNd);
    for (std::int64_t i = 0; i < q.rows; ++i) {
      const std::span<double> o = out.subspan(static_cast<std::size_t>(i * d), static_cast<std::size_t>(d));
      double cancellation = 0, last_share = 0;
      const double den = sketch_->output({q.q + i * q.dq, static_cast<std::size_t>(d)}, o, &cancellation, &last_share);
      min_cancellation_ = std::min(min_cancellation_, cancellation);
      if (!(den > 0) || !(cancellation >= kLostCancellation) || !std::isfinite(den)) {
        ++lost_rows_;
        std::fill(o.begin(), o.end(), kNaNd);
        continue;
      }
      max_last_share_ = std::max(max_last_share_, last_share);
      if (last_share > kUnconvergedShare) ++unconverged_rows_;
      den_[static_cast<std::size_t>(i)] = den;
    }
  }

  void row_weights(std::int64_t row, std::int64_t, const double* s, std::int64_t count, double* p_hat) override {
    const double inv = 1.0 / den_[static_cast<std::size_t>(row)];  // NaN for a lost row
    for (std::int64_t j = 0; j < count; ++j) p_hat[j] = taylor_series(s[j], q_) * inv;
  }

  std::vector<std::string> warnings(std::int64_t rows) const override {
    std::vector<std::string> out;
    auto line = [&](std::int64_t count, const std::string& what) {
      out.push_back(spec_.text + ": in " + std::to_string(count) + " of " + std::to_string(rows) + " rows " + what);
    };
    char num[32];
    if (unconverged_rows_ > 0) {
      std::snprintf(num, sizeof num, "%.2g", max_last_share_);
      line(unconverged_rows_, "the degree-" + std::to_string(q_) + " terms carry more than 10% of the denominator (up to " +
                                  num + "): the series has not converged at these scores and their outputs are poor "
                                  "(lower the score range, e.g. --scale or the input bound, or use a larger q)");
    }
    if (lost_rows_ > 0) {
      std::snprintf(num, sizeof num, "%.2g", min_cancellation_);
      line(lost_rows_, std::string("the denominator phi(q).z was lost (overflow, or cancellation: smallest "
                                   "|sum|/sum|terms| ") + num +
                           "); their outputs are NaN and left out of the statistics (lower the score range)");
    }
    return out;
  }

 private:
  int q_;
  std::unique_ptr<TaylorFeatures> phi_;
  std::unique_ptr<TaylorSketch> sketch_;
  std::vector<double> den_;  // φ(q)ᵀz of the current block's rows (NaN: lost)
};

// `features:e,KIND`: attention with QR, KR and V; R random from the seed, or from the Gram
// matrix of all keys (one all-reduce of d × d).
class FeaturesApprox final : public Approximator {
 public:
  FeaturesApprox(const WindowSpec& spec, std::int64_t d, double scale, std::uint64_t seed)
      : Approximator(spec), kind_(static_cast<ProjectionKind>(static_cast<int>(spec.b))), d_(d), scale_(scale) {
    const std::int64_t e = static_cast<std::int64_t>(spec.a);
    if (kind_ == ProjectionKind::Gram) {
      gram_.assign(static_cast<std::size_t>(d * d), 0.0);
    } else {
      set_projection(FeatureProjection::random(kind_, d, e, seed));
    }
  }

  void add_keys(std::int64_t, std::int64_t rows, const float* k, const float*) override {
    if (kind_ == ProjectionKind::Gram) add_gram({k, static_cast<std::size_t>(rows * d_)}, rows, d_, gram_);
  }

  void reduce(const Comm& comm) override {
    if (kind_ == ProjectionKind::Gram) comm.allreduce_sum(gram_);
  }

  void finish() override {
    if (kind_ != ProjectionKind::Gram) return;
    set_projection(FeatureProjection::gram(gram_, d_, 1e-12, static_cast<std::int64_t>(spec_.a)));
    gram_ = {};
  }

  void outputs(const Comm& comm, KeyTiles& tiles, const Queries& q, bool causal, std::span<double> out) override {
    rows_ = q.rows;
    qp_.resize(static_cast<std::size_t>(q.rows * e_));
    gemm_nn(q.q, r_.data(), q.rows, e_, d_, qp_.data());
    const std::size_t frow = flash_row_size(static_cast<std::size_t>(d_));
    state_.resize(static_cast<std::size_t>(q.rows) * frow);
    for (std::int64_t i = 0; i < q.rows; ++i) flash_clear({state_.data() + i * frow, frow});
    collective(comm, [&] { dense_flash(tiles, Queries{qp_.data(), q.rows, e_, q.pos}, r_.data(), d_, scale_, causal, state_); });
    comm.allreduce_flash(state_, d_);
    for (std::int64_t i = 0; i < q.rows; ++i) {
      flash_output({state_.data() + i * frow, frow}, out.subspan(static_cast<std::size_t>(i * d_), static_cast<std::size_t>(d_)));
    }
  }

  void tile_begin(const float* k, std::int64_t rows) override {
    kp_.resize(static_cast<std::size_t>(rows * e_));
    gemm_nn(k, r_.data(), rows, e_, d_, kp_.data());
    tile_rows_ = rows;
    sc_.resize(static_cast<std::size_t>(rows_ * rows));
    gemm_nt(qp_.data(), kp_.data(), rows_, rows, e_, sc_.data());
  }

  void row_weights(std::int64_t row, std::int64_t, const double* s, std::int64_t count, double* p_hat) override {
    (void)s;
    const std::size_t frow = flash_row_size(static_cast<std::size_t>(d_));
    const double m = state_[static_cast<std::size_t>(row) * frow], l = state_[static_cast<std::size_t>(row) * frow + 1];
    const float* sr = sc_.data() + row * tile_rows_;
    for (std::int64_t j = 0; j < count; ++j) p_hat[j] = l > 0 ? std::exp(scale_ * double(sr[j]) - m) / l : 0.0;
  }

 private:
  void set_projection(const FeatureProjection& p) {
    e_ = p.e();
    features_ = e_;
    r_.assign(p.matrix().begin(), p.matrix().end());
    state_bytes_ = static_cast<double>(r_.size()) * sizeof(float);
  }

  ProjectionKind kind_;
  std::int64_t d_, e_ = 0;
  double scale_;
  std::vector<double> gram_;
  std::vector<float> r_;     // d × e
  std::vector<float> qp_;    // the block's projected queries, rows × e
  std::vector<double> state_;  // their merged flash states
  std::vector<float> kp_, sc_;  // the current tile's projected keys and projected scores
  std::int64_t rows_ = 0, tile_rows_ = 0;
};

}  // namespace

KeyTiles::KeyTiles(const float* k, const float* v, std::int64_t lo, std::int64_t count, std::int64_t d,
                   std::int64_t tile)
    : k_(k), v_(v), lo_(lo), count_(count), d_(d), tile_(std::max<std::int64_t>(tile, 1)) {}

KeyTiles::KeyTiles(InputSource* source, std::int64_t lo, std::int64_t count, std::int64_t d, std::int64_t tile)
    : source_(source), lo_(lo), count_(count), d_(d), tile_(std::max<std::int64_t>(tile, 1)) {
  const std::size_t size = static_cast<std::size_t>(std::min(tile_, std::max<std::int64_t>(count, 1)) * d);
  kbuf_.resize(size);
  vbuf_.resize(size);
}

void dense_flash(KeyTiles& tiles, const Queries& q, const float* proj, std::int64_t d, double scale, bool causal,
                 std::span<double> states) {
  const std::size_t frow = flash_row_size(static_cast<std::size_t>(d));
  NCSPARSE_ASSERT(states.size() == static_cast<std::size_t>(q.rows) * frow);
  std::vector<float> kp, sc;
  std::vector<double> w, vd, alpha(static_cast<std::size_t>(q.rows));
  tiles.for_each([&](std::int64_t first, std::int64_t count, const float* k, const float* v) {
    const float* keys = k;
    if (proj != nullptr) {
      kp.resize(static_cast<std::size_t>(count * q.dq));
      gemm_nn(k, proj, count, q.dq, d, kp.data());
      keys = kp.data();
    }
    sc.resize(static_cast<std::size_t>(q.rows * count));
    gemm_nt(q.q, keys, q.rows, count, q.dq, sc.data());
    w.assign(static_cast<std::size_t>(q.rows * count), 0.0);
    vd.assign(v, v + count * d);
    for (std::int64_t i = 0; i < q.rows; ++i) {
      alpha[static_cast<std::size_t>(i)] = 1;
      const std::int64_t vis = visible_in_tile(first, count, q.pos[i], causal);
      if (vis == 0) continue;
      const float* si = sc.data() + i * count;
      double* wi = w.data() + i * count;
      double tile_max = -kInf;
      for (std::int64_t j = 0; j < vis; ++j) tile_max = std::max(tile_max, scale * double(si[j]));
      double* st = states.data() + static_cast<std::size_t>(i) * frow;
      const double m_new = std::max(st[0], tile_max);
      const double a = std::exp(st[0] - m_new);  // 0 while the row was empty (m = −∞)
      double sum = 0, sum2 = 0;
      for (std::int64_t j = 0; j < vis; ++j) {
        const double e = std::exp(scale * double(si[j]) - m_new);
        wi[j] = e;
        sum += e;
        sum2 += e * e;
      }
      st[0] = m_new;
      st[1] = st[1] * a + sum;
      st[2] = st[2] * a * a + sum2;
      alpha[static_cast<std::size_t>(i)] = a;
      for (std::int64_t c = 0; c < d; ++c) st[kFlashHeader + c] *= a;
    }
    if (q.rows > 0 && count > 0) {
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(q.rows), int(d), int(count), 1.0, w.data(), int(count),
                  vd.data(), int(d), 1.0, states.data() + kFlashHeader, int(frow));
    }
  });
}

double state_bytes(const WindowSpec& w, std::int64_t d, std::int64_t block) {
  if (w.kind == WindowKind::Taylor) {
    const double t = static_cast<double>(TaylorFeatures::count(d, static_cast<int>(w.a)));
    // S and z, the weights, the parent/coordinate tables, and the blocks of φ(k) that
    // TaylorSketch::add builds (32 keys).
    return t * static_cast<double>(d + 1) * 8 + t * (8 * 34 + 12);
  }
  if (w.kind == WindowKind::Features) {
    const double e = w.a, dd = static_cast<double>(d), b = static_cast<double>(block);
    return dd * e * 4 + b * e * 4 + b * (dd + 3) * 8 + (w.b == static_cast<double>(ProjectionKind::Gram) ? dd * dd * 8 * 3 : 0);
  }
  return 0;
}

void validate(const WindowSpec& w, std::int64_t d, double memory_bytes) {
  if (w.kind == WindowKind::Features) {
    if (w.a > static_cast<double>(d)) {
      throw usage_error("--window " + w.text + ": E = " + std::to_string(static_cast<std::int64_t>(w.a)) +
                        " is larger than d = " + std::to_string(d) +
                        " (E is the reduced feature dimension: use 1 <= E <= d)");
    }
    if (w.b == static_cast<double>(ProjectionKind::Gram) && d > 16384) {
      throw usage_error("--window " + w.text + ": the gram kind solves a d x d eigenproblem; d = " + std::to_string(d) +
                        " is beyond the supported 16384 (use gaussian or sparse)");
    }
  }
  if (w.kind == WindowKind::Taylor) {
    const int q = static_cast<int>(w.a);
    const std::int64_t t = TaylorFeatures::count(d, q);
    const double bytes = state_bytes(w, d, 1);
    if (t > (std::int64_t(1) << 31) || bytes > 0.5 * memory_bytes) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.3g", static_cast<double>(t));
      throw usage_error("--window " + w.text + ": at d = " + std::to_string(d) + " the sketch needs t = C(d+q, q) = " +
                        buf + " features, about " + gib(bytes) + " per rank, more than half of this machine's " +
                        gib(memory_bytes) + " (use a smaller q or d)");
    }
  }
}

std::unique_ptr<Approximator> make(const WindowSpec& w, std::int64_t d, double scale, std::uint64_t seed) {
  if (w.kind == WindowKind::Taylor) return std::make_unique<TaylorApprox>(w, d, scale);
  NCSPARSE_ASSERT(w.kind == WindowKind::Features);
  return std::make_unique<FeaturesApprox>(w, d, scale, seed);
}

void row_errors(KeyTiles& tiles, const Queries& q, std::int64_t d, double scale, bool causal,
                std::span<const double> exact, std::span<Approximator* const> approximators, std::span<double> err) {
  const std::size_t frow = flash_row_size(static_cast<std::size_t>(d));
  const std::size_t A = approximators.size(), rows = static_cast<std::size_t>(q.rows);
  NCSPARSE_ASSERT(err.size() == A * rows * 3 && exact.size() == rows * frow && q.dq == d);
  std::vector<float> sc;
  std::vector<double> s, p, p_hat;
  tiles.for_each([&](std::int64_t first, std::int64_t count, const float* k, const float*) {
    sc.resize(rows * static_cast<std::size_t>(count));
    gemm_nt(q.q, k, q.rows, count, d, sc.data());
    for (Approximator* a : approximators) a->tile_begin(k, count);
    s.resize(static_cast<std::size_t>(count));
    p.resize(s.size());
    p_hat.resize(s.size());
    for (std::int64_t i = 0; i < q.rows; ++i) {
      const std::int64_t vis = visible_in_tile(first, count, q.pos[i], causal);
      const double m = exact[static_cast<std::size_t>(i) * frow], l = exact[static_cast<std::size_t>(i) * frow + 1];
      if (vis == 0 || !(l > 0)) continue;
      for (std::int64_t j = 0; j < vis; ++j) {
        s[j] = scale * double(sc[static_cast<std::size_t>(i * count + j)]);
        p[j] = std::exp(s[j] - m) / l;
      }
      for (std::size_t ai = 0; ai < A; ++ai) {
        approximators[ai]->row_weights(i, first, s.data(), vis, p_hat.data());
        double* e = err.data() + (ai * rows + static_cast<std::size_t>(i)) * 3;
        double l1 = 0, l2 = 0, linf = e[2];
        for (std::int64_t j = 0; j < vis; ++j) {
          const double diff = std::abs(p_hat[j] - p[j]);
          l1 += diff;
          l2 += diff * diff;
          linf = std::max(linf, diff);
        }
        e[0] += l1;
        e[1] += l2;
        e[2] = std::isnan(l1) ? kNaNd : linf;
      }
    }
  });
}

}  // namespace ncsparse::approx
