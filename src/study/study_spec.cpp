#include "study/study_spec.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <toml++/toml.h>

namespace ncsparse::study {
namespace {

void append(std::string& list, const char* sep, const std::string& item) {
  if (!list.empty()) list += sep;
  list += item;
}

class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void fail(const toml::source_region& src, const std::string& key, const std::string& msg) const {
    std::string where = path_;
    if (src.begin.line > 0) {
      where += ':';
      where += std::to_string(src.begin.line);
    }
    throw usage_error(where + ": " + key + ": " + msg);
  }

  void known_keys(const toml::table& t, const std::string& section, const std::set<std::string>& known) const {
    for (auto&& [k, v] : t) {
      if (!known.count(std::string(k.str()))) {
        std::string list;
        for (const std::string& s : known) append(list, ", ", s);
        fail(k.source(), section + std::string(k.str()), "unknown key (known keys here: " + list + ")");
      }
    }
  }

  std::int64_t integer(const toml::node& n, const std::string& key, std::int64_t min) const {
    const auto* v = n.as_integer();
    if (!v) fail(n.source(), key, std::string("must be an integer, not a ") + type_name(n));
    if (v->get() < min) fail(n.source(), key, std::to_string(v->get()) + " must be >= " + std::to_string(min));
    return v->get();
  }
  double number(const toml::node& n, const std::string& key) const {
    if (const auto* f = n.as_floating_point()) {
      if (!std::isfinite(f->get())) fail(n.source(), key, "must be a finite number");
      return f->get();
    }
    if (const auto* i = n.as_integer()) return static_cast<double>(i->get());
    fail(n.source(), key, std::string("must be a number, not a ") + type_name(n));
  }
  bool boolean(const toml::node& n, const std::string& key) const {
    const auto* v = n.as_boolean();
    if (!v) fail(n.source(), key, std::string("must be true or false, not a ") + type_name(n));
    return v->get();
  }
  std::string string(const toml::node& n, const std::string& key) const {
    const auto* v = n.as_string();
    if (!v) fail(n.source(), key, std::string("must be a string, not a ") + type_name(n));
    return v->get();
  }
  // A list key: an array (non-empty) or a single value.
  std::vector<const toml::node*> list(const toml::node& n, const std::string& key) const {
    std::vector<const toml::node*> out;
    if (const auto* a = n.as_array()) {
      if (a->empty()) fail(n.source(), key, "must not be an empty list");
      for (const toml::node& e : *a) out.push_back(&e);
    } else {
      out.push_back(&n);
    }
    return out;
  }

