#include "io/h5_output.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/stop_signals.hpp"
#include "io/shared_dir.hpp"
#include "ncsparse/schema.hpp"

namespace ncsparse::io {

// ---------------------------------------------------------------------------------------------
// OutputFile

namespace {

// Whether a failed call's errno means the disk, not the path: a write error (74), not 73.
bool disk_errno(int err) { return err == ENOSPC || err == EDQUOT || err == EFBIG || err == EIO; }

// Points every descriptor this process holds on `path` (HDF5's own, MPI-IO's) at an anonymous
// in-memory file, so that whatever HDF5 still writes while it closes a failed output succeeds
// and goes nowhere. Without it the close would fail again on the full disk, on one rank only:
// that rank would leave HDF5's collective close while the others wait in it, and the file's
// id would stay registered, to be closed once more (a crash) at MPI_Finalize.
void discard_writes(const std::string& path) {
  char real[PATH_MAX];
  if (::realpath(path.c_str(), real) == nullptr) return;
  const int sink = static_cast<int>(::syscall(SYS_memfd_create, "ncsparse-discard", 0u));
  if (sink < 0) return;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (const dirent* e = ::readdir(d)) {
      const int fd = std::atoi(e->d_name);
      if (e->d_name[0] == '.' || fd == sink || fd == ::dirfd(d)) continue;
      char link[64], target[PATH_MAX];
      std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
      const ssize_t len = ::readlink(link, target, sizeof target - 1);
      if (len <= 0) continue;
      target[len] = '\0';
      if (std::strcmp(target, real) == 0) ::dup2(sink, fd);
    }
    ::closedir(d);
  }
  ::close(sink);
}

}  // namespace

OutputFile::OutputFile(const Comm& comm, const std::string& target, bool force, const std::vector<std::string>& inputs)
    : comm_(comm), target_(target), force_(force), parallel_(comm.size() > 1) {
  h5::silence_errors();
  collective(comm, [&] {
    if (comm.rank() == 0) check_output_target(target, force, inputs);
  });
  // Before the collective create: every rank must see the directory rank 0 writes in.
  check_shared_directory(comm, dir_of(target), target);
  // One temporary name for all ranks: rank 0's process id.
  long pid = static_cast<long>(::getpid());
  NCSPARSE_MPI(MPI_Bcast(&pid, 1, MPI_LONG, 0, comm.get()));
  temp_ = std::make_unique<AtomicFile>(target, std::to_string(pid), comm.rank() == 0);
  write_agreed(comm, [&] {
    errno = 0;
    const hid_t id = H5Fcreate(temp_->path().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT,
                               h5::file_access(parallel_ ? comm.get() : MPI_COMM_NULL));
    const int err = errno;
    if (id < 0 && disk_errno(err)) {
      H5Eclear2(H5E_DEFAULT);
      throw write_error(temp_->path(), "the new file", err);
    }
    file_ = h5::Handle(h5::check_id(
        id,
        target + ": cannot create the output (check that its directory exists and is writable, or choose another "
                 "--out)",
        kExitCantCreate));
  });
}

void OutputFile::flush() {
  // Rank 0 reserves the file's whole extent first (every dataset is allocated at creation):
  // on a full disk this fails here, before HDF5 writes anything inside its collective flush,
  // and no later write into the reserved extent can fail for want of space.
  write_agreed(comm_, [&] {
    if (comm_.rank() != 0 || reserved_) return;
    hsize_t size = 0;
    h5::check(H5Fget_filesize(file_, &size), temp_->path() + ": cannot read the file's size");
    struct statvfs fs {};
    if (::statvfs(dir_of(temp_->path()).c_str(), &fs) == 0) {
      const unsigned long long room = static_cast<unsigned long long>(fs.f_bavail) * fs.f_frsize;
      if (size > room) {
        throw Error(kExitCantCreate, target_ + ": needs " + std::to_string(size) + " bytes, and its file system has " +
                                         std::to_string(room) + " free (free space or choose another --out)");
      }
    }
    const int fd = ::open(temp_->path().c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) throw write_error(temp_->path(), "the new file", errno);
    const int err = ::posix_fallocate(fd, 0, static_cast<off_t>(size));
    ::close(fd);
    // File systems without reservations (EOPNOTSUPP, EINVAL) write as they go.
    if (err != 0 && err != EOPNOTSUPP && err != EINVAL) {
      throw write_error(temp_->path(), std::to_string(size) + " bytes (reserving the output's space)", err);
    }
  });
  reserved_ = true;
  write_agreed(comm_, [&] {
    errno = 0;
    if (H5Fflush(file_, H5F_SCOPE_GLOBAL) < 0) {
      const int err = errno;
      if (err != 0) throw write_error(temp_->path(), "the file's metadata", err);
      h5::check(-1, temp_->path() + ": cannot write the file's metadata");
    }
  });
}

