// The approximator windows (`taylor:q`, `features:e,KIND`) end to end on one rank, against a
// double-precision brute force built from the same generated Q, K, V: outputs, attention-row
// errors (ℓ1, ℓ2, ℓ∞ against the exact softmax) and output errors; streamed keys give the same
// answers as keys in memory; a denominator lost to cancellation is reported, not returned.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "ncsparse/comm.hpp"
#include "ncsparse/engine.hpp"
#include "ncsparse/error.hpp"
#include "ncsparse/features.hpp"
#include "ncsparse/generator.hpp"
#include "ncsparse/taylor.hpp"
#include "support/reference.hpp"

namespace ncsparse {
namespace {

JobConfig make_config(bool causal, const std::vector<std::string>& windows) {
  JobConfig c;
  c.n = 613;
  c.queries = 23;
  c.model.model = InputModel::Gaussian;
  c.model.sigma = 0.6;  // scores |s·q·k| mostly below 1: the Taylor series is meaningful
  c.model.d = 8;
  c.model.seed = 20261126;
  c.causal = causal;
  c.block = 7;  // several query blocks, the last one short
  c.tile = 97;  // several key tiles, the last one short
  c.keep_rows = true;
  for (const std::string& w : windows) c.windows.push_back(parse_window(w));
  return c;
}

struct Inputs {
  std::int64_t n, d, m;
  double scale;
  std::vector<float> q, k, v;
  std::vector<std::int64_t> pos;
};

Inputs generate(const JobConfig& c) {
  Inputs in{c.n, c.model.d, c.queries, c.scale > 0 ? c.scale : 1 / std::sqrt(double(c.model.d)), {}, {}, {}, {}};
  const Generator g(c.model);
  in.k.resize(static_cast<std::size_t>(in.n * in.d));
  in.v.resize(in.k.size());
  g.keys_values(0, in.n, in.k, in.v);
  in.pos = sample_positions(in.n, in.m);
  in.q.resize(static_cast<std::size_t>(in.m * in.d));
  g.queries(in.pos, in.q);
  return in;
}

using test::truncated_exp;

// x (rows × d, float) · R (d × e, double) in double.
std::vector<double> project(const float* x, std::int64_t rows, const FeatureProjection& p) {
  std::vector<double> y(static_cast<std::size_t>(rows * p.e()), 0.0);
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t c = 0; c < p.d(); ++c)
      for (std::int64_t f = 0; f < p.e(); ++f) y[i * p.e() + f] += double(x[i * p.d() + c]) * p.matrix()[c * p.e() + f];
  return y;
}

// The projection the engine uses for a features window, rebuilt in double.
FeatureProjection projection_of(const WindowSpec& w, const Inputs& in, std::uint64_t seed) {
  const auto kind = parse_projection_kind(w.text.substr(w.text.find(',') + 1));
  const auto e = static_cast<std::int64_t>(w->value(0));
  if (kind != ProjectionKind::Gram) return FeatureProjection::random(kind, in.d, e, seed);
  std::vector<double> g(static_cast<std::size_t>(in.d * in.d), 0.0);
  for (std::int64_t j = 0; j < in.n; ++j)
    for (std::int64_t a = 0; a < in.d; ++a)
      for (std::int64_t b = 0; b < in.d; ++b)
        g[a * in.d + b] += double(in.k[j * in.d + a]) * double(in.k[j * in.d + b]);
  return FeatureProjection::gram(g, in.d, 1e-12, e);
}

struct RowReference {
  std::vector<double> o_hat, o;
  double l1 = 0, l2 = 0, linf = 0;
};

// Brute force of one row: weights w_j of the approximation, p_j of the exact softmax.
RowReference reference_row(const Inputs& in, std::int64_t i, bool causal, const std::vector<double>& w) {
  const std::int64_t d = in.d, visible = causal ? std::min(in.pos[i] + 1, in.n) : in.n;
  std::vector<double> s(static_cast<std::size_t>(visible));
  double top = -INFINITY;
  for (std::int64_t j = 0; j < visible; ++j) {
    double dot = 0;
    for (std::int64_t c = 0; c < d; ++c) dot += double(in.q[i * d + c]) * double(in.k[j * d + c]);
    s[j] = in.scale * dot;
    top = std::max(top, s[j]);
  }
  double z = 0, zh = 0;
  for (std::int64_t j = 0; j < visible; ++j) z += std::exp(s[j] - top), zh += w[j];
  RowReference r;
  r.o.assign(static_cast<std::size_t>(d), 0.0);
  r.o_hat.assign(static_cast<std::size_t>(d), 0.0);
  for (std::int64_t j = 0; j < visible; ++j) {
    const double p = std::exp(s[j] - top) / z, ph = w[j] / zh;
    for (std::int64_t c = 0; c < d; ++c) {
      r.o[c] += p * in.v[j * d + c];
      r.o_hat[c] += ph * in.v[j * d + c];
    }
    const double diff = std::abs(ph - p);
    r.l1 += diff;
    r.l2 += diff * diff;
    r.linf = std::max(r.linf, diff);
  }
  r.l2 = std::sqrt(r.l2);
  return r;
}

// The approximation's weights of row i over its visible keys.
std::vector<double> weights(const Inputs& in, std::int64_t i, bool causal, const WindowSpec& w,
                            const FeatureProjection* proj) {
  const std::int64_t d = in.d, visible = causal ? std::min(in.pos[i] + 1, in.n) : in.n;
  std::vector<double> out(static_cast<std::size_t>(visible));
  if (w.name() == "taylor") {
    for (std::int64_t j = 0; j < visible; ++j) {
      double dot = 0;
      for (std::int64_t c = 0; c < d; ++c) dot += double(in.q[i * d + c]) * double(in.k[j * d + c]);
      out[j] = truncated_exp(in.scale * dot, static_cast<int>(w->value(0)));
    }
    return out;
  }
  const std::vector<double> yq = project(in.q.data() + i * d, 1, *proj), yk = project(in.k.data(), visible, *proj);
  const std::int64_t e = proj->e();
  double top = -INFINITY;
  for (std::int64_t j = 0; j < visible; ++j) {
    double dot = 0;
    for (std::int64_t f = 0; f < e; ++f) dot += yq[f] * yk[j * e + f];
    out[j] = in.scale * dot;
    top = std::max(top, out[j]);
  }
  for (double& x : out) x = std::exp(x - top);
  return out;
}

double rel(const double* a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (std::size_t c = 0; c < b.size(); ++c) num += (a[c] - b[c]) * (a[c] - b[c]), den += b[c] * b[c];
  return std::sqrt(num / den);
}

void check_against_brute_force(bool causal, const std::vector<std::string>& windows) {
  const JobConfig cfg = make_config(causal, windows);
  const JobResult res = run_job(Comm(MPI_COMM_SELF), cfg);
  const Inputs in = generate(cfg);
  ASSERT_EQ(res.positions, in.pos);
  const std::size_t du = static_cast<std::size_t>(in.d);
  for (std::size_t w = 0; w < cfg.windows.size(); ++w) {
    const WindowSpec& spec = cfg.windows[w];
    SCOPED_TRACE(spec.text + (causal ? " causal" : ""));
    FeatureProjection proj;
    if (spec.name() == "features") {
      proj = projection_of(spec, in, cfg.model.seed);
      EXPECT_EQ(res.strategies[w].features, proj.e());
    } else {
      EXPECT_EQ(res.strategies[w].features, TaylorFeatures::count(in.d, static_cast<int>(spec->value(0))));
      EXPECT_EQ(res.strategies[w].lost_rows, 0);
    }
    // The sketch is exact arithmetic on the same float inputs; the projection runs in float.
    const double out_tol = spec.name() == "taylor" ? 1e-6 : 2e-5;
    for (std::int64_t i = 0; i < in.m; ++i) {
      const RowReference ref = reference_row(in, i, causal, weights(in, i, causal, spec, &proj));
      const double* got = res.o_sparse.data() + (w * static_cast<std::size_t>(in.m) + static_cast<std::size_t>(i)) * du;
      EXPECT_LT(rel(got, ref.o_hat), out_tol) << "row " << i;
      EXPECT_LT(rel(res.o_exact.data() + i * du, ref.o), 1e-5) << "row " << i;
      const RowStats& st = res.strategies[w].rows[static_cast<std::size_t>(i)];
      EXPECT_EQ(st.k, causal ? std::min(in.pos[i] + 1, in.n) : in.n);
      EXPECT_TRUE(std::isnan(st.kept_mass));
      // Row errors from float scores: absolute 2e-6 plus 1e-3 relative.
      EXPECT_NEAR(st.attn_l1, ref.l1, 2e-6 + 1e-3 * ref.l1) << "row " << i;
      EXPECT_NEAR(st.attn_l2, ref.l2, 2e-6 + 1e-3 * ref.l2) << "row " << i;
      EXPECT_NEAR(st.attn_linf, ref.linf, 2e-6 + 1e-3 * ref.linf) << "row " << i;
      double e2 = 0, o2 = 0;
      for (std::size_t c = 0; c < du; ++c)
        e2 += (ref.o_hat[c] - ref.o[c]) * (ref.o_hat[c] - ref.o[c]), o2 += ref.o[c] * ref.o[c];
      EXPECT_NEAR(st.out_l2, std::sqrt(e2), 1e-5 * std::sqrt(o2) + 1e-3 * std::sqrt(e2)) << "row " << i;
    }
  }
}

TEST(ApproxEngine, TaylorAndFeaturesMatchBruteForce) {
  check_against_brute_force(false, {"taylor:2", "taylor:4", "taylor:6", "features:4,gaussian", "features:5,sparse",
                                    "features:8,gram", "features:3,gram"});
}

TEST(ApproxEngine, FeaturesCausalMatchBruteForce) {
  check_against_brute_force(true, {"features:4,gaussian", "features:6,sparse", "features:8,gram"});
}

TEST(ApproxEngine, FullRankGramIsExactAttention) {
  JobConfig cfg = make_config(false, {"features:8,gram"});
  cfg.model.model = InputModel::Paper;  // larger scores: the projection must not matter at all
  cfg.model.weight_norm = 60;
  const JobResult res = run_job(Comm(MPI_COMM_SELF), cfg);
  EXPECT_EQ(res.strategies[0].features, 8);
  EXPECT_LT(res.strategies[0].out_rel.max, 1e-5);
  EXPECT_LT(res.strategies[0].attn_l1.max, 1e-5);
}

TEST(ApproxEngine, TaylorIsCloseToExactForSmallScores) {
  // With |s·q·k| <= 0.5 on every pair, each weight T_q(x) = e^x (1 + δ_x) with
  // |δ_x| <= δ = 0.5^{q+1}/(q+1)! · e (the Lagrange remainder over e^x >= e^{-1/2}); then
  // p̂_j / p_j ∈ [(1 − δ)/(1 + δ), (1 + δ)/(1 − δ)], so ℓ1 <= 2δ/(1 − δ) and ‖ô − o‖₂ <= ℓ1·max‖v‖.
  JobConfig cfg = make_config(false, {"taylor:2", "taylor:4", "taylor:6"});
  cfg.model.sigma = 0.25;
  const Inputs in = generate(cfg);
  double s_max = 0;
  for (std::int64_t i = 0; i < in.m; ++i)
    for (std::int64_t j = 0; j < in.n; ++j) {
      double dot = 0;
      for (std::int64_t c = 0; c < in.d; ++c) dot += double(in.q[i * in.d + c]) * double(in.k[j * in.d + c]);
      s_max = std::max(s_max, std::abs(in.scale * dot));
    }
  ASSERT_LE(s_max, 0.5) << "the inputs must keep every score in [-0.5, 0.5]";
  const JobResult res = run_job(Comm(MPI_COMM_SELF), cfg);
  for (const StrategyResult& s : res.strategies) {
    const int q = static_cast<int>(s.spec->value(0));
    double delta = std::pow(0.5, q + 1) * std::exp(1.0);
    for (int j = 2; j <= q + 1; ++j) delta /= j;
    const double l1_bound = 2 * delta / (1 - delta);
    // Slack for the float32 scores of the error pass (~1e-7 relative per weight).
    EXPECT_LE(s.attn_l1.max, l1_bound + 1e-6) << s.spec.text;
    EXPECT_LE(s.out_l2.max, (l1_bound + 1e-6) * res.v_max_norm) << s.spec.text;
    EXPECT_GT(s.attn_l1.max, 0) << s.spec.text << ": a truncated series is not exact";
  }
}

TEST(ApproxEngine, StreamedKeysGiveTheSameAnswers) {
  const std::vector<std::string> windows = {"taylor:4", "features:4,gaussian", "features:5,gram"};
  const JobConfig held = make_config(false, windows);
  JobConfig streamed = held;
  streamed.stream = true;
  const JobResult a = run_job(Comm(MPI_COMM_SELF), held), b = run_job(Comm(MPI_COMM_SELF), streamed);
  ASSERT_EQ(a.o_sparse.size(), b.o_sparse.size());
  for (std::size_t i = 0; i < a.o_sparse.size(); ++i) EXPECT_EQ(a.o_sparse[i], b.o_sparse[i]) << i;
  for (std::size_t i = 0; i < a.o_exact.size(); ++i) EXPECT_NEAR(a.o_exact[i], b.o_exact[i], 1e-6) << i;
  for (std::size_t w = 0; w < windows.size(); ++w) {
    EXPECT_NEAR(a.strategies[w].attn_l1.mean, b.strategies[w].attn_l1.mean, 1e-6 + 1e-4 * a.strategies[w].attn_l1.mean);
    EXPECT_EQ(a.strategies[w].features, b.strategies[w].features);
  }
}

TEST(ApproxEngine, UnconvergedSeriesIsWarned) {
  JobConfig cfg = make_config(false, {"taylor:2", "taylor:4"});
  cfg.model.sigma = 30;  // |s·q·k| in the hundreds: x²/2 (x⁴/24) dominates every weight
  const JobResult res = run_job(Comm(MPI_COMM_SELF), cfg);
  ASSERT_EQ(res.warnings.size(), 2u);
  for (std::size_t w = 0; w < 2; ++w) {
    const StrategyResult& s = res.strategies[w];
    EXPECT_EQ(s.unconverged_rows, cfg.queries) << s.spec.text;
    EXPECT_GT(s.max_last_share, 0.5) << s.spec.text;
    EXPECT_EQ(s.lost_rows, 0) << s.spec.text;
    EXPECT_EQ(s.out_rel.count, cfg.queries) << "outputs are still returned";
    EXPECT_NE(res.warnings[w].find(s.spec.text + ": in " + std::to_string(cfg.queries) + " of"), std::string::npos)
        << res.warnings[w];
  }
  // At small scores the series has converged: no warning.
  cfg.model.sigma = 0.25;
  const JobResult calm = run_job(Comm(MPI_COMM_SELF), cfg);
  EXPECT_TRUE(calm.warnings.empty());
  EXPECT_LT(calm.strategies[0].max_last_share, 0.1);
}

TEST(ApproxEngine, LostDenominatorIsReportedNotReturned) {
  // Scores of about 1e8, within float32's range (the engine refuses larger ones before the
  // pass; EngineBounds tests that), and the degree-64 series at d = 2 (C(66, 2) features):
  // (q·k)⁶⁴/64! overflows double for every row. No answer, not garbage.
  JobConfig cfg = make_config(false, {"taylor:64"});
  cfg.model.d = 2;
  cfg.model.sigma = 1e4;
  cfg.scale = 1;
  const JobResult res = run_job(Comm(MPI_COMM_SELF), cfg);
  const StrategyResult& s = res.strategies[0];
  std::int64_t nan_rows = 0;
  for (std::int64_t i = 0; i < cfg.queries; ++i) {
    const bool lost = std::isnan(res.o_sparse[static_cast<std::size_t>(i * cfg.model.d)]);
    nan_rows += lost ? 1 : 0;
    EXPECT_EQ(lost, std::isnan(s.rows[static_cast<std::size_t>(i)].out_rel)) << "row " << i;
    for (std::int64_t c = 0; c < cfg.model.d; ++c) {
      const double x = res.o_sparse[static_cast<std::size_t>(i * cfg.model.d + c)];
      EXPECT_TRUE(lost ? std::isnan(x) : std::isfinite(x)) << "row " << i;
    }
  }
  EXPECT_GT(nan_rows, 0);
  EXPECT_EQ(s.lost_rows, nan_rows);
  bool warned = false;
  for (const std::string& w : res.warnings) warned = warned || w.find("was lost") != std::string::npos;
  EXPECT_TRUE(warned);
  EXPECT_EQ(s.out_rel.count, cfg.queries - nan_rows);
}

TEST(ApproxEngine, BadConfigsAreUsageErrors) {
  auto expect_usage = [](JobConfig cfg, const std::string& needle) {
    try {
      run_job(Comm(MPI_COMM_SELF), cfg);
      ADD_FAILURE() << "accepted a bad config (" << needle << ")";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), kExitUsage) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_usage(make_config(false, {"features:9,gaussian"}), "larger than d = 8");
  expect_usage(make_config(true, {"taylor:2"}), "causal");
  JobConfig stream = make_config(false, {"taylor:2", "const:4"});
  stream.stream = true;
  expect_usage(stream, "--stream");
  JobConfig huge = make_config(false, {"taylor:8"});
  huge.model.d = 4096;  // t = C(4104, 8) ≈ 1.6e24 features
  expect_usage(huge, "features");
}

}  // namespace
}  // namespace ncsparse
