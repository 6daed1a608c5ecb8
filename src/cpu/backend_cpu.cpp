// CPU backend: score tiles (register-blocked AVX2 + FMA kernels of its own, or OpenBLAS on the
// portable path), a threshold-filtered top-L per row (select.hpp), and the flash state updated
// from the same tile. Threads split the rows of the query block; each thread runs its own
// kernels or single-threaded GEMMs so that no two levels of threading compete for the cores.
//
// Two code paths, chosen once at run time: the portable one (SSE2, any x86-64) and one for
// AVX2 + FMA (the *_avx2.cpp files, compiled for it). Every file of the backend is compiled
// without floating-point contraction (CMakeLists.txt), so every canonical score and list is
// bit-identical between them; NCSPARSE_CPU_ISA=generic forces the portable path (for checking
// that). The exact state is computed by OpenBLAS tiles on the portable path (and on AVX2 when d
// is not a multiple of 8) and by a fused kernel of its own on AVX2 (exact_avx2.cpp): the two
// agree to float rounding, not bit for bit. Files: see scan.hpp.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cpu/isa.hpp"
#include "cpu/norms.hpp"
#include "cpu/scan.hpp"
#include "ncsparse/backend.hpp"
#include "ncsparse/error.hpp"
#include "ncsparse/flash.hpp"

extern "C" void openblas_set_num_threads(int);

namespace ncsparse {
namespace {

using cpu::Scratch;

// Largest key norm of a shard (exact: a max of exactly ordered sums, cpu/norms.hpp).
double key_norm_max(const KeyShard& keys, std::int64_t d, int threads) {
  constexpr std::int64_t kBlock = 4096;
  const std::int64_t blocks = (keys.count + kBlock - 1) / kBlock;
  double best = 0;
#pragma omp parallel for num_threads(threads) reduction(max : best) schedule(static)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t r0 = b * kBlock;
    best = std::max(best, cpu::max_row_norm_sq(keys.k + r0 * d, std::min(kBlock, keys.count - r0), d));
  }
  return std::sqrt(best);
}

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  void load_shard(const KeyShard& keys, const PassParams& p) override {
    loaded_ = keys;
    loaded_d_ = p.d;
    loaded_norm_ = p.k_norm_max >= 0 ? p.k_norm_max : key_norm_max(keys, p.d, std::max(1, p.threads));
  }
  void local_pass(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, LocalOutput out) override;
  DenseKernels* dense_kernels() override { return dense_.get(); }

 private:
  std::unique_ptr<DenseKernels> dense_ = make_cpu_dense_kernels();
  // The shard given to load_shard stays unchanged for the job: its norm is computed once.
  KeyShard loaded_{};
  std::int64_t loaded_d_ = -1;
  double loaded_norm_ = 0;
  std::vector<Scratch> scratch_;
};

void CpuBackend::local_pass(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, LocalOutput out) {
  NCSPARSE_ASSERT(out.lists.size() == static_cast<std::size_t>(queries.rows * p.list_length));
  NCSPARSE_ASSERT(!p.exact || out.flash.size() == static_cast<std::size_t>(queries.rows) *
                                                      flash_row_size(static_cast<std::size_t>(p.d)));
  NCSPARSE_ASSERT(keys.count < (std::int64_t{1} << 32));  // keys are held as 32-bit shard offsets
  openblas_set_num_threads(1);
  const bool same =
      keys.k == loaded_.k && keys.count == loaded_.count && keys.begin == loaded_.begin && p.d == loaded_d_;
  const double k_norm_max = same ? loaded_norm_ : key_norm_max(keys, p.d, std::max(1, p.threads));
  const int threads = static_cast<int>(std::clamp<std::int64_t>(p.threads, 1, std::max<std::int64_t>(queries.rows, 1)));
  if (scratch_.size() < static_cast<std::size_t>(threads)) scratch_.resize(static_cast<std::size_t>(threads));
  const std::int64_t per = (queries.rows + threads - 1) / threads;
  const bool avx2 = cpu::use_avx2();
  const cpu::SeedMode seed = cpu::seed_mode();  // throws on a bad value, outside the parallel region
#pragma omp parallel for num_threads(threads) schedule(static, 1)
  for (int t = 0; t < threads; ++t) {
    const std::int64_t r0 = std::min(queries.rows, t * per);
    const std::int64_t r1 = std::min(queries.rows, r0 + per);
    if (r0 >= r1) continue;
    cpu::scan_rows(avx2, queries, keys, p, r0, r1, k_norm_max, seed, scratch_[static_cast<std::size_t>(t)], out);
  }
}

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace ncsparse
