// The approximators of PAPERS.md §3–4 inside a job (ApproxStrategy: taylor, features), and the
// dense passes they need: the keys of a shard visited tile by tile (from memory or streamed
// from the source), exact or projected flash states of a query block over them, and the
// attention-row errors of an approximator against the exact softmax, without an n × n matrix.
// Every product runs on the backend's DenseKernels.
//
// Every function is local to a rank unless its comment says collective.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ncsparse/backend.hpp"
#include "ncsparse/comm.hpp"
#include "ncsparse/engine.hpp"
#include "ncsparse/source.hpp"
#include "ncsparse/strategy.hpp"

namespace ncsparse::approx {

// This rank's keys and values, tile by tile: views of the shard in memory, or rows read from
// the source into two tile buffers (streamed: memory independent of the shard's size).
class KeyTiles {
 public:
  KeyTiles(const float* k, const float* v, std::int64_t lo, std::int64_t count, std::int64_t d, std::int64_t tile);
  KeyTiles(InputSource* source, std::int64_t lo, std::int64_t count, std::int64_t d, std::int64_t tile);

  // fn(first global key index, keys in the tile, k, v) for each tile in order. Streamed tiles
  // are read here; a read may throw Error.
  template <class Fn>
  void for_each(Fn&& fn) {
    for (std::int64_t t0 = 0; t0 < count_; t0 += tile_) {
      const std::int64_t rows = std::min(tile_, count_ - t0);
      if (source_ == nullptr) {
        fn(lo_ + t0, rows, k_ + t0 * d_, v_ + t0 * d_);
      } else {
        const std::size_t size = static_cast<std::size_t>(rows * d_);
        source_->keys_values(lo_ + t0, rows, {kbuf_.data(), size}, {vbuf_.data(), size});
        fn(lo_ + t0, rows, kbuf_.data(), vbuf_.data());
      }
    }
  }
  bool streamed() const { return source_ != nullptr; }

 private:
  const float* k_ = nullptr;
  const float* v_ = nullptr;
  InputSource* source_ = nullptr;
  std::int64_t lo_, count_, d_, tile_;
  std::vector<float> kbuf_, vbuf_;
};

// A query block: rows × dq queries (dq = d, or e for projected ones) at sequence positions pos.
struct Queries {
  const float* q;
  std::int64_t rows;
  std::int64_t dq;
  const std::int64_t* pos;
};

// What an approximator is started with.
struct Context {
  std::int64_t d;
  double scale;
  std::uint64_t seed;  // the job's seed, for random projections
  DenseKernels& kernels;
};

// Flash states (rows × flash_row_size(d), cleared by the caller) of softmax(scale·q·k) over the
// keys of `tiles` (DenseKernels::flash_tile, tile by tile).
void dense_flash(DenseKernels& kernels, KeyTiles& tiles, const Queries& q, const float* proj, std::int64_t d,
                 double scale, bool causal, std::span<double> states);

// One approximator window of a job.
class Approximator {
 public:
  virtual ~Approximator() = default;
  // Local: takes in this rank's keys (a pass over the tiles). Then reduce (collective) and
  // finish (local, identical on every rank).
  virtual void add_keys(std::int64_t first, std::int64_t rows, const float* k, const float* v) = 0;
  virtual void reduce(const Comm& comm) = 0;
  virtual void finish() {}
  // Outputs ô of a block (rows × d): from a sketch (local) or by a dense pass and a log-sum-exp
  // merge (collective). Rows without an answer come out NaN.
  virtual void outputs(const Comm& comm, KeyTiles& tiles, const Queries& q, bool causal, std::span<double> out) = 0;
  // The approximation's weight p̂_j of each key of one tile for one query row, given the row's
  // scores s = scale·q·k over the tile (and the raw tile, in tile_begin, for projections).
  // Called after outputs() of the same block.
  virtual void tile_begin(const float* k, std::int64_t rows) { (void)k, (void)rows; }
  virtual void row_weights(std::int64_t row, std::int64_t tile_first, const double* s, std::int64_t count,
                           double* p_hat) = 0;
  // Its own columns of the result (schema.hpp: strategy_columns()), after the last block.
  virtual void columns(StrategyResult& result) const = 0;
  // One line per problem seen so far (rows: the rows evaluated), for stderr.
  virtual std::vector<std::string> warnings(std::int64_t rows) const {
    (void)rows;
    return {};
  }
};

// Attention-row errors of the approximators against the exact softmax of the same rows, over
// this rank's keys: per approximator a and row i, err[(a·rows + i)·3 + {0, 1, 2}] += Σ|p̂ − p|,
// Σ(p̂ − p)², max|p̂ − p| (the caller sums the first two and takes the maximum of the third
// over ranks). exact: rows × flash_row_size(d) merged states.
void row_errors(DenseKernels& kernels, KeyTiles& tiles, const Queries& q, std::int64_t d, double scale, bool causal,
                std::span<const double> exact, std::span<Approximator* const> approximators, std::span<double> err);

}  // namespace ncsparse::approx
