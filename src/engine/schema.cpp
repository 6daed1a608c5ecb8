#include "ncsparse/schema.hpp"

#include <iterator>
#include <sstream>

namespace ncsparse {
namespace {

const RowStatistic kRowStatistics[] = {
    {"k", "keys in the window (the row's whole visible count for approximators)", "keys", Need::Always, true,
     [](const RowStats& r) { return static_cast<double>(r.k); }, &StrategyResult::k},
    {"kept_mass", "M, the exact softmax mass of the kept keys", "probability", Need::Exact, false,
     [](const RowStats& r) { return r.kept_mass; }, &StrategyResult::kept_mass},
    {"attn_l1", "l1 distance of the sparse attention row to the exact one", "probability", Need::Exact, false,
     [](const RowStats& r) { return r.attn_l1; }, &StrategyResult::attn_l1},
    {"attn_l2", "l2 distance of the sparse attention row to the exact one", "probability", Need::Exact, false,
     [](const RowStats& r) { return r.attn_l2; }, &StrategyResult::attn_l2},
    {"attn_linf", "largest entry-wise distance of the attention rows", "probability", Need::Exact, false,
     [](const RowStats& r) { return r.attn_linf; }, &StrategyResult::attn_linf},
    {"out_l2", "‖ô − o‖₂, the output error", "units of V", Need::Exact, false,
     [](const RowStats& r) { return r.out_l2; }, &StrategyResult::out_l2},
    {"out_linf", "‖ô − o‖∞", "units of V", Need::Exact, false, [](const RowStats& r) { return r.out_linf; },
     &StrategyResult::out_linf},
    {"out_rel", "‖ô − o‖₂ / ‖o‖₂", "ratio", Need::Exact, false, [](const RowStats& r) { return r.out_rel; },
     &StrategyResult::out_rel},
    {"cert_mass", "certified upper bound on the dropped mass 1 - M, without the exact pass", "probability",
     Need::Certificate, false, [](const RowStats& r) { return r.cert_mass; }, &StrategyResult::cert_mass},
    {"cert_out", "certified upper bound on ‖ô − o‖₂, without the exact pass", "units of V", Need::Certificate, false,
     [](const RowStats& r) { return r.cert_out; }, &StrategyResult::cert_out},
};

const StrategyColumn kStrategyColumns[] = {
    {"clamped_rows", "rows whose window was clamped to [1, min(K, visible keys)]", "rows", true,
     &StrategyResult::clamped_rows},
    {"features", "taylor: t features of phi; features: e, the reduced dimension", "features", true,
     &StrategyResult::features},
    {"state_bytes", "taylor: the sketch S, z per rank; features: the projection R", "bytes", false,
     &StrategyResult::state_bytes},
    {"lost_rows", "taylor: rows whose denominator was lost to cancellation (output NaN, left out)", "rows", true,
     &StrategyResult::lost_rows},
    {"unconverged_rows", "taylor: rows whose degree-q terms carry more than 10% of the denominator", "rows", true,
     &StrategyResult::unconverged_rows},
    {"max_last_share", "taylor: the largest share of the degree-q terms over the rows", "ratio", false,
     &StrategyResult::max_last_share},
    {"min_cancellation", "taylor: the smallest φ(q)ᵀz over the sum of its terms' magnitudes, over the rows", "ratio",
     false, &StrategyResult::min_cancellation},
};

const PhaseTime kPhaseTimes[] = {
    {"inputs", "inputs", "K, V and Q generated or read", &PhaseTimes::generate},
    {"local_pass", "local pass", "the one-pass local scan (top-k lists and exact states)", &PhaseTimes::local_pass},
    {"merge", "merge", "all-reduce top-k and log-sum-exp merge", &PhaseTimes::merge},
    {"sparse", "sparse softmax", "sparse softmax of prefix and key-set windows", &PhaseTimes::sparse},
    {"approx", "approximators", "the approximators: sketches, projections, their passes, reductions and row errors",
     &PhaseTimes::approx},
    {"stats", "stats", "per-row statistics and their aggregates", &PhaseTimes::stats},
    {"output", "output", "writing per-row outputs", &PhaseTimes::output},
    {"startup", "start-up",
     "from the process's start to the command's: loading, MPI initialisation, parsing the arguments (run and "
     "attend; 0 in studies)",
     &PhaseTimes::startup},
    {"other", "other",
     "what no phase covers: opening the input and output files, setting up the backend and stages, between "
     "phases, and after the job until the report is printed",
     &PhaseTimes::other},
    {"total", "total",
     "the sum of the phases: the whole process until the report is printed (run, attend), or the job (studies)",
     &PhaseTimes::total},
};

const char* need_text(Need n) {
  switch (n) {
    case Need::Exact:
      return "exact pass";
    case Need::Certificate:
      return "prefix windows";
    default:
      return "always";
  }
}

}  // namespace

std::span<const RowStatistic> row_statistics() { return kRowStatistics; }
std::span<const StrategyColumn> strategy_columns() { return kStrategyColumns; }
std::span<const PhaseTime> phase_times() { return kPhaseTimes; }

double aggregate(const Summary& s, std::size_t i) {
  switch (i) {
    case 0:
      return static_cast<double>(s.count);
    case 1:
      return s.mean;
    case 2:
      return s.min;
    case 3:
      return s.p50;
    case 4:
      return s.p90;
    case 5:
      return s.p99;
    default:
      return s.max;
  }
}

void aggregate_rows(StrategyResult& s) {
  std::vector<double> col(s.rows.size());
  for (const RowStatistic& stat : kRowStatistics) {
    for (std::size_t i = 0; i < col.size(); ++i) col[i] = stat.get(s.rows[i]);
    s.*stat.summary = summarize(col);
  }
  s.clamped_rows = 0;
  for (const RowStats& r : s.rows) s.clamped_rows += r.clamped ? 1 : 0;
}

std::string schema_markdown() {
  std::ostringstream os;
  os << "### Per-row statistics\n\nAggregated over the evaluated rows as";
  for (const char* a : kAggregates) os << ' ' << a;
  os << " (NaN rows left out of count).\n\n| name | meaning | units | needs |\n|---|---|---|---|\n";
  for (const RowStatistic& s : kRowStatistics) {
    os << "| `" << s.name << "` | " << s.meaning << " | " << s.units << " | " << need_text(s.need) << " |\n";
  }
  os << "\n### Per-strategy columns\n\n| name | meaning | units |\n|---|---|---|\n";
  for (const StrategyColumn& c : kStrategyColumns) {
    os << "| `" << c.name << "` | " << c.meaning << " | " << c.units << " |\n";
  }
  os << "\n### Phase times (seconds, of the rank whose job took longest; they sum to `total`)\n\n| name | meaning |\n|---|---|\n";
  for (const PhaseTime& p : kPhaseTimes) os << "| `" << p.name << "` | " << p.meaning << " |\n";
  return os.str();
}

}  // namespace ncsparse
