// ncsparse calibrate as an application: measures the rates of the cost model (profile.hpp) with
// the engine's own kernels, on every rank at once (as a job runs them), keeping the slowest
// rank's time of each probe. Collective.
#pragma once

#include <string>

#include "ncsparse/comm.hpp"
#include "plan/profile.hpp"

namespace ncsparse::plan {

struct CalibrateConfig {
  bool quick = false;   // a couple of seconds (tests), against about 20 s
  int threads = 1;      // threads per rank, as --threads of run
  std::string tmpdir;   // where the HDF5 read probe writes its temporary file
  double startup = 0;   // the process's start-up, measured by the caller (slowest rank)
};

Profile calibrate(const Comm& comm, const CalibrateConfig& config);

// Least-squares t = alpha + beta·bytes over points, both kept >= 0.
void fit_collective(CollectiveFit& fit);

}  // namespace ncsparse::plan
