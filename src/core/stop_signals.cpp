#include "core/stop_signals.hpp"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>

namespace ncsparse {
namespace {

// How long a rank waits, once signalled while settling or after the outcome is decided, for
// MPI_Finalize before it exits anyway (its launcher normally ends it well before).
constexpr unsigned kGraceSeconds = 10;

volatile std::sig_atomic_t g_signal = 0;
std::atomic<int> g_polling{0};
bool g_rank0 = true;  // from the launcher's environment: MPI may not be initialised yet
volatile std::sig_atomic_t g_settling = 0;     // the ranks are agreeing on the outcome
volatile std::sig_atomic_t g_settle_code = 0;  // this rank's outcome, while settling
volatile std::sig_atomic_t g_final = -1;       // the exit code, once decided
std::atomic<bool> g_said{false};               // the "as the job finished" line is written

// Only async-signal-safe calls in the handlers: write, alarm, _exit, lock-free atomics.
void say(const char* text) {
  const ssize_t n = ::write(2, text, std::strlen(text));
  (void)n;
}

void say_finished(int sig) {
  if (!g_rank0 || g_said.exchange(true)) return;
  say(sig == SIGINT ? "ncsparse: error: interrupted by SIGINT as the job finished; its outputs are complete\n"
                    : "ncsparse: error: interrupted by SIGTERM as the job finished; its outputs are complete\n");
}

extern "C" void on_alarm(int) { ::_exit(g_final >= 0 ? g_final : 75); }

extern "C" void on_stop_signal(int sig) {
  if (g_final > 0) ::_exit(g_final);  // an error, decided and said: nothing to add
  if (g_final == 0) {                 // success, agreed on by every rank: let MPI_Finalize end
    ::alarm(kGraceSeconds);
    return;
  }
  g_signal = sig;
  if (g_settling) {  // the outcome is being agreed on: it becomes 75 (settle_stop_signals)
    // Said now, should a rank that was not yet settling have exited 75 at this signal and
    // left this one waiting in the agreement until the launcher ends it.
    if (g_settle_code == 0) say_finished(sig);
    ::alarm(kGraceSeconds);
    return;
  }
  if (g_polling.load() > 0) return;
  if (g_rank0) {
    say(sig == SIGINT ? "ncsparse: error: interrupted by SIGINT; nothing was written (rerun the command)\n"
                      : "ncsparse: error: interrupted by SIGTERM; nothing was written (rerun the command)\n");
  }
  ::_exit(75);
}

}  // namespace

void install_stop_signals() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"}) {
    if (const char* r = std::getenv(name)) {
      g_rank0 = std::atoi(r) == 0;
      break;
    }
  }
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, nullptr);
}

void begin_settling_stop_signals(int code) {
  g_settle_code = code;
  g_settling = 1;
  if (code == 0 && g_signal != 0) say_finished(g_signal);  // signalled while a phase polled
}

int settle_stop_signals(int code, int agreed_signal) {
  if (code == 0 && agreed_signal != 0) {
    say_finished(agreed_signal);
    code = 75;
  } else if (code == 0 && g_said.exchange(true)) {
    // Rank 0 was signalled inside the agreement after every rank had given its part (so the
    // agreement says no signal), and has already written the line: the line stands, and so
    // does 75 (the launcher reports a rank's 75 beside the others' 0). Taking the flag here
    // otherwise also keeps a signal from now until g_final is set from writing the line.
    code = 75;
  }
  g_final = code;
  return code;
}

int stop_signal() { return g_signal; }

const char* stop_signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal"; }

StopPolling::StopPolling() { g_polling.fetch_add(1); }
StopPolling::~StopPolling() { g_polling.fetch_sub(1); }

}  // namespace ncsparse
