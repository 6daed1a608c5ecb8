// The distributed job: generate (or take) a sharded K/V, scan it once per query block, merge
// across ranks, form sparse outputs for every window strategy and measure them against exact
// attention. Every rank of the communicator calls run_job with the same config.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ncsparse/candidate.hpp"
#include "ncsparse/comm.hpp"
#include "ncsparse/generator.hpp"
#include "ncsparse/source.hpp"
#include "ncsparse/stats.hpp"
#include "ncsparse/window.hpp"

namespace ncsparse {

struct JobConfig {
  std::int64_t n = 1 << 20;     // keys (sequence length)
  std::int64_t query_rows = 0;  // rows of Q (0: n, self-attention); row i sits at position n − query_rows + i
  std::int64_t queries = 256;   // evaluated rows: an even sample of Q's rows (all rows when equal)
  std::vector<WindowSpec> windows;
  ModelParams model;  // model.d is the head dimension
  bool causal = false;
  double scale = 0;           // 0: 1/√d
  bool exact = true;          // exact pass (flash state) and the errors that need it
  int threads = 1;            // threads per rank
  std::int64_t block = 256;   // query rows per block
  std::int64_t tile = 2048;   // keys per score tile
  std::int64_t max_k = 8192;  // cap on adaptive windows (eps, mass, cert)
  std::string backend = "cpu";
  // --score-precision: the filter GEMM's precision (fp32, tf32, bf16; the last two on cuda only).
  std::string score_precision = "fp32";
  // Stream K/V tile by tile from the source instead of holding the shard: memory independent of
  // n. Only for the approximators (taylor, features), whose state does not need the keys again.
  bool stream = false;
  std::vector<double> sparsity_eps = {1e-2, 1e-3, 1e-4};
  bool keep_rows = false;  // keep per-row lists and outputs in the result (tests, I/O)
};

// Checks a config on every rank before anything is allocated or any collective is called;
// throws a usage Error naming the flag. `ranks` is the communicator size.
void validate(const JobConfig& config, int ranks);

// Rows [lo, hi) of n owned by rank r of P: contiguous, sizes differ by at most one.
struct ShardRange {
  std::int64_t lo, hi;
};
ShardRange shard_range(std::int64_t n, int ranks, int rank);

// One strategy's result: its rows, their aggregates and its own columns (schema.hpp names
// every field; outputs iterate the schema, not these members).
struct StrategyResult {
  WindowSpec spec;
  std::vector<RowStats> rows;
  Summary k, kept_mass, attn_l1, attn_l2, attn_linf, out_l2, out_linf, out_rel, cert_mass, cert_out;
  // Columns (strategy_columns()); integers are whole doubles.
  double clamped_rows = 0;
  double features = 0;          // taylor: t features of φ; features: e, the reduced dimension
  double state_bytes = 0;       // taylor: its sketch per rank (S and z, doubles); features: R (d × e floats)
  double lost_rows = 0;         // taylor: rows whose denominator φ(q)ᵀz was lost to cancellation (output NaN)
  double unconverged_rows = 0;  // taylor: rows whose degree-q terms carry more than 10% of the denominator
  double max_last_share = 0;    // taylor: the largest such share over the rows
  double min_cancellation = 0;  // taylor: smallest |φ(q)ᵀz| / Σ|φ(q)_f z_f| over the rows
};

struct SparsityResult {
  double eps = 0;
  Summary count;                    // entries with p > ε per row
  std::int64_t uncovered_rows = 0;  // rows whose list was too short to count them all
};

// Wall time of each phase in seconds (schema.hpp: phase_times()), of the rank whose job took
// longest, so that the phases sum to its total: `other` is what no phase covers (set-up of
// the backend and stages, time between phases). run_job leaves `startup` 0 and `total` the
// job's; run and attend extend them to the whole process (cli/commands.hpp: ProcessAccount).
struct PhaseTimes {
  double generate = 0, local_pass = 0, merge = 0, sparse = 0, approx = 0, stats = 0, output = 0, startup = 0,
         other = 0, total = 0;
};

struct JobResult {
  JobConfig config;
  int ranks = 1;
  double scale = 0;
  std::int64_t list_length = 0;  // K + 1
  double v_max_norm = 0;
  std::vector<std::int64_t> row_ids;    // evaluated rows of Q
  std::vector<std::int64_t> positions;  // their sequence positions
  std::vector<StrategyResult> strategies;
  std::vector<SparsityResult> sparsity;
  PhaseTimes times;
  std::string collectives = "mpi";  // how ranks merged: "nccl", or "mpi" with the reason
  Summary score_max;                // the row's largest score s·q·k (exact pass only): the score range
  std::vector<std::string> warnings;  // one line each, identical on every rank (the CLI prints them from rank 0)
  // Parts of the job that ran on the CPU although the backend is another one (the report
  // header names them), e.g. "sink windows, approximators' dense passes".
  std::string cpu_fallback;
  // K and V were generated on the backend's device (bit-identical to the host generator).
  bool inputs_on_device = false;
  // Only with keep_rows: merged lists (queries × L), exact outputs (queries × d) and sparse
  // outputs per strategy (strategies × queries × d).
  std::vector<Candidate> lists;
  std::vector<double> o_exact;
  std::vector<double> o_sparse;
};

// Host buffers that outlive one job, for a caller that runs several (a study's configurations,
// attend's heads): the rank's key/value shard is allocated at the largest size asked for and
// stays mapped and faulted in, so later jobs pay neither the allocation nor the first touch
// of its pages (the kernel zeroes each fresh page: about 1.7 s per GiB on a VM). Contents
// are not carried between jobs. Not for concurrent jobs.
class JobWorkspace {
 public:
  JobWorkspace();
  ~JobWorkspace();
  JobWorkspace(const JobWorkspace&) = delete;
  JobWorkspace& operator=(const JobWorkspace&) = delete;
  // Room for a shard of `rows` keys of dimension d, allocated now but not touched: a caller
  // that knows its largest job reserves for it first, so that growing from job to job does
  // not allocate and fault in every intermediate size.
  void reserve(std::int64_t rows, std::int64_t d);
  struct Buffers;
  Buffers& buffers() { return *buffers_; }

 private:
  std::unique_ptr<Buffers> buffers_;
};

// Runs the job on every rank of comm. source: where K/V and Q come from (null: the generator
// of config.model); sink: receives each finished block (may be null); workspace: buffers
// kept for the caller's next job (null: the job's own, freed at its end).
JobResult run_job(const Comm& comm, const JobConfig& config, InputSource* source = nullptr, BlockSink* sink = nullptr,
                  JobWorkspace* workspace = nullptr);

}  // namespace ncsparse
