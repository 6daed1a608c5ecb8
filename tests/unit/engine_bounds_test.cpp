// Finite inputs whose scores or values would overflow the float32 kernels are refused before
// the pass, naming the bound (exit 65); those within the bounds give finite outputs that match
// an exactly rescaled reference (issue 17: never a silent non-finite result).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "ncsparse/engine.hpp"
#include "ncsparse/error.hpp"
#include "ncsparse/source.hpp"
#include "ncsparse/window.hpp"

namespace ncsparse {
namespace {

// The Gaussian model's Q, K and V, multiplied by powers of two (exact unless they overflow).
class ScaledSource final : public InputSource {
 public:
  ScaledSource(const ModelParams& p, double qk, double v) : gen_(p), qk_(qk), v_(v) {}
  void keys_values(std::int64_t begin, std::int64_t count, std::span<float> k, std::span<float> v) override {
    gen_.keys_values(begin, count, k, v);
    for (float& x : k) x = static_cast<float>(x * qk_);
    for (float& x : v) x = static_cast<float>(x * v_);
  }
  void query_rows(std::span<const std::int64_t> rows, std::span<float> q) override {
    gen_.query_rows(rows, q);
    for (float& x : q) x = static_cast<float>(x * qk_);
  }

 private:
  GeneratorSource gen_;
  double qk_, v_;
};

JobConfig config(bool exact) {
  JobConfig c;
  c.n = 613;
  c.queries = 23;
  c.model.model = InputModel::Gaussian;
  c.model.d = 8;
  c.model.seed = 20261205;
  c.block = 7;
  c.tile = 97;
  c.exact = exact;
  c.keep_rows = true;
  c.scale = 0.25;  // a power of two: scaled scores are the scores times a power of two, exactly
  c.windows = {parse_window("const:5"), parse_window("const:40")};
  return c;
}

void expect_refused(const JobConfig& cfg, ScaledSource& src, const std::string& needle) {
  try {
    run_job(Comm(MPI_COMM_WORLD), cfg, &src);
    ADD_FAILURE() << "accepted inputs beyond the bound (" << needle << ")";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitData) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(EngineBounds, ScoresBeyondFloatAreRefused) {
  ScaledSource src(config(true).model, 0x1p62, 1);  // ‖q‖·‖k‖ ≈ 2^124·8 > FLT_MAX / 4
  expect_refused(config(true), src, "scores can reach");
  ScaledSource src2(config(false).model, 0x1p62, 1);
  expect_refused(config(false), src2, "scores can reach");
}

TEST(EngineBounds, ValuesBeyondTheExactSumsAreRefused) {
  ScaledSource src(config(true).model, 1, 0x1p125);  // ‖v‖·97 ≈ 2^125·3·97 > FLT_MAX / 4
  expect_refused(config(true), src, "values up to");
}

// Within the bounds: the same top-k lists as unscaled inputs, and outputs that are the
// unscaled outputs times the power of two, all finite.
TEST(EngineBounds, LargeFiniteInputsWithinTheBoundsStayExact) {
  const JobConfig plain_cfg = config(false);
  ScaledSource plain(plain_cfg.model, 1, 1), big_v(plain_cfg.model, 1, 0x1p125);
  const JobResult a = run_job(Comm(MPI_COMM_WORLD), plain_cfg, &plain);
  const JobResult b = run_job(Comm(MPI_COMM_WORLD), plain_cfg, &big_v);  // no exact pass: values may be huge
  ASSERT_EQ(a.lists.size(), b.lists.size());
  for (std::size_t i = 0; i < a.lists.size(); ++i) EXPECT_EQ(a.lists[i].index, b.lists[i].index) << i;
  ASSERT_EQ(a.o_sparse.size(), b.o_sparse.size());
  for (std::size_t i = 0; i < a.o_sparse.size(); ++i) {
    ASSERT_TRUE(std::isfinite(b.o_sparse[i])) << i;
    EXPECT_EQ(b.o_sparse[i], a.o_sparse[i] * 0x1p125) << i;
  }
  // Scores scaled by 2^80 (about 1e24): finite, the same order, so the same lists.
  ScaledSource big_qk(plain_cfg.model, 0x1p40, 1);
  const JobResult c = run_job(Comm(MPI_COMM_WORLD), config(true), &big_qk);
  const JobResult a_exact = run_job(Comm(MPI_COMM_WORLD), config(true), &plain);
  for (std::size_t i = 0; i < a_exact.lists.size(); ++i) EXPECT_EQ(a_exact.lists[i].index, c.lists[i].index) << i;
  for (double x : c.o_sparse) ASSERT_TRUE(std::isfinite(x));
  for (double x : c.o_exact) ASSERT_TRUE(std::isfinite(x));
}

}  // namespace
}  // namespace ncsparse
