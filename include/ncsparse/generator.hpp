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
  // Options closer to trained models, for both models (0 turns each off):
  // RoPE (rotary position embeddings) on Q and K with base θ: the pair of coordinates
  // (2i, 2i+1) of the row at sequence position p is rotated by the angle p·θ^(−2i/d). Needs an
  // even d. Applied after the projection, before the sinks.
  double rope_theta = 0;
  // Planted attention sinks: the keys at positions 0 .. sinks−1 attract every query. With u a
  // fixed unit direction (drawn from the seed), every query and key loses its component along
  // u; queries then get +1·u and the sink keys +strength·√d·u, so q·k_sink rises by exactly
  // strength·√d: a logit boost of `sink_strength` at the default scale 1/√d, the same for every
  // query (also under RoPE). Other scores change only by the dropped component along u.
  std::int64_t sinks = 0;
  double sink_strength = 0;
  // Tied queries and keys: the query at position p is the key at position p (Q = K), the
  // symmetric setting of PAPERS.md §4 (exp(XXᵀ) with X = K). Applies to both models.
  bool tied = false;
  std::uint64_t seed = 1;
  std::int64_t d = 64;
};

std::string to_string(InputModel model);
// The RoPE/sink/tied options as a label suffix: "" when both are off, else e.g.
// ",rope=10000,sinks=4x8" (used by study model labels and reports).
std::string position_label(const ModelParams& params);

// Checks the parameters of the model in use (B, R for paper; sigma for gaussian); throws a
// usage Error naming the flag.
void validate_model(const ModelParams& params);
std::string to_string(XDistribution dist);
// The inverses of to_string, for the command line and study files: false for an unknown name.
bool parse_input_model(const std::string& name, InputModel& model);
bool parse_x_distribution(const std::string& name, XDistribution& dist);

// What a device needs besides ModelParams to make the same values (src/cuda/generate.cu):
// the RoPE frequencies and the sink direction, computed once on the host.
struct GeneratorTables {
  const double* rope_inv_freq = nullptr;  // d/2 values, or null: no RoPE
  const double* sink_dir = nullptr;       // d values of unit norm, or null: no sinks
  std::int64_t sinks = 0;
  double sink_boost = 0;  // sink_strength·√d
};

// Every value is a function of (seed, tensor, row, column) computed with the operations of
// src/core/gen_math.hpp only (Philox4x32-10, Box–Muller with its own log and sin/cos, fused
// multiply-add chains for the projections): bit-identical on every CPU path and on the device.
class Generator {
 public:
  // The tensor ids of the Philox counters (also used by the device generator).
  enum Tensor : std::uint32_t { kX = 0, kQ = 1, kK = 2, kV = 3, kWQ = 4, kWK = 5, kWV = 6, kSinkDir = 7 };

  explicit Generator(const ModelParams& params);

  const ModelParams& params() const { return params_; }
  // OpenMP threads for keys_values (the values never depend on it).
  void set_threads(int threads) { threads_ = threads < 1 ? 1 : threads; }
  int threads() const { return threads_; }
  GeneratorTables tables() const;  // valid while the generator lives

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
  // Fills one row of d standard values of the given tensor (normal, or uniform on [−1, 1]).
  void fill_row(Tensor tensor, std::int64_t row, bool uniform, float* out) const;
  // RoPE and sinks on `count` finished rows of Q or K at sequence positions positions[i] (or
  // first + i when positions is null); a pure function of each row and its position.
  void position_features(float* rows, std::int64_t count, const std::int64_t* positions, std::int64_t first,
                         bool is_key) const;

  ModelParams params_;
  std::vector<float> w_q_, w_k_, w_v_;  // d × d, row-major
  std::vector<double> rope_inv_freq_;   // θ^(−2i/d), i < d/2 (empty: no RoPE)
  std::vector<double> sink_dir_;        // the unit direction u (empty: no sinks)
  int threads_ = 1;
};

// Rotates a row of d (even) values as RoPE does at position p with the given inverse
// frequencies (d/2 of them), in double precision. Exposed for tests.
void apply_rope(float* row, std::int64_t d, std::int64_t position, const std::vector<double>& inv_freq);
// The inverse frequencies θ^(−2i/d), i = 0 .. d/2 − 1.
std::vector<double> rope_inverse_frequencies(double theta, std::int64_t d);

// The deterministic sample of m query positions out of n (all rows when m == n): evenly
// strided, p_i = ⌊(i + 1)·n / m⌋ − 1, so the last sampled row sees every key under a causal mask.
std::vector<std::int64_t> sample_positions(std::int64_t n, std::int64_t m);

}  // namespace ncsparse