  static const char* type_name(const toml::node& n) {
    switch (n.type()) {
      case toml::node_type::string: return "string";
      case toml::node_type::integer: return "integer";
      case toml::node_type::floating_point: return "float";
      case toml::node_type::boolean: return "boolean";
      case toml::node_type::array: return "list";
      case toml::node_type::table: return "table";
      default: return "date/time";
    }
  }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

template <class T>
void no_duplicates(const Reader& r, const std::vector<T>& values, const toml::node& n, const std::string& key) {
  std::vector<T> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    r.fail(n.source(), key, "lists a value twice (list each value once)");
  }
}

WindowSpec window(const Reader& r, const toml::node& n, const std::string& key) {
  const std::string text = r.string(n, key);
  try {
    return parse_window(text, key);
  } catch (const Error& e) {
    std::string msg = e.what();
    if (msg.rfind(key + ": ", 0) == 0) msg = msg.substr(key.size() + 2);
    r.fail(n.source(), key, msg);
  }
}

std::string join_nums(const std::vector<std::int64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

std::string model_label(const ModelParams& p) {
  if (p.model == InputModel::Paper) {
    return "paper(x=" + to_string(p.x_dist) + ",B=" + num_text(p.bound) + ",R=" + num_text(p.weight_norm) +
           position_label(p) + ")";
  }
  return "gaussian(sigma=" + num_text(p.sigma) + position_label(p) + ")";
}

// Where a message about a missing section points: the file, with no line.
const toml::source_region kFileStart{};

// A required key of table t; full is its dotted name in messages.
const toml::node& required(const Reader& r, const toml::table& t, const char* key, const std::string& full) {
  const toml::node* n = t.get(key);
  if (!n) r.fail(t.source(), full, "is required");
  return *n;
}

// A required list of sizes (study.n, study.d): integers >= 1, each once.
std::vector<std::int64_t> sizes(const Reader& r, const toml::table& t, const char* key, const std::string& full) {
  std::vector<std::int64_t> out;
  const toml::node& n = required(r, t, key, full);
  for (const toml::node* e : r.list(n, full)) out.push_back(r.integer(*e, full, 1));
  no_duplicates(r, out, n, full);
  return out;
}

// study.seeds, or study.trials = T for seeds 1..T.
void parse_seeds(const Reader& r, const toml::table& st, StudySpec& s) {
  const toml::node* seeds = st.get("seeds");
  const toml::node* trials = st.get("trials");
  if (seeds && trials) r.fail(trials->source(), "study.trials", "give seeds or trials, not both");
  if (!seeds && !trials) r.fail(st.source(), "study.seeds", "is required (a list of seeds, or trials = T for seeds 1..T)");
  if (seeds) {
    for (const toml::node* e : r.list(*seeds, "study.seeds")) {
      s.seeds.push_back(static_cast<std::uint64_t>(r.integer(*e, "study.seeds", 0)));
    }
    no_duplicates(r, s.seeds, *seeds, "study.seeds");
  } else {
    const std::int64_t t = r.integer(*trials, "study.trials", 1);
    for (std::int64_t i = 1; i <= t; ++i) s.seeds.push_back(static_cast<std::uint64_t>(i));
  }
}

// [study]
void parse_study_section(const Reader& r, const toml::table& root, StudySpec& s) {
  const toml::table* st = root["study"].as_table();
  if (!st) r.fail(root["study"].node() ? root["study"].node()->source() : kFileStart, "study",
                  "a [study] table is required (with n, d and seeds or trials)");
  r.known_keys(*st, "study.",
               {"name", "n", "d", "seeds", "trials", "queries", "causal", "scale", "exact", "max_k", "sparsity_eps"});
  if (const toml::node* n = st->get("name")) s.name = r.string(*n, "study.name");
  s.n = sizes(r, *st, "n", "study.n");
  s.d = sizes(r, *st, "d", "study.d");
  parse_seeds(r, *st, s);
  if (const toml::node* n = st->get("queries")) {
    s.queries = r.integer(*n, "study.queries", 1);
    // Capped at n per configuration (docs/study.md), but more rows than the longest sequence
    // has is a mistake, not a cap.
    const std::int64_t longest = s.n.empty() ? s.queries : *std::max_element(s.n.begin(), s.n.end());
    if (s.queries > longest) {
      r.fail(n->source(), "study.queries",
             std::to_string(s.queries) + " query rows, but the longest sequence has n = " + std::to_string(longest) +
                 " rows (give queries <= " + std::to_string(longest) + ")");
    }
  }
  if (const toml::node* n = st->get("causal")) s.causal = r.boolean(*n, "study.causal");
  if (const toml::node* n = st->get("exact")) s.exact = r.boolean(*n, "study.exact");
  if (const toml::node* n = st->get("scale")) {
    s.scale = r.number(*n, "study.scale");
    if (s.scale < 0) r.fail(n->source(), "study.scale", "must be >= 0 (0 means 1/sqrt(d))");
  }
  if (const toml::node* n = st->get("max_k")) s.max_k = r.integer(*n, "study.max_k", 1);
  if (const toml::node* n = st->get("sparsity_eps")) {
    s.sparsity_eps.clear();
    for (const toml::node* e : r.list(*n, "study.sparsity_eps")) {
      const double eps = r.number(*e, "study.sparsity_eps");
      if (!(eps > 0 && eps < 1)) r.fail(e->source(), "study.sparsity_eps", "each level must lie in (0, 1)");
      s.sparsity_eps.push_back(eps);
    }
  }
}

// [engine] (optional)
void parse_engine_section(const Reader& r, const toml::table& root, StudySpec& s) {
  const toml::node* en = root.get("engine");
  if (!en) return;
  const toml::table* et = en->as_table();
  if (!et) r.fail(en->source(), "engine", "must be a table ([engine])");
  r.known_keys(*et, "engine.", {"threads", "block", "tile"});
  if (const toml::node* n = et->get("threads")) s.threads = static_cast<int>(r.integer(*n, "engine.threads", 1));
  if (const toml::node* n = et->get("block")) s.block = r.integer(*n, "engine.block", 1);
  if (const toml::node* n = et->get("tile")) s.tile = r.integer(*n, "engine.tile", 1);
}

// The [[model]] tables: an array of tables, or a single [model] table.
std::vector<const toml::table*> model_tables(const Reader& r, const toml::table& root) {
  const toml::node* mn = root.get("model");
  if (!mn) r.fail(kFileStart, "model", "at least one [[model]] table is required (model = \"paper\" or \"gaussian\")");
  std::vector<const toml::table*> tables;
  if (const toml::array* a = mn->as_array()) {
    if (a->empty()) r.fail(mn->source(), "model", "must not be empty");
    for (const toml::node& e : *a) {
      if (!e.as_table()) r.fail(e.source(), "model", "each entry must be a table ([[model]])");
      tables.push_back(e.as_table());
    }
  } else if (const toml::table* t = mn->as_table()) {
    tables.push_back(t);
  } else {
    r.fail(mn->source(), "model", "must be a table ([[model]])");
  }
  return tables;
}

// model.model and the keys that belong to the other input model.
InputModel parse_model_kind(const Reader& r, const toml::table& t) {
  std::string kind = to_string(InputModel::Paper);
  if (const toml::node* n = t.get("model")) kind = r.string(*n, "model.model");
  InputModel model{};
  if (!parse_input_model(kind, model)) {
    r.fail(t.get("model")->source(), "model.model", "unknown input model '" + kind + "' (use paper or gaussian)");
  }
  if (model == InputModel::Paper) {
    if (const toml::node* n = t.get("sigma")) r.fail(n->source(), "model.sigma", "applies to model = \"gaussian\" only");
  } else {
    for (const char* k : {"B", "R", "x_dist"}) {
      if (const toml::node* n = t.get(k)) {
        r.fail(n->source(), std::string("model.") + k, "applies to model = \"paper\" only");
      }
    }
  }
  return model;
}

// One [[model]] table; d is study.d (RoPE needs every dimension even).
ModelEntry parse_model(const Reader& r, const toml::table& t, const std::vector<std::int64_t>& d) {
  r.known_keys(t, "model.", {"model", "B", "R", "x_dist", "sigma", "rope_theta", "sinks", "sink_strength", "tied"});
  ModelEntry m;
  m.params.model = parse_model_kind(r, t);
  auto positive = [&](const char* key, double& field) {
    if (const toml::node* n = t.get(key)) {
      field = r.number(*n, std::string("model.") + key);
      if (!(field > 0)) r.fail(n->source(), std::string("model.") + key, "must be > 0");
    }
  };
  positive("B", m.params.bound);
  positive("R", m.params.weight_norm);
  positive("sigma", m.params.sigma);
  if (const toml::node* n = t.get("rope_theta")) {
    m.params.rope_theta = r.number(*n, "model.rope_theta");
    if (!(m.params.rope_theta > 1)) r.fail(n->source(), "model.rope_theta", "must be a base > 1, e.g. 10000 (omit it for no RoPE)");
  }
  if (const toml::node* n = t.get("tied")) m.params.tied = r.boolean(*n, "model.tied");
  if (const toml::node* n = t.get("sinks")) m.params.sinks = r.integer(*n, "model.sinks", 0);
  if (const toml::node* n = t.get("sink_strength")) {
    m.params.sink_strength = r.number(*n, "model.sink_strength");
    if (m.params.sink_strength < 0) r.fail(n->source(), "model.sink_strength", "must be >= 0");
    if (m.params.sinks == 0) r.fail(n->source(), "model.sink_strength", "needs model.sinks > 0");
  }
  if (m.params.rope_theta > 0) {
    for (std::size_t i = 0; i < d.size(); ++i) {
      if (d[i] % 2 != 0) r.fail(t.get("rope_theta")->source(), "model.rope_theta",
                                "RoPE needs even dimensions, study.d lists " + std::to_string(d[i]));
    }
  }
  if (const toml::node* n = t.get("x_dist")) {
    const std::string x = r.string(*n, "model.x_dist");
    if (!parse_x_distribution(x, m.params.x_dist)) {
      r.fail(n->source(), "model.x_dist", "unknown distribution '" + x + "' (use gaussian or uniform)");
    }
  }
  return m;
}

// [[model]]: every table, each model once.
void parse_model_section(const Reader& r, const toml::table& root, StudySpec& s) {
  std::vector<std::string> labels;
  for (const toml::table* t : model_tables(r, root)) {
    const ModelEntry m = parse_model(r, *t, s.d);
    const std::string label = model_label(m.params);
    if (std::find(labels.begin(), labels.end(), label) != labels.end()) {
      r.fail(t->source(), "model", "lists the model " + label + " twice");
    }
    labels.push_back(label);
    s.models.push_back(m);
  }
}

// windows.align (the reference) and windows.aligned, each aligned to the reference's total k.
void parse_alignment(const Reader& r, const toml::table& wt, StudySpec& s) {
  const toml::node* align = wt.get("align");
  const toml::node* aligned = wt.get("aligned");
  if (aligned && !align) r.fail(aligned->source(), "windows.aligned", "needs windows.align, the reference (e.g. \"const:256\")");
  if (!align) return;
  s.aligned = true;
  s.reference = window(r, *align, "windows.align");
  if (!s.reference.fixed()) {
    r.fail(align->source(), "windows.align",
           "the reference must be a fixed window: const:K, log:A, power:A,C or sqrt:A");
  }
  s.reference_total = total_k(s.reference, s.n);
  s.windows.push_back(s.reference);
  if (aligned) {
    for (const toml::node* e : r.list(*aligned, "windows.aligned")) {
      const std::string form = r.string(*e, "windows.aligned");
      std::string where = r.path() + ":" + std::to_string(e->source().begin.line) + ": windows.aligned";
      s.alignments.push_back(align_window(form, s.n, s.reference_total, where));
      s.windows.push_back(s.alignments.back().spec);
    }
  }
}

// [windows]: the aligned windows first, then the strategies; each once, exact-pass ones only with study.exact.
void parse_windows_section(const Reader& r, const toml::table& root, StudySpec& s) {
  const toml::node* wn = root.get("windows");
  if (!wn) r.fail(kFileStart, "windows", "a [windows] table is required (strategies, and/or align with aligned)");
  const toml::table* wt = wn->as_table();
  if (!wt) r.fail(wn->source(), "windows", "must be a table ([windows])");
  r.known_keys(*wt, "windows.", {"strategies", "align", "aligned"});
  parse_alignment(r, *wt, s);
  if (const toml::node* n = wt->get("strategies")) {
    for (const toml::node* e : r.list(*n, "windows.strategies")) s.windows.push_back(window(r, *e, "windows.strategies"));
  }
  if (s.windows.empty()) r.fail(wt->source(), "windows", "names no strategy (give strategies, or align and aligned)");
  for (std::size_t i = 0; i < s.windows.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (s.windows[i].text == s.windows[j].text) {
        r.fail(wt->source(), "windows", "the strategy " + s.windows[i].text + " appears twice (list it once)");
      }
    }
    if (!s.exact && s.windows[i].needs_exact()) {
      r.fail(wt->source(), "windows", s.windows[i].text + " needs the exact pass (remove it or set study.exact = true)");
    }
  }
}

}  // namespace

