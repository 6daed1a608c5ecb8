// HDF5 inputs: Q, K and V datasets of shape (n, d) or (heads, n, d), float16, bfloat16 (uint16
// with the attribute ncsparse_dtype = "bfloat16"), float32 or float64, read as row hyperslabs
// and converted to float. Layout and rules: docs/files.md.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/dtype.hpp"
#include "io/h5.hpp"
#include "ncsparse/comm.hpp"
#include "ncsparse/source.hpp"

namespace ncsparse::io {

struct InputNames {
  std::string q = "/Q", k = "/K", v = "/V";
};

class H5Input {
 public:
  // Opens `path` with MPI-IO on comm and validates the three datasets. Every rank reads the
  // same metadata and so reaches the same verdict; callers still wrap this in collective().
  // Throws Error: 66 missing file, 65 not HDF5 / bad shape / bad dtype / refused storage.
  H5Input(const Comm& comm, const std::string& path, const InputNames& names = {});
  ~H5Input();
  H5Input(const H5Input&) = delete;
  H5Input& operator=(const H5Input&) = delete;

  std::int64_t n() const { return static_cast<std::int64_t>(k_.rows); }        // rows of K and V
  std::int64_t query_rows() const { return static_cast<std::int64_t>(q_.rows); }  // rows of Q
  std::int64_t d() const { return static_cast<std::int64_t>(k_.d); }
  bool has_heads() const { return k_.dims.size() == 3; }
  std::int64_t q_heads() const { return static_cast<std::int64_t>(q_.heads); }
  std::int64_t kv_heads() const { return static_cast<std::int64_t>(k_.heads); }
  Dtype dtype(char tensor) const;  // 'q', 'k' or 'v'
  const std::string& path() const { return path_; }

  // The source for query head q_head and key/value head kv_head. Reads are independent
  // MPI-IO transfers: a failing rank leaves no other rank inside a collective read.
  std::unique_ptr<InputSource> head(std::int64_t q_head, std::int64_t kv_head);

  struct Tensor {
    std::string name;
    h5::Handle dset;
    std::vector<hsize_t> dims;
    Dtype dtype = Dtype::Float32;
    hsize_t heads = 1, rows = 0, d = 0;
  };
  // Reads rows [row0, row0 + rows) of head `head` as float, rejecting NaN, Inf and float64
  // values beyond the float range (Error 65 naming the rank, the tensor and the row).
  void read(Tensor& t, hsize_t head, hsize_t row0, hsize_t rows, float* out);
  // The one-line error for a rejected value of t (Error 65 naming the rank, tensor and row).
  Error bad_value(const Tensor& t, hsize_t head, hsize_t row, std::size_t col, const std::string& what_value) const;
  Tensor& tensor(char which) { return which == 'q' ? q_ : which == 'k' ? k_ : v_; }
  // Rows of a dataset mapped from the file in place: read-only, private, pages populated. No
  // copy is made: the rows are the page cache's. Unmapped when destroyed.
  class Mapped {
   public:
    // `path` names the file in the one line of a SIGBUS should it shrink (h5::MappedFileGuard).
    Mapped(void* addr, std::size_t bytes, const float* rows, const std::string& path)
        : addr_(addr), bytes_(bytes), rows_(rows), guard_(std::make_unique<h5::MappedFileGuard>(addr, bytes, path)) {}
    Mapped(Mapped&& o) noexcept : addr_(o.addr_), bytes_(o.bytes_), rows_(o.rows_), guard_(std::move(o.guard_)) {
      o.addr_ = nullptr;
    }
    Mapped(const Mapped&) = delete;
    Mapped& operator=(const Mapped&) = delete;
    Mapped& operator=(Mapped&&) = delete;
    ~Mapped();
    const float* rows() const { return rows_; }

   private:
    void* addr_;
    std::size_t bytes_;
    const float* rows_;
    std::unique_ptr<h5::MappedFileGuard> guard_;
  };
  // Rows [row0, row0 + rows) of head `head` mapped, and checked for NaN and Inf as read()
  // checks them (Error 65). Empty where the dataset is not stored as the engine holds it
  // (contiguous little-endian float32, fully written, at a float-aligned offset inside the
  // file), where mapping fails or the mapped first row differs from HDF5's, or where
  // NCSPARSE_NO_MMAP=1 (then read() is the way).
  std::optional<Mapped> map(Tensor& t, hsize_t head, hsize_t row0, hsize_t rows);

 private:
  std::string path_;
  int rank_ = 0, ranks_ = 1;
  h5::Handle file_;  // declared first: closed after the datasets
  Tensor q_, k_, v_;
  h5::Handle dxpl_;
};

}  // namespace ncsparse::io
