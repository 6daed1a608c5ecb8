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
// The end of a job, in two steps, so that a signal as it finishes gives one outcome on every
// rank. begin_settling_stop_signals(code), once this rank's command has returned code: a
// signal from then on is only recorded (and, when code is 0, rank 0 writes at once
// "interrupted by SIGTERM as the job finished; its outputs are complete", since a rank that
// was not yet settling ends with 75 at the same signal). Then every rank agrees on the
// signals received (the maximum of stop_signal()), and settle_stop_signals(code, agreed) gives
// the exit code: 75 with that line (written once) when code was 0 and some rank was
// signalled, or rank 0 wrote the line (a signal that came after every rank's part of the
// agreement), code otherwise. From then on a signal leaves a success to MPI_Finalize (exiting
// with it after a grace of 10 s should MPI_Finalize not return) and ends an error silently
// with its code (the SIGTERM the launcher sends the ranks left when one has exited).
void begin_settling_stop_signals(int code);
int settle_stop_signals(int code, int agreed_signal);
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
