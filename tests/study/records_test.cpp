// The per-record count of rows where the certificate fails (cert_violations): a dropped mass
// above its bound, or an output error above its bound by more than the float32 resolution of the
// exact reference (1e-5·‖o‖₂).
#include <gtest/gtest.h>

#include "ncsparse/window.hpp"
#include "study/records.hpp"

namespace ncsparse::study {
namespace {

RowStats row(double kept_mass, double cert_mass, double out_l2, double out_rel, double cert_out) {
  RowStats r;
  r.k = 2;
  r.kept_mass = kept_mass;
  r.cert_mass = cert_mass;
  r.out_l2 = out_l2;
  r.out_rel = out_rel;
  r.cert_out = cert_out;
  return r;
}

TEST(Records, CertViolationsCountRealFailuresOnly) {
  Configuration c;
  c.job.n = 1024;
  c.job.queries = 4;
  c.job.windows = {parse_window("cert:1e-2")};
  c.canonical = "test";
  c.hash = "0123456789abcdef";
  JobResult res;
  res.config = c.job;
  StrategyResult s;
  s.spec = c.job.windows[0];
  s.rows = {
      row(1 - 2.8e-8, 2.85e-8, 1.4e-5, 2.1e-6, 4.4e-7),  // below the reference's resolution: not counted
      row(0.9, 0.2, 0.1, 0.01, 0.05),                     // output error twice its bound: counted
      row(0.5, 0.2, 0.01, 0.001, 0.5),                    // dropped mass 0.5 above 0.2: counted
      row(0.95, 0.1, 0.01, 0.001, 0.02),                  // within both bounds
  };
  res.strategies = {s};
  const Record r = make_record(c, res, "studyhash");
  const auto& v = r.arrays.at("cert_violations").values;
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0], 1) << "dropped-mass violations";
  EXPECT_EQ(v[1], 1) << "output-bound violations";
}

}  // namespace
}  // namespace ncsparse::study
