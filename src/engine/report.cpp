#include "ncsparse/report.hpp"

#include "comm/mpi_startup.hpp"
#include "ncsparse/schema.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace ncsparse {
namespace {

std::string num(double x, const char* fmt = "%.3g") { return format_number(x, fmt); }


std::string model_text(const JobConfig& c) {
  std::ostringstream os;
  const ModelParams& m = c.model;
  if (m.model == InputModel::Paper) {
    os << "paper (X " << to_string(m.x_dist) << ", B=" << m.bound << ", R=" << m.weight_norm << ")";
  } else {
    os << "gaussian (sigma=" << m.sigma << ")";
  }
  if (m.rope_theta > 0) os << ", RoPE theta=" << m.rope_theta;
  if (m.sinks > 0) os << ", " << m.sinks << " sinks of strength " << m.sink_strength;
  if (m.tied) os << ", tied (Q = K)";
  return os.str();
}

std::string table(const JobResult& r) {
  const JobConfig& c = r.config;
  std::ostringstream os;
  os << "ncsparse run: n=" << c.n << " d=" << c.model.d << " queries=" << c.queries
     << (c.queries == c.n ? " (all rows)" : " (sampled rows)") << " ranks=" << r.ranks << " threads/rank=" << c.threads
     << " backend=" << c.backend << " collectives=" << r.collectives
     << (c.score_precision != "fp32" ? " score-precision=" + c.score_precision + " (filter only)" : std::string())
     << "\n"
     << "  model " << model_text(c) << ", seed " << c.model.seed << ", scale " << num(r.scale, "%.6g") << ", "
     << (c.causal ? "causal" : "not causal") << ", candidate list K+1=" << r.list_length << ", exact pass "
     << (c.exact ? "on" : "off") << "\n";
  if (!r.cpu_fallback.empty())
    os << "  on the CPU although the backend is " << c.backend << ": " << r.cpu_fallback << "\n";
  if (r.inputs_on_device) os << "  K and V generated on the " << c.backend << " device (bit-identical to the host's)\n";
  os << "\n";

  char line[512];
  int name_width = 14;
  for (const StrategyResult& s : r.strategies) name_width = std::max(name_width, static_cast<int>(s.spec.text.size()));
  std::snprintf(line, sizeof line, "%-*s | %25s | %9s | %21s | %31s | %31s | %21s | %7s\n", name_width, "", "window k",
                "kept mass", "attention row error", "output error |o^-o|_2", "relative |o^-o|/|o|", "certificate bound",
                "clamped");
  os << line;
  std::snprintf(line, sizeof line,
                "%-*s | %7s %8s %8s | %9s | %10s %10s | %10s %10s %9s | %10s %10s %9s | %10s %10s | %7s\n", name_width,
                "strategy", "mean", "min", "max", "mean", "l1 mean", "linf mean", "mean", "p99", "max", "mean", "p99",
                "max", "mean", "max", "rows");
  os << line << std::string(std::string(line).size() - 1, '-') << "\n";
  for (const StrategyResult& s : r.strategies) {
    std::snprintf(
        line, sizeof line, "%-*s | %7s %8s %8s | %9s | %10s %10s | %10s %10s %9s | %10s %10s %9s | %10s %10s | %7lld\n",
        name_width, s.spec.text.c_str(), num(s.k.mean, "%.1f").c_str(), num(s.k.min, "%.0f").c_str(),
        num(s.k.max, "%.0f").c_str(), num(s.kept_mass.mean, "%.4f").c_str(), num(s.attn_l1.mean).c_str(),
        num(s.attn_linf.mean).c_str(), num(s.out_l2.mean).c_str(), num(s.out_l2.p99).c_str(), num(s.out_l2.max).c_str(),
        num(s.out_rel.mean).c_str(), num(s.out_rel.p99).c_str(), num(s.out_rel.max).c_str(),
        num(s.cert_out.mean).c_str(), num(s.cert_out.max).c_str(), static_cast<long long>(s.clamped_rows));
    os << line;
  }
  const std::int64_t rows = r.strategies.empty() ? 0 : static_cast<std::int64_t>(r.strategies[0].rows.size());
  os << "(statistics over " << rows
     << " query rows; certificate bound: upper bound on |o^-o|_2 that needs no exact pass)\n";
  for (const StrategyResult& s : r.strategies) {
    const std::string line = s.spec->summary_line(s);
    if (!line.empty()) os << s.spec.text << ": " << line << "\n";
  }
  if (r.score_max.count > 0) {
    os << "score range: largest s*q.k per row: mean " << num(r.score_max.mean) << ", min " << num(r.score_max.min)
       << ", max " << num(r.score_max.max) << "\n";
  }
  for (const SparsityResult& s : r.sparsity) {
    os << "epsilon-sparsity: entries with p > " << num(s.eps, "%.0e") << " per row: mean " << num(s.count.mean, "%.2f")
       << ", p50 " << num(s.count.p50, "%.0f") << ", max " << num(s.count.max, "%.0f") << " (" << s.count.count
       << " rows";
    if (s.uncovered_rows > 0) os << "; " << s.uncovered_rows << " rows had more than K entries and are left out";
    os << ")\n";
  }
  os << "wall time (s, slowest rank; the phases sum to total):";
  const char* sep = " ";
  for (const PhaseTime& p : phase_times()) {
    std::snprintf(line, sizeof line, "%s%s %.3f", sep, p.label, r.times.*p.field);
    os << line;
    sep = " | ";
  }
  os << "\n(--format csv or json: every statistic of docs/statistics.md)\n";
  return os.str();
}

std::string csv(const JobResult& r) {
  std::ostringstream os;
  os << "strategy,rows";
  for (const StrategyColumn& c : strategy_columns()) os << ',' << c.name;
  for (const RowStatistic& m : row_statistics()) {
    for (const char* a : kAggregates) os << ',' << m.name << '_' << a;
  }
  os << "\n";
  for (const StrategyResult& s : r.strategies) {
    os << '"' << s.spec.text << '"' << ',' << s.rows.size();
    for (const StrategyColumn& c : strategy_columns()) os << ',' << json_number(s.*c.field);
    for (const RowStatistic& m : row_statistics()) {
      const Summary& x = s.*m.summary;
      for (std::size_t a = 0; a < kAggregateCount; ++a) {
        const double v = aggregate(x, a);
        os << ',' << (std::isnan(v) ? "" : json_number(v));
      }
    }
    os << "\n";
  }
  return os.str();
}

std::string summary_json(const Summary& s) {
  return "{\"count\": " + std::to_string(s.count) + ", \"mean\": " + json_number(s.mean) +
         ", \"min\": " + json_number(s.min) + ", \"p50\": " + json_number(s.p50) + ", \"p90\": " + json_number(s.p90) +
         ", \"p99\": " + json_number(s.p99) + ", \"max\": " + json_number(s.max) + "}";
}

std::string json(const JobResult& r) {
  const JobConfig& c = r.config;
  const ModelParams& m = c.model;
  std::ostringstream os;
  os << "{\n  \"ncsparse_version\": " << json_string(NCSPARSE_VERSION) << ",\n  \"config\": {\"n\": " << c.n
     << ", \"d\": " << m.d << ", \"queries\": " << c.queries << ", \"ranks\": " << r.ranks
     << ", \"threads\": " << c.threads << ", \"backend\": " << json_string(c.backend)
     << ", \"score_precision\": " << json_string(c.score_precision)
     << ", \"collectives\": " << json_string(r.collectives)
     << ", \"mpi_startup\": " << json_string(mpi_startup_description()) << ", \"model\": " << json_string(to_string(m.model))
     << ", \"x_dist\": " << json_string(to_string(m.x_dist)) << ", \"B\": " << json_number(m.bound)
     << ", \"R\": " << json_number(m.weight_norm) << ", \"sigma\": " << json_number(m.sigma)
     << ", \"rope_theta\": " << json_number(m.rope_theta) << ", \"sinks\": " << m.sinks
     << ", \"sink_strength\": " << json_number(m.sink_strength) << ", \"tied\": " << (m.tied ? "true" : "false")
     << ", \"seed\": " << m.seed << ", \"scale\": " << json_number(r.scale)
     << ", \"causal\": " << (c.causal ? "true" : "false") << ", \"exact\": " << (c.exact ? "true" : "false")
     << ", \"block\": " << c.block << ", \"tile\": " << c.tile << ", \"max_k\": " << c.max_k
     << ", \"list_length\": " << r.list_length << ", \"stream\": " << (c.stream ? "true" : "false")
     << "},\n  \"v_max_norm\": " << json_number(r.v_max_norm) << ",\n  \"score_max\": " << summary_json(r.score_max)
     << ",\n  \"strategies\": [";
  for (std::size_t i = 0; i < r.strategies.size(); ++i) {
    const StrategyResult& s = r.strategies[i];
    os << (i ? "," : "") << "\n    {\"strategy\": " << json_string(s.spec.text) << ", \"rows\": " << s.rows.size();
    for (const StrategyColumn& c : strategy_columns()) os << ", " << json_string(c.name) << ": " << json_number(s.*c.field);
    for (const RowStatistic& mt : row_statistics())
      os << ", " << json_string(mt.name) << ": " << summary_json(s.*mt.summary);
    os << "}";
  }
  os << "\n  ],\n  \"sparsity\": [";
  for (std::size_t i = 0; i < r.sparsity.size(); ++i) {
    const SparsityResult& s = r.sparsity[i];
    os << (i ? ", " : "") << "{\"eps\": " << json_number(s.eps) << ", \"uncovered_rows\": " << s.uncovered_rows
       << ", \"count\": " << summary_json(s.count) << "}";
  }
  os << "],\n  \"seconds\": {";
  for (const PhaseTime& p : phase_times()) {
    os << (p.field == phase_times()[0].field ? "" : ", ") << json_string(p.name) << ": " << json_number(r.times.*p.field);
  }
  os << "}";
  if (!r.cpu_fallback.empty()) os << ",\n  \"cpu_fallback\": " << json_string(r.cpu_fallback);
  if (r.inputs_on_device) os << ",\n  \"inputs_on_device\": true";
  os << "\n}\n";
  return os.str();
}

}  // namespace

std::string json_number(double x) {
  if (!std::isfinite(x)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string format_number(double x, const char* fmt) {
  if (std::isnan(x)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, x);
  return buf;
}

std::string format_gib(double bytes) { return format_number(bytes / (1024.0 * 1024.0 * 1024.0), "%.1f") + " GiB"; }

void print_warnings(int rank, const JobResult& result, const std::string& prefix) {
  if (rank != 0) return;
  for (const std::string& w : result.warnings)
    std::fprintf(stderr, "ncsparse: warning: %s%s\n", prefix.c_str(), w.c_str());
  std::fflush(stderr);
}

Format parse_format(const std::string& text) {
  if (text == "table") return Format::Table;
  if (text == "csv") return Format::Csv;
  if (text == "json") return Format::Json;
  throw usage_error("--format: unknown format '" + text + "' (use table, csv or json)");
}

std::string format_result(const JobResult& result, Format format) {
  switch (format) {
    case Format::Csv:
      return csv(result);
    case Format::Json:
      return json(result);
    default:
      return table(result);
  }
}

}  // namespace ncsparse
