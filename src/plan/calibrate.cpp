// The probes of ncsparse calibrate. Each runs on every rank at once, between two barriers, and
// keeps the slowest rank's time (a job's phase is the slowest rank's): what ranks sharing a
// node's cores and memory see together is what the job will see.
#include "plan/calibrate.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <vector>

#include "app/generate.hpp"
#include "core/host_buffer.hpp"
#include "io/atomic_file.hpp"
#include "io/h5_source.hpp"
#include "ncsparse/backend.hpp"
#include "ncsparse/candidate.hpp"
#include "ncsparse/engine.hpp"
#include "ncsparse/flash.hpp"
#include "ncsparse/generator.hpp"
#include "ncsparse/window.hpp"

namespace ncsparse::plan {
namespace {

double now() { return MPI_Wtime(); }

// Whether the compute probes run on rank 0 alone (the others wait): the rates of a rank with
// the node to itself. The contention probe then runs them on every rank at once.
bool solo = false;

// Waits for every rank without polling a core: OpenMPI's blocking collectives spin, and a
// spinning rank slows rank 0's solo probe wherever two cores share a physical one.
void quiet_barrier(const Comm& comm) {
  MPI_Request request;
  NCSPARSE_MPI(MPI_Ibarrier(comm.get(), &request));
  int done = 0;
  while (true) {
    NCSPARSE_MPI(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
    if (done) break;
    usleep(500);
  }
}

// The slowest rank's seconds of fn, all ranks starting together (rank 0 alone when solo, the
// others asleep meanwhile).
template <class Fn>
double timed(const Comm& comm, Fn&& fn) {
  NCSPARSE_MPI(MPI_Barrier(comm.get()));
  const double t0 = now();
  if (!solo || comm.rank() == 0) fn();
  const double t = now() - t0;
  if (solo) quiet_barrier(comm);
  return comm.allreduce_max(t);
}

// The smallest of `reps` slowest-rank times: the probe's rate with the least interference.
template <class Fn>
double best_of(const Comm& comm, int reps, Fn&& fn) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) best = std::min(best, timed(comm, fn));
  return best;
}

// The median of `reps` slowest-rank times (the collectives: what a job meets, not the best).
template <class Fn>
double median_of(const Comm& comm, int reps, Fn&& fn) {
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) t.push_back(timed(comm, fn));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

ModelParams model_of(InputModel model, std::int64_t d) {
  ModelParams p;  // the run command's defaults
  p.model = model;
  p.d = d;
  return p;
}

struct Sizes {
  std::int64_t keys, rows;  // the local-pass probe's shard and query block
  int reps;
  std::vector<std::int64_t> dims, lists;
  std::int64_t gen_rows;
  std::size_t mem_bytes;
  std::int64_t exp_count;
  std::int64_t h5_rows;
  std::vector<std::int64_t> topk_lists, flash_rows;
  int comm_reps;
  std::int64_t quick_list;  // the statistics probe's list length
};

Sizes sizes_for(bool quick) {
  if (quick) return {1 << 12, 64, 1, {32, 64, 128}, {65, 513}, 1 << 11, 8u << 20, 1 << 20, 1 << 14, {17, 257}, {32, 256}, 3, 1025};
  return {1 << 16, 256, 2, {32, 64, 128}, {257, 2049, 8193}, 1 << 15, 128u << 20, 1 << 23, 1 << 19,
          {17, 257, 2049, 8193}, {32, 256, 2048}, 7, 8193};
}

// The CPU backend's local pass over `keys` generated keys for a block of `rows` queries: the
// slowest rank's seconds, best of reps.
class PassProbe {
 public:
  PassProbe(const Comm& comm, std::int64_t d, std::int64_t keys, std::int64_t rows, int threads)
      : comm_(comm), d_(d), keys_(keys), rows_(rows), threads_(threads) {
    Generator gen(model_of(InputModel::Paper, d));
    gen.set_threads(threads);
    k_.resize(static_cast<std::size_t>(keys * d));
    v_.resize(k_.size());
    gen.keys_values(0, keys, k_, v_);
    pos_ = sample_positions(keys, rows);
    q_.resize(static_cast<std::size_t>(rows * d));
    gen.queries(pos_, q_);
    backend_ = make_backend("cpu");
  }
  double seconds(std::int64_t L, bool exact, int reps) {
    const PassParams pass{d_, 1.0 / std::sqrt(static_cast<double>(d_)), false, L, exact, JobConfig{}.tile, 0, threads_};
    const KeyShard shard{k_.data(), v_.data(), 0, keys_};
    backend_->load_shard(shard, pass);
    std::vector<Candidate> lists(static_cast<std::size_t>(rows_ * L));
    std::vector<double> flash(exact ? static_cast<std::size_t>(rows_) * flash_row_size(static_cast<std::size_t>(d_)) : 0);
    auto run = [&] {
      std::fill(lists.begin(), lists.end(), kEmptyCandidate);
      std::fill(flash.begin(), flash.end(), 0.0);
      backend_->local_pass(QueryBlock{q_.data(), pos_.data(), rows_}, shard, pass, LocalOutput{lists, flash});
    };
    run();  // warm: the backend's buffers, the shard in cache as far as it fits
    return best_of(comm_, reps, run);
  }

