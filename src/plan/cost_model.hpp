// The cost model of `ncsparse plan`: the predicted time of each phase of a job (the phases of
// `run --format json`, schema.hpp) and its memory per rank, from a machine profile. The
// formulas, and how they relate to the merge model, are in docs/scaling.md ("The cost model
// of `plan`"); this file is their one implementation.
#pragma once

#include <cstdint>
#include <string>

#include "ncsparse/engine.hpp"
#include "plan/profile.hpp"

namespace ncsparse::plan {

// Where the ranks run: `ranks_per_node` ranks share a node of the profile's cores (more ranks
// than cores × threads slow every compute phase by their ratio) and its memory.
struct NodeShape {
  int ranks_per_node = 1;
  int cores = 1;
  double memory_per_node = 0;  // bytes a node offers its ranks (MemAvailable)
  double memory_per_rank = 0;  // > 0: given (--mem-per-rank), else memory_per_node / ranks on it
  double background = 0;       // runnable threads of other work on each node beyond the profile's
};

struct Prediction {
  int ranks = 1;
  // Seconds, the phases of run's report (total = their sum).
  double startup = 0, inputs = 0, local_pass = 0, merge = 0, sparse = 0, stats = 0, other = 0, total = 0;
  double exact = 0;  // the exact pass's share of local_pass (its exponentials and P·V; run reports it there)
  double oversubscription = 1;  // (ranks × threads + background) over cores on a node (>= 1)
  double memory = 0;            // bytes per rank (the engine's memory plan)
  double memory_limit = 0;      // bytes a rank may use
  bool fits = true;
};

// The selection's cost per list entry relative to the calibrated one, for a shard of x keys per
// list entry: 1/2 when the list is the whole shard (x ≤ 1), 1 from x = 8 (docs/scaling.md).
double selection_scale(double keys_per_entry);

// One job (a configuration) on `ranks` ranks. Counts start-up when `with_startup` (the first
// job of a process; a study's later configurations do not start a process).
Prediction predict(const JobConfig& job, int ranks, const Profile& profile, const NodeShape& node,
                   bool with_startup = true);

// The time of a collective of `bytes` per rank at `ranks`, from its fit at fit.ranks: scaled
// by ⌈log₂ ranks⌉ / ⌈log₂ fit.ranks⌉; 0 on one rank; the default profile's when not measured.
// With `row_owner` (the candidate merge that choose_topk_merge picks at these ranks and bytes),
// α scales with the messages, 2(P − 1), and β with the bytes each rank sends and receives,
// 2(P − 1)/P of its lists, which do not grow with log P (docs/scaling.md).
double collective_seconds(const CollectiveFit& fit, const CollectiveFit& fallback, int ranks, double bytes,
                          bool row_owner = false);

}  // namespace ncsparse::plan
