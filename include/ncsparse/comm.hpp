// Communication between ranks: the one checked MPI wrapper, the all-reduce top-k, the
// log-sum-exp all-reduce of exact states, and the collective agreement on errors.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "ncsparse/candidate.hpp"
#include "ncsparse/collectives.hpp"
#include "ncsparse/error.hpp"

namespace ncsparse {

// Turns a failed MPI call into an Error(kExitInternal) with a one-line message naming the call.
// MPI returns errors instead of aborting on every communicator a Comm wraps (see Comm::Comm).
void mpi_check(int rc, const char* call);
#define NCSPARSE_MPI(call) ::ncsparse::mpi_check((call), #call)

// How allreduce_topk merges the candidate lists over MPI (docs/scaling.md has their costs and
// the measurements behind choose_topk_merge). All four give the same list, bit for bit: the
// merge is associative and commutative under the total order of candidate.hpp.
enum class TopkMerge {
  kAllreduce,  // MPI_Allreduce with the merge as a user-defined op, one row per datatype element
  kTree,       // binomial-tree reduce to rank 0 (point-to-point), then MPI_Bcast
  kAllgather,  // MPI_Allgather of every rank's lists, then one local P-way merge per row
  kRowOwner,   // rows split over ranks: MPI_Alltoallv sends each row to its owner, the owner
               // merges its rows P ways, MPI_Allgatherv returns them (the ring's reduce-scatter
               // generalised to fewer rows than ranks)
};
const char* to_string(TopkMerge algorithm);

// The algorithm for `ranks` ranks and `bytes` of lists per rank: NCSPARSE_MERGE=allreduce, tree,
// allgather or rowowner when set (it must be the same on every rank: read once per process; any
// other value is Error(kExitUsage)), else the rule of docs/scaling.md.
TopkMerge choose_topk_merge(int ranks, std::size_t bytes);

// Whether a job whose ranks have device collectives (NCCL) merges its candidate lists and exact
// states on the devices: while its ranks are all on one node (the all-gather runs over NVLink),
// and NCSPARSE_MERGE is not set. Across `nodes` > 1 the all-gather would move P − 1 lists to
// every device through its NIC (docs/scaling.md): the merges then run over MPI on the host
// buffers the device collectives start from anyway, by choose_topk_merge. Sums stay on the
// devices.
bool merge_on_device(int nodes);

class Comm {
 public:
  // Sets MPI_ERRORS_RETURN on `comm` (inherited by communicators later made from it), so that
  // a failing MPI call reaches NCSPARSE_MPI instead of ending the job.
  explicit Comm(MPI_Comm comm);
  MPI_Comm get() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }

  // All-reduce top-k: `lists` holds rows × L candidates, each row sorted and padded. MPI sees
  // one whole row as one datatype element, so no algorithm that splits buffers cuts a row.
  // Over MPI it uses choose_topk_merge(size(), lists.size_bytes()); with device collectives
  // and merge_on_device, the NCCL collectives all-gather and merge on the device.
  void allreduce_topk(std::span<Candidate> lists, std::int64_t L) const;
  // The same with the MPI algorithm given (benchmarks and tests; always MPI).
  void allreduce_topk(std::span<Candidate> lists, std::int64_t L, TopkMerge algorithm) const;
  // Log-sum-exp all-reduce of rows × flash_row_size(d) doubles.
  void allreduce_flash(std::span<double> states, std::int64_t d) const;
  void allreduce_sum(std::span<double> values) const;
  double allreduce_max(double value) const;
  // Element-wise maximum over ranks, in place (always MPI).
  void allreduce_max(std::span<double> values) const;

  // Collective agreement on an error. Every rank calls it with its local outcome (code 0 when
  // fine). When any rank failed, every rank throws the same Error: the one of the lowest
  // failing rank, its message prefixed with that rank (unless it starts with "rank R: "
  // already). Nothing is printed here.
  void agree(int code, const std::string& message) const;

  // Whether some node runs more of this communicator's ranks than it has online cores, agreed
  // by all ranks. Collective on its first call (per Comm object), cached after. (The merge
  // rule no longer uses it: the row owner won with and without oversubscription.)
  bool oversubscribed() const;

  // A copy whose allreduce_sum runs on `device` (NCCL between GPUs) instead of MPI, and
  // allreduce_topk and allreduce_flash too where merge_on_device(the job's nodes); a null
  // `device` keeps MPI. Everything else stays on MPI. Collective when `device` is not null (it
  // counts the nodes, one per shared-memory domain).
  Comm with_device(std::shared_ptr<DeviceCollectives> device) const;
  // The same, as if the ranks were on `nodes` nodes (tests; not collective).
  Comm with_device(std::shared_ptr<DeviceCollectives> device, int nodes) const;
  // "mpi", the device collectives' name ("nccl"), or e.g. "nccl for sums, mpi for merges (4 nodes)".
  std::string collectives_name() const;

 private:
  std::shared_ptr<DeviceCollectives> device_;
  int nodes_ = 1;  // with device_: the nodes the ranks are on
  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
  mutable int oversubscribed_ = -1;  // unknown until the first oversubscribed()
};

// The collectives of a job (collective): those between devices that `setup` describes (the
// backend's, from device_collectives_setup in backend.hpp: NCCL for cuda) when there is one,
// it is available, and every rank has a device of its own; else null (MPI on host buffers).
// `why` gets the choice and its reason, e.g. "nccl", "mpi (ranks 0 and 1 share a GPU; ...)".
std::shared_ptr<DeviceCollectives> make_device_collectives(const Comm& comm,
                                                           const std::optional<DeviceCollectivesSetup>& setup,
                                                           std::string& why);

// Test hook (collective): with NCSPARSE_INJECT_MPI_FAILURE=R in the environment, rank R makes
// one invalid MPI call (a negative count), which fails like any MPI call does: an Error on that
// rank, agreed on by all. Does nothing when the variable is not set.
void inject_mpi_failure(const Comm& comm);

// Runs fn on every rank and agrees on its outcome: an ncsparse::Error (or std::bad_alloc)
// thrown on any rank is rethrown on all ranks after the agreement, never leaving a rank behind
// in a later collective.
template <class Fn>
void collective(const Comm& comm, Fn&& fn) {
  int code = 0;
  std::string message;
  try {
    fn();
  } catch (const Error& e) {
    code = e.code();
    message = e.what();
  } catch (const std::bad_alloc&) {
    code = kExitInternal;
    message = "out of memory (use more ranks or a smaller --block/--tile)";
  }
  comm.agree(code, message);
}

}  // namespace ncsparse
