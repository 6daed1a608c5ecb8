// Open MPI settings chosen before MPI_Init from what the launcher says about the job.
//
// Measured on Debian's Open MPI 4.1.4 (benchmarks/RESULTS.md, "MPI start-up"): MPI_Init took
// 0.24-0.31 s, of which about 0.2 s was the cm PML opening the PSM and PSM2 transports (each
// library probes for Omni-Path/InfiniPath adapters), and a process started without mpirun
// forked a supporting daemon (0.1 s more, and 0.05 s at MPI_Finalize). When every rank is on
// one node, those transports cannot be used (ranks talk through shared memory), so ncsparse
// asks for the ob1 PML, and a process started without a launcher runs isolated (it never
// spawns). MPI_Init then takes about 0.03 s. Nothing is changed where the user or the
// launcher chose the PML (OMPI_MCA_pml set), for a job spread over several nodes (the fast
// network may need cm or ucx), or with NCSPARSE_MPI_DEFAULTS=library. Other MPI libraries
// ignore these variables.
//
// After MPI_Init, finish_mpi_startup turns off Nagle's algorithm (TCP_NODELAY) on the
// process's connected loopback TCP sockets: the connection of a rank to its launcher's PMIx
// server, which PMIx 4 (Debian 12) opens over 127.0.0.1 without it. Its small messages then
// waited for the server's delayed acknowledgement: 40 ms in every MPI_Finalize under mpirun
// (`strace -f -tt`: both ranks idle 42 ms in the last exchange; `mpirun -np 2 ncsparse
// --version` 0.09 s, 0.05 s with the option). Only loopback TCP sockets are touched, and not
// with NCSPARSE_MPI_DEFAULTS=library.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace ncsparse {

struct MpiStartup {
  std::vector<std::pair<std::string, std::string>> set;  // environment variables to set
  std::string description;  // for the report: what was chosen and why, or "library defaults (why)"
};

// Decides from the environment (getenv-like: nullptr when a variable is unset). Pure, for tests.
MpiStartup choose_mpi_startup(const std::function<const char*(const char*)>& env);

// choose_mpi_startup on this process's environment, applied with setenv; before MPI_Init.
void prepare_mpi_startup();

// After MPI_Init: TCP_NODELAY on every connected loopback TCP socket of the process (the PMIx
// client's); returns how many were set (0 with NCSPARSE_MPI_DEFAULTS=library). Safe to call
// with no such socket, or more than once.
int finish_mpi_startup();

// The description of what prepare_mpi_startup chose ("" when it was not called).
const std::string& mpi_startup_description();

}  // namespace ncsparse
