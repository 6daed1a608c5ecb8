// Deterministic input generator (PAPERS.md §2 input model, or plain Gaussian Q/K/V).
//
// Every value is a function of (seed, tensor, row, column) through the counter-based Philox
// RNG, so each rank makes exactly its own rows and results do not depend on the number of
// ranks. Rows are row-major, x[i*d + j].
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace ncsparse {

enum class InputModel { Paper, Gaussian };
enum class XDistribution { Gaussian, Uniform };

struct ModelParams {
  InputModel model = InputModel::Paper;
  // Paper model: X entries are N(0,1) clipped to [−B, B] (Gaussian) or uniform on [−B, B];
  // W_Q, W_K are scaled so that R = B²·‖W_Q W_Kᵀ‖_F holds exactly; W_V has N(0, 1/d) entries.
  XDistribution x_dist = XDistribution::Gaussian;
  double bound = 3.0;          // B
  double weight_norm = 288.0;  // R
  // Gaussian model: Q, K, V entries i.i.d. N(0, sigma²).
  double sigma = 1.0;
  std::uint64_t seed = 1;
  std::int64_t d = 64;
};

std::string to_string(InputModel model);

// Checks the parameters of the model in use (B, R for paper; sigma for gaussian); throws a
// usage Error naming the flag.
void validate_model(const ModelParams& params);
std::string to_string(XDistribution dist);

class Generator {
 public:
  explicit Generator(const ModelParams& params);

  const ModelParams& params() const { return params_; }

  // Key and value rows [begin, begin + count) of the sequence; k and v hold count·d floats.
  void keys_values(std::int64_t begin, std::int64_t count, std::span<float> k, std::span<float> v) const;

  // Query rows at the given sequence positions; q holds positions.size()·d floats.
  // Values of a row do not depend on the other positions asked for in the same call.
  void queries(std::span<const std::int64_t> positions, std::span<float> q) const;

  // The raw token rows X (paper model) for the given positions; exposed for tests.
  void token_rows(std::span<const std::int64_t> positions, std::span<float> x) const;

  const std::vector<float>& w_q() const { return w_q_; }
  const std::vector<float>& w_k() const { return w_k_; }
  const std::vector<float>& w_v() const { return w_v_; }

 private:
  enum Tensor : std::uint32_t { kX = 0, kQ = 1, kK = 2, kV = 3, kWQ = 4, kWK = 5, kWV = 6 };
  // Fills one row of d standard values of the given tensor (normal, or uniform on [−1, 1]).
  void fill_row(Tensor tensor, std::int64_t row, bool uniform, float* out) const;
  void project(std::span<const float> x, std::int64_t rows, const std::vector<float>& w, std::span<float> out) const;

  ModelParams params_;
  std::vector<float> w_q_, w_k_, w_v_;  // d × d, row-major
};

// The deterministic sample of m query positions out of n (all rows when m == n): evenly
// strided, p_i = ⌊(i + 1)·n / m⌋ − 1, so the last sampled row sees every key under a causal mask.
std::vector<std::int64_t> sample_positions(std::int64_t n, std::int64_t m);

}  // namespace ncsparse
