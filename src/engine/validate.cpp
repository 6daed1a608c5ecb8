// Checks a job before anything is allocated or any collective is called, and the memory plan.
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "engine/job.hpp"
#include "ncsparse/engine.hpp"
#include "ncsparse/precision.hpp"
#include "ncsparse/report.hpp"

namespace ncsparse {

ShardRange shard_range(std::int64_t n, int ranks, int rank) {
  const std::int64_t base = n / ranks, extra = n % ranks;
  const std::int64_t lo = rank * base + std::min<std::int64_t>(rank, extra);
  return {lo, lo + base + (rank < extra ? 1 : 0)};
}

namespace {

double machine_memory() {
  return static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

void validate_sizes(const JobConfig& c) {
  if (c.n < 1) throw usage_error("--n: must be >= 1 (the number of keys), got " + std::to_string(c.n));
  if (c.model.d < 1) throw usage_error("--d: must be >= 1 (the head dimension), got " + std::to_string(c.model.d));
  if (c.model.d > 65536) throw usage_error("--d: " + std::to_string(c.model.d) + " is larger than the supported 65536");
  if (c.queries < 1) throw usage_error("--queries: must be >= 1, got " + std::to_string(c.queries));
  const std::int64_t q_rows = c.query_rows > 0 ? c.query_rows : c.n;
  if (c.query_rows < 0 || q_rows > c.n) {
    throw usage_error("Q has " + std::to_string(q_rows) + " rows but K has only " + std::to_string(c.n) +
                      " (queries are aligned to the last keys; use at most as many query rows as keys)");
  }
  if (c.queries > q_rows) {
    throw usage_error("--queries: " + std::to_string(c.queries) + " is more than the " + std::to_string(q_rows) +
                      " rows of the sequence (use --queries <= --n)");
  }
  if (c.windows.empty()) throw usage_error("--window: give at least one window strategy (e.g. --window const:256)");
  if (c.backend != "cpu" && c.backend != "cuda") {
    throw usage_error("--backend: unknown backend '" + c.backend + "' (use cpu or cuda)");
  }
  const std::optional<ScorePrecision> precision = parse_precision(c.score_precision);
  if (!precision) {
    throw usage_error("--score-precision: unknown precision '" + c.score_precision + "' (use fp32, tf32 or bf16)");
  }
  if (*precision != ScorePrecision::FP32 && c.backend != "cuda") {
    throw usage_error("--score-precision " + c.score_precision +
                      ": only the cuda backend scores in reduced precision (use fp32, or --backend cuda)");
  }
  if (c.threads < 1) throw usage_error("--threads: must be >= 1, got " + std::to_string(c.threads));
  if (c.block < 1) throw usage_error("--block: must be >= 1, got " + std::to_string(c.block));
  if (c.tile < 1) throw usage_error("--tile: must be >= 1, got " + std::to_string(c.tile));
  if (c.max_k < 1) throw usage_error("--max-k: must be >= 1, got " + std::to_string(c.max_k));
  if (!(c.scale >= 0) || !std::isfinite(c.scale)) throw usage_error("--scale: must be a finite number > 0");
  validate_model(c.model);
}

}  // namespace

void validate(const JobConfig& c, int ranks) {
  validate_sizes(c);
  const double have = machine_memory();
  std::string selections;  // windows that need the shard in memory
  for (const WindowSpec& w : c.windows) {
    if (w.needs_exact() && !c.exact) {
      throw usage_error("--window " + w.text + ": needs the exact pass (drop --no-exact)");
    }
    w->validate(c, have);
    if (!w->streams()) selections += (selections.empty() ? "" : " ") + w.text;
  }
  if (c.stream && !selections.empty()) {
    throw usage_error("--stream: only taylor and features windows can stream the keys; " + selections +
                      " need the shard in memory (drop --stream or these windows)");
  }
  for (double e : c.sparsity_eps) {
    if (!(e > 0 && e < 1)) throw usage_error("--sparsity-eps: every epsilon must lie in (0, 1)");
  }
  // Checked per rank against the node's memory: ranks sharing a node are not counted here.
  const double need = engine::memory_per_rank(c, ranks);
  if (need > 0.9 * have) {
    throw usage_error("--n: each rank needs about " + format_gib(need) + " but this machine has " + format_gib(have) +
                      " (use more ranks, a smaller --n, --block or --max-k)");
  }
}

namespace engine {

double memory_per_rank(const JobConfig& c, int ranks) {
  // The K/V shard, the candidate lists and the per-thread tiles.
  const double shard_rows = std::ceil(static_cast<double>(c.n) / ranks);
  const double d = static_cast<double>(c.model.d);
  const double L = static_cast<double>(list_length(c.windows, c.n, c.max_k));
  const double block = static_cast<double>(std::min(c.block, c.queries));
  const double strategies = static_cast<double>(c.windows.size());
  const double tile = static_cast<double>(std::min(c.tile, c.n));
  double approx_bytes = 0;
  for (const WindowSpec& w : c.windows) approx_bytes += w->state_bytes(c.model.d, std::min(c.block, c.queries));
  double need = (c.stream ? tile : shard_rows) * d * 8 + block * L * sizeof(Candidate) * 4 + block * tile * 4 +
                block * d * 8 * (strategies + 2) + approx_bytes;
  if (approx_bytes > 0) need += block * tile * 8 * 2 + tile * d * 8;  // the dense passes' weights and tiles
  if (c.keep_rows) need += static_cast<double>(c.queries) * (L * sizeof(Candidate) + d * 8 * (strategies + 1));
  return need;
}

}  // namespace engine
}  // namespace ncsparse
