// HDF5 outputs: an output file that appears complete or not at all (used by src/app/generate)
// and the layout of an attend output (src/app/attend). Layouts: docs/files.md.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/atomic_file.hpp"
#include "io/dtype.hpp"
#include "io/h5.hpp"
#include "io/h5_source.hpp"
#include "ncsparse/comm.hpp"
#include "ncsparse/engine.hpp"

namespace ncsparse::io {

// A file written under a temporary name beside the target (".NAME.tmp-PID" in the same
// directory, an AtomicFile) and moved onto it by commit(), after every rank agreed that all
// went well.
// An existing target is never touched without `force` (Error 73 naming the path and --force),
// and never when it is not a regular file or is one of `inputs` (check_output_target).
// Destroyed uncommitted, it closes and removes the temporary file. All members are collective.
//
// Raw data goes in with independent writes (each rank its own rows, no collective inside
// HDF5 that a failing rank could leave), agreed on by write_agreed after each step. flush()
// after the datasets are made writes every piece of metadata, so that a later failed raw write
// leaves nothing for the close to write: the close then cannot fail, and no rank is left
// inside HDF5's collective close.
class OutputFile {
 public:
  OutputFile(const Comm& comm, const std::string& target, bool force, const std::vector<std::string>& inputs = {});
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  hid_t file() const { return file_.get(); }
  bool parallel() const { return parallel_; }
  const std::string& temp_path() const { return temp_->path(); }
  // Writes the metadata (the datasets, their attributes) to the file, agreed on by all ranks;
  // the first call reserves the file's whole extent (posix_fallocate) before.
  void flush();
  void commit();

 private:
  const Comm& comm_;
  std::string target_;
  bool force_ = false, parallel_ = false, reserved_ = false;
  std::unique_ptr<AtomicFile> temp_;  // rank 0 owns the temporary file
  h5::Handle file_;
};

// Runs fn (this rank's writes) and agrees on the outcome: an Error on any rank becomes the same
// Error on every rank, its message naming the rank that failed ("rank R: PATH: cannot write
// ..."), even with one rank.
template <class Fn>
void write_agreed(const Comm& comm, Fn&& fn) {
  collective(comm, [&] {
    try {
      fn();
    } catch (const Error& e) {
      throw Error(e.code(), "rank " + std::to_string(comm.rank()) + ": " + e.what());
    }
  });
}

// Ends the write of `target` on every rank, exit 75, when any rank received SIGINT or SIGTERM
// (core/stop_signals.hpp; the caller holds a StopPolling). Collective.
void stop_if_signalled(const Comm& comm, const std::string& target);

// What an attend output records besides the job (docs/files.md): the input it was computed
// from, its head counts, and which optional datasets it holds.
struct AttendOutputSpec {
  std::string input;
  InputNames names;
  std::string out;
  bool force = false;
  bool headed = false;  // datasets of shape (heads, m, ...) rather than (m, ...)
  std::int64_t q_heads = 1, kv_heads = 1;
  std::vector<std::int64_t> heads;  // the query heads written, in order
  bool save_lists = false;
  bool save_cert = false;
};

// Creates the output `c.out` for the (validated) job, with every dataset, collectively; calls
// fill(h, sink) for each head h of c.heads, which writes that head's blocks into `sink` (by
// running the job); then commits the file. Any Error leaves no file behind.
void write_attend_output(const Comm& comm, const AttendOutputSpec& c, const JobConfig& job,
                         const std::function<void(std::int64_t head, BlockSink& sink)>& fill);

}  // namespace ncsparse::io
