// The generator's kernels (see generate.hpp). Every value comes from the functions of
// core/gen_math.hpp, whose device versions round each operation explicitly (__fmul_rn,
// __fmaf_rn, ...): the same bits as the host's portable and AVX2 paths.
#include "cuda/generate.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/gen_math.hpp"
#include "cuda/device.cuh"

namespace ncsparse::cuda {

namespace {

enum Post : int { kNone = 0, kClamp = 1, kScale = 2 };

struct RowsSpec {
  std::uint64_t seed;
  std::uint32_t tensor;
  std::int64_t first, rows, d;
  bool uniform;
  int post;
  float b;
};

// One thread per Philox block (4 values of one row); grid-stride.
__global__ void standard_rows_kernel(RowsSpec s, float* out) {
  const std::int64_t groups = (s.d + 3) / 4, total = s.rows * groups;
  for (std::int64_t f = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; f < total;
       f += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t i = f / groups, g = f % groups;
    float v[4];
    gen::standard_values(gen::philox_block(s.seed, s.tensor, static_cast<std::uint64_t>(s.first + i),
                                           static_cast<std::uint32_t>(g)),
                         s.uniform, v);
    float* row = out + i * s.d;
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      if (4 * g + c >= s.d) break;
      float x = v[c];
      if (s.post == kClamp) x = fminf(fmaxf(x, -s.b), s.b);
      if (s.post == kScale) x = gen::fmul(x, s.b);
      row[4 * g + c] = x;
    }
  }
}

// out (rows × cols) = x (rows × inner) · w (inner × cols): 64 × 64 output tiles, 256 threads
// with 4 × 4 outputs each (rows ty + 16i, columns tx + 16j). Every output is the chain
// acc ← fma(x[t], w[t][j], acc) over t = 0, 1, ... in order: k-tiles in order, and inside a
// tile only its kt real terms (no padded terms, which could turn a −0 into +0).
constexpr int kTile = 64, kDepth = 16;
__global__ void __launch_bounds__(256) project_kernel(const float* __restrict__ x, const float* __restrict__ w,
                                                      std::int64_t rows, int inner, int cols, float* __restrict__ out) {
  __shared__ float xs[kDepth][kTile + 1];
  __shared__ float ws[kDepth][kTile];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const std::int64_t row0 = std::int64_t(blockIdx.y) * kTile;
  const int col0 = blockIdx.x * kTile;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  for (int t0 = 0; t0 < inner; t0 += kDepth) {
    const int kt = min(kDepth, inner - t0);
    for (int e = threadIdx.x; e < kTile * kDepth; e += blockDim.x) {
      const int r = e / kDepth, k = e % kDepth;
      const std::int64_t gr = row0 + r;
      xs[k][r] = (gr < rows && k < kt) ? x[gr * inner + t0 + k] : 0.0f;
    }
    for (int e = threadIdx.x; e < kTile * kDepth; e += blockDim.x) {
      const int k = e / kTile, c = e % kTile, gc = col0 + c;
      ws[k][c] = (gc < cols && k < kt) ? w[std::int64_t(t0 + k) * cols + gc] : 0.0f;
    }
    __syncthreads();
    for (int k = 0; k < kt; ++k) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = xs[k][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = ws[k][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = gen::ffma(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const std::int64_t r = row0 + ty + 16 * i;
    if (r >= rows) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int c = col0 + tx + 16 * j;
      if (c < cols) out[r * cols + c] = acc[i][j];
    }
  }
}

// RoPE and sinks, one thread per key row.
__global__ void position_kernel(float* k, std::int64_t count, std::int64_t d, std::int64_t first,
                                gen::PositionTables t) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < count;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    gen::position_features(k + i * d, d, first + i, true, t);
  }
}

// Largest row sum of squares (double, column order), as the bits of a non-negative double:
// their integer order is their numeric order, so atomicMax on the bits is a max.
__global__ void row_norm2_max_kernel(const float* x, std::int64_t count, std::int64_t d,
                                     unsigned long long* best) {
  unsigned long long mine = 0;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < count;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    double s2 = 0;
    for (std::int64_t c = 0; c < d; ++c) {
      const double v = x[i * d + c];
      s2 = __dadd_rn(s2, __dmul_rn(v, v));
    }
    mine = max(mine, static_cast<unsigned long long>(__double_as_longlong(s2)));
  }
  atomicMax(best, mine);
}

int blocks_for(std::int64_t work, int threads) {
  return static_cast<int>(std::min<std::int64_t>((work + threads - 1) / threads, 132 * 32));
}

