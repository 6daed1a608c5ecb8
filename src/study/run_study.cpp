#include "study/run_study.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>

#include "core/stop_signals.hpp"
#include "io/h5_output.hpp"
#include "io/shared_dir.hpp"
#include "ncsparse/backend.hpp"
#include "ncsparse/report.hpp"
#include "ncsparse/source.hpp"
#include "study/records.hpp"
#include "study/study_spec.hpp"

namespace ncsparse::study {
namespace {

// Every rank learns whether any rank was asked to stop.
int agreed_stop(const Comm& comm) { return static_cast<int>(comm.allreduce_max(static_cast<double>(stop_signal()))); }

// Checks the stop flag between query blocks (all ranks, in block order, so the all-reduce is
// matched); the engine agrees on the Error and every rank leaves the job.
class StopSink final : public BlockSink {
 public:
  void write_block(const Comm& comm, const BlockView&) override {
    if (agreed_stop(comm) != 0) throw Error(kExitInterrupted, "interrupted");
  }
};

// collective() for work that rank 0 alone does: the message without the "rank 0: " prefix,
// except for a failed write, whose message always names the rank and the file.
template <class Fn>
void on_rank0(const Comm& comm, Fn&& fn) {
  try {
    io::write_agreed(comm, [&] {
      if (comm.rank() == 0) fn();
    });
  } catch (const Error& e) {
    std::string msg = e.what();
    if (e.code() != kExitIo && msg.rfind("rank 0: ", 0) == 0) msg = msg.substr(8);
    throw Error(e.code(), msg);
  }
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string seconds(double s) {
  char buf[32];
  if (s < 100) {
    std::snprintf(buf, sizeof buf, "%.2f s", s);
  } else if (s < 7200) {
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f h", s / 3600);
  }
  return buf;
}

std::string describe(const Configuration& c) {
  return "n=" + std::to_string(c.job.n) + " d=" + std::to_string(c.job.model.d) + " " + c.model_label +
         " seed=" + std::to_string(c.job.model.seed);
}


void discard_records(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    const auto ends = [&](const std::string& suffix) {
      return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends(".h5") || ends(".h5.tmp")) {
      if (::unlink((dir + "/" + name).c_str()) != 0) {
        ::closedir(d);
        throw Error(kExitIo, dir + "/" + name + ": cannot remove an old record: " + std::strerror(errno));
      }
    }
  }
  ::closedir(d);
  io::fsync_path(dir, true);
}

// Progress on rank 0's stderr: one line per configuration; a bar below it on a terminal.
class Progress {
 public:
  Progress(bool on, std::int64_t total) : on_(on), tty_(on && ::isatty(2)), total_(total) {}
  void line(const std::string& text) {
    if (!on_) return;
    if (tty_ && bar_shown_) std::fputs("\r\033[K", stderr);
    std::fprintf(stderr, "%s\n", text.c_str());
    bar_shown_ = false;
  }
  void bar(std::int64_t done, const std::string& eta) {
    if (!tty_) return;
    const int width = 30;
    const int filled = total_ > 0 ? static_cast<int>(width * done / total_) : width;
    std::string b(static_cast<std::size_t>(filled), '#');
    b += std::string(static_cast<std::size_t>(width - filled), '.');
    std::fprintf(stderr, "\r\033[K[%s] %lld/%lld %s", b.c_str(), static_cast<long long>(done),
                 static_cast<long long>(total_), eta.c_str());
    std::fflush(stderr);
    bar_shown_ = true;
  }
  void end() {
    if (tty_ && bar_shown_) std::fputs("\r\033[K", stderr);
    bar_shown_ = false;
  }

