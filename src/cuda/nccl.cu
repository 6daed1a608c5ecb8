// NCCL collectives between GPUs. NCCL has no user-defined reductions, so the top-k and the
// log-sum-exp merges are an all-gather followed by a merge on the device: candidate lists by one
// segmented radix sort of every rank's row (the same 64-bit key as the local pass,
// cuda::candidate_key), exact states by the merge of flash.hpp applied in rank
// order (deterministic). Sums are an NCCL all-reduce.
//
// Every NCCL call is made on a non-blocking communicator and every wait is bounded: the host
// polls the stream and ncclCommGetAsyncError, and on an error or after the timeout it aborts the
// communicator (ncclCommAbort) and throws, so a rank that stopped or a broken link ends the job
// with one message instead of hanging it.
#include <cub/device/device_segmented_radix_sort.cuh>
#include <nccl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <thread>
#include <vector>

#include "cuda/device.cuh"
#include "cuda/nccl.hpp"
#include "cuda/plan.hpp"
#include "ncsparse/flash.hpp"

namespace ncsparse::cuda {
namespace {

__global__ void pack_gathered(const Candidate* gathered, int P, std::int64_t rows, std::int64_t L,
                              std::uint64_t* keys) {
  const std::int64_t row = blockIdx.y;
  const std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;  // p·L + j
  if (i >= P * L) return;
  const std::int64_t p = i / L, j = i % L;
  keys[row * P * L + i] = candidate_key(gathered[(p * rows + row) * L + j]);
}

__global__ void unpack_first(const std::uint64_t* keys, int P, std::int64_t rows, std::int64_t L, Candidate* out) {
  const std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (i >= rows * L) return;
  const std::int64_t row = i / L, j = i % L;
  out[i] = candidate_of_key(keys[row * P * L + j]);
}

__global__ void offsets_kernel(std::int64_t rows, std::int64_t len, int* offsets) {
  const std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (i <= rows) offsets[i] = int(i * len);
}

// One block per row; each thread owns some of the row's width entries and replays flash_merge
// over the ranks in order (every thread derives the same m, fa, fb).
__global__ void merge_flash_kernel(const double* gathered, int P, std::int64_t rows, std::int64_t width, double* out) {
  const std::int64_t row = blockIdx.x;
  for (std::int64_t c = threadIdx.x; c < width; c += blockDim.x) {
    double am = -INFINITY, value = c == 0 ? -INFINITY : 0.0;
    for (int p = 0; p < P; ++p) {
      const double* b = gathered + (std::int64_t(p) * rows + row) * width;
      const double mb = b[0];
      if (mb == -INFINITY) continue;  // b empty: nothing to add
      if (am == -INFINITY) {
        am = mb;
        value = b[c];
        continue;
      }
      const double m = fmax(am, mb), fa = exp(am - m), fb = exp(mb - m);
      if (c == 0) {
        value = m;
      } else if (c == 2) {
        value = value * fa * fa + b[2] * fb * fb;
      } else {
        value = value * fa + b[c] * fb;
      }
      am = m;
    }
    out[row * width + c] = value;
  }
}

// Device-side merges on device buffers, with their scratch.
class Merger {
 public:
  void lists(const Candidate* gathered, int P, std::int64_t rows, std::int64_t L, Candidate* out, cudaStream_t s) {
    const std::int64_t len = P * L;
    if (rows * len >= (std::int64_t(1) << 31)) {
      throw Error(kExitUnavailable, "--backend cuda: a block's gathered candidate lists exceed 2^31 entries (use a "
                                    "smaller --block or --max-k)");
    }
    keys_in_.resize(rows * len);
    keys_out_.resize(rows * len);
    offsets_.resize(rows + 1);
    pack_gathered<<<dim3(unsigned((len + 255) / 256), unsigned(rows)), 256, 0, s>>>(gathered, P, rows, L,
                                                                                    keys_in_.get());
    NCSPARSE_CUDA_LAUNCH();
    offsets_kernel<<<unsigned((rows + 256) / 256), 256, 0, s>>>(rows, len, offsets_.get());
    NCSPARSE_CUDA_LAUNCH();
    std::size_t bytes = 0;
    NCSPARSE_CUDA(cub::DeviceSegmentedRadixSort::SortKeysDescending(nullptr, bytes, keys_in_.get(), keys_out_.get(),
                                                                    rows * len, rows, offsets_.get(),
                                                                    offsets_.get() + 1, 0, 64, s));
    tmp_.resize(bytes);
    NCSPARSE_CUDA(cub::DeviceSegmentedRadixSort::SortKeysDescending(tmp_.get(), bytes, keys_in_.get(), keys_out_.get(),
                                                                    rows * len, rows, offsets_.get(),
                                                                    offsets_.get() + 1, 0, 64, s));
    unpack_first<<<unsigned((rows * L + 255) / 256), 256, 0, s>>>(keys_out_.get(), P, rows, L, out);
    NCSPARSE_CUDA_LAUNCH();
  }
  void flash(const double* gathered, int P, std::int64_t rows, std::int64_t d, double* out, cudaStream_t s) {
    if (rows == 0) return;
    merge_flash_kernel<<<unsigned(rows), 128, 0, s>>>(gathered, P, rows, std::int64_t(flash_row_size(d)), out);
    NCSPARSE_CUDA_LAUNCH();
  }

