#include "cpu/scan.hpp"

#include <algorithm>
#include <cmath>

#include "core/score.hpp"
#include "ncsparse/flash.hpp"

namespace ncsparse::cpu {

float* fit(std::vector<float>& v, std::int64_t n) {
  v.resize(static_cast<std::size_t>(n));
  return v.data();
}
float* fill(std::vector<float>& v, std::int64_t n, float x) {
  v.assign(static_cast<std::size_t>(n), x);
  return v.data();
}
std::int32_t* fill(std::vector<std::int32_t>& v, std::int64_t n, std::int32_t x) {
  v.assign(static_cast<std::size_t>(n), x);
  return v.data();
}

namespace {

// Resets the selection (and the flash state) of rows [r0, r0 + rows): one margin per row.
void reset_rows(const QueryBlock& queries, const PassParams& p, std::int64_t r0, std::int64_t rows, double k_norm_max,
                Scratch& w) {
  const std::int64_t d = p.d;
  const std::size_t frow = flash_row_size(static_cast<std::size_t>(d));
  if (w.rows.size() < static_cast<std::size_t>(rows)) w.rows.resize(static_cast<std::size_t>(rows));
  w.state.resize(p.exact ? static_cast<std::size_t>(rows) * frow : 0);
  for (std::int64_t i = 0; i < rows; ++i) {
    const float* qi = queries.q + (r0 + i) * d;
    double s2 = 0;
    for (std::int64_t c = 0; c < d; ++c) s2 += double(qi[c]) * double(qi[c]);
    const double qn = std::sqrt(s2);
    // One margin for the whole row: every score's magnitude is at most scale·|q|·max|k|.
    const double bound = p.scale * qn * k_norm_max;
    w.rows[static_cast<std::size_t>(i)].reset(static_cast<std::size_t>(p.list_length),
                                              2 * score_margin(qn, k_norm_max, d, p.scale, 2 * bound));
    if (p.exact) flash_clear({w.state.data() + i * frow, frow});
  }
}

// The kernel for the path and the shape: the fused AVX2 kernels where they apply, else score
// tiles from OpenBLAS.
void run_kernel(bool avx2, const QueryBlock& queries, const KeyShard& keys, const PassParams& p, std::int64_t r0,
                std::int64_t rows, SeedMode seed_mode, Scratch& w) {
  if (avx2 && !p.exact) {
    fused_topk_avx2(queries, keys, p, r0, rows, seed_mode, w);
  } else if (avx2 && p.d % 8 == 0) {
    fused_exact_avx2(queries, keys, p, r0, rows, seed_mode, w);
  } else {
    tile_pass(avx2, queries, keys, p, r0, rows, w);
  }
}

}  // namespace

void scan_rows(bool avx2, const QueryBlock& queries, const KeyShard& keys, const PassParams& p, std::int64_t r0,
               std::int64_t r1, double k_norm_max, SeedMode seed_mode, Scratch& w, LocalOutput out) {
  const std::int64_t rows = r1 - r0;
  const std::size_t frow = flash_row_size(static_cast<std::size_t>(p.d));
  reset_rows(queries, p, r0, rows, k_norm_max, w);
  run_kernel(avx2, queries, keys, p, r0, rows, seed_mode, w);
  const std::vector<std::int64_t> unseeded = finish_lists(queries, keys, p, r0, rows, w, out);
  // Rows whose seed was too high: scanned again, alone and unseeded (their list is replaced).
  if (!unseeded.empty()) {
    Scratch again;
    for (const std::int64_t i : unseeded) {
      scan_rows(avx2, queries, keys, p, r0 + i, r0 + i + 1, k_norm_max, SeedMode::kOff, again, out);
    }
  }
  if (p.exact) {
    std::copy(w.state.begin(), w.state.begin() + rows * static_cast<std::ptrdiff_t>(frow),
              out.flash.begin() + r0 * static_cast<std::ptrdiff_t>(frow));
  }
}

}  // namespace ncsparse::cpu
