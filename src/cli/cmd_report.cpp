// ncsparse report: the summary table of a study's results file.
#include <memory>

#include "cli/commands.hpp"
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
