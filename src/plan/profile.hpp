// The machine profile of the cost model (docs/scaling.md, "The cost model of `plan`"): the rates
// that `ncsparse calibrate` measures with the engine's own kernels and `ncsparse plan` reads, and
// their JSON form. Every rate is per rank and per thread (a time measured with T threads is
// multiplied by T), so that a plan may use another thread count.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ncsparse::plan {

// One measured value at a head dimension d.
struct PerD {
  std::int64_t d = 0;
  double seconds = 0;
};

// A collective's cost t = alpha + beta·bytes, fitted from `points` (bytes, seconds) at `ranks`.
struct CollectiveFit {
  int ranks = 1;  // 1: not measured (nothing to merge)
  double alpha = 0, beta = 0;
  std::vector<std::pair<double, double>> points;
  double seconds(double bytes) const { return alpha + beta * bytes; }
};

struct Profile {
  bool builtin = false;      // the built-in default, not measured on this machine
  std::string source;        // the file it was read from, or a description of the default
  std::string version;       // ncsparse version that measured it
  std::string date;          // UTC, ISO 8601
  std::string cpu_model;     // lscpu's "Model name" (/proc/cpuinfo)
  std::vector<std::string> cpu_flags;  // the subset that matters: avx2, fma, avx512f
  int cores = 1;             // online cores of the machine
  double memory_bytes = 0;   // MemTotal
  int ranks = 1, threads = 1;
  bool quick = false;
  // The local pass of the CPU backend, seconds per (query row × key) on one thread: the score
  // tile with its top-1 selection (L = 1, no exact pass), and what the exact pass adds.
  std::vector<PerD> score, exact;
  // Selection: seconds per row = selection · L beyond the score tile (the seeded threshold
  // filter keeps the survivors near L, and re-scoring and sorting them costs about the same
  // per list entry at any shard size: 65,536 to 1,048,576 keys measured alike, docs/scaling.md);
  // `selection_points` (L, seconds per row) it was fitted from, at `selection_keys` keys, d = 64.
  double selection = 0;
  std::int64_t selection_keys = 0;
  std::vector<std::pair<double, double>> selection_points;
  double exp_seconds = 0;          // one std::exp in double (the sparse softmax's weights)
  double stats_seconds = 0;        // per list entry, the certificate's walk (per-row statistics)
  double bandwidth = 0;            // bytes/s, copy of a warm buffer (read + write counted)
  double first_touch = 0;          // bytes/s, first write of freshly allocated pages
  double gather_seconds = 0;       // per value, gathering rows of V at random (the sparse softmax)
  std::vector<PerD> gen_paper, gen_gaussian;  // seconds per key row (K and V) on one thread
  double hdf5_read = 0;            // bytes/s, float32 rows of a temporary file
  double startup = 0;              // seconds from the process's start to the command's
  double job_seconds = 0;          // a tiny job end to end: what every job costs beyond its work
  // The rates above are of rank 0 with the node to itself; with all `ranks` ranks computing at
  // once each is this much slower (the local pass; a copy of memory). 1 on one rank.
  double contention_compute = 1, contention_memory = 1;
  double contention_generate = 1;  // the generator's (it meets other ranks unlike the local pass)
  // Other work's runnable threads on the node while calibrating (runnable_threads, less the
  // other ranks), for the record: the rates above are as measured beside it.
  double background = 0;
  CollectiveFit topk, flash;       // Comm::allreduce_topk, Comm::allreduce_flash

  // Seconds of a table at d: linear interpolation between measured d, proportional to d
  // beyond them (the work per key grows with d).
  static double at_d(const std::vector<PerD>& table, std::int64_t d);
};

// The JSON text of a profile (one object; docs/scaling.md names its fields).
std::string to_json(const Profile& p);
// Reads a profile: Error(kExitNoInput) for a missing file, Error(kExitData) naming the file and
// the field for a malformed one or one whose rates are not positive and finite.
Profile load_profile(const std::string& path);
Profile parse_profile(const std::string& text, const std::string& path);
// The built-in default profile, labelled as such (Profile::builtin).
Profile default_profile();

// The machine's description: lscpu's model name and flags subset (from /proc/cpuinfo), online
// cores, MemTotal. Fills those fields of p.
void describe_machine(Profile& p);
// MemAvailable of /proc/meminfo in bytes (0 when unreadable).
double memory_available();
// Runnable threads of the machine other than the caller: procs_running of /proc/stat, sampled
// `samples` times 20 ms apart, averaged, less 1 (the caller). 0 when unreadable.
double runnable_threads(int samples = 25);

}  // namespace ncsparse::plan
