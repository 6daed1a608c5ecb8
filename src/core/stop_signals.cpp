#include "core/stop_signals.hpp"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>

namespace ncsparse {
namespace {

volatile std::sig_atomic_t g_signal = 0;
std::atomic<int> g_polling{0};
bool g_rank0 = true;  // from the launcher's environment: MPI may not be initialised yet
volatile std::sig_atomic_t g_final = -1;  // the exit code, once decided

extern "C" void on_stop_signal(int sig) {
  if (g_final >= 0) ::_exit(g_final);  // decided (and any error printed): nothing to add
  g_signal = sig;
  if (g_polling.load() > 0) return;
  if (g_rank0) {
    // Only async-signal-safe calls here: write and _exit.
    const char* text = sig == SIGINT ? "ncsparse: error: interrupted by SIGINT; nothing was written (rerun the command)\n"
                                     : "ncsparse: error: interrupted by SIGTERM; nothing was written (rerun the command)\n";
    const ssize_t n = ::write(2, text, std::strlen(text));
    (void)n;
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
}

void finish_stop_signals(int code) { g_final = code; }

int stop_signal() { return g_signal; }

const char* stop_signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal"; }

StopPolling::StopPolling() { g_polling.fetch_add(1); }
StopPolling::~StopPolling() { g_polling.fetch_sub(1); }

}  // namespace ncsparse
