// Sets up the collectives between the devices of a job's ranks over MPI, from the backend's
// neutral description (DeviceCollectivesSetup): comm knows no backend and no device library.
#include <cstring>
#include <string>
#include <vector>

#include "ncsparse/comm.hpp"

namespace ncsparse {

std::shared_ptr<DeviceCollectives> make_device_collectives(const Comm& comm,
                                                           const std::optional<DeviceCollectivesSetup>& setup,
                                                           std::string& why) {
  if (!setup) {
    why = "mpi";
    return nullptr;
  }
  if (comm.size() == 1) {
    why = "none (one rank)";
    return nullptr;
  }
  if (!setup->unavailable.empty()) {
    why = setup->unavailable;
    return nullptr;
  }
  // Ranks that share a device keep MPI, all of them (every rank sees the same list).
  constexpr int kIdBytes = 320;
  std::string mine;
  collective(comm, [&] { mine = setup->device_identity(); });
  mine.resize(kIdBytes, '\0');
  std::vector<char> all(static_cast<std::size_t>(kIdBytes) * comm.size());
  NCSPARSE_MPI(MPI_Allgather(mine.data(), kIdBytes, MPI_CHAR, all.data(), kIdBytes, MPI_CHAR, comm.get()));
  for (int a = 0; a < comm.size(); ++a) {
    for (int b = a + 1; b < comm.size(); ++b) {
      if (std::memcmp(&all[std::size_t(a) * kIdBytes], &all[std::size_t(b) * kIdBytes], kIdBytes) == 0) {
        why = "mpi (ranks " + std::to_string(a) + " and " + std::to_string(b) + " share " + setup->shared_device + ")";
        return nullptr;
      }
    }
  }
  std::string id;
  collective(comm, [&] {
    if (comm.rank() == 0) id = setup->make_id();
  });
  int length = static_cast<int>(id.size());
  NCSPARSE_MPI(MPI_Bcast(&length, 1, MPI_INT, 0, comm.get()));
  id.resize(static_cast<std::size_t>(length));
  NCSPARSE_MPI(MPI_Bcast(id.data(), length, MPI_BYTE, 0, comm.get()));
  std::shared_ptr<DeviceCollectives> devices;
  collective(comm, [&] { devices = setup->connect(id, comm.rank(), comm.size()); });
  why = devices->name();
  return devices;
}

}  // namespace ncsparse
