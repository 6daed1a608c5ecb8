// ncsparse study: run every configuration of a study file, checkpointing each one (docs/study.md).
#include <memory>

#include "cli/commands.hpp"
#include "study/run_study.hpp"

namespace ncsparse::cli {

Runner add_study_command(CLI::App& app) {
  auto o = std::make_shared<study::StudyOptions>();
  CLI::App* cmd = app.add_subcommand(
      "study",
      "Run a batch study (a grid of lengths, dimensions, input models and seeds; docs/study.md), one record per "
      "configuration, resumable after any interruption");
  cmd->add_option("study_file", o->study_file, "The study file (TOML)")->required();
  cmd->add_option("--out", o->out, "Results file (HDF5); records go to OUT.records/ beside it")->required();
  cmd->add_flag("--restart", o->restart, "Discard the results of a changed study file and start again");
  cmd->add_flag("--force", o->force, "Overwrite an output file that does not hold this study's results");
  cmd->add_option("--backend", o->backend,
                  "Compute backend of every configuration: cpu, or cuda (one GPU per rank; in builds with the CUDA "
                  "backend). Lists do not depend on it, so a study may resume on the other one")
      ->capture_default_str();
  cmd->add_option("--score-precision", o->score_precision,
                  "Precision of the score GEMM that filters candidates in every configuration: fp32, or tf32/bf16 on "
                  "the cuda backend's tensor cores. Lists do not depend on it (survivors are re-scored exactly), so "
                  "it is not part of the study's identity")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads,
                  "Threads per rank, overriding the file's [engine] threads (not part of the study's identity: "
                  "a study may resume with another count; e.g. a scheduler's CPUs per task)")
      ->check(CLI::Range(1, 65536));
  return [o](const Comm& comm) { return study::run_study(comm, *o); };
}

}  // namespace ncsparse::cli