void standard_rows(const RowsSpec& s, float* out) {
  if (s.rows == 0) return;
  standard_rows_kernel<<<blocks_for(s.rows * ((s.d + 3) / 4), 256), 256>>>(s, out);
  NCSPARSE_CUDA_LAUNCH();
}

void project(const float* x, const float* w, std::int64_t rows, std::int64_t d, float* out) {
  if (rows == 0) return;
  const dim3 grid(static_cast<unsigned>((d + kTile - 1) / kTile), static_cast<unsigned>((rows + kTile - 1) / kTile));
  project_kernel<<<grid, 256>>>(x, w, rows, static_cast<int>(d), static_cast<int>(d), out);
  NCSPARSE_CUDA_LAUNCH();
}

template <class T>
void upload(DeviceArray<T>& dst, const T* src, std::size_t count) {
  dst.resize(count);
  if (count > 0) NCSPARSE_CUDA(cudaMemcpy(dst.get(), src, count * sizeof(T), cudaMemcpyHostToDevice));
}

}  // namespace

void generate_keys_values(const Generator& gen, std::int64_t begin, std::int64_t count, float* k, float* v) {
  if (count <= 0) return;
  const ModelParams& p = gen.params();
  const std::int64_t d = p.d;
  RowsSpec s{p.seed, 0, begin, count, d, false, kScale, static_cast<float>(p.sigma)};
  if (p.model == InputModel::Gaussian) {
    s.tensor = Generator::kK;
    standard_rows(s, k);
    s.tensor = Generator::kV;
    standard_rows(s, v);
  } else {
    // Token rows X in chunks, then K = X·W_K and V = X·W_V straight into the shard.
    DeviceArray<float> wk, wv, x;
    upload(wk, gen.w_k().data(), gen.w_k().size());
    upload(wv, gen.w_v().data(), gen.w_v().size());
    const std::int64_t chunk = std::max<std::int64_t>(kTile, (std::int64_t(64) << 20) / (4 * d));  // 64 MiB of X
    x.resize(static_cast<std::size_t>(std::min(chunk, count) * d));
    s.tensor = Generator::kX;
    s.uniform = p.x_dist == XDistribution::Uniform;
    s.post = s.uniform ? kScale : kClamp;
    s.b = static_cast<float>(p.bound);
    for (std::int64_t c0 = 0; c0 < count; c0 += chunk) {
      s.first = begin + c0;
      s.rows = std::min(chunk, count - c0);
      standard_rows(s, x.get());
      project(x.get(), wk.get(), s.rows, d, k + c0 * d);
      project(x.get(), wv.get(), s.rows, d, v + c0 * d);
    }
    NCSPARSE_CUDA(cudaDeviceSynchronize());  // x, wk and wv are freed on return
  }
  const GeneratorTables g = gen.tables();
  if (g.rope_inv_freq != nullptr || g.sink_dir != nullptr) {
    DeviceArray<double> rope, sink;
    gen::PositionTables t{nullptr, nullptr, g.sinks, g.sink_boost};
    if (g.rope_inv_freq != nullptr) {
      upload(rope, g.rope_inv_freq, static_cast<std::size_t>(d / 2));
      t.rope_inv_freq = rope.get();
    }
    if (g.sink_dir != nullptr) {
      upload(sink, g.sink_dir, static_cast<std::size_t>(d));
      t.sink_dir = sink.get();
    }
    position_kernel<<<blocks_for(count, 128), 128>>>(k, count, d, begin, t);
    NCSPARSE_CUDA_LAUNCH();
    NCSPARSE_CUDA(cudaDeviceSynchronize());
  }
  NCSPARSE_CUDA(cudaDeviceSynchronize());
}

double max_row_norm(const float* x, std::int64_t count, std::int64_t d) {
  if (count <= 0) return 0;
  DeviceArray<unsigned long long> best;
  best.resize(1);
  NCSPARSE_CUDA(cudaMemset(best.get(), 0, sizeof(unsigned long long)));
  row_norm2_max_kernel<<<blocks_for(count, 256), 256>>>(x, count, d, best.get());
  NCSPARSE_CUDA_LAUNCH();
  unsigned long long bits = 0;
  NCSPARSE_CUDA(cudaMemcpy(&bits, best.get(), sizeof bits, cudaMemcpyDeviceToHost));
  double s2;
  std::memcpy(&s2, &bits, sizeof s2);
  return std::sqrt(s2);
}

}  // namespace ncsparse::cuda
