// Where a job's inputs come from and where its per-row outputs go.
//
// A job reads only its own rank's K/V rows and the query rows of each block; a source may be
// the deterministic generator or a file. A sink receives every finished block on every rank
// (all ranks hold the merged block), so a file sink can write collectively.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ncsparse/candidate.hpp"
#include "ncsparse/generator.hpp"
#include "ncsparse/stats.hpp"

namespace ncsparse {

class Comm;

class InputSource {
 public:
  virtual ~InputSource() = default;
  // K and V rows [begin, begin + count); k and v hold count·d floats. May throw Error.
  virtual void keys_values(std::int64_t begin, std::int64_t count, std::span<float> k, std::span<float> v) = 0;
  // The given rows of Q (indices into Q's rows); q holds rows.size()·d floats. May throw Error.
  virtual void query_rows(std::span<const std::int64_t> rows, std::span<float> q) = 0;
  // K and V rows [begin, begin + count) where they already lie in memory as the engine holds
  // them (float32, row-major, rows of d): sets *k and *v to them, valid for the source's
  // lifetime, checked as keys_values checks (may throw Error), and returns true. False: the
  // caller allocates and calls keys_values. The engine then reads the shard in place.
  virtual bool map_keys_values(std::int64_t /*begin*/, std::int64_t /*count*/, const float** /*k*/,
                               const float** /*v*/) {
    return false;
  }
  // The generator behind this source, if it is one (a device backend can then make K and V
  // itself); null for files.
  virtual const Generator* generator() const { return nullptr; }
};

// The generator as a source: Q has n rows and query row i sits at position i.
class GeneratorSource final : public InputSource {
 public:
  explicit GeneratorSource(const ModelParams& params, int threads = 1) : gen_(params) { gen_.set_threads(threads); }
  void keys_values(std::int64_t begin, std::int64_t count, std::span<float> k, std::span<float> v) override {
    gen_.keys_values(begin, count, k, v);
  }
  void query_rows(std::span<const std::int64_t> rows, std::span<float> q) override { gen_.queries(rows, q); }
  const Generator* generator() const override { return &gen_; }

 private:
  Generator gen_;
};

// One finished block of query rows, identical on every rank.
struct BlockView {
  std::int64_t first = 0;                   // index of the block's first row among the evaluated rows
  std::int64_t rows = 0;
  std::span<const std::int64_t> row_ids;    // rows of Q evaluated in this block
  std::span<const std::int64_t> positions;  // their sequence positions
  std::int64_t list_length = 0;             // L
  std::span<const Candidate> lists;         // rows × L, merged
  std::span<const double> o_exact;          // rows × d, empty without the exact pass
  std::vector<std::span<const double>> o_sparse;  // per strategy, rows × d
  std::vector<std::span<const RowStats>> stats;   // per strategy, rows
};

class BlockSink {
 public:
  virtual ~BlockSink() = default;
  // Called on every rank, in block order. May throw Error; the job agrees on it.
  virtual void write_block(const Comm& comm, const BlockView& block) = 0;
};

}  // namespace ncsparse
