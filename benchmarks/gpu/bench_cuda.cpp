// The CUDA local pass against its two floors on the device it runs on (issue 7's table):
//   - the memory floor: one read of the key shard (and of V for the exact pass) at the measured
//     device-to-device copy bandwidth;
//   - the matrix floor: the pass's GEMM flops (2·m·n·d for the scores, as much again for P·V)
//     at the measured cuBLAS FP32 rate (8192³ sgemm);
// and against the bare score GEMM of the same shape (cuBLAS, scores written out once).
//
//   bench_cuda [--quick] [--profile] [--reps R] [--dump DIR]
//
// --profile adds, per configuration, one run of each pass with NCSPARSE_CUDA_PROFILE set: the
// split of its time into upload, scores, filter, exact, select, sort and download (stderr).
// --dump DIR writes the inputs as raw float32 (keys_n<N>.f32: n × d; queries_n<N>_m<M>.f32:
// m × d) and the top-k indices of one configuration, for benchmarks/gpu/torch_topk.py (cuBLAS
// GEMM + torch.topk on the same data). Times are medians of R timed runs after one warm-up;
// each run is one synchronous local_pass call (queries up, lists and states down included).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "ncsparse/backend.hpp"
#include "ncsparse/error.hpp"
#include "ncsparse/flash.hpp"
#include "ncsparse/generator.hpp"

namespace {

using ncsparse::Error;

void check(cudaError_t s, const char* what) {
  if (s != cudaSuccess) throw Error(ncsparse::kExitInternal, std::string(what) + ": " + cudaGetErrorString(s));
}
void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw Error(ncsparse::kExitInternal, std::string(what) + ": cuBLAS status " + std::to_string(int(s)));
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Median seconds of `reps` runs of fn (after one warm-up), timed with device events.
template <class Fn>
double time_device(int reps, Fn&& fn) {
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "cudaEventCreate");
  check(cudaEventCreate(&b), "cudaEventCreate");
  fn();
  check(cudaDeviceSynchronize(), "warm-up");
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    check(cudaEventRecord(a), "cudaEventRecord");
    fn();
    check(cudaEventRecord(b), "cudaEventRecord");
    check(cudaEventSynchronize(b), "cudaEventSynchronize");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
    t.push_back(ms * 1e-3);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return median(t);
}

// Median wall seconds of `reps` runs of a synchronous host call (after one warm-up).
template <class Fn>
double time_host(int reps, Fn&& fn) {
  fn();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return median(t);
}

struct Ceilings {
  double bandwidth = 0;  // bytes/s, read + write of a device-to-device copy
  double sgemm = 0;      // flop/s, cuBLAS FP32 (no TF32)
};

Ceilings measure_ceilings(cublasHandle_t blas, int reps) {
  Ceilings c;
  const std::size_t bytes = std::size_t(2) << 30;
  void *src = nullptr, *dst = nullptr;
  check(cudaMalloc(&src, bytes), "cudaMalloc");
  check(cudaMalloc(&dst, bytes), "cudaMalloc");
  check(cudaMemset(src, 1, bytes), "cudaMemset");
  const double t_copy = time_device(reps, [&] { check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "copy"); });
  c.bandwidth = 2.0 * double(bytes) / t_copy;
  cudaFree(src);
  cudaFree(dst);

  const int N = 8192;
  std::vector<float> host(std::size_t(N) * N);
  for (std::size_t i = 0; i < host.size(); ++i) host[i] = float((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
  float *a = nullptr, *b = nullptr, *out = nullptr;
  const std::size_t mat = std::size_t(N) * N * sizeof(float);
  check(cudaMalloc(&a, mat), "cudaMalloc");
  check(cudaMalloc(&b, mat), "cudaMalloc");
  check(cudaMalloc(&out, mat), "cudaMalloc");
  check(cudaMemcpy(a, host.data(), mat, cudaMemcpyHostToDevice), "upload");
  check(cudaMemcpy(b, host.data(), mat, cudaMemcpyHostToDevice), "upload");
  const float one = 1, zero = 0;
  const double t_gemm = time_device(reps, [&] {
    check(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, N, N, N, &one, a, N, b, N, &zero, out, N), "sgemm");
  });
  c.sgemm = 2.0 * double(N) * N * N / t_gemm;
  cudaFree(a);
  cudaFree(b);
  cudaFree(out);
  return c;
}

// The bare score GEMM of the pass's shape: S = scale·Q·Kᵀ (m × n, written once).
double time_score_gemm(cublasHandle_t blas, const float* dk, const std::vector<float>& q, std::int64_t n,
                       std::int64_t m, std::int64_t d, int reps) {
  float *dq = nullptr, *ds = nullptr;
  check(cudaMalloc(&dq, q.size() * sizeof(float)), "cudaMalloc");
  check(cudaMalloc(&ds, std::size_t(m) * n * sizeof(float)), "cudaMalloc (m × n scores)");
  check(cudaMemcpy(dq, q.data(), q.size() * sizeof(float), cudaMemcpyHostToDevice), "upload");
  const float scale = float(1 / std::sqrt(double(d))), zero = 0;
  const double t = time_device(reps, [&] {
    check(cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(n), int(m), int(d), &scale, dk, int(d), dq, int(d), &zero, ds,
                      int(n)),
          "sgemm (scores)");
  });
  cudaFree(dq);
  cudaFree(ds);
  return t;
}

void write_raw(const std::string& path, const void* data, std::size_t bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char*>(data), std::streamsize(bytes));
  if (!f) throw Error(ncsparse::kExitCantCreate, "cannot write " + path);
}

