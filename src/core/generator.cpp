#include "ncsparse/generator.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>

#include "core/gen_math.hpp"
#include "cpu/generate.hpp"
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
  gen::PositionTables t;
  t.rope_inv_freq = inv_freq.data();
  gen::position_features(row, d, position, false, t);
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

namespace {

// The token rows X of the paper model: clipped normal or scaled uniform values.
cpu::StandardRows token_spec(const ModelParams& params_, std::int64_t first, std::int64_t rows) {
  cpu::StandardRows s;
  s.seed = params_.seed;
  s.tensor = Generator::kX;
  s.first = first;
  s.rows = rows;
  s.d = params_.d;
  s.uniform = params_.x_dist == XDistribution::Uniform;
  s.post = s.uniform ? cpu::Post::Scale : cpu::Post::Clamp;
  s.b = static_cast<float>(params_.bound);
  return s;
}

}  // namespace

void Generator::fill_row(Tensor tensor, std::int64_t row, bool uniform, float* out) const {
  cpu::StandardRows s;
  s.seed = params_.seed;
  s.tensor = tensor;
  s.first = row;
  s.rows = 1;
  s.d = params_.d;
  s.uniform = uniform;
  cpu::standard_rows(s, out);
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

GeneratorTables Generator::tables() const {
  GeneratorTables t;
  t.rope_inv_freq = rope_inv_freq_.empty() ? nullptr : rope_inv_freq_.data();
  t.sink_dir = sink_dir_.empty() ? nullptr : sink_dir_.data();
  t.sinks = params_.sinks;
  t.sink_boost = params_.sink_strength * std::sqrt(static_cast<double>(params_.d));
  return t;
}

void Generator::position_features(float* rows, std::int64_t count, const std::int64_t* positions, std::int64_t first,
                                  bool is_key) const {
  if (rope_inv_freq_.empty() && sink_dir_.empty()) return;
  const GeneratorTables g = tables();
  gen::PositionTables t{g.rope_inv_freq, g.sink_dir, g.sinks, g.sink_boost};
  const std::int64_t d = params_.d;
#pragma omp parallel for num_threads(count >= 1024 ? threads_ : 1) schedule(static)
  for (std::int64_t i = 0; i < count; ++i) {
    gen::position_features(rows + i * d, d, positions != nullptr ? positions[i] : first + i, is_key, t);
  }
}

void Generator::token_rows(std::span<const std::int64_t> positions, std::span<float> x) const {
  const std::int64_t d = params_.d;
  NCSPARSE_ASSERT(x.size() == positions.size() * static_cast<std::size_t>(d));
  for (std::size_t i = 0; i < positions.size(); ++i) {
    cpu::standard_rows(token_spec(params_, positions[i], 1), x.data() + i * d);
  }
}

void Generator::keys_values(std::int64_t begin, std::int64_t count, std::span<float> k, std::span<float> v) const {
  const std::int64_t d = params_.d;
  NCSPARSE_ASSERT(k.size() == static_cast<std::size_t>(count * d) && v.size() == k.size());
  if (count == 0) return;
  if (params_.model == InputModel::Gaussian) {
    cpu::StandardRows s;
    s.seed = params_.seed;
    s.first = begin;
    s.rows = count;
    s.d = d;
    s.post = cpu::Post::Scale;
    s.b = static_cast<float>(params_.sigma);
    s.tensor = kK;
    cpu::standard_rows(s, k.data(), threads_);
    s.tensor = kV;
    cpu::standard_rows(s, v.data(), threads_);
  } else {
    // Paper model: K = X·W_K and V = X·W_V in chunks of token rows. Each element is the
    // canonical in-order chain of fused multiply-adds (cpu/generate.hpp), so a row's values do
    // not depend on the chunk it falls in, nor on the rank count, the ISA or the device.
    constexpr std::int64_t kChunk = 4096;
    std::vector<float> x(static_cast<std::size_t>(std::min(count, kChunk) * d));
    for (std::int64_t c0 = 0; c0 < count; c0 += kChunk) {
      const std::int64_t rows = std::min(kChunk, count - c0);
      cpu::standard_rows(token_spec(params_, begin + c0, rows), x.data(), threads_);
      cpu::project_canonical(x.data(), w_k_.data(), rows, d, d, k.data() + c0 * d, threads_);
      cpu::project_canonical(x.data(), w_v_.data(), rows, d, d, v.data() + c0 * d, threads_);
    }
  }
  position_features(k.data(), count, nullptr, begin, true);
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
    cpu::StandardRows s;
    s.seed = params_.seed;
    s.tensor = kQ;
    s.rows = 1;
    s.d = d;
    s.post = cpu::Post::Scale;
    s.b = static_cast<float>(params_.sigma);
    for (std::size_t i = 0; i < positions.size(); ++i) {
      s.first = positions[i];
      cpu::standard_rows(s, q.data() + i * d);
    }
  } else {
    // Row by row (few rows), with the keys' canonical products.
    std::vector<float> x(static_cast<std::size_t>(d));
    for (std::size_t i = 0; i < positions.size(); ++i) {
      cpu::standard_rows(token_spec(params_, positions[i], 1), x.data());
      cpu::project_canonical(x.data(), w_q_.data(), 1, d, d, q.data() + i * d);
    }
  }
  position_features(q.data(), static_cast<std::int64_t>(positions.size()), positions.data(), 0, false);
}

std::vector<std::int64_t> sample_positions(std::int64_t n, std::int64_t m) {
  std::vector<std::int64_t> pos(static_cast<std::size_t>(m));
  for (std::int64_t i = 0; i < m; ++i) {
    pos[i] = static_cast<std::int64_t>((static_cast<__int128>(i + 1) * n) / m) - 1;
  }
  return pos;
}

}  // namespace ncsparse