 private:
  const Comm& comm_;
  std::int64_t d_, keys_, rows_;
  int threads_;
  std::vector<float> k_, v_, q_;
  std::vector<std::int64_t> pos_;
  std::unique_ptr<Backend> backend_;
};

void probe_local_pass(const Comm& comm, const Sizes& s, int threads, Profile& p) {
  const double per = static_cast<double>(threads) / static_cast<double>(s.keys * s.rows);
  for (std::int64_t d : s.dims) {
    PassProbe probe(comm, d, s.keys, s.rows, threads);
    const double plain = probe.seconds(1, false, s.reps);
    const double exact = probe.seconds(1, true, s.reps);
    p.score.push_back({d, plain * per});
    p.exact.push_back({d, std::max(exact - plain, 0.01 * plain) * per});
    if (d != 64) continue;
    // Selection beyond the score tile, per list entry (profile.hpp).
    double xy = 0, xx = 0;
    p.selection_keys = s.keys;
    for (std::int64_t L : s.lists) {
      const double extra = std::max(probe.seconds(L, false, s.reps) - plain, 0.0) * threads / static_cast<double>(s.rows);
      const double x = static_cast<double>(L);
      p.selection_points.emplace_back(static_cast<double>(L), extra);
      xy += x * extra;
      xx += x * x;
    }
    p.selection = std::max(xy / xx, 1e-12);
  }
}

void probe_memory(const Comm& comm, const Sizes& s, Profile& p) {
  const std::size_t count = s.mem_bytes / sizeof(float);
  // First touch: the kernel zeroes each fresh page on its first write (the shard's allocation),
  // best of two fresh buffers.
  double touch = 1e300;
  for (int r = 0; r < 2; ++r) {
    HostBuffer<float> fresh;
    touch = std::min(touch, timed(comm, [&] {
      fresh.resize(count);
      std::memset(fresh.data(), 1, count * sizeof(float));
    }));
  }
  HostBuffer<float> a(count), b;
  std::memset(a.data(), 1, count * sizeof(float));
  b.resize(count);
  std::memset(b.data(), 2, count * sizeof(float));
  p.first_touch = static_cast<double>(s.mem_bytes) / touch;
  const double copy = best_of(comm, 3, [&] { std::memcpy(b.data(), a.data(), count * sizeof(float)); });
  p.bandwidth = 2.0 * static_cast<double>(s.mem_bytes) / copy;
  // Rows of V gathered at random into one running sum of doubles, in the form of the prefix
  // stage's loop (stage_prefix.cpp, gather_row): rows prefetched 12 ahead, one fetch and one
  // weighted add per row. Each repetition fetches rows of its own: a set fetched again would be
  // in the last-level cache by then, which a job's (rows × k_max, millions) are not. Seconds per
  // value fetched.
  const std::int64_t d = 64, rows = static_cast<std::int64_t>(count) / d;
  constexpr int kReps = 3;
  const std::int64_t gathers = std::min<std::int64_t>(rows, 1 << 15);
  std::vector<Candidate> list(static_cast<std::size_t>(kReps * gathers));
  std::uint64_t x = 88172645463325252ull + static_cast<std::uint64_t>(comm.rank());
  for (Candidate& c : list) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    c = {1.0f, static_cast<std::int64_t>(x % static_cast<std::uint64_t>(rows))};
  }
  std::vector<double> weights(static_cast<std::size_t>(gathers), 0.5), sum(static_cast<std::size_t>(d), 0.0);
  const float* v = a.data();
  constexpr std::int64_t kAhead = 12;
  int rep = 0;
  const double gather = best_of(comm, kReps, [&] {
    const Candidate* l = list.data() + static_cast<std::ptrdiff_t>((rep++ % kReps) * gathers);
    auto owned_row = [&](std::int64_t j) -> const float* {
      const std::int64_t idx = l[j].index;
      return idx >= 0 && idx < rows ? v + idx * d : nullptr;
    };
    for (std::int64_t j = 0; j < gathers; ++j) {
      if (j + kAhead < gathers) {
        if (const float* r = owned_row(j + kAhead)) {
          for (std::int64_t c = 0; c < d; c += 16) __builtin_prefetch(r + c);
        }
      }
      const float* vr = owned_row(j);
      if (vr == nullptr) continue;
      const double w = weights[static_cast<std::size_t>(j)];
      for (std::int64_t c = 0; c < d; ++c) sum[static_cast<std::size_t>(c)] += w * static_cast<double>(vr[c]);
    }
  });
  p.gather_seconds = gather / static_cast<double>(gathers * d) + (sum[0] == 12345 ? 1e-30 : 0);
}

