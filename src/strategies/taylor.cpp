// taylor:Q — the one-pass Taylor sketch of PAPERS.md §3: exp(s) replaced by its even truncated
// series of degree Q, S = Σ φ(k)vᵀ and z = Σ φ(k) summed over ranks; ô = Sᵀφ(q) / φ(q)ᵀz.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "engine/approx.hpp"
#include "ncsparse/engine.hpp"
#include "ncsparse/error.hpp"
#include "ncsparse/report.hpp"
#include "ncsparse/taylor.hpp"
#include "strategies/builtin.hpp"

namespace ncsparse {
namespace {

// A row whose denominator φ(q)ᵀz kept less than this share of its terms' magnitude has lost
// more than half of double precision's digits to cancellation: its output is not reported.
constexpr double kLostCancellation = 1e-8;
// A row whose degree-q terms carry more than this share of the denominator is evaluated where
// the truncated series has not converged: reported (counted and warned), output kept.
constexpr double kUnconvergedShare = 0.1;

class TaylorApprox final : public approx::Approximator {
 public:
  TaylorApprox(const std::string& text, int q, const approx::Context& c)
      : text_(text),
        q_(q),
        phi_(std::make_unique<TaylorFeatures>(c.d, q_, c.scale)),
        sketch_(std::make_unique<TaylorSketch>(*phi_)) {}

  void add_keys(std::int64_t, std::int64_t rows, const float* k, const float* v) override {
    const std::size_t size = static_cast<std::size_t>(rows * phi_->d());
    sketch_->add({k, size}, {v, size}, rows);
  }

  void reduce(const Comm& comm) override {
    // In pieces: one MPI count is an int.
    const std::span<double> state = sketch_->state();
    constexpr std::size_t kPiece = std::size_t(1) << 26;
    for (std::size_t i = 0; i < state.size(); i += kPiece) {
      comm.allreduce_sum(state.subspan(i, std::min(kPiece, state.size() - i)));
    }
  }

