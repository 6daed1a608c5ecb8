// The subcommands of the ncsparse executable. Each add_*_command adds its subcommand (with its
// options) to the app and returns the function that runs it once parsed; main() parses, picks
// the parsed subcommand and runs it on every rank. Shared option groups live here too.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ncsparse/comm.hpp"
#include "ncsparse/engine.hpp"

namespace ncsparse::cli {

using Runner = std::function<int(const Comm&)>;

struct Command {
  CLI::App* app;
  Runner run;
};

// Every subcommand, in the order --help lists them (commands.cpp).
std::vector<Command> add_commands(CLI::App& app);

Runner add_run_command(CLI::App& app);
Runner add_study_command(CLI::App& app);
Runner add_report_command(CLI::App& app);
Runner add_schema_command(CLI::App& app);  // cmd_report.cpp
Runner add_fit_command(CLI::App& app);
Runner add_generate_command(CLI::App& app);
Runner add_attend_command(CLI::App& app);
Runner add_calibrate_command(CLI::App& app);  // cmd_calibrate.cpp
Runner add_plan_command(CLI::App& app);       // cmd_plan.cpp

// Options of the input generator (--model, --x-dist, --B, --R, --sigma, --seed, --d).
struct ModelOptions {
  ModelParams params;
  std::string model = "paper";
  std::string x_dist = "gaussian";
};
void add_model_options(CLI::App& cmd, ModelOptions& o);
ModelParams finish_model_options(const ModelOptions& o);  // throws usage Errors

// Options of the attention job shared by run, attend and study-like commands.
struct JobOptions {
  JobConfig job;
  std::vector<std::string> windows;
  std::vector<double> sparsity_eps = JobConfig{}.sparsity_eps;
  bool no_exact = false;
  // --block, or none: max(256, 64 × threads) rows, so that each thread scores at least 64 rows
  // per pass over the shard (threads split a block's rows and each streams the whole shard).
  std::optional<std::int64_t> block;
};
void add_job_options(CLI::App& cmd, JobOptions& o, const std::vector<std::string>& default_windows);
JobConfig finish_job_options(const JobOptions& o);  // throws usage Errors

// The phase table of run and attend over the whole process, as /usr/bin/time sees it. Made
// when the command starts; add() extends a job's times (collective): the first job gets the
// process's time before that as `startup`, and the time since the previous add() (or since
// the start) that the job does not cover joins `other` (opening files, creating the output,
// between heads). The heads' totals of attend add up to the process's time until the last
// report. Not covered: MPI_Finalize and freeing after the last report.
class ProcessAccount {
 public:
  ProcessAccount();
  void add(const Comm& comm, PhaseTimes& t);

 private:
  double start_, mark_;
  bool first_ = true;
};

// Writes text to stdout on rank 0 only.
void print(const Comm& comm, const std::string& text);

// Runs make_text on rank 0 alone (e.g. reading a results file), agrees on its outcome, and
// prints the text from rank 0. An error is rethrown on every rank without the "rank 0: " prefix
// (only rank 0 did the work).
void print_from_rank0(const Comm& comm, const std::function<std::string()>& make_text);

}  // namespace ncsparse::cli
