#include "plan/profile.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "ncsparse/error.hpp"
#include "ncsparse/report.hpp"

namespace ncsparse::plan {
namespace {

std::string per_d(const std::vector<PerD>& t) {
  std::string out = "[";
  for (std::size_t i = 0; i < t.size(); ++i) {
    out += (i ? ", " : "") + std::string("{\"d\": ") + std::to_string(t[i].d) + ", \"seconds\": " + json_number(t[i].seconds) + "}";
  }
  return out + "]";
}

std::string pairs(const std::vector<std::pair<double, double>>& t, const char* a, const char* b) {
  std::string out = "[";
  for (std::size_t i = 0; i < t.size(); ++i) {
    out += (i ? ", " : "") + std::string("{\"") + a + "\": " + json_number(t[i].first) + ", \"" + b + "\": " + json_number(t[i].second) + "}";
  }
  return out + "]";
}

std::string collective(const CollectiveFit& c) {
  return "{\"ranks\": " + std::to_string(c.ranks) + ", \"alpha_seconds\": " + json_number(c.alpha) +
         ", \"beta_seconds_per_byte\": " + json_number(c.beta) + ", \"points\": " + pairs(c.points, "bytes", "seconds") + "}";
}

// A JSON value, enough for the profile: objects, arrays, numbers, strings, true/false/null.
struct Json {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  double number = 0;
  bool boolean = false;
  std::string text;
  std::vector<Json> items;
  // An object's members as two parallel vectors: std::pair<std::string, Json> would need Json
  // complete inside its own definition (clang with libstdc++ 12 refuses it).
  std::vector<std::string> keys;
  std::vector<Json> values;

  const Json* find(const std::string& key) const {
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == key) return &values[i];
    }
    return nullptr;
  }
};

class Parser {
 public:
  Parser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  Json document() {
    Json v = value();
    skip();
    if (i_ != s_.size()) fail("unexpected text after the JSON object");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    std::size_t line = 1;
    for (std::size_t j = 0; j < std::min(i_, s_.size()); ++j) line += s_[j] == '\n';
    throw Error(kExitData, path_ + ":" + std::to_string(line) + ": not a profile of `ncsparse calibrate`: " + what +
                               " (rerun ncsparse calibrate --out " + path_ + " --force)");
  }
  void skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  bool eat(char c) {
    skip();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(std::string("expected '") + c + "'");
  }
  std::string string_literal() {
    expect('"');
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) ++i_;
      out += s_[i_++];
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }
  Json value() {
    if (++depth_ > 16) fail("nested too deeply");
    skip();
    Json v;
    if (i_ >= s_.size()) fail("unexpected end of file");
    const char c = s_[i_];
    if (c == '{') {
      ++i_;
      v.kind = Json::Object;
      if (!eat('}')) {
        do {
          skip();
          std::string key = string_literal();
          expect(':');
          Json member = value();
          v.keys.push_back(std::move(key));
          v.values.push_back(std::move(member));
        } while (eat(','));
        expect('}');
      }
    } else if (c == '[') {
      ++i_;
      v.kind = Json::Array;
      if (!eat(']')) {
        do v.items.push_back(value());
        while (eat(','));
        expect(']');
      }
    } else if (c == '"') {
      v.kind = Json::String;
      v.text = string_literal();
    } else if (s_.compare(i_, 4, "true") == 0 || s_.compare(i_, 5, "false") == 0) {
      v.kind = Json::Bool;
      v.boolean = s_[i_] == 't';
      i_ += v.boolean ? 4 : 5;
    } else if (s_.compare(i_, 4, "null") == 0) {
      i_ += 4;
    } else {
      const char* begin = s_.c_str() + i_;
      char* end = nullptr;
      v.number = std::strtod(begin, &end);
      if (end == begin) fail("expected a value");
      v.kind = Json::Number;
      i_ += static_cast<std::size_t>(end - begin);
    }
    --depth_;
    return v;
  }

  const std::string& s_;
  const std::string& path_;
  std::size_t i_ = 0;
  int depth_ = 0;
};