void OutputFile::commit() {
  flush();
  // The close writes nothing more after the agreed flush; its outcome is agreed on all the same.
  write_agreed(comm_, [&] {
    if (!h5::close_file(file_)) throw Error(kExitIo, temp_->path() + ": cannot close the output (check the file system)");
  });
  collective(comm_, [&] {
    if (comm_.rank() == 0) temp_->commit(force_ ? Replace::kYes : Replace::kNo);
  });
}

void stop_if_signalled(const Comm& comm, const std::string& target) {
  const int sig = static_cast<int>(comm.allreduce_max(static_cast<double>(stop_signal())));
  if (sig != 0) {
    throw Error(kExitInterrupted, std::string("interrupted by ") + stop_signal_name(sig) + "; " + target +
                                      " was not written (rerun the command)");
  }
}

OutputFile::~OutputFile() {
  // Only after an Error agreed on by every rank: every rank discards and closes together.
  if (file_.valid()) {
    discard_writes(temp_->path());
    h5::close_file(file_);
  }
}  // closed before the AtomicFile removes it

// ---------------------------------------------------------------------------------------------
// attend

namespace {

// Writes each finished block into the output datasets of one head. All ranks hold the merged
// block, so each rank writes an even slice of its rows, independently: the write bandwidth
// grows with the ranks, nothing travels between them first, and a rank whose write fails
// leaves no other rank inside a collective write (the engine agrees on the block's outcome).
// (Rank 0 alone would serialise the output through one process.)
class OutputSink final : public BlockSink {
 public:
  struct Sets {
    bool headed = false;
    std::int64_t d = 0, L = 0, m = 0, heads = 1;
    std::vector<h5::Handle> o_sparse;  // per strategy
    h5::Handle o_exact, list_index, list_score;
    // The per-row statistics written (schema.hpp: those the run has), and per strategy their
    // datasets: "clamped" first, then one per statistic.
    std::vector<const RowStatistic*> row_stats;
    std::vector<std::vector<h5::Handle>> stats;
    bool cert = false, exact = false;
    std::string path;    // the temporary file, for messages
    std::string target;  // the output, for messages
  };
  OutputSink(Sets& sets, std::int64_t head, bool parallel)
      : s_(sets), head_(head), dxpl_(h5::transfer(false, parallel)) {}

  // Called inside the engine's agreement (collective): a failing rank's Error reaches every rank.
  void write_block(const Comm& comm, const BlockView& b) override {
    stop_if_signalled(comm, s_.target);  // first: every rank takes part in its all-reduce
    try {
      write_rows_of(comm, b);
    } catch (const Error& e) {
      throw Error(e.code(), "rank " + std::to_string(comm.rank()) + ": " + e.what());
    }
  }

