// The exact pass's own numbers: outputs o = Σ p_j v_j from the merged flash states, Σ p², the
// score range and the ε-sparsity counts.
#include <algorithm>
#include <cmath>

#include "cpu/norms.hpp"
#include "engine/job.hpp"
#include "ncsparse/flash.hpp"

namespace ncsparse::engine {

std::int64_t visible_keys(std::int64_t pos, std::int64_t n, bool causal) { return causal ? std::min(pos + 1, n) : n; }

void exact_outputs(const Job& job, Block& b) {
  const std::size_t ru = static_cast<std::size_t>(b.rows), du = static_cast<std::size_t>(job.d);
  const std::size_t frow = flash_row_size(du);
  b.n_visible.resize(ru);
  for (std::size_t i = 0; i < ru; ++i) b.n_visible[i] = visible_keys(b.pos[i], job.n, job.config.causal);
  if (b.flash.empty()) return;
  b.o_exact.resize(ru * du);
  b.sum_sq_all.resize(ru);
  for (std::size_t i = 0; i < ru; ++i) {
    const double* fl = b.flash.data() + i * frow;
    flash_output({fl, frow}, {b.o_exact.data() + i * du, du});
    b.sum_sq_all[i] = fl[1] > 0 ? fl[2] / (fl[1] * fl[1]) : 0.0;
  }
}

void exact_statistics(const Job& job, const Block& b, std::span<double> score_max,
                      std::span<std::vector<double>> sparsity_counts) {
  if (b.flash.empty()) return;
  for (std::int64_t i = 0; i < b.rows; ++i) {
    const double* fl = b.exact(i, job.d);
    const std::size_t row = static_cast<std::size_t>(b.first + i);
    if (fl[1] > 0) score_max[row] = fl[0];
    if (fl[1] <= 0) continue;
    const std::span<const Candidate> valid = b.valid(i, job.L);
    const std::int64_t nv = b.n_visible[static_cast<std::size_t>(i)];
    for (std::size_t e = 0; e < sparsity_counts.size(); ++e) {
      const double cut = fl[0] + std::log(job.config.sparsity_eps[e] * fl[1]);
      std::size_t count = 0;
      while (count < valid.size() && static_cast<double>(valid[count].score) > cut) ++count;
      const bool covered = count < valid.size() || valid.size() == static_cast<std::size_t>(nv);
      sparsity_counts[e][row] = covered ? static_cast<double>(count) : kNaN;
    }
  }
}

double max_row_norm_bound(const float* x, std::int64_t rows, std::int64_t d, int threads) {
  return max_row_norm(x, rows, d, threads) * norm_bound_margin(d);
}

double max_row_norm(const float* v, std::int64_t rows, std::int64_t d, int threads) {
  // A max of exactly ordered sums (cpu/norms.hpp): the same for any thread count and path.
  constexpr std::int64_t kBlock = 4096;
  const std::int64_t blocks = (rows + kBlock - 1) / kBlock;
  double most = 0;
#pragma omp parallel for num_threads(rows >= 65536 ? std::max(threads, 1) : 1) reduction(max : most) schedule(static)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t r0 = b * kBlock;
    most = std::max(most, cpu::max_row_norm_sq(v + r0 * d, std::min(kBlock, rows - r0), d));
  }
  return std::sqrt(most);
}

ShardNorms generate_with_norms(InputSource& source, std::int64_t first, std::int64_t rows, std::int64_t d,
                               int threads, std::span<float> k, std::span<float> v) {
  // 2048 rows of K and V per thread: 1 MiB at d = 64, inside a core's L2.
  constexpr std::int64_t kPerThread = 2048;
  const int t = std::max(threads, 1);
  const std::int64_t chunk = kPerThread * t;
  const std::size_t du = static_cast<std::size_t>(d);
  ShardNorms n;
  double k_sq_all = 0;
  for (std::int64_t c0 = 0; c0 < rows; c0 += chunk) {
    const std::int64_t count = std::min(chunk, rows - c0);
    const std::size_t at = static_cast<std::size_t>(c0) * du, size = static_cast<std::size_t>(count) * du;
    source.keys_values(first + c0, count, k.subspan(at, size), v.subspan(at, size));
    const std::int64_t parts = (count + kPerThread - 1) / kPerThread;
    double v_sq = n.v_sq, k_sq = k_sq_all;
#pragma omp parallel for num_threads(static_cast<int>(std::min<std::int64_t>(t, parts))) \
    reduction(max : v_sq, k_sq) schedule(static)
    for (std::int64_t p = 0; p < parts; ++p) {
      const std::int64_t r0 = p * kPerThread, r = std::min(kPerThread, count - r0);
      const float* kp = k.data() + at + static_cast<std::size_t>(r0) * du;
      const float* vp = v.data() + at + static_cast<std::size_t>(r0) * du;
      v_sq = std::max(v_sq, cpu::max_row_norm_sq(vp, r, d));
      k_sq = std::max(k_sq, cpu::max_row_norm_sq(kp, r, d));
    }
    n.v_sq = v_sq;
    k_sq_all = k_sq;
  }
  n.k_bound = std::sqrt(k_sq_all) * norm_bound_margin(d);  // = max_row_norm_bound of the shard's K
  return n;
}

}  // namespace ncsparse::engine
