#include "ncsparse/generator.hpp"

#include <Random123/philox.h>
#include <cblas.h>
#include <Random123/boxmuller.hpp>
#include <Random123/uniform.hpp>

#include <algorithm>
#include <cmath>

#include "ncsparse/error.hpp"

namespace ncsparse {

std::string to_string(InputModel model) { return model == InputModel::Paper ? "paper" : "gaussian"; }
std::string to_string(XDistribution dist) { return dist == XDistribution::Gaussian ? "gaussian" : "uniform"; }

void validate_model(const ModelParams& m) {
  if (m.model == InputModel::Paper) {
    if (!(m.bound > 0) || !std::isfinite(m.bound)) throw usage_error("--B: the input bound must be > 0");
    if (!(m.weight_norm > 0) || !std::isfinite(m.weight_norm)) {
      throw usage_error("--R: the weight norm bound must be > 0");
    }
  } else if (!(m.sigma > 0) || !std::isfinite(m.sigma)) {
    throw usage_error("--sigma: must be > 0");
  }
}

void Generator::fill_row(Tensor tensor, std::int64_t row, bool uniform, float* out) const {
  using Rng = r123::Philox4x32;
  Rng rng;
  const Rng::key_type key = {
      {static_cast<std::uint32_t>(params_.seed), static_cast<std::uint32_t>(params_.seed >> 32)}};
  const auto urow = static_cast<std::uint64_t>(row);
  Rng::ctr_type ctr = {{tensor, static_cast<std::uint32_t>(urow), static_cast<std::uint32_t>(urow >> 32), 0}};
  const std::int64_t d = params_.d;
  for (std::int64_t c = 0; c < d; c += 4) {
    ctr[3] = static_cast<std::uint32_t>(c / 4);
    const Rng::ctr_type r = rng(ctr, key);
    float vals[4];
    if (uniform) {
      for (int i = 0; i < 4; ++i) vals[i] = r123::uneg11<float>(r[i]);
    } else {
      const r123::float2 a = r123::boxmuller(r[0], r[1]);
      const r123::float2 b = r123::boxmuller(r[2], r[3]);
      vals[0] = a.x, vals[1] = a.y, vals[2] = b.x, vals[3] = b.y;
    }
    for (std::int64_t i = 0; i < 4 && c + i < d; ++i) out[c + i] = vals[i];
  }
}

Generator::Generator(const ModelParams& params) : params_(params) {
  if (params_.model != InputModel::Paper) return;
  const std::int64_t d = params_.d;
  auto make = [&](Tensor t) {
    std::vector<float> w(static_cast<std::size_t>(d * d));
    for (std::int64_t i = 0; i < d; ++i) fill_row(t, i, false, w.data() + i * d);
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    for (float& x : w) x *= scale;
    return w;
  };
  w_q_ = make(kWQ);
  w_k_ = make(kWK);
  w_v_ = make(kWV);
  // Scale W_Q and W_K equally so that B²·‖W_Q W_Kᵀ‖_F = R exactly (in double).
  double frob2 = 0;
  for (std::int64_t i = 0; i < d; ++i) {
    for (std::int64_t j = 0; j < d; ++j) {
      double dot = 0;
      for (std::int64_t t = 0; t < d; ++t) dot += double(w_q_[i * d + t]) * double(w_k_[j * d + t]);
      frob2 += dot * dot;
    }
  }
  const double b2 = params_.bound * params_.bound;
  const double factor = std::sqrt(params_.weight_norm / (b2 * std::sqrt(frob2)));
  for (float& x : w_q_) x = static_cast<float>(x * factor);
  for (float& x : w_k_) x = static_cast<float>(x * factor);
}

void Generator::token_rows(std::span<const std::int64_t> positions, std::span<float> x) const {
  const std::int64_t d = params_.d;
  NCSPARSE_ASSERT(x.size() == positions.size() * static_cast<std::size_t>(d));
  const bool uniform = params_.x_dist == XDistribution::Uniform;
  const float b = static_cast<float>(params_.bound);
  for (std::size_t i = 0; i < positions.size(); ++i) {
    float* row = x.data() + i * d;
    fill_row(kX, positions[i], uniform, row);
    for (std::int64_t j = 0; j < d; ++j) row[j] = uniform ? row[j] * b : std::clamp(row[j], -b, b);
  }
}

void Generator::project(std::span<const float> x, std::int64_t rows, const std::vector<float>& w,
                        std::span<float> out) const {
  const int d = static_cast<int>(params_.d);
  if (rows == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), d, d, 1.0f, x.data(), d, w.data(), d,
              0.0f, out.data(), d);
}

