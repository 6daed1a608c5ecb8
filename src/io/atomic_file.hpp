// Files that appear complete or not at all (DESIGN.md §9), the one implementation for io (the
// HDF5 outputs of generate and attend) and study (records, results, study.txt): write under a
// temporary name beside the target, fsync it, move it onto the target, fsync the directory.
// Every failure is an Error naming the file and the fix: kExitIo for a failed open, fsync,
// rename or link; kExitCantCreate when the target exists and may not be replaced. After a
// failure before the move, the temporary file is gone and the target is as it was.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "ncsparse/error.hpp"

namespace ncsparse::io {

// The directory of a path ("." for a bare name) and its last component.
std::string dir_of(const std::string& path);
std::string base_of(const std::string& path);

// fsync of a file or a directory. Throws Error(kExitIo) when it cannot be opened or synced.
void fsync_path(const std::string& path, bool directory);

enum class Replace {
  kYes,  // rename(): atomically replaces an existing target
  kNo,   // link() then unlink(): never replaces a target, even one that appeared meanwhile
};

// A temporary file DIR/.BASE.tmp (DIR/.BASE.tmp-TAG with a tag) beside the target. Nothing is
// created here: the caller writes path() its own way (HDF5, a stream) and then calls commit().
// Destroyed uncommitted, it removes the temporary file when it is the owner (in a parallel
// write every rank names the same file, with the same tag, and one rank owns it).
class AtomicFile {
 public:
  explicit AtomicFile(std::string target, const std::string& tag = "", bool owner = true);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  const std::string& path() const { return temp_; }
  const std::string& target() const { return target_; }
  // fsync of the finished temporary file, the move onto the target, fsync of the directory.
  // Throws Error (see the top of this file); the temporary file is removed on every failure.
  void commit(Replace replace = Replace::kYes);

 private:
  std::string target_, temp_;
  bool owner_ = true, done_ = false;
};

// Writes `bytes` as the whole content of `path`, atomically (no tag: one writer at a time).
void write_file_atomic(const std::string& path, const std::string& bytes);

// Writes `size` bytes as the whole content of `path` (created or truncated), retrying short
// writes. Throws write_error(path, what, errno) on the first failing write or close.
void write_all(const std::string& path, const void* data, std::size_t size, const std::string& what);

// The one message of a failed write: "PATH: cannot write WHAT: STRERROR (errno N); free space
// on its file system or choose another output, then rerun", Error(kExitIo).
Error write_error(const std::string& path, const std::string& what, int err);

// Refuses, before anything is computed, an output path that --force may not replace (Error
// kExitCantCreate, one line naming the problem and the fix): a symbolic link, a directory, a
// device node, FIFO or socket, or the same file (st_dev and st_ino) as one of `inputs`. An
// existing regular file is refused without `force`. Also refuses a missing parent directory or
// one that is not a directory. `flag` names the option in messages ("--out").
void check_output_target(const std::string& target, bool force, const std::vector<std::string>& inputs,
                         const std::string& flag = "--out");

// The system calls behind fsync_path and commit, one table so that tests can make one of them
// fail (tests/io/atomic_file_test.cpp) and restore it; production code never changes it.
struct FileCalls {
  int (*fsync)(int fd);
  int (*rename)(const char* from, const char* to);
  int (*link)(const char* from, const char* to);
};
FileCalls& file_calls();

}  // namespace ncsparse::io
