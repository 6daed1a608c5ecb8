// Chooses the collectives of a job: NCCL between GPUs (unique id broadcast over MPI, one rank
// per GPU) or MPI on host buffers.
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ncsparse/comm.hpp"
#if defined(NCSPARSE_HAVE_NCCL)
#include "cuda/nccl.hpp"
#endif

namespace ncsparse {

std::shared_ptr<DeviceCollectives> make_device_collectives(const Comm& comm, const std::string& backend,
                                                           std::string& why) {
  if (backend != "cuda") {
    why = "mpi";
    return nullptr;
  }
  if (comm.size() == 1) {
    why = "none (one rank)";
    return nullptr;
  }
#if defined(NCSPARSE_HAVE_NCCL)
  if (const char* env = std::getenv("NCSPARSE_NCCL"); env != nullptr && std::string(env) == "0") {
    why = "mpi (NCSPARSE_NCCL=0)";
    return nullptr;
  }
  // NCCL refuses two ranks on one GPU: then every rank keeps MPI (all ranks see the same list).
  constexpr int kIdBytes = 320;
  std::string mine;
  double timeout = 0;
  collective(comm, [&] {
    mine = cuda::device_identity();
    timeout = cuda::nccl_timeout_seconds();
  });
  mine.resize(kIdBytes, '\0');
  std::vector<char> all(static_cast<std::size_t>(kIdBytes) * comm.size());
  NCSPARSE_MPI(MPI_Allgather(mine.data(), kIdBytes, MPI_CHAR, all.data(), kIdBytes, MPI_CHAR, comm.get()));
  for (int a = 0; a < comm.size(); ++a) {
    for (int b = a + 1; b < comm.size(); ++b) {
      if (std::memcmp(&all[std::size_t(a) * kIdBytes], &all[std::size_t(b) * kIdBytes], kIdBytes) == 0) {
        why = "mpi (ranks " + std::to_string(a) + " and " + std::to_string(b) + " share a GPU; NCCL needs one rank per GPU)";
        return nullptr;
      }
    }
  }
  cuda::NcclId id{};
  collective(comm, [&] {
    if (comm.rank() == 0) id = cuda::nccl_unique_id();
  });
  NCSPARSE_MPI(MPI_Bcast(id.data(), static_cast<int>(id.size()), MPI_BYTE, 0, comm.get()));
  std::shared_ptr<DeviceCollectives> nccl;
  collective(comm, [&] { nccl = cuda::make_nccl_collectives(id, comm.rank(), comm.size(), timeout); });
  why = "nccl";
  return nccl;
#else
  (void)comm;
  why = "mpi (this build has no NCCL)";
  return nullptr;
#endif
}

}  // namespace ncsparse
