// The seam between the engine and a compute backend: the one-pass local scan of DESIGN.md §3.
//
// A backend scores one block of queries against one rank's shard of keys, tile by tile, and
// from each score tile updates a running top-L list per row and, when asked, the exact flash
// state per row. No n × n or m × n score matrix is ever held. Layouts are row-major.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ncsparse/candidate.hpp"
#include "ncsparse/collectives.hpp"
#include "ncsparse/generator.hpp"
#include "ncsparse/precision.hpp"

namespace ncsparse {

struct QueryBlock {
  const float* q = nullptr;                 // rows × d
  const std::int64_t* positions = nullptr;  // sequence position of each row (for the mask)
  std::int64_t rows = 0;
};

struct KeyShard {
  const float* k = nullptr;  // count × d
  const float* v = nullptr;  // count × d
  std::int64_t begin = 0;    // global index of the first row
  std::int64_t count = 0;
};

struct PassParams {
  std::int64_t d = 0;
  double scale = 0;              // s in s·q·k
  bool causal = false;           // row at position p sees keys j <= p
  std::int64_t list_length = 1;  // L = K + 1 candidates kept per row
  bool exact = true;             // also compute the flash state
  std::int64_t tile = 2048;      // keys per score tile (CPU backend)
  std::int64_t device_tile = 0;  // CUDA backend: keys per score tile; 0 = its own growing tiles
  int threads = 1;
  // CUDA backend: the precision of the score GEMM that filters candidates (lists do not depend
  // on it; the exact pass always scores in FP32). The CPU backend scores in FP32 only.
  ScorePrecision score_precision = ScorePrecision::FP32;
  // CPU backend: an upper bound on the shard's largest key norm when the engine already has
  // one (taken while the shard was generated), so that load_shard need not read the shard
  // again; negative when unknown. It sets the margin of the re-scored candidates only: the
  // lists do not depend on it.
  double k_norm_max = -1;
};

// Output of a local pass for a block of `rows` queries.
//   lists: rows × L candidates, sorted by `before`, padded with empty slots;
//   flash: rows × flash_row_size(d) doubles (see flash.hpp), only when exact.
struct LocalOutput {
  std::span<Candidate> lists;
  std::span<double> flash;
};

// The prefix strategies' sparse outputs of one query block, gathered from the shard's V rows
// (the engine's stage_prefix.cpp computes the weights; a device backend sums on its copy of V).
// For row i < rows and strategy s < strategies, with e_j = weights[i·width + j]:
//   out[(s·rows + i)·d + c] = S_i(k[s·rows + i])[c] · inv_z[s·rows + i],
//   S_i(k)[c] = Σ_{j < k, index j owned} e_j·v[index_j][c]
// the running sum S taken in the order j = 0, 1, ... from 0, each product and sum rounded in
// double (one sum per row serves every strategy, each a prefix of the list): the same
// operations as the CPU loop, so the same bits. index_j = lists[i·L + j].index.
struct PrefixGather {
  std::span<const Candidate> lists;  // rows × L, merged
  std::int64_t L = 0, rows = 0, d = 0;
  std::int64_t width = 0;            // weights per row (at least the largest k; the row stride)
  std::span<const double> weights;   // rows × width: exp(score_j − score_0), 0 past the valid entries
  std::int64_t strategies = 0;
  std::span<const std::int64_t> k;   // strategies × rows
  std::span<const double> inv_z;     // strategies × rows
  std::span<double> out;             // strategies × rows × d
};

// Key rows [begin, end) of the sequence.
struct KeyRange {
  std::int64_t begin, end;
};

// The dense kernels of the strategies that are not a top-k selection: the key-set windows
// (sink) and the approximators' passes (taylor, features). Host memory, row-major floats in,
// doubles where they accumulate. Local to a rank; not thread-safe (one per job).
class DenseKernels {
 public:
  virtual ~DenseKernels() = default;
  // c (rows × cols) = a (rows × inner) · bᵀ (b: cols × inner): score tiles.
  virtual void scores(const float* a, const float* b, std::int64_t rows, std::int64_t cols, std::int64_t inner,
                      float* c) = 0;
  // c (rows × cols) = a (rows × inner) · b (inner × cols): projections.
  virtual void project(const float* a, const float* b, std::int64_t rows, std::int64_t cols, std::int64_t inner,
                       float* c) = 0;
  // Adds one tile of keys [first, first + count) to the flash states (rows × flash_row_size(d))
  // of softmax(scale·q·k) for queries q (rows × dq) at sequence positions pos, masked causally
  // when asked. With proj (d × dq) the keys are projected, k ↦ kR; values never are. Scores
  // in float (sgemm); weights, sums and outputs in double.
  virtual void flash_tile(const float* q, std::int64_t rows, std::int64_t dq, const std::int64_t* pos,
                          std::int64_t first, std::int64_t count, const float* k, const float* v, const float* proj,
                          std::int64_t d, double scale, bool causal, std::span<double> states) = 0;
  // Merges into `state` (one row, flash_row_size(d)) the keys of `ranges` that lie in the
  // shard, one by one in increasing index order, scored in double: s = scale·q·k.
  virtual void key_set_flash(const float* q, std::span<const KeyRange> ranges, const KeyShard& keys, std::int64_t d,
                             double scale, std::span<double> state) = 0;
};

// The CPU's dense kernels (OpenBLAS, one thread: ranks and --threads own the cores).
std::unique_ptr<DenseKernels> make_cpu_dense_kernels();

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // Called once per job, before the first local_pass, with the rank's shard (which stays valid
  // and unchanged until the job ends): a device backend uploads it here.
  virtual void load_shard(const KeyShard& keys, const PassParams& params) {
    (void)keys;
    (void)params;
  }
  // Makes the rank's K and V rows [begin, begin + count) of the generator where this backend
  // computes (a device: straight into its memory, as the shard that load_shard would upload)
  // and copies them into k and v on the host (count·d floats each) for the host's stages; the
  // values are bit-identical to gen.keys_values. Returns false when the backend does not
  // generate, and the engine runs the generator on the host.
  virtual bool generate_shard(const Generator& gen, std::int64_t begin, std::int64_t count, std::span<float> k,
                              std::span<float> v) {
    (void)gen, (void)begin, (void)count, (void)k, (void)v;
    return false;
  }
  // Fills g.out on the backend's copy of the shard (PrefixGather); false when the backend has
  // no such kernel or no shard of its own, and the engine sums on the host.
  virtual bool gather_outputs(const PrefixGather& g) {
    (void)g;
    return false;
  }
  virtual void local_pass(const QueryBlock& queries, const KeyShard& keys, const PassParams& params,
                          LocalOutput out) = 0;
  // Its dense kernels (above); null while this backend has none, and the engine runs them on
  // the CPU's and names them in the report.
  virtual DenseKernels* dense_kernels() { return nullptr; }
};

// Returns the backend of that name ("cpu", or "cuda" in builds with NCSPARSE_CUDA); throws Error(kExitUnavailable) when it is not built
// or has no device, and a usage Error for an unknown name.
std::unique_ptr<Backend> make_backend(const std::string& name);

// How the ranks of backend `name` connect their devices for the merges (NCCL for cuda), or none
// (they merge through MPI on host buffers). Touches no device. Both in src/backends/registry.cpp.
std::optional<DeviceCollectivesSetup> device_collectives_setup(const std::string& name);

}  // namespace ncsparse
