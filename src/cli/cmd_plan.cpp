// ncsparse plan: the predicted time of each phase, the memory per rank and the best rank count
// of a job (run's flags) or of a study file, from a profile of `ncsparse calibrate` (or the
// built-in default). The model: docs/scaling.md, "The cost model of `plan`".
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <set>
#include <sstream>

#include "cli/commands.hpp"
#include "ncsparse/report.hpp"
#include "plan/cost_model.hpp"
#include "study/study_spec.hpp"

namespace ncsparse::cli {

namespace {

const std::vector<std::string> kDefaultWindows = {"const:256", "log:8", "power:1,0.5", "power:4,0.4", "cert:1e-3"};

// "4G", "512M", "1.5T", "123456" (bytes) → bytes.
double parse_bytes(const std::string& text) {
  char* end = nullptr;
  const double x = std::strtod(text.c_str(), &end);
  double unit = 1;
  const std::string rest = end ? std::string(end) : "";
  if (rest == "K" || rest == "KiB") unit = 1024.0;
  else if (rest == "M" || rest == "MiB") unit = 1024.0 * 1024;
  else if (rest == "G" || rest == "GiB") unit = 1024.0 * 1024 * 1024;
  else if (rest == "T" || rest == "TiB") unit = 1024.0 * 1024 * 1024 * 1024;
  else if (!rest.empty()) end = nullptr;
  if (end == nullptr || end == text.c_str() || !(x > 0) || !std::isfinite(x)) {
    throw usage_error("--mem-per-rank: '" + text + "' is not a positive size (use e.g. 4G, 512M)");
  }
  return x * unit;
}

std::string fmt(double x) {
  char buf[32];
  if (x >= 100) std::snprintf(buf, sizeof buf, "%.0f", x);
  else if (x >= 1) std::snprintf(buf, sizeof buf, "%.2f", x);
  else std::snprintf(buf, sizeof buf, "%.3f", x);
  return buf;
}

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
  return buf;
}

struct Item {
  std::string label;
  JobConfig job;
};

// Every configuration at P ranks, summed; start-up once (one process runs them all).
plan::Prediction total_at(const std::vector<Item>& items, int P, const plan::Profile& prof, const plan::NodeShape& node,
                          std::vector<plan::Prediction>* each) {
  plan::Prediction sum;
  sum.ranks = P;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const plan::Prediction p = plan::predict(items[i].job, P, prof, node, i == 0);
    if (each) each->push_back(p);
    sum.startup += p.startup, sum.inputs += p.inputs, sum.local_pass += p.local_pass, sum.merge += p.merge;
    sum.exact += p.exact;
    sum.sparse += p.sparse, sum.stats += p.stats, sum.other += p.other, sum.total += p.total;
    sum.memory = std::max(sum.memory, p.memory);
    sum.memory_limit = p.memory_limit;
    sum.oversubscription = p.oversubscription;
    sum.fits = sum.fits && p.fits;
  }
  return sum;
}

std::string phases_json(const plan::Prediction& p) {
  std::ostringstream os;
  os << "{\"startup\": " << p.startup << ", \"inputs\": " << p.inputs << ", \"local_pass\": " << p.local_pass
     << ", \"exact_in_local_pass\": " << p.exact << ", \"merge\": " << p.merge << ", \"sparse\": " << p.sparse << ", \"stats\": " << p.stats << ", \"other\": " << p.other
     << ", \"total\": " << p.total << "}";
  return os.str();
}


}  // namespace