// The per-row statistics' walk over a list: the certificate's bounds (window.hpp), per entry.
void probe_statistics(const Comm& comm, const Sizes& s, Profile& p) {
  const std::int64_t L = s.quick_list;
  std::vector<Candidate> list(static_cast<std::size_t>(L));
  for (std::int64_t j = 0; j < L; ++j) list[static_cast<std::size_t>(j)] = {static_cast<float>(10.0 - 1e-3 * j), j};
  std::vector<double> bound(list.size());
  const int rows = 64;
  const double t = best_of(comm, 2, [&] {
    for (int r = 0; r < rows; ++r) certificate_mass_bounds(list, L * 128, bound);
  });
  p.stats_seconds = t / static_cast<double>(rows * L) + (bound[0] == 12345 ? 1e-30 : 0);
}

// Every rank at once against rank 0 alone: the local pass (d = 64, exact), the generator
// (paper model, d = 64: it met the other rank on one VM far less than the local pass did) and
// a copy of a buffer larger than the caches. Ratios >= 1.
void probe_contention(const Comm& comm, const Sizes& s, int threads, Profile& p) {
  p.contention_compute = p.contention_memory = p.contention_generate = 1;
  if (comm.size() == 1) return;
  PassProbe probe(comm, 64, s.keys, s.rows, threads);
  const std::size_t count = s.mem_bytes / sizeof(float);
  HostBuffer<float> a(count), b(count);
  std::memset(a.data(), 1, count * sizeof(float));
  std::memset(b.data(), 2, count * sizeof(float));
  auto copy = [&] { std::memcpy(b.data(), a.data(), count * sizeof(float)); };
  Generator gen(model_of(InputModel::Paper, 64));
  gen.set_threads(threads);
  std::vector<float> gk(static_cast<std::size_t>(s.gen_rows * 64)), gv(gk.size());
  const std::int64_t first = static_cast<std::int64_t>(comm.rank()) * s.gen_rows;
  auto generate = [&] { gen.keys_values(first, s.gen_rows, gk, gv); };
  double pass[2] = {1e300, 1e300}, mem[2] = {1e300, 1e300}, made[2] = {1e300, 1e300};
  for (int round = 0; round < 2; ++round) {  // interleaved: a change of load falls on both
    for (int all = 0; all < 2; ++all) {
      solo = all == 0;
      pass[all] = std::min(pass[all], probe.seconds(1, true, s.reps));
      mem[all] = std::min(mem[all], best_of(comm, 3, copy));
      made[all] = std::min(made[all], best_of(comm, 3, generate));
    }
  }
  p.contention_compute = std::max(1.0, pass[1] / pass[0]);
  p.contention_memory = std::max(1.0, mem[1] / mem[0]);
  p.contention_generate = std::max(1.0, made[1] / made[0]);
}

