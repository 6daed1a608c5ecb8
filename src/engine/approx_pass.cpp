// The approximators' dense passes over a rank's key tiles (approx.hpp).
#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/approx.hpp"
#include "ncsparse/error.hpp"
#include "ncsparse/flash.hpp"

namespace ncsparse::approx {

KeyTiles::KeyTiles(const float* k, const float* v, std::int64_t lo, std::int64_t count, std::int64_t d,
                   std::int64_t tile)
    : k_(k), v_(v), lo_(lo), count_(count), d_(d), tile_(std::max<std::int64_t>(tile, 1)) {}

KeyTiles::KeyTiles(InputSource* source, std::int64_t lo, std::int64_t count, std::int64_t d, std::int64_t tile)
    : source_(source), lo_(lo), count_(count), d_(d), tile_(std::max<std::int64_t>(tile, 1)) {
  const std::size_t size = static_cast<std::size_t>(std::min(tile_, std::max<std::int64_t>(count, 1)) * d);
  kbuf_.resize(size);
  vbuf_.resize(size);
}

void dense_flash(DenseKernels& kernels, KeyTiles& tiles, const Queries& q, const float* proj, std::int64_t d,
                 double scale, bool causal, std::span<double> states) {
  tiles.for_each([&](std::int64_t first, std::int64_t count, const float* k, const float* v) {
    kernels.flash_tile(q.q, q.rows, q.dq, q.pos, first, count, k, v, proj, d, scale, causal, states);
  });
}

void row_errors(DenseKernels& kernels, KeyTiles& tiles, const Queries& q, std::int64_t d, double scale, bool causal,
                std::span<const double> exact, std::span<Approximator* const> approximators, std::span<double> err) {
  const std::size_t frow = flash_row_size(static_cast<std::size_t>(d));
  const std::size_t A = approximators.size(), rows = static_cast<std::size_t>(q.rows);
  NCSPARSE_ASSERT(err.size() == A * rows * 3 && exact.size() == rows * frow && q.dq == d);
  std::vector<float> sc;
  std::vector<double> s, p, p_hat;
  tiles.for_each([&](std::int64_t first, std::int64_t count, const float* k, const float*) {
    sc.resize(rows * static_cast<std::size_t>(count));
    kernels.scores(q.q, k, q.rows, count, d, sc.data());
    for (Approximator* a : approximators) a->tile_begin(k, count);
    s.resize(static_cast<std::size_t>(count));
    p.resize(s.size());
    p_hat.resize(s.size());
    for (std::int64_t i = 0; i < q.rows; ++i) {
      const std::int64_t vis = causal ? std::clamp<std::int64_t>(q.pos[i] + 1 - first, 0, count) : count;
      const double m = exact[static_cast<std::size_t>(i) * frow], l = exact[static_cast<std::size_t>(i) * frow + 1];
      if (vis == 0 || !(l > 0)) continue;
      for (std::int64_t j = 0; j < vis; ++j) {
        s[j] = scale * double(sc[static_cast<std::size_t>(i * count + j)]);
        p[j] = std::exp(s[j] - m) / l;
      }
      for (std::size_t ai = 0; ai < A; ++ai) {
        approximators[ai]->row_weights(i, first, s.data(), vis, p_hat.data());
        double* e = err.data() + (ai * rows + static_cast<std::size_t>(i)) * 3;
        double l1 = 0, l2 = 0, linf = e[2];
        for (std::int64_t j = 0; j < vis; ++j) {
          const double diff = std::abs(p_hat[j] - p[j]);
          l1 += diff;
          l2 += diff * diff;
          linf = std::max(linf, diff);
        }
        e[0] += l1;
        e[1] += l2;
        e[2] = std::isnan(l1) ? std::numeric_limits<double>::quiet_NaN() : linf;
      }
    }
  });
}

}  // namespace ncsparse::approx
