// ncsparse calibrate: measure the cost model's rates on this machine and write the profile that
// `ncsparse plan --profile` reads (docs/scaling.md, "The cost model of `plan`").
#include <cmath>
#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "core/process_clock.hpp"
#include "io/atomic_file.hpp"
#include "plan/calibrate.hpp"

namespace ncsparse::cli {

namespace {

std::string summary(const plan::Profile& p, const std::string& out, double seconds) {
  char buf[1600];
  auto rate = [](const std::vector<plan::PerD>& t, std::int64_t d) { return 2.0 * d / plan::Profile::at_d(t, d) / 1e9; };
  std::snprintf(
      buf, sizeof buf,
      "calibrated%s in %.1f s on %d rank(s) x %d thread(s): %s [%s], %d cores\n"
      "  score tile (L=1): %.1f / %.1f / %.1f GFLOP/s per thread at d = 32 / 64 / 128; exact pass adds %.3g s per row-key "
      "at d = 64\n"
      "  selection %.3g s per list entry; exp %.3g s; statistics %.3g s per list entry; memory %.2f GB/s, first touch "
      "%.2f GB/s; gather %.3g s per value fetched\n"
      "  all ranks at once against one: compute %.2fx, memory %.2fx, generator %.2fx slower\n"
      "  generator (paper, d = 64) %.3g M key rows/s per thread; HDF5 read %.2f GB/s; start-up %.2f s\n"
      "  allreduce_topk: alpha %.3g s, beta %.3g s/byte; allreduce_flash: alpha %.3g s, beta %.3g s/byte (at %d ranks%s)\n"
      "profile written to %s\n",
      p.quick ? " (quick)" : "", seconds, p.ranks, p.threads, p.cpu_model.c_str(),
      [&] {
        std::string f;
        for (const std::string& s : p.cpu_flags) f += (f.empty() ? "" : " ") + s;
        return f;
      }()
          .c_str(),
      p.cores, rate(p.score, 32), rate(p.score, 64), rate(p.score, 128), plan::Profile::at_d(p.exact, 64), p.selection,
      p.exp_seconds, p.stats_seconds, p.bandwidth / 1e9, p.first_touch / 1e9, p.gather_seconds, p.contention_compute,
      p.contention_memory, p.contention_generate,
      1e-6 / plan::Profile::at_d(p.gen_paper, 64), p.hdf5_read / 1e9, p.startup, p.topk.alpha, p.topk.beta, p.flash.alpha,
      p.flash.beta, p.ranks, p.ranks == 1 ? ": one rank, nothing measured; plan uses the built-in figures" : "",
      out.c_str());
  return buf;
}

}  // namespace

Runner add_calibrate_command(CLI::App& app) {
  struct Options {
    std::string out = "profile.json";
    bool force = false;
    bool quick = false;
    int threads = 1;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "calibrate",
      "Measure this machine's rates for the cost model of 'ncsparse plan' with the engine's own kernels (score tiles "
      "at d = 32, 64, 128, selection, exponentials, memory, generator, HDF5 read; under mpirun with P > 1 the "
      "latency and bandwidth of the merges at P) and write them as a JSON profile (about 20 s)");
  cmd->add_option("--out", o->out, "Profile to write (JSON)")->capture_default_str();
  cmd->add_flag("--force", o->force, "Overwrite an existing profile");
  cmd->add_flag("--quick", o->quick, "Smaller probes: about 2 s, rougher rates (for tests)");
  cmd->add_option("--threads", o->threads, "Threads per rank, as the jobs to plan will use")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  return [o](const Comm& comm) {
    plan::CalibrateConfig config;
    config.startup = comm.allreduce_max(process_seconds());
    const double t0 = MPI_Wtime();
    if (o->out.empty()) throw usage_error("--out: give the profile's file name");
    // Refused before anything is measured: an existing file without --force is exit 73.
    collective(comm, [&] {
      if (comm.rank() == 0) io::check_output_target(o->out, o->force, {});
    });
    config.quick = o->quick;
    config.threads = o->threads;
    config.tmpdir = io::dir_of(o->out);
    const plan::Profile profile = plan::calibrate(comm, config);
    const double seconds = comm.allreduce_max(MPI_Wtime() - t0);
    collective(comm, [&] {
      if (comm.rank() == 0) io::write_file_atomic(o->out, plan::to_json(profile));
    });
    print(comm, summary(profile, o->out, seconds));
    return 0;
  };
}

}  // namespace ncsparse::cli