int run(int argc, char** argv) {
  bool quick = false, profile = false;
  int reps = 5;
  std::string dump;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--profile") {
      profile = true;
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--dump" && i + 1 < argc) {
      dump = argv[++i];
    } else {
      std::fprintf(stderr, "usage: bench_cuda [--quick] [--profile] [--reps R] [--dump DIR]\n");
      return ncsparse::kExitUsage;
    }
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "bench_cuda: no CUDA device is visible (run it on a GPU machine)\n");
    return ncsparse::kExitUnavailable;
  }
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  std::printf("device: %s, %d SMs, %.1f GiB, L2 %.0f MiB, driver %d, runtime %d\n", prop.name,
              prop.multiProcessorCount, double(prop.totalGlobalMem) / (1 << 30), double(prop.l2CacheSize) / (1 << 20),
              driver, runtime);
  cublasHandle_t blas;
  check(cublasCreate(&blas), "cublasCreate");
  const Ceilings ceil = measure_ceilings(blas, reps);
  std::printf("ceilings: device-to-device copy %.0f GB/s (read + write), cuBLAS sgemm 8192^3 FP32 %.1f TFLOP/s\n",
              ceil.bandwidth * 1e-9, ceil.sgemm * 1e-12);

  const std::int64_t d = 128;
  const std::vector<std::int64_t> ns = quick ? std::vector<std::int64_t>{1 << 16} : std::vector<std::int64_t>{1 << 20, 1 << 22};
  const std::vector<std::int64_t> ms = {64, 1024};
  const std::vector<std::int64_t> Ks = {64, 2048, 16384};
  std::printf("\n%9s %5s %6s %6s | %10s %10s %7s | %10s %10s %7s | %10s %8s\n", "n", "m", "K", "", "topk ms", "floor ms",
              "x floor", "exact ms", "floor ms", "x floor", "gemm ms", "topk/gemm");
  for (const std::int64_t n : ns) {
    ncsparse::ModelParams mp;
    mp.d = d;
    mp.seed = 7;
    const ncsparse::Generator gen(mp);
    std::vector<float> k(std::size_t(n) * d), v(k.size());
    gen.keys_values(0, n, k, v);
    auto backend = ncsparse::make_backend("cuda");
    ncsparse::PassParams p;
    p.d = d;
    p.scale = 1 / std::sqrt(double(d));
    const ncsparse::KeyShard shard{k.data(), v.data(), 0, n};
    backend->load_shard(shard, p);
    float* dk = nullptr;
    check(cudaMalloc(&dk, k.size() * sizeof(float)), "cudaMalloc");
    check(cudaMemcpy(dk, k.data(), k.size() * sizeof(float), cudaMemcpyHostToDevice), "upload");
    if (!dump.empty()) write_raw(dump + "/keys_n" + std::to_string(n) + ".f32", k.data(), k.size() * sizeof(float));
    for (const std::int64_t m : ms) {
      const std::vector<std::int64_t> pos = ncsparse::sample_positions(n, m);
      std::vector<float> q(std::size_t(m) * d);
      gen.queries(pos, q);
      if (!dump.empty()) {
        write_raw(dump + "/queries_n" + std::to_string(n) + "_m" + std::to_string(m) + ".f32", q.data(),
                  q.size() * sizeof(float));
      }
      const double t_gemm = time_score_gemm(blas, dk, q, n, m, d, reps);
      for (const std::int64_t K : Ks) {
        p.list_length = K + 1;
        std::vector<ncsparse::Candidate> lists(std::size_t(m) * (K + 1));
        std::vector<double> flash(std::size_t(m) * ncsparse::flash_row_size(d));
        const ncsparse::QueryBlock block{q.data(), pos.data(), m};
        p.exact = false;
        const double t_topk = time_host(reps, [&] { backend->local_pass(block, shard, p, {lists, {}}); });
        if (!dump.empty()) {
          std::vector<std::int64_t> idx(std::size_t(m) * K);
          for (std::int64_t r = 0; r < m; ++r) {
            for (std::int64_t j = 0; j < K; ++j) idx[r * K + j] = lists[r * (K + 1) + j].index;
          }
          write_raw(dump + "/topk_n" + std::to_string(n) + "_m" + std::to_string(m) + "_K" + std::to_string(K) + ".i64",
                    idx.data(), idx.size() * sizeof(std::int64_t));
        }
        p.exact = true;
        const double t_exact = time_host(reps, [&] { backend->local_pass(block, shard, p, {lists, flash}); });
        if (profile) {  // one more run of each, synchronised per phase: where the time goes
          setenv("NCSPARSE_CUDA_PROFILE", "1", 1);
          p.exact = false;
          backend->local_pass(block, shard, p, {lists, {}});
          p.exact = true;
          backend->local_pass(block, shard, p, {lists, flash});
          unsetenv("NCSPARSE_CUDA_PROFILE");
        }
        const double flops = 2.0 * double(m) * double(n) * double(d), bytes = double(n) * d * 4;
        const double floor_topk = std::max(bytes / ceil.bandwidth, flops / ceil.sgemm);
        const double floor_exact = std::max(2 * bytes / ceil.bandwidth, 2 * flops / ceil.sgemm);
        std::printf("%9lld %5lld %6lld %6s | %10.3f %10.3f %7.2f | %10.3f %10.3f %7.2f | %10.3f %8.2f\n", (long long)n,
                    (long long)m, (long long)K, "", t_topk * 1e3, floor_topk * 1e3, t_topk / floor_topk, t_exact * 1e3,
                    floor_exact * 1e3, t_exact / floor_exact, t_gemm * 1e3, t_topk / t_gemm);
        std::fflush(stdout);
      }
    }
    cudaFree(dk);
  }
  cublasDestroy(blas);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const ncsparse::Error& e) {
    std::fprintf(stderr, "bench_cuda: %s\n", e.what());
    return e.code();
  }
}
