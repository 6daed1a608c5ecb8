// The prefix strategies' sparse outputs on the device: one block per (row, 64 columns), each
// thread one column, the row's indices and weights staged through shared memory in chunks, one
// running sum in list order with explicitly rounded double operations (__dmul_rn, __dadd_rn),
// taken by each strategy at its k, exactly as the CPU loop of engine/stage_prefix.cpp:
// bit-identical outputs.
#include "cuda/gather.hpp"

#include "cuda/device.cuh"

namespace ncsparse::cuda {

namespace {

constexpr int kColumns = 64, kStage = 256;

struct GatherArgs {
  const std::int64_t* index;  // rows × width (kNoIndex past the list's end)
  const double* weights;      // rows × width
  const std::int64_t* k;      // strategies × rows
  const double* inv_z;        // strategies × rows
  double* out;                // strategies × rows × d
  const float* v;
  std::int64_t begin, count, rows, width, d;
  int strategies;
};

__global__ void __launch_bounds__(kColumns) gather_kernel(GatherArgs a) {
  __shared__ std::int64_t s_index[kStage];
  __shared__ double s_weight[kStage];
  const std::int64_t row = blockIdx.x;
  const std::int64_t c = std::int64_t(blockIdx.y) * kColumns + threadIdx.x;
  double res[kGatherStrategies], scale[kGatherStrategies];
  std::int64_t k[kGatherStrategies];
  std::int64_t k_max = 0;
#pragma unroll
  for (int s = 0; s < kGatherStrategies; ++s) {
    res[s] = 0.0;  // a strategy with k = 0 takes the empty sum
    k[s] = s < a.strategies ? a.k[s * a.rows + row] : 0;
    scale[s] = s < a.strategies ? a.inv_z[s * a.rows + row] : 0.0;
    k_max = k[s] > k_max ? k[s] : k_max;
  }
  double acc = 0.0;  // the running sum over the list, taken by each strategy at its k
  for (std::int64_t j0 = 0; j0 < k_max; j0 += kStage) {
    const int n = static_cast<int>(k_max - j0 < kStage ? k_max - j0 : kStage);
    __syncthreads();
    for (int t = threadIdx.x; t < n; t += kColumns) {
      s_index[t] = a.index[row * a.width + j0 + t];
      s_weight[t] = a.weights[row * a.width + j0 + t];
    }
    __syncthreads();
    if (c >= a.d) continue;
#pragma unroll 4
    for (int t = 0; t < n; ++t) {
      const std::int64_t g = s_index[t] - a.begin;
      if (g >= 0 && g < a.count) {  // else not this rank's key (or an empty slot)
        acc = __dadd_rn(acc, __dmul_rn(s_weight[t], static_cast<double>(a.v[g * a.d + c])));
      }
      const std::int64_t j = j0 + t;
#pragma unroll
      for (int s = 0; s < kGatherStrategies; ++s) {
        if (s < a.strategies && j + 1 == k[s]) res[s] = __dmul_rn(acc, scale[s]);
      }
    }
  }
  if (c >= a.d) return;
#pragma unroll
  for (int s = 0; s < kGatherStrategies; ++s) {
    if (s < a.strategies) a.out[(s * a.rows + row) * a.d + c] = res[s];
  }
}

}  // namespace

void gather_outputs(const PrefixGather& g, const float* v, std::int64_t begin, std::int64_t count) {
  NCSPARSE_ASSERT(g.strategies <= kGatherStrategies);
  if (g.rows == 0 || g.strategies == 0) return;
  // The indices of the first `width` entries of each row, compacted (the lists are rows × L).
  std::vector<std::int64_t> index(static_cast<std::size_t>(g.rows * g.width));
  for (std::int64_t i = 0; i < g.rows; ++i) {
    for (std::int64_t j = 0; j < g.width; ++j) index[i * g.width + j] = g.lists[i * g.L + j].index;
  }
  DeviceArray<std::int64_t> d_index, d_k;
  DeviceArray<double> d_weights, d_inv_z, d_out;
  auto up = [](auto& dst, const auto* src, std::size_t n) {
    dst.resize(n);
    if (n > 0) NCSPARSE_CUDA(cudaMemcpy(dst.get(), src, n * sizeof(*src), cudaMemcpyHostToDevice));
  };
  up(d_index, index.data(), index.size());
  up(d_weights, g.weights.data(), g.weights.size());
  up(d_k, g.k.data(), g.k.size());
  up(d_inv_z, g.inv_z.data(), g.inv_z.size());
  d_out.resize(g.out.size());
  GatherArgs a{d_index.get(), d_weights.get(), d_k.get(), d_inv_z.get(), d_out.get(), v, begin, count,
               g.rows, g.width, g.d, static_cast<int>(g.strategies)};
  const dim3 grid(static_cast<unsigned>(g.rows), static_cast<unsigned>((g.d + kColumns - 1) / kColumns));
  gather_kernel<<<grid, kColumns>>>(a);
  NCSPARSE_CUDA_LAUNCH();
  NCSPARSE_CUDA(cudaMemcpy(g.out.data(), d_out.get(), g.out.size() * sizeof(double), cudaMemcpyDeviceToHost));
}

}  // namespace ncsparse::cuda
