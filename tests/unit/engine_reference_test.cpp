// End to end on one rank: run_job against a double-precision reference built from the same
// generated Q, K, V. Checks the exact outputs, the merged top-k lists, every strategy's window
// choice and sparse output, the statistics and the certificate, causal and not, for both input
// models, with several query blocks and key tiles.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "ncsparse/candidate.hpp"
#include "ncsparse/comm.hpp"
#include "ncsparse/engine.hpp"
#include "ncsparse/error.hpp"
#include "ncsparse/generator.hpp"
#include "ncsparse/stats.hpp"
#include "ncsparse/window.hpp"

namespace ncsparse {
namespace {

const std::vector<std::string> kAllWindows = {"const:5",  "log:2",    "power:1,0.5", "sqrt:1",
                                              "eps:0.01", "mass:0.1", "cert:0.05",   "sink:2,8"};

struct Case {
  std::int64_t n, queries;
  InputModel model;
  bool causal;
  std::int64_t max_k;
  int threads;
};

std::string describe(const Case& c) {
  return "n=" + std::to_string(c.n) + " queries=" + std::to_string(c.queries) + " model=" + to_string(c.model) +
         (c.causal ? " causal" : " full") + " max_k=" + std::to_string(c.max_k) +
         " threads=" + std::to_string(c.threads);
}

JobConfig make_config(const Case& c) {
  JobConfig cfg;
  cfg.n = c.n;
  cfg.queries = c.queries;
  cfg.model.model = c.model;
  cfg.model.d = 16;
  cfg.model.seed = 0x5EED0000ull + static_cast<std::uint64_t>(c.n);
  cfg.causal = c.causal;
  cfg.block = 13;  // several query blocks, the last one short
  cfg.tile = 97;   // several key tiles, the last one short
  cfg.max_k = c.max_k;
  cfg.threads = c.threads;
  cfg.keep_rows = true;
  for (const auto& w : kAllWindows) cfg.windows.push_back(parse_window(w));
  return cfg;
}

double norm2(const std::vector<double>& x) {
  double s = 0;
  for (double e : x) s += e * e;
  return std::sqrt(s);
}

double diff2(const double* a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < b.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(s);
}

// Softmax-weighted average of V rows over a set of keys, with double scores.
std::vector<double> attend(const std::vector<std::int64_t>& set, const std::vector<double>& s,
                           const std::vector<float>& v, std::int64_t d) {
  double top = -INFINITY;
  for (std::int64_t j : set) top = std::max(top, s[j]);
  std::vector<double> o(static_cast<std::size_t>(d), 0.0);
  double z = 0;
  for (std::int64_t j : set) {
    const double e = std::exp(s[j] - top);
    z += e;
    for (std::int64_t c = 0; c < d; ++c) o[c] += e * v[j * d + c];
  }
  for (auto& x : o) x /= z;
  return o;
}

// One job and its double-precision reference, computed once per case and shared by the tests.
struct RowRef {
  std::int64_t pos = 0, nv = 0;
  std::vector<double> s;  // double scores of the visible keys
  double top = 0, l = 0;
  std::vector<double> o;  // exact output
};

struct Run {
  Case c;
  JobConfig cfg;
  JobResult res;
  std::vector<float> K, V, Q;
  double vmax = 0;
  std::vector<RowRef> rows;
};

const Run& get_run(const Case& c, MPI_Comm comm = MPI_COMM_SELF) {
  static std::vector<std::unique_ptr<Run>> cache;
  for (const auto& r : cache) {
    if (r->c.n == c.n && r->c.queries == c.queries && r->c.model == c.model && r->c.causal == c.causal &&
        r->c.max_k == c.max_k && r->c.threads == c.threads) {
      return *r;
    }
  }
  auto run = std::make_unique<Run>();
  run->c = c;
  run->cfg = make_config(c);
  run->res = run_job(Comm(comm), run->cfg);
  const std::int64_t n = c.n, m = c.queries, d = run->cfg.model.d;
  const Generator gen(run->cfg.model);
  run->K.resize(static_cast<std::size_t>(n * d));
  run->V.resize(run->K.size());
  run->Q.resize(static_cast<std::size_t>(m * d));
  gen.keys_values(0, n, run->K, run->V);
  gen.queries(run->res.positions, run->Q);
  for (std::int64_t j = 0; j < n; ++j) {
    double s = 0;
    for (std::int64_t t = 0; t < d; ++t) s += double(run->V[j * d + t]) * run->V[j * d + t];
    run->vmax = std::max(run->vmax, std::sqrt(s));
  }
  run->rows.resize(static_cast<std::size_t>(m));
  for (std::int64_t i = 0; i < m; ++i) {
    RowRef& r = run->rows[i];
    r.pos = run->res.positions[i];
    r.nv = c.causal ? r.pos + 1 : n;
    r.s.resize(static_cast<std::size_t>(r.nv));
    r.top = -INFINITY;
    for (std::int64_t j = 0; j < r.nv; ++j) {
      double dot = 0;
      for (std::int64_t t = 0; t < d; ++t) dot += double(run->Q[i * d + t]) * double(run->K[j * d + t]);
      r.s[j] = run->res.scale * dot;
      r.top = std::max(r.top, r.s[j]);
    }
    r.l = 0;
    for (double x : r.s) r.l += std::exp(x - r.top);
    std::vector<std::int64_t> everything(static_cast<std::size_t>(r.nv));
    for (std::int64_t j = 0; j < r.nv; ++j) everything[j] = j;
    r.o = attend(everything, r.s, run->V, d);
  }
  cache.push_back(std::move(run));
  return *cache.back();
}

// The set of keys a strategy used for row i: the prefix of the engine's list, or the sink set.
std::vector<std::int64_t> strategy_set(const Run& run, std::size_t w, std::int64_t i) {
  const WindowSpec& spec = run.cfg.windows[w];
  const RowRef& r = run.rows[i];
  std::vector<std::int64_t> set;
  if (spec.name() == "sink") {
    const std::int64_t sink = static_cast<std::int64_t>(spec->value(0)), recent = static_cast<std::int64_t>(spec->value(1));
    for (std::int64_t j = 0; j < r.nv; ++j) {
      if (j < sink || (j > r.pos - recent && j <= r.pos)) set.push_back(j);
    }
  } else {
    const Candidate* row = run.res.lists.data() + i * run.res.list_length;
    for (std::int64_t j = 0; j < run.res.strategies[w].rows[i].k; ++j) set.push_back(row[j].index);
  }
  return set;
}

// Records the worst of many violations of one property, for a single readable failure.
struct Worst {
  explicit Worst(const char* text) : what(text) {}
  const char* what;
  int count = 0;
  double excess = 0;
  std::string where;
  void note(double amount, const std::string& at) {
    ++count;
    if (amount > excess) excess = amount, where = at;
  }
  void report() const {
    EXPECT_EQ(count, 0) << what << ": " << count << " violations; worst by " << excess << " at " << where;
  }
};

std::string at(const Run& run, std::size_t w, std::int64_t i, const std::string& detail) {
  std::ostringstream text;
  text.precision(9);
  text << run.cfg.windows[w].text << " row " << i << " (position " << run.rows[i].pos << ", " << run.rows[i].nv
       << " visible keys, k " << run.res.strategies[w].rows[i].k << "): " << detail;
  return text.str();
}

// Checks everything that is compared with the double-precision reference.
void check_against_reference(const Case& c, MPI_Comm comm = MPI_COMM_SELF) {
  SCOPED_TRACE(describe(c));
  const Run* runp = nullptr;
  ASSERT_NO_THROW(runp = &get_run(c, comm));
  const Run& run = *runp;
  const JobConfig& cfg = run.cfg;
  const JobResult& res = run.res;
  const std::int64_t n = c.n, m = c.queries, d = cfg.model.d;
  const std::size_t S = cfg.windows.size();

  // Shapes.
  ASSERT_EQ(res.ranks, 1);
  EXPECT_DOUBLE_EQ(res.scale, 1.0 / std::sqrt(static_cast<double>(d)));
  const std::int64_t L = res.list_length;
  EXPECT_EQ(L, list_length(cfg.windows, n, cfg.max_k));
  EXPECT_EQ(res.positions, sample_positions(n, m));
  ASSERT_EQ(res.lists.size(), static_cast<std::size_t>(m * L));
  ASSERT_EQ(res.o_exact.size(), static_cast<std::size_t>(m * d));
  ASSERT_EQ(res.o_sparse.size(), S * static_cast<std::size_t>(m * d));
  ASSERT_EQ(res.strategies.size(), S);
  for (const auto& st : res.strategies) ASSERT_EQ(st.rows.size(), static_cast<std::size_t>(m));
  EXPECT_NEAR(res.v_max_norm, run.vmax, 1e-12 * run.vmax);
  const double vmax = run.vmax;

  for (std::int64_t i = 0; i < m; ++i) {
    SCOPED_TRACE("row " + std::to_string(i));
    const RowRef& r = run.rows[i];
    const std::int64_t pos = r.pos, nv = r.nv;
    const std::vector<double>& s = r.s;
    const std::vector<double>& o = r.o;
    const double on = norm2(o);

    // Exact attention.
    const double* oe = res.o_exact.data() + i * d;
    EXPECT_LT(diff2(oe, o), 1e-5 * on) << "exact output";

    // The merged list: sorted, unique visible indices, scores equal to the true ones, and
    // nothing left out scores above its last entry.
    const Candidate* row = res.lists.data() + i * L;
    const std::span<const Candidate> full(row, static_cast<std::size_t>(L));
    const std::size_t valid = count_valid(full);
    ASSERT_EQ(valid, static_cast<std::size_t>(std::min(L, nv))) << "valid entries";
    for (std::size_t j = valid; j < full.size(); ++j) {
      EXPECT_EQ(full[j].index, kNoIndex);
      EXPECT_EQ(full[j].score, -INFINITY);
    }
    std::vector<char> listed(static_cast<std::size_t>(nv), 0);
    for (std::size_t j = 0; j < valid; ++j) {
      const Candidate& e = row[j];
      ASSERT_GE(e.index, 0);
      ASSERT_LT(e.index, nv) << "list entry " << j << " is not visible (position " << pos << ")";
      ASSERT_FALSE(listed[e.index]) << "index " << e.index << " listed twice";
      listed[e.index] = 1;
      if (j > 0) {
        EXPECT_TRUE(before(row[j - 1], e)) << "list not sorted at " << j;
      }
      EXPECT_NEAR(e.score, s[e.index], 1e-5 * std::abs(s[e.index]) + 1e-6) << "score of index " << e.index;
    }
    const double last = row[valid - 1].score;
    for (std::int64_t j = 0; j < nv; ++j) {
      if (!listed[j]) {
        EXPECT_LE(s[j], last + 1e-5) << "key " << j << " left out of the top-" << L;
      }
    }
    const std::span<const Candidate> list(row, valid);
    std::vector<double> bounds(valid);
    certificate_mass_bounds(list, nv, bounds);

    for (std::size_t w = 0; w < S; ++w) {
      const WindowSpec& spec = cfg.windows[w];
      SCOPED_TRACE("window " + spec.text);
      const RowStats& rs = res.strategies[w].rows[i];
      const double* oh = res.o_sparse.data() + (w * m + i) * d;
      const std::vector<std::int64_t> set = strategy_set(run, w, i);
      if (spec.name() == "sink") {
        EXPECT_EQ(rs.k, static_cast<std::int64_t>(set.size())) << "sink set size";
      } else {
        const std::int64_t hi = std::min(L - 1, nv);
        ASSERT_GE(rs.k, 1);
        ASSERT_LE(rs.k, hi);
        // Each strategy's k, checked by its own rule.
        if (spec.fixed()) {
          const double target = fixed_window_target(spec, nv);
          EXPECT_EQ(rs.k, static_cast<std::int64_t>(std::clamp<double>(target, 1.0, double(hi))));
          EXPECT_EQ(rs.clamped, target < 1 || target > hi);
        } else if (spec.name() == "cert") {
          std::int64_t want = hi;
          bool clamped = true;
          for (std::int64_t k = 1; k <= std::min<std::int64_t>(hi, valid); ++k) {
            if (bounds[k - 1] <= spec->value(0)) {
              want = k;
              clamped = false;
              break;
            }
          }
          EXPECT_EQ(rs.k, want);
          EXPECT_EQ(rs.clamped, clamped);
        } else {
          // eps / mass: the rule on true probabilities, up to float rounding at the boundary.
          std::vector<double> p(valid);
          for (std::size_t j = 0; j < valid; ++j) p[j] = std::exp(s[row[j].index] - r.top) / r.l;
          if (spec.name() == "eps") {
            for (std::int64_t j = 0; j < rs.k && !(rs.clamped && rs.k == 1); ++j)
              EXPECT_GE(p[j], spec->value(0) * (1 - 1e-4)) << j;
            if (!rs.clamped && rs.k < static_cast<std::int64_t>(valid)) {
              EXPECT_LT(p[rs.k], spec->value(0) * (1 + 1e-4));
            }
          } else {
            double mass = 0;
            for (std::int64_t j = 0; j < rs.k - 1; ++j) mass += p[j];
            EXPECT_LT(mass, (1 - spec->value(0)) * (1 + 1e-5)) << "a shorter window already had the mass";
            if (!rs.clamped) {
              EXPECT_GE(mass + p[rs.k - 1], (1 - spec->value(0)) * (1 - 1e-5));
            }
          }
        }
        // Certificate of the prefix, from the list alone.
        EXPECT_EQ(rs.cert_mass, bounds[rs.k - 1]);
      }

      // Sparse output, in double from the same set.
      const std::vector<double> ohr = attend(set, s, run.V, d);
      EXPECT_LT(diff2(oh, ohr), 1e-5 * norm2(ohr)) << "sparse output";

      // Statistics against the reference (kept mass to the float precision of the exact pass).
      double M = 0;
      for (std::int64_t j : set) M += std::exp(s[j] - r.top) / r.l;
      EXPECT_NEAR(rs.kept_mass, M, 1e-5) << "kept mass";
      EXPECT_NEAR(rs.attn_l1, 2 * (1 - M), 2e-5) << "attention l1";
      const double err = diff2(ohr.data(), o);
      EXPECT_NEAR(rs.out_l2, err, 2e-5 * (on + vmax)) << "output l2";
      EXPECT_NEAR(rs.out_rel, err / on, 2e-5 * (1 + vmax / on)) << "output relative";
      EXPECT_GE(rs.attn_l1, 0.0);
      EXPECT_GE(rs.attn_l2, 0.0);
      EXPECT_GE(rs.attn_linf, 0.0);

      if (spec.name() != "sink") {
        // The certificate is a true bound: on the true dropped mass (with the float rounding of
        // the scores) and on the true output error.
        EXPECT_GE(rs.cert_mass, (1 - M) * (1 - 1e-9) - 1e-6) << "certificate below true dropped mass";
        EXPECT_DOUBLE_EQ(rs.cert_out,
                         certificate_output_bound(rs.cert_mass, std::vector<double>(oh, oh + d), res.v_max_norm));
        EXPECT_GE(rs.cert_out, err - 1e-5 * (on + vmax)) << "output certificate below true error";
      }
    }
    if (::testing::Test::HasFatalFailure()) return;
  }

  // ε-sparsity: the count of entries with p > ε per row, where the list covers them.
  ASSERT_EQ(res.sparsity.size(), cfg.sparsity_eps.size());
  for (std::size_t e = 0; e < cfg.sparsity_eps.size(); ++e) {
    const double eps = cfg.sparsity_eps[e];
    SCOPED_TRACE("sparsity eps " + std::to_string(eps));
    std::vector<double> counts;
    for (std::int64_t i = 0; i < m; ++i) {
      const RowRef& r = run.rows[i];
      std::int64_t count = 0;
      for (double x : r.s) count += std::exp(x - r.top) / r.l > eps;
      const std::int64_t valid = std::min(L, r.nv);
      if (count < valid || valid == r.nv) counts.push_back(static_cast<double>(count));
    }
    const Summary want = summarize(counts);
    EXPECT_EQ(res.sparsity[e].eps, eps);
    EXPECT_EQ(res.sparsity[e].count.count, want.count);
    EXPECT_EQ(res.sparsity[e].uncovered_rows, m - want.count);
    if (want.count > 0) {
      EXPECT_NEAR(res.sparsity[e].count.mean, want.mean, 0.5 / static_cast<double>(want.count) + 1e-9);
      EXPECT_NEAR(res.sparsity[e].count.max, want.max, 1.0);
      EXPECT_NEAR(res.sparsity[e].count.min, want.min, 1.0);
    }
  }

  // Aggregates cover every row.
  for (const auto& st : res.strategies) {
    EXPECT_EQ(st.k.count, m);
    EXPECT_EQ(st.out_l2.count, m);
    std::int64_t clamped = 0;
    for (const auto& rr : st.rows) clamped += rr.clamped;
    EXPECT_EQ(st.clamped_rows, clamped);
  }
}

// The attention-row errors the engine reports (ℓ2, ℓ∞ of p̂ − p) against brute force over
// every key of the row, and their consistency: ℓ∞ ≤ ℓ2 ≤ ℓ1 for any vector.
void check_attention_errors(const Case& c) {
  SCOPED_TRACE(describe(c));
  const Run& run = get_run(c);
  Worst l2_off(
      "attn_l2 differs from the brute-force ||p_hat - p||_2 by more than 1e-5 + 1e-4 relative (+ the float floor)");
  Worst linf_off("attn_linf differs from the brute-force max|p_hat - p| by more than 1e-5 + 1e-4 relative");
  Worst l2_above_l1("attn_l2 > attn_l1 + 1e-6 (impossible for any vector)");
  Worst linf_above_l2("attn_linf > attn_l2 + 1e-6 (impossible for any vector)");
  for (std::int64_t i = 0; i < c.queries; ++i) {
    const RowRef& r = run.rows[i];
    for (std::size_t w = 0; w < run.cfg.windows.size(); ++w) {
      const RowStats& rs = run.res.strategies[w].rows[i];
      const std::vector<std::int64_t> set = strategy_set(run, w, i);
      std::vector<char> in(static_cast<std::size_t>(r.nv), 0);
      for (std::int64_t j : set) in[j] = 1;
      double M = 0;
      for (std::int64_t j : set) M += std::exp(r.s[j] - r.top) / r.l;
      double a2 = 0, ainf = 0, sum_sq_all = 0;
      for (std::int64_t j = 0; j < r.nv; ++j) {
        const double p = std::exp(r.s[j] - r.top) / r.l;
        const double e = std::abs((in[j] ? p / M : 0.0) - p);
        a2 += e * e;
        ainf = std::max(ainf, e);
        sum_sq_all += p * p;
      }
      a2 = std::sqrt(a2);
      // When the list does not hold every visible key, the unlisted part of Σ p² comes from
      // the exact state, whose float32 scores carry ~1e-6 relative error: its square root is
      // the floor of what ℓ2 can resolve (docs/engine.md, Precision).
      const bool listed_all = r.nv <= run.res.list_length;
      const double l2_floor = listed_all ? 0.0 : std::sqrt(1e-5 * sum_sq_all);
      std::ostringstream detail;
      detail.precision(9);
      detail << "reported attn_l1 " << rs.attn_l1 << " attn_l2 " << rs.attn_l2 << " attn_linf " << rs.attn_linf
             << "; true l1 " << 2 * (1 - M) << " l2 " << a2 << " linf " << ainf;
      const std::string where = at(run, w, i, detail.str());
      if (std::abs(rs.attn_l2 - a2) > 1e-5 + 1e-4 * a2 + l2_floor) l2_off.note(std::abs(rs.attn_l2 - a2), where);
      if (std::abs(rs.attn_linf - ainf) > 1e-5 + 1e-4 * ainf) linf_off.note(std::abs(rs.attn_linf - ainf), where);
      if (rs.attn_l2 > rs.attn_l1 + 1e-6) l2_above_l1.note(rs.attn_l2 - rs.attn_l1, where);
      if (rs.attn_linf > rs.attn_l2 + 1e-6) linf_above_l2.note(rs.attn_linf - rs.attn_l2, where);
    }
  }
  l2_off.report();
  linf_off.report();
  l2_above_l1.report();
  linf_above_l2.report();
}

// The certificate against the engine's own measurement: cert_mass ≥ 1 − kept_mass and
// cert_out ≥ out_l2, row by row. The measured kept mass is held to 1e-12; the measured output
// error to the precision the exact output is held to above (1e-5·‖o‖: o_exact comes from float GEMMs).
constexpr double kMassSlack = 1e-12;
constexpr double kFloatOutputSlack = 1e-5;

void check_certificate_vs_measured(const Case& c) {
  SCOPED_TRACE(describe(c));
  const Run& run = get_run(c);
  Worst mass("cert_mass < 1 - kept_mass - 1e-12");
  Worst out("cert_out < out_l2 - 1e-5 * ||o||");
  for (std::int64_t i = 0; i < c.queries; ++i) {
    const double on = norm2(run.rows[i].o);
    for (std::size_t w = 0; w < run.cfg.windows.size(); ++w) {
      if (run.cfg.windows[w].name() == "sink") continue;
      const RowStats& rs = run.res.strategies[w].rows[i];
      std::ostringstream detail;
      detail.precision(9);
      detail << "cert_mass " << rs.cert_mass << " kept_mass " << rs.kept_mass << " (1 - kept_mass " << 1 - rs.kept_mass
             << "), cert_out " << rs.cert_out << " out_l2 " << rs.out_l2;
      if (rs.cert_mass < 1 - rs.kept_mass - kMassSlack)
        mass.note(1 - rs.kept_mass - rs.cert_mass, at(run, w, i, detail.str()));
      if (rs.cert_out < rs.out_l2 - kFloatOutputSlack * on)
        out.note(rs.out_l2 - rs.cert_out, at(run, w, i, detail.str()));
    }
  }
  mass.report();
  out.report();
}

const Case kGaussianFull{777, 50, InputModel::Gaussian, false, 8192, 1};
const Case kGaussianCausal{777, 50, InputModel::Gaussian, true, 8192, 1};
const Case kPaperFull{777, 50, InputModel::Paper, false, 8192, 1};
const Case kPaperCausal{777, 50, InputModel::Paper, true, 8192, 2};
const Case kAllRowsGaussianCausal{200, 200, InputModel::Gaussian, true, 8192, 1};
const Case kAllRowsPaperCausal{200, 200, InputModel::Paper, true, 8192, 2};
const Case kAllRowsPaperFull{200, 200, InputModel::Paper, false, 8192, 1};
// A short list (max_k = 40 caps eps, mass and cert): windows clamp and the certificate is loose.
const Case kShortGaussianFull{777, 50, InputModel::Gaussian, false, 40, 1};
const Case kShortPaperCausal{777, 50, InputModel::Paper, true, 40, 2};
const Case kShortAllRowsPaperCausal{200, 200, InputModel::Paper, true, 40, 1};
const Case kAll[] = {kGaussianFull,          kGaussianCausal,         kPaperFull,        kPaperCausal,
                     kAllRowsGaussianCausal, kAllRowsPaperCausal,     kAllRowsPaperFull, kShortGaussianFull,
                     kShortPaperCausal,      kShortAllRowsPaperCausal};

TEST(EngineReference, GaussianFull) { check_against_reference(kGaussianFull); }
TEST(EngineReference, GaussianCausal) { check_against_reference(kGaussianCausal); }
TEST(EngineReference, PaperFull) { check_against_reference(kPaperFull); }
TEST(EngineReference, PaperCausal) { check_against_reference(kPaperCausal); }
TEST(EngineReference, AllRowsGaussianCausal) { check_against_reference(kAllRowsGaussianCausal); }
TEST(EngineReference, AllRowsPaperCausal) { check_against_reference(kAllRowsPaperCausal); }
TEST(EngineReference, AllRowsPaperFull) { check_against_reference(kAllRowsPaperFull); }
TEST(EngineReference, ShortListGaussianFull) { check_against_reference(kShortGaussianFull); }
TEST(EngineReference, ShortListPaperCausal) { check_against_reference(kShortPaperCausal); }
TEST(EngineReference, ShortListAllRowsPaperCausal) { check_against_reference(kShortAllRowsPaperCausal); }
TEST(EngineReference, WorldOfOneRank) {
  check_against_reference({300, 30, InputModel::Paper, true, 40, 1}, MPI_COMM_WORLD);
}

TEST(EngineErrorStats, AttentionErrorsMatchBruteForce) {
  for (const Case& c : kAll) check_attention_errors(c);
}

TEST(EngineErrorStats, CertificateBoundsMeasuredErrors) {
  for (const Case& c : kAll) check_certificate_vs_measured(c);
}

TEST(EngineReference, CausalListsHoldOnlyVisibleKeys) {
  JobConfig cfg;
  cfg.n = 500;
  cfg.queries = 500;
  cfg.model.d = 8;
  cfg.model.model = InputModel::Paper;
  cfg.causal = true;
  cfg.block = 64;
  cfg.tile = 33;
  cfg.keep_rows = true;
  cfg.windows = {parse_window("const:12")};
  const JobResult res = run_job(Comm(MPI_COMM_SELF), cfg);
  const std::int64_t L = res.list_length;
  ASSERT_EQ(L, 13);
  for (std::int64_t i = 0; i < cfg.queries; ++i) {
    const std::int64_t p = res.positions[i];
    ASSERT_EQ(p, i);
    const std::span<const Candidate> row(res.lists.data() + i * L, static_cast<std::size_t>(L));
    ASSERT_EQ(count_valid(row), static_cast<std::size_t>(std::min<std::int64_t>(L, p + 1))) << "row " << i;
    for (std::size_t j = 0; j < count_valid(row); ++j) {
      ASSERT_LE(row[j].index, p) << "row at position " << p << " lists future key";
    }
    // The first row sees only itself: k = 1, exact.
    if (p == 0) {
      EXPECT_EQ(res.strategies[0].rows[i].k, 1);
      EXPECT_NEAR(res.strategies[0].rows[i].out_l2, 0.0, 1e-12);
      EXPECT_NEAR(res.strategies[0].rows[i].kept_mass, 1.0, 1e-6);
    }
  }
}

TEST(EngineReference, BadConfigsAreUsageErrors) {
  JobConfig good;
  good.n = 100;
  good.queries = 10;
  good.model.d = 8;
  good.windows = {parse_window("const:4")};
  EXPECT_NO_THROW(run_job(Comm(MPI_COMM_SELF), good));
  auto expect_usage = [&](JobConfig c, const char* what) {
    try {
      run_job(Comm(MPI_COMM_SELF), c);
      ADD_FAILURE() << what << ": accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), kExitUsage) << what << ": " << e.what();
    }
  };
  JobConfig c = good;
  c.queries = 101;
  expect_usage(c, "queries > n");
  c = good;
  c.windows.clear();
  expect_usage(c, "no window");
  c = good;
  c.exact = false;
  c.windows = {parse_window("mass:0.1")};
  expect_usage(c, "mass without exact");
  c = good;
  c.block = 0;
  expect_usage(c, "block 0");
  c = good;
  c.tile = 0;
  expect_usage(c, "tile 0");
  c = good;
  c.n = 0;
  expect_usage(c, "n 0");
  c = good;
  c.backend = "nonsense";
  expect_usage(c, "unknown backend");
}

}  // namespace
}  // namespace ncsparse
