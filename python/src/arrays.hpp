// Python arrays as the engine's inputs: numpy arrays (float32, float16, float64, and ml_dtypes'
// bfloat16) and torch CPU tensors (float32, float16, bfloat16, float64), read where they lie.
//
// A tensor is described once (data pointer, element type, shape, byte strides) from
// `__array_interface__` or from torch's own accessors, so that any layout is read in place; the
// engine borrows a head's key/value rows without a copy when they are float32 with rows of d
// contiguous floats one after the other (a C-contiguous head), and converts them into its own
// shard buffer otherwise. The Python objects stay referenced for the call.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "io/dtype.hpp"
#include "ncsparse/comm.hpp"
#include "ncsparse/source.hpp"

namespace ncsparse::python {

// Not a sysexits code: an Error with this code is raised as TypeError (a wrong element type or
// kind of object), agreed on by the ranks like any Error.
inline constexpr int kTypeErrorCode = 165;

struct TensorView {
  std::string name;  // "q", "k" or "v"
  pybind11::object owner;
  const char* data = nullptr;
  io::Dtype dtype = io::Dtype::Float32;
  std::vector<std::int64_t> shape;    // as given: (n, d) or (heads, n, d)
  std::int64_t heads = 1, rows = 0, d = 0;
  std::int64_t head_stride = 0, row_stride = 0, col_stride = 0;  // bytes
  std::string kind;  // "numpy" or "torch", for messages

  // Rows of d contiguous float32 values, one after the other: the engine can read them in place.
  bool in_place() const {
    return dtype == io::Dtype::Float32 && reinterpret_cast<std::uintptr_t>(data) % 4 == 0 && col_stride == 4 &&
           (rows <= 1 || row_stride == 4 * d);
  }
  const char* row_address(std::int64_t head, std::int64_t row) const {
    return data + head * head_stride + row * row_stride;
  }
  // Row `row` of head `head` as d floats.
  void row(std::int64_t head, std::int64_t row, float* out) const;
  std::string shape_text() const;
};

// Describes a numpy array or torch CPU tensor (no conversion, no copy). Throws an Error with
// kTypeErrorCode for any other object or element type, naming `where` and the tensor.
TensorView describe(pybind11::handle obj, const std::string& name, const std::string& where);

// The first row and column of head `head`, rows [row0, row0 + count), holding NaN, Inf or (float64)
// a value beyond the float range, as an Error (65) in the command line's words; none: returns.
void check_values(const TensorView& t, std::int64_t head, std::int64_t row0, std::int64_t count,
                  const std::string& where, int ranks);
// The same for the given rows only (sampled queries).
void check_rows(const TensorView& t, std::int64_t head, const std::vector<std::int64_t>& rows,
                const std::string& where, int ranks);

// One query head and its key/value head as the engine's input: Q replicated (every rank holds
// all of it), K and V this rank's shard, whose first row is global row shard_lo.
class ArraySource final : public InputSource {
 public:
  ArraySource(const TensorView& q, const TensorView& k, const TensorView& v, std::int64_t q_head,
              std::int64_t kv_head, std::int64_t shard_lo)
      : q_(q), k_(k), v_(v), qh_(q_head), kvh_(kv_head), lo_(shard_lo) {}
  void keys_values(std::int64_t begin, std::int64_t count, std::span<float> k, std::span<float> v) override;
  bool map_keys_values(std::int64_t begin, std::int64_t count, const float** k, const float** v) override;
  void query_rows(std::span<const std::int64_t> rows, std::span<float> q) override;
  // Where the engine read K and V from, when it borrowed them (else null).
  const float* lent_k() const { return lent_k_; }
  const float* lent_v() const { return lent_v_; }

 private:
  const TensorView &q_, &k_, &v_;
  std::int64_t qh_, kvh_, lo_;
  const float* lent_k_ = nullptr;
  const float* lent_v_ = nullptr;
};

}  // namespace ncsparse::python
