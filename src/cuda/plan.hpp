// Host-side planning of the CUDA local pass: pure C++, so it is unit-tested on machines
// without a GPU (tests/unit/cuda_plan_test.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/score.hpp"  // NCSPARSE_HD
#include "ncsparse/candidate.hpp"

namespace ncsparse::cuda {

// How one query block is cut into launches: rows per launch and keys per score tile, and the
// device memory that takes. The candidate buffer of a row holds 2L entries plus one tile's worth
// of newcomers: a row selects its top L only when it holds more than 2L, so a whole next tile
// always fits and a row selects about once per L newcomers, not once per tile.
struct PassPlan {
  std::int64_t rows_per_launch = 0;
  std::int64_t tile = 0;
  std::int64_t candidate_capacity = 0;  // per row: 2L + tile
  std::int64_t bytes = 0;               // device memory for one launch, besides the K/V shard
};

// Bytes of device scratch for `rows` rows, tiles of `tile` keys, lists of L, dimension d.
std::int64_t plan_bytes(std::int64_t rows, std::int64_t tile, std::int64_t L, std::int64_t d);

// The largest launch that fits in `budget` bytes: tile first (down to 256 keys, never more
// than the shard or the requested tile), then rows. Throws Error(kExitUnavailable) when not
// even one row with a 256-key tile fits.
PassPlan make_plan(std::int64_t rows, std::int64_t shard_keys, std::int64_t requested_tile, std::int64_t L,
                   std::int64_t d, std::int64_t budget);

// Keys per block of the per-tile kernels (filter, tile maximum, exponentials): a tile of T keys
// is cut into ⌈T / kChunk⌉ chunks, and each row of a launch gets one block per chunk.
inline constexpr std::int64_t kChunk = 2048;

// Keys per score tile when the caller leaves it to the backend: about 2^26 scores per launch
// (256 MiB of scores, enough to fill the device), between 4096 keys and 2^20, a multiple of kChunk.
std::int64_t auto_tile(std::int64_t rows);

// The tiles of one pass over `keys` keys, in order. Fixed (`grow` false): tiles of `max_tile`.
// Growing: the first tile holds about 2L keys (at least kChunk, a multiple of kChunk), and each
// next tile doubles up to `max_tile`. Every key of a first tile is re-scored (the threshold is
// not yet known); after it, a tile of T keys lets through about L·T / (keys seen) newcomers, so
// doubling keeps the re-scoring near L per tile. Empty for an empty shard.
std::vector<std::int64_t> tile_sizes(std::int64_t keys, std::int64_t L, std::int64_t max_tile, bool grow);

// Total order of candidates as one unsigned 32-bit radix key on the score: larger keys are
// better. Ties in the key are ties in the score; the index breaks them (smaller wins).
NCSPARSE_HD inline std::uint32_t score_key(float score) {
  std::uint32_t bits;
#if defined(__CUDA_ARCH__)
  bits = __float_as_uint(score);
#else
  __builtin_memcpy(&bits, &score, sizeof bits);
#endif
  // Flip negatives entirely and set the sign bit of positives: unsigned order == float order.
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// One candidate as a 64-bit sort key: score key high, complement of the global index low, so
// that descending key order is the total order (higher score, then smaller index). An empty slot
// (kNoIndex) is key 0, which sorts last. Indices must be below 2^32 − 1 (the backend checks);
// scores are canonical, never −0 (which would key apart from +0).
NCSPARSE_HD inline std::uint64_t candidate_key(const Candidate& c) {
  if (c.index == kNoIndex) return 0;
  return (std::uint64_t(score_key(c.score)) << 32) | (0xffffffffull - std::uint64_t(c.index));
}

// The inverse of candidate_key (key 0: the empty candidate).
NCSPARSE_HD inline Candidate candidate_of_key(std::uint64_t key) {
  if (key == 0) return Candidate{-__builtin_inff(), kNoIndex};
  const std::uint32_t sk = std::uint32_t(key >> 32);
  const std::uint32_t bits = (sk & 0x80000000u) ? (sk & 0x7fffffffu) : ~sk;  // inverse of score_key
  float score;
#if defined(__CUDA_ARCH__)
  score = __uint_as_float(bits);
#else
  __builtin_memcpy(&score, &bits, sizeof score);
#endif
  return Candidate{score, std::int64_t(0xffffffffull - (key & 0xffffffffull))};
}

// Threads per block of the per-row kernels, and blocks for `rows` rows.
inline constexpr int kRowThreads = 256;

}  // namespace ncsparse::cuda