  void outputs(const Comm&, approx::KeyTiles&, const approx::Queries& q, bool, std::span<double> out) override {
    const std::int64_t d = phi_->d();
    den_.assign(static_cast<std::size_t>(q.rows), std::numeric_limits<double>::quiet_NaN());
    for (std::int64_t i = 0; i < q.rows; ++i) {
      const std::span<double> o = out.subspan(static_cast<std::size_t>(i * d), static_cast<std::size_t>(d));
      double cancellation = 0, last_share = 0;
      const double den = sketch_->output({q.q + i * q.dq, static_cast<std::size_t>(d)}, o, &cancellation, &last_share);
      min_cancellation_ = std::min(min_cancellation_, cancellation);
      if (!(den > 0) || !(cancellation >= kLostCancellation) || !std::isfinite(den)) {
        ++lost_rows_;
        std::fill(o.begin(), o.end(), std::numeric_limits<double>::quiet_NaN());
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

  void columns(StrategyResult& r) const override {
    r.features = static_cast<double>(phi_->size());
    r.state_bytes = static_cast<double>(sketch_->state().size()) * sizeof(double);
    r.lost_rows = static_cast<double>(lost_rows_);
    r.unconverged_rows = static_cast<double>(unconverged_rows_);
    r.max_last_share = max_last_share_;
    r.min_cancellation = min_cancellation_;
  }

  std::vector<std::string> warnings(std::int64_t rows) const override {
    std::vector<std::string> out;
    auto line = [&](std::int64_t count, const std::string& what) {
      out.push_back(text_ + ": in " + std::to_string(count) + " of " + std::to_string(rows) + " rows " + what);
    };
    char num[32];
    if (unconverged_rows_ > 0) {
      std::snprintf(num, sizeof num, "%.2g", max_last_share_);
      line(unconverged_rows_, "the degree-" + std::to_string(q_) +
                                  " terms carry more than 10% of the denominator (up to " + num +
                                  "): the series has not converged at these scores and their outputs are poor "
                                  "(lower the score range, e.g. --scale or the input bound, or use a larger q)");
    }
    if (lost_rows_ > 0) {
      std::snprintf(num, sizeof num, "%.2g", min_cancellation_);
      line(lost_rows_, std::string("the denominator phi(q).z was lost (overflow, or cancellation: smallest "
                                   "|sum|/sum|terms| ") +
                           num + "); their outputs are NaN and left out of the statistics (lower the score range)");
    }
    return out;
  }

 private:
  std::string text_;
  int q_;
  std::unique_ptr<TaylorFeatures> phi_;
  std::unique_ptr<TaylorSketch> sketch_;
  std::vector<double> den_;  // φ(q)ᵀz of the current block's rows (NaN: lost)
  std::int64_t lost_rows_ = 0, unconverged_rows_ = 0;
  double min_cancellation_ = 1, max_last_share_ = 0;
};

class TaylorWindow final : public ApproxStrategy {
 public:
  TaylorWindow(const SpecArgs& a, double q) : ApproxStrategy(a.name(), a.spec(), {q}) {}

  void validate(const JobConfig& job, double memory_bytes) const override {
    if (job.causal) {
      throw usage_error("--window " + text() +
                        ": the sketch sums over all keys and has no causal form (drop --causal or this window)");
    }
    const std::int64_t d = job.model.d;
    const std::int64_t t = TaylorFeatures::count(d, degree());
    const double bytes = state_bytes(d, 1);
    if (t > (std::int64_t(1) << 31) || bytes > 0.5 * memory_bytes) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.3g", static_cast<double>(t));
      throw usage_error("--window " + text() + ": at d = " + std::to_string(d) + " the sketch needs t = C(d+q, q) = " +
                        buf + " features, about " + format_gib(bytes) + " per rank, more than half of this machine's " +
                        format_gib(memory_bytes) + " (use a smaller q or d)");
    }
  }

  double state_bytes(std::int64_t d, std::int64_t) const override {
    const double t = static_cast<double>(TaylorFeatures::count(d, degree()));
    // S and z, the weights, the parent/coordinate tables, and the blocks of φ(k) that
    // TaylorSketch::add builds (32 keys).
    return t * static_cast<double>(d + 1) * 8 + t * (8 * 34 + 12);
  }

  std::unique_ptr<approx::Approximator> start(const approx::Context& c) const override {
    return std::make_unique<TaylorApprox>(text(), degree(), c);
  }

  std::string summary_line(const StrategyResult& s) const override {
    std::string line = "one-pass sketch with t = " + format_number(s.features, "%.0f") + " features of phi, " +
                       format_number(s.state_bytes / (1024.0 * 1024.0)) +
                       " MiB of state per rank; smallest |phi(q).z| / sum|terms| " +
                       format_number(s.min_cancellation, "%.2g") + "; largest share of the degree-" +
                       std::to_string(degree()) + " terms " + format_number(s.max_last_share, "%.2g");
    if (s.unconverged_rows > 0)
      line += " (" + format_number(s.unconverged_rows, "%.0f") + " rows above 0.1: not converged)";
    if (s.lost_rows > 0) line += "; " + format_number(s.lost_rows, "%.0f") + " rows lost (NaN)";
    return line;
  }

 private:
  int degree() const { return static_cast<int>(value(0)); }
};

}  // namespace

StrategyKind taylor_strategy() {
  return {"taylor",
          "taylor:Q",
          "one-pass Taylor sketch of even degree Q; not causal",
          [](const SpecArgs& a) -> std::shared_ptr<const Strategy> {
            a.need(1);
            const double q = a.number(0, "Q");
            if (q < 2 || q > 64 || q != std::floor(q) || std::fmod(q, 2.0) != 0) {
              a.fail(
                  "the degree Q must be an even whole number in [2, 64] (an even truncated series of exp stays "
                  "positive)");
            }
            return std::make_shared<TaylorWindow>(a, q);
          },
          {},
          {}};
}

}  // namespace ncsparse