std::string num_text(double x) {
  char buf[64];
  for (int p = 1; p <= 17; ++p) {
    std::snprintf(buf, sizeof buf, "%.*g", p, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  return buf;
}

std::uint64_t fnv1a(const void* data, std::size_t size, std::uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string hex64(std::uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::int64_t window_k(const WindowSpec& w, std::int64_t n) {
  const double t = fixed_window_target(w, n);
  if (!(t < static_cast<double>(n))) return n;
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(t)));
}

std::int64_t total_k(const WindowSpec& w, const std::vector<std::int64_t>& lengths) {
  std::int64_t total = 0;
  for (std::int64_t n : lengths) total += window_k(w, n);
  return total;
}

Alignment align_window(const std::string& form, const std::vector<std::int64_t>& lengths, std::int64_t target,
                       const std::string& where) {
  // The registry entry of the form's name says how to write the spec for a given α.
  const std::size_t colon = form.find(':');
  const StrategyKind* kind = find_strategy_kind(form.substr(0, colon));
  std::vector<std::string> rest;
  if (colon != std::string::npos) {
    std::istringstream in(form.substr(colon + 1));
    for (std::string v; std::getline(in, v, ',');) rest.push_back(v);
  }
  auto arity = [](const std::string& f) {  // values after the name: "power:C" has 1
    return f.find(':') == std::string::npos ? 0 : 1 + static_cast<std::size_t>(std::count(f.begin(), f.end(), ','));
  };
  if (kind == nullptr || kind->align_form.empty() || rest.size() != arity(kind->align_form)) {
    throw usage_error(where + ": '" + form + "' cannot be aligned (forms: " + alignable_forms() + "; alpha is chosen)");
  }
  // α → 0 and the smallest α > 0 give the same windows (⌈0⌉ and ⌈tiny⌉ both clamp to 1).
  auto spec_for = [&](double a) {
    return parse_window(kind->aligned_spec(num_text(std::max(a, std::numeric_limits<double>::denorm_min())), rest),
                        where);
  };
  spec_for(1.0);  // the form's own values (e.g. C) are checked here, with the parser's message
  auto total = [&](double a) { return total_k(spec_for(a), lengths); };
  std::int64_t most = 0;
  for (std::int64_t n : lengths) most += n;
  if (target > most) {
    throw usage_error(where + ": the reference's total k " + std::to_string(target) +
                      " exceeds the total of the lengths; use a smaller reference window");
  }
  // Smallest α (to double precision) whose total is >= goal.
  auto smallest_reaching = [&](std::int64_t goal) {
    double lo = 0, hi = 1;
    while (total(hi) < goal) hi *= 2;
    for (int i = 0; i < 2000 && std::nextafter(lo, hi) < hi; ++i) {
      const double mid = lo + (hi - lo) / 2;
      if (mid <= lo || mid >= hi) break;
      (total(mid) >= goal ? hi : lo) = mid;
    }
    return hi;
  };
  struct Plateau {
    double start, end;
    std::int64_t total;
  };
  auto plateau_at = [&](double start) {
    const std::int64_t t = total(start);
    const double end = t >= most ? start * 4 + 1 : smallest_reaching(t + 1);
    return Plateau{start, end, t};
  };
  const Plateau up = plateau_at(smallest_reaching(target));
  Plateau best = up;
  if (up.total > target && total(0) < target) {
    const std::int64_t below = total(std::nextafter(up.start, 0.0));
    const Plateau down = plateau_at(smallest_reaching(below));
    if (target - down.total < up.total - target) best = down;
  }
  const double mid = best.start + (best.end - best.start) / 2;
  double alpha = mid;
  for (int p = 1; p <= 17; ++p) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*g", p, mid);
    const double a = std::strtod(buf, nullptr);
    if (a > best.start && a < best.end && total(a) == best.total) {
      alpha = a;
      break;
    }
  }
  Alignment out;
  out.form = form;
  out.alpha = alpha;
  out.spec = spec_for(alpha);
  out.total = total_k(out.spec, lengths);
  return out;
}

StudySpec parse_study_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw Error(kExitNoInput, path + ": " + std::strerror(errno) + " (give the path of a study file, see docs/study.md)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(kExitNoInput, path + ": cannot read the study file (check its permissions)");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_study_text(text.str(), path);
}

StudySpec parse_study_text(const std::string& text, const std::string& path) {
  const Reader r(path);
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    throw usage_error(path + ":" + std::to_string(e.source().begin.line) + ": not valid TOML: " +
                      std::string(e.description()));
  }
  r.known_keys(root, "", {"study", "engine", "model", "windows"});
  StudySpec s;
  s.path = path;
  parse_study_section(r, root, s);
  parse_engine_section(r, root, s);
  parse_model_section(r, root, s);
  parse_windows_section(r, root, s);
  return s;
}

