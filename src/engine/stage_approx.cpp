// The approximator stage (ApproxStrategy: taylor, features): before the first block, their pass
// over the keys (from the shard in memory or streamed from the source) and the reduction of
// their state over the ranks; per block, their outputs and, with the exact pass, their
// attention-row errors against the exact softmax (one more pass over the keys: ℓ1 and ℓ2² add
// over ranks, ℓ∞ takes the maximum).
#include <cmath>

#include "engine/job.hpp"
#include "ncsparse/stats.hpp"

namespace ncsparse::engine {
namespace {

class ApproxStage final : public Stage {
 public:
  ApproxStage(const JobConfig& config, std::vector<std::size_t> ids) : config_(config), ids_(std::move(ids)) {}

  double PhaseTimes::*phase() const override { return &PhaseTimes::approx; }

  void prepare(Job& job) override {
    const approx::Context context{job.d, job.scale, config_.model.seed, job.dense};
    collective(job.comm, [&] {
      for (std::size_t w : ids_) {
        approximators_.push_back(static_cast<const ApproxStrategy&>(*config_.windows[w]).start(context));
      }
      job.tiles.for_each([&](std::int64_t first, std::int64_t rows, const float* kt, const float* vt) {
        for (auto& a : approximators_) a->add_keys(first, rows, kt, vt);
        if (job.tiles.streamed()) job.v_max = std::max(job.v_max, max_row_norm(vt, rows, job.d));
      });
    });
    for (auto& a : approximators_) {
      a->reduce(job.merge);
      a->finish();
      ap_.push_back(a.get());
    }
  }

  void outputs(const Job& job, const Block& b) override {
    const std::size_t A = ap_.size(), ru = static_cast<std::size_t>(b.rows), du = static_cast<std::size_t>(job.d);
    const approx::Queries q{b.q, b.rows, job.d, b.pos};
    out_.assign(A * ru * du, 0.0);
    for (std::size_t a = 0; a < A; ++a) {
      ap_[a]->outputs(job.merge, job.tiles, q, config_.causal, {out_.data() + a * ru * du, ru * du});
    }
    if (!config_.exact) return;
    err_.assign(A * ru * 3, 0.0);
    collective(job.comm, [&] {
      approx::row_errors(job.dense, job.tiles, q, job.d, job.scale, config_.causal, b.flash, ap_, err_);
    });
    sums_.resize(A * ru * 2);
    max_.resize(A * ru);
    for (std::size_t x = 0; x < A * ru; ++x) {
      sums_[2 * x] = err_[3 * x];
      sums_[2 * x + 1] = err_[3 * x + 1];
      max_[x] = err_[3 * x + 2];
    }
    job.merge.allreduce_sum(sums_);
    job.comm.allreduce_max(max_);
    for (std::size_t x = 0; x < A * ru; ++x) {
      err_[3 * x] = sums_[2 * x];
      err_[3 * x + 1] = sums_[2 * x + 1];
      err_[3 * x + 2] = max_[x];
    }
  }

  void statistics(const Job& job, const Block& b, std::span<StrategyResult> results,
                  std::span<std::span<double>> sparse) override {
    const std::size_t ru = static_cast<std::size_t>(b.rows), du = static_cast<std::size_t>(job.d);
    for (std::size_t a = 0; a < ids_.size(); ++a) {
      const std::size_t w = ids_[a];
      for (std::size_t i = 0; i < ru; ++i) {
        RowStats& st = results[w].rows[static_cast<std::size_t>(b.first) + i];
        const double* oa = out_.data() + (a * ru + i) * du;
        const std::span<double> o_hat = sparse[w].subspan(i * du, du);
        std::copy(oa, oa + du, o_hat.begin());
        st.k = b.n_visible[i];
        if (!b.has_mass(static_cast<std::int64_t>(i), job.d) || std::isnan(oa[0])) continue;
        const double* e = err_.data() + (a * ru + i) * 3;
        st.attn_l1 = e[0];
        st.attn_l2 = std::sqrt(e[1]);
        st.attn_linf = e[2];
        fill_output_errors(o_hat, std::span<const double>(b.o_exact).subspan(i * du, du), st);
      }
    }
  }

  void finish(JobResult& result) override {
    const std::int64_t rows = result.config.queries;
    for (std::size_t a = 0; a < ids_.size(); ++a) {
      ap_[a]->columns(result.strategies[ids_[a]]);
      for (std::string& w : ap_[a]->warnings(rows)) result.warnings.push_back(std::move(w));
    }
  }

 private:
  const JobConfig& config_;
  std::vector<std::size_t> ids_;
  std::vector<std::unique_ptr<approx::Approximator>> approximators_;
  std::vector<approx::Approximator*> ap_;
  std::vector<double> out_, err_, sums_, max_;
};

}  // namespace

std::unique_ptr<Stage> make_approx_stage(const JobConfig& config, std::vector<std::size_t> ids) {
  return std::make_unique<ApproxStage>(config, std::move(ids));
}

}  // namespace ncsparse::engine
