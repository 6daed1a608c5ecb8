// Microbenchmarks of the kernels behind the local pass: the running top-L selection, the merge
// of candidate lists, and the CPU backend's local pass with and without the exact state.
// Run: build/benchmarks/bench_kernels [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <mpi.h>

#include <algorithm>
#include <random>
#include <vector>

#include "ncsparse/backend.hpp"
#include "ncsparse/candidate.hpp"
#include "ncsparse/flash.hpp"
#include "ncsparse/generator.hpp"

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
void BM_LocalPass(benchmark::State& state) {
  const std::int64_t n = state.range(0), rows = state.range(1), L = state.range(2) + 1, d = 64;
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
  p.scale = 0.125;
  p.list_length = L;
  p.exact = exact;
  std::vector<Candidate> lists(static_cast<std::size_t>(rows * L));
  std::vector<double> flash(exact ? static_cast<std::size_t>(rows) * flash_row_size(d) : 0);
  auto backend = make_backend("cpu");
  for (auto _ : state) {
    backend->local_pass(QueryBlock{q.data(), pos.data(), rows}, KeyShard{k.data(), v.data(), 0, n}, p,
                        LocalOutput{lists, flash});
    benchmark::DoNotOptimize(lists.data());
  }
  // Flops of the score GEMM (and of P·V with the exact state).
  const double flops = (exact ? 4.0 : 2.0) * static_cast<double>(rows) * static_cast<double>(n) * d;
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LocalPass)
    ->ArgNames({"n", "rows", "K", "exact"})
    ->Args({1 << 18, 256, 256, 0})
    ->Args({1 << 18, 256, 256, 1})
    ->Args({1 << 18, 256, 2048, 0})
    ->Args({1 << 18, 256, 2048, 1})
    ->Unit(benchmark::kMillisecond);

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
