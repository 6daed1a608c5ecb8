// The prefix stage: every window that is a prefix of the merged list (PrefixStrategy). Each
// rank forms the weights from the merged list and adds the contributions of the V rows it
// owns, one walk over the list for all prefix strategies and one sum-reduction per block.
#include <algorithm>
#include <cmath>

#include "engine/job.hpp"
#include "ncsparse/stats.hpp"
#include "ncsparse/window.hpp"

namespace ncsparse::engine {
namespace {

class PrefixStage final : public Stage {
 public:
  PrefixStage(const JobConfig& config, std::vector<std::size_t> ids) : ids_(std::move(ids)) {
    for (std::size_t w : ids_) windows_.push_back(static_cast<const PrefixStrategy*>(config.windows[w].strategy.get()));
  }

  double PhaseTimes::*phase() const override { return &PhaseTimes::sparse; }

  void outputs(const Job& job, const Block& b) override {
    const std::size_t P = ids_.size(), ru = static_cast<std::size_t>(b.rows), du = static_cast<std::size_t>(job.d);
    acc_.assign(P * ru * du, 0.0);
    choice_.resize(P * ru);
    k_of_.resize(P);
    inv_z_.resize(P);
    for (std::size_t i = 0; i < ru; ++i) {
      const std::span<const Candidate> valid = b.valid(static_cast<std::int64_t>(i), job.L);
      const double* fl = b.exact(static_cast<std::int64_t>(i), job.d);
      const RowNormaliser norm = fl != nullptr ? RowNormaliser{fl[0], fl[1]} : RowNormaliser{};
      std::int64_t k_max = 0;
      for (std::size_t pi = 0; pi < P; ++pi) {
        const WindowChoice c = windows_[pi]->choose(valid, job.L, b.n_visible[i], fl != nullptr ? &norm : nullptr);
        choice_[pi * ru + i] = c;
        k_of_[pi] = valid.empty() ? 0 : c.k;
        k_max = std::max(k_max, k_of_[pi]);
      }
      if (!valid.empty()) accumulate_row(job, valid, k_max, acc_.data() + i * du, ru * du);
    }
    job.merge.allreduce_sum(acc_);
  }

  void statistics(const Job& job, const Block& b, std::span<StrategyResult> results,
                  std::span<std::span<double>> sparse) override {
    const std::size_t ru = static_cast<std::size_t>(b.rows), du = static_cast<std::size_t>(job.d);
    const bool exact = job.config.exact;
    for (std::size_t i = 0; i < ru; ++i) {
      const std::span<const Candidate> valid = b.valid(static_cast<std::int64_t>(i), job.L);
      const std::int64_t nv = b.n_visible[i];
      const double* fl = b.exact(static_cast<std::int64_t>(i), job.d);
      bounds_.resize(valid.size());
      certificate_mass_bounds(valid, nv, bounds_);
      const std::span<const double> o_exact =
          exact ? std::span<const double>(b.o_exact).subspan(i * du, du) : std::span<const double>();
      for (std::size_t pi = 0; pi < ids_.size(); ++pi) {
        const std::size_t w = ids_[pi];
        RowStats& st = results[w].rows[static_cast<std::size_t>(b.first) + i];
        const WindowChoice& c = choice_[pi * ru + i];
        st.k = c.k;
        st.clamped = c.clamped;
        const std::span<const double> o_hat{acc_.data() + (pi * ru + i) * du, du};
        std::copy(o_hat.begin(), o_hat.end(), sparse[w].begin() + static_cast<std::ptrdiff_t>(i * du));
        KeptSet kept;
        if (exact && fl[1] > 0) kept = prefix_kept_set(valid, c.k, fl[0], fl[1], nv, b.sum_sq_all[i]);
        if (c.k >= 1 && static_cast<std::size_t>(c.k) <= bounds_.size()) {
          st.cert_mass = bounds_[static_cast<std::size_t>(c.k - 1)];
          st.cert_out = certificate_output_bound(st.cert_mass, o_hat, job.v_max);
        }
        if (exact) fill_errors(kept, b.sum_sq_all[i], o_hat, o_exact, st);
      }
    }
  }

 private:
  // Adds the row's sparse outputs of every prefix strategy (strategy pi's at out + pi·stride)
  // from the owned V rows among the first k_max entries. Every window is a prefix of the
  // list: one walk serves all strategies, and each owned V row is fetched once (prefetched
  // ahead: the rows are scattered over the shard, so this loop is bound by memory latency).
  void accumulate_row(const Job& job, std::span<const Candidate> valid, std::int64_t k_max, double* out,
                      std::size_t stride) {
    const std::size_t P = ids_.size();
    const std::int64_t d = job.d;
    const double top = valid[0].score;
    std::fill(inv_z_.begin(), inv_z_.end(), 0.0);
    double z = 0;
    std::int64_t next = 0;
    by_k_.resize(P);  // normalisers of all prefixes in one walk, shortest first
    for (std::size_t pi = 0; pi < P; ++pi) by_k_[pi] = {k_of_[pi], pi};
    std::sort(by_k_.begin(), by_k_.end());
    for (const auto& [kk, pi] : by_k_) {
      for (; next < kk; ++next) z += std::exp(static_cast<double>(valid[next].score) - top);
      inv_z_[pi] = z > 0 ? 1.0 / z : 0.0;
    }
    constexpr std::int64_t kAhead = 12;
    const KeyShard& shard = job.shard;
    auto owned_row = [&](std::int64_t j) -> const float* {
      const std::int64_t g = valid[j].index;
      return g >= shard.begin && g < shard.begin + shard.count ? shard.v + (g - shard.begin) * d : nullptr;
    };
    for (std::int64_t j = 0; j < std::min(kAhead, k_max); ++j) {
      if (const float* r = owned_row(j)) __builtin_prefetch(r);
    }
    for (std::int64_t j = 0; j < k_max; ++j) {
      if (j + kAhead < k_max) {
        if (const float* r = owned_row(j + kAhead)) {
          for (std::int64_t c = 0; c < d; c += 16) __builtin_prefetch(r + c);
        }
      }
      const float* vr = owned_row(j);
      if (vr == nullptr) continue;
      const double e = std::exp(static_cast<double>(valid[j].score) - top);
      for (std::size_t pi = 0; pi < P; ++pi) {
        if (j >= k_of_[pi]) continue;
        const double p = e * inv_z_[pi];
        double* o = out + pi * stride;
        for (std::int64_t c = 0; c < d; ++c) o[c] += p * vr[c];
      }
    }
  }

  std::vector<std::size_t> ids_;
  std::vector<const PrefixStrategy*> windows_;
  std::vector<double> acc_, inv_z_, bounds_;  // acc_: P × rows × d
  std::vector<WindowChoice> choice_;          // P × rows
  std::vector<std::int64_t> k_of_;
  std::vector<std::pair<std::int64_t, std::size_t>> by_k_;
};

}  // namespace

std::unique_ptr<Stage> make_prefix_stage(const JobConfig& config, std::vector<std::size_t> ids) {
  return std::make_unique<PrefixStage>(config, std::move(ids));
}

}  // namespace ncsparse::engine
