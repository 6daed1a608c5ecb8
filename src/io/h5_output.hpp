// HDF5 outputs: an output file that appears complete or not at all, `ncsparse generate`
// (inputs from the generator) and `ncsparse attend` (sparse outputs of an input file).
// Layouts: docs/files.md.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/atomic_file.hpp"
#include "io/dtype.hpp"
#include "io/h5.hpp"
#include "io/h5_source.hpp"
#include "ncsparse/comm.hpp"
#include "ncsparse/engine.hpp"

namespace ncsparse::io {

// A file written under a temporary name beside the target (".NAME.tmp-PID" in the same
// directory, an AtomicFile) and moved onto it by commit(), after every rank agreed that all
// went well.
// An existing target is never touched without `force` (Error 73 naming the path and --force).
// Destroyed uncommitted, it closes and removes the temporary file. All members are collective.
class OutputFile {
 public:
  OutputFile(const Comm& comm, const std::string& target, bool force);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  hid_t file() const { return file_.get(); }
  bool parallel() const { return parallel_; }
  const std::string& temp_path() const { return temp_->path(); }
  void commit();

 private:
  const Comm& comm_;
  std::string target_;
  bool force_ = false, parallel_ = false;
  std::unique_ptr<AtomicFile> temp_;  // rank 0 owns the temporary file
  h5::Handle file_;
};

// The seed of head h: seed + h·0x9E3779B97F4A7C15 (mod 2^64); head 0 uses the seed itself,
// so a one-head file holds exactly the inputs `ncsparse run` generates with that seed.
std::uint64_t head_seed(std::uint64_t seed, std::int64_t head);

struct GenerateConfig {
  std::int64_t n = 0;
  ModelParams model;     // model.d is d
  std::int64_t heads = 0;  // 0: datasets of shape (n, d); H >= 1: (H, n, d)
  Dtype dtype = Dtype::Float32;
  std::string out;
  bool force = false;
};
// Checks the config (usage Errors naming the flag); identical on every rank.
void validate(const GenerateConfig& config);
// Writes /Q, /K, /V: each rank its own rows [lo, hi), collectively.
void generate_file(const Comm& comm, const GenerateConfig& config);

struct AttendConfig {
  std::string input;
  InputNames names;
  std::string out;
  bool force = false;
  JobConfig job;               // windows, causal, scale, exact, threads, block, tile, max_k, backend, sparsity_eps
  std::int64_t queries = 0;    // 0: every row of Q
  std::int64_t heads_kv = 0;   // 0: from the file; otherwise checked against K's heads
  std::int64_t only_head = -1; // -1: every query head
  bool save_lists = false;
  bool save_cert = false;
};

// Runs the job for each query head of the input and writes out.h5; `on_head` (may be empty)
// receives each head's result on every rank as soon as it is done. Returns the results.
std::vector<JobResult> attend_file(const Comm& comm, const AttendConfig& config,
                                   const std::function<void(std::int64_t head, const JobResult&)>& on_head = {});

}  // namespace ncsparse::io
