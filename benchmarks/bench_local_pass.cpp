// Times the CPU local pass on one input, as benchmarks/compare_peers.sh runs it beside its peers.
//
//   bench_local_pass --input F.h5 --m M --k K[,K...] --threads T --mode topk|exact|gemm [--reps R]
//   bench_local_pass --n N --d D ...            (generated paper-model input instead of a file)
//
// Queries are the first M rows of /Q; keys and values all rows of /K and /V (a 2-D file, one
// head). Scale 1/√d, no mask. Modes: `topk` scores and selects a top-K list per row (no exact
// state); `exact` also computes the exact flash state (its list is K long); `gemm` runs only
// the score GEMMs of the pass, tile by tile with the same tile shapes, into a buffer nothing
// reads (the bare GEMM the selection overhead is measured against); `gemm2` the two GEMMs of the
// exact pass (scores, then the score tile times V), same shapes, nothing else; `sgemm` one square 2048³
// cblas_sgemm on OpenBLAS's own T threads (the GEMM ceiling). One line per K:
//   mode=topk d=64 m=256 K=2048 threads=1 reps=5 median_s=… min_s=… gflops=… cpu_s=…
// With --against gemm|gemm2|sgemm (topk or exact mode) each timed run is preceded by that
// reference, and a second line gives its median and the median of the per-run ratios
// pass / reference: ratios from the same seconds, which a busy machine distorts less.
// gflops counts 2·m·n·d flops (4·m·n·d in exact and gemm2 modes, 2·2048³ in sgemm mode). The median is over reps timed runs after
// one untimed warm-up run; cpu_s is the median process CPU time
// (all threads), less sensitive than wall time to other jobs on a shared machine.
#include <cblas.h>
#include <hdf5.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "ncsparse/backend.hpp"
#include "ncsparse/flash.hpp"
#include "ncsparse/generator.hpp"

extern "C" void openblas_set_num_threads(int);

namespace {

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "bench_local_pass: %s\n", what.c_str());
  std::exit(2);
}

// Reads rows [0, rows) (all rows when rows < 0) of a 2-D dataset as float32.
std::vector<float> read_rows(hid_t file, const char* name, std::int64_t rows, std::int64_t& n, std::int64_t& d) {
  const hid_t set = H5Dopen2(file, name, H5P_DEFAULT);
  if (set < 0) fail(std::string("no dataset ") + name);
  const hid_t space = H5Dget_space(set);
  hsize_t dims[2] = {0, 0};
  if (H5Sget_simple_extent_ndims(space) != 2) fail(std::string(name) + ": expected a 2-D (n, d) dataset");
  H5Sget_simple_extent_dims(space, dims, nullptr);
  n = static_cast<std::int64_t>(dims[0]);
  d = static_cast<std::int64_t>(dims[1]);
  const std::int64_t take = rows < 0 ? n : rows;
  if (take > n) fail(std::string(name) + " has fewer rows than asked for");
  hsize_t start[2] = {0, 0}, count[2] = {static_cast<hsize_t>(take), dims[1]};
  H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr);
  const hid_t mem = H5Screate_simple(2, count, nullptr);
  std::vector<float> out(static_cast<std::size_t>(take * d));
  if (H5Dread(set, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, out.data()) < 0) fail(std::string("reading ") + name);
  H5Sclose(mem);
  H5Sclose(space);
  H5Dclose(set);
  return out;
}