Runner add_plan_command(CLI::App& app) {
  struct Options {
    JobOptions job;
    ModelOptions model;
    std::string study_file;
    int ranks = 0;
    std::string profile;
    std::string mem_per_rank;
    int ranks_per_node = 0;
    double background = 0;
    std::string format = "table";
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "plan",
      "Predict, before submitting, the time of each phase, the memory per rank and the best rank count of a job "
      "(run's flags) or of a study file, from a profile of 'ncsparse calibrate' (docs/scaling.md)");
  cmd->add_option("study_file", o->study_file, "A study file (TOML) to plan instead of run's flags");
  cmd->add_option("--ranks", o->ranks, "Ranks P the job would run on")->required();
  cmd->add_option("--profile", o->profile,
                  "Profile of 'ncsparse calibrate' (default: the built-in reference profile, labelled as such)");
  cmd->add_option("--mem-per-rank", o->mem_per_rank,
                  "Memory a rank may use, e.g. 4G (default: MemAvailable of /proc/meminfo over the ranks on a node)");
  cmd->add_option("--ranks-per-node", o->ranks_per_node,
                  "Ranks sharing one node (default: its cores / --threads); more ranks x threads than cores slows "
                  "every compute phase by their ratio");
  cmd->add_option("--background-load", o->background,
                  "Runnable threads of other work on each node beyond what ran there while calibrating (a shared "
                  "node): with the ranks' threads they share its cores evenly")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  cmd->add_option("--format", o->format, "Output: table or json")->capture_default_str();
  cmd->add_option("--n", o->job.job.n, "run's --n: keys")->capture_default_str();
  cmd->add_option("--queries", o->job.job.queries, "run's --queries: evaluated query rows")->capture_default_str();
  add_model_options(*cmd, o->model);
  add_job_options(*cmd, o->job, kDefaultWindows);
  return [o, cmd](const Comm& comm) {
    if (o->ranks < 1) throw usage_error("--ranks: must be >= 1, got " + std::to_string(o->ranks));
    if (o->ranks > (1 << 24)) throw usage_error("--ranks: " + std::to_string(o->ranks) + " is more than 16777216");
    if (cmd->count("--ranks-per-node") > 0 && o->ranks_per_node < 1) {
      throw usage_error("--ranks-per-node: must be >= 1, got " + std::to_string(o->ranks_per_node));
    }
    if (o->format != "table" && o->format != "json") {
      throw usage_error("--format: unknown format '" + o->format + "' (use table or json)");
    }
    const double mem_per_rank = o->mem_per_rank.empty() ? 0 : parse_bytes(o->mem_per_rank);
    print_from_rank0(comm, [&] {
      const plan::Profile prof = o->profile.empty() ? plan::default_profile() : plan::load_profile(o->profile);
      std::vector<Item> items;
      int threads = o->job.job.threads;
      if (!o->study_file.empty()) {
        for (const CLI::Option* opt : cmd->get_options()) {
          const std::string name = opt->get_name();
          if (opt->count() == 0 || name.rfind("--", 0) != 0) continue;
          if (name == "--ranks" || name == "--profile" || name == "--mem-per-rank" || name == "--ranks-per-node" ||
              name == "--format" || name == "--threads" || name == "--background-load") {
            continue;
          }
          throw usage_error(name + ": not allowed with a study file (the file gives the job; only --threads overrides it)");
        }
        const study::StudySpec spec = study::parse_study_file(o->study_file);
        for (const study::Configuration& c : study::expand(spec)) {
          Item it{"n=" + std::to_string(c.job.n) + " d=" + std::to_string(c.job.model.d) + " " + c.model_label +
                      " seed=" + std::to_string(c.job.model.seed),
                  c.job};
          if (cmd->count("--threads") > 0) it.job.threads = o->job.job.threads;
          threads = it.job.threads;
          items.push_back(it);
        }
      } else {
        JobConfig job = finish_job_options(o->job);
        job.model = finish_model_options(o->model);
        items.push_back({"n=" + std::to_string(job.n) + " d=" + std::to_string(job.model.d) + " " +
                             (job.model.model == InputModel::Paper ? "paper" : "gaussian"),
                         job});
      }
      for (Item& it : items) validate(it.job, 1024);  // flags; memory is reported, not refused
      plan::NodeShape node;
      node.cores = prof.builtin ? std::max(1, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN))) : prof.cores;
      node.ranks_per_node = o->ranks_per_node > 0 ? o->ranks_per_node : std::max(1, node.cores / std::max(1, threads));
      node.memory_per_node = plan::memory_available();
      node.memory_per_rank = mem_per_rank;
      node.background = o->background;

      std::vector<plan::Prediction> each;
      const plan::Prediction at_p = total_at(items, o->ranks, prof, node, &each);
      std::set<int> candidates{o->ranks};
      for (int p = 1; p <= 1024; p *= 2) candidates.insert(p);
      std::vector<plan::Prediction> search;
      for (int p : candidates) search.push_back(total_at(items, p, prof, node, nullptr));
      const plan::Prediction* best_time = nullptr;
      const plan::Prediction* best_cost = nullptr;
      for (const plan::Prediction& s : search) {
        if (!s.fits) continue;
        if (!best_time || s.total < best_time->total) best_time = &s;
        if (!best_cost || s.total * s.ranks < best_cost->total * best_cost->ranks) best_cost = &s;
      }
      const int nodes = (o->ranks + node.ranks_per_node - 1) / node.ranks_per_node;

      std::ostringstream os;
      if (o->format == "json") {
        os << "{\n  \"profile\": " << json_string(prof.builtin ? "built-in default" : prof.source)
           << ", \"builtin_profile\": " << (prof.builtin ? "true" : "false") << ",\n  \"ranks\": " << o->ranks
           << ", \"threads\": " << threads << ", \"ranks_per_node\": " << node.ranks_per_node
           << ", \"cores_per_node\": " << node.cores << ", \"oversubscription\": " << at_p.oversubscription
           << ",\n  \"configurations\": [";
        for (std::size_t i = 0; i < items.size(); ++i) {
          os << (i ? "," : "") << "\n    {\"label\": " << json_string(items[i].label)
             << ", \"seconds\": " << phases_json(each[i]) << ", \"memory_per_rank\": " << each[i].memory
             << ", \"fits\": " << (each[i].fits ? "true" : "false") << "}";
        }
        os << "\n  ],\n  \"total\": " << phases_json(at_p) << ",\n  \"memory_per_rank\": " << at_p.memory
           << ", \"memory_limit\": " << at_p.memory_limit << ", \"fits\": " << (at_p.fits ? "true" : "false")
           << ",\n  \"search\": [";
        for (std::size_t i = 0; i < search.size(); ++i) {
          os << (i ? ", " : "") << "{\"ranks\": " << search[i].ranks << ", \"seconds\": " << search[i].total
             << ", \"rank_hours\": " << search[i].total * search[i].ranks / 3600
             << ", \"fits\": " << (search[i].fits ? "true" : "false") << "}";
        }
        os << "],\n  \"best_ranks_time\": " << (best_time ? best_time->ranks : 0)
           << ", \"best_ranks_rank_hours\": " << (best_cost ? best_cost->ranks : 0) << "\n}\n";
        return os.str();
      }
      os << "plan: " << items.size() << " configuration" << (items.size() == 1 ? "" : "s") << " on " << o->ranks
         << " rank" << (o->ranks == 1 ? "" : "s") << " x " << threads << " thread" << (threads == 1 ? "" : "s") << " ("
         << nodes << " node" << (nodes == 1 ? "" : "s") << " of " << node.cores << " cores, " << node.ranks_per_node
         << " ranks per node";
      if (o->background > 0) os << "; " << fmt(o->background) << " threads of other work per node";
      if (at_p.oversubscription > 1) os << "; oversubscribed " << fmt(at_p.oversubscription) << "x";
      os << ")\n";
      if (prof.builtin) {
        os << "profile: " << prof.source << "\n";
      } else {
        os << "profile: " << prof.source << " (" << prof.cpu_model << ", " << prof.date << ", measured at "
           << prof.ranks << " rank(s) x " << prof.threads << " thread(s)" << (prof.quick ? ", --quick" : "") << ")\n";
      }
      char line[512];
      const char* head = "%-40s %8s %8s %10s %7s %8s %8s %8s %8s %9s  %s\n";
      std::snprintf(line, sizeof line, head, "predicted seconds", "start-up", "inputs", "local pass", "(exact)", "merge",
                    "sparse", "stats", "other", "total", "memory per rank");
      os << line;
      auto row = [&](const std::string& label, const plan::Prediction& p) {
        std::snprintf(line, sizeof line, "%-40s %8s %8s %10s %7s %8s %8s %8s %8s %9s  %s of %s: %s\n",
                      label.substr(0, 40).c_str(), fmt(p.startup).c_str(), fmt(p.inputs).c_str(),
                      fmt(p.local_pass).c_str(), fmt(p.exact).c_str(), fmt(p.merge).c_str(),
                      fmt(p.sparse).c_str(), fmt(p.stats).c_str(), fmt(p.other).c_str(), fmt(p.total).c_str(),
                      gib(p.memory).c_str(),
                      gib(p.memory_limit).c_str(), p.fits ? "fits" : "DOES NOT FIT");
        os << line;
      };
      for (std::size_t i = 0; i < items.size(); ++i) row(items[i].label, each[i]);
      if (items.size() > 1) row("total", at_p);
      os << "rank counts (P: predicted seconds, rank-hours):";
      for (const plan::Prediction& s : search) {
        os << "  " << s.ranks << ": " << fmt(s.total) << " s, " << fmt(s.total * s.ranks / 3600) << (s.fits ? "" : " (no fit)");
      }
      os << "\n";
      if (best_time) {
        os << "fastest: P = " << best_time->ranks << " (" << fmt(best_time->total) << " s); fewest rank-hours: P = "
           << best_cost->ranks << " (" << fmt(best_cost->total * best_cost->ranks / 3600) << " rank-hours)\n";
      } else {
        os << "no rank count up to 1024 fits the memory per rank\n";
      }
      bool approx = false;
      for (const Item& it : items) {
        for (const WindowSpec& w : it.job.windows) approx = approx || w.approximator();
      }
      if (approx) os << "note: the approximators (taylor, features) are not modelled: their passes are not predicted\n";
      if (items.front().job.backend != "cpu") {
        os << "note: --backend " << items.front().job.backend
           << " is not modelled: the predictions are for the CPU backend's kernels\n";
      }
      return os.str();
    });
    return 0;
  };
}

}  // namespace ncsparse::cli
