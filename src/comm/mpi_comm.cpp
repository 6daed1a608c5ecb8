#include "ncsparse/comm.hpp"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "ncsparse/flash.hpp"

namespace ncsparse {
namespace {

// The tree merge's messages; collectives never match point-to-point traffic, and nothing else
// in ncsparse sends any on the job's communicator.
constexpr int kTreeTag = 0x6e63;
// choose_topk_merge's rule (docs/scaling.md): the row-owner merge from kRowOwnerBytes of lists
// per rank on kRowOwnerRanks ranks or more; the library's all-reduce otherwise.
constexpr double kRowOwnerBytes = 1024.0 * 1024;
constexpr int kRowOwnerRanks = 4;

// The datatype of one row is a contiguous run of bytes; its size tells the op the row length.
int type_bytes(MPI_Datatype* type) {
  int bytes = 0;
  MPI_Type_size(*type, &bytes);
  return bytes;
}

// inout[r] = the merge of in[r] and inout[r] for `rows` rows of L candidates.
void merge_rows(const Candidate* a, Candidate* b, std::size_t rows, std::size_t L) {
  thread_local std::vector<Candidate> merged;
  merged.resize(L);
  for (std::size_t r = 0; r < rows; ++r) {
    merge_sorted({a + r * L, L}, {b + r * L, L}, merged);
    std::copy(merged.begin(), merged.end(), b + r * L);
  }
}

void merge_rows_op(void* in, void* inout, int* len, MPI_Datatype* type) {
  const std::size_t L = static_cast<std::size_t>(type_bytes(type)) / sizeof(Candidate);
  merge_rows(static_cast<const Candidate*>(in), static_cast<Candidate*>(inout), static_cast<std::size_t>(*len), L);
}

void merge_flash_op(void* in, void* inout, int* len, MPI_Datatype* type) {
  const std::size_t width = static_cast<std::size_t>(type_bytes(type)) / sizeof(double);
  auto* a = static_cast<const double*>(in);
  auto* b = static_cast<double*>(inout);
  for (int r = 0; r < *len; ++r) flash_merge({b + r * width, width}, {a + r * width, width});
}

// A committed contiguous datatype of `bytes` bytes, freed on scope exit.
struct RowType {
  MPI_Datatype type = MPI_DATATYPE_NULL;
  explicit RowType(std::size_t bytes) {
    NCSPARSE_MPI(MPI_Type_contiguous(static_cast<int>(bytes), MPI_BYTE, &type));
    NCSPARSE_MPI(MPI_Type_commit(&type));
  }
  ~RowType() { MPI_Type_free(&type); }
};

struct Op {
  MPI_Op op = MPI_OP_NULL;
  explicit Op(MPI_User_function* fn) { NCSPARSE_MPI(MPI_Op_create(fn, 1, &op)); }
  ~Op() { MPI_Op_free(&op); }
};

}  // namespace

void mpi_check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = 0;
  std::string why(text, static_cast<std::size_t>(len));
  std::replace(why.begin(), why.end(), '\n', ' ');  // one line, whatever the MPI library says
  throw Error(kExitInternal, std::string("MPI call failed: ") + call + ": " + why +
                                 " (an MPI, network or internal failure: rerun, and report it if it persists)");
}

void inject_mpi_failure(const Comm& comm) {
  const char* rank = std::getenv("NCSPARSE_INJECT_MPI_FAILURE");
  if (rank == nullptr) return;
  collective(comm, [&] {
    if (std::atoi(rank) == comm.rank()) NCSPARSE_MPI(MPI_Send(nullptr, -1, MPI_BYTE, MPI_PROC_NULL, 0, comm.get()));
  });
}

