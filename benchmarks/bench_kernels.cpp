// Microbenchmarks of the kernels behind the local pass: the running top-L selection, the merge
// of candidate lists, the CPU backend's local pass with and without the exact state, its bare
// score GEMMs, and the two ceilings of docs/roofline.md (square sgemm, memory copy).
// Run: build/benchmarks/bench_kernels [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <mpi.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/generate.hpp"
#include "cpu/isa.hpp"
#include "cpu/norms.hpp"
#include "ncsparse/backend.hpp"
#include "ncsparse/candidate.hpp"
#include "ncsparse/flash.hpp"
#include "io/dtype.hpp"
#include "ncsparse/generator.hpp"

extern "C" void openblas_set_num_threads(int);

namespace ncsparse {
namespace {

// Keys in increasing index order with Gaussian scores: the threshold filter's usual case.
void BM_TopKRow(benchmark::State& state) {
  const std::int64_t n = 1 << 20;
  const std::size_t keep = static_cast<std::size_t>(state.range(0));
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> scores(static_cast<std::size_t>(n));
  for (float& s : scores) s = normal(rng);
  std::vector<Candidate> out(keep);
  TopKRow row(keep);
  for (auto _ : state) {
    row.reset(keep);
    for (std::int64_t j = 0; j < n; ++j) row.push(scores[static_cast<std::size_t>(j)], j);
    row.finish(out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_TopKRow)->Arg(16)->Arg(256)->Arg(2048)->Arg(16384)->Unit(benchmark::kMillisecond);

void BM_MergeSorted(benchmark::State& state) {
  const std::size_t L = static_cast<std::size_t>(state.range(0));
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  std::vector<Candidate> a(L), b(L), out(L);
  for (std::size_t i = 0; i < L; ++i) a[i] = {normal(rng), static_cast<std::int64_t>(2 * i)};
  for (std::size_t i = 0; i < L; ++i) b[i] = {normal(rng), static_cast<std::int64_t>(2 * i + 1)};
  std::sort(a.begin(), a.end(), before);
  std::sort(b.begin(), b.end(), before);
  for (auto _ : state) {
    merge_sorted(a, b, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(2 * L * sizeof(Candidate)));
}
BENCHMARK(BM_MergeSorted)->Arg(257)->Arg(8193)->Arg(65537);

// One query block against a shard of n keys (paper model), as the engine runs it.
// Args: n, rows, K, exact, d, threads.
void BM_LocalPass(benchmark::State& state) {
  const std::int64_t n = state.range(0), rows = state.range(1), L = state.range(2) + 1, d = state.range(4);
  const bool exact = state.range(3) != 0;
  ModelParams mp;
  mp.d = d;
  const Generator gen(mp);
  std::vector<float> k(static_cast<std::size_t>(n * d)), v(k.size()), q(static_cast<std::size_t>(rows * d));
  gen.keys_values(0, n, k, v);
  const std::vector<std::int64_t> pos = sample_positions(n, rows);
  gen.queries(pos, q);
  PassParams p;
  p.d = d;
  p.scale = 1.0 / std::sqrt(static_cast<double>(d));
  p.list_length = L;
  p.exact = exact;
  p.threads = static_cast<int>(state.range(5));
  std::vector<Candidate> lists(static_cast<std::size_t>(rows * L));
  std::vector<double> flash(exact ? static_cast<std::size_t>(rows) * flash_row_size(d) : 0);
  auto backend = make_backend("cpu");
  const KeyShard shard{k.data(), v.data(), 0, n};
  backend->load_shard(shard, p);
  for (auto _ : state) {
    backend->local_pass(QueryBlock{q.data(), pos.data(), rows}, shard, p, LocalOutput{lists, flash});
    benchmark::DoNotOptimize(lists.data());
  }
  // Flops of the score GEMM (and of P·V with the exact state).
  const double flops = (exact ? 4.0 : 2.0) * static_cast<double>(rows) * static_cast<double>(n) * d;
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LocalPass)
    ->ArgNames({"n", "rows", "K", "exact", "d", "threads"})
    ->Args({1 << 18, 256, 256, 0, 64, 1})
    ->Args({1 << 18, 256, 256, 1, 64, 1})
    ->Args({1 << 18, 256, 2048, 0, 64, 1})
    ->Args({1 << 18, 256, 2048, 1, 64, 1})
    ->Args({1 << 18, 256, 16384, 0, 64, 1})
    ->Args({1 << 18, 256, 65536, 0, 64, 1})
    ->Args({1 << 18, 256, 2048, 0, 128, 1})
    ->Args({1 << 18, 256, 2048, 1, 128, 1})
    ->Args({1 << 18, 256, 2048, 0, 64, 2})
    ->Args({1 << 18, 256, 2048, 1, 64, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// The score GEMMs of the local pass alone (one thread, rows × tile calls with the tile shape
// the CPU backend picks for these rows: 256 KiB of scores, at least 256 keys, at most 2048):
// the bare cost the selection overhead is measured against. Args: n, rows, d.
void BM_ScoreGemm(benchmark::State& state) {
  const std::int64_t n = state.range(0), rows = state.range(1), d = state.range(2);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  std::vector<float> k(static_cast<std::size_t>(n * d)), q(static_cast<std::size_t>(rows * d));
  for (float& x : k) x = normal(rng);
  for (float& x : q) x = normal(rng);
  const std::int64_t T = std::min<std::int64_t>(2048, std::max<std::int64_t>(256, 65536 / rows));
  const std::int64_t RB = std::clamp<std::int64_t>(65536 / T, 1, rows);
  std::vector<float> tile(static_cast<std::size_t>(RB * T));
  openblas_set_num_threads(1);
  for (auto _ : state) {
    for (std::int64_t t0 = 0; t0 < n; t0 += T) {
      for (std::int64_t b0 = 0; b0 < rows; b0 += RB) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(std::min(RB, rows - b0)),
                    static_cast<int>(T), static_cast<int>(d), 0.125f, q.data() + b0 * d, static_cast<int>(d),
                    k.data() + t0 * d, static_cast<int>(d), 0.0f, tile.data(), static_cast<int>(T));
      }
    }
    benchmark::DoNotOptimize(tile.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(rows) * static_cast<double>(n) * d * 1e-9 *
                                                     static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ScoreGemm)->ArgNames({"n", "rows", "d"})->Args({1 << 18, 256, 64})->Args({1 << 18, 256, 128})->Unit(benchmark::kMillisecond);

// Ceiling 1: OpenBLAS sgemm on square matrices, with OpenBLAS's own threads. Args: size, threads.
void BM_SgemmSquare(benchmark::State& state) {
  const std::int64_t N = state.range(0);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  std::vector<float> a(static_cast<std::size_t>(N * N)), b(a.size()), c(a.size());
  for (float& x : a) x = normal(rng);
  for (float& x : b) x = normal(rng);
  openblas_set_num_threads(static_cast<int>(state.range(1)));
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(N), static_cast<int>(N), static_cast<int>(N),
                1.0f, a.data(), static_cast<int>(N), b.data(), static_cast<int>(N), 0.0f, c.data(), static_cast<int>(N));
    benchmark::DoNotOptimize(c.data());
  }
  openblas_set_num_threads(1);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(N) * static_cast<double>(N) *
                                                     static_cast<double>(N) * static_cast<double>(state.iterations()) * 1e-9,
                                                 benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SgemmSquare)->ArgNames({"N", "threads"})->Args({2048, 1})->Args({2048, 2})->UseRealTime()->Unit(benchmark::kMillisecond);

// Ceiling 2: memory bandwidth, a STREAM-like copy of 256 MiB arrays (far beyond the 32 MiB L3),
// split over OpenMP threads. Bytes counted: read + write. Args: threads.
void BM_StreamCopy(benchmark::State& state) {
  const std::size_t count = (std::size_t{256} << 20) / sizeof(float);
  const int threads = static_cast<int>(state.range(0));
  std::vector<float> a(count, 1.0f), b(count, 0.0f);
  for (auto _ : state) {
#pragma omp parallel num_threads(threads)
    {
      const std::size_t t = static_cast<std::size_t>(omp_get_thread_num());
      const std::size_t per = (count + static_cast<std::size_t>(threads) - 1) / static_cast<std::size_t>(threads);
      const std::size_t lo = std::min(count, t * per), hi = std::min(count, lo + per);
      std::memcpy(b.data() + lo, a.data() + lo, (hi - lo) * sizeof(float));
    }
    benchmark::DoNotOptimize(b.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(2 * count * sizeof(float)));
}
BENCHMARK(BM_StreamCopy)->ArgNames({"threads"})->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

// The generator (K and V of 2^18 rows, d = 64) into buffers already touched, so that only the
// generation is timed (not the kernel's zeroing of fresh pages). Args: model (0 paper, 1
// gaussian), threads. Counter: generated values (K and V) per second.
void BM_Generate(benchmark::State& state) {
  ModelParams p;
  p.model = state.range(0) == 0 ? InputModel::Paper : InputModel::Gaussian;
  p.d = 64;
  Generator gen(p);
  gen.set_threads(static_cast<int>(state.range(1)));
  const std::int64_t rows = 1 << 18;
  std::vector<float> k(static_cast<std::size_t>(rows * p.d), 1.0f), v(k.size(), 1.0f);
  for (auto _ : state) {
    gen.keys_values(0, rows, k, v);
    benchmark::DoNotOptimize(k.data());
    benchmark::DoNotOptimize(v.data());
  }
  state.counters["values/s"] = benchmark::Counter(2.0 * static_cast<double>(k.size()) *
                                                      static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Generate)->ArgNames({"gaussian", "threads"})->Args({0, 1})->Args({0, 2})->Args({1, 1})->Args({1, 2})
    ->UseRealTime()->Unit(benchmark::kMillisecond);

// The standard values alone (cpu::standard_rows, one thread, the ISA path this CPU takes; set
// NCSPARSE_CPU_ISA to pick another), 2^18 rows × 64 into a buffer already touched: normal
// against uniform on (−1, 1). A uniform value is one Philox4x32-10 word and a multiply-add, so
// the uniform rate bounds the normal one from above and the gap is the normal transform's cost.
// Arg: 1 uniform, 0 normal. Counter: values per second.
void BM_StandardValues(benchmark::State& state) {
  cpu::StandardRows s;
  s.seed = 1;
  s.tensor = 1;
  s.rows = 1 << 18;
  s.d = 64;
  s.uniform = state.range(0) == 1;
  s.post = cpu::Post::Scale;
  s.b = 0.5f;
  std::vector<float> out(static_cast<std::size_t>(s.rows * s.d), 1.0f);
  for (auto _ : state) {
    cpu::standard_rows(s, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["values/s"] = benchmark::Counter(static_cast<double>(out.size()) * static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_StandardValues)->ArgNames({"uniform"})->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

// Widening float16 / bfloat16 inputs in place, as the reader does after each chunk (2^21
// values, in cache as after a read): values per second. Arg: 0 float16, 1 bfloat16.
void BM_WidenInPlace(benchmark::State& state) {
  const io::Dtype t = state.range(0) == 0 ? io::Dtype::Float16 : io::Dtype::BFloat16;
  const std::size_t n = std::size_t{1} << 21;
  std::vector<float> buf(n);
  std::vector<std::uint16_t> bits(n);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  for (auto& b : bits) b = t == io::Dtype::Float16 ? io::float_to_half(nd(rng)) : io::float_to_bf16(nd(rng));
  for (auto _ : state) {
    state.PauseTiming();
    std::memcpy(reinterpret_cast<std::uint16_t*>(buf.data()) + n, bits.data(), 2 * n);
    state.ResumeTiming();
    io::widen_in_place(t, buf.data(), n);
    benchmark::DoNotOptimize(buf.data());
  }
  state.counters["values/s"] =
      benchmark::Counter(static_cast<double>(n) * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_WidenInPlace)->ArgNames({"bf16"})->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

// The ordered largest row norm (cpu/norms.hpp) of a chunk as generate_with_norms takes it:
// 2048 rows × 64, in cache. Arg: 0 the portable path, 1 AVX2 (skipped without it); values/s.
void BM_RowNorms(benchmark::State& state) {
  const std::int64_t rows = 2048, d = 64;
  if (state.range(0) == 1 && !cpu::use_avx2()) {
    state.SkipWithError("no AVX2 + FMA");
    return;
  }
  std::vector<float> x(static_cast<std::size_t>(rows * d));
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  for (float& v : x) v = nd(rng);
  for (auto _ : state) {
    const double m = state.range(0) == 0 ? cpu::max_row_norm_sq_generic(x.data(), rows, d)
                                         : cpu::avx2::max_row_norm_sq(x.data(), rows, d);
    benchmark::DoNotOptimize(m);
  }
  state.counters["values/s"] = benchmark::Counter(static_cast<double>(rows * d) * static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RowNorms)->ArgNames({"avx2"})->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace ncsparse

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  MPI_Finalize();
  return 0;
}
