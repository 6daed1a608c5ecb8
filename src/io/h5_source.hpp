// HDF5 inputs: Q, K and V datasets of shape (n, d) or (heads, n, d), float16, bfloat16 (uint16
// with the attribute ncsparse_dtype = "bfloat16"), float32 or float64, read as row hyperslabs
// and converted to float. Layout and rules: docs/files.md.
#pragma once

#include <cstdint>
#include <memory>
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
  Tensor& tensor(char which) { return which == 'q' ? q_ : which == 'k' ? k_ : v_; }

 private:
  std::string path_;
  int rank_ = 0, ranks_ = 1;
  h5::Handle file_;  // declared first: closed after the datasets
  Tensor q_, k_, v_;
  h5::Handle dxpl_;
};

}  // namespace ncsparse::io
