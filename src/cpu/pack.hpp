// Packing for the CPU backend's register-blocked kernels: queries and keys transposed into
// the panels that a 6 × 16 block of scores reads (row-major input, x[i·d + c]).
#pragma once

#include <xmmintrin.h>

#include <cstdint>
#include <vector>

namespace ncsparse::cpu {

// A block of scores: kMr query rows × kNr keys (one panel of keys).
constexpr std::int64_t kMr = 6, kNr = 16;

// qp[c·kMr + r] = q[r][c] for the kMr rows from q (rows < kMr are padded with zeros).
void pack_queries(const float* q, std::int64_t rows, std::int64_t d, float* qp);

// kp[(panel·d + c)·kNr + u] = k[panel·kNr + u][c], keys past count padded with zeros.
void pack_keys(const float* k, std::int64_t count, std::int64_t d, float* kp);

// pack_keys with 8 × 8 AVX transposes for full panels when d is a multiple of 8 (the scalar
// transpose's strided stores cost ~5% of the top-k pass at m = 256). pack_avx2.cpp: call only
// where AVX2 is known to be there.
void pack_keys_avx2(const float* k, std::int64_t count, std::int64_t d, float* kp);

// Packs `rows` rows from q (row stride d) into qpack, kMr rows per block (the last padded with
// zeros); returns the number of blocks.
std::int64_t pack_query_blocks(const float* q, std::int64_t rows, std::int64_t d, std::vector<float>& qpack);

// Share `part` of `parts` of the cache lines of [base, base + bytes) prefetched into L2: the
// next tile's keys (and values) come from DRAM, and fetching them a share per unit of work on
// the current tile keeps the packing of the next one from waiting on memory.
[[gnu::always_inline]] inline void prefetch_share(const float* base, std::int64_t bytes, std::int64_t part,
                                                  std::int64_t parts) {
  const std::int64_t lines = bytes / 64;
  const std::int64_t per = (lines + parts - 1) / parts;
  const char* c = reinterpret_cast<const char*>(base);
  const std::int64_t end = lines < (part + 1) * per ? lines : (part + 1) * per;
  for (std::int64_t l = part * per; l < end; ++l) _mm_prefetch(c + 64 * l, _MM_HINT_T1);
}

}  // namespace ncsparse::cpu
