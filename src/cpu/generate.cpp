#include "cpu/generate.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/gen_math.hpp"
#include "cpu/isa.hpp"

namespace ncsparse::cpu {

namespace {

// Rows [r0, r1) of s (relative to s.first), portable.
void standard_rows_portable(const StandardRows& s, std::int64_t r0, std::int64_t r1, float* out) {
  const std::int64_t groups = (s.d + 3) / 4;
  for (std::int64_t i = r0; i < r1; ++i) {
    float* row = out + i * s.d;
    for (std::int64_t g = 0; g < groups; ++g) {
      float v[4];
      gen::standard_values(
          gen::philox_block(s.seed, s.tensor, static_cast<std::uint64_t>(s.first + i), static_cast<std::uint32_t>(g)),
          s.uniform, v);
      for (std::int64_t c = 0; c < 4 && 4 * g + c < s.d; ++c) {
        float x = v[c];
        if (s.post == Post::Clamp) x = std::min(std::max(x, -s.b), s.b);
        if (s.post == Post::Scale) x = gen::fmul(x, s.b);
        row[4 * g + c] = x;
      }
    }
  }
}

// Rows [r0, r1) of the projection, portable: a row of accumulators, t outermost, so that each
// element still sees its products in the order t = 0, 1, ...
void project_portable(const float* x, const float* w, std::int64_t r0, std::int64_t r1, std::int64_t inner,
                      std::int64_t cols, float* out) {
  for (std::int64_t i = r0; i < r1; ++i) {
    float* acc = out + i * cols;
    std::fill(acc, acc + cols, 0.0f);
    for (std::int64_t t = 0; t < inner; ++t) {
      const float a = x[i * inner + t];
      const float* wt = w + t * cols;
      for (std::int64_t j = 0; j < cols; ++j) acc[j] = gen::ffma(a, wt[j], acc[j]);
    }
  }
}

// Splits rows into one contiguous part per thread (at least `grain` rows each).
template <class F>
void split_rows(std::int64_t rows, int threads, std::int64_t grain, F&& f) {
  const std::int64_t parts =
      std::max<std::int64_t>(1, std::min<std::int64_t>(threads, rows / std::max<std::int64_t>(grain, 1)));
#pragma omp parallel for num_threads(static_cast <int>(parts)) schedule(static)
  for (std::int64_t p = 0; p < parts; ++p) f(rows * p / parts, rows * (p + 1) / parts);
}

}  // namespace

void portable::standard_rows(const StandardRows& s, float* out) { standard_rows_portable(s, 0, s.rows, out); }
void portable::project_canonical(const float* x, const float* w, std::int64_t rows, std::int64_t inner,
                                 std::int64_t cols, float* out) {
  project_portable(x, w, 0, rows, inner, cols, out);
}

void standard_rows(const StandardRows& s, float* out, int threads) {
  const bool avx2 = use_avx2(), avx512 = use_avx512();
  split_rows(s.rows, threads, 256, [&](std::int64_t r0, std::int64_t r1) {
    if (!avx2) return standard_rows_portable(s, r0, r1, out);
    StandardRows part = s;
    part.first = s.first + r0;
    part.rows = r1 - r0;
    if (avx512) return avx512::standard_rows(part, out + r0 * s.d);
    avx2::standard_rows(part, out + r0 * s.d);
  });
}

void project_canonical(const float* x, const float* w, std::int64_t rows, std::int64_t inner, std::int64_t cols,
                       float* out, int threads) {
  const bool avx2 = use_avx2(), avx512 = use_avx512();
  split_rows(rows, threads, 256, [&](std::int64_t r0, std::int64_t r1) {
    if (!avx2) return project_portable(x, w, r0, r1, inner, cols, out);
    if (avx512) return avx512::project_canonical(x + r0 * inner, w, r1 - r0, inner, cols, out + r0 * cols);
    avx2::project_canonical(x + r0 * inner, w, r1 - r0, inner, cols, out + r0 * cols);
  });
}

}  // namespace ncsparse::cpu
