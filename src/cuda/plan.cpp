#include "cuda/plan.hpp"

#include <algorithm>

#include "ncsparse/candidate.hpp"
#include "ncsparse/error.hpp"
#include "ncsparse/flash.hpp"

namespace ncsparse::cuda {

std::int64_t plan_bytes(std::int64_t rows, std::int64_t tile, std::int64_t L, std::int64_t d) {
  const std::int64_t capacity = L + tile;
  const std::int64_t per_row = tile * 4                                          // score / P tile
                               + d * 4                                           // query row
                               + d * 4                                           // P·V tile
                               + static_cast<std::int64_t>(flash_row_size(d)) * 8  // m, l, l2, o
                               + 2 * capacity * (4 + 8)                          // candidates + scratch
                               + 32;                                             // count, threshold, norms
  return rows * per_row;
}

PassPlan make_plan(std::int64_t rows, std::int64_t shard_keys, std::int64_t requested_tile, std::int64_t L,
                   std::int64_t d, std::int64_t budget) {
  constexpr std::int64_t kMinTile = 256;
  PassPlan plan;
  std::int64_t tile = std::max<std::int64_t>(1, std::min(requested_tile, std::max<std::int64_t>(shard_keys, 1)));
  std::int64_t r = std::max<std::int64_t>(rows, 1);
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
  plan.candidate_capacity = L + tile;
  plan.bytes = plan_bytes(r, tile, L, d);
  return plan;
}

}  // namespace ncsparse::cuda
