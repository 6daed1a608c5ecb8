#include "ncsparse/generator.hpp"

#include <Random123/philox.h>
#include <cblas.h>
#include <Random123/boxmuller.hpp>
#include <Random123/uniform.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>

#include "ncsparse/error.hpp"

namespace ncsparse {

std::string to_string(InputModel model) { return model == InputModel::Paper ? "paper" : "gaussian"; }
std::string to_string(XDistribution dist) { return dist == XDistribution::Gaussian ? "gaussian" : "uniform"; }

namespace {

// The value among `all` whose to_string is name.
template <class E>
bool parse_named(const std::string& name, std::initializer_list<E> all, E& out) {
  for (E e : all) {
    if (name == to_string(e)) {
      out = e;
      return true;
    }
  }
  return false;
}

}  // namespace

bool parse_input_model(const std::string& name, InputModel& model) {
  return parse_named(name, {InputModel::Paper, InputModel::Gaussian}, model);
}

bool parse_x_distribution(const std::string& name, XDistribution& dist) {
  return parse_named(name, {XDistribution::Gaussian, XDistribution::Uniform}, dist);
}

namespace {
// Shortest %g text that reads back exactly.
std::string short_num(double x) {
  if (x == std::floor(x) && std::abs(x) < 1e15) return std::to_string(static_cast<long long>(x));
  char buf[64];
  for (int p = 1; p <= 17; ++p) {
    std::snprintf(buf, sizeof buf, "%.*g", p, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  return buf;
}
}  // namespace

std::string position_label(const ModelParams& p) {
  std::string s;
  if (p.rope_theta > 0) s += ",rope=" + short_num(p.rope_theta);
  if (p.sinks > 0) s += ",sinks=" + std::to_string(p.sinks) + "x" + short_num(p.sink_strength);
  if (p.tied) s += ",tied";
  return s;
}

std::vector<double> rope_inverse_frequencies(double theta, std::int64_t d) {
  std::vector<double> f(static_cast<std::size_t>(d / 2));
  for (std::int64_t i = 0; i < d / 2; ++i) {
    f[static_cast<std::size_t>(i)] = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(d));
  }
  return f;
}

void apply_rope(float* row, std::int64_t d, std::int64_t position, const std::vector<double>& inv_freq) {
  const double p = static_cast<double>(position);
  for (std::int64_t i = 0; i < d / 2; ++i) {
    // The angle reduced modulo 2π in double: positions reach millions, so p·f needs the precision.
    const double angle = std::fmod(p * inv_freq[static_cast<std::size_t>(i)], 2 * M_PI);
    const double c = std::cos(angle), s = std::sin(angle);
    const double x = row[2 * i], y = row[2 * i + 1];
    row[2 * i] = static_cast<float>(x * c - y * s);
    row[2 * i + 1] = static_cast<float>(x * s + y * c);
  }
}

void validate_model(const ModelParams& m) {
  if (m.rope_theta < 0 || !std::isfinite(m.rope_theta) || (m.rope_theta > 0 && m.rope_theta <= 1)) {
    throw usage_error("--rope-theta: must be 0 (off) or a base > 1, e.g. 10000");
  }
  if (m.rope_theta > 0 && m.d % 2 != 0) {
    throw usage_error("--rope-theta: RoPE rotates pairs of coordinates and needs an even --d (got " +
                      std::to_string(m.d) + ")");
  }
  if (m.sinks < 0) throw usage_error("--sinks: the number of sink positions must be >= 0");
  if (!std::isfinite(m.sink_strength) || m.sink_strength < 0) {
    throw usage_error("--sink-strength: must be a finite number >= 0");
  }
  if (m.sinks > 0 && m.d < 2) throw usage_error("--sinks: needs --d >= 2");
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
  const std::int64_t d = params_.d;
  if (params_.rope_theta > 0 && d % 2 == 0) rope_inv_freq_ = rope_inverse_frequencies(params_.rope_theta, d);
  if (params_.sinks > 0) {
    std::vector<float> u(static_cast<std::size_t>(d));
    fill_row(kSinkDir, 0, false, u.data());
    double norm2 = 0;
    for (float x : u) norm2 += double(x) * double(x);
    const double inv = 1.0 / std::sqrt(norm2);
    for (float x : u) sink_dir_.push_back(double(x) * inv);
  }
  if (params_.model != InputModel::Paper) return;
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

void Generator::position_features(float* row, std::int64_t position, bool is_key) const {
  const std::int64_t d = params_.d;
  if (!rope_inv_freq_.empty()) apply_rope(row, d, position, rope_inv_freq_);
  if (sink_dir_.empty()) return;
  double along = 0;
  for (std::int64_t j = 0; j < d; ++j) along += double(row[j]) * sink_dir_[static_cast<std::size_t>(j)];
  double add = -along;
  if (!is_key) add += 1.0;
  if (is_key && position < params_.sinks) add += params_.sink_strength * std::sqrt(static_cast<double>(d));
  for (std::int64_t j = 0; j < d; ++j)
    row[j] = static_cast<float>(row[j] + add * sink_dir_[static_cast<std::size_t>(j)]);
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
    for (std::int64_t i = 0; i < count; ++i) position_features(k.data() + i * d, begin + i, true);
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
  for (std::int64_t i = 0; i < count; ++i) position_features(k.data() + i * d, begin + i, true);
}

void Generator::queries(std::span<const std::int64_t> positions, std::span<float> q) const {
  const std::int64_t d = params_.d;
  NCSPARSE_ASSERT(q.size() == positions.size() * static_cast<std::size_t>(d));
  if (params_.tied) {  // Q = K: each query is the key at its position
    std::vector<float> v(static_cast<std::size_t>(d));
    for (std::size_t i = 0; i < positions.size(); ++i) {
      keys_values(positions[i], 1, {q.data() + i * d, static_cast<std::size_t>(d)}, v);
    }
    return;
  }
  if (params_.model == InputModel::Gaussian) {
    for (std::size_t i = 0; i < positions.size(); ++i) fill_row(kQ, positions[i], false, q.data() + i * d);
    const float sigma = static_cast<float>(params_.sigma);
    for (float& x : q) x *= sigma;
    for (std::size_t i = 0; i < positions.size(); ++i) position_features(q.data() + i * d, positions[i], false);
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
    position_features(qi, positions[i], false);
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