// Reads the fields of a parsed profile, naming the file and field in every error.
class Reader {
 public:
  Reader(const Json& root, const std::string& path) : root_(root), path_(path) {
    if (root.kind != Json::Object) fail("", "is not a JSON object");
  }
  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw Error(kExitData, path_ + ": " + (field.empty() ? "the profile" : "field '" + field + "'") + " " + what +
                               " (rerun ncsparse calibrate --out " + path_ + " --force)");
  }
  const Json& get(const Json& obj, const std::string& key, Json::Kind kind, const std::string& name) const {
    const Json* v = obj.find(key);
    if (v == nullptr) fail(name, "is missing");
    if (v->kind != kind) fail(name, "has the wrong type");
    return *v;
  }
  // A positive finite number (or >= 0 with zero_ok).
  double rate(const Json& obj, const std::string& key, const std::string& name, bool zero_ok = false) const {
    const double x = get(obj, key, Json::Number, name).number;
    if (!std::isfinite(x) || x < 0 || (x == 0 && !zero_ok)) fail(name, "must be a positive finite number, got " + format_number(x, "%.6g"));
    return x;
  }
  std::vector<PerD> per_d(const std::string& key) const {
    const Json& arr = get(root_, key, Json::Array, key);
    if (arr.items.empty()) fail(key, "has no entries");
    std::vector<PerD> out;
    for (const Json& e : arr.items) {
      if (e.kind != Json::Object) fail(key, "entries must be objects {\"d\", \"seconds\"}");
      const double d = rate(e, "d", key + ".d");
      out.push_back({static_cast<std::int64_t>(d), rate(e, "seconds", key + ".seconds")});
    }
    std::sort(out.begin(), out.end(), [](const PerD& a, const PerD& b) { return a.d < b.d; });
    return out;
  }
  CollectiveFit collective(const std::string& key) const {
    const Json& c = get(root_, key, Json::Object, key);
    CollectiveFit f;
    f.ranks = static_cast<int>(rate(c, "ranks", key + ".ranks"));
    f.alpha = rate(c, "alpha_seconds", key + ".alpha_seconds", true);
    f.beta = rate(c, "beta_seconds_per_byte", key + ".beta_seconds_per_byte", true);
    if (const Json* pts = c.find("points"); pts != nullptr && pts->kind == Json::Array) {
      for (const Json& e : pts->items) {
        if (e.kind == Json::Object) f.points.emplace_back(rate(e, "bytes", key + ".bytes"), rate(e, "seconds", key + ".seconds", true));
      }
    }
    return f;
  }
  const Json& root() const { return root_; }

 private:
  const Json& root_;
  const std::string& path_;
};

std::string read_text(const std::string& path) {
  if (access(path.c_str(), F_OK) != 0) {
    throw Error(kExitNoInput, path + ": no such profile (make one with: ncsparse calibrate --out " + path + ")");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(kExitNoInput, path + ": cannot open the profile for reading");
  std::ostringstream os;
  os << in.rdbuf();
  if (os.str().size() > (1u << 20)) throw Error(kExitData, path + ": larger than 1 MiB: not a profile of ncsparse calibrate");
  return os.str();
}

}  // namespace

double Profile::at_d(const std::vector<PerD>& t, std::int64_t d) {
  if (t.empty()) return 0;
  if (d <= t.front().d) return t.front().seconds * static_cast<double>(d) / static_cast<double>(t.front().d);
  if (d >= t.back().d) return t.back().seconds * static_cast<double>(d) / static_cast<double>(t.back().d);
  for (std::size_t i = 1; i < t.size(); ++i) {
    if (d <= t[i].d) {
      const double f = static_cast<double>(d - t[i - 1].d) / static_cast<double>(t[i].d - t[i - 1].d);
      return t[i - 1].seconds + f * (t[i].seconds - t[i - 1].seconds);
    }
  }
  return t.back().seconds;
}

