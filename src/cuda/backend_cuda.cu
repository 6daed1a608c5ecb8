// CUDA backend: the local pass of DESIGN.md §3 on a key shard resident in device memory.
//
// Per tile of keys: cuBLAS scores the tile (scale·Q·K_tileᵀ); blocks of (chunk of keys, row)
// filter the scores against the row's threshold (with the same rigorous rounding margin as the
// CPU backend), re-score survivors canonically in double, bit-identical to the CPU's
// canonical_score (src/core/score.hpp), and append them to the row's candidate buffer. With the
// exact state, the same score tile becomes the weights P (chunk maxima, exponentials, per-row
// sums in a fixed order) and cuBLAS adds P·V. When a row holds more than L candidates, a radix
// select (on the score, then on the index among ties) keeps exactly the top L under the total
// order and raises the threshold. Tiles grow from about 2L keys (every key of the first tile is
// re-scored) to a size that fills the device (cuda/plan.hpp). At the end one segmented radix
// sort (CUB) orders each row's list on the device. No m × n score matrix exists: one rows × tile
// tile at a time.
//
// --score-precision tf32|bf16 (PassParams::score_precision) scores the filter GEMM on the tensor
// cores: TF32 from the float inputs (cuBLAS's fast-TF32 compute type), BF16 from copies of K
// (converted once per shard) and Q (per block) rounded to nearest. The filter's margin is then
// the one derived for that precision (score_margin_of_bound in core/score.hpp, with the proof),
// and survivors are re-scored canonically as in FP32, so lists are the same in every precision.
// The exact pass does not use the reduced scores: it scores the tile again in FP32 and takes its
// chunk maxima from there, so its error is the FP32 pass's whatever the filter's precision.
#include <cub/device/device_segmented_radix_sort.cuh>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/score.hpp"
#include "cuda/device.cuh"
#include "cuda/gather.hpp"
#include "cuda/generate.hpp"
#include "cuda/plan.hpp"
#include "ncsparse/backend.hpp"
#include "ncsparse/candidate.hpp"
#include "ncsparse/error.hpp"
#include "ncsparse/flash.hpp"

