// ncsparse attend as an application: the job run on each query head of an HDF5 input (query
// head h reads key/value head h / (Hq / Hkv), grouped-query attention), each head's outputs
// written through io (io::write_attend_output). Layout: docs/files.md.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/h5_source.hpp"
#include "ncsparse/comm.hpp"
#include "ncsparse/engine.hpp"

namespace ncsparse::app {

struct AttendConfig {
  std::string input;
  io::InputNames names;
  std::string out;
  bool force = false;
  JobConfig job;                // windows, causal, scale, exact, threads, block, tile, max_k, backend, sparsity_eps
  std::int64_t queries = 0;     // 0: every row of Q
  std::int64_t heads_kv = 0;    // 0: from the file; otherwise checked against K's heads
  std::int64_t only_head = -1;  // -1: every query head
  bool save_lists = false;
  bool save_cert = false;
};

// Runs the job for each query head of the input and writes out.h5; `on_head` (may be empty)
// receives each head's result on every rank as soon as it is done. Returns the results.
std::vector<JobResult> attend_file(const Comm& comm, const AttendConfig& config,
                                   const std::function<void(std::int64_t head, const JobResult&)>& on_head = {});

}  // namespace ncsparse::app