std::vector<Configuration> expand(const StudySpec& s) {
  std::vector<Configuration> out;
  std::string windows, eps;
  for (const WindowSpec& w : s.windows) append(windows, "|", w.text);
  for (double e : s.sparsity_eps) append(eps, "|", num_text(e));
  for (const ModelEntry& m : s.models) {
    for (std::int64_t d : s.d) {
      for (std::int64_t n : s.n) {
        for (std::uint64_t seed : s.seeds) {
          Configuration c;
          c.index = static_cast<std::int64_t>(out.size());
          JobConfig& j = c.job;
          j.n = n;
          j.queries = std::min(s.queries, n);
          j.windows = s.windows;
          j.model = m.params;
          j.model.d = d;
          j.model.seed = seed;
          j.causal = s.causal;
          j.scale = s.scale;
          j.exact = s.exact;
          j.threads = s.threads;
          j.block = s.block;
          j.tile = s.tile;
          j.max_k = s.max_k;
          j.sparsity_eps = s.sparsity_eps;
          c.model_label = model_label(j.model);
          std::ostringstream os;
          os << "n=" << n << ";queries=" << j.queries << ";d=" << d << ";model=" << c.model_label << ";seed=" << seed
             << ";causal=" << j.causal << ";scale=" << num_text(j.scale) << ";exact=" << j.exact
             << ";max_k=" << j.max_k << ";block=" << j.block << ";tile=" << j.tile << ";windows=" << windows
             << ";sparsity_eps=" << eps << ";";
          c.canonical = os.str();
          c.hash = hex64(fnv1a(c.canonical.data(), c.canonical.size()));
          out.push_back(std::move(c));
        }
      }
    }
  }
  return out;
}

