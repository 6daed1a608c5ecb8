// The study command's driver: runs every configuration of a study once, committing one record
// per configuration and rebuilding the combined results file after each (docs/study.md).
#pragma once

#include <string>

#include "ncsparse/comm.hpp"

namespace ncsparse::study {

struct StudyOptions {
  std::string study_file;
  std::string out;
  bool restart = false;  // discard the records of a changed study file
  bool force = false;    // overwrite an output that is not this study's
  std::string backend = "cpu";  // every configuration's backend (results do not depend on it)
  std::string score_precision = "fp32";  // of the filtering score GEMM (lists do not depend on it)
  int threads = 0;              // threads per rank; 0: the file's [engine] threads (not in the identity)
};

// Every rank calls it. Returns 0 when every configuration is recorded; throws Error(75) when
// stopped by SIGINT/SIGTERM after committing what was finished.
int run_study(const Comm& comm, const StudyOptions& options);

}  // namespace ncsparse::study
