// The CPU backend's scan of a key shard for some rows of a query block, and the pieces its
// files share (see backend_cpu.cpp for the whole picture).
//
// Files: select.* (selection, admission, seeding, the final lists), pack.* (packing),
// kernels_generic.cpp (the tile pass on OpenBLAS scores with SSE2 row kernels),
// kernels_avx2.* (AVX2 + FMA row kernels, sample seeding and the fused top-k kernels),
// exact_avx2.cpp (the fused exact kernel), scan.cpp (one thread's rows: set-up, kernel, lists),
// backend_cpu.cpp (ISA dispatch and the Backend). Every file is compiled without contraction
// of a·b + c (CMakeLists.txt), so the two paths round alike; the *_avx2.cpp files are compiled
// for AVX2 + FMA and run only after the run-time check.
#pragma once

#include <cstdint>
#include <vector>

#include "core/fastexp.hpp"
#include "cpu/select.hpp"
#include "ncsparse/backend.hpp"

namespace ncsparse::cpu {

// Score tile of one GEMM call: rows × keys floats kept within this many bytes so that the
// tile is still in the core's L2 cache when the filter and the exponentials read it.
constexpr std::int64_t kTileBytes = 256 * 1024;
constexpr std::int64_t kMinTileKeys = 256;

// A survivor to re-score: its row (within the thread's rows), its slot in the group, its key.
struct Pair {
  std::uint32_t row, slot, key;
};

// Per-thread scratch of scan_rows, kept between calls. The AVX2 files size its vectors through
// fit/fill (scan.cpp) so that std::vector's growth code is never compiled for AVX2.
struct Scratch {
  std::vector<float> scores, pv, canon, qpack, kpack, spack, sample, select;
  std::vector<float> vpack;  // used from its first 32-byte aligned float (align32)
  std::vector<float> cuts;
  std::vector<float> qpanel, ktail;  // the key-major top-k pass: rows packed in panels of 16, last keys
  std::vector<std::int32_t> lims;
  std::vector<double> state, alpha;
  std::vector<GemmFilterRow> rows;
  std::vector<std::uint64_t> order_keys;
  std::vector<std::size_t> offset, bucket_start;
  std::vector<Pair> order;
};

// v resized to n; its data.
float* fit(std::vector<float>& v, std::int64_t n);
// v set to n copies of x; its data.
float* fill(std::vector<float>& v, std::int64_t n, float x);
std::int32_t* fill(std::vector<std::int32_t>& v, std::int64_t n, std::int32_t x);

[[gnu::always_inline]] inline float* align32(float* p) {
  return reinterpret_cast<float*>((reinterpret_cast<std::uintptr_t>(p) + 31) & ~std::uintptr_t{31});
}

// Scans the shard for rows [r0, r1) of the block into out (lists, and the flash states when
// p.exact), on the AVX2 path or the portable one. k_norm_max: the largest key norm of the shard.
void scan_rows(bool avx2, const QueryBlock& queries, const KeyShard& keys, const PassParams& p, std::int64_t r0,
               std::int64_t r1, double k_norm_max, SeedMode seed, Scratch& w, LocalOutput out);

// The kernels that fill the rows' selections (and w.state when p.exact) for rows
// [r0, r0 + rows) of the block, w.rows (and w.state) already reset.
// kernels_generic.cpp: score tiles by OpenBLAS, then SSE2 or AVX2 row kernels.
void tile_pass(bool avx2, const QueryBlock& queries, const KeyShard& keys, const PassParams& p, std::int64_t r0,
               std::int64_t rows, Scratch& w);
// kernels_avx2.cpp: the fused top-k pass (no exact state).
void fused_topk_avx2(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, std::int64_t r0,
                     std::int64_t rows, SeedMode seed_mode, Scratch& w);
// exact_avx2.cpp: the fused exact pass; d is a multiple of 8.
void fused_exact_avx2(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, std::int64_t r0,
                      std::int64_t rows, SeedMode seed_mode, Scratch& w);

// Canonical re-scoring of the survivors of rows [r0, r0 + rows), then each row's list in out.
// Returns the rows (within these) whose seed the list does not prove: they must be scanned
// again without one.
std::vector<std::int64_t> finish_lists(const QueryBlock& queries, const KeyShard& keys, const PassParams& p,
                                       std::int64_t r0, std::int64_t rows, Scratch& w, LocalOutput out);

// s[j] <- exp(s[j] − mf) for j < count, with Σ e and Σ e² in double.
//
// Sixteen lanes (key j in lane j mod 16). Each lane sums e and e² in float over at most 8 keys
// (128 keys at a time: relative error < 8·2^-24 per partial sum), then adds that partial sum to
// its double accumulator, so the long sums over the shard stay double. The last count mod 16
// keys go to lanes 0, 1, ... one by one; the 16 lanes are summed in lane order at the end. The
// SSE2 and AVX2 versions do exactly these operations, lane by lane: bit-identical results.
constexpr std::int64_t kExpLanes = 16, kExpGroups = 8;

// The last keys of a row (from j) and the final sum of the lanes.
[[gnu::always_inline]] inline void exp_tail(float* s, std::int64_t j, std::int64_t count, float mf, double* part,
                                            double* part2, double& sum, double& sum2) {
  for (std::int64_t u = 0; j < count; ++j, ++u) {
    const float e = fast_exp_nonpos(s[j] - mf);
    s[j] = e;
    part[u] += e;
    part2[u] += e * e;  // a float product, as in the vector lanes
  }
  sum = 0, sum2 = 0;
  for (std::int64_t u = 0; u < kExpLanes; ++u) sum += part[u], sum2 += part2[u];
}

// The AVX2 row kernels of the tile pass (kernels_avx2.cpp), as kernels_generic.cpp's SSE2 ones.
float row_max_avx2(const float* s, std::int64_t count);
void exp_row_avx2(float* s, std::int64_t count, float mf, double& sum, double& sum2);
void filter_row_avx2(const float* s, std::int64_t count, std::uint32_t key0, GemmFilterRow& row, const float* q,
                     const KeyShard& keys, const PassParams& p);

}  // namespace ncsparse::cpu
