// Host-side planning of the CUDA local pass: pure C++, so it is unit-tested on machines
// without a GPU (tests/unit/cuda_plan_test.cpp).
#pragma once

#include <cstdint>
#include <string>

#if defined(__CUDACC__)
#define NCSPARSE_HD __host__ __device__
#else
#define NCSPARSE_HD
#endif

namespace ncsparse::cuda {

// How one query block is cut into launches: rows per launch and keys per score tile, and the
// device memory that takes. The candidate buffer of a row holds the kept L entries plus one
// tile's worth of newcomers, so one selection per tile always suffices.
struct PassPlan {
  std::int64_t rows_per_launch = 0;
  std::int64_t tile = 0;
  std::int64_t candidate_capacity = 0;  // per row: L + tile
  std::int64_t bytes = 0;               // device memory for one launch, besides the K/V shard
};

// Bytes of device scratch for `rows` rows, tiles of `tile` keys, lists of L, dimension d.
std::int64_t plan_bytes(std::int64_t rows, std::int64_t tile, std::int64_t L, std::int64_t d);

// The largest launch that fits in `budget` bytes: tile first (down to 256 keys, never more
// than the shard or the requested tile), then rows. Throws Error(kExitUnavailable) when not
// even one row with a 256-key tile fits.
PassPlan make_plan(std::int64_t rows, std::int64_t shard_keys, std::int64_t requested_tile, std::int64_t L,
                   std::int64_t d, std::int64_t budget);

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

// Threads per block of the per-row kernels, and blocks for `rows` rows.
inline constexpr int kRowThreads = 256;

}  // namespace ncsparse::cuda