std::string to_json(const Profile& p) {
  std::ostringstream os;
  os << "{\n  \"ncsparse_profile\": 3,\n  \"ncsparse_version\": " << json_string(p.version) << ",\n  \"date\": " << json_string(p.date)
     << ",\n  \"machine\": {\"cpu_model\": " << json_string(p.cpu_model) << ", \"cpu_flags\": [";
  for (std::size_t i = 0; i < p.cpu_flags.size(); ++i) os << (i ? ", " : "") << json_string(p.cpu_flags[i]);
  os << "], \"cores\": " << p.cores << ", \"memory_bytes\": " << json_number(p.memory_bytes) << "},\n  \"ranks\": " << p.ranks
     << ",\n  \"threads\": " << p.threads << ",\n  \"quick\": " << (p.quick ? "true" : "false")
     << ",\n  \"score_seconds_per_row_key\": " << per_d(p.score)
     << ",\n  \"exact_seconds_per_row_key\": " << per_d(p.exact)
     << ",\n  \"selection\": {\"seconds_per_list_entry\": " << json_number(p.selection) << ", \"keys\": " << p.selection_keys
     << ", \"points\": " << pairs(p.selection_points, "L", "seconds_per_row") << "}"
     << ",\n  \"exp_seconds\": " << json_number(p.exp_seconds) << ",\n  \"stats_seconds_per_entry\": " << json_number(p.stats_seconds) << ",\n  \"memory\": {\"bandwidth_bytes_per_second\": "
     << json_number(p.bandwidth) << ", \"first_touch_bytes_per_second\": " << json_number(p.first_touch)
     << ", \"gather_seconds_per_value\": " << json_number(p.gather_seconds) << "}"
     << ",\n  \"generator_seconds_per_row\": {\"paper\": " << per_d(p.gen_paper) << ", \"gaussian\": "
     << per_d(p.gen_gaussian) << "}"
     << ",\n  \"hdf5_read_bytes_per_second\": " << json_number(p.hdf5_read) << ",\n  \"startup_seconds\": " << json_number(p.startup) << ",\n  \"job_seconds\": " << json_number(p.job_seconds)
     << ",\n  \"contention\": {\"compute\": " << json_number(p.contention_compute) << ", \"memory\": " << json_number(p.contention_memory)
     << ", \"generate\": " << json_number(p.contention_generate)
     << "},\n  \"background_threads\": " << json_number(p.background)
     << ",\n  \"allreduce_topk\": " << collective(p.topk) << ",\n  \"allreduce_flash\": " << collective(p.flash)
     << "\n}\n";
  return os.str();
}

Profile parse_profile(const std::string& text, const std::string& path) {
  const Json root = Parser(text, path).document();
  const Reader r(root, path);
  Profile p;
  p.source = path;
  if (r.get(root, "ncsparse_profile", Json::Number, "ncsparse_profile").number != 3) {
    r.fail("ncsparse_profile", "is not 3 (a profile of another version of ncsparse: run ncsparse calibrate again)");
  }
  p.version = r.get(root, "ncsparse_version", Json::String, "ncsparse_version").text;
  p.date = r.get(root, "date", Json::String, "date").text;
  const Json& m = r.get(root, "machine", Json::Object, "machine");
  p.cpu_model = r.get(m, "cpu_model", Json::String, "machine.cpu_model").text;
  for (const Json& f : r.get(m, "cpu_flags", Json::Array, "machine.cpu_flags").items) p.cpu_flags.push_back(f.text);
  p.cores = static_cast<int>(r.rate(m, "cores", "machine.cores"));
  p.memory_bytes = r.rate(m, "memory_bytes", "machine.memory_bytes", true);
  p.ranks = static_cast<int>(r.rate(root, "ranks", "ranks"));
  p.threads = static_cast<int>(r.rate(root, "threads", "threads"));
  if (const Json* q = root.find("quick"); q != nullptr) p.quick = q->boolean;
  p.score = r.per_d("score_seconds_per_row_key");
  p.exact = r.per_d("exact_seconds_per_row_key");
  const Json& sel = r.get(root, "selection", Json::Object, "selection");
  p.selection = r.rate(sel, "seconds_per_list_entry", "selection.seconds_per_list_entry");
  p.selection_keys = static_cast<std::int64_t>(r.rate(sel, "keys", "selection.keys"));
  p.exp_seconds = r.rate(root, "exp_seconds", "exp_seconds");
  p.stats_seconds = r.rate(root, "stats_seconds_per_entry", "stats_seconds_per_entry");
  const Json& mem = r.get(root, "memory", Json::Object, "memory");
  p.bandwidth = r.rate(mem, "bandwidth_bytes_per_second", "memory.bandwidth_bytes_per_second");
  p.first_touch = r.rate(mem, "first_touch_bytes_per_second", "memory.first_touch_bytes_per_second");
  p.gather_seconds = r.rate(mem, "gather_seconds_per_value", "memory.gather_seconds_per_value");
  const Json& gen = r.get(root, "generator_seconds_per_row", Json::Object, "generator_seconds_per_row");
  const Reader g(gen, path);
  p.gen_paper = g.per_d("paper");
  p.gen_gaussian = g.per_d("gaussian");
  p.hdf5_read = r.rate(root, "hdf5_read_bytes_per_second", "hdf5_read_bytes_per_second");
  p.startup = r.rate(root, "startup_seconds", "startup_seconds");
  p.job_seconds = r.rate(root, "job_seconds", "job_seconds");
  const Json& con = r.get(root, "contention", Json::Object, "contention");
  p.contention_compute = r.rate(con, "compute", "contention.compute");
  p.contention_memory = r.rate(con, "memory", "contention.memory");
  p.contention_generate = r.rate(con, "generate", "contention.generate");
  p.background = r.rate(root, "background_threads", "background_threads", true);
  p.topk = r.collective("allreduce_topk");
  p.flash = r.collective("allreduce_flash");
  return p;
}

