// CUDA backend: the local pass of DESIGN.md §3 on a key shard resident in device memory.
//
// Per tile of keys: cuBLAS scores the tile (scale·Q·K_tileᵀ); one block per query row filters
// the scores against the row's threshold (with the same rigorous rounding margin as the CPU
// backend), re-scores survivors canonically in double (bit-identical to the CPU: float×float
// products are exact in double, so FMA contraction cannot change a sum) and appends them to the
// row's candidate buffer; the same block updates the exact flash state, and cuBLAS adds P·V.
// When a row holds more than L candidates, a radix select (on the score, then on the index among
// ties) keeps exactly the top L under the total order and raises the threshold. No m × n score
// matrix exists: one rows × tile tile at a time.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "cuda/plan.hpp"
#include "ncsparse/backend.hpp"
#include "ncsparse/error.hpp"
#include "ncsparse/flash.hpp"

namespace ncsparse {
namespace {

void cuda_check(cudaError_t status, const char* call) {
  if (status == cudaSuccess) return;
  throw Error(kExitInternal, std::string("CUDA call failed: ") + call + ": " + cudaGetErrorString(status));
}
void cuda_check(cublasStatus_t status, const char* call) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw Error(kExitInternal, std::string("cuBLAS call failed: ") + call + ": status " + std::to_string(int(status)));
}
#define NCSPARSE_CUDA(call) cuda_check((call), #call)
#define NCSPARSE_CUDA_LAUNCH() cuda_check(cudaGetLastError(), "kernel launch")

template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { release(); }
  void resize(std::size_t count) {
    if (count <= capacity_) {
      size_ = count;
      return;
    }
    release();
    NCSPARSE_CUDA(cudaMalloc(&data_, std::max<std::size_t>(count, 1) * sizeof(T)));
    capacity_ = count;
    size_ = count;
  }
  void release() {
    if (data_ != nullptr) cudaFree(data_);
    data_ = nullptr;
    capacity_ = size_ = 0;
  }
  T* get() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  T* data_ = nullptr;
  std::size_t capacity_ = 0, size_ = 0;
};

// Same arithmetic, in the same order, as canonical_score in src/core/score.hpp.
__device__ float canonical_score_device(const float* q, const float* k, std::int64_t d, double scale) {
  double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::int64_t c = 0;
  for (; c + 8 <= d; c += 8) {
#pragma unroll
    for (int u = 0; u < 8; ++u) lane[u] += static_cast<double>(q[c + u]) * static_cast<double>(k[c + u]);
  }
  for (int u = 0; c < d; ++c, ++u) lane[u] += static_cast<double>(q[c]) * static_cast<double>(k[c]);
  const double dot = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  return __double2float_rn(scale * dot) + 0.0f;
}

__device__ float block_max(float x, float* shared) {
  for (int off = 16; off > 0; off /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, off));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  if (warp == 0) {
    x = lane < blockDim.x / 32 ? shared[lane] : -INFINITY;
    for (int off = 16; off > 0; off /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, off));
    if (lane == 0) shared[0] = x;
  }
  __syncthreads();
  const float r = shared[0];
  __syncthreads();
  return r;
}

__device__ double block_sum(double x, double* shared) {
  for (int off = 16; off > 0; off /= 2) x += __shfl_xor_sync(0xffffffffu, x, off);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  if (warp == 0) {
    x = lane < blockDim.x / 32 ? shared[lane] : 0.0;
    for (int off = 16; off > 0; off /= 2) x += __shfl_xor_sync(0xffffffffu, x, off);
    if (lane == 0) shared[0] = x;
  }
  __syncthreads();
  const double r = shared[0];
  __syncthreads();
  return r;
}

struct RowBuffers {
  float* cand_score;         // rows × capacity
  std::int64_t* cand_index;  // rows × capacity
  float* tmp_score;
  std::int64_t* tmp_index;
  int* count;        // rows
  float* threshold;  // rows
  double* state;     // rows × flash_row_size(d)
  std::int64_t capacity;
};