 private:
  // This rank's even slice of the block's rows, written independently.
  void write_rows_of(const Comm& comm, const BlockView& b) {
    const ShardRange part = shard_range(b.rows, comm.size(), comm.rank());
    const std::int64_t nr = part.hi - part.lo;
    const hsize_t row0 = static_cast<hsize_t>(b.first + part.lo), rows = static_cast<hsize_t>(nr);
    const std::size_t du = static_cast<std::size_t>(s_.d), lo = static_cast<std::size_t>(part.lo);
    const std::size_t cnt = static_cast<std::size_t>(nr);
    if (cnt == 0) return;
    const hsize_t head = static_cast<hsize_t>(head_);
    auto mat_dims = [&](std::int64_t cols) {
      std::vector<hsize_t> dims;
      if (s_.headed) dims.push_back(static_cast<hsize_t>(s_.heads));
      dims.push_back(static_cast<hsize_t>(s_.m));
      if (cols > 0) dims.push_back(static_cast<hsize_t>(cols));
      return dims;
    };
    auto put_f32 = [&](hid_t set, std::span<const double> all, std::size_t width) {
      f32_.resize(cnt * width);
      for (std::size_t i = 0; i < cnt * width; ++i) f32_[i] = static_cast<float>(all[lo * width + i]);
      h5::write_rows(set, H5T_NATIVE_FLOAT, mat_dims(static_cast<std::int64_t>(width)), s_.headed, head, row0, rows,
                     f32_.data(), dxpl_, s_.path, "an output block");
    };
    for (std::size_t w = 0; w < s_.o_sparse.size(); ++w) put_f32(s_.o_sparse[w], b.o_sparse[w], du);
    if (s_.exact) put_f32(s_.o_exact, b.o_exact, du);
    if (s_.list_index.valid()) {
      const std::size_t L = static_cast<std::size_t>(s_.L);
      i64_.resize(cnt * L);
      f32_.resize(cnt * L);
      for (std::size_t i = 0; i < cnt * L; ++i) {
        const Candidate& c = b.lists[lo * L + i];
        i64_[i] = c.index == kNoIndex ? -1 : c.index;
        f32_[i] = c.score;
      }
      h5::write_rows(s_.list_index, H5T_NATIVE_INT64, mat_dims(s_.L), s_.headed, head, row0, rows, i64_.data(), dxpl_,
                     s_.path, "the top-k lists");
      h5::write_rows(s_.list_score, H5T_NATIVE_FLOAT, mat_dims(s_.L), s_.headed, head, row0, rows, f32_.data(), dxpl_,
                     s_.path, "the top-k lists");
    }
    const std::vector<hsize_t> vec = mat_dims(0);
    for (std::size_t w = 0; w < s_.stats.size(); ++w) {
      const std::span<const RowStats> st = b.stats[w].subspan(lo, cnt);
      i64_.resize(cnt);
      for (std::size_t i = 0; i < cnt; ++i) i64_[i] = st[i].clamped ? 1 : 0;
      h5::write_rows(s_.stats[w][0], H5T_NATIVE_INT64, vec, s_.headed, head, row0, rows, i64_.data(), dxpl_,
                     s_.path, "per-row statistics");
      for (std::size_t x = 0; x < s_.row_stats.size(); ++x) {
        const RowStatistic& stat = *s_.row_stats[x];
        const void* data = nullptr;
        if (stat.integer) {
          for (std::size_t i = 0; i < cnt; ++i) i64_[i] = static_cast<std::int64_t>(stat.get(st[i]));
          data = i64_.data();
        } else {
          f64_.resize(cnt);
          for (std::size_t i = 0; i < cnt; ++i) f64_[i] = stat.get(st[i]);
          data = f64_.data();
        }
        h5::write_rows(s_.stats[w][x + 1], stat.integer ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE, vec, s_.headed, head,
                       row0, rows, data, dxpl_, s_.path, "per-row statistics");
      }
    }
  }

  Sets& s_;
  std::int64_t head_;
  h5::Handle dxpl_;
  std::vector<float> f32_;
  std::vector<double> f64_;
  std::vector<std::int64_t> i64_;
};

}  // namespace

