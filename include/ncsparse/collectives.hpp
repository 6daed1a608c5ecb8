// Collectives that run somewhere other than MPI: NCCL between GPUs (one rank per GPU). They
// have the contract of the matching Comm calls (comm.hpp), on host buffers: every rank passes
// its buffer and gets back the merged one. Comm delegates to them when a job attached one.
// No MPI here, so that the kernels-only build (NCSPARSE_KERNELS_ONLY) can implement and test
// them on GPU machines without MPI.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "ncsparse/candidate.hpp"

namespace ncsparse {

class DeviceCollectives {
 public:
  virtual ~DeviceCollectives() = default;
  virtual std::string name() const = 0;
  // rows × L candidates per rank, each row sorted and padded → the top L of every rank's row.
  virtual void allreduce_topk(std::span<Candidate> lists, std::int64_t L) = 0;
  // rows × flash_row_size(d) exact states → their log-sum-exp merge over the ranks.
  virtual void allreduce_flash(std::span<double> states, std::int64_t d) = 0;
  virtual void allreduce_sum(std::span<double> values) = 0;
};

// How the ranks of a backend connect their devices for these collectives (NCCL for cuda; see
// device_collectives_setup in backend.hpp). make_device_collectives (comm.hpp) drives it over
// MPI without knowing the backend: it gathers every rank's device identity (ranks that share a
// device keep MPI), lets rank 0 make the id of a new communicator, broadcasts it, and connects.
struct DeviceCollectivesSetup {
  std::string unavailable;    // why the ranks keep MPI in this build or environment, "" if they need not
  std::string shared_device;  // the reason given when two ranks share a device
  std::function<std::string()> device_identity;  // this rank's device; equal on ranks that share one
  std::function<std::string()> make_id;          // rank 0 only: the new communicator's id, as bytes
  std::function<std::shared_ptr<DeviceCollectives>(const std::string& id, int rank, int size)> connect;
};

}  // namespace ncsparse
