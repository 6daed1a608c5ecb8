// Records of a study (DESIGN.md §8, §9): one self-contained HDF5 file per configuration,
// committed atomically (io::AtomicFile: temporary name, fsync, rename, fsync of the directory) and carrying
// the study hash and a checksum of its content; the combined results file rebuilt from them
// the same way; the lock that keeps two jobs out of one study. Serial HDF5, one process.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/atomic_file.hpp"
#include "io/h5.hpp"
#include "ncsparse/engine.hpp"
#include "study/study_spec.hpp"

namespace ncsparse::study {

inline constexpr const char* kFormat = "ncsparse-study-1";

// Every record holds per strategy stat_<name> (strategies × the aggregates) for each statistic
// of row_statistics(), and one array per column of strategy_columns() (schema.hpp).

// A record in memory: attributes and datasets of doubles, by name (sorted, so the checksum
// does not depend on the order HDF5 lists them in).
struct Record {
  std::map<std::string, std::string> text;
  std::map<std::string, double> num;
  std::map<std::string, std::int64_t> ints;
  struct Array {
    std::vector<hsize_t> dims;
    std::vector<double> values;
  };
  std::map<std::string, Array> arrays;
};

// Checksum of a record's content, all but its "checksum" attribute; with_times = false also
// leaves out the phase times (which are not reproducible).
std::string record_checksum(const Record& r, bool with_times = true);

// The record of one configuration's result (without the checksum attribute).
Record make_record(const Configuration& c, const JobResult& result, const std::string& study_hash);

// Writes the record as RECORDS_DIR/HASH.h5 atomically, with its checksum. Rank 0 only.
void commit_record(const std::string& dir, const std::string& hash, Record record);
// Reads a record file's group "/record". Throws Error(kExitData) when unreadable.
Record read_record_file(const std::string& path);
Record read_record_group(hid_t group);
// The record at path is complete and is the one of (study, config) computed on `ranks` ranks:
// file readable, hashes match, rank count matches, checksum matches. Never throws; `why` says
// what is wrong. The rank count is part of a record's identity because the exact pass's
// floats (and the statistics made from them) differ in their last bits between rank counts:
// a study resumed on another count recomputes, so its results never mix counts.
bool record_valid(const std::string& path, const std::string& study, const std::string& config, int ranks,
                  std::string* why);

// Rebuilds the combined results file atomically from the given record files (in study
// order). Rank 0 only.
void build_results(const std::string& out, const StudySpec& spec, const std::string& study_hash,
                   std::int64_t configurations, const std::vector<std::string>& record_paths);

// The study hash a results file carries, or "" when it is not a readable study results file.
std::string results_study_hash(const std::string& path);

// Reads a whole file; false when it cannot be opened. (Writes go through io/atomic_file.hpp.)
bool read_text(const std::string& path, std::string& text);

// flock on PATH (created if missing); released when the object dies or the process ends,
// SIGKILL included. Throws Error(kExitCantCreate) naming the holder when another job has it.
class StudyLock {
 public:
  explicit StudyLock(const std::string& path);
  StudyLock(const StudyLock&) = delete;
  StudyLock& operator=(const StudyLock&) = delete;
  ~StudyLock();

 private:
  int fd_ = -1;
};

}  // namespace ncsparse::study
