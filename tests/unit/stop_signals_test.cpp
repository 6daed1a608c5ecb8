// The end of a job under SIGTERM (core/stop_signals.hpp), in a child process each (the handler's
// state is process-wide): the exit code and the one line must agree.
#include <gtest/gtest.h>

#include <csignal>
#include <unistd.h>

#include "core/stop_signals.hpp"

namespace ncsparse {
namespace {

// Rank 0 (no launcher in the environment) signalled inside the final agreement after every rank
// gave its part: the agreement says no signal (0), but the handler has written the line, so the
// code must be 75. (It was 0 with the line until 2026-12-05: 1 in 120 late-signal runs.)
TEST(StopSignals, SignalAfterTheAgreementsPartsStillExits75WithTheLine) {
  EXPECT_EXIT(
      {
        install_stop_signals();
        begin_settling_stop_signals(0);
        std::raise(SIGTERM);
        ::alarm(0);  // the handler's grace alarm
        ::_exit(settle_stop_signals(0, 0));
      },
      ::testing::ExitedWithCode(75), "interrupted by SIGTERM as the job finished; its outputs are complete");
}

// No signal at all: a success stays 0 and nothing is written.
TEST(StopSignals, NoSignalStaysSuccess) {
  EXPECT_EXIT(
      {
        install_stop_signals();
        begin_settling_stop_signals(0);
        ::_exit(settle_stop_signals(0, 0));
      },
      ::testing::ExitedWithCode(0), "^$");
}

// A signal after the outcome is settled: no line, the success stands (MPI_Finalize ends it).
TEST(StopSignals, SignalAfterSettlingWritesNoLine) {
  EXPECT_EXIT(
      {
        install_stop_signals();
        begin_settling_stop_signals(0);
        const int code = settle_stop_signals(0, 0);
        std::raise(SIGTERM);
        ::alarm(0);
        ::_exit(code);
      },
      ::testing::ExitedWithCode(0), "^$");
}

}  // namespace
}  // namespace ncsparse