Profile load_profile(const std::string& path) { return parse_profile(read_text(path), path); }

Profile default_profile() {
  // Reference rates: rounded from `ncsparse calibrate` at 2 ranks x 1 thread on the 2-core AMD
  // EPYC VM the project is developed on, 2026-12-05 22:20 UTC, at load 3 (benchmarks/RESULTS.md,
  // "The cost model of plan"). They stand in for a machine's own profile and are labelled so.
  Profile p;
  p.builtin = true;
  p.source = "built-in default profile (reference rates of a 2-core AMD EPYC VM, 2026-12-05; not this machine: "
             "run `ncsparse calibrate --out profile.json` and pass --profile profile.json)";
  p.version = NCSPARSE_VERSION;
  p.date = "2026-12-05";
  p.cpu_model = "AMD EPYC (reference)";
  p.cpu_flags = {"avx2", "fma", "avx512f"};
  p.cores = 2;
  p.ranks = 2;
  p.threads = 1;
  p.score = {{32, 1.35e-9}, {64, 1.45e-9}, {128, 2.8e-9}};
  p.exact = {{32, 0.6e-9}, {64, 3.0e-9}, {128, 3.2e-9}};
  p.selection = 1.66e-7;  // its 5.4e-8 per insertion at L = 8193 of 65,536 keys, per list entry
  p.selection_keys = 1 << 16;
  p.exp_seconds = 3.7e-9;
  p.stats_seconds = 7.4e-9;
  p.bandwidth = 3.3e10;
  p.first_touch = 2.4e9;
  p.gather_seconds = 6.2e-10;  // per value fetched: the probe of profile format 3 (2026-12-06, AVX2-only EPYC)
  p.gen_paper = {{32, 6.2e-8}, {64, 1.4e-7}, {128, 5.9e-7}};
  p.gen_gaussian = {{32, 4.3e-8}, {64, 8.5e-8}, {128, 1.8e-7}};
  p.hdf5_read = 2.5e9;
  p.startup = 0.39;
  p.job_seconds = 0.001;
  p.contention_compute = 1.15;
  p.contention_memory = 1;
  p.contention_generate = 1.15;  // not measured on that machine: its compute figure
  p.background = 1.3;
  p.topk = {2, 0, 4.7e-9, {}};
  p.flash = {2, 6.2e-6, 2.2e-10, {}};
  return p;
}

void describe_machine(Profile& p) {
  p.cpu_model.clear();
  p.cpu_flags.clear();
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "model name" && p.cpu_model.empty()) p.cpu_model = value;
    if (key == "flags" && p.cpu_flags.empty()) {
      std::istringstream words(" " + value + " ");
      std::string w;
      std::vector<std::string> all;
      while (words >> w) all.push_back(w);
      for (const char* want : {"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "amx_tile"}) {
        if (std::find(all.begin(), all.end(), want) != all.end()) p.cpu_flags.push_back(want);
      }
    }
  }
  if (p.cpu_model.empty()) p.cpu_model = "unknown";
  p.cores = std::max(1, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
  p.memory_bytes = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

double runnable_threads(int samples) {
  double sum = 0;
  int got = 0;
  for (int i = 0; i < samples; ++i) {
    std::ifstream in("/proc/stat");
    std::string key;
    double value = 0;
    while (in >> key) {
      if (key == "procs_running" && in >> value) {
        sum += value;
        ++got;
        break;
      }
      in.ignore(1 << 20, '\n');
    }
    if (i + 1 < samples) usleep(20000);
  }
  return got > 0 ? std::max(0.0, sum / got - 1) : 0;
}

double memory_available() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

}  // namespace ncsparse::plan
