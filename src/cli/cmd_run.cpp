// ncsparse run: generate a sharded sequence and measure sparse against exact attention.
#include <memory>

#include "cli/commands.hpp"
#include "ncsparse/report.hpp"

namespace ncsparse::cli {

namespace {
const std::vector<std::string> kDefaultWindows = {"const:256", "log:8", "power:1,0.5", "power:4,0.4", "cert:1e-3"};
}

Runner add_run_command(CLI::App& app) {
  struct Options {
    JobOptions job;
    ModelOptions model;
    std::string format = "table";
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "run",
      "Generate a sharded sequence, compute exact and top-k sparse attention for sampled query rows, and print "
      "the error of every window strategy");
  cmd->add_option("--n", o->job.job.n, "Keys: the sequence length")->capture_default_str();
  cmd->add_option("--queries", o->job.job.queries,
                  "Query rows evaluated: an evenly strided deterministic sample of the n rows (all rows when equal "
                  "to --n)")
      ->capture_default_str();
  add_model_options(*cmd, o->model);
  add_job_options(*cmd, o->job, kDefaultWindows);
  cmd->add_option("--format", o->format, "Output: table, csv or json")->capture_default_str();
  return [o](const Comm& comm) {
    JobConfig job = finish_job_options(o->job);
    job.model = finish_model_options(o->model);
    const Format format = parse_format(o->format);
    const JobResult result = run_job(comm, job);
    print(comm, format_result(result, format));
    return 0;
  };
}

}  // namespace ncsparse::cli
