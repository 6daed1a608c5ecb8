// ncsparse run: generate a sharded sequence and measure sparse against exact attention.
#include <memory>

#include "cli/commands.hpp"
#include "cli/io_options.hpp"
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
    std::string input;
    io::InputNames names;
    std::int64_t head = 0;
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
  add_input_options(*cmd, o->input, o->names);
  cmd->get_option("--input")->description(
      "Read Q, K, V from this HDF5 file instead of generating them (n and d come from the file)");
  cmd->add_option("--head", o->head, "With --input of shape (heads, n, d): the query head")->capture_default_str();
  return [o, cmd](const Comm& comm) {
    ProcessAccount account;
    JobConfig job = finish_job_options(o->job);
    job.model = finish_model_options(o->model);
    const Format format = parse_format(o->format);
    if (o->input.empty()) {
      JobResult result = run_job(comm, job);
      account.add(comm, result.times);
      print_warnings(comm.rank(), result);
      print(comm, format_result(result, format));
      return 0;
    }
    for (const char* flag : {"--n", "--d"}) {
      if (cmd->count(flag) > 0) {
        throw usage_error(std::string(flag) + ": not allowed with --input (the file gives n and d; drop " + flag + ")");
      }
    }
    for (const auto& [flag, name] : {std::pair{"--q", &o->names.q}, {"--k", &o->names.k}, {"--v", &o->names.v}}) {
      if (name->empty()) throw usage_error(std::string(flag) + ": give a dataset name (e.g. /Q), not an empty one");
    }
    if (o->head < 0) throw usage_error("--head: must be >= 0, got " + std::to_string(o->head));
    std::unique_ptr<io::H5Input> in;
    collective(comm, [&] { in = std::make_unique<io::H5Input>(comm, o->input, o->names); });
    if (o->head < 0 || o->head >= in->q_heads()) {
      throw usage_error("--head " + std::to_string(o->head) + ": " + o->input + " has " +
                        std::to_string(in->q_heads()) + " query heads (use 0.." + std::to_string(in->q_heads() - 1) +
                        ")");
    }
    job.n = in->n();
    job.query_rows = in->query_rows();
    job.model.d = in->d();
    if (cmd->count("--queries") == 0) job.queries = std::min(job.queries, job.query_rows);
    std::unique_ptr<InputSource> source = in->head(o->head, o->head / (in->q_heads() / in->kv_heads()));
    JobResult result = run_job(comm, job, source.get());
    account.add(comm, result.times);
    print_warnings(comm.rank(), result);
    print(comm, format_result(result, format));
    return 0;
  };
}

}  // namespace ncsparse::cli
