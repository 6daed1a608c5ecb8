// NCCL collectives between GPUs (one rank per GPU), behind DeviceCollectives. Plain C++: the
// backend registry (src/backends/registry.cpp) describes them to src/comm, which sets them up
// over MPI; the gpu tests drive them and
// the device merges directly. Built only when NCCL is found (NCSPARSE_HAVE_NCCL).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "ncsparse/candidate.hpp"
#include "ncsparse/collectives.hpp"

namespace ncsparse::cuda {

using NcclId = std::array<char, 128>;  // ncclUniqueId, as bytes to broadcast

NcclId nccl_unique_id();

// Identifies the current device across a job: host name and PCI bus id. Two ranks with the same
// identity share a GPU, which NCCL refuses; the engine then keeps MPI.
std::string device_identity();

// Seconds any NCCL operation may take before the communicator is aborted and the call fails
// (NCSPARSE_NCCL_TIMEOUT, default 300): a rank that stopped ends the job instead of hanging it.
double nccl_timeout_seconds();

// Joins communicator `id` as `rank` of `size` on the current device (non-blocking init, bounded
// by timeout_s). Throws Error(kExitUnavailable) on an NCCL error or timeout, after aborting.
std::unique_ptr<DeviceCollectives> make_nccl_collectives(const NcclId& id, int rank, int size, double timeout_s);

// The device merges the collectives run after an all-gather, on host buffers (for tests):
// gathered holds P blocks of rows × L (rank-major), out gets rows × L; the same for states.
void merge_gathered_lists(const Candidate* gathered, int P, std::int64_t rows, std::int64_t L, Candidate* out);
void merge_gathered_flash(const double* gathered, int P, std::int64_t rows, std::int64_t d, double* out);

}  // namespace ncsparse::cuda