 private:
  bool on_, tty_;
  std::int64_t total_;
  bool bar_shown_ = false;
};

// Every configuration must be valid at this rank count; the message names the configuration.
void validate_all(const Comm& comm, const StudyOptions& o, const std::vector<Configuration>& configs) {
  for (const Configuration& c : configs) {
    try {
      validate(c.job, comm.size());
    } catch (const Error& e) {
      throw Error(e.code(), o.study_file + ": configuration " + describe(c) + ": " + e.what());
    }
  }
}

// Rank 0 alone: creates and locks the records directory, refuses a changed study without
// --restart and an output that is not this study's without --force, then records the study.
// The lock goes to the caller, to be held for the whole run.
// Rank 0, holding the lock: refuses a changed study without --restart and an output that is not
// this study's without --force, then records the study.
void check_records(const StudyOptions& o, const StudySpec& spec, const std::string& hash, const std::string& records) {
  struct stat st {};
  const std::string now_text = canonical_study(spec);
  std::string old_text;
  const bool has_old = read_text(records + "/study.txt", old_text);
  const std::string old_hash = has_old ? hex64(fnv1a(old_text.data(), old_text.size())) : "";
  if (has_old && old_text != now_text) {
    if (!o.restart) {
      throw Error(kExitUsage, o.study_file + " changed since " + records + " was made: " +
                                  describe_changes(old_text, now_text) +
                                  " (rerun with --restart to discard those results, or undo the change)");
    }
  }
  if (::stat(o.out.c_str(), &st) == 0 && !o.force) {
    const std::string h = results_study_hash(o.out);
    const bool ours = !h.empty() && (h == hash || (o.restart && h == old_hash));
    if (!ours) {
      throw Error(kExitCantCreate, o.out + ": exists and holds " +
                                       (h.empty() ? std::string("something other than study results")
                                                  : std::string("another study's results")) +
                                       " (use --force to overwrite it, or choose another --out)");
    }
  }
  if (has_old && old_text != now_text) {
    discard_records(records);
    std::fprintf(stderr, "study: --restart: discarded the records of the changed study in %s\n", records.c_str());
  }
  io::write_file_atomic(records + "/study.txt", now_text);
}

void open_records(const StudyOptions& o, const StudySpec& spec, const std::string& hash, const std::string& records,
                  std::unique_ptr<StudyLock>& lock) {
  struct stat st {};
  const std::string parent = io::dir_of(o.out);
  if (::stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw Error(kExitCantCreate, o.out + ": the directory " + parent + " does not exist (create it first)");
  }
  // The results file is replaced by rename: only a regular file may stand there (not a link, a
  // directory or a device), whatever --force says.
  if (::lstat(o.out.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) io::check_output_target(o.out, true, {});
  const bool made_dir = ::mkdir(records.c_str(), 0755) == 0;
  if (!made_dir && errno != EEXIST) {
    throw Error(kExitCantCreate, records + ": cannot create the records directory: " + std::strerror(errno));
  }
  const std::string lock_path = records + "/lock";
  const bool made_lock = ::access(lock_path.c_str(), F_OK) != 0;
  try {
    lock = std::make_unique<StudyLock>(lock_path);
    check_records(o, spec, hash, records);
  } catch (...) {
    // Refused: what this process made goes again (the lock first, while it still holds it).
    if (made_lock && lock) ::unlink(lock_path.c_str());
    lock.reset();
    if (made_dir) ::rmdir(records.c_str());
    throw;
  }
}

std::string alignment_line(const StudySpec& spec) {
  std::string line = "study: budget alignment over the lengths n: reference " + spec.reference.text + " total k " +
                     std::to_string(spec.reference_total);
  for (const Alignment& a : spec.alignments) {
    line += "; " + a.spec.text + " (alpha " + num_text(a.alpha) + ") total " + std::to_string(a.total);
  }
  return line;
}

std::string record_path(const std::string& records, const Configuration& c) { return records + "/" + c.hash + ".h5"; }

std::vector<std::string> done_paths(const std::string& records, const std::vector<Configuration>& configs,
                                    const std::vector<bool>& done) {
  std::vector<std::string> paths;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    if (done[i]) paths.push_back(record_path(records, configs[i]));
  }
  return paths;
}

// Which configurations are recorded: every rank checks every record; one counts only when
// all ranks found it good.
std::vector<bool> recorded_configs(const Comm& comm, const std::vector<Configuration>& configs,
                                   const std::string& records, const std::string& hash, Progress& progress) {
  std::vector<double> good(configs.size(), 0.0);
  std::vector<std::string> why(configs.size());
  for (std::size_t i = 0; i < configs.size(); ++i) {
    good[i] = record_valid(record_path(records, configs[i]), hash, configs[i].hash, comm.size(), &why[i]) ? 1.0 : 0.0;
  }
  comm.allreduce_sum(good);
  std::vector<bool> done(configs.size());
  for (std::size_t i = 0; i < configs.size(); ++i) {
    done[i] = good[i] == static_cast<double>(comm.size());
    if (!done[i] && why[i] != "missing") {
      progress.line("study: record of " + describe(configs[i]) + " is not usable (" +
                    (why[i].empty() ? std::string("not good on every rank") : why[i]) + "): recomputing it");
    }
  }
  return done;
}

// Cost model for the ETA: time ∝ n·d·queries.
double cost(const Configuration& c) {
  return static_cast<double>(c.job.n) * static_cast<double>(c.job.model.d) * static_cast<double>(c.job.queries);
}

// The counts and times of one run, for the progress lines, the ETA and the summary.
struct Tally {
  std::int64_t total = 0, resumed = 0, recorded = 0, computed = 0;
  double t_start = 0, cost_left = 0, cost_done = 0, t_compute = 0, t_commit = 0;
};

Error interrupted(int sig, const Tally& t, const std::string& out) {
  return Error(kExitInterrupted, std::string("interrupted by ") + stop_signal_name(sig) + ": " + std::to_string(t.recorded) +
                                     " of " + std::to_string(t.total) + " configurations recorded in " + out +
                                     "; rerun the same command to resume");
}

// Runs c's job; a stop agreed on during the job becomes the interrupted message.
JobResult compute(const Comm& comm, const Configuration& c, StopSink& sink, JobWorkspace& workspace,
                  Progress& progress, const Tally& tally, const std::string& out) {
  try {
    return run_job(comm, c.job, nullptr, &sink, &workspace);
  } catch (const Error& e) {
    if (e.code() == kExitInterrupted) {
      progress.end();
      throw interrupted(agreed_stop(comm), tally, out);
    }
    throw Error(e.code(), "configuration " + describe(c) + ": " + e.what());
  }
}

// Rank 0 commits the record; every rank checks the committed record against its own result
// before it counts.
void commit_checked(const Comm& comm, const std::string& records, const std::string& hash, const Configuration& c,
                    const Record& rec) {
  const std::string path = record_path(records, c);
  on_rank0(comm, [&] { commit_record(records, c.hash, rec); });
  try {
    collective(comm, [&] {
      std::string problem;
      if (!record_valid(path, hash, c.hash, comm.size(), &problem)) {
        throw Error(kExitIo, path + ": the record just committed does not read back (" + problem +
                                 "); check the file system");
      }
      if (record_checksum(read_record_file(path), false) != record_checksum(rec, false)) {
        throw Error(kExitIo, path + ": the record's statistics differ from this rank's; check the file system");
      }
    });
  } catch (const Error& e) {
    throw Error(e.code(), e.what());
  }
}

// Counts c's times (computed t0..t1, committed t1..t2) and prints its line and the bar.
void report_configuration(Progress& progress, Tally& t, const Configuration& c, double t0, double t1, double t2) {
  t.t_compute += t1 - t0;
  t.t_commit += t2 - t1;
  t.cost_done += cost(c);
  t.cost_left -= cost(c);
  const double eta = t.cost_done > 0 ? (t.t_compute + t.t_commit) / t.cost_done * std::max(0.0, t.cost_left) : 0;
  char head[48];
  std::snprintf(head, sizeof head, "study: [%*lld/%lld] ", static_cast<int>(std::to_string(t.total).size()),
                static_cast<long long>(t.recorded), static_cast<long long>(t.total));
  progress.line(head + describe(c) + ": " + seconds(t1 - t0) + " + commit " + seconds(t2 - t1) + " | elapsed " +
                seconds(now() - t.t_start) + ", ETA " + seconds(eta));
  progress.bar(t.recorded, "ETA " + seconds(eta));
}

void report_done(Progress& progress, const Tally& t, const std::string& out) {
  char pct[32];
  std::snprintf(pct, sizeof pct, "%.1f%%",
                t.t_compute + t.t_commit > 0 ? 100 * t.t_commit / (t.t_compute + t.t_commit) : 0.0);
  progress.line("study: done: " + std::to_string(t.total) + " configurations (" + std::to_string(t.computed) +
                " computed, " + std::to_string(t.resumed) + " recorded earlier) in " + seconds(now() - t.t_start) +
                "; compute " + seconds(t.t_compute) + ", checkpointing " + seconds(t.t_commit) + " (" + pct +
                "); results in " + out);
}

}  // namespace

int run_study(const Comm& comm, const StudyOptions& o) {
  // SIGINT/SIGTERM from here on (main() installed the handler before MPI_Init) end the study
  // at its next agreement point, resumable.
  const StopPolling stop;
  Tally tally;
  tally.t_start = now();
  // Every rank reads the same file and finds the same errors, before any communication.
  const StudySpec spec = parse_study_file(o.study_file);
  std::vector<Configuration> configs = expand(spec);
  for (Configuration& c : configs) {
    c.job.backend = o.backend;
    c.job.score_precision = o.score_precision;
    if (o.threads > 0) c.job.threads = o.threads;
  }
  const std::string hash = study_hash(spec);
  validate_all(comm, o, configs);
  // The backend must be usable (a GPU for cuda) before any output is created.
  collective(comm, [&] { make_backend(o.backend); });
  const bool root = comm.rank() == 0;
  const std::string records = o.out + ".records";
  tally.total = static_cast<std::int64_t>(configs.size());
  std::unique_ptr<StudyLock> lock;
  // Rank 0 writes the records and every rank reads them back: refused, before the lock or the
  // records directory is made, when the ranks do not share the output's directory.
  io::check_shared_directory(comm, io::dir_of(o.out), o.out);
  on_rank0(comm, [&] { open_records(o, spec, hash, records, lock); });

  Progress progress(root, tally.total);
  if (root && spec.aligned) progress.line(alignment_line(spec));
  std::vector<bool> done = recorded_configs(comm, configs, records, hash, progress);
  tally.resumed = static_cast<std::int64_t>(std::count(done.begin(), done.end(), true));
  on_rank0(comm, [&] { build_results(o.out, spec, hash, tally.total, done_paths(records, configs, done)); });
  if (tally.resumed > 0) {
    progress.line("study: " + std::to_string(tally.resumed) + " of " + std::to_string(tally.total) +
                  " configurations already recorded in " + records + "; resuming");
  }

  for (std::size_t i = 0; i < configs.size(); ++i) {
    if (!done[i]) tally.cost_left += cost(configs[i]);
  }
  tally.recorded = tally.resumed;
  StopSink sink;
  // One shard buffer for every configuration, reserved at the largest this rank will hold:
  // later configurations reuse pages already faulted in instead of allocating their own.
  JobWorkspace workspace;
  std::int64_t most = 0;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    const JobConfig& j = configs[i].job;
    if (done[i] || j.stream) continue;
    const ShardRange r = shard_range(j.n, comm.size(), comm.rank());
    most = std::max(most, (r.hi - r.lo) * j.model.d);
  }
  workspace.reserve(most, 1);
  for (std::size_t i = 0; i < configs.size(); ++i) {
    if (done[i]) continue;
    const Configuration& c = configs[i];
    if (const int sig = agreed_stop(comm)) {
      progress.end();
      throw interrupted(sig, tally, o.out);
    }
    const double t0 = now();
    const JobResult res = compute(comm, c, sink, workspace, progress, tally, o.out);
    const double t1 = now();
    print_warnings(comm.rank(), res, "configuration " + describe(c) + ": ");
    commit_checked(comm, records, hash, c, make_record(c, res, hash));
    done[i] = true;
    ++tally.recorded;
    ++tally.computed;
    on_rank0(comm, [&] { build_results(o.out, spec, hash, tally.total, done_paths(records, configs, done)); });
    report_configuration(progress, tally, c, t0, t1, now());
  }
  progress.end();
  if (root) report_done(progress, tally, o.out);
  return 0;
}

}  // namespace ncsparse::study