namespace ncsparse {
namespace {

using cuda::DeviceArray;

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
  float* scores;  // rows × tc GEMM scores; overwritten by the weights P when exact
  std::int64_t tc, g0, d, chunks;
  const std::int64_t* positions;
  bool causal, exact;
  const float* q;            // rows × d
  const float* k_tile;       // tc × d
  const float* margin_base;  // per row: scale·‖q‖·max‖k‖
  double scale;
  float* part_max;    // rows × chunks: maximum GEMM score of each chunk (exact only)
  double* part_sum;   // rows × chunks × 2: Σ p and Σ p² of each chunk (exact only)
  ScorePrecision precision;  // of the scores in `scores` when filter_chunk reads them
};

__device__ std::int64_t visible_keys(const TileArgs& a, int row) {
  if (!a.causal) return a.tc;
  const std::int64_t limit = a.positions[row] - a.g0 + 1;
  return limit < 0 ? 0 : (limit > a.tc ? a.tc : limit);
}

// The end of the visible keys of the chunk starting at key lo (block (chunk, row)).
__device__ std::int64_t visible_chunk_end(const TileArgs& a, int row, std::int64_t lo) {
  const std::int64_t limit = visible_keys(a, row);
  return limit < lo + cuda::kChunk ? limit : lo + cuda::kChunk;
}

// The rounding margin of src/core/score.hpp for a row of bound `base` at threshold t, for GEMM
// scores of precision p.
__device__ float margin_of(float base, float threshold, std::int64_t d, ScorePrecision p) {
  return score_margin_of_bound(double(base), d, fabs(double(threshold)), p);
}

// Re-scores the keys flagged in `mask` (bit l: key first + l·stride of the tile), four at a time,
// eight lanes per key, and appends those that beat the threshold t.
__device__ void rescore(unsigned mask, std::int64_t first, int stride, const TileArgs& a, const RowBuffers& b, int row,
                        const float* qr, float t) {
  const int lane = threadIdx.x % 32, group = lane / 8, u = lane % 8;
  while (mask != 0) {
    unsigned bits = mask;
    for (int g = 0; g < group && bits != 0; ++g) bits &= bits - 1;
    const bool has = bits != 0;
    const std::int64_t jj = first + std::int64_t(has ? __ffs(bits) - 1 : 0) * stride;
    double acc = 0;
    if (has) {
      const float* kr = a.k_tile + jj * a.d;
#pragma unroll 4
      for (std::int64_t c = u; c < a.d; c += 8) acc += double(qr[c]) * double(kr[c]);
    }
    acc += __shfl_down_sync(0xffffffffu, acc, 1, 8);  // (l0 + l1), (l2 + l3), ...
    acc += __shfl_down_sync(0xffffffffu, acc, 2, 8);  // (l0 + l1) + (l2 + l3), ...
    acc += __shfl_down_sync(0xffffffffu, acc, 4, 8);  // ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))
    if (has && u == 0) {
      const float c = __double2float_rn(a.scale * acc) + 0.0f;
      if (c > t) {
        const int slot = atomicAdd(&b.count[row], 1);
        b.cand_score[row * b.capacity + slot] = c;
        b.cand_index[row * b.capacity + slot] = a.g0 + jj;
      }
    }
    for (int g = 0; g < 4 && mask != 0; ++g) mask &= mask - 1;
  }
}

// Filter of one chunk of one row (block (chunk, row)): the GEMM score may only reject what cannot
// beat the row's threshold. Each warp ballots 32 scores at a time; survivors are re-scored four at a time,
// eight lanes per key: lane u sums the products of columns u, u + 8, ... in order, exactly as
// canonical_score's lane u does, and three shuffles add the lanes in canonical_score's fixed tree,
// so the score is bit-identical to the CPU's (float×float products are exact in double, so FMA
// contraction cannot change a sum). With the exact state, the block also takes its chunk's
// maximum GEMM score.
// V scores per lane and step: 4 (one 16-byte load) when every row of the tile starts 16-byte
// aligned (tc a multiple of 4), else 1.
template <int V>
__global__ void filter_chunk(TileArgs a, RowBuffers b) {
  __shared__ float fshared[32];
  const int row = blockIdx.y;
  const std::int64_t lo = std::int64_t(blockIdx.x) * cuda::kChunk, hi = visible_chunk_end(a, row, lo);
  const float* s = a.scores + row * a.tc;
  const float t = b.threshold[row];
  const float cut = isfinite(t) ? t - margin_of(a.margin_base[row], t, a.d, a.precision) : t;
  const float* qr = a.q + row * a.d;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  float local_max = -INFINITY;
  for (std::int64_t base = lo + std::int64_t(warp) * 32 * V; base < hi; base += std::int64_t(warps) * 32 * V) {
    const std::int64_t j0 = base + std::int64_t(lane) * V;
    float v[V];
    if constexpr (V == 4) {
      if (j0 + 3 < hi) {
        const float4 x = *reinterpret_cast<const float4*>(s + j0);
        v[0] = x.x, v[1] = x.y, v[2] = x.z, v[3] = x.w;
      } else {
        for (int i = 0; i < V; ++i) v[i] = j0 + i < hi ? s[j0 + i] : -INFINITY;
      }
    } else {
      v[0] = j0 < hi ? s[j0] : -INFINITY;
    }
#pragma unroll
    for (int i = 0; i < V; ++i) {
      local_max = fmaxf(local_max, v[i]);
      rescore(__ballot_sync(0xffffffffu, v[i] > cut), base + i, V, a, b, row, qr, t);  // -inf never passes
    }
  }
  if (!a.exact) return;
  local_max = block_max(local_max, fshared);
  if (threadIdx.x == 0) a.part_max[row * a.chunks + blockIdx.x] = local_max;
}

// The chunk maxima of the FP32 scores (block (chunk, row)) over the visible keys, as filter_chunk
// takes them in FP32: for the exact pass when the filter scored in another precision.
__global__ void chunk_max(TileArgs a) {
  __shared__ float fshared[32];
  const int row = blockIdx.y;
  const std::int64_t lo = std::int64_t(blockIdx.x) * cuda::kChunk, hi = visible_chunk_end(a, row, lo);
  const float* s = a.scores + row * a.tc;
  float x = -INFINITY;
  for (std::int64_t j = lo + threadIdx.x; j < hi; j += blockDim.x) x = fmaxf(x, s[j]);
  x = block_max(x, fshared);
  if (threadIdx.x == 0) a.part_max[row * a.chunks + blockIdx.x] = x;
}

// Floats to bfloat16, rounded to nearest (the conversion error bound of core/score.hpp's BF16).
__global__ void to_bf16(std::int64_t count, const float* from, __nv_bfloat16* to) {
  const std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (i < count) to[i] = __float2bfloat16_rn(from[i]);
}

void convert_bf16(std::int64_t count, const float* from, __nv_bfloat16* to) {
  if (count == 0) return;
  to_bf16<<<unsigned((count + 255) / 256), 256>>>(count, from, to);
  NCSPARSE_CUDA_LAUNCH();
}

// The row's maximum after this tile: the state's m and every chunk's maximum. The same in every
// block of the row, and in tile_finalize (max does not depend on the order).
__device__ double tile_row_max(const TileArgs& a, int row, double m_old, float* fshared, float* tile_max) {
  float x = -INFINITY;
  for (std::int64_t c = threadIdx.x; c < a.chunks; c += blockDim.x) x = fmaxf(x, a.part_max[row * a.chunks + c]);
  x = block_max(x, fshared);
  *tile_max = x;
  return fmax(m_old, double(x));
}

// Weights of one chunk of one row: P = exp(s − m) for the visible keys, 0 for the others, and
// the chunk's Σ P and Σ P² (summed per row in a fixed order by tile_finalize: deterministic).
__global__ void exp_chunk(TileArgs a, RowBuffers b, std::int64_t width) {
  __shared__ float fshared[32];
  __shared__ double dshared[32];
  const int row = blockIdx.y;
  float tile_max;
  const double m_new = tile_row_max(a, row, b.state[row * width], fshared, &tile_max);
  const float mf = float(m_new);
  const std::int64_t limit = visible_keys(a, row);
  const std::int64_t lo = std::int64_t(blockIdx.x) * cuda::kChunk;
  const std::int64_t hi = a.tc < lo + cuda::kChunk ? a.tc : lo + cuda::kChunk;
  float* s = a.scores + row * a.tc;
  double sum = 0, sum2 = 0;
  for (std::int64_t j = lo + threadIdx.x; j < hi; j += blockDim.x) {
    const float e = j < limit ? expf(s[j] - mf) : 0.0f;
    s[j] = e;
    sum += e;
    sum2 += double(e) * double(e);
  }
  sum = block_sum(sum, dshared);
  sum2 = block_sum(sum2, dshared);
  if (threadIdx.x == 0) {
    a.part_sum[2 * (row * a.chunks + blockIdx.x)] = sum;
    a.part_sum[2 * (row * a.chunks + blockIdx.x) + 1] = sum2;
  }
}

// Per row, after exp_chunk: m ← m_new, l ← l·α + Σ P, l2 ← l2·α² + Σ P², o ← o·α (P·V is added
// next), with α = exp(m_old − m_new). A tile with no visible key leaves the row unchanged.
__global__ void tile_finalize(TileArgs a, RowBuffers b, std::int64_t width) {
  __shared__ float fshared[32];
  __shared__ double alpha_shared;
  const int row = blockIdx.x;
  double* st = b.state + row * width;
  float tile_max;
  const double m_old = st[0];
  const double m_new = tile_row_max(a, row, m_old, fshared, &tile_max);
  if (tile_max == -INFINITY) return;  // uniform across the block
  if (threadIdx.x == 0) {
    double sum = 0, sum2 = 0;
    for (std::int64_t c = 0; c < a.chunks; ++c) {
      sum += a.part_sum[2 * (row * a.chunks + c)];
      sum2 += a.part_sum[2 * (row * a.chunks + c) + 1];
    }
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

// The kept candidates of each row as 64-bit sort keys (cuda::candidate_key) for the segmented
// sort; slots past the row's count get key 0, which sorts last.
__global__ void pack_keys(std::int64_t L, RowBuffers b, std::uint64_t* keys) {
  const int row = blockIdx.y;
  const std::int64_t j = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (j >= L) return;
  const std::int64_t n = b.count[row];
  const std::uint64_t key =
      j < n ? cuda::candidate_key(Candidate{b.cand_score[row * b.capacity + j], b.cand_index[row * b.capacity + j]}) : 0;
  keys[row * L + j] = key;
}

__global__ void unpack_keys(std::int64_t rows_times_L, const std::uint64_t* keys, Candidate* out) {
  const std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (i >= rows_times_L) return;
  out[i] = cuda::candidate_of_key(keys[i]);
}

__global__ void segment_offsets(int rows, std::int64_t L, int* offsets) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i <= rows) offsets[i] = int(i * L);
}

// Keeps exactly the top `keep` candidates of each row holding more, under the total order, and
// raises the row's threshold to the keep-th score. Lazy: a row whose buffer still has `room`
// free slots (room for the next tile, whatever passes the filter) is left as it is, so a row
// selects once per about L newcomers rather than once per tile; room = capacity forces it.
__global__ void select_rows(std::int64_t keep, std::int64_t room, RowBuffers b) {
  __shared__ unsigned int hist[256];
  __shared__ std::uint32_t key_prefix, key_mask;
  __shared__ std::uint64_t idx_prefix, idx_mask;
  __shared__ std::int64_t want;
  __shared__ int kept;
  __shared__ float kth_score;
  __shared__ bool resolve_ties;
  const int row = blockIdx.x;
  const std::int64_t n = b.count[row];
  if (n <= keep || n + room <= b.capacity) return;
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
          resolve_ties = shift == 0 && hist[digit] > want;  // else every entry at that score is kept
          break;
        }
        cum += hist[digit];
      }
    }
    __syncthreads();
  }
  // Among entries tied at that score, keep the `want` smallest indices: radix select ascending.
  // Skipped when the tied entries are exactly the ones wanted (the usual case: one entry).
  if (threadIdx.x == 0) {
    idx_prefix = resolve_ties ? 0 : ~std::uint64_t(0);
    idx_mask = 0;
    kept = 0;
  }
  __syncthreads();
  for (int shift = 56; resolve_ties && shift >= 0; shift -= 8) {
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

// With NCSPARSE_CUDA_PROFILE set, local_pass synchronises after each phase and prints where the
// time went (one line per call on stderr). The synchronisation slows the pass a little: use it
// to see the split, not to time the whole.
class PhaseProfile {
 public:
  enum Phase { kUpload, kScores, kFilter, kExact, kSelect, kSort, kDownload, kPhases };
  PhaseProfile() : on_(std::getenv("NCSPARSE_CUDA_PROFILE") != nullptr) { mark_ = Clock::now(); }
  void end(Phase p) {
    if (!on_) return;
    NCSPARSE_CUDA(cudaDeviceSynchronize());
    const auto now = Clock::now();
    total_[p] += std::chrono::duration<double>(now - mark_).count();
    mark_ = now;
  }
  void print(std::int64_t rows, std::int64_t keys, std::size_t tiles, std::int64_t L) const {
    if (!on_) return;
    static const char* names[kPhases] = {"upload", "scores", "filter", "exact", "select", "sort", "download"};
    std::string line = "ncsparse cuda profile: rows " + std::to_string(rows) + ", keys " + std::to_string(keys) +
                       ", tiles " + std::to_string(tiles) + ", L " + std::to_string(L) + " |";
    char buf[64];
    for (int i = 0; i < kPhases; ++i) {
      std::snprintf(buf, sizeof buf, " %s %.3f ms", names[i], total_[i] * 1e3);
      line += buf;
    }
    std::fprintf(stderr, "%s\n", line.c_str());
  }

 private:
  using Clock = std::chrono::steady_clock;
  bool on_;
  Clock::time_point mark_;
  double total_[kPhases] = {};
};

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
    cuda::check(cublasCreate(&blas_), "cublasCreate");
  }
  ~CudaBackend() override {
    if (blas_ != nullptr) cublasDestroy(blas_);
    for (float* s : staging_) {
      if (s != nullptr) cudaFreeHost(s);
    }
    for (cudaEvent_t e : staged_) {
      if (e != nullptr) cudaEventDestroy(e);
    }
    if (copy_stream_ != nullptr) cudaStreamDestroy(copy_stream_);
  }
  std::string name() const override { return "cuda"; }

  bool generate_shard(const Generator& gen, std::int64_t begin, std::int64_t count, std::span<float> k,
                      std::span<float> v) override {
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    const std::size_t values = static_cast<std::size_t>(count * gen.params().d);
    k_.resize(values);
    v_.resize(values);
    cuda::generate_keys_values(gen, begin, count, k_.get(), v_.get());
    const auto t1 = Clock::now();
    if (values > 0) {
      download_pinned(k.data(), k_.get(), values, gen.threads());
      download_pinned(v.data(), v_.get(), values, gen.threads());
    }
    const auto t2 = Clock::now();
    k_norm_max_ = cuda::max_row_norm(k_.get(), count, gen.params().d);
    if (std::getenv("NCSPARSE_CUDA_PROFILE") != nullptr) {
      const double gen_s = std::chrono::duration<double>(t1 - t0).count();
      const double down_s = std::chrono::duration<double>(t2 - t1).count();
      std::fprintf(stderr, "cuda generate_shard: %lld rows: generate %.3f s, download %.3f s (%.1f GB/s)\n",
                   static_cast<long long>(count), gen_s, down_s, 2.0 * values * sizeof(float) / down_s / 1e9);
    }
    loaded_ = KeyShard{k.data(), v.data(), begin, count};
    loaded_d_ = gen.params().d;
    generated_ = true;
    k_bf16_valid_ = false;
    return true;
  }

  void load_shard(const KeyShard& keys, const PassParams& p) override {
    // The shard that generate_shard made here already: nothing to upload.
    if (generated_ && keys.k == loaded_.k && keys.v == loaded_.v && keys.begin == loaded_.begin &&
        keys.count == loaded_.count) {
      return;
    }
    generated_ = false;
    k_bf16_valid_ = false;
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
    loaded_d_ = p.d;
  }

  // Off unless NCSPARSE_CUDA_GATHER=1 until a session with a device has run its test
  // (tests/gpu/gather_test.cpp) and the engine check: the kernel was written without a device.
  bool gather_outputs(const PrefixGather& g) override {
    static const bool enabled = [] {
      const char* v = std::getenv("NCSPARSE_CUDA_GATHER");
      return v != nullptr && std::strcmp(v, "1") == 0;
    }();
    if (!enabled) return false;
    if (g.strategies > cuda::kGatherStrategies || loaded_.count == 0 || g.d != loaded_d_) return false;
    cuda::gather_outputs(g, v_.get(), loaded_.begin, loaded_.count);
    return true;
  }

  void local_pass(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, LocalOutput out) override;

 private:
  // scores (rows × tc, row-major) = alpha·Q·K_tileᵀ in `precision`: row-major S is column-major
  // Sᵀ = K_tile·Qᵀ. For BF16, q16 and k16 are the bfloat16 copies of q and of the whole shard.
  void score_tile(ScorePrecision precision, std::int64_t t0, std::int64_t tc, std::int64_t rows, std::int64_t d,
                  float alpha, float* scores) {
    const float zero = 0.0f;
    switch (precision) {
      case ScorePrecision::FP32:
        cuda::check(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, int(tc), int(rows), int(d), &alpha, k_.get() + t0 * d,
                                int(d), q_.get(), int(d), &zero, scores, int(tc)),
                    "cublasSgemm (scores)");
        break;
      case ScorePrecision::TF32:
        cuda::check(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, int(tc), int(rows), int(d), &alpha,
                                 k_.get() + t0 * d, CUDA_R_32F, int(d), q_.get(), CUDA_R_32F, int(d), &zero, scores,
                                 CUDA_R_32F, int(tc), CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT),
                    "cublasGemmEx (TF32 scores)");
        break;
      case ScorePrecision::BF16:
        cuda::check(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, int(tc), int(rows), int(d), &alpha,
                                 k_bf16_.get() + t0 * d, CUDA_R_16BF, int(d), q_bf16_.get(), CUDA_R_16BF, int(d),
                                 &zero, scores, CUDA_R_32F, int(tc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                    "cublasGemmEx (BF16 scores)");
        break;
    }
  }

  // Device to host through two pinned staging buffers (the host destination is pageable): the
  // copy of one chunk into its place (by `threads` threads: the first touch of the pages is
  // most of its cost) overlaps the transfer of the next.
  void download_pinned(float* host, const float* dev, std::size_t count, int threads) {
    constexpr std::size_t kStage = std::size_t{16} << 20;  // floats per stage (64 MiB)
    if (staging_[0] == nullptr) {
      for (float*& s : staging_) {
        if (cudaMallocHost(&s, kStage * sizeof(float)) != cudaSuccess) {
          cudaGetLastError();
          s = nullptr;
        }
      }
      if (copy_stream_ == nullptr) NCSPARSE_CUDA(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking));
      for (cudaEvent_t& e : staged_) NCSPARSE_CUDA(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    }
    if (staging_[0] == nullptr || staging_[1] == nullptr) {  // no pinned memory: the plain copy
      NCSPARSE_CUDA(cudaMemcpy(host, dev, count * sizeof(float), cudaMemcpyDeviceToHost));
      return;
    }
    const std::size_t chunks = (count + kStage - 1) / kStage;
    auto issue = [&](std::size_t c) {
      const std::size_t lo = c * kStage, n = std::min(kStage, count - lo);
      NCSPARSE_CUDA(cudaMemcpyAsync(staging_[c % 2], dev + lo, n * sizeof(float), cudaMemcpyDeviceToHost, copy_stream_));
      NCSPARSE_CUDA(cudaEventRecord(staged_[c % 2], copy_stream_));
    };
    issue(0);
    for (std::size_t c = 0; c < chunks; ++c) {
      NCSPARSE_CUDA(cudaEventSynchronize(staged_[c % 2]));
      if (c + 1 < chunks) issue(c + 1);
      const std::size_t lo = c * kStage, n = std::min(kStage, count - lo);
      const float* from = staging_[c % 2];
      const int parts = std::max(1, threads);
#pragma omp parallel for num_threads(parts) schedule(static)
      for (int part = 0; part < parts; ++part) {
        const std::size_t a = n * part / parts, b = n * (part + 1) / parts;
        std::memcpy(host + lo + a, from + a, (b - a) * sizeof(float));
      }
    }
  }

  cublasHandle_t blas_ = nullptr;
  float* staging_[2] = {nullptr, nullptr};
  cudaStream_t copy_stream_ = nullptr;
  cudaEvent_t staged_[2] = {nullptr, nullptr};
  DeviceArray<float> k_, v_;
  KeyShard loaded_{};
  std::int64_t loaded_d_ = -1;
  bool generated_ = false;  // loaded_ came from generate_shard
  bool k_bf16_valid_ = false;  // k_bf16_ holds the loaded shard (BF16 filter)
  DeviceArray<__nv_bfloat16> k_bf16_, q_bf16_;
  double k_norm_max_ = 0;
  DeviceArray<float> q_, scores_, pv_, margin_, cand_s_, tmp_s_, thr_;
  DeviceArray<std::int64_t> pos_, cand_i_, tmp_i_;
  DeviceArray<int> count_, offsets_;
  DeviceArray<double> state_, part_sum_;
  DeviceArray<float> part_max_;
  DeviceArray<std::uint64_t> keys_in_, keys_out_;
  DeviceArray<Candidate> lists_;
  DeviceArray<unsigned char> sort_tmp_;
};