__global__ void init_rows(int rows, std::int64_t width, std::int64_t keep, RowBuffers b) {
  const int row = blockIdx.x;
  if (row >= rows) return;
  double* st = b.state + row * width;
  for (std::int64_t i = threadIdx.x; i < width; i += blockDim.x) st[i] = i == 0 ? -INFINITY : 0.0;
  if (threadIdx.x == 0) {
    b.count[row] = 0;
    b.threshold[row] = keep == 0 ? INFINITY : -INFINITY;
  }
}

struct TileArgs {
  const float* scores;  // rows × tc; overwritten by P when exact
  std::int64_t tc, g0, d;
  const std::int64_t* positions;
  bool causal, exact;
  const float* q;       // rows × d
  const float* k_tile;  // tc × d
  const float* margin_base;  // per row: scale·‖q‖·max‖k‖
  double scale;
};

__device__ float margin_of(float base, float threshold, std::int64_t d) {
  const double u = 1.0 / 16777216.0;
  const double gamma = (double(d) + 2) * u / (1 - (double(d) + 2) * u);
  return float(1.01 * (gamma * base + 4 * u * (fabs(double(threshold)) + base)));
}

__global__ void tile_update(TileArgs a, RowBuffers b) {
  __shared__ float fshared[32];
  __shared__ double dshared[32];
  __shared__ double alpha_shared;
  const int row = blockIdx.x;
  float* s = const_cast<float*>(a.scores) + row * a.tc;
  std::int64_t limit = a.tc;
  if (a.causal) {
    limit = a.positions[row] - a.g0 + 1;
    limit = limit < 0 ? 0 : (limit > a.tc ? a.tc : limit);
  }

  // Top-k filter: the GEMM score may only reject what cannot beat the threshold.
  const float t = b.threshold[row];
  const float cut = isfinite(t) ? t - margin_of(a.margin_base[row], t, a.d) : t;
  const float* qr = a.q + row * a.d;
  for (std::int64_t j = threadIdx.x; j < limit; j += blockDim.x) {
    if (s[j] > cut) {
      const float c = canonical_score_device(qr, a.k_tile + j * a.d, a.d, a.scale);
      if (c > t) {
        const int slot = atomicAdd(&b.count[row], 1);
        b.cand_score[row * b.capacity + slot] = c;
        b.cand_index[row * b.capacity + slot] = a.g0 + j;
      }
    }
  }
  if (!a.exact) return;
  __syncthreads();

  double* st = b.state + row * (kFlashHeader + a.d);
  float tile_max = -INFINITY;
  for (std::int64_t j = threadIdx.x; j < limit; j += blockDim.x) tile_max = fmaxf(tile_max, s[j]);
  tile_max = block_max(tile_max, fshared);
  if (limit == 0) {  // no key of this tile is visible: no weight
    for (std::int64_t j = threadIdx.x; j < a.tc; j += blockDim.x) s[j] = 0.0f;
    if (threadIdx.x == 0) alpha_shared = 1.0;
    __syncthreads();
    return;
  }
  const double m_old = st[0];
  const double m_new = fmax(m_old, double(tile_max));
  const float mf = float(m_new);
  double sum = 0, sum2 = 0;
  for (std::int64_t j = threadIdx.x; j < a.tc; j += blockDim.x) {
    const float e = j < limit ? expf(s[j] - mf) : 0.0f;
    s[j] = e;
    sum += e;
    sum2 += double(e) * double(e);
  }
  sum = block_sum(sum, dshared);
  sum2 = block_sum(sum2, dshared);
  if (threadIdx.x == 0) {
    const double alpha = exp(m_old - m_new);  // 0 when the row was empty
    st[0] = m_new;
    st[1] = st[1] * alpha + sum;
    st[2] = st[2] * alpha * alpha + sum2;
    alpha_shared = alpha;
  }
  __syncthreads();
  const double alpha = alpha_shared;
  for (std::int64_t c = threadIdx.x; c < a.d; c += blockDim.x) st[kFlashHeader + c] *= alpha;
}

