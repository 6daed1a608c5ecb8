// ncsparse fit: the sparsity exponent C of a study's results, with its confidence interval,
// per input regime, and the window power:α,C it recommends (src/study/fit.hpp).
#include <memory>

#include "cli/commands.hpp"
#include "study/fit.hpp"

namespace ncsparse::cli {

Runner add_fit_command(CLI::App& app) {
  struct Options {
    std::string file;
    std::string format = "table";
    study::FitOptions fit;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "fit",
      "Fit the sparsity exponent C (support ~ a*n^C) of a study's results per input regime, with a confidence "
      "interval, from the entries above eps and the mass:D / cert:D windows, and recommend power:A,C");
  cmd->add_option("results", o->file, "Results file written by 'ncsparse study'")->required();
  cmd->add_option("--confidence", o->fit.confidence, "Confidence level of the interval on C")->capture_default_str();
  cmd->add_option("--target-l1", o->fit.target_l1,
                  "Recommend the window for this mean attention-row l1 error (uses the mass:D level with 2D <= it); "
                  "0: one recommendation per mass:D level")
      ->capture_default_str();
  cmd->add_option("--min-n", o->fit.min_n, "Fit only the lengths n >= this")->capture_default_str();
  cmd->add_option("--format", o->format, "Output: table, markdown or csv")->capture_default_str();
  return [o](const Comm& comm) {
    o->fit.format = study::parse_fit_format(o->format);
    print_from_rank0(comm, [&] { return study::format_fit(o->file, o->fit); });
    return 0;
  };
}

}  // namespace ncsparse::cli