void CudaBackend::local_pass(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, LocalOutput out) {
  if (keys.k != loaded_.k || keys.count != loaded_.count || keys.begin != loaded_.begin) load_shard(keys, p);
  const std::int64_t d = p.d, L = p.list_length, width = static_cast<std::int64_t>(flash_row_size(d));
  if (queries.rows == 0) return;
  // The device sort packs a global index into 32 bits.
  if (keys.begin + keys.count > (std::int64_t(1) << 32) - 1) {
    throw Error(kExitUnavailable, "--backend cuda: key indices beyond 2^32 - 1 are not supported (use --backend cpu)");
  }
  // BF16 filter: the shard's bfloat16 copy, made once per shard, before the plan counts free memory.
  const ScorePrecision precision = p.score_precision;
  if (precision == ScorePrecision::BF16 && !k_bf16_valid_) {
    k_bf16_.resize(keys.count * d);
    convert_bf16(keys.count * d, k_.get(), k_bf16_.get());
    k_bf16_valid_ = true;
  }
  std::size_t free_bytes = 0, total_bytes = 0;
  NCSPARSE_CUDA(cudaMemGetInfo(&free_bytes, &total_bytes));
  const bool grow = p.device_tile <= 0;
  const std::int64_t requested = grow ? cuda::auto_tile(queries.rows) : p.device_tile;
  const cuda::PassPlan plan =
      cuda::make_plan(queries.rows, keys.count, requested, L, d, static_cast<std::int64_t>(free_bytes * 0.8));
  const std::int64_t R = plan.rows_per_launch, T = plan.tile, cap = plan.candidate_capacity;
  const std::int64_t max_chunks = (T + cuda::kChunk - 1) / cuda::kChunk;
  const std::vector<std::int64_t> tiles = cuda::tile_sizes(keys.count, L, T, grow);
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
  part_max_.resize(R * max_chunks);
  part_sum_.resize(2 * R * max_chunks);
  keys_in_.resize(R * L);
  keys_out_.resize(R * L);
  lists_.resize(R * L);
  offsets_.resize(R + 1);
  RowBuffers b{cand_s_.get(), cand_i_.get(), tmp_s_.get(), tmp_i_.get(), count_.get(), thr_.get(), state_.get(), cap};
  std::size_t sort_bytes = 0;
  NCSPARSE_CUDA(cub::DeviceSegmentedRadixSort::SortKeysDescending(nullptr, sort_bytes, keys_in_.get(), keys_out_.get(),
                                                                  R * L, R, offsets_.get(), offsets_.get() + 1));
  sort_tmp_.resize(sort_bytes);
  if (precision == ScorePrecision::BF16) q_bf16_.resize(R * d);

  std::vector<float> margin(R);
  PhaseProfile prof;
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
    if (precision == ScorePrecision::BF16) convert_bf16(rows * d, q_.get(), q_bf16_.get());
    init_rows<<<rows, cuda::kRowThreads>>>(int(rows), width, L, b);
    NCSPARSE_CUDA_LAUNCH();
    prof.end(PhaseProfile::kUpload);

    std::int64_t t0 = 0;
    for (const std::int64_t tc : tiles) {
      const std::int64_t g0 = keys.begin + t0;
      if (p.causal && g0 > max_pos) break;
      const std::int64_t chunks = (tc + cuda::kChunk - 1) / cuda::kChunk;
      const float alpha = float(p.scale), zero = 0.0f, one = 1.0f;
      score_tile(precision, t0, tc, rows, d, alpha, scores_.get());
      prof.end(PhaseProfile::kScores);
      TileArgs a{scores_.get(), tc,          g0,      d,        chunks,          pos_.get(),     p.causal,
                 p.exact,       q_.get(),    k_.get() + t0 * d, margin_.get(), p.scale, part_max_.get(), part_sum_.get(),
                 precision};
      // The filter takes the exact pass's chunk maxima only from FP32 scores.
      TileArgs fa = a;
      fa.exact = p.exact && precision == ScorePrecision::FP32;
      const dim3 grid{unsigned(chunks), unsigned(rows)};
      if (tc % 4 == 0) {
        filter_chunk<4><<<grid, cuda::kRowThreads>>>(fa, b);
      } else {
        filter_chunk<1><<<grid, cuda::kRowThreads>>>(fa, b);
      }
      NCSPARSE_CUDA_LAUNCH();
      prof.end(PhaseProfile::kFilter);
      if (p.exact) {
        if (precision != ScorePrecision::FP32) {  // the exact pass scores in FP32
          score_tile(ScorePrecision::FP32, t0, tc, rows, d, alpha, scores_.get());
          a.precision = ScorePrecision::FP32;
          chunk_max<<<grid, cuda::kRowThreads>>>(a);
          NCSPARSE_CUDA_LAUNCH();
        }
        exp_chunk<<<grid, cuda::kRowThreads>>>(a, b, width);
        NCSPARSE_CUDA_LAUNCH();
        tile_finalize<<<unsigned(rows), cuda::kRowThreads>>>(a, b, width);
        NCSPARSE_CUDA_LAUNCH();
        // Row-major PV (rows × d) is column-major PVᵀ = V_tileᵀ · Pᵀ.
        cuda::check(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, int(d), int(rows), int(tc), &one, v_.get() + t0 * d,
                               int(d), scores_.get(), int(tc), &zero, pv_.get(), int(d)),
                   "cublasSgemm (P·V)");
        const std::int64_t total = rows * d;
        add_pv<<<unsigned((total + 255) / 256), 256>>>(int(rows), d, pv_.get(), state_.get());
        NCSPARSE_CUDA_LAUNCH();
        prof.end(PhaseProfile::kExact);
      }
      select_rows<<<unsigned(rows), cuda::kRowThreads>>>(L, T, b);
      NCSPARSE_CUDA_LAUNCH();
      prof.end(PhaseProfile::kSelect);
      t0 += tc;
    }
    select_rows<<<unsigned(rows), cuda::kRowThreads>>>(L, cap, b);  // every row down to L
    NCSPARSE_CUDA_LAUNCH();
    prof.end(PhaseProfile::kSelect);

    // Sort each row's kept candidates on the device (one segmented radix sort) and copy rows × L.
    pack_keys<<<dim3(unsigned((L + 255) / 256), unsigned(rows)), 256>>>(L, b, keys_in_.get());
    NCSPARSE_CUDA_LAUNCH();
    segment_offsets<<<unsigned((rows + 256) / 256), 256>>>(int(rows), L, offsets_.get());
    NCSPARSE_CUDA_LAUNCH();
    NCSPARSE_CUDA(cub::DeviceSegmentedRadixSort::SortKeysDescending(sort_tmp_.get(), sort_bytes, keys_in_.get(),
                                                                    keys_out_.get(), rows * L, rows, offsets_.get(),
                                                                    offsets_.get() + 1));
    unpack_keys<<<unsigned((rows * L + 255) / 256), 256>>>(rows * L, keys_out_.get(), lists_.get());
    NCSPARSE_CUDA_LAUNCH();
    prof.end(PhaseProfile::kSort);
    NCSPARSE_CUDA(cudaMemcpy(out.lists.data() + r0 * L, lists_.get(), rows * L * sizeof(Candidate),
                             cudaMemcpyDeviceToHost));
    if (p.exact) {
      NCSPARSE_CUDA(cudaMemcpy(out.flash.data() + r0 * width, state_.get(), rows * width * sizeof(double),
                               cudaMemcpyDeviceToHost));
    }
    prof.end(PhaseProfile::kDownload);
  }
  prof.print(queries.rows, keys.count, tiles.size(), L);
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<CudaBackend>(); }

}  // namespace ncsparse
