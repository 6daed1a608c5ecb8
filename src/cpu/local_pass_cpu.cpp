// CPU backend: BLAS score tiles, a threshold-filtered top-L per row, and the flash state
// updated from the same tile. Threads split the rows of the query block; each thread runs its
// own single-threaded GEMMs so that no two levels of threading compete for the cores.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/fastexp.hpp"
#include "core/score.hpp"
#include "ncsparse/backend.hpp"
#include "ncsparse/error.hpp"
#include "ncsparse/flash.hpp"

extern "C" void openblas_set_num_threads(int);

namespace ncsparse {
namespace {

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  void local_pass(const QueryBlock& queries, const KeyShard& keys, const PassParams& params, LocalOutput out) override;
};

// Largest of s[0..count), in independent lanes so that the loop vectorises.
float row_max(const float* s, std::int64_t count) {
  constexpr std::int64_t kLanes = 16;
  float lane[kLanes];
  std::fill(lane, lane + kLanes, -std::numeric_limits<float>::infinity());
  std::int64_t j = 0;
  for (; j + kLanes <= count; j += kLanes) {
    for (std::int64_t u = 0; u < kLanes; ++u) lane[u] = s[j + u] > lane[u] ? s[j + u] : lane[u];
  }
  for (std::int64_t u = 0; j < count; ++j, ++u) lane[u] = s[j] > lane[u] ? s[j] : lane[u];
  float best = lane[0];
  for (std::int64_t u = 1; u < kLanes; ++u) best = lane[u] > best ? lane[u] : best;
  return best;
}

// Scans the shard for rows [r0, r1) of the block. k_norm_max: the largest key norm of the shard.
void scan_rows(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, std::int64_t r0, std::int64_t r1,
               double k_norm_max, LocalOutput out) {
  const std::int64_t d = p.d;
  const std::int64_t rows = r1 - r0;
  const std::int64_t L = p.list_length;
  const std::int64_t T = std::max<std::int64_t>(1, std::min(p.tile, keys.count));
  const std::size_t frow = flash_row_size(static_cast<std::size_t>(d));

  std::vector<float> scores(static_cast<std::size_t>(rows * T));
  std::vector<float> pv(p.exact ? static_cast<std::size_t>(rows * d) : 0);
  std::vector<TopKRow> topk(static_cast<std::size_t>(rows));
  for (auto& t : topk) t.reset(static_cast<std::size_t>(L));
  // Running state in double: m, l, l2 and o per row.
  std::vector<double> state(static_cast<std::size_t>(rows) * frow);
  for (std::int64_t i = 0; i < rows; ++i) flash_clear({state.data() + i * frow, frow});

  std::vector<double> q_norm(static_cast<std::size_t>(rows));
  for (std::int64_t i = 0; i < rows; ++i) {
    double s2 = 0;
    for (std::int64_t c = 0; c < d; ++c)
      s2 += double(queries.q[(r0 + i) * d + c]) * double(queries.q[(r0 + i) * d + c]);
    q_norm[static_cast<std::size_t>(i)] = std::sqrt(s2);
  }
  std::int64_t max_pos = std::numeric_limits<std::int64_t>::min();
  for (std::int64_t i = r0; i < r1; ++i) max_pos = std::max(max_pos, queries.positions[i]);

  for (std::int64_t t0 = 0; t0 < keys.count; t0 += T) {
    const std::int64_t tc = std::min(T, keys.count - t0);
    const std::int64_t g0 = keys.begin + t0;  // global index of the tile's first key
    if (p.causal && g0 > max_pos) break;      // every later tile is masked for every row
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(tc),
                static_cast<int>(d), static_cast<float>(p.scale), queries.q + r0 * d, static_cast<int>(d),
                keys.k + t0 * d, static_cast<int>(d), 0.0f, scores.data(), static_cast<int>(tc));

    bool any_visible = false;
    for (std::int64_t i = 0; i < rows; ++i) {
      float* s = scores.data() + i * tc;
      std::int64_t limit = tc;
      if (p.causal) limit = std::clamp<std::int64_t>(queries.positions[r0 + i] - g0 + 1, 0, tc);
      TopKRow& top = topk[static_cast<std::size_t>(i)];
      const float* qi = queries.q + (r0 + i) * d;
      // The GEMM score filters; a key that may beat the threshold is re-scored canonically.
      auto cut_of = [&](float threshold) {
        if (!std::isfinite(threshold)) return threshold;
        return threshold -
               score_margin(q_norm[static_cast<std::size_t>(i)], k_norm_max, d, p.scale, std::abs(threshold));
      };
      float cut = cut_of(top.threshold());
      for (std::int64_t j = 0; j < limit; ++j) {
        if (s[j] > cut) {
          top.push(canonical_score(qi, keys.k + (t0 + j) * d, d, p.scale), g0 + j);
          cut = cut_of(top.threshold());
        }
      }
      if (!p.exact) continue;

      double* st = state.data() + i * frow;
      if (limit == 0) {
        std::fill(s, s + tc, 0.0f);  // no weight from this tile
        continue;
      }
      any_visible = true;
      float tile_max = row_max(s, limit);
      const double m_new = std::max(st[0], static_cast<double>(tile_max));
      const double alpha = std::exp(st[0] - m_new);  // 0 when the row was empty
      const float mf = static_cast<float>(m_new);
      // Exponentials in place, with the sums in kLanes independent partial sums so that the
      // loop vectorises without reassociating floating point (no -ffast-math).
      constexpr std::int64_t kLanes = 16;
      double part[kLanes] = {}, part2[kLanes] = {};
      std::int64_t j = 0;
      for (; j + kLanes <= limit; j += kLanes) {
        for (std::int64_t u = 0; u < kLanes; ++u) {
          const float e = fast_exp_nonpos(s[j + u] - mf);
          s[j + u] = e;
          part[u] += e;
          part2[u] += double(e) * double(e);
        }
      }
      for (std::int64_t u = 0; j < limit; ++j, ++u) {
        const float e = fast_exp_nonpos(s[j] - mf);
        s[j] = e;
        part[u] += e;
        part2[u] += double(e) * double(e);
      }
      double sum = 0, sum2 = 0;
      for (std::int64_t u = 0; u < kLanes; ++u) sum += part[u], sum2 += part2[u];
      std::fill(s + limit, s + tc, 0.0f);
      st[0] = m_new;
      st[1] = st[1] * alpha + sum;
      st[2] = st[2] * alpha * alpha + sum2;
      for (std::int64_t c = 0; c < d; ++c) st[kFlashHeader + c] *= alpha;
    }
    if (p.exact && any_visible) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), static_cast<int>(d),
                  static_cast<int>(tc), 1.0f, scores.data(), static_cast<int>(tc), keys.v + t0 * d, static_cast<int>(d),
                  0.0f, pv.data(), static_cast<int>(d));
      for (std::int64_t i = 0; i < rows; ++i) {
        double* o = state.data() + i * frow + kFlashHeader;
        const float* x = pv.data() + i * d;
        for (std::int64_t c = 0; c < d; ++c) o[c] += x[c];
      }
    }
  }

  for (std::int64_t i = 0; i < rows; ++i) {
    topk[static_cast<std::size_t>(i)].finish(
        out.lists.subspan(static_cast<std::size_t>((r0 + i) * L), static_cast<std::size_t>(L)));
    if (p.exact) {
      std::copy(state.begin() + i * frow, state.begin() + (i + 1) * frow,
                out.flash.begin() + (r0 + i) * static_cast<std::ptrdiff_t>(frow));
    }
  }
}