void write_attend_output(const Comm& comm, const AttendOutputSpec& c, const JobConfig& job,
                         const std::function<void(std::int64_t head, BlockSink& sink)>& fill) {
  const std::int64_t Hq = c.q_heads, Hkv = c.kv_heads;
  OutputFile out(comm, c.out, c.force, {c.input});
  OutputSink::Sets sets;  // after `out`: its datasets close before the file does
  sets.path = out.temp_path();
  sets.target = c.out;
  sets.headed = c.headed;
  sets.heads = Hq;
  sets.d = job.model.d;
  sets.m = job.queries;
  sets.L = list_length(job.windows, job.n, job.max_k);
  sets.exact = job.exact;
  sets.cert = c.save_cert;
  for (const RowStatistic& stat : row_statistics()) {
    if (stat.need == Need::Always || (stat.need == Need::Exact && sets.exact) ||
        (stat.need == Need::Certificate && sets.cert)) {
      sets.row_stats.push_back(&stat);
    }
  }
  const std::vector<std::int64_t> row_ids = sample_positions(job.query_rows, job.queries);

  collective(comm, [&] {
    const hid_t f = out.file();
    std::string windows;
    for (const WindowSpec& w : job.windows) windows += (windows.empty() ? "" : " ") + w.text;
    h5::write_attr(f, "windows", windows);
    h5::write_attr(f, "causal", static_cast<std::int64_t>(job.causal));
    h5::write_attr(f, "scale", job.scale > 0 ? job.scale : 1.0 / std::sqrt(static_cast<double>(job.model.d)));
    h5::write_attr(f, "exact", static_cast<std::int64_t>(job.exact));
    h5::write_attr(f, "input", c.input);
    h5::write_attr(f, "q", c.names.q);
    h5::write_attr(f, "k", c.names.k);
    h5::write_attr(f, "v", c.names.v);
    h5::write_attr(f, "n", job.n);
    h5::write_attr(f, "query_rows", job.query_rows);
    h5::write_attr(f, "queries", job.queries);
    h5::write_attr(f, "d", job.model.d);
    h5::write_attr(f, "heads", sets.headed ? Hq : std::int64_t{0});
    h5::write_attr(f, "kv_heads", sets.headed ? Hkv : std::int64_t{0});
    h5::write_attr(f, "list_length", sets.L);
    h5::write_attr(f, "max_k", job.max_k);
    h5::write_attr(f, "ncsparse_version", std::string(NCSPARSE_VERSION));

    auto dims = [&](std::int64_t cols) {
      std::vector<hsize_t> v;
      if (sets.headed) v.push_back(static_cast<hsize_t>(Hq));
      v.push_back(static_cast<hsize_t>(sets.m));
      if (cols > 0) v.push_back(static_cast<hsize_t>(cols));
      return v;
    };
    const hsize_t m = static_cast<hsize_t>(sets.m);
    h5::Handle rows_set = h5::create_dataset(f, "/row_ids", H5T_STD_I64LE, {m});
    h5::Handle pos_set = h5::create_dataset(f, "/positions", H5T_STD_I64LE, {m});

    for (std::size_t w = 0; w < job.windows.size(); ++w) {
      const std::string& spec = job.windows[w].text;
      sets.o_sparse.push_back(h5::create_dataset(f, "/O/" + spec, H5T_IEEE_F32LE, dims(sets.d)));
      h5::write_attr(sets.o_sparse.back(), "window", spec);
      h5::write_attr(sets.o_sparse.back(), "strategy_index", static_cast<std::int64_t>(w));
      std::vector<h5::Handle> st;
      const std::string g = "/stats/" + spec + "/";
      st.push_back(h5::create_dataset(f, g + "clamped", H5T_STD_I64LE, dims(0)));
      for (const RowStatistic* stat : sets.row_stats) {
        st.push_back(h5::create_dataset(f, g + stat->name, stat->integer ? H5T_STD_I64LE : H5T_IEEE_F64LE, dims(0)));
      }
      sets.stats.push_back(std::move(st));
    }
    if (sets.exact) sets.o_exact = h5::create_dataset(f, "/O_exact", H5T_IEEE_F32LE, dims(sets.d));
    if (c.save_lists) {
      sets.list_index = h5::create_dataset(f, "/lists/index", H5T_STD_I64LE, dims(sets.L));
      sets.list_score = h5::create_dataset(f, "/lists/score", H5T_IEEE_F32LE, dims(sets.L));
    }
  });

  out.flush();  // the metadata is on disk: a failing raw write leaves nothing for the close to write
  // Rank 0 writes the row indices.
  write_agreed(comm, [&] {
    if (comm.rank() != 0) return;
    const hsize_t m = static_cast<hsize_t>(sets.m);
    std::vector<std::int64_t> positions = row_ids;
    for (std::int64_t& p : positions) p += job.n - job.query_rows;
    const h5::Handle xfer = h5::transfer(false, out.parallel());
    const h5::Handle rows_set = h5::open_dataset(out.file(), "/row_ids", out.temp_path());
    h5::write_rows(rows_set, H5T_NATIVE_INT64, {m}, false, 0, 0, m, row_ids.data(), xfer, out.temp_path(), "/row_ids");
    const h5::Handle pos_set = h5::open_dataset(out.file(), "/positions", out.temp_path());
    h5::write_rows(pos_set, H5T_NATIVE_INT64, {m}, false, 0, 0, m, positions.data(), xfer, out.temp_path(),
                   "/positions");
  });
  for (const std::int64_t h : c.heads) {
    OutputSink sink(sets, h, out.parallel());
    fill(h, sink);
  }
  sets = OutputSink::Sets{};  // close the datasets before the file
  out.commit();
}

}  // namespace ncsparse::io
