// ncsparse command line. Every rank parses the same arguments the same way, so a usage error
// is found on all ranks without any communication; rank 0 alone prints it. Errors found while
// running are agreed on by all ranks before they are thrown (Comm::agree), so every rank
// reaches the catch below with the same code.
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.hpp"
#include "comm/mpi_startup.hpp"
#include "core/stop_signals.hpp"

namespace {

using namespace ncsparse;

int rank_of_world() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

void say_error(const std::string& message) {
  if (rank_of_world() == 0) std::fprintf(stderr, "ncsparse: error: %s\n", message.c_str());
}

// CLI11 says "Could not convert: --n = abc"; say it flag first, as every other error does.
std::string rephrase(std::string what) {
  const std::string prefix = "Could not convert: ";
  const std::size_t eq = what.find(" = ");
  if (what.rfind(prefix, 0) == 0 && eq != std::string::npos) {
    what = what.substr(prefix.size(), eq - prefix.size()) + ": '" + what.substr(eq + 3) +
           "' is not a valid value of this option";
  }
  return what;
}

int main_inner(int argc, char** argv) {
  CLI::App app{
      "ncsparse: distributed exact and top-k sparse softmax attention over MPI ranks.\n"
      "Run under mpirun (mpirun -q -np P ncsparse COMMAND ...); every rank takes the same arguments.",
      "ncsparse"};
  app.set_version_flag("--version", std::string("ncsparse ") + NCSPARSE_VERSION);
  app.require_subcommand(1);
  const std::vector<cli::Command> commands = cli::add_commands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help or --version
      if (rank_of_world() == 0) app.exit(e);
      return 0;
    }
    std::string where = "ncsparse --help";
    for (const cli::Command& c : commands) {
      if (c.app->parsed()) where = "ncsparse " + c.app->get_name() + " --help";
    }
    say_error(rephrase(e.what()) + " (see '" + where + "')");
    return kExitUsage;
  }

  const Comm comm(MPI_COMM_WORLD);
  try {
    inject_mpi_failure(comm);  // tests/cli/bad_input.sh: a failing MPI call ends in one line
    for (const cli::Command& c : commands) {
      if (c.app->parsed()) return c.run(comm);
    }
    return kExitInternal;
  } catch (const Error& e) {
    say_error(e.what());
    return e.code();
  }
}

}  // namespace

int main(int argc, char** argv) {
  // From the first instruction: a signal during MPI start-up or parsing exits 75 with one line.
  install_stop_signals();
  prepare_mpi_startup();  // the PML for one node: MPI_Init in 0.03 s instead of 0.3 (mpi_startup.hpp)
  MPI_Init(&argc, &argv);
  finish_mpi_startup();  // no Nagle on the PMIx socket: 40 ms less in MPI_Finalize under mpirun
  install_stop_signals();  // again, in case the MPI library installed handlers of its own
  int code = 0;
  try {
    code = main_inner(argc, argv);
    // The ranks return at different moments: a signal between the first's return and the
    // last's would otherwise end some ranks with this code and the others with 75, and the
    // launcher with 1 or 75 and no line. So they agree on it (stop_signals.hpp).
    begin_settling_stop_signals(code);
    int agreed = stop_signal();
    if (MPI_Allreduce(MPI_IN_PLACE, &agreed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS) agreed = 0;
    code = settle_stop_signals(code, agreed);
  } catch (const std::exception& e) {
    // Not agreed on by the other ranks: end them all rather than leave them waiting.
    std::fprintf(stderr, "ncsparse: internal error on rank %d: %s\n", rank_of_world(), e.what());
    MPI_Abort(MPI_COMM_WORLD, kExitInternal);
  }
  MPI_Finalize();
  return code;
}
