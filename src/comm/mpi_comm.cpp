#include "ncsparse/comm.hpp"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <vector>

#include "ncsparse/flash.hpp"

namespace ncsparse {
namespace {

// The datatype of one row is a contiguous run of bytes; its size tells the op the row length.
int type_bytes(MPI_Datatype* type) {
  int bytes = 0;
  MPI_Type_size(*type, &bytes);
  return bytes;
}

void merge_rows_op(void* in, void* inout, int* len, MPI_Datatype* type) {
  const std::size_t L = static_cast<std::size_t>(type_bytes(type)) / sizeof(Candidate);
  thread_local std::vector<Candidate> merged;
  merged.resize(L);
  auto* a = static_cast<const Candidate*>(in);
  auto* b = static_cast<Candidate*>(inout);
  for (int r = 0; r < *len; ++r) {
    merge_sorted({a + r * L, L}, {b + r * L, L}, merged);
    std::copy(merged.begin(), merged.end(), b + r * L);
  }
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

Comm Comm::with_device(std::shared_ptr<DeviceCollectives> device) const {
  Comm copy = *this;
  copy.device_ = std::move(device);
  return copy;
}

void Comm::allreduce_topk(std::span<Candidate> lists, std::int64_t L) const {
  if (size_ == 1 || lists.empty()) return;
  if (device_) return device_->allreduce_topk(lists, L);
  const std::size_t rows = lists.size() / static_cast<std::size_t>(L);
  NCSPARSE_ASSERT(rows * static_cast<std::size_t>(L) == lists.size() && rows <= INT_MAX);
  RowType row(static_cast<std::size_t>(L) * sizeof(Candidate));
  const Op op(&merge_rows_op);
  NCSPARSE_MPI(MPI_Allreduce(MPI_IN_PLACE, lists.data(), static_cast<int>(rows), row.type, op.op, comm_));
}

void Comm::allreduce_flash(std::span<double> states, std::int64_t d) const {
  if (size_ == 1 || states.empty()) return;
  if (device_) return device_->allreduce_flash(states, d);
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
