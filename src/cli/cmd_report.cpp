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
    std::string text;
    try {
      collective(comm, [&] {
        if (comm.rank() == 0) text = study::format_study_results(o->file, format);
      });
    } catch (const Error& e) {
      std::string msg = e.what();
      if (msg.rfind("rank 0: ", 0) == 0) msg = msg.substr(8);
      throw Error(e.code(), msg);
    }
    print(comm, text);
    return 0;
  };
}

}  // namespace ncsparse::cli
