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

#include "ncsparse/candidate.hpp"
#include "ncsparse/collectives.hpp"

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
};

// Output of a local pass for a block of `rows` queries.
//   lists: rows × L candidates, sorted by `before`, padded with empty slots;
//   flash: rows × flash_row_size(d) doubles (see flash.hpp), only when exact.
struct LocalOutput {
  std::span<Candidate> lists;
  std::span<double> flash;
};

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
  virtual void local_pass(const QueryBlock& queries, const KeyShard& keys, const PassParams& params,
                          LocalOutput out) = 0;
};

// Returns the backend of that name ("cpu", or "cuda" in builds with NCSPARSE_CUDA); throws Error(kExitUnavailable) when it is not built
// or has no device, and a usage Error for an unknown name.
std::unique_ptr<Backend> make_backend(const std::string& name);

// How the ranks of backend `name` connect their devices for the merges (NCCL for cuda), or none
// (they merge through MPI on host buffers). Touches no device. Both in src/backends/registry.cpp.
std::optional<DeviceCollectivesSetup> device_collectives_setup(const std::string& name);

}  // namespace ncsparse
