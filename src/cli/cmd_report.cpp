// ncsparse report: the summary table of a study's results file; ncsparse schema: the statistics.
#include <memory>

#include "cli/commands.hpp"
#include "ncsparse/schema.hpp"
#include "study/report_study.hpp"

namespace ncsparse::cli {

Runner add_report_command(CLI::App& app) {
  struct Options {
    std::string file;
    std::string format = "table";
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "report", "Print the summary of a study's results file: one line per configuration and strategy");
  cmd->add_option("results", o->file, "Results file written by 'ncsparse study'")->required();
  cmd->add_option("--format", o->format, "Output: table, csv or markdown")->capture_default_str();
  return [o](const Comm& comm) {
    const study::ReportFormat format = study::parse_report_format(o->format);
    print_from_rank0(comm, [&] { return study::format_study_results(o->file, format); });
    return 0;
  };
}

}  // namespace ncsparse::cli

namespace ncsparse::cli {

// ncsparse schema: every statistic, column and phase time the outputs carry (docs/statistics.md).
Runner add_schema_command(CLI::App& app) {
  app.add_subcommand("schema", "Print the statistics schema: every per-row statistic, per-strategy column and phase "
                               "time that the outputs carry, as Markdown (docs/statistics.md)");
  return [](const Comm& comm) {
    print(comm, schema_markdown());
    return 0;
  };
}

}  // namespace ncsparse::cli
