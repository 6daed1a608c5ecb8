// ncsparse attend: sparse (and optionally exact) attention of the Q, K, V of an HDF5 file,
// written to an HDF5 file.
#include <memory>

#include "app/attend.hpp"
#include "cli/commands.hpp"
#include "cli/io_options.hpp"
#include "ncsparse/report.hpp"

namespace ncsparse::cli {

namespace {
const std::vector<std::string> kDefaultWindows = {"const:256", "cert:1e-3"};
}

void add_input_options(CLI::App& cmd, std::string& input, io::InputNames& names) {
  cmd.add_option("--input", input, "Input HDF5 file with Q, K, V of shape (n, d) or (heads, n, d)");
  cmd.add_option("--q", names.q, "Dataset of the queries in --input")->capture_default_str();
  cmd.add_option("--k", names.k, "Dataset of the keys in --input")->capture_default_str();
  cmd.add_option("--v", names.v, "Dataset of the values in --input")->capture_default_str();
}

Runner add_attend_command(CLI::App& app) {
  struct Options {
    JobOptions job;
    app::AttendConfig config;
    bool exact = false;
    std::string format = "table";
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "attend",
      "Compute top-k sparse attention (and with --exact exact attention and the error of every window strategy) "
      "for the Q, K, V of an HDF5 file and write the outputs to an HDF5 file");
  add_input_options(*cmd, o->config.input, o->config.names);
  cmd->get_option("--input")->required();
  cmd->add_option("--out", o->config.out, "Output HDF5 file (written under a temporary name, then renamed)")->required();
  cmd->add_flag("--force", o->config.force, "Overwrite an existing output file");
  cmd->add_option("--queries", o->config.queries,
                  "Query rows evaluated: an evenly strided sample of Q's rows (default: every row)");
  cmd->add_option("--heads-kv", o->config.heads_kv,
                  "Key/value heads (grouped-query attention: query head h uses kv head h/(Hq/Hkv)); checked "
                  "against K's first dimension");
  cmd->add_option("--head", o->config.only_head, "Only this query head (default: every head)");
  add_job_options(*cmd, o->job, kDefaultWindows);
  cmd->remove_option(cmd->get_option("--no-exact"));
  cmd->add_flag("--exact", o->exact,
                "Also compute exact attention: /O_exact, the error statistics, eps: and mass: windows, and the table");
  cmd->add_flag("--save-lists", o->config.save_lists, "Write the merged top-(K+1) lists: /lists/index, /lists/score");
  cmd->add_flag("--save-cert", o->config.save_cert, "Write the per-row certificate bounds: /stats/SPEC/cert_*");
  cmd->add_option("--format", o->format, "Statistics printed with --exact: table, csv or json")->capture_default_str();
  return [o, cmd](const Comm& comm) {
    ProcessAccount account;
    app::AttendConfig config = o->config;
    config.job = finish_job_options(o->job);
    config.job.exact = o->exact;
    const Format format = parse_format(o->format);
    if (config.queries < 0 || (config.queries == 0 && cmd->count("--queries") > 0)) {
      throw usage_error("--queries: must be >= 1, got " + std::to_string(config.queries) +
                        " (leave it out for every row of Q)");
    }
    for (const auto& [flag, name] : {std::pair{"--q", &config.names.q}, {"--k", &config.names.k}, {"--v", &config.names.v}}) {
      if (name->empty()) throw usage_error(std::string(flag) + ": give a dataset name (e.g. /Q), not an empty one");
    }
    if (cmd->count("--head") > 0 && config.only_head < 0) {
      throw usage_error("--head: must be >= 0, got " + std::to_string(config.only_head) + " (leave it out for every head)");
    }
    if (config.heads_kv < 0) throw usage_error("--heads-kv: must be >= 1, got " + std::to_string(config.heads_kv));
    bool first = true;
    app::attend_file(comm, config, [&](std::int64_t head, const JobResult& result) {
      print_warnings(comm.rank(), result, "head " + std::to_string(head) + ": ");
      if (!config.job.exact) return;
      JobResult timed = result;
      account.add(comm, timed.times);
      std::string text;
      if (format == Format::Table) text = "head " + std::to_string(head) + "\n";
      if (format == Format::Json) text = first ? "[\n" : ",\n";
      text += format_result(timed, format);
      print(comm, text);
      first = false;
    });
    if (config.job.exact && format == Format::Json) print(comm, "]\n");
    return 0;
  };
}

}  // namespace ncsparse::cli
