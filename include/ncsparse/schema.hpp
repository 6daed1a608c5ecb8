// The statistics schema: every number a job reports, once. Aggregation, the table/CSV/JSON
// output, study records and results files, HDF5 attend outputs, `report` and the docs' list of
// statistics are all produced from these tables (docs/architecture.md: adding a statistic).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "ncsparse/engine.hpp"

namespace ncsparse {

// When a per-row statistic has a value.
enum class Need {
  Always,       // every strategy, every run
  Exact,        // the exact pass (--exact): errors against exact attention
  Certificate,  // prefix strategies: the certificate needs a sorted list
};

// A per-row statistic, aggregated over rows into a Summary.
struct RowStatistic {
  const char* name;
  const char* meaning;
  const char* units;
  Need need;
  bool integer;
  double (*get)(const RowStats&);
  Summary StrategyResult::*summary;
};
std::span<const RowStatistic> row_statistics();

// The aggregates of every row statistic, in the order of Summary's fields.
inline constexpr const char* kAggregates[] = {"count", "mean", "min", "p50", "p90", "p99", "max"};
inline constexpr std::size_t kAggregateCount = std::size(kAggregates);
double aggregate(const Summary& s, std::size_t i);

// A per-strategy number that is not an aggregate of rows (0 where a strategy does not set it).
struct StrategyColumn {
  const char* name;
  const char* meaning;
  const char* units;
  bool integer;
  double StrategyResult::*field;
};
std::span<const StrategyColumn> strategy_columns();

// A phase of the job's wall time (max over ranks).
struct PhaseTime {
  const char* name;
  const char* label;  // in the table
  const char* meaning;
  double PhaseTimes::*field;
};
std::span<const PhaseTime> phase_times();

// Fills every Summary of the strategy's rows and its clamped_rows column.
void aggregate_rows(StrategyResult& s);

// The schema as Markdown tables (docs/statistics.md is this text; `ncsparse schema` prints it).
std::string schema_markdown();

}  // namespace ncsparse