__global__ void add_pv(int rows, std::int64_t d, const float* pv, double* state) {
  const std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (i >= rows * d) return;
  const std::int64_t row = i / d, c = i % d;
  state[row * (kFlashHeader + d) + kFlashHeader + c] += pv[i];
}

// Keeps exactly the top `keep` candidates of each row holding more, under the total order.
__global__ void select_rows(std::int64_t keep, RowBuffers b) {
  __shared__ unsigned int hist[256];
  __shared__ std::uint32_t key_prefix, key_mask;
  __shared__ std::uint64_t idx_prefix, idx_mask;
  __shared__ std::int64_t want;
  __shared__ int kept;
  __shared__ float kth_score;
  const int row = blockIdx.x;
  const std::int64_t n = b.count[row];
  if (n <= keep) return;
  const float* sc = b.cand_score + row * b.capacity;
  const std::int64_t* ix = b.cand_index + row * b.capacity;
  if (threadIdx.x == 0) {
    key_prefix = 0;
    key_mask = 0;
    want = keep;  // rank of the wanted entry counted from the best
  }
  __syncthreads();
  // Radix select on the score key, best (largest) first, 8 bits at a time.
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
    __syncthreads();
    for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const std::uint32_t key = cuda::score_key(sc[j]);
      if ((key & key_mask) == key_prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      std::int64_t cum = 0;
      for (int digit = 255; digit >= 0; --digit) {
        if (cum + hist[digit] >= want) {
          key_prefix |= std::uint32_t(digit) << shift;
          key_mask |= 255u << shift;
          want -= cum;
          break;
        }
        cum += hist[digit];
      }
    }
    __syncthreads();
  }
  // Among entries tied at that score, keep the `want` smallest indices: radix select ascending.
  if (threadIdx.x == 0) {
    idx_prefix = 0;
    idx_mask = 0;
  }
  __syncthreads();
  for (int shift = 56; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
    __syncthreads();
    for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const std::uint64_t id = std::uint64_t(ix[j]);
      if (cuda::score_key(sc[j]) == key_prefix && (id & idx_mask) == idx_prefix) {
        atomicAdd(&hist[(id >> shift) & 255u], 1u);
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      std::int64_t cum = 0;
      for (int digit = 0; digit < 256; ++digit) {
        if (cum + hist[digit] >= want) {
          idx_prefix |= std::uint64_t(digit) << shift;
          idx_mask |= std::uint64_t(255) << shift;
          want -= cum;
          break;
        }
        cum += hist[digit];
      }
      kept = 0;
    }
    __syncthreads();
  }
  // Compact the survivors (exactly `keep`: indices are unique) and raise the threshold.
  float* ts = b.tmp_score + row * b.capacity;
  std::int64_t* ti = b.tmp_index + row * b.capacity;
  for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const std::uint32_t key = cuda::score_key(sc[j]);
    const bool keep_it = key > key_prefix || (key == key_prefix && std::uint64_t(ix[j]) <= idx_prefix);
    if (keep_it) {
      const int slot = atomicAdd(&kept, 1);
      ts[slot] = sc[j];
      ti[slot] = ix[j];
    }
    if (key == key_prefix) kth_score = sc[j];  // every such thread writes the same value
  }
  __syncthreads();
  float* out_s = b.cand_score + row * b.capacity;
  std::int64_t* out_i = b.cand_index + row * b.capacity;
  for (std::int64_t j = threadIdx.x; j < keep; j += blockDim.x) {
    out_s[j] = ts[j];
    out_i[j] = ti[j];
  }
  if (threadIdx.x == 0) {
    b.count[row] = int(keep);
    b.threshold[row] = kth_score;
  }
}

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
      cudaGetLastError();
      throw Error(kExitUnavailable, "--backend cuda: no CUDA device is visible on this node (use --backend cpu)");
    }
    // One rank per GPU: ranks on a node take the devices in turn.
    int local = 0;
    for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"}) {
      if (const char* v = std::getenv(name)) {
        local = std::atoi(v);
        break;
      }
    }
    NCSPARSE_CUDA(cudaSetDevice(local % devices));
    cuda_check(cublasCreate(&blas_), "cublasCreate");
  }
  ~CudaBackend() override {
    if (blas_ != nullptr) cublasDestroy(blas_);
  }
  std::string name() const override { return "cuda"; }

  void load_shard(const KeyShard& keys, const PassParams& p) override {
    const std::size_t values = static_cast<std::size_t>(keys.count * p.d);
    k_.resize(values);
    v_.resize(values);
    if (values > 0) {
      NCSPARSE_CUDA(cudaMemcpy(k_.get(), keys.k, values * sizeof(float), cudaMemcpyHostToDevice));
      NCSPARSE_CUDA(cudaMemcpy(v_.get(), keys.v, values * sizeof(float), cudaMemcpyHostToDevice));
    }
    k_norm_max_ = 0;
    for (std::int64_t j = 0; j < keys.count; ++j) {
      double s2 = 0;
      for (std::int64_t c = 0; c < p.d; ++c) s2 += double(keys.k[j * p.d + c]) * double(keys.k[j * p.d + c]);
      k_norm_max_ = std::max(k_norm_max_, s2);
    }
    k_norm_max_ = std::sqrt(k_norm_max_);
    loaded_ = keys;
  }

  void local_pass(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, LocalOutput out) override;

 private:
  cublasHandle_t blas_ = nullptr;
  DeviceArray<float> k_, v_;
  KeyShard loaded_{};
  double k_norm_max_ = 0;
  DeviceArray<float> q_, scores_, pv_, margin_, cand_s_, tmp_s_, thr_;
  DeviceArray<std::int64_t> pos_, cand_i_, tmp_i_;
  DeviceArray<int> count_;
  DeviceArray<double> state_;
};