// What a job costs whatever its size: a tiny job of the engine (1,024 keys, 16 queries,
// const:1) end to end, best of three: validation, the backend and stages set up, one block,
// the reductions of the statistics and phase times.
void probe_job(const Comm& comm, int threads, Profile& p) {
  JobConfig job;
  job.n = 1024;
  job.queries = 16;
  job.block = 16;
  job.threads = threads;
  job.windows = {parse_window("const:1")};
  run_job(comm, job);  // warm
  double best = 1e300;
  for (int r = 0; r < 3; ++r) best = std::min(best, timed(comm, [&] { run_job(comm, job); }));
  p.job_seconds = best;
}

void probe_exp(const Comm& comm, const Sizes& s, Profile& p) {
  std::vector<double> xs(4096);
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = -static_cast<double>(i) * 1e-3;
  double sum = 0;
  const std::int64_t rounds = std::max<std::int64_t>(1, s.exp_count / static_cast<std::int64_t>(xs.size()));
  const double t = best_of(comm, 2, [&] {
    for (std::int64_t r = 0; r < rounds; ++r) {
      for (double x : xs) sum += std::exp(x);
    }
  });
  p.exp_seconds = t / static_cast<double>(rounds * static_cast<std::int64_t>(xs.size())) + (sum == 0.5 ? 1e-30 : 0);
}

void probe_generator(const Comm& comm, const Sizes& s, int threads, Profile& p) {
  for (InputModel model : {InputModel::Paper, InputModel::Gaussian}) {
    for (std::int64_t d : s.dims) {
      Generator gen(model_of(model, d));
      gen.set_threads(threads);
      std::vector<float> k(static_cast<std::size_t>(s.gen_rows * d)), v(k.size());
      const std::int64_t first = static_cast<std::int64_t>(comm.rank()) * s.gen_rows;
      const double t = best_of(comm, s.reps, [&] { gen.keys_values(first, s.gen_rows, k, v); });
      (model == InputModel::Paper ? p.gen_paper : p.gen_gaussian)
          .push_back({d, t * threads / static_cast<double>(s.gen_rows)});
    }
  }
}

// Writes a temporary file with the engine's HDF5 writer (generate) and reads every rank's rows
// back through the HDF5 input's row reads: float32 rows, as `run --input` reads them (the page
// cache is warm: the file was just written).
void probe_hdf5(const Comm& comm, const Sizes& s, const std::string& tmpdir, Profile& p) {
  app::GenerateConfig g;
  g.n = s.h5_rows * comm.size();
  g.model = model_of(InputModel::Gaussian, 64);
  g.out = (tmpdir.empty() ? std::string(".") : tmpdir) + "/.ncsparse-calibrate-" + std::to_string(getpid()) + ".h5";
  if (comm.size() > 1) {  // every rank names the file of rank 0
    long long pid = getpid();
    NCSPARSE_MPI(MPI_Bcast(&pid, 1, MPI_LONG_LONG, 0, comm.get()));
    g.out = (tmpdir.empty() ? std::string(".") : tmpdir) + "/.ncsparse-calibrate-" + std::to_string(pid) + ".h5";
  }
  g.force = true;
  struct Remove {
    const Comm& comm;
    std::string path;
    ~Remove() {
      MPI_Barrier(comm.get());
      if (comm.rank() == 0) std::remove(path.c_str());
    }
  } remove{comm, g.out};
  app::generate_file(comm, g);
  std::unique_ptr<io::H5Input> in;
  collective(comm, [&] { in = std::make_unique<io::H5Input>(comm, g.out); });
  std::unique_ptr<InputSource> src = in->head(0, 0);
  const ShardRange r = shard_range(g.n, comm.size(), comm.rank());
  std::vector<float> k(static_cast<std::size_t>((r.hi - r.lo) * 64)), v(k.size());
  double t = 0;
  collective(comm, [&] { t = best_of(comm, s.reps, [&] { src->keys_values(r.lo, r.hi - r.lo, k, v); }); });
  p.hdf5_read = 2.0 * static_cast<double>(k.size() * sizeof(float)) / t;
}

// Sorted, distinct lists for rows × L, different on every rank (the merge does real work).
std::vector<Candidate> make_lists(std::int64_t rows, std::int64_t L, int rank, int ranks) {
  std::vector<Candidate> out(static_cast<std::size_t>(rows * L));
  for (std::int64_t i = 0; i < rows; ++i) {
    for (std::int64_t j = 0; j < L; ++j) {
      const std::int64_t index = j * ranks + rank;
      out[static_cast<std::size_t>(i * L + j)] = {static_cast<float>(1000.0 - 0.001 * static_cast<double>(index)), index};
    }
  }
  return out;
}

