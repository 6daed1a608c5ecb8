// The key-set stage: windows that are a set of key ranges, not a prefix of the list
// (KeySetStrategy, e.g. sink). Each rank forms, through the backend, the flash state of the
// set's keys it owns; the states merge like the exact ones.
#include <algorithm>
#include <cmath>

#include "engine/job.hpp"
#include "ncsparse/flash.hpp"
#include "ncsparse/stats.hpp"

namespace ncsparse::engine {
namespace {

class KeySetStage final : public Stage {
 public:
  KeySetStage(const JobConfig& config, std::vector<std::size_t> ids) : ids_(std::move(ids)) {
    for (std::size_t w : ids_) windows_.push_back(static_cast<const KeySetStrategy*>(config.windows[w].strategy.get()));
  }

  double PhaseTimes::*phase() const override { return &PhaseTimes::sparse; }

  void outputs(const Job& job, const Block& b) override {
    const std::size_t frow = flash_row_size(static_cast<std::size_t>(job.d)), ru = static_cast<std::size_t>(b.rows);
    state_.assign(ids_.size() * ru * frow, 0.0);
    for (std::size_t si = 0; si < ids_.size(); ++si) {
      for (std::size_t i = 0; i < ru; ++i) {
        const std::span<double> st{state_.data() + (si * ru + i) * frow, frow};
        flash_clear(st);
        windows_[si]->ranges(b.pos[i], b.n_visible[i], ranges_);
        job.dense.key_set_flash(b.q + i * static_cast<std::size_t>(job.d), ranges_, job.shard, job.d, job.scale, st);
      }
    }
    job.merge.allreduce_flash(state_, job.d);
  }

  void statistics(const Job& job, const Block& b, std::span<StrategyResult> results,
                  std::span<std::span<double>> sparse) override {
    const std::size_t frow = flash_row_size(static_cast<std::size_t>(job.d)), ru = static_cast<std::size_t>(b.rows);
    const std::size_t du = static_cast<std::size_t>(job.d);
    for (std::size_t si = 0; si < ids_.size(); ++si) {
      const std::size_t w = ids_[si];
      for (std::size_t i = 0; i < ru; ++i) {
        RowStats& st = results[w].rows[static_cast<std::size_t>(b.first) + i];
        const double* ss = state_.data() + (si * ru + i) * frow;
        const std::span<double> o_hat = sparse[w].subspan(i * du, du);
        flash_output({ss, frow}, o_hat);
        windows_[si]->ranges(b.pos[i], b.n_visible[i], ranges_);
        std::int64_t size = 0;
        for (const KeyRange& r : ranges_) size += r.end - r.begin;
        st.k = size;
        st.clamped = size < windows_[si]->nominal_size();
        if (!job.config.exact) continue;
        KeptSet kept;
        const double* fl = b.exact(static_cast<std::int64_t>(i), job.d);
        if (fl[1] > 0) {
          const std::span<const Candidate> valid = b.valid(static_cast<std::int64_t>(i), job.L);
          in_set_.resize(valid.size());
          for (std::size_t j = 0; j < valid.size(); ++j) in_set_[j] = in_ranges(valid[j].index) ? 1 : 0;
          const double f = std::exp(ss[0] - fl[0]);
          kept = general_kept_set(valid, in_set_, size, ss[1] * f / fl[1], ss[2] * f * f / (fl[1] * fl[1]),
                                  ss[1] > 0 ? f / fl[1] : 0.0, fl[0], fl[1], b.n_visible[i], b.sum_sq_all[i]);
        }
        fill_errors(kept, b.sum_sq_all[i], o_hat, std::span<const double>(b.o_exact).subspan(i * du, du), st);
      }
    }
  }

 private:
  bool in_ranges(std::int64_t j) const {
    for (const KeyRange& r : ranges_) {
      if (j >= r.begin && j < r.end) return true;
    }
    return false;
  }

  std::vector<std::size_t> ids_;
  std::vector<const KeySetStrategy*> windows_;
  std::vector<double> state_;  // strategies × rows × flash_row_size(d)
  std::vector<KeyRange> ranges_;
  std::vector<std::uint8_t> in_set_;
};

}  // namespace

std::unique_ptr<Stage> make_key_set_stage(const JobConfig& config, std::vector<std::size_t> ids) {
  return std::make_unique<KeySetStage>(config, std::move(ids));
}

}  // namespace ncsparse::engine