void CudaBackend::local_pass(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, LocalOutput out) {
  if (keys.k != loaded_.k || keys.count != loaded_.count || keys.begin != loaded_.begin) load_shard(keys, p);
  const std::int64_t d = p.d, L = p.list_length, width = static_cast<std::int64_t>(flash_row_size(d));
  std::size_t free_bytes = 0, total_bytes = 0;
  NCSPARSE_CUDA(cudaMemGetInfo(&free_bytes, &total_bytes));
  const cuda::PassPlan plan =
      cuda::make_plan(queries.rows, keys.count, p.tile, L, d, static_cast<std::int64_t>(free_bytes * 0.8));
  const std::int64_t R = plan.rows_per_launch, T = plan.tile, cap = plan.candidate_capacity;
  q_.resize(R * d);
  scores_.resize(R * T);
  pv_.resize(R * d);
  margin_.resize(R);
  pos_.resize(R);
  cand_s_.resize(R * cap);
  tmp_s_.resize(R * cap);
  cand_i_.resize(R * cap);
  tmp_i_.resize(R * cap);
  count_.resize(R);
  thr_.resize(R);
  state_.resize(R * width);
  RowBuffers b{cand_s_.get(), cand_i_.get(), tmp_s_.get(), tmp_i_.get(), count_.get(), thr_.get(), state_.get(), cap};

  std::vector<float> margin(R);
  std::vector<int> count(R);
  std::vector<float> host_s(R * cap);
  std::vector<std::int64_t> host_i(R * cap);
  std::vector<Candidate> row;
  for (std::int64_t r0 = 0; r0 < queries.rows; r0 += R) {
    const std::int64_t rows = std::min(R, queries.rows - r0);
    NCSPARSE_CUDA(cudaMemcpy(q_.get(), queries.q + r0 * d, rows * d * sizeof(float), cudaMemcpyHostToDevice));
    NCSPARSE_CUDA(cudaMemcpy(pos_.get(), queries.positions + r0, rows * sizeof(std::int64_t), cudaMemcpyHostToDevice));
    std::int64_t max_pos = std::numeric_limits<std::int64_t>::min();
    for (std::int64_t i = 0; i < rows; ++i) {
      double s2 = 0;
      for (std::int64_t c = 0; c < d; ++c) s2 += double(queries.q[(r0 + i) * d + c]) * double(queries.q[(r0 + i) * d + c]);
      margin[i] = float(p.scale * std::sqrt(s2) * k_norm_max_);
      max_pos = std::max(max_pos, queries.positions[r0 + i]);
    }
    NCSPARSE_CUDA(cudaMemcpy(margin_.get(), margin.data(), rows * sizeof(float), cudaMemcpyHostToDevice));
    init_rows<<<rows, cuda::kRowThreads>>>(int(rows), width, L, b);
    NCSPARSE_CUDA_LAUNCH();

    for (std::int64_t t0 = 0; t0 < keys.count; t0 += T) {
      const std::int64_t tc = std::min(T, keys.count - t0), g0 = keys.begin + t0;
      if (p.causal && g0 > max_pos) break;
      const float alpha = float(p.scale), zero = 0.0f, one = 1.0f;
      // Row-major S (rows × tc) is column-major Sᵀ = K_tile · Qᵀ.
      cuda_check(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, int(tc), int(rows), int(d), &alpha, k_.get() + t0 * d,
                             int(d), q_.get(), int(d), &zero, scores_.get(), int(tc)),
                 "cublasSgemm (scores)");
      TileArgs a{scores_.get(), tc, g0, d, pos_.get(), p.causal, p.exact, q_.get(), k_.get() + t0 * d, margin_.get(),
                 p.scale};
      tile_update<<<rows, cuda::kRowThreads>>>(a, b);
      NCSPARSE_CUDA_LAUNCH();
      if (p.exact) {
        // Row-major PV (rows × d) is column-major PVᵀ = V_tileᵀ · Pᵀ.
        cuda_check(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, int(d), int(rows), int(tc), &one, v_.get() + t0 * d,
                               int(d), scores_.get(), int(tc), &zero, pv_.get(), int(d)),
                   "cublasSgemm (P·V)");
        const std::int64_t total = rows * d;
        add_pv<<<int((total + 255) / 256), 256>>>(int(rows), d, pv_.get(), state_.get());
        NCSPARSE_CUDA_LAUNCH();
      }
      select_rows<<<rows, cuda::kRowThreads>>>(L, b);
      NCSPARSE_CUDA_LAUNCH();
    }

    NCSPARSE_CUDA(cudaMemcpy(count.data(), count_.get(), rows * sizeof(int), cudaMemcpyDeviceToHost));
    NCSPARSE_CUDA(cudaMemcpy(host_s.data(), cand_s_.get(), rows * cap * sizeof(float), cudaMemcpyDeviceToHost));
    NCSPARSE_CUDA(cudaMemcpy(host_i.data(), cand_i_.get(), rows * cap * sizeof(std::int64_t), cudaMemcpyDeviceToHost));
    for (std::int64_t i = 0; i < rows; ++i) {
      NCSPARSE_ASSERT(count[i] <= L);
      row.resize(static_cast<std::size_t>(count[i]));
      for (int j = 0; j < count[i]; ++j) row[j] = Candidate{host_s[i * cap + j], host_i[i * cap + j]};
      std::sort(row.begin(), row.end(), before);
      Candidate* dst = out.lists.data() + (r0 + i) * L;
      std::copy(row.begin(), row.end(), dst);
      std::fill(dst + row.size(), dst + L, kEmptyCandidate);
    }
    if (p.exact) {
      NCSPARSE_CUDA(cudaMemcpy(out.flash.data() + r0 * width, state_.get(), rows * width * sizeof(double),
                               cudaMemcpyDeviceToHost));
    }
  }
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<CudaBackend>(); }

}  // namespace ncsparse
