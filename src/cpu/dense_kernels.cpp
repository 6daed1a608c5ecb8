// The CPU's dense kernels (backend.hpp): OpenBLAS for the products, double for the sums.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ncsparse/backend.hpp"
#include "ncsparse/error.hpp"
#include "ncsparse/flash.hpp"

extern "C" void openblas_set_num_threads(int);

namespace ncsparse {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

class CpuDenseKernels final : public DenseKernels {
 public:
  // Ranks are the unit of parallelism across cores and --threads within a rank; BLAS threads
  // on top would oversubscribe the cores.
  CpuDenseKernels() { openblas_set_num_threads(1); }

  void scores(const float* a, const float* b, std::int64_t rows, std::int64_t cols, std::int64_t inner,
              float* c) override {
    if (rows == 0 || cols == 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(rows), int(cols), int(inner), 1.0f, a, int(inner), b,
                int(inner), 0.0f, c, int(cols));
  }

  void project(const float* a, const float* b, std::int64_t rows, std::int64_t cols, std::int64_t inner,
               float* c) override {
    if (rows == 0 || cols == 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(cols), int(inner), 1.0f, a, int(inner), b,
                int(cols), 0.0f, c, int(cols));
  }

  void flash_tile(const float* q, std::int64_t rows, std::int64_t dq, const std::int64_t* pos, std::int64_t first,
                  std::int64_t count, const float* k, const float* v, const float* proj, std::int64_t d, double scale,
                  bool causal, std::span<double> states) override;

  void key_set_flash(const float* q, std::span<const KeyRange> ranges, const KeyShard& keys, std::int64_t d,
                     double scale, std::span<double> state) override;

 private:
  std::vector<float> kp_, sc_;
  std::vector<double> w_, vd_, one_;
};

void CpuDenseKernels::flash_tile(const float* q, std::int64_t rows, std::int64_t dq, const std::int64_t* pos,
                                 std::int64_t first, std::int64_t count, const float* k, const float* v,
                                 const float* proj, std::int64_t d, double scale, bool causal,
                                 std::span<double> states) {
  const std::size_t frow = flash_row_size(static_cast<std::size_t>(d));
  NCSPARSE_ASSERT(states.size() == static_cast<std::size_t>(rows) * frow);
  const float* keys = k;
  if (proj != nullptr) {
    kp_.resize(static_cast<std::size_t>(count * dq));
    project(k, proj, count, dq, d, kp_.data());
    keys = kp_.data();
  }
  sc_.resize(static_cast<std::size_t>(rows * count));
  scores(q, keys, rows, count, dq, sc_.data());
  w_.assign(static_cast<std::size_t>(rows * count), 0.0);
  vd_.assign(v, v + count * d);
  for (std::int64_t i = 0; i < rows; ++i) {
    const std::int64_t vis = causal ? std::clamp<std::int64_t>(pos[i] + 1 - first, 0, count) : count;
    if (vis == 0) continue;
    const float* si = sc_.data() + i * count;
    double* wi = w_.data() + i * count;
    double tile_max = -kInf;
    for (std::int64_t j = 0; j < vis; ++j) tile_max = std::max(tile_max, scale * double(si[j]));
    double* st = states.data() + static_cast<std::size_t>(i) * frow;
    const double m_new = std::max(st[0], tile_max);
    const double a = std::exp(st[0] - m_new);  // 0 while the row was empty (m = −∞)
    double sum = 0, sum2 = 0;
    for (std::int64_t j = 0; j < vis; ++j) {
      const double e = std::exp(scale * double(si[j]) - m_new);
      wi[j] = e;
      sum += e;
      sum2 += e * e;
    }
    st[0] = m_new;
    st[1] = st[1] * a + sum;
    st[2] = st[2] * a * a + sum2;
    for (std::int64_t c = 0; c < d; ++c) st[kFlashHeader + c] *= a;
  }
  if (rows > 0 && count > 0) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(d), int(count), 1.0, w_.data(), int(count),
                vd_.data(), int(d), 1.0, states.data() + kFlashHeader, int(frow));
  }
}

void CpuDenseKernels::key_set_flash(const float* q, std::span<const KeyRange> ranges, const KeyShard& keys,
                                    std::int64_t d, double scale, std::span<double> state) {
  const std::size_t frow = flash_row_size(static_cast<std::size_t>(d));
  one_.resize(frow);
  for (const KeyRange& r : ranges) {
    const std::int64_t a = std::max(r.begin, keys.begin), b = std::min(r.end, keys.begin + keys.count);
    for (std::int64_t j = a; j < b; ++j) {
      const float* kr = keys.k + (j - keys.begin) * d;
      double s = 0;
      for (std::int64_t c = 0; c < d; ++c) s += double(q[c]) * double(kr[c]);
      one_[0] = s * scale;
      one_[1] = 1;
      one_[2] = 1;
      const float* vr = keys.v + (j - keys.begin) * d;
      for (std::int64_t c = 0; c < d; ++c) one_[kFlashHeader + c] = vr[c];
      flash_merge(state, one_);
    }
  }
}

}  // namespace

std::unique_ptr<DenseKernels> make_cpu_dense_kernels() { return std::make_unique<CpuDenseKernels>(); }

}  // namespace ncsparse
