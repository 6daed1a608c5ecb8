// The prefix stage: every window that is a prefix of the merged list (PrefixStrategy). Each
// rank forms the weights from the merged list and adds the contributions of the V rows it
// owns, one walk over the list for all prefix strategies and one sum-reduction per block.
#include <algorithm>
#include <cmath>
#include <span>
#include <utility>
#include <vector>

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

  // Three steps, each row independent and computed as with one thread (the outputs do not
  // depend on the thread count): the row's weights exp(s_j − s_0) over its whole list and the
  // certificate from them (once per row, for every window and the statistics); every
  // strategy's k and normaliser; the sums Σ p_j v_j over the owned V rows, on the backend's
  // copy of V when it has a kernel for it (PrefixGather), else here.
  void outputs(const Job& job, const Block& b) override {
    const std::size_t P = ids_.size(), ru = static_cast<std::size_t>(b.rows), du = static_cast<std::size_t>(job.d);
    const std::size_t Lu = static_cast<std::size_t>(job.L);
    acc_.assign(P * ru * du, 0.0);
    choice_.resize(P * ru);
    k_.assign(P * ru, 0);
    weights_.resize(ru * Lu);
    bounds_.resize(ru * Lu);
    inv_z_.assign(P * ru, 0.0);
    order_.resize(ru * P);
    const int threads = row_threads(job, b);
#pragma omp parallel num_threads(threads)
    {
      std::vector<std::pair<std::int64_t, std::size_t>> by_k(P);
#pragma omp for schedule(dynamic, 8)
      for (std::size_t i = 0; i < ru; ++i) {
        const std::span<const Candidate> valid = b.valid(static_cast<std::int64_t>(i), job.L);
        const std::span<double> e{weights_.data() + i * Lu, valid.size()};
        const std::span<double> bound{bounds_.data() + i * Lu, valid.size()};
        prefix_weights(valid, e);
        std::fill(weights_.begin() + static_cast<std::ptrdiff_t>(i * Lu + valid.size()),
                  weights_.begin() + static_cast<std::ptrdiff_t>((i + 1) * Lu), 0.0);
        certificate_mass_bounds(std::span<const double>(e), b.n_visible[i], bound);
        const double* fl = b.exact(static_cast<std::int64_t>(i), job.d);
        const RowNormaliser norm = fl != nullptr ? RowNormaliser{fl[0], fl[1]} : RowNormaliser{};
        const RowFacts facts{fl != nullptr ? &norm : nullptr, bound};
        for (std::size_t pi = 0; pi < P; ++pi) {
          const WindowChoice c = windows_[pi]->choose(valid, job.L, b.n_visible[i], facts);
          choice_[pi * ru + i] = c;
          k_[pi * ru + i] = valid.empty() ? 0 : c.k;
        }
        // Shortest prefix first: the normalisers in one walk here, the running sum's takes in
        // gather_row.
        for (std::size_t pi = 0; pi < P; ++pi) by_k[pi] = {k_[pi * ru + i], pi};
        std::sort(by_k.begin(), by_k.end());
        for (std::size_t t = 0; t < P; ++t) order_[i * P + t] = by_k[t].second;
        if (valid.empty()) continue;
        double z = 0;
        std::int64_t next = 0;
        for (const auto& [kk, pi] : by_k) {
          for (; next < kk; ++next) z += e[static_cast<std::size_t>(next)];
          inv_z_[pi * ru + i] = z > 0 ? 1.0 / z : 0.0;
        }
      }
    }
    const PrefixGather g{b.lists, job.L, b.rows, job.d, job.L, weights_, static_cast<std::int64_t>(P), k_, inv_z_, acc_};
    if (job.backend == nullptr || !job.backend->gather_outputs(g)) {
#pragma omp parallel num_threads(threads)
      {
        std::vector<double> sum(du);
#pragma omp for schedule(dynamic, 8)
        for (std::size_t i = 0; i < ru; ++i) {
          gather_row(job, g, static_cast<std::int64_t>(i), std::span<const std::size_t>(order_).subspan(i * P, P), sum);
        }
      }
    }
    job.merge.allreduce_sum(acc_);
  }

  void statistics(const Job& job, const Block& b, std::span<StrategyResult> results,
                  std::span<std::span<double>> sparse) override {
    const std::size_t ru = static_cast<std::size_t>(b.rows), du = static_cast<std::size_t>(job.d);
    const bool exact = job.config.exact;
#pragma omp parallel num_threads(row_threads(job, b))
    {
    std::vector<double> listed_p;
#pragma omp for schedule(dynamic, 8)
    for (std::size_t i = 0; i < ru; ++i) {
      const std::span<const Candidate> valid = b.valid(static_cast<std::int64_t>(i), job.L);
      const std::int64_t nv = b.n_visible[i];
      const double* fl = b.exact(static_cast<std::int64_t>(i), job.d);
      const std::span<const double> bounds{bounds_.data() + i * static_cast<std::size_t>(job.L), valid.size()};
      const std::span<const double> o_exact =
          exact ? std::span<const double>(b.o_exact).subspan(i * du, du) : std::span<const double>();
      const bool with_state = exact && fl[1] > 0;
      if (with_state) {  // the listed p_j, once for all the row's windows
        listed_p.resize(valid.size());
        listed_probabilities(valid, fl[0], fl[1], listed_p);
      }
      for (std::size_t pi = 0; pi < ids_.size(); ++pi) {
        const std::size_t w = ids_[pi];
        RowStats& st = results[w].rows[static_cast<std::size_t>(b.first) + i];
        const WindowChoice& c = choice_[pi * ru + i];
        st.k = c.k;
        st.clamped = c.clamped;
        const std::span<const double> o_hat{acc_.data() + (pi * ru + i) * du, du};
        std::copy(o_hat.begin(), o_hat.end(), sparse[w].begin() + static_cast<std::ptrdiff_t>(i * du));
        KeptSet kept;
        if (with_state) kept = prefix_kept_set(std::span<const double>(listed_p), c.k, nv, b.sum_sq_all[i]);
        if (c.k >= 1 && static_cast<std::size_t>(c.k) <= bounds.size()) {
          st.cert_mass = bounds[static_cast<std::size_t>(c.k - 1)];
          st.cert_out = certificate_output_bound(st.cert_mass, o_hat, job.v_max);
        }
        if (exact) fill_errors(kept, b.sum_sq_all[i], o_hat, o_exact, st);
      }
    }
    }
  }

 private:
  static int row_threads(const Job& job, const Block& b) {
    return static_cast<int>(std::clamp<std::int64_t>(b.rows / 16, 1, std::max(1, job.config.threads)));
  }

  // Row i of g.out from the owned V rows, in list order (PrefixGather says which operations):
  // every window being a prefix of the list, one running sum Σ e_j v_j serves all strategies,
  // each taking it (times its 1/z) when the walk reaches its k; each owned V row is fetched
  // once, prefetched ahead (the rows are scattered over the shard, so this loop is bound by
  // memory latency). `order` lists the strategies shortest prefix first (outputs() sorted
  // them); `sum` (d values) is the calling thread's scratch.
  static void gather_row(const Job& job, const PrefixGather& g, std::int64_t i, std::span<const std::size_t> order,
                         std::span<double> sum) {
    const std::int64_t d = job.d;
    const std::size_t P = order.size();
    auto k_of = [&](std::size_t t) { return g.k[order[t] * static_cast<std::size_t>(g.rows) + static_cast<std::size_t>(i)]; };
    const std::int64_t k_max = P > 0 ? k_of(P - 1) : 0;
    std::fill(sum.begin(), sum.end(), 0.0);
    std::size_t next = 0;  // the next strategy to take the sum
    auto take_until = [&](std::int64_t j) {  // strategies whose prefix ends before entry j
      for (; next < P && k_of(next) <= j; ++next) {
        const std::size_t si = order[next] * static_cast<std::size_t>(g.rows) + static_cast<std::size_t>(i);
        const double s = g.inv_z[si];
        double* o = g.out.data() + si * static_cast<std::size_t>(d);
        for (std::int64_t c = 0; c < d; ++c) o[c] = sum[static_cast<std::size_t>(c)] * s;
      }
    };
    const Candidate* list = g.lists.data() + i * g.L;
    const double* e = g.weights.data() + i * g.width;  // width: the row stride
    constexpr std::int64_t kAhead = 12;
    const KeyShard& shard = job.shard;
    auto owned_row = [&](std::int64_t j) -> const float* {
      const std::int64_t idx = list[j].index;
      return idx >= shard.begin && idx < shard.begin + shard.count ? shard.v + (idx - shard.begin) * d : nullptr;
    };
    for (std::int64_t j = 0; j < std::min(kAhead, k_max); ++j) {
      if (const float* r = owned_row(j)) __builtin_prefetch(r);
    }
    double* acc = sum.data();
    for (std::int64_t j = 0; j < k_max; ++j) {
      take_until(j);
      if (j + kAhead < k_max) {
        if (const float* r = owned_row(j + kAhead)) {
          for (std::int64_t c = 0; c < d; c += 16) __builtin_prefetch(r + c);
        }
      }
      const float* vr = owned_row(j);
      if (vr == nullptr) continue;
      const double ej = e[j];
      for (std::int64_t c = 0; c < d; ++c) acc[c] += ej * static_cast<double>(vr[c]);
    }
    take_until(k_max + 1);
  }

  std::vector<std::size_t> ids_;
  std::vector<const PrefixStrategy*> windows_;
  std::vector<double> acc_;           // P × rows × d
  std::vector<WindowChoice> choice_;  // P × rows
  std::vector<std::int64_t> k_;       // P × rows
  std::vector<double> weights_;       // rows × L: exp(s_j − s_0) of the valid entries, then 0
  std::vector<double> bounds_;        // rows × L: the certificate of each prefix (valid entries)
  std::vector<double> inv_z_;         // P × rows
  std::vector<std::size_t> order_;    // rows × P: each row's strategies, shortest prefix first
};

}  // namespace

std::unique_ptr<Stage> make_prefix_stage(const JobConfig& config, std::vector<std::size_t> ids) {
  return std::make_unique<PrefixStage>(config, std::move(ids));
}

}  // namespace ncsparse::engine
