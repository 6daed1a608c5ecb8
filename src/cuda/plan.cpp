#include "cuda/plan.hpp"

#include <algorithm>

#include "ncsparse/candidate.hpp"
#include "ncsparse/error.hpp"
#include "ncsparse/flash.hpp"

namespace ncsparse::cuda {

std::int64_t plan_bytes(std::int64_t rows, std::int64_t tile, std::int64_t L, std::int64_t d) {
  const std::int64_t capacity = 2 * L + tile;
  const std::int64_t per_row = tile * 4                                          // score / P tile
                               + d * 4                                           // query row
                               + d * 4                                           // P·V tile
                               + static_cast<std::int64_t>(flash_row_size(d)) * 8  // m, l, l2, o
                               + 2 * capacity * (4 + 8)                          // candidates + scratch
                               + (tile / kChunk + 1) * (4 + 16)                  // chunk max, sums
                               + L * (8 + 8 + 8 + 16)                            // sort keys, sorted list
                               + 32;                                             // count, threshold, norms
  return rows * per_row;
}

PassPlan make_plan(std::int64_t rows, std::int64_t shard_keys, std::int64_t requested_tile, std::int64_t L,
                   std::int64_t d, std::int64_t budget) {
  constexpr std::int64_t kMinTile = 256;
  PassPlan plan;
  std::int64_t tile = std::max<std::int64_t>(1, std::min(requested_tile, std::max<std::int64_t>(shard_keys, 1)));
  // At most 65,535 rows per launch (the grid's y dimension) and rows × L below 2^31 (the sort's
  // segment offsets are int).
  std::int64_t r = std::clamp<std::int64_t>(rows, 1, std::min<std::int64_t>(65535, (std::int64_t(1) << 31) / (L + 1) - 1));
  r = std::max<std::int64_t>(r, 1);
  while (plan_bytes(r, tile, L, d) > budget) {
    if (tile > kMinTile) {
      tile = std::max(kMinTile, tile / 2);
    } else if (r > 1) {
      r = (r + 1) / 2;
    } else {
      throw Error(kExitUnavailable, "--backend cuda: one query row with a " + std::to_string(tile) +
                                        "-key tile and a list of " + std::to_string(L) +
                                        " candidates needs more device memory than is free (use a smaller --max-k)");
    }
  }
  plan.rows_per_launch = r;
  plan.tile = tile;
  plan.candidate_capacity = 2 * L + tile;
  plan.bytes = plan_bytes(r, tile, L, d);
  return plan;
}

std::int64_t auto_tile(std::int64_t rows) {
  constexpr std::int64_t kScores = std::int64_t(1) << 26, kMin = 4096, kMax = std::int64_t(1) << 20;
  const std::int64_t t = std::clamp(kScores / std::max<std::int64_t>(rows, 1), kMin, kMax);
  return t / kChunk * kChunk;
}

std::vector<std::int64_t> tile_sizes(std::int64_t keys, std::int64_t L, std::int64_t max_tile, bool grow) {
  std::vector<std::int64_t> sizes;
  max_tile = std::max<std::int64_t>(max_tile, 1);
  std::int64_t next = max_tile;
  if (grow) {
    const std::int64_t first = (std::max<std::int64_t>(2 * L, kChunk) + kChunk - 1) / kChunk * kChunk;
    next = std::min(first, max_tile);
  }
  for (std::int64_t done = 0; done < keys;) {
    const std::int64_t t = std::min(next, keys - done);
    sizes.push_back(t);
    done += t;
    if (grow) next = std::min(2 * next, max_tile);
  }
  return sizes;
}

}  // namespace ncsparse::cuda
