// plan's merge term (src/plan/cost_model.hpp): the row-owner form agrees with the fit at the
// fit's own P and does not grow with log P in bytes; the all-reduce form scales by log P.
#include <gtest/gtest.h>

#include "plan/cost_model.hpp"

namespace ncsparse::plan {
namespace {

TEST(PlanMerge, RowOwnerMatchesTheFitAtItsRanksAndScalesWithMessagesAndBytes) {
  CollectiveFit fit;
  fit.ranks = 2;
  fit.alpha = 2e-5;
  fit.beta = 1e-9;
  const double bytes = 4e6;
  // At the fit's own P both forms are the fit.
  EXPECT_DOUBLE_EQ(collective_seconds(fit, fit, 2, bytes, true), fit.seconds(bytes));
  EXPECT_DOUBLE_EQ(collective_seconds(fit, fit, 2, bytes, false), fit.seconds(bytes));
  // P = 1024: the row owner sends 2(P - 1)/P of the lists (under twice the fit's bytes at P = 2)
  // in 2(P - 1) messages; the log form multiplies everything by ceil(log2 P) = 10.
  const double ro = collective_seconds(fit, fit, 1024, bytes, true);
  EXPECT_NEAR(ro, fit.alpha * 1023 + fit.beta * bytes * (1023.0 / 1024) / 0.5, 1e-15);
  EXPECT_DOUBLE_EQ(collective_seconds(fit, fit, 1024, bytes, false), 10 * fit.seconds(bytes));
  EXPECT_LT(ro, 10 * fit.seconds(bytes));
  // A fit made at P = 4 with the row owner: the same form, carried from there.
  CollectiveFit at4 = fit;
  at4.ranks = 4;
  EXPECT_DOUBLE_EQ(collective_seconds(at4, fit, 4, bytes, true), at4.seconds(bytes));
  EXPECT_EQ(collective_seconds(fit, fit, 1, bytes, true), 0.0);
}

}  // namespace
}  // namespace ncsparse::plan
