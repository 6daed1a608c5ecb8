// SIGINT and SIGTERM, from the first instruction of main() to the process's last (main()
// installs the handler before MPI_Init; only the dynamic loader's milliseconds before main()
// are not covered). While some phase polls for them (a StopPolling is alive: a
// study, the writing of an output), the handler only records the signal and that phase ends
// the job at its next agreement point, exit 75 with its own message. Otherwise (MPI start-up,
// argument parsing, a run without output) it ends the process at once: rank 0 writes one line,
// "ncsparse: error: interrupted by SIGTERM ...", and every rank exits 75.
#pragma once

namespace ncsparse {

// Installs the handler for SIGINT and SIGTERM (again after MPI_Init, should MPI have replaced it).
void install_stop_signals();
// Once the outcome is decided (and any error printed): a signal from then on ends the process
// silently with that exit code, e.g. the SIGTERM the launcher sends the ranks still in
// MPI_Finalize when another rank has exited with an error.
void finish_stop_signals(int code);
// The signal received so far (SIGINT or SIGTERM), or 0.
int stop_signal();
// "SIGINT", "SIGTERM" or "a signal".
const char* stop_signal_name(int sig);

// While alive, the handler records the signal and leaves the process running.
class StopPolling {
 public:
  StopPolling();
  ~StopPolling();
  StopPolling(const StopPolling&) = delete;
  StopPolling& operator=(const StopPolling&) = delete;
};

}  // namespace ncsparse