Comm::Comm(MPI_Comm comm) : comm_(comm) {
  // MPI's default handler ends the job on any error, which would leave every check above dead
  // code: errors return instead, become Errors and are agreed on like any other. Communicators
  // made from this one (MPI_Comm_dup, MPI_Comm_split, HDF5's own duplicate) inherit it.
  NCSPARSE_MPI(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  NCSPARSE_MPI(MPI_Comm_rank(comm_, &rank_));
  NCSPARSE_MPI(MPI_Comm_size(comm_, &size_));
}

namespace {

// This rank's place on its node (one shared-memory domain of `comm`): its rank there and the
// number of ranks there. Collective.
struct OnNode {
  int rank = 0, size = 1;
};
OnNode on_node(MPI_Comm comm, int rank) {
  MPI_Comm node = MPI_COMM_NULL;
  NCSPARSE_MPI(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node));
  OnNode here;
  NCSPARSE_MPI(MPI_Comm_rank(node, &here.rank));
  NCSPARSE_MPI(MPI_Comm_size(node, &here.size));
  MPI_Comm_free(&node);
  return here;
}

}  // namespace

Comm Comm::with_device(std::shared_ptr<DeviceCollectives> device) const {
  if (!device) return with_device(nullptr, 1);
  int nodes = on_node(comm_, rank_).rank == 0 ? 1 : 0;  // each node counted by its lowest rank
  NCSPARSE_MPI(MPI_Allreduce(MPI_IN_PLACE, &nodes, 1, MPI_INT, MPI_SUM, comm_));
  return with_device(std::move(device), nodes);
}

Comm Comm::with_device(std::shared_ptr<DeviceCollectives> device, int nodes) const {
  Comm copy = *this;
  copy.device_ = std::move(device);
  copy.nodes_ = nodes;
  return copy;
}

std::string Comm::collectives_name() const {
  if (!device_) return "mpi";
  if (merge_on_device(nodes_)) return device_->name();
  const std::string why = nodes_ > 1 ? std::to_string(nodes_) + " nodes" : "NCSPARSE_MERGE is set";
  return device_->name() + " for sums, mpi for merges (" + why + ")";
}

const char* to_string(TopkMerge algorithm) {
  switch (algorithm) {
    case TopkMerge::kAllreduce:
      return "allreduce";
    case TopkMerge::kTree:
      return "tree";
    case TopkMerge::kAllgather:
      return "allgather";
    case TopkMerge::kRowOwner:
      return "rowowner";
  }
  return "?";
}

namespace {

// NCSPARSE_MERGE, read once per process.
std::optional<TopkMerge> forced_topk_merge() {
  static const std::optional<TopkMerge> forced = []() -> std::optional<TopkMerge> {
    const char* env = std::getenv("NCSPARSE_MERGE");
    if (env == nullptr || *env == '\0') return std::nullopt;
    for (TopkMerge a : {TopkMerge::kAllreduce, TopkMerge::kTree, TopkMerge::kAllgather, TopkMerge::kRowOwner}) {
      if (std::string(env) == to_string(a)) return a;
    }
    throw usage_error(std::string("NCSPARSE_MERGE=") + env + ": expected allreduce, tree, allgather or rowowner");
  }();
  return forced;
}

}  // namespace

TopkMerge choose_topk_merge(int ranks, std::size_t bytes) {
  const std::optional<TopkMerge> forced = forced_topk_merge();
  if (forced) return *forced;
  // docs/scaling.md, measured in benchmarks/RESULTS.md ("... with the row owner"): the row
  // owner moves each list about twice in two collectives and merges each row once, P ways; it
  // was the fastest or within noise of it from 1 MiB per rank at P = 4 and 8, and the model
  // keeps it ahead to 1,024 ranks. On 2 ranks the default job (33.6 MB of lists, one merge per
  // process) was 3% slower with it, whole process (its copies' fresh pages, which a repeated
  // benchmark does not see), so below 4 ranks, or 1 MiB, the library's all-reduce. The tree and
  // the all-gather are never chosen: the tree merges log2 P whole lists on rank 0's path, the
  // all-gather moves and holds P lists.
  return ranks >= kRowOwnerRanks && static_cast<double>(bytes) >= kRowOwnerBytes ? TopkMerge::kRowOwner
                                                                                  : TopkMerge::kAllreduce;
}