void probe_collectives(const Comm& comm, const Sizes& s, Profile& p) {
  p.topk = CollectiveFit{};
  p.flash = CollectiveFit{};
  p.topk.ranks = p.flash.ranks = comm.size();
  if (comm.size() == 1) return;  // nothing to merge: the job's merge costs nothing on one rank
  const std::int64_t rows = 256;
  for (std::int64_t L : s.topk_lists) {
    const std::vector<Candidate> mine = make_lists(rows, L, comm.rank(), comm.size());
    std::vector<Candidate> lists(mine.size());
    lists = mine;
    comm.allreduce_topk(lists, L);  // warm: the datatype, the op, the transport's buffers
    const double t = median_of(comm, s.comm_reps, [&] {
      std::copy(mine.begin(), mine.end(), lists.begin());
      comm.allreduce_topk(lists, L);
    });
    p.topk.points.emplace_back(static_cast<double>(mine.size() * sizeof(Candidate)), t);
  }
  const std::size_t d = 64, frow = flash_row_size(d);
  for (std::int64_t r : s.flash_rows) {
    std::vector<double> mine(static_cast<std::size_t>(r) * frow), states(mine.size());
    for (std::size_t i = 0; i < static_cast<std::size_t>(r); ++i) {
      double* row = mine.data() + i * frow;
      row[0] = 1.0 + 0.1 * comm.rank();
      row[1] = 2.0;
      row[2] = 1.5;
      for (std::size_t c = 0; c < d; ++c) row[kFlashHeader + c] = 0.01 * static_cast<double>(c);
    }
    states = mine;
    comm.allreduce_flash(states, static_cast<std::int64_t>(d));
    const double t = median_of(comm, s.comm_reps, [&] {
      std::copy(mine.begin(), mine.end(), states.begin());
      comm.allreduce_flash(states, static_cast<std::int64_t>(d));
    });
    p.flash.points.emplace_back(static_cast<double>(mine.size() * sizeof(double)), t);
  }
  fit_collective(p.topk);
  fit_collective(p.flash);
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

void fit_collective(CollectiveFit& f) {
  const double n = static_cast<double>(f.points.size());
  if (n == 0) return;
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const auto& [x, y] : f.points) sx += x, sy += y, sxx += x * x, sxy += x * y;
  const double det = n * sxx - sx * sx;
  f.beta = det > 0 ? (n * sxy - sx * sy) / det : 0;
  f.alpha = (sy - f.beta * sx) / n;
  if (f.beta < 0) {  // no growth with size visible: latency only
    f.beta = 0;
    f.alpha = sy / n;
  }
  if (f.alpha < 0) {  // through the origin
    f.alpha = 0;
    f.beta = sxx > 0 ? sxy / sxx : 0;
  }
}

Profile calibrate(const Comm& comm, const CalibrateConfig& c) {
  const Sizes s = sizes_for(c.quick);
  Profile p;
  describe_machine(p);
  p.version = NCSPARSE_VERSION;
  p.date = utc_now();
  p.ranks = comm.size();
  p.threads = c.threads;
  p.quick = c.quick;
  p.startup = c.startup;
  // Other work on the node: sampled by rank 0 while the other ranks wait in a collective
  // (OpenMPI polls: runnable), so they are not counted.
  if (comm.rank() == 0) p.background = std::max(0.0, runnable_threads() - (comm.size() - 1));
  NCSPARSE_MPI(MPI_Bcast(&p.background, 1, MPI_DOUBLE, 0, comm.get()));
  solo = true;  // the rates of one rank with the node to itself
  collective(comm, [&] { probe_memory(comm, s, p); });
  collective(comm, [&] { probe_exp(comm, s, p); });
  collective(comm, [&] { probe_statistics(comm, s, p); });
  collective(comm, [&] { probe_generator(comm, s, c.threads, p); });
  collective(comm, [&] { probe_local_pass(comm, s, c.threads, p); });
  collective(comm, [&] { probe_contention(comm, s, c.threads, p); });
  solo = false;
  probe_job(comm, c.threads, p);
  probe_hdf5(comm, s, c.tmpdir, p);
  probe_collectives(comm, s, p);
  return p;
}

}  // namespace ncsparse::plan