std::vector<std::int64_t> parse_list(const std::string& s) {
  std::vector<std::int64_t> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(std::stoll(item));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ncsparse;
  std::string input, mode = "topk", against;
  std::int64_t n = 0, d = 0, m = 256, reps = 5;
  int threads = 1;
  std::vector<std::int64_t> ks = {256};
  for (int a = 1; a < argc; ++a) {
    const std::string opt = argv[a];
    if (a + 1 >= argc) fail("missing value after " + opt);
    const std::string val = argv[++a];
    if (opt == "--input") input = val;
    else if (opt == "--n") n = std::stoll(val);
    else if (opt == "--d") d = std::stoll(val);
    else if (opt == "--m") m = std::stoll(val);
    else if (opt == "--k") ks = parse_list(val);
    else if (opt == "--threads") threads = std::stoi(val);
    else if (opt == "--mode") mode = val;
    else if (opt == "--reps") reps = std::stoll(val);
    else if (opt == "--against") against = val;
    else fail("unknown option " + opt);
  }
  if (mode != "topk" && mode != "exact" && mode != "gemm" && mode != "gemm2" && mode != "sgemm")
    fail("--mode: topk, exact, gemm, gemm2 or sgemm");
  if (reps < 1 || m < 1 || threads < 1) fail("--reps, --m and --threads must be >= 1");
  if (!against.empty() && ((mode != "topk" && mode != "exact") ||
                           (against != "gemm" && against != "gemm2" && against != "sgemm")))
    fail("--against gemm|gemm2|sgemm goes with --mode topk or exact");

  std::vector<float> q, k, v;
  if (!input.empty()) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    const hid_t file = H5Fopen(input.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) fail("cannot open " + input);
    std::int64_t nq, dq, nv, dv;
    k = read_rows(file, "/K", -1, n, d);
    v = read_rows(file, "/V", -1, nv, dv);
    q = read_rows(file, "/Q", m, nq, dq);
    if (nv != n || dv != d || dq != d) fail("Q, K, V shapes do not match");
    H5Fclose(file);
  } else {
    if (n < 1 || d < 1) fail("give --input, or --n and --d");
    ModelParams mp;
    mp.d = d;
    const Generator gen(mp);
    k.resize(static_cast<std::size_t>(n * d));
    v.resize(k.size());
    q.resize(static_cast<std::size_t>(m * d));
    gen.keys_values(0, n, k, v);
    std::vector<std::int64_t> pos(static_cast<std::size_t>(m));
    for (std::int64_t i = 0; i < m; ++i) pos[static_cast<std::size_t>(i)] = i;
    gen.queries(pos, q);
  }
  if (m > n) fail("--m larger than the number of keys");
  std::vector<std::int64_t> positions(static_cast<std::size_t>(m));
  for (std::int64_t i = 0; i < m; ++i) positions[static_cast<std::size_t>(i)] = n - m + i;

  auto backend = make_backend("cpu");
  for (const std::int64_t K : ks) {
    PassParams p;
    p.d = d;
    p.scale = 1.0 / std::sqrt(static_cast<double>(d));
    p.list_length = K;
    p.exact = mode == "exact";
    p.threads = threads;
    const KeyShard shard{k.data(), v.data(), 0, n};
    backend->load_shard(shard, p);
    std::vector<Candidate> lists(static_cast<std::size_t>(m * K));
    std::vector<double> flash(p.exact ? static_cast<std::size_t>(m) * flash_row_size(static_cast<std::size_t>(d)) : 0);

    // Bare score GEMMs: each thread its rows, tiles of the shape the pass uses for them (256 KiB
    // of scores per call, at least 256 keys, at most p.tile keys).
    const std::int64_t per = (m + threads - 1) / threads;
    std::int64_t T = std::min(p.tile, n);
    T = std::min(T, std::max<std::int64_t>(256, 65536 / per));
    const std::int64_t RB = std::clamp<std::int64_t>(65536 / T, 1, per);
    std::vector<std::vector<float>> tiles(static_cast<std::size_t>(threads), std::vector<float>(RB * T));
    std::vector<std::vector<float>> pvs(static_cast<std::size_t>(threads), std::vector<float>(RB * d));
    const bool with_pv = mode == "gemm2" || against == "gemm2";
    auto bare_gemm = [&] {
      openblas_set_num_threads(1);
#pragma omp parallel for num_threads(threads) schedule(static, 1)
      for (int t = 0; t < threads; ++t) {
        const std::int64_t r0 = std::min(m, t * per), r1 = std::min(m, r0 + per);
        for (std::int64_t t0 = 0; t0 < n; t0 += T) {
          const std::int64_t tc = std::min(T, n - t0);
          for (std::int64_t b0 = r0; b0 < r1; b0 += RB) {
            const std::int64_t rb = std::min(RB, r1 - b0);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rb), static_cast<int>(tc),
                        static_cast<int>(d), static_cast<float>(p.scale), q.data() + b0 * d, static_cast<int>(d),
                        k.data() + t0 * d, static_cast<int>(d), 0.0f, tiles[static_cast<std::size_t>(t)].data(),
                        static_cast<int>(tc));
            if (with_pv)
              cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rb), static_cast<int>(d),
                          static_cast<int>(tc), 1.0f, tiles[static_cast<std::size_t>(t)].data(), static_cast<int>(tc),
                          v.data() + t0 * d, static_cast<int>(d), 0.0f, pvs[static_cast<std::size_t>(t)].data(),
                          static_cast<int>(d));
          }
        }
      }
    };
    // The ceiling: one square sgemm of size 2048 on OpenBLAS's own `threads` threads.
    const int S = 2048;
    std::vector<float> sa(mode == "sgemm" || against == "sgemm" ? S * S : 0, 0.5f), sb(sa.size(), 0.25f),
        sc(sa.size());
    auto square = [&] {
      openblas_set_num_threads(threads);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, S, S, S, 1.0f, sa.data(), S, sb.data(), S, 0.0f,
                  sc.data(), S);
      openblas_set_num_threads(1);
    };
    auto once = [&] {
      if (mode == "sgemm") {
        square();
      } else if (mode == "gemm" || mode == "gemm2") {
        bare_gemm();
      } else {
        backend->local_pass(QueryBlock{q.data(), positions.data(), m}, shard, p, LocalOutput{lists, flash});
      }
    };
    // --against: the reference right before each timed run, for a ratio from the same seconds.
    auto reference = [&] {
      if (against == "sgemm") {
        square();
      } else {
        bare_gemm();
      }
    };
    once();  // warm-up: page faults, scratch allocation
    if (!against.empty()) reference();
    std::vector<double> secs, cpu, ref, ratio;
    for (std::int64_t r = 0; r < reps; ++r) {
      if (!against.empty()) {
        const auto t0 = std::chrono::steady_clock::now();
        reference();
        ref.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      const std::clock_t c0 = std::clock();
      const auto t0 = std::chrono::steady_clock::now();
      once();
      secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      cpu.push_back(static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC);
      if (!against.empty()) ratio.push_back(secs.back() / ref.back());
    }
    auto median_of = [](std::vector<double> x) {
      std::sort(x.begin(), x.end());
      return x.size() % 2 ? x[x.size() / 2] : 0.5 * (x[x.size() / 2 - 1] + x[x.size() / 2]);
    };
    std::sort(secs.begin(), secs.end());
    std::sort(cpu.begin(), cpu.end());
    const double median = secs.size() % 2 ? secs[secs.size() / 2]
                                          : 0.5 * (secs[secs.size() / 2 - 1] + secs[secs.size() / 2]);
    const double flops = mode == "sgemm" ? 2.0 * S * S * S
                                         : (p.exact || with_pv ? 4.0 : 2.0) * static_cast<double>(m) * static_cast<double>(n) *
                                               static_cast<double>(d);
    std::printf(
        "mode=%s d=%lld m=%lld n=%lld K=%lld threads=%d reps=%lld median_s=%.4f min_s=%.4f gflops=%.2f cpu_s=%.4f\n",
        mode.c_str(), static_cast<long long>(d), static_cast<long long>(m), static_cast<long long>(n),
        static_cast<long long>(K), threads, static_cast<long long>(reps), median, secs.front(), flops / median * 1e-9,
        cpu[cpu.size() / 2]);
    if (!against.empty()) {
      std::printf("  against=%s ref_median_s=%.4f ratio_median=%.3f\n", against.c_str(), median_of(ref),
                  median_of(ratio));
    }
    std::fflush(stdout);
  }
  return 0;
}
