// features:E,KIND — attention with QR, KR and V (PAPERS.md §4): R a d × E projection, random
// from the seed (gaussian, sparse) or from the Gram matrix of all keys (gram: one all-reduce of
// d × d). Outputs by a projected dense pass over the keys and a log-sum-exp merge.
#include <cmath>

#include "engine/approx.hpp"
#include "ncsparse/engine.hpp"
#include "ncsparse/error.hpp"
#include "ncsparse/features.hpp"
#include "ncsparse/flash.hpp"
#include "ncsparse/report.hpp"
#include "strategies/builtin.hpp"

namespace ncsparse {
namespace {

class FeaturesApprox final : public approx::Approximator {
 public:
  FeaturesApprox(ProjectionKind kind, std::int64_t e, const approx::Context& c)
      : kind_(kind), e_wanted_(e), d_(c.d), scale_(c.scale), kernels_(c.kernels) {
    if (kind_ == ProjectionKind::Gram) {
      gram_.assign(static_cast<std::size_t>(d_ * d_), 0.0);
    } else {
      set_projection(FeatureProjection::random(kind_, d_, e_wanted_, c.seed));
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
    set_projection(FeatureProjection::gram(gram_, d_, 1e-12, e_wanted_));
    gram_ = {};
  }

  void outputs(const Comm& comm, approx::KeyTiles& tiles, const approx::Queries& q, bool causal,
               std::span<double> out) override {
    rows_ = q.rows;
    qp_.resize(static_cast<std::size_t>(q.rows * e_));
    kernels_.project(q.q, r_.data(), q.rows, e_, d_, qp_.data());
    const std::size_t frow = flash_row_size(static_cast<std::size_t>(d_));
    state_.resize(static_cast<std::size_t>(q.rows) * frow);
    for (std::int64_t i = 0; i < q.rows; ++i) flash_clear({state_.data() + i * frow, frow});
    collective(comm, [&] {
      approx::dense_flash(kernels_, tiles, approx::Queries{qp_.data(), q.rows, e_, q.pos}, r_.data(), d_, scale_,
                          causal, state_);
    });
    comm.allreduce_flash(state_, d_);
    for (std::int64_t i = 0; i < q.rows; ++i) {
      flash_output({state_.data() + i * frow, frow},
                   out.subspan(static_cast<std::size_t>(i * d_), static_cast<std::size_t>(d_)));
    }
  }

  void tile_begin(const float* k, std::int64_t rows) override {
    kp_.resize(static_cast<std::size_t>(rows * e_));
    kernels_.project(k, r_.data(), rows, e_, d_, kp_.data());
    tile_rows_ = rows;
    sc_.resize(static_cast<std::size_t>(rows_ * rows));
    kernels_.scores(qp_.data(), kp_.data(), rows_, rows, e_, sc_.data());
  }

  void row_weights(std::int64_t row, std::int64_t, const double*, std::int64_t count, double* p_hat) override {
    const std::size_t frow = flash_row_size(static_cast<std::size_t>(d_));
    const double m = state_[static_cast<std::size_t>(row) * frow], l = state_[static_cast<std::size_t>(row) * frow + 1];
    const float* sr = sc_.data() + row * tile_rows_;
    for (std::int64_t j = 0; j < count; ++j) p_hat[j] = l > 0 ? std::exp(scale_ * double(sr[j]) - m) / l : 0.0;
  }

  void columns(StrategyResult& r) const override {
    r.features = static_cast<double>(e_);
    r.state_bytes = static_cast<double>(r_.size()) * sizeof(float);
  }

 private:
  void set_projection(const FeatureProjection& p) {
    e_ = p.e();
    r_.assign(p.matrix().begin(), p.matrix().end());
  }

  ProjectionKind kind_;
  std::int64_t e_wanted_, d_, e_ = 0;
  double scale_;
  DenseKernels& kernels_;
  std::vector<double> gram_;
  std::vector<float> r_;        // d × e
  std::vector<float> qp_;       // the block's projected queries, rows × e
  std::vector<double> state_;   // their merged flash states
  std::vector<float> kp_, sc_;  // the current tile's projected keys and projected scores
  std::int64_t rows_ = 0, tile_rows_ = 0;
};

class FeaturesWindow final : public ApproxStrategy {
 public:
  FeaturesWindow(const SpecArgs& a, double e, ProjectionKind kind)
      : ApproxStrategy(a.name(), a.spec(), {e}), kind_(kind) {}

  ProjectionKind projection() const { return kind_; }
  std::int64_t e() const { return static_cast<std::int64_t>(value(0)); }

  void validate(const JobConfig& job, double) const override {
    const std::int64_t d = job.model.d;
    if (e() > d) {
      throw usage_error("--window " + text() + ": E = " + std::to_string(e()) + " is larger than d = " +
                        std::to_string(d) + " (E is the reduced feature dimension: use 1 <= E <= d)");
    }
    if (kind_ == ProjectionKind::Gram && d > 16384) {
      throw usage_error("--window " + text() + ": the gram kind solves a d x d eigenproblem; d = " + std::to_string(d) +
                        " is beyond the supported 16384 (use gaussian or sparse)");
    }
  }

  double state_bytes(std::int64_t d, std::int64_t block) const override {
    const double e = value(0), dd = static_cast<double>(d), b = static_cast<double>(block);
    return dd * e * 4 + b * e * 4 + b * (dd + 3) * 8 + (kind_ == ProjectionKind::Gram ? dd * dd * 8 * 3 : 0);
  }

  std::unique_ptr<approx::Approximator> start(const approx::Context& c) const override {
    return std::make_unique<FeaturesApprox>(kind_, e(), c);
  }

  std::string summary_line(const StrategyResult& s) const override {
    return "e = " + format_number(s.features, "%.0f") +
           " features; ||D(Y)^-1 exp(YY^T) - D(X)^-1 exp(XX^T)||_inf over the " + std::to_string(s.attn_linf.count) +
           " rows = " + format_number(s.attn_linf.max) + " (max attention-row linf)";
  }

 private:
  ProjectionKind kind_;
};

}  // namespace

StrategyKind features_strategy() {
  return {"features",
          "features:E,KIND",
          "attention with QR, KR and V; R is d x E, KIND gaussian, sparse or gram",
          [](const SpecArgs& a) -> std::shared_ptr<const Strategy> {
            a.need(2);
            const double e = a.number(0, "E");
            if (e < 1 || e != std::floor(e)) a.fail("E (the reduced feature dimension) must be a whole number >= 1");
            const ProjectionKind kind = parse_projection_kind(a.arg(1), a.flag() + ": '" + a.spec() + "'");
            return std::make_shared<FeaturesWindow>(a, e, kind);
          },
          {},
          {}};
}

}  // namespace ncsparse