void Generator::keys_values(std::int64_t begin, std::int64_t count, std::span<float> k, std::span<float> v) const {
  const std::int64_t d = params_.d;
  NCSPARSE_ASSERT(k.size() == static_cast<std::size_t>(count * d) && v.size() == k.size());
  if (params_.model == InputModel::Gaussian) {
    const float sigma = static_cast<float>(params_.sigma);
    for (std::int64_t i = 0; i < count; ++i) {
      fill_row(kK, begin + i, false, k.data() + i * d);
      fill_row(kV, begin + i, false, v.data() + i * d);
    }
    for (float& x : k) x *= sigma;
    for (float& x : v) x *= sigma;
    return;
  }
  // Paper model: K = X·W_K and V = X·W_V, one GEMM per chunk of kChunk rows. Chunks are aligned
  // to global multiples of kChunk and always computed whole, so each row comes out of the same
  // GEMM call wherever the shard boundaries fall: keys are bit-identical for every rank count
  // (a GEMM's result for a row may depend on where the row sits in the call).
  constexpr std::int64_t kChunk = 4096;
  std::vector<std::int64_t> pos(kChunk);
  std::vector<float> x(static_cast<std::size_t>(kChunk * d)), kc(x.size()), vc(x.size());
  const std::int64_t end = begin + count;
  for (std::int64_t c0 = begin - begin % kChunk; c0 < end; c0 += kChunk) {
    for (std::int64_t i = 0; i < kChunk; ++i) pos[static_cast<std::size_t>(i)] = c0 + i;
    token_rows(pos, x);
    project(x, kChunk, w_k_, kc);
    project(x, kChunk, w_v_, vc);
    const std::int64_t lo = std::max(begin, c0), hi = std::min(end, c0 + kChunk);
    std::copy(kc.begin() + (lo - c0) * d, kc.begin() + (hi - c0) * d, k.begin() + (lo - begin) * d);
    std::copy(vc.begin() + (lo - c0) * d, vc.begin() + (hi - c0) * d, v.begin() + (lo - begin) * d);
  }
}

void Generator::queries(std::span<const std::int64_t> positions, std::span<float> q) const {
  const std::int64_t d = params_.d;
  NCSPARSE_ASSERT(q.size() == positions.size() * static_cast<std::size_t>(d));
  if (params_.model == InputModel::Gaussian) {
    for (std::size_t i = 0; i < positions.size(); ++i) fill_row(kQ, positions[i], false, q.data() + i * d);
    const float sigma = static_cast<float>(params_.sigma);
    for (float& x : q) x *= sigma;
    return;
  }
  // Row by row in a fixed order (few rows): a query's values never depend on which other
  // positions share the call.
  std::vector<float> x(static_cast<std::size_t>(d));
  for (std::size_t i = 0; i < positions.size(); ++i) {
    token_rows({&positions[i], 1}, x);
    float* qi = q.data() + i * d;
    std::fill(qi, qi + d, 0.0f);
    for (std::int64_t t = 0; t < d; ++t) {
      const float a = x[static_cast<std::size_t>(t)];
      const float* wt = w_q_.data() + t * d;
      for (std::int64_t j = 0; j < d; ++j) qi[j] += a * wt[j];
    }
  }
}

std::vector<std::int64_t> sample_positions(std::int64_t n, std::int64_t m) {
  std::vector<std::int64_t> pos(static_cast<std::size_t>(m));
  for (std::int64_t i = 0; i < m; ++i) {
    pos[i] = static_cast<std::int64_t>((static_cast<__int128>(i + 1) * n) / m) - 1;
  }
  return pos;
}

}  // namespace ncsparse