bool merge_on_device(int nodes) {
  // docs/scaling.md, "H200 nodes": within a node the all-gather runs over NVLink (7 lists of
  // 67 MB in about 1.3 ms on NVSwitch); across nodes it moves P − 1 lists to every device
  // through its NIC and holds them all (69 GB per GPU at P = 1,024), where the row owner over
  // MPI moves each list about twice.
  return nodes <= 1 && !forced_topk_merge();
}

void Comm::allreduce_topk(std::span<Candidate> lists, std::int64_t L) const {
  if (size_ == 1 || lists.empty()) return;
  if (device_ && merge_on_device(nodes_)) return device_->allreduce_topk(lists, L);
  allreduce_topk(lists, L, choose_topk_merge(size_, lists.size_bytes()));
}

void Comm::allreduce_topk(std::span<Candidate> lists, std::int64_t L, TopkMerge algorithm) const {
  if (size_ == 1 || lists.empty()) return;
  const std::size_t Lu = static_cast<std::size_t>(L);
  const std::size_t rows = lists.size() / Lu;
  NCSPARSE_ASSERT(rows * Lu == lists.size() && rows <= INT_MAX);
  RowType row(Lu * sizeof(Candidate));
  const int count = static_cast<int>(rows);
  switch (algorithm) {
    case TopkMerge::kAllreduce: {
      const Op op(&merge_rows_op);
      NCSPARSE_MPI(MPI_Allreduce(MPI_IN_PLACE, lists.data(), count, row.type, op.op, comm_));
      return;
    }
    case TopkMerge::kTree: {
      // Binomial tree to rank 0: in round `mask` a rank with that bit set sends its merged lists
      // to rank - mask and is done; the others receive from rank + mask and merge.
      thread_local std::vector<Candidate> recv;
      for (int mask = 1; mask < size_; mask <<= 1) {
        if ((rank_ & mask) != 0) {
          NCSPARSE_MPI(MPI_Send(lists.data(), count, row.type, rank_ - mask, kTreeTag, comm_));
          break;
        }
        if (rank_ + mask < size_) {
          recv.resize(lists.size());
          NCSPARSE_MPI(MPI_Recv(recv.data(), count, row.type, rank_ + mask, kTreeTag, comm_, MPI_STATUS_IGNORE));
          merge_rows(recv.data(), lists.data(), rows, Lu);
        }
      }
      NCSPARSE_MPI(MPI_Bcast(lists.data(), count, row.type, 0, comm_));
      return;
    }
    case TopkMerge::kAllgather: {
      thread_local std::vector<Candidate> all;
      thread_local std::vector<std::span<const Candidate>> heads;
      all.resize(lists.size() * static_cast<std::size_t>(size_));
      NCSPARSE_MPI(MPI_Allgather(lists.data(), count, row.type, all.data(), count, row.type, comm_));
      heads.resize(static_cast<std::size_t>(size_));
      for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t p = 0; p < heads.size(); ++p) heads[p] = {all.data() + (p * rows + r) * Lu, Lu};
        merge_sorted_many(heads, lists.subspan(r * Lu, Lu));
      }
      return;
    }
    case TopkMerge::kRowOwner: {
      // Rank p owns rows [first[p], first[p + 1]) (contiguous, sizes differ by at most one;
      // with fewer rows than ranks some own none). Each rank sends every owner its copy of the
      // owner's rows, merges the P copies of its own rows with one heap per row, and the
      // all-gather puts every merged row back in place on every rank.
      const int P = size_;
      thread_local std::vector<int> first, counts, recv_counts, recv_displs;
      first.resize(static_cast<std::size_t>(P) + 1);
      counts.resize(static_cast<std::size_t>(P));
      for (int p = 0; p <= P; ++p) first[p] = static_cast<int>(rows * static_cast<std::size_t>(p) / static_cast<std::size_t>(P));
      for (int p = 0; p < P; ++p) counts[p] = first[p + 1] - first[p];
      const int mine = counts[rank_];
      recv_counts.assign(static_cast<std::size_t>(P), mine);
      recv_displs.resize(static_cast<std::size_t>(P));
      for (int p = 0; p < P; ++p) recv_displs[p] = p * mine;
      thread_local std::vector<Candidate> copies;
      copies.resize(static_cast<std::size_t>(mine) * static_cast<std::size_t>(P) * Lu);
      NCSPARSE_MPI(MPI_Alltoallv(lists.data(), counts.data(), first.data(), row.type, copies.data(),
                                 recv_counts.data(), recv_displs.data(), row.type, comm_));
      thread_local std::vector<std::span<const Candidate>> heads;
      heads.resize(static_cast<std::size_t>(P));
      const std::size_t own = static_cast<std::size_t>(mine);
      for (std::size_t r = 0; r < own; ++r) {
        for (std::size_t p = 0; p < heads.size(); ++p) heads[p] = {copies.data() + (p * own + r) * Lu, Lu};
        merge_sorted_many(heads, lists.subspan((static_cast<std::size_t>(first[rank_]) + r) * Lu, Lu));
      }
      NCSPARSE_MPI(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, lists.data(), counts.data(), first.data(),
                                  row.type, comm_));
      return;
    }
  }
}

