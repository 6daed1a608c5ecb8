// ncsparse command line. Every rank parses the same arguments the same way, so a usage error
// is found on all ranks without any communication; rank 0 alone prints it.
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <map>

#include "ncsparse/comm.hpp"
#include "ncsparse/engine.hpp"
#include "ncsparse/report.hpp"

namespace {

using namespace ncsparse;

const std::vector<std::string> kDefaultWindows = {"const:256", "log:8", "power:1,0.5", "power:4,0.4", "cert:1e-3"};

int rank_of_world() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

void say_error(const std::string& message) {
  if (rank_of_world() == 0) std::fprintf(stderr, "ncsparse: error: %s\n", message.c_str());
}

struct RunOptions {
  JobConfig job;
  std::vector<std::string> windows = kDefaultWindows;
  std::vector<double> sparsity_eps = {1e-2, 1e-3, 1e-4};
  std::string format = "table";
  std::string model = "paper";
  std::string x_dist = "gaussian";
  bool no_exact = false;
};

void add_run_options(CLI::App& cmd, RunOptions& o) {
  JobConfig& j = o.job;
  cmd.add_option("--n", j.n, "Keys: the sequence length")->capture_default_str();
  cmd.add_option("--d", j.model.d, "Head dimension of Q, K and V")->capture_default_str();
  cmd.add_option(
         "--queries", j.queries,
         "Query rows evaluated: an evenly strided deterministic sample of the n rows (all rows when equal to --n)")
      ->capture_default_str();
  cmd.add_option("--window", o.windows,
                 "Window strategies, repeatable or space-separated: const:K, log:A (k=ceil(A ln n)), power:A,C "
                 "(k=ceil(A n^C)), sqrt:A, eps:E (entries with p>=E), mass:D (kept mass>=1-D), cert:D (certified "
                 "dropped mass<=D), sink:S,W (first S and last W positions)")
      ->capture_default_str();
  cmd.add_option("--model", o.model,
                 "Input generator: paper (X with bounded entries, Q=XW_Q, K=XW_K, V=XW_V) or gaussian (i.i.d. Q, K, V)")
      ->capture_default_str();
  cmd.add_option("--x-dist", o.x_dist,
                 "paper model: entries of X, gaussian (N(0,1) clipped to [-B,B]) or uniform (on [-B,B])")
      ->capture_default_str();
  cmd.add_option("--B", j.model.bound, "paper model: bound B on the entries of X")->capture_default_str();
  cmd.add_option("--R", j.model.weight_norm,
                 "paper model: R = B^2 ||W_Q W_K^T||_F; scores have standard deviation about scale*R/B^2")
      ->capture_default_str();
  cmd.add_option("--sigma", j.model.sigma, "gaussian model: standard deviation of the entries")->capture_default_str();
  cmd.add_option("--seed", j.model.seed, "Seed of the counter-based generator")->capture_default_str();
  cmd.add_option("--scale", j.scale, "Score scale s in s*q.k (0 means 1/sqrt(d))")->capture_default_str();
  cmd.add_flag("--causal", j.causal, "Causal mask: the query at position p sees keys j <= p");
  cmd.add_flag("--no-exact", o.no_exact,
               "Skip the exact pass: no error statistics, only windows and certificate bounds (eps and mass need it)");
  cmd.add_option("--threads", j.threads, "Threads per rank")->capture_default_str();
  cmd.add_option("--block", j.block, "Query rows per block")->capture_default_str();
  cmd.add_option("--tile", j.tile, "Keys per score tile")->capture_default_str();
  cmd.add_option("--max-k", j.max_k, "Largest window the adaptive strategies (eps, mass, cert) may choose")
      ->capture_default_str();
  cmd.add_option("--sparsity-eps", o.sparsity_eps,
                 "Levels epsilon at which entries with p > epsilon are counted per row")
      ->capture_default_str();
  cmd.add_option("--backend", j.backend, "Compute backend: cpu")->capture_default_str();
  cmd.add_option("--format", o.format, "Output: table, csv or json")->capture_default_str();
}

// Turns the parsed strings into the job config; throws usage Errors naming the flag.
JobConfig finish_run_options(RunOptions& o) {
  JobConfig j = o.job;
  j.windows.clear();
  for (const std::string& w : o.windows) j.windows.push_back(parse_window(w));
  if (o.model == "paper") {
    j.model.model = InputModel::Paper;
  } else if (o.model == "gaussian") {
    j.model.model = InputModel::Gaussian;
  } else {
    throw usage_error("--model: unknown input model '" + o.model + "' (use paper or gaussian)");
  }
  if (o.x_dist == "gaussian") {
    j.model.x_dist = XDistribution::Gaussian;
  } else if (o.x_dist == "uniform") {
    j.model.x_dist = XDistribution::Uniform;
  } else {
    throw usage_error("--x-dist: unknown distribution '" + o.x_dist + "' (use gaussian or uniform)");
  }
  j.exact = !o.no_exact;
  j.sparsity_eps = o.sparsity_eps;
  parse_format(o.format);
  return j;
}

int main_inner(int argc, char** argv) {
  CLI::App app{
      "ncsparse: distributed exact and top-k sparse softmax attention over MPI ranks.\n"
      "Run under mpirun; every rank takes the same arguments.",
      "ncsparse"};
  app.set_version_flag("--version", std::string("ncsparse ") + NCSPARSE_VERSION);
  app.require_subcommand(1);
  RunOptions run;
  CLI::App* run_cmd = app.add_subcommand(
      "run",
      "Generate a sharded sequence, compute exact and top-k sparse attention for sampled query rows, "
      "and print the error of every window strategy");
  add_run_options(*run_cmd, run);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help or --version
      if (rank_of_world() == 0) app.exit(e);
      return 0;
    }
    std::string what = e.what();
    // CLI11 says "Could not convert: --n = abc"; say it flag first, as every other error does.
    const std::string prefix = "Could not convert: ";
    if (what.rfind(prefix, 0) == 0 && what.find(" = ") != std::string::npos) {
      const std::size_t eq = what.find(" = ");
      what = what.substr(prefix.size(), eq - prefix.size()) + ": '" + what.substr(eq + 3) +
             "' is not a valid value of this option";
    }
    say_error(what + " (see 'ncsparse " + (run_cmd->parsed() ? "run " : "") + "--help')");
    return kExitUsage;
  }

  const Comm comm(MPI_COMM_WORLD);
  try {
    const JobConfig job = finish_run_options(run);
    const Format format = parse_format(run.format);
    const JobResult result = run_job(comm, job);
    if (comm.rank() == 0) {
      const std::string text = format_result(result, format);
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    }
    return 0;
  } catch (const Error& e) {
    // Usage errors are found identically on every rank; runtime errors were agreed on by a
    // collective before they were thrown. Either way every rank is here with the same code.
    say_error(e.what());
    return e.code();
  }
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int code = 0;
  try {
    code = main_inner(argc, argv);
  } catch (const std::exception& e) {
    // Not agreed on by the other ranks: end them all rather than leave them waiting.
    std::fprintf(stderr, "ncsparse: internal error on rank %d: %s\n", rank_of_world(), e.what());
    MPI_Abort(MPI_COMM_WORLD, kExitInternal);
  }
  MPI_Finalize();
  return code;
}