 private:
  DeviceArray<std::uint64_t> keys_in_, keys_out_;
  DeviceArray<int> offsets_;
  DeviceArray<unsigned char> tmp_;
};

class NcclCollectives final : public DeviceCollectives {
 public:
  NcclCollectives(const NcclId& id, int rank, int size, double timeout_s)
      : rank_(rank), size_(size), timeout_(timeout_s) {
    NCSPARSE_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    ncclUniqueId uid;
    static_assert(sizeof(uid.internal) == std::tuple_size_v<NcclId>);
    std::copy(id.begin(), id.end(), uid.internal);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    settle(ncclCommInitRankConfig(&comm_, size, uid, rank, &config), "ncclCommInitRankConfig");
  }
  ~NcclCollectives() override {
    if (comm_ != nullptr) {
      if (healthy_) {
        ncclCommFinalize(comm_);
        wait_async("ncclCommFinalize", /*throw_on_error=*/false);
        ncclCommDestroy(comm_);
      } else {
        ncclCommAbort(comm_);
      }
    }
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  std::string name() const override { return "nccl"; }

  void allreduce_topk(std::span<Candidate> lists, std::int64_t L) override {
    ensure_healthy();
    if (lists.empty()) return;
    const std::int64_t rows = std::int64_t(lists.size()) / L;
    const std::size_t bytes = lists.size() * sizeof(Candidate);
    local_.resize(bytes);
    gathered_.resize(bytes * size_);
    NCSPARSE_CUDA(cudaMemcpyAsync(local_.get(), lists.data(), bytes, cudaMemcpyHostToDevice, stream_));
    settle(ncclAllGather(local_.get(), gathered_.get(), bytes, ncclUint8, comm_, stream_), "ncclAllGather (candidates)");
    merged_.resize(bytes);
    merger_.lists(reinterpret_cast<const Candidate*>(gathered_.get()), size_, rows, L,
                  reinterpret_cast<Candidate*>(merged_.get()), stream_);
    NCSPARSE_CUDA(cudaMemcpyAsync(lists.data(), merged_.get(), bytes, cudaMemcpyDeviceToHost, stream_));
    wait("the candidate all-gather");
  }

  void allreduce_flash(std::span<double> states, std::int64_t d) override {
    ensure_healthy();
    if (states.empty()) return;
    const std::int64_t rows = std::int64_t(states.size() / flash_row_size(std::size_t(d)));
    const std::size_t bytes = states.size() * sizeof(double);
    local_.resize(bytes);
    gathered_.resize(bytes * size_);
    merged_.resize(bytes);
    NCSPARSE_CUDA(cudaMemcpyAsync(local_.get(), states.data(), bytes, cudaMemcpyHostToDevice, stream_));
    settle(ncclAllGather(local_.get(), gathered_.get(), states.size(), ncclDouble, comm_, stream_),
           "ncclAllGather (exact states)");
    merger_.flash(reinterpret_cast<const double*>(gathered_.get()), size_, rows, d,
                  reinterpret_cast<double*>(merged_.get()), stream_);
    NCSPARSE_CUDA(cudaMemcpyAsync(states.data(), merged_.get(), bytes, cudaMemcpyDeviceToHost, stream_));
    wait("the exact-state all-gather");
  }

  void allreduce_sum(std::span<double> values) override {
    ensure_healthy();
    if (values.empty()) return;
    const std::size_t bytes = values.size() * sizeof(double);
    local_.resize(bytes);
    NCSPARSE_CUDA(cudaMemcpyAsync(local_.get(), values.data(), bytes, cudaMemcpyHostToDevice, stream_));
    settle(ncclAllReduce(local_.get(), local_.get(), values.size(), ncclDouble, ncclSum, comm_, stream_),
           "ncclAllReduce (sum)");
    NCSPARSE_CUDA(cudaMemcpyAsync(values.data(), local_.get(), bytes, cudaMemcpyDeviceToHost, stream_));
    wait("the sum all-reduce");
  }

 private:
  using Clock = std::chrono::steady_clock;

  [[noreturn]] void fail(const std::string& message) {
    if (comm_ != nullptr && healthy_) ncclCommAbort(comm_);
    healthy_ = false;
    comm_ = nullptr;
    throw Error(kExitUnavailable, message);
  }
  void ensure_healthy() const {
    if (!healthy_) throw Error(kExitUnavailable, "the NCCL communicator was aborted after an earlier error");
  }
  std::string timeout_text() const {
    return "did not complete within " + std::to_string(int(timeout_)) +
           " s (a rank stopped or a link is down; NCSPARSE_NCCL_TIMEOUT sets the limit); the NCCL communicator was "
           "aborted";
  }

  // A call on a non-blocking communicator may return ncclInProgress: wait until its launch is
  // settled (bounded).
  void settle(ncclResult_t r, const char* call) {
    if (r == ncclSuccess) return;
    if (r != ncclInProgress) fail(std::string("NCCL call failed: ") + call + ": " + ncclGetErrorString(r));
    wait_async(call, true);
  }

  void wait_async(const char* call, bool throw_on_error) {
    const auto t0 = Clock::now();
    for (;;) {
      ncclResult_t state = ncclSuccess;
      ncclCommGetAsyncError(comm_, &state);
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) {
        if (!throw_on_error) return;
        fail(std::string("NCCL call failed: ") + call + ": " + ncclGetErrorString(state));
      }
      if (std::chrono::duration<double>(Clock::now() - t0).count() > timeout_) {
        if (!throw_on_error) return;
        fail(std::string(call) + " " + timeout_text());
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }

  // Waits for everything queued on the stream, polling NCCL's asynchronous error (bounded).
  void wait(const char* what) {
    const auto t0 = Clock::now();
    for (;;) {
      const cudaError_t s = cudaStreamQuery(stream_);
      if (s == cudaSuccess) return;
      if (s != cudaErrorNotReady) fail(std::string("CUDA error during ") + what + ": " + cudaGetErrorString(s));
      ncclResult_t state = ncclSuccess;
      ncclCommGetAsyncError(comm_, &state);
      if (state != ncclSuccess && state != ncclInProgress) {
        fail(std::string("NCCL error during ") + what + ": " + ncclGetErrorString(state));
      }
      if (std::chrono::duration<double>(Clock::now() - t0).count() > timeout_) fail(std::string(what) + " " + timeout_text());
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int rank_ = 0, size_ = 1;
  double timeout_;
  bool healthy_ = true;
  DeviceArray<unsigned char> local_, gathered_, merged_;
  Merger merger_;
};

}  // namespace

NcclId nccl_unique_id() {
  ncclUniqueId uid;
  const ncclResult_t r = ncclGetUniqueId(&uid);
  if (r != ncclSuccess) throw Error(kExitUnavailable, std::string("ncclGetUniqueId failed: ") + ncclGetErrorString(r));
  NcclId id;
  std::copy(uid.internal, uid.internal + id.size(), id.begin());
  return id;
}

std::string device_identity() {
  int device = 0;
  NCSPARSE_CUDA(cudaGetDevice(&device));
  char bus[64] = {};
  NCSPARSE_CUDA(cudaDeviceGetPCIBusId(bus, sizeof bus, device));
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return std::string(host) + "/" + bus;
}

double nccl_timeout_seconds() {
  if (const char* v = std::getenv("NCSPARSE_NCCL_TIMEOUT")) {
    char* end = nullptr;
    const double t = std::strtod(v, &end);
    if (end == v || *end != '\0' || !(t > 0)) {
      throw usage_error(std::string("NCSPARSE_NCCL_TIMEOUT: expected a positive number of seconds, got '") + v + "'");
    }
    return t;
  }
  return 300;
}

std::unique_ptr<DeviceCollectives> make_nccl_collectives(const NcclId& id, int rank, int size, double timeout_s) {
  return std::make_unique<NcclCollectives>(id, rank, size, timeout_s);
}

void merge_gathered_lists(const Candidate* gathered, int P, std::int64_t rows, std::int64_t L, Candidate* out) {
  DeviceArray<Candidate> g, o;
  g.resize(std::size_t(P) * rows * L);
  o.resize(std::size_t(rows) * L);
  NCSPARSE_CUDA(cudaMemcpy(g.get(), gathered, g.size() * sizeof(Candidate), cudaMemcpyHostToDevice));
  Merger m;
  m.lists(g.get(), P, rows, L, o.get(), nullptr);
  NCSPARSE_CUDA(cudaMemcpy(out, o.get(), o.size() * sizeof(Candidate), cudaMemcpyDeviceToHost));
}

void merge_gathered_flash(const double* gathered, int P, std::int64_t rows, std::int64_t d, double* out) {
  const std::size_t width = flash_row_size(std::size_t(d));
  DeviceArray<double> g, o;
  g.resize(std::size_t(P) * rows * width);
  o.resize(std::size_t(rows) * width);
  NCSPARSE_CUDA(cudaMemcpy(g.get(), gathered, g.size() * sizeof(double), cudaMemcpyHostToDevice));
  Merger m;
  m.flash(g.get(), P, rows, d, o.get(), nullptr);
  NCSPARSE_CUDA(cudaMemcpy(out, o.get(), o.size() * sizeof(double), cudaMemcpyDeviceToHost));
}

}  // namespace ncsparse::cuda