void CpuBackend::local_pass(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, LocalOutput out) {
  NCSPARSE_ASSERT(out.lists.size() == static_cast<std::size_t>(queries.rows * p.list_length));
  NCSPARSE_ASSERT(!p.exact || out.flash.size() == static_cast<std::size_t>(queries.rows) *
                                                      flash_row_size(static_cast<std::size_t>(p.d)));
  openblas_set_num_threads(1);
  double k_norm_max = 0;
  for (std::int64_t j = 0; j < keys.count; ++j) {
    double s2 = 0;
    for (std::int64_t c = 0; c < p.d; ++c) s2 += double(keys.k[j * p.d + c]) * double(keys.k[j * p.d + c]);
    k_norm_max = std::max(k_norm_max, s2);
  }
  k_norm_max = std::sqrt(k_norm_max);
  const int threads = static_cast<int>(std::clamp<std::int64_t>(p.threads, 1, std::max<std::int64_t>(queries.rows, 1)));
  const std::int64_t per = (queries.rows + threads - 1) / threads;
#pragma omp parallel for num_threads(threads) schedule(static, 1)
  for (int t = 0; t < threads; ++t) {
    const std::int64_t r0 = std::min(queries.rows, t * per);
    const std::int64_t r1 = std::min(queries.rows, r0 + per);
    if (r0 < r1) scan_rows(queries, keys, p, r0, r1, k_norm_max, out);
  }
}

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace ncsparse
