#include "study/fit.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

#include "ncsparse/error.hpp"
#include "study/report_study.hpp"
#include "study/study_spec.hpp"

namespace ncsparse::study {
namespace {

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// P(T <= x) for x >= 0: 1/2 plus the density integrated over [0, x] (composite Simpson on the
// substitution t = tan(φ)·√ν, whose integrand is smooth and bounded on [0, atan(x/√ν)]).
double student_t_cdf_pos(double x, double dof) {
  const double log_c = std::lgamma((dof + 1) / 2) - std::lgamma(dof / 2) - 0.5 * std::log(dof * M_PI);
  // t = √ν tan φ, dt = √ν sec²φ dφ, (1 + t²/ν) = sec²φ: integrand c·√ν·cos^(ν−1) φ.
  const double upper = std::atan(x / std::sqrt(dof));
  const int steps = 2000;
  const double h = upper / steps;
  double sum = 0;
  for (int i = 0; i <= steps; ++i) {
    const double f = std::pow(std::cos(i * h), dof - 1);
    sum += f * (i == 0 || i == steps ? 1 : (i % 2 ? 4 : 2));
  }
  return 0.5 + std::exp(log_c) * std::sqrt(dof) * sum * h / 3;
}

std::string fmt(double x, const char* f = "%.4g") {
  if (!std::isfinite(x)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

// Three significant digits, rounded up.
double round_up_3(double x) {
  if (!(x > 0) || !std::isfinite(x)) return x;
  const double scale = std::pow(10.0, std::floor(std::log10(x)) - 2);
  // Printed with three digits and read back, so the text is short (0.959, not 0.9590000000000001).
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", std::ceil(x / scale * (1 - 1e-12)) * scale);
  return std::strtod(buf, nullptr);
}

}  // namespace

double normal_quantile(double p) {
  if (!(p > 0 && p < 1)) throw usage_error("normal_quantile: p must lie in (0, 1)");
  double lo = -40, hi = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    (normal_cdf(mid) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

double student_t_quantile(double p, double dof) {
  if (!(p > 0 && p < 1)) throw usage_error("student_t_quantile: p must lie in (0, 1)");
  if (!(dof > 0)) throw usage_error("student_t_quantile: degrees of freedom must be > 0");
  if (p < 0.5) return -student_t_quantile(1 - p, dof);
  if (p == 0.5) return 0;
  if (dof > 1e6) return normal_quantile(p);
  double lo = 0, hi = 1;
  while (student_t_cdf_pos(hi, dof) < p && hi < 1e12) hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; ++i) {
    const double mid = (lo + hi) / 2;
    (student_t_cdf_pos(mid, dof) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

PowerLawFit fit_power_law(std::span<const FitPoint> points, double confidence) {
  if (!(confidence > 0 && confidence < 1)) throw usage_error("--confidence: must lie in (0, 1), e.g. 0.95");
  PowerLawFit f;
  f.confidence = confidence;
  std::vector<double> xs, ys;
  std::set<double> distinct;
  for (const FitPoint& p : points) {
    if (!(p.y > 0) || !std::isfinite(p.y) || !(p.n > 0)) {
      ++f.skipped;
      continue;
    }
    xs.push_back(std::log(p.n));
    ys.push_back(std::log(p.y));
    distinct.insert(p.n);
    f.n_min = f.n_min == 0 ? p.n : std::min(f.n_min, p.n);
    f.n_max = std::max(f.n_max, p.n);
  }
  f.points = static_cast<std::int64_t>(xs.size());
  if (xs.size() < 3 || distinct.size() < 2) {
    f.why = std::to_string(xs.size()) + " point(s) with support > 0 at " + std::to_string(distinct.size()) +
            " length(s); a fit needs 3 points at 2 or more lengths";
    return f;
  }
  const double m = static_cast<double>(xs.size());
  double mx = 0, my = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) mx += xs[i], my += ys[i];
  mx /= m, my /= m;
  double sxx = 0, sxy = 0, syy = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    sxx += (xs[i] - mx) * (xs[i] - mx);
    sxy += (xs[i] - mx) * (ys[i] - my);
    syy += (ys[i] - my) * (ys[i] - my);
  }
  f.c = sxy / sxx;
  f.log_a = my - f.c * mx;
  double rss = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double r = ys[i] - f.log_a - f.c * xs[i];
    rss += r * r;
  }
  f.r2 = syy > 0 ? 1 - rss / syy : 1;
  f.se_c = std::sqrt(rss / (m - 2) / sxx);
  const double t = student_t_quantile((1 + confidence) / 2, m - 2);
  f.c_lo = f.c - t * f.se_c;
  f.c_hi = f.c + t * f.se_c;
  f.ok = true;
  return f;
}

double covering_alpha(std::span<const FitPoint> points, double c) {
  double alpha = 0;
  for (const FitPoint& p : points) {
    if (p.y > 0 && std::isfinite(p.y)) alpha = std::max(alpha, p.y / std::pow(p.n, c));
  }
  return round_up_3(alpha);
}

FitFormat parse_fit_format(const std::string& text) {
  if (text == "table") return FitFormat::Table;
  if (text == "markdown") return FitFormat::Markdown;
  if (text == "csv") return FitFormat::Csv;
  throw usage_error("--format: unknown format '" + text + "' (use table, markdown or csv)");
}

namespace {

// One measure of one regime: its points (mean support per configuration) and, for mass
// windows, the rows' p90 support (for the covering α).
struct Measure {
  std::vector<FitPoint> mean, p90;
  std::int64_t excluded = 0;  // configurations left out: uncovered or clamped rows
  double delta = 0;           // mass:δ only
};
struct Regime {
  std::map<std::string, Measure> measures;  // keyed by display name, in a stable order
  std::vector<std::string> order;
  std::set<std::uint64_t> seeds;

  Measure& measure(const std::string& name) {
    if (!measures.count(name)) order.push_back(name);
    return measures[name];
  }
};
struct Regimes {
  std::map<std::string, Regime> by_key;
  std::vector<std::string> order;
};

void check_fit_options(const FitOptions& o) {
  if (!(o.confidence > 0 && o.confidence < 1)) throw usage_error("--confidence: must lie in (0, 1), e.g. 0.95");
  if (o.target_l1 < 0 || o.target_l1 >= 2 || !std::isfinite(o.target_l1)) {
    throw usage_error("--target-l1: the mean attention-row l1 error must lie in (0, 2), e.g. 0.02");
  }
  if (o.min_n < 0) throw usage_error("--min-n: must be >= 0");
}

// The record's sparsity counts (one measure per level), at length nn.
void add_sparsity(Regime& g, const Record& r, double nn) {
  const auto it = r.arrays.find("sparsity");
  if (it == r.arrays.end()) return;
  const std::vector<double>& sp = it->second.values;
  for (std::size_t e = 0; e + 9 <= sp.size(); e += 9) {
    Measure& m = g.measure("count p>" + num_text(sp[e]));
    if (sp[e + 8] > 0 || !std::isfinite(sp[e + 2])) {
      ++m.excluded;
      continue;
    }
    m.mean.push_back({nn, sp[e + 2]});
  }
}

// The record's k of its mass:δ and cert: strategies, at length nn.
void add_adaptive_k(Regime& g, const Record& r, double nn) {
  std::istringstream in(r.text.at("strategies"));
  std::size_t s = 0;
  for (std::string name; std::getline(in, name); ++s) {
    const bool mass = name.rfind("mass:", 0) == 0, cert = name.rfind("cert:", 0) == 0;
    if (!mass && !cert) continue;
    Measure& m = g.measure("k " + name);
    if (mass) m.delta = std::strtod(name.c_str() + 5, nullptr);
    const std::vector<double>& k = r.arrays.at("stat_k").values;
    if (r.arrays.at("clamped_rows").values.at(s) > 0 || !std::isfinite(k.at(s * 7 + 1))) {
      ++m.excluded;
      continue;
    }
    m.mean.push_back({nn, k.at(s * 7 + 1)});
    m.p90.push_back({nn, k.at(s * 7 + 4)});
  }
}

// Groups the records with n >= min_n by regime (model, d, causal, scale), in first-seen order.
Regimes group_regimes(const std::vector<Record>& recs, std::int64_t min_n) {
  Regimes out;
  for (const Record& r : recs) {
    const std::int64_t n = r.ints.at("n");
    if (n < min_n) continue;
    std::string key = r.text.at("model") + " d=" + std::to_string(r.ints.at("d"));
    if (r.ints.at("causal")) key += " causal";
    if (r.num.at("scale_requested") != 0) key += " scale=" + num_text(r.num.at("scale_requested"));
    if (!out.by_key.count(key)) out.order.push_back(key);
    Regime& g = out.by_key[key];
    g.seeds.insert(static_cast<std::uint64_t>(r.ints.at("seed")));
    const double nn = static_cast<double>(n);
    add_sparsity(g, r, nn);
    add_adaptive_k(g, r, nn);
  }
  return out;
}

void write_regime_head(std::ostringstream& os, const std::string& key, const Regime& g, bool md, int conf_pct) {
  os << (md ? "### " : "== ") << key << " (" << g.seeds.size() << " seed(s))" << (md ? "\n\n" : "\n");
  if (md) {
    os << "| measure | C | " << conf_pct << "% CI | a (mean = a·n^C) | R² | points | n range | window |\n"
       << "|---|---|---|---|---|---|---|---|\n";
  } else {
    char head[256];
    std::snprintf(head, sizeof head, "%-18s %9s %22s %10s %7s %7s %21s  %s\n", "measure", "C",
                  (std::to_string(conf_pct) + "% CI").c_str(), "a", "R^2", "points", "n range", "window");
    os << head;
  }
}

// The window covering a fitted mass:δ measure: power:α,C rounded up, or const:K when the
// support does not grow.
std::string covering_window(const Measure& m, const PowerLawFit& f) {
  if (f.c > 0) {
    const double c = std::min(1.0, std::ceil(f.c * 1000) / 1000);
    return "power:" + num_text(covering_alpha(m.p90, c)) + "," + num_text(c);
  }
  double most = 0;
  for (const FitPoint& p : m.p90) most = std::max(most, p.y);
  return "const:" + std::to_string(static_cast<std::int64_t>(std::ceil(most)));
}

// A CSV field in double quotes, its quotes doubled (RFC 4180): regime keys and recommended
// windows (power:A,C) hold commas.
std::string csv_quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + '"';
}

void write_measure_row(std::ostringstream& os, const std::string& key, const std::string& name, const Measure& m,
                       const PowerLawFit& f, const std::string& window, FitFormat format) {
  const std::string range = f.ok ? fmt(f.n_min, "%.0f") + ".." + fmt(f.n_max, "%.0f") : "-";
  if (format == FitFormat::Csv) {
    os << csv_quoted(key) << ',' << name << ',' << fmt(f.c, "%.6g") << ',' << fmt(f.c_lo, "%.6g") << ','
       << fmt(f.c_hi, "%.6g") << ',' << fmt(f.se_c, "%.6g") << ',' << fmt(std::exp(f.log_a), "%.6g") << ','
       << fmt(f.r2, "%.6g") << ',' << f.points << ',' << f.skipped << ',' << m.excluded << ','
       << fmt(f.n_min, "%.0f") << ',' << fmt(f.n_max, "%.0f") << ',' << (window.empty() ? "" : csv_quoted(window))
       << '\n';
    return;
  }
  const std::string ci = f.ok ? "[" + fmt(f.c_lo, "%.3f") + ", " + fmt(f.c_hi, "%.3f") + "]" : f.why;
  std::string note;
  if (f.skipped > 0) note += " (" + std::to_string(f.skipped) + " zero)";
  if (m.excluded > 0) note += " (" + std::to_string(m.excluded) + " excluded: list too short or clamped)";
  if (format == FitFormat::Markdown) {
    os << "| " << name << " | " << fmt(f.c, "%.3f") << " | " << ci << " | " << fmt(std::exp(f.log_a)) << " | "
       << fmt(f.r2, "%.3f") << " | " << f.points << note << " | " << range << " | " << (window.empty() ? "" : "`" + window + "`")
       << " |\n";
  } else {
    char line[512];
    std::snprintf(line, sizeof line, "%-18s %9s %22s %10s %7s %7lld %21s  %s%s\n", name.c_str(),
                  fmt(f.c, "%.3f").c_str(), ci.c_str(), fmt(std::exp(f.log_a)).c_str(), fmt(f.r2, "%.3f").c_str(),
                  static_cast<long long>(f.points), range.c_str(), window.c_str(), note.c_str());
    os << line;
  }
}

// One regime's table; its recommended windows are appended to recommendations.
void write_regime(std::ostringstream& os, const std::string& key, const Regime& g, const FitOptions& o,
                  std::vector<std::string>& recommendations) {
  const bool md = o.format == FitFormat::Markdown, csv = o.format == FitFormat::Csv;
  if (!csv) write_regime_head(os, key, g, md, static_cast<int>(std::lround(o.confidence * 100)));
  // The recommendation: the mass level serving the target (largest δ with 2δ <= target),
  // or every mass level when no target is given.
  double chosen_delta = 0;
  if (o.target_l1 > 0) {
    for (const auto& [name, m] : g.measures) {
      if (m.delta > 0 && 2 * m.delta <= o.target_l1 * (1 + 1e-12)) chosen_delta = std::max(chosen_delta, m.delta);
    }
  }
  for (const std::string& name : g.order) {
    const Measure& m = g.measures.at(name);
    const PowerLawFit f = fit_power_law(m.mean, o.confidence);
    std::string window;
    if (f.ok && m.delta > 0 && (o.target_l1 == 0 || m.delta == chosen_delta)) {
      window = covering_window(m, f);
      recommendations.push_back(key + ": attention-row l1 error <= " + num_text(2 * m.delta) +
                                " on average (kept mass >= 1 - " + num_text(m.delta) + "): " + window);
    }
    write_measure_row(os, key, name, m, f, window, o.format);
  }
  if (!csv) os << "\n";
}

void write_recommendations(std::ostringstream& os, const std::vector<std::string>& recommendations,
                           const FitOptions& o) {
  const bool md = o.format == FitFormat::Markdown;
  os << (md ? "**Recommended windows** " : "Recommended windows ")
     << "(C: the fitted exponent of the mean mass:δ support, rounded up; α: the smallest with α·n^C >= the rows' "
        "p90 support at every length fitted):\n";
  if (md) os << "\n";
  if (recommendations.empty()) {
    os << (md ? "- " : "  ")
       << (o.target_l1 > 0 ? "none: no regime has a mass:δ window with 2δ <= " + num_text(o.target_l1) +
                                 " (add mass:" + num_text(o.target_l1 / 2) + " to the study's strategies)"
                           : std::string("none: the study has no mass:δ window (add e.g. mass:1e-2 to its strategies)"))
       << "\n";
  }
  for (const std::string& r : recommendations) os << (md ? "- " : "  ") << r << "\n";
}

}  // namespace

std::string format_fit(const std::string& path, const FitOptions& o) {
  check_fit_options(o);
  const std::vector<Record> recs = read_results_records(path);
  const Regimes regimes = group_regimes(recs, o.min_n);
  if (regimes.by_key.empty()) {
    throw usage_error(path + ": no configuration with n >= " + std::to_string(o.min_n) + " (lower --min-n)");
  }
  std::ostringstream os;
  const bool csv = o.format == FitFormat::Csv;
  if (csv) os << "regime,measure,C,C_lo,C_hi,se,alpha_mean,r2,points,skipped,excluded,n_min,n_max,recommended\n";
  std::vector<std::string> recommendations;
  for (const std::string& key : regimes.order) write_regime(os, key, regimes.by_key.at(key), o, recommendations);
  if (!csv) write_recommendations(os, recommendations, o);
  return os.str();
}

}  // namespace ncsparse::study
