// MPI errors return (MPI_ERRORS_RETURN on every communicator a Comm wraps, and on those made
// from it): one failing MPI call on one rank becomes an Error there, which collective() agrees
// on, so that every rank throws the same one-line message naming the rank and the call, with
// exit code 70 (kExitInternal). Under MPI's default handler the call would end the job instead.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdlib>
#include <string>

#include "ncsparse/comm.hpp"

namespace ncsparse {
namespace {

// An invalid MPI call (a negative count) made by rank `who` alone, inside collective().
Error failure_on(const Comm& comm, int who) {
  try {
    collective(comm, [&] {
      if (comm.rank() == who) NCSPARSE_MPI(MPI_Send(nullptr, -1, MPI_BYTE, MPI_PROC_NULL, 0, comm.get()));
    });
  } catch (const Error& e) {
    return e;
  }
  return Error(0, "no error");
}

void expect_agreed_mpi_error(const Comm& comm, const Error& e, int who) {
  EXPECT_EQ(e.code(), kExitInternal) << e.what();
  const std::string what = e.what();
  const std::string want =
      (comm.size() > 1 ? "rank " + std::to_string(who) + ": " : std::string()) + "MPI call failed: MPI_Send(";
  EXPECT_EQ(what.rfind(want, 0), 0u) << what;
  EXPECT_NE(what.find("MPI_ERR_COUNT"), std::string::npos) << what;
  EXPECT_EQ(what.find('\n'), std::string::npos) << what;
}

TEST(MpiErrors, FailingCallOnOneRankIsAgreedOnByAll) {
  const Comm world(MPI_COMM_WORLD);
  const int who = world.size() - 1;
  expect_agreed_mpi_error(world, failure_on(world, who), who);
  // The communicator still works afterwards: the failure did not end or poison the job.
  EXPECT_EQ(world.allreduce_max(static_cast<double>(world.rank())), world.size() - 1);
}

TEST(MpiErrors, CommSetsTheHandlerOnACommunicatorThatHadTheFatalOne) {
  MPI_Comm dup = MPI_COMM_NULL;
  ASSERT_EQ(MPI_Comm_dup(MPI_COMM_WORLD, &dup), MPI_SUCCESS);
  ASSERT_EQ(MPI_Comm_set_errhandler(dup, MPI_ERRORS_ARE_FATAL), MPI_SUCCESS);
  {
    const Comm comm(dup);
    expect_agreed_mpi_error(comm, failure_on(comm, 0), 0);
  }
  MPI_Comm_free(&dup);
}

TEST(MpiErrors, CommunicatorsMadeFromACommInheritTheHandler) {
  const Comm world(MPI_COMM_WORLD);
  MPI_Comm half = MPI_COMM_NULL;
  NCSPARSE_MPI(MPI_Comm_split(world.get(), world.rank() % 2, world.rank(), &half));
  MPI_Errhandler handler = MPI_ERRHANDLER_NULL;
  NCSPARSE_MPI(MPI_Comm_get_errhandler(half, &handler));
  EXPECT_EQ(handler, MPI_ERRORS_RETURN);
  if (handler != MPI_ERRHANDLER_NULL) MPI_Errhandler_free(&handler);
  // A raw call on the split communicator returns its error code instead of aborting.
  EXPECT_NE(MPI_Send(nullptr, -1, MPI_BYTE, MPI_PROC_NULL, 0, half), MPI_SUCCESS);
  MPI_Comm_free(&half);
}

TEST(MpiErrors, InjectionHookFailsTheNamedRank) {
  const Comm world(MPI_COMM_WORLD);
  inject_mpi_failure(world);  // not set: nothing happens
  const int who = world.size() / 2;
  ::setenv("NCSPARSE_INJECT_MPI_FAILURE", std::to_string(who).c_str(), 1);
  try {
    inject_mpi_failure(world);
    ADD_FAILURE() << "no Error thrown";
  } catch (const Error& e) {
    expect_agreed_mpi_error(world, e, who);
  }
  ::unsetenv("NCSPARSE_INJECT_MPI_FAILURE");
}

}  // namespace
}  // namespace ncsparse
