// The candidate-list merge on its own: Comm::allreduce_topk with each MPI algorithm (TopkMerge)
// on synthetic sorted lists of m rows × (K + 1) candidates per rank, timed as the slowest rank's
// time of each repetition (so collectives never drift apart), median and minimum over the
// repetitions. Every algorithm's lists are compared, bit for bit, with the all-reduce's.
// Usage: mpirun -n P bench_merge [--m M,...] [--K K,...] [--reps R] [--algos a,b,...]
// Prints one line per (m, K, algorithm) from rank 0; benchmarks/bench_merge.sh runs the table.
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "ncsparse/comm.hpp"

namespace {

using ncsparse::Candidate;
using ncsparse::TopkMerge;

std::vector<long> parse_list(const std::string& s) {
  std::vector<long> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(std::stol(item));
  return out;
}

// Rank `rank`'s lists: its keys are the global indices ≡ rank (mod P), as if the shards were
// interleaved; scores are random with some ties (a coarse grid), each row sorted and full.
void make_lists(std::vector<Candidate>& lists, long m, long L, int rank, int size) {
  std::mt19937_64 rng(0x5eed + 7919 * static_cast<unsigned>(rank));
  std::uniform_int_distribution<int> grid(0, 1 << 20);
  lists.resize(static_cast<std::size_t>(m * L));
  for (long r = 0; r < m; ++r) {
    Candidate* row = lists.data() + r * L;
    for (long j = 0; j < L; ++j) row[j] = Candidate{static_cast<float>(grid(rng)) / 1024.0f, rank + size * j};
    std::sort(row, row + L, ncsparse::before);
  }
}

bool same(const std::vector<Candidate>& a, const std::vector<Candidate>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].index != b[i].index || a[i].score != b[i].score) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  std::vector<long> ms{256}, Ks{256, 1024, 4096, 16384};
  int reps = 7;
  std::vector<std::string> names{"allreduce", "tree", "allgather", "rowowner"};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--m") {
      ms = parse_list(value);
    } else if (flag == "--K") {
      Ks = parse_list(value);
    } else if (flag == "--reps") {
      reps = std::atoi(value.c_str());
    } else if (flag == "--algos") {
      names.clear();
      std::stringstream in(value);
      std::string item;
      while (std::getline(in, item, ',')) names.push_back(item);
    }
  }
  const ncsparse::Comm comm(MPI_COMM_WORLD);
  const int P = comm.size();
  if (comm.rank() == 0)
    std::printf("%-3s %6s %6s %12s %-10s %10s %10s %s\n", "P", "m", "K", "bytes/rank", "algorithm", "median_ms",
                "min_ms", "same_lists");
  for (long m : ms) {
    for (long K : Ks) {
      const long L = K + 1;
      std::vector<Candidate> input, reference, buf;
      make_lists(input, m, L, comm.rank(), P);
      reference = input;
      comm.allreduce_topk(reference, L, TopkMerge::kAllreduce);
      for (const std::string& name : names) {
        const TopkMerge algo = name == "tree"        ? TopkMerge::kTree
                               : name == "allgather" ? TopkMerge::kAllgather
                               : name == "rowowner"  ? TopkMerge::kRowOwner
                                                     : TopkMerge::kAllreduce;
        std::vector<double> times;
        for (int rep = 0; rep <= reps; ++rep) {  // repetition 0 warms up
          buf = input;
          MPI_Barrier(MPI_COMM_WORLD);
          const double t0 = MPI_Wtime();
          comm.allreduce_topk(buf, L, algo);
          double t = MPI_Wtime() - t0;
          MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
          if (rep > 0) times.push_back(t);
        }
        int ok = same(buf, reference) ? 1 : 0;
        MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        std::sort(times.begin(), times.end());
        if (comm.rank() == 0) {
          std::printf("%-3d %6ld %6ld %12zu %-10s %10.3f %10.3f %s\n", P, m, K, input.size() * sizeof(Candidate),
                      ncsparse::to_string(algo), 1e3 * times[times.size() / 2], 1e3 * times.front(), ok ? "yes" : "NO");
          std::fflush(stdout);
        }
      }
    }
  }
  MPI_Finalize();
  return 0;
}