void Comm::allreduce_flash(std::span<double> states, std::int64_t d) const {
  if (size_ == 1 || states.empty()) return;
  if (device_ && merge_on_device(nodes_)) return device_->allreduce_flash(states, d);
  const std::size_t width = flash_row_size(static_cast<std::size_t>(d));
  const std::size_t rows = states.size() / width;
  NCSPARSE_ASSERT(rows * width == states.size() && rows <= INT_MAX);
  RowType row(width * sizeof(double));
  const Op op(&merge_flash_op);
  NCSPARSE_MPI(MPI_Allreduce(MPI_IN_PLACE, states.data(), static_cast<int>(rows), row.type, op.op, comm_));
}

void Comm::allreduce_sum(std::span<double> values) const {
  if (size_ == 1 || values.empty()) return;
  if (device_) return device_->allreduce_sum(values);
  NCSPARSE_ASSERT(values.size() <= INT_MAX);
  NCSPARSE_MPI(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE, MPI_SUM, comm_));
}

double Comm::allreduce_max(double value) const {
  if (size_ == 1) return value;
  NCSPARSE_MPI(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_DOUBLE, MPI_MAX, comm_));
  return value;
}

void Comm::allreduce_max(std::span<double> values) const {
  if (size_ == 1 || values.empty()) return;
  NCSPARSE_ASSERT(values.size() <= INT_MAX);
  NCSPARSE_MPI(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE, MPI_MAX, comm_));
}

bool Comm::oversubscribed() const {
  if (oversubscribed_ < 0) {
    const int local = on_node(comm_, rank_).size;
    const long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
    int over = cores > 0 && local > cores ? 1 : 0;
    NCSPARSE_MPI(MPI_Allreduce(MPI_IN_PLACE, &over, 1, MPI_INT, MPI_MAX, comm_));
    oversubscribed_ = over;
  }
  return oversubscribed_ != 0;
}

void Comm::agree(int code, const std::string& message) const {
  if (size_ == 1) {
    if (code != 0) throw Error(code, message);
    return;
  }
  int first = code != 0 ? rank_ : INT_MAX;
  NCSPARSE_MPI(MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, comm_));
  if (first == INT_MAX) return;
  int shared_code = code;
  NCSPARSE_MPI(MPI_Bcast(&shared_code, 1, MPI_INT, first, comm_));
  int length = static_cast<int>(message.size());
  NCSPARSE_MPI(MPI_Bcast(&length, 1, MPI_INT, first, comm_));
  std::string text = rank_ == first ? message : std::string(static_cast<std::size_t>(length), ' ');
  NCSPARSE_MPI(MPI_Bcast(text.data(), length, MPI_CHAR, first, comm_));
  // A message that names its rank already (io::write_agreed) is not prefixed twice, nor is an
  // interruption, which is the whole job's.
  const std::string prefix = "rank " + std::to_string(first) + ": ";
  if (shared_code == kExitInterrupted || text.rfind(prefix, 0) == 0) throw Error(shared_code, text);
  throw Error(shared_code, prefix + text);
}

}  // namespace ncsparse
