// Generation rate of the issue-16 baseline generator (ae8891f's src/core/generator.cpp,
// compiled beside this file in namespace ncsparse_old by benchmarks/bench_generator.sh) and of
// the current one (the built libraries), in one process, alternating: K and V of ROWS rows,
// d = 64, into buffers already touched; values of K and V per second, median of REPS.
//   driver MODEL THREADS ROWS REPS     MODEL: paper | gaussian
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ncsparse/generator.hpp"
#include "ncsparse/generator_old.hpp"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s paper|gaussian THREADS ROWS REPS\n", argv[0]);
    return 2;
  }
  const bool paper = std::string(argv[1]) == "paper";
  const int threads = std::atoi(argv[2]);
  const std::int64_t rows = std::atoll(argv[3]), d = 64;
  const int reps = std::atoi(argv[4]);
  ncsparse::ModelParams p;
  p.model = paper ? ncsparse::InputModel::Paper : ncsparse::InputModel::Gaussian;
  p.d = d;
  ncsparse_old::ModelParams po;
  po.model = paper ? ncsparse_old::InputModel::Paper : ncsparse_old::InputModel::Gaussian;
  po.d = d;
  ncsparse::Generator now(p);
  now.set_threads(threads);
  const ncsparse_old::Generator old(po);
  std::vector<float> k(static_cast<std::size_t>(rows * d), 1.0f), v(k.size(), 1.0f);
  auto time = [&](auto&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::vector<double> t_old, t_now;
  for (int r = 0; r < reps; ++r) {
    if (threads == 1) t_old.push_back(time([&] { old.keys_values(0, rows, k, v); }));  // the old one has no threads
    t_now.push_back(time([&] { now.keys_values(0, rows, k, v); }));
  }
  auto median = [](std::vector<double> x) {
    std::sort(x.begin(), x.end());
    return x.empty() ? 0.0 : x[x.size() / 2];
  };
  const double values = 2.0 * static_cast<double>(rows * d);
  const double r_now = values / median(t_now) / 1e6;
  std::printf("%s threads %d: new %.0f M values/s", argv[1], threads, r_now);
  if (threads == 1) {
    const double r_old = values / median(t_old) / 1e6;
    std::printf(", old (ae8891f) %.0f M values/s, new/old %.2f", r_old, r_now / r_old);
  }
  std::printf("\n");
  return 0;
}