std::string canonical_study(const StudySpec& s) {
  std::ostringstream os;
  std::vector<std::int64_t> seeds(s.seeds.begin(), s.seeds.end());
  std::string models, windows, eps;
  for (const ModelEntry& m : s.models) append(models, ", ", model_label(m.params));
  for (const WindowSpec& w : s.windows) append(windows, ", ", w.text);
  for (double e : s.sparsity_eps) append(eps, ", ", num_text(e));
  os << "n = " << join_nums(s.n) << "\n"
     << "d = " << join_nums(s.d) << "\n"
     << "seeds = " << join_nums(seeds) << "\n"
     << "models = [" << models << "]\n"
     << "queries = " << s.queries << "\n"
     << "causal = " << (s.causal ? "true" : "false") << "\n"
     << "scale = " << num_text(s.scale) << "\n"
     << "exact = " << (s.exact ? "true" : "false") << "\n"
     << "max_k = " << s.max_k << "\n"
     << "sparsity_eps = [" << eps << "]\n"
     << "block = " << s.block << "\n"
     << "tile = " << s.tile << "\n"
     << "windows = [" << windows << "]\n"
     << "align = " << (s.aligned ? s.reference.text : std::string("none")) << "\n";
  return os.str();
}

std::string study_hash(const StudySpec& s) {
  const std::string c = canonical_study(s);
  return hex64(fnv1a(c.data(), c.size()));
}

std::string describe_changes(const std::string& before, const std::string& after) {
  auto lines = [](const std::string& text) {
    std::map<std::string, std::string> m;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      const std::size_t eq = line.find(" = ");
      if (eq != std::string::npos) m[line.substr(0, eq)] = line.substr(eq + 3);
    }
    return m;
  };
  const auto a = lines(before), b = lines(after);
  std::set<std::string> keys;
  for (const auto& [k, v] : a) keys.insert(k);
  for (const auto& [k, v] : b) keys.insert(k);
  std::string out;
  for (const std::string& k : keys) {
    const auto ia = a.find(k), ib = b.find(k);
    const std::string va = ia == a.end() ? "(absent)" : ia->second, vb = ib == b.end() ? "(absent)" : ib->second;
    if (va != vb) append(out, "; ", k + " (was " + va + ", now " + vb + ")");
  }
  return out.empty() ? "the study's format" : out;
}

}  // namespace ncsparse::study
