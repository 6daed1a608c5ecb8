#include "cli/commands.hpp"

#include <algorithm>
#include <cstdio>

#include "core/process_clock.hpp"

namespace ncsparse::cli {

std::vector<Command> add_commands(CLI::App& app) {
  std::vector<Command> commands;
  auto add = [&](Runner (*adder)(CLI::App&)) {
    const std::size_t before = app.get_subcommands({}).size();
    Runner run = adder(app);
    commands.push_back({app.get_subcommands({})[before], std::move(run)});
  };
  add(&add_run_command);
  add(&add_generate_command);
  add(&add_attend_command);
  add(&add_study_command);
  add(&add_report_command);
  add(&add_schema_command);
  add(&add_fit_command);
  add(&add_calibrate_command);
  add(&add_plan_command);
  return commands;
}

void add_model_options(CLI::App& cmd, ModelOptions& o) {
  ModelParams& p = o.params;
  cmd.add_option("--d", p.d, "Head dimension of Q, K and V")->capture_default_str();
  cmd.add_option("--model", o.model,
                 "Input generator: paper (X with bounded entries, Q=XW_Q, K=XW_K, V=XW_V) or gaussian (i.i.d. Q, K, V)")
      ->capture_default_str();
  cmd.add_option("--x-dist", o.x_dist,
                 "paper model: entries of X, gaussian (N(0,1) clipped to [-B,B]) or uniform (on [-B,B])")
      ->capture_default_str();
  cmd.add_option("--B", p.bound, "paper model: bound B on the entries of X")->capture_default_str();
  cmd.add_option("--R", p.weight_norm,
                 "paper model: R = B^2 ||W_Q W_K^T||_F; scores have standard deviation about scale*R/B^2")
      ->capture_default_str();
  cmd.add_option("--sigma", p.sigma, "gaussian model: standard deviation of the entries")->capture_default_str();
  cmd.add_option("--seed", p.seed, "Seed of the counter-based generator")->capture_default_str();
  cmd.add_option("--rope-theta", p.rope_theta,
                 "RoPE on Q and K with this base (e.g. 10000): pair (2i,2i+1) at position p turns by p*theta^(-2i/d); "
                 "0: off")
      ->capture_default_str();
  cmd.add_option("--sinks", p.sinks, "Planted attention sinks: keys at positions 0..S-1 attract every query; 0: off")
      ->capture_default_str();
  cmd.add_flag("--tied", p.tied,
               "Queries are the keys (Q = K, query p is key p): the symmetric setting exp(XX^T) of the "
               "sparsification paper");
  cmd.add_option("--sink-strength", p.sink_strength,
                 "Score boost of the sinks, q.k += strength*sqrt(d) (a logit boost of strength at scale 1/sqrt(d))")
      ->capture_default_str();
}

ModelParams finish_model_options(const ModelOptions& o) {
  ModelParams p = o.params;
  if (!parse_input_model(o.model, p.model)) {
    throw usage_error("--model: unknown input model '" + o.model + "' (use paper or gaussian)");
  }
  if (!parse_x_distribution(o.x_dist, p.x_dist)) {
    throw usage_error("--x-dist: unknown distribution '" + o.x_dist + "' (use gaussian or uniform)");
  }
  return p;
}

void add_job_options(CLI::App& cmd, JobOptions& o, const std::vector<std::string>& default_windows) {
  JobConfig& j = o.job;
  o.windows = default_windows;
  std::string forms;  // from the strategy registry
  for (const StrategyKind& k : strategy_kinds()) forms += (forms.empty() ? "" : ", ") + k.form + " (" + k.help + ")";
  cmd.add_option("--window", o.windows, "Window strategies, repeatable or space-separated: " + forms)
      ->capture_default_str();
  cmd.add_option("--scale", j.scale, "Score scale s in s*q.k (0 means 1/sqrt(d))")->capture_default_str();
  cmd.add_flag("--causal", j.causal, "Causal mask: the query at position p sees keys j <= p");
  cmd.add_flag("--no-exact", o.no_exact,
               "Skip the exact pass: no error statistics, only windows and certificate bounds (eps and mass need it)");
  cmd.add_option("--threads", j.threads, "Threads per rank")->capture_default_str();
  cmd.add_option("--block", o.block,
                 "Query rows per block (default: max(256, 64 x threads), so that every thread scores at least 64 rows per "
                 "pass over the shard)");
  cmd.add_option("--tile", j.tile, "Keys per score tile")->capture_default_str();
  cmd.add_option("--max-k", j.max_k, "Largest window the adaptive strategies (eps, mass, cert) may choose")
      ->capture_default_str();
  cmd.add_option("--sparsity-eps", o.sparsity_eps,
                 "Levels epsilon at which entries with p > epsilon are counted per row")
      ->capture_default_str();
  cmd.add_flag("--stream", j.stream,
               "Read K and V tile by tile from the generator or file and never hold the shard (memory independent "
               "of n); only for taylor and features windows");
  cmd.add_option("--backend", j.backend,
                 "Compute backend: cpu, or cuda (one GPU per rank; in builds with the CUDA backend)")
      ->capture_default_str();
  cmd.add_option("--score-precision", j.score_precision,
                 "Precision of the score GEMM that filters candidates: fp32, or tf32/bf16 on the cuda backend's tensor "
                 "cores. Lists are the same in every precision (survivors are re-scored exactly); the exact pass "
                 "stays fp32")
      ->capture_default_str();
}

JobConfig finish_job_options(const JobOptions& o) {
  JobConfig j = o.job;
  j.windows.clear();
  for (const std::string& w : o.windows) j.windows.push_back(parse_window(w));
  j.exact = !o.no_exact;
  j.sparsity_eps = o.sparsity_eps;
  j.block = o.block ? *o.block : std::max<std::int64_t>(256, 64 * std::int64_t{std::max(j.threads, 1)});
  return j;
}

void print_from_rank0(const Comm& comm, const std::function<std::string()>& make_text) {
  std::string text;
  try {
    collective(comm, [&] {
      if (comm.rank() == 0) text = make_text();
    });
  } catch (const Error& e) {
    std::string msg = e.what();
    if (msg.rfind("rank 0: ", 0) == 0) msg = msg.substr(8);
    throw Error(e.code(), msg);
  }
  print(comm, text);
}

ProcessAccount::ProcessAccount() : start_(process_seconds()), mark_(start_) {}

void ProcessAccount::add(const Comm& comm, PhaseTimes& t) {
  const double now = process_seconds();
  const double span = comm.allreduce_max(now - mark_);
  if (first_) t.startup = comm.allreduce_max(start_);
  t.other += std::max(0.0, span - t.total);
  t.total = t.startup + std::max(span, t.total);
  mark_ = now;
  first_ = false;
}

void print(const Comm& comm, const std::string& text) {
  if (comm.rank() != 0) return;
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

}  // namespace ncsparse::cli
