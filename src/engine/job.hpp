// The job's internals: what every stage of the block loop reads (Job), one merged query block
// (Block), and the stages that evaluate the strategies of one family (Stage). engine.cpp runs
// them; docs/architecture.md draws the life of one block.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/approx.hpp"
#include "ncsparse/backend.hpp"
#include "ncsparse/comm.hpp"
#include "ncsparse/engine.hpp"
#include "ncsparse/flash.hpp"

namespace ncsparse::engine {

// Set up once per job, identical in shape on every rank.
struct Job {
  const Comm& comm;   // MPI: agreement, maxima
  const Comm& merge;  // the merges: NCCL between GPUs, or MPI
  const JobConfig& config;
  DenseKernels& dense;
  Backend* backend;  // the local pass's backend, for its kernels on its own copy of the shard (null when streamed)
  KeyShard shard;  // this rank's keys in memory (count 0 when streamed)
  approx::KeyTiles& tiles;
  std::int64_t n, d, L;
  double scale;
  double v_max = 0;  // this rank's largest ‖v_j‖₂ (before the all-reduce), then every rank's
};

// One query block after the merges, identical on every rank.
struct Block {
  std::int64_t first = 0, rows = 0;  // rows [first, first + rows) of the evaluated rows
  const float* q = nullptr;          // rows × d
  const std::int64_t* pos = nullptr;
  std::span<const Candidate> lists;  // rows × L, merged
  std::span<const double> flash;     // rows × flash_row_size(d), merged; empty without the exact pass
  std::vector<std::int64_t> n_visible;
  std::vector<double> o_exact;     // rows × d (exact pass)
  std::vector<double> sum_sq_all;  // Σ_all p² per row (exact pass; 0 for an empty row)
  std::vector<std::size_t> listed; // the valid entries of each row's list (count_listed)

  // Counts each row's valid entries once, after the merge (every stage reads them).
  void count_listed(std::int64_t L) {
    listed.resize(static_cast<std::size_t>(rows));
    for (std::int64_t i = 0; i < rows; ++i) {
      listed[static_cast<std::size_t>(i)] =
          count_valid(lists.subspan(static_cast<std::size_t>(i * L), static_cast<std::size_t>(L)));
    }
  }
  std::span<const Candidate> valid(std::int64_t i, std::int64_t L) const {
    return lists.subspan(static_cast<std::size_t>(i * L), listed.at(static_cast<std::size_t>(i)));
  }
  // The row's merged exact state, or null without the exact pass.
  const double* exact(std::int64_t i, std::int64_t d) const {
    return flash.empty() ? nullptr
                         : flash.data() + static_cast<std::size_t>(i) * flash_row_size(static_cast<std::size_t>(d));
  }
  bool has_mass(std::int64_t i, std::int64_t d) const {
    const double* fl = exact(i, d);
    return fl != nullptr && fl[1] > 0;
  }
};

// Evaluates the strategies of one family (strategy.hpp), each rank the same calls.
class Stage {
 public:
  virtual ~Stage() = default;
  // The phase its work is timed in (schema.hpp: phase_times()).
  virtual double PhaseTimes::*phase() const = 0;
  // Before the first block (collective): the strategies' own pass over the keys.
  virtual void prepare(Job& job) { (void)job; }
  // The block's outputs of its strategies, merged over ranks (collective).
  virtual void outputs(const Job& job, const Block& block) = 0;
  // Per-row statistics and outputs ô of its strategies into results[w].rows and
  // sparse[w] (rows × d) for each of its strategies w (local).
  virtual void statistics(const Job& job, const Block& block, std::span<StrategyResult> results,
                          std::span<std::span<double>> sparse) = 0;
  // After the last block: its strategies' own columns and warnings.
  virtual void finish(JobResult& result) { (void)result; }
};

// The stage of a family for the strategies at `ids` of config.windows.
std::unique_ptr<Stage> make_prefix_stage(const JobConfig& config, std::vector<std::size_t> ids);
std::unique_ptr<Stage> make_key_set_stage(const JobConfig& config, std::vector<std::size_t> ids);
std::unique_ptr<Stage> make_approx_stage(const JobConfig& config, std::vector<std::size_t> ids);

// The exact pass's own numbers of a block: o_exact, n_visible, Σ p² (fills those of `block`).
void exact_outputs(const Job& job, Block& block);
// The score range and the ε-sparsity counts of the block's rows (exact pass only).
void exact_statistics(const Job& job, const Block& block, std::span<double> score_max,
                      std::span<std::vector<double>> sparsity_counts);

// The largest ‖v_j‖₂ over rows × d values.
double max_row_norm(const float* v, std::int64_t rows, std::int64_t d, int threads = 1);
// An upper bound of the true largest norm, for the overflow checks and the CPU backend's score
// margin: max_row_norm raised by norm_bound_margin(d).
double max_row_norm_bound(const float* x, std::int64_t rows, std::int64_t d, int threads = 1);
// The rounding margin of max_row_norm: d squares of floats are exact in double and their
// ordered sum is within (d − 1)·2⁻⁵³ of the true one (relative); twice that, and 1e-12.
inline double norm_bound_margin(std::int64_t d) { return 1.0 + 1e-12 + static_cast<double>(d) * 0x1p-52; }

// The norms the job needs of a shard: the largest ‖v_j‖² (as max_row_norm sums it) and
// max_row_norm_bound of K.
struct ShardNorms {
  double v_sq = 0, k_bound = 0;
};
// source->keys_values(first, rows, k, v) in chunks that fit in cache, each chunk's norms taken
// before the next is generated: the same rows and the same norms as generating the shard and
// then reading it again for each norm (passes over memory at about 4.6 GB/s; with the CPU
// backend's own pass over K, 0.2 s of the default job on one rank). For generated rows only:
// a file is read in as few calls as it can.
ShardNorms generate_with_norms(InputSource& source, std::int64_t first, std::int64_t rows, std::int64_t d,
                               int threads, std::span<float> k, std::span<float> v);

// Memory a rank needs (bytes), for the check in validate.
double memory_per_rank(const JobConfig& config, int ranks);

}  // namespace ncsparse::engine
