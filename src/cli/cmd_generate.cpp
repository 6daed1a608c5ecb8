// ncsparse generate: write the generator's Q, K, V to an HDF5 file with parallel HDF5.
#include <memory>

#include "app/generate.hpp"
#include "cli/commands.hpp"

namespace ncsparse::cli {

Runner add_generate_command(CLI::App& app) {
  struct Options {
    ModelOptions model;
    app::GenerateConfig config;
    std::string dtype = "float32";
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "generate",
      "Write the generator's Q, K and V (the inputs 'ncsparse run' makes in memory) to an HDF5 file: datasets /Q, "
      "/K, /V of shape (n, d), or (heads, n, d) with --heads; each rank writes its own rows");
  cmd->add_option("--n", o->config.n, "Rows of Q, K and V (the sequence length)")->required();
  add_model_options(*cmd, o->model);
  cmd->add_option("--heads", o->config.heads,
                  "Heads H: datasets of shape (H, n, d); head h uses seed + h*0x9E3779B97F4A7C15 (head 0: --seed). "
                  "Without it: (n, d)");
  cmd->add_option("--dtype", o->dtype, "Element type: float32, float64, float16 or bfloat16 (uint16 + attribute)")
      ->capture_default_str();
  cmd->add_option("--out", o->config.out, "Output HDF5 file (written under a temporary name, then renamed)")->required();
  cmd->add_flag("--force", o->config.force, "Overwrite an existing output file");
  return [o, cmd](const Comm& comm) {
    app::GenerateConfig config = o->config;
    config.model = finish_model_options(o->model);
    config.dtype = io::parse_dtype(o->dtype);
    if (cmd->count("--heads") > 0 && config.heads < 1) {
      throw usage_error("--heads: must be >= 1, got " + std::to_string(config.heads));
    }
    app::generate_file(comm, config);
    return 0;
  };
}

}  // namespace ncsparse::cli
