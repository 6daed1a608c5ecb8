// GoogleTest main for tests that may run on several MPI ranks. Only rank 0 prints the
// progress; failures are reduced over ranks so that every rank exits non-zero when any failed.
#include <gtest/gtest.h>
#include <mpi.h>

#include "comm/mpi_startup.hpp"

int main(int argc, char** argv) {
  ncsparse::prepare_mpi_startup();  // as ncsparse itself starts MPI
  MPI_Init(&argc, &argv);
  ncsparse::finish_mpi_startup();
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0 && any && !failed) std::fprintf(stderr, "a test failed on another rank\n");
  MPI_Finalize();
  return any;
}
