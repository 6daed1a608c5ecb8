#include "ncsparse/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace ncsparse {
namespace {

std::string num(double x, const char* fmt = "%.3g") {
  if (std::isnan(x)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, x);
  return buf;
}

std::string json_num(double x) {
  if (!std::isfinite(x)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

std::string json_str(const std::string& s) {
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

struct Metric {
  const char* name;
  const Summary StrategyResult::*field;
};
const Metric kMetrics[] = {
    {"k", &StrategyResult::k},
    {"kept_mass", &StrategyResult::kept_mass},
    {"attn_l1", &StrategyResult::attn_l1},
    {"attn_l2", &StrategyResult::attn_l2},
    {"attn_linf", &StrategyResult::attn_linf},
    {"out_l2", &StrategyResult::out_l2},
    {"out_linf", &StrategyResult::out_linf},
    {"out_rel", &StrategyResult::out_rel},
    {"cert_mass", &StrategyResult::cert_mass},
    {"cert_out", &StrategyResult::cert_out},
};

std::string table(const JobResult& r) {
  const JobConfig& c = r.config;
  std::ostringstream os;
  os << "ncsparse run: n=" << c.n << " d=" << c.model.d << " queries=" << c.queries
     << (c.queries == c.n ? " (all rows)" : " (sampled rows)") << " ranks=" << r.ranks << " threads/rank=" << c.threads
     << " backend=" << c.backend << " collectives=" << r.collectives << "\n"
     << "  model " << model_text(c) << ", seed " << c.model.seed << ", scale " << num(r.scale, "%.6g") << ", "
     << (c.causal ? "causal" : "not causal") << ", candidate list K+1=" << r.list_length << ", exact pass "
     << (c.exact ? "on" : "off") << "\n\n";

  char line[512];
  int name_width = 14;
  for (const StrategyResult& s : r.strategies) name_width = std::max(name_width, static_cast<int>(s.spec.text.size()));
  std::snprintf(line, sizeof line, "%-*s | %25s | %9s | %21s | %31s | %31s | %21s | %7s\n", name_width, "", "window k",
                "kept mass", "attention row error", "output error |o^-o|_2", "relative |o^-o|/|o|", "certificate bound",
                "clamped");
  os << line;
  std::snprintf(line, sizeof line,
                "%-*s | %7s %8s %8s | %9s | %10s %10s | %10s %10s %9s | %10s %10s %9s | %10s %10s | %7s\n", name_width, "strategy",
                "mean", "min", "max", "mean", "l1 mean", "linf mean", "mean", "p99", "max", "mean", "p99", "max",
                "mean", "max", "rows");
  os << line << std::string(std::string(line).size() - 1, '-') << "\n";
  for (const StrategyResult& s : r.strategies) {
    std::snprintf(line, sizeof line,
                  "%-*s | %7s %8s %8s | %9s | %10s %10s | %10s %10s %9s | %10s %10s %9s | %10s %10s | %7lld\n",
                  name_width, s.spec.text.c_str(), num(s.k.mean, "%.1f").c_str(), num(s.k.min, "%.0f").c_str(),
                  num(s.k.max, "%.0f").c_str(), num(s.kept_mass.mean, "%.4f").c_str(), num(s.attn_l1.mean).c_str(),
                  num(s.attn_linf.mean).c_str(), num(s.out_l2.mean).c_str(), num(s.out_l2.p99).c_str(),
                  num(s.out_l2.max).c_str(), num(s.out_rel.mean).c_str(), num(s.out_rel.p99).c_str(),
                  num(s.out_rel.max).c_str(), num(s.cert_out.mean).c_str(), num(s.cert_out.max).c_str(),
                  static_cast<long long>(s.clamped_rows));
    os << line;
  }
  const std::int64_t rows = r.strategies.empty() ? 0 : static_cast<std::int64_t>(r.strategies[0].rows.size());
  os << "(statistics over " << rows
     << " query rows; certificate bound: upper bound on |o^-o|_2 that needs no exact pass)\n";
  for (const StrategyResult& s : r.strategies) {
    if (s.spec.kind == WindowKind::Taylor) {
      os << s.spec.text << ": one-pass sketch with t = " << s.features << " features of phi, "
         << num(s.state_bytes / (1024.0 * 1024.0), "%.3g") << " MiB of state per rank; smallest |phi(q).z| / "
         << "sum|terms| " << num(s.min_cancellation, "%.2g");
      os << "; largest share of the degree-" << static_cast<int>(s.spec.a) << " terms " << num(s.max_last_share, "%.2g");
      if (s.unconverged_rows > 0) os << " (" << s.unconverged_rows << " rows above 0.1: not converged)";
      if (s.lost_rows > 0) os << "; " << s.lost_rows << " rows lost (NaN)";
      os << "\n";
    } else if (s.spec.kind == WindowKind::Features) {
      os << s.spec.text << ": e = " << s.features << " features; ||D(Y)^-1 exp(YY^T) - D(X)^-1 exp(XX^T)||_inf "
         << "over the " << s.attn_linf.count << " rows = " << num(s.attn_linf.max) << " (max attention-row linf)\n";
    }
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
  const PhaseTimes& t = r.times;
  std::snprintf(line, sizeof line,
                "wall time (s, max over ranks): inputs %.3f | local pass %.3f | merge %.3f | sparse softmax %.3f | "
                "approximators %.3f | stats %.3f | output %.3f | total %.3f\n",
                t.generate, t.local_pass, t.merge, t.sparse, t.approx, t.stats, t.output, t.total);
  os << line;
  return os.str();
}

std::string csv(const JobResult& r) {
  std::ostringstream os;
  os << "strategy,rows,clamped_rows,features,state_bytes,lost_rows,unconverged_rows";
  for (const Metric& m : kMetrics) {
    for (const char* a : {"mean", "min", "p50", "p90", "p99", "max"}) os << ',' << m.name << '_' << a;
  }
  os << "\n";
  for (const StrategyResult& s : r.strategies) {
    os << '"' << s.spec.text << '"' << ',' << s.rows.size() << ',' << s.clamped_rows << ',' << s.features << ','
       << json_num(s.state_bytes) << ',' << s.lost_rows << ',' << s.unconverged_rows;
    for (const Metric& m : kMetrics) {
      const Summary& x = s.*(m.field);
      for (double v : {x.mean, x.min, x.p50, x.p90, x.p99, x.max}) os << ',' << (std::isnan(v) ? "" : json_num(v));
    }
    os << "\n";
  }
  return os.str();
}

std::string summary_json(const Summary& s) {
  return "{\"count\": " + std::to_string(s.count) + ", \"mean\": " + json_num(s.mean) +
         ", \"min\": " + json_num(s.min) + ", \"p50\": " + json_num(s.p50) + ", \"p90\": " + json_num(s.p90) +
         ", \"p99\": " + json_num(s.p99) + ", \"max\": " + json_num(s.max) + "}";
}

std::string json(const JobResult& r) {
  const JobConfig& c = r.config;
  const ModelParams& m = c.model;
  std::ostringstream os;
  os << "{\n  \"ncsparse_version\": " << json_str(NCSPARSE_VERSION) << ",\n  \"config\": {\"n\": " << c.n
     << ", \"d\": " << m.d << ", \"queries\": " << c.queries << ", \"ranks\": " << r.ranks
     << ", \"threads\": " << c.threads << ", \"backend\": " << json_str(c.backend)
     << ", \"collectives\": " << json_str(r.collectives)
     << ", \"model\": " << json_str(to_string(m.model)) << ", \"x_dist\": " << json_str(to_string(m.x_dist))
     << ", \"B\": " << json_num(m.bound) << ", \"R\": " << json_num(m.weight_norm)
     << ", \"sigma\": " << json_num(m.sigma) << ", \"rope_theta\": " << json_num(m.rope_theta)
     << ", \"sinks\": " << m.sinks << ", \"sink_strength\": " << json_num(m.sink_strength) << ", \"tied\": " << (m.tied ? "true" : "false") << ", \"seed\": " << m.seed << ", \"scale\": " << json_num(r.scale)
     << ", \"causal\": " << (c.causal ? "true" : "false") << ", \"exact\": " << (c.exact ? "true" : "false")
     << ", \"block\": " << c.block << ", \"tile\": " << c.tile << ", \"max_k\": " << c.max_k
     << ", \"list_length\": " << r.list_length << ", \"stream\": " << (c.stream ? "true" : "false")
     << "},\n  \"v_max_norm\": " << json_num(r.v_max_norm) << ",\n  \"score_max\": " << summary_json(r.score_max)
     << ",\n  \"strategies\": [";
  for (std::size_t i = 0; i < r.strategies.size(); ++i) {
    const StrategyResult& s = r.strategies[i];
    os << (i ? "," : "") << "\n    {\"strategy\": " << json_str(s.spec.text) << ", \"rows\": " << s.rows.size()
       << ", \"clamped_rows\": " << s.clamped_rows << ", \"features\": " << s.features
       << ", \"state_bytes\": " << json_num(s.state_bytes) << ", \"lost_rows\": " << s.lost_rows
       << ", \"unconverged_rows\": " << s.unconverged_rows << ", \"max_last_share\": " << json_num(s.max_last_share);
    for (const Metric& mt : kMetrics) os << ", " << json_str(mt.name) << ": " << summary_json(s.*(mt.field));
    os << "}";
  }
  os << "\n  ],\n  \"sparsity\": [";
  for (std::size_t i = 0; i < r.sparsity.size(); ++i) {
    const SparsityResult& s = r.sparsity[i];
    os << (i ? ", " : "") << "{\"eps\": " << json_num(s.eps) << ", \"uncovered_rows\": " << s.uncovered_rows
       << ", \"count\": " << summary_json(s.count) << "}";
  }
  const PhaseTimes& t = r.times;
  os << "],\n  \"seconds\": {\"inputs\": " << json_num(t.generate) << ", \"local_pass\": " << json_num(t.local_pass)
     << ", \"merge\": " << json_num(t.merge) << ", \"sparse\": " << json_num(t.sparse)
     << ", \"approx\": " << json_num(t.approx) << ", \"stats\": " << json_num(t.stats) << ", \"output\": " << json_num(t.output) << ", \"total\": " << json_num(t.total) << "}\n}\n";
  return os.str();
}

}  // namespace

void print_warnings(int rank, const JobResult& result, const std::string& prefix) {
  if (rank != 0) return;
  for (const std::string& w : result.warnings) std::fprintf(stderr, "ncsparse: warning: %s%s\n", prefix.c_str(), w.c_str());
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
