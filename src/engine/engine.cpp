// The job as a block loop: source → backend local pass → merges → strategy stages → sink.
// Validation and the memory plan are in validate.cpp, the stages in stage_*.cpp, the exact
// pass's own numbers in exact.cpp, aggregation in schema.cpp and printing in report.cpp.
#include "ncsparse/engine.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>

#include "core/host_buffer.hpp"
#include "engine/job.hpp"
#include "ncsparse/schema.hpp"

namespace ncsparse {

struct JobWorkspace::Buffers {
  HostBuffer<float> k, v;
};

namespace {

double now() { return MPI_Wtime(); }

// Adds the seconds fn takes to `phase` of this rank's times.
template <class Fn>
void timed(double& phase, Fn&& fn) {
  const double t0 = now();
  fn();
  phase += now() - t0;
}

// The bounds that keep the float32 kernels finite (issue 17: finite inputs must not give
// non-finite outputs in silence). A score is scale·q·k with |q·k| ≤ ‖q‖·‖k‖ (Cauchy–Schwarz,
// also for every partial sum of the dot product), and the exponentials take differences of two
// scores; the exact pass sums up to `tile` products p·v (p ≤ 1) per tile in float32 before
// folding them into its double state. A quarter of FLT_MAX leaves room for the rounding.
constexpr double kFloatRoom = 3.4028234663852886e38 / 4;

void check_score_bound(double scale, double q_max, double k_max) {
  const double bound = std::max(scale, 1.0) * q_max * k_max;
  if (!(bound <= kFloatRoom)) {
    char text[320];
    std::snprintf(text, sizeof text,
                  "scores can reach %.3g (max(scale, 1)·max‖q‖·max‖k‖ = %.3g·%.3g·%.3g), beyond what float32 "
                  "kernels keep finite (%.3g): scale Q or K down (or give smaller generator parameters, e.g. --sigma)",
                  bound, std::max(scale, 1.0), q_max, k_max, kFloatRoom);
    throw Error(kExitData, text);
  }
}

void check_value_bound(double v_max, std::int64_t tile) {
  const double bound = v_max * static_cast<double>(std::max<std::int64_t>(tile, 1));
  if (!(bound <= kFloatRoom)) {
    char text[320];
    std::snprintf(text, sizeof text,
                  "values up to max‖v‖ = %.3g: the exact pass sums up to %lld of them per tile in float32, which can "
                  "reach %.3g, beyond %.3g: scale V down, or use a smaller --tile",
                  v_max, static_cast<long long>(tile), bound, kFloatRoom);
    throw Error(kExitData, text);
  }
}

// Counts the non-finite values of a block's outputs; names the first in an Error (exit 70: a
// defect, since the bounds above admit only inputs whose outputs stay finite).
void check_finite_outputs(const engine::Block& b, std::span<const std::span<double>> sparse,
                          const std::vector<WindowSpec>& windows) {
  auto count = [](auto values) {
    std::size_t n = 0;
    for (double x : values) n += std::isfinite(x) ? 0 : 1;
    return n;
  };
  std::string named;
  std::size_t total = count(std::span<const double>(b.o_exact));
  if (total > 0) named = "O_exact";
  for (std::size_t w = 0; w < sparse.size(); ++w) {
    // Approximators mark a row whose denominator was lost with NaN, counted (lost_rows) and
    // named in a warning of the report: by design, not a defect.
    if (windows[w]->family() == Family::Approximator) continue;
    const std::size_t c = count(std::span<const double>(sparse[w]));
    if (c > 0 && named.empty()) named = "O of " + windows[w]->name();
    total += c;
  }
  if (total > 0) {
    throw Error(kExitInternal, std::to_string(total) + " non-finite output values in rows " + std::to_string(b.first) +
                                   ".." + std::to_string(b.first + b.rows) + ", first in " + named +
                                   ", from finite inputs within the kernels' bounds (a defect: please report it "
                                   "with the command)");
  }
}

// One stage per family present, in the order of their first strategy.
std::vector<std::unique_ptr<engine::Stage>> make_stages(const JobConfig& config) {
  std::map<Family, std::vector<std::size_t>> ids;
  std::vector<Family> order;
  for (std::size_t w = 0; w < config.windows.size(); ++w) {
    const Family f = config.windows[w]->family();
    if (ids[f].empty()) order.push_back(f);
    ids[f].push_back(w);
  }
  std::vector<std::unique_ptr<engine::Stage>> stages;
  for (Family f : order) {
    if (f == Family::Prefix) stages.push_back(engine::make_prefix_stage(config, ids[f]));
    if (f == Family::KeySet) stages.push_back(engine::make_key_set_stage(config, ids[f]));
    if (f == Family::Approximator) stages.push_back(engine::make_approx_stage(config, ids[f]));
  }
  return stages;
}

// The job's key/value shard and backend (collective: every rank reads its own rows).
struct Inputs {
  explicit Inputs(JobWorkspace* ws) : k(ws ? ws->buffers().k : own_k), v(ws ? ws->buffers().v : own_v) {}
  std::unique_ptr<Backend> backend;
  std::unique_ptr<DenseKernels> cpu_dense;  // when the backend has no dense kernels of its own
  HostBuffer<float> own_k, own_v;
  // The rank's shard, written in full by the source or the backend: the workspace's or own.
  HostBuffer<float>& k;
  HostBuffer<float>& v;
};

// Keeps the block's merged lists and outputs in the result (JobConfig::keep_rows).
void keep_rows(JobResult& res, const engine::Block& b, std::span<const double> sparse) {
  const std::size_t first = static_cast<std::size_t>(b.first), ru = static_cast<std::size_t>(b.rows);
  const std::size_t du = static_cast<std::size_t>(res.config.model.d), m = static_cast<std::size_t>(res.config.queries);
  const std::size_t L = static_cast<std::size_t>(res.list_length);
  std::copy(b.lists.begin(), b.lists.end(), res.lists.begin() + static_cast<std::ptrdiff_t>(first * L));
  // Without the exact pass res.o_exact is empty: an offset from its null begin() is undefined
  // (UBSan in the unit suite, EngineBounds.LargeFiniteInputsWithinTheBoundsStayExact).
  if (!b.o_exact.empty()) {
    std::copy(b.o_exact.begin(), b.o_exact.end(), res.o_exact.begin() + static_cast<std::ptrdiff_t>(first * du));
  }
  for (std::size_t w = 0; w < res.strategies.size() && ru * du > 0; ++w) {
    std::copy_n(sparse.begin() + static_cast<std::ptrdiff_t>(w * ru * du), ru * du,
                res.o_sparse.begin() + static_cast<std::ptrdiff_t>((w * m + first) * du));
  }
}

// The phases of the rank whose job took longest (the lowest such rank), with `other` the part
// of its total that no phase covers, so that its phases sum to its total. Per-phase maxima
// over ranks would not sum: waiting for a slower rank shows up in the merge of the others.
PhaseTimes slowest_rank_times(const Comm& comm, PhaseTimes t) {
  double covered = 0;
  for (const PhaseTime& p : phase_times()) {
    if (p.field != &PhaseTimes::other && p.field != &PhaseTimes::total) covered += t.*p.field;
  }
  t.other = std::max(0.0, t.total - covered);
  const double longest = comm.allreduce_max(t.total);
  const double chosen = -comm.allreduce_max(t.total == longest ? -static_cast<double>(comm.rank()) : -1e300);
  std::vector<double> fields;
  for (const PhaseTime& p : phase_times()) fields.push_back(comm.rank() == chosen ? t.*p.field : 0.0);
  comm.allreduce_sum(fields);
  PhaseTimes out;
  for (std::size_t i = 0; i < fields.size(); ++i) out.*phase_times()[i].field = fields[i];
  return out;
}

}  // namespace

JobWorkspace::JobWorkspace() : buffers_(std::make_unique<Buffers>()) {}
JobWorkspace::~JobWorkspace() = default;
void JobWorkspace::reserve(std::int64_t rows, std::int64_t d) {
  const std::size_t count = static_cast<std::size_t>(std::max<std::int64_t>(0, rows * d));
  buffers_->k.reserve(count);
  buffers_->v.reserve(count);
}

JobResult run_job(const Comm& comm, const JobConfig& config, InputSource* source, BlockSink* sink,
                  JobWorkspace* workspace) {
  const double t_start = now();
  validate(config, comm.size());  // identical on every rank: no collective needed to agree

  JobResult res;
  res.config = config;
  res.ranks = comm.size();
  const std::int64_t n = config.n, d = config.model.d, m = config.queries;
  const std::size_t du = static_cast<std::size_t>(d);
  res.scale = config.scale > 0 ? config.scale : 1.0 / std::sqrt(static_cast<double>(d));
  res.list_length = list_length(config.windows, n, config.max_k);
  const std::int64_t L = res.list_length;
  const std::int64_t q_rows = config.query_rows > 0 ? config.query_rows : n;
  res.row_ids = sample_positions(q_rows, m);
  res.positions = res.row_ids;
  for (std::int64_t& p : res.positions) p += n - q_rows;  // bottom-right aligned
  const ShardRange shard = shard_range(n, comm.size(), comm.rank());
  const std::int64_t owned = config.stream ? 0 : shard.hi - shard.lo;

  std::unique_ptr<InputSource> own_source;
  if (source == nullptr) source = (own_source = std::make_unique<GeneratorSource>(config.model, config.threads)).get();
  PhaseTimes t;
  Inputs in(workspace);
  const float* k_rows = nullptr;  // the shard: in.k and in.v, or rows the source lends
  const float* v_rows = nullptr;
  std::optional<engine::ShardNorms> norms;  // when the rows were generated here, chunk by chunk
  timed(t.generate, [&] {
    collective(comm, [&] {
      // Fault injection for the tests of the error agreement: the named rank fails here alone.
      if (const char* inject = std::getenv("NCSPARSE_INJECT_FAILURE"); inject && std::atoi(inject) == comm.rank()) {
        throw Error(kExitIo, "injected failure (NCSPARSE_INJECT_FAILURE is set)");
      }
      in.backend = make_backend(config.backend);
      if (in.backend->dense_kernels() == nullptr) in.cpu_dense = make_cpu_dense_kernels();
      // A source that holds the rows as the engine does (a mapped file) lends them: no copy.
      if (owned > 0 && source->map_keys_values(shard.lo, owned, &k_rows, &v_rows)) return;
      in.k.resize(static_cast<std::size_t>(owned) * du);
      in.v.resize(in.k.size());
      k_rows = in.k.data();
      v_rows = in.v.data();
      const Generator* gen = source->generator();
      res.inputs_on_device =
          owned > 0 && gen != nullptr && in.backend->generate_shard(*gen, shard.lo, owned, in.k, in.v);
      if (owned > 0 && !res.inputs_on_device) {
        if (gen != nullptr) {
          norms = engine::generate_with_norms(*source, shard.lo, owned, d, config.threads, in.k, in.v);
        } else {
          source->keys_values(shard.lo, owned, in.k, in.v);
        }
      }
    });
  });
  for (const WindowSpec& w : config.windows) {
    if (in.cpu_dense && (w->family() != Family::Prefix || config.stream)) {
      res.cpu_fallback = "the dense kernels of sink windows, approximators and --stream";
    }
  }
  // NCCL between GPUs when the backend asks for it (else MPI): `merge` carries the collectives;
  // across nodes its merges run over MPI (merge_on_device), which the name says.
  std::shared_ptr<DeviceCollectives> device =
      make_device_collectives(comm, device_collectives_setup(config.backend), res.collectives);
  const Comm merge = comm.with_device(device);
  if (device) res.collectives = merge.collectives_name();
  const KeyShard keys{k_rows, v_rows, shard.lo, owned};
  approx::KeyTiles tiles = config.stream ? approx::KeyTiles(source, shard.lo, shard.hi - shard.lo, d, config.tile)
                                         : approx::KeyTiles(k_rows, v_rows, shard.lo, owned, d, config.tile);
  engine::Job job{comm,
                  merge,
                  config,
                  in.cpu_dense ? *in.cpu_dense : *in.backend->dense_kernels(),
                  config.stream ? nullptr : in.backend.get(),
                  keys,
                  tiles,
                  n,
                  d,
                  L,
                  res.scale};
  double k_max = 0;
  timed(t.generate, [&] {
    if (norms) {  // the same values, taken from each chunk while it was in cache
      job.v_max = std::sqrt(norms->v_sq);
      k_max = norms->k_bound;
    } else {
      job.v_max = engine::max_row_norm(v_rows, owned, d, config.threads);
      k_max = engine::max_row_norm_bound(k_rows, owned, d, config.threads);
    }
  });

  PassParams pass{d, res.scale, config.causal, L, config.exact, config.tile, 0, config.threads,
                  parse_precision(config.score_precision).value_or(ScorePrecision::FP32)};
  // The CPU backend bounds its scores with the largest key norm: any upper bound keeps the
  // lists exact (it only sets the margin of the candidates re-scored), so the bound will do.
  if (norms) pass.k_norm_max = norms->k_bound;
  if (!config.stream) collective(comm, [&] { in.backend->load_shard(keys, pass); });
  std::vector<std::unique_ptr<engine::Stage>> stages = make_stages(config);
  for (auto& s : stages) timed(t.*s->phase(), [&] { s->prepare(job); });
  job.v_max = res.v_max_norm = comm.allreduce_max(job.v_max);
  k_max = comm.allreduce_max(k_max);  // 0 with --stream (no shard): the score bound is not checked then
  if (config.exact && !config.stream) collective(comm, [&] { check_value_bound(job.v_max, config.tile); });

  const std::size_t S = config.windows.size(), frow = flash_row_size(du);
  res.strategies.resize(S);
  for (std::size_t w = 0; w < S; ++w) {
    res.strategies[w].spec = config.windows[w];
    res.strategies[w].rows.resize(static_cast<std::size_t>(m));
  }
  const std::size_t E = config.exact && !config.stream ? config.sparsity_eps.size() : 0;
  std::vector<std::vector<double>> sparsity_counts(E, std::vector<double>(static_cast<std::size_t>(m), kNaN));
  std::vector<double> score_max(static_cast<std::size_t>(m), kNaN);
  if (config.keep_rows) {
    res.lists.resize(static_cast<std::size_t>(m * L));
    if (config.exact) res.o_exact.resize(static_cast<std::size_t>(m) * du);
    res.o_sparse.resize(S * static_cast<std::size_t>(m) * du);
  }

  std::vector<float> q;
  std::vector<Candidate> lists;
  std::vector<double> flash, block_sparse;
  std::vector<std::span<double>> sparse(S);
  for (std::int64_t b0 = 0; b0 < m; b0 += config.block) {
    engine::Block b;
    b.first = b0;
    b.rows = std::min(config.block, m - b0);
    const std::size_t ru = static_cast<std::size_t>(b.rows);
    b.pos = res.positions.data() + b0;
    timed(t.generate, [&] {
      q.resize(ru * du);
      collective(comm, [&] { source->query_rows({res.row_ids.data() + b0, ru}, q); });
    });
    b.q = q.data();
    // Every rank holds the block's queries: the same decision everywhere.
    collective(comm, [&] { check_score_bound(res.scale, engine::max_row_norm_bound(q.data(), b.rows, d), k_max); });

    timed(t.local_pass, [&] {
      lists.assign(ru * static_cast<std::size_t>(L), kEmptyCandidate);
      flash.assign(config.exact ? ru * frow : 0, 0.0);
      if (!config.stream) {
        in.backend->local_pass(QueryBlock{q.data(), b.pos, b.rows}, keys, pass, LocalOutput{lists, flash});
      } else if (config.exact) {  // no shard: the exact state by a dense pass over streamed tiles
        for (std::size_t i = 0; i < ru; ++i) flash_clear({flash.data() + i * frow, frow});
        collective(comm, [&] {
          approx::dense_flash(job.dense, tiles, {q.data(), b.rows, d, b.pos}, nullptr, d, res.scale, config.causal,
                              flash);
        });
      }
    });
    timed(t.merge, [&] {
      merge.allreduce_topk(lists, L);
      if (config.exact) merge.allreduce_flash(flash, d);
    });
    b.lists = lists;
    b.flash = flash;
    b.count_listed(L);

    engine::exact_outputs(job, b);
    for (auto& s : stages) timed(t.*s->phase(), [&] { s->outputs(job, b); });
    timed(t.stats, [&] {
      block_sparse.assign(S * ru * du, 0.0);
      for (std::size_t w = 0; w < S; ++w) sparse[w] = {block_sparse.data() + w * ru * du, ru * du};
      for (auto& s : stages) s->statistics(job, b, res.strategies, sparse);
      engine::exact_statistics(job, b, score_max, sparsity_counts);
      collective(comm, [&] { check_finite_outputs(b, sparse, config.windows); });
      if (config.keep_rows) keep_rows(res, b, block_sparse);
    });

    if (sink != nullptr) {
      timed(t.output, [&] {
        BlockView view{b0, b.rows, {res.row_ids.data() + b0, ru}, {b.pos, ru}, L, lists, b.o_exact, {}, {}};
        for (std::size_t w = 0; w < S; ++w) {
          view.o_sparse.emplace_back(sparse[w]);
          view.stats.emplace_back(res.strategies[w].rows.data() + b0, ru);
        }
        collective(comm, [&] { sink->write_block(comm, view); });
      });
    }
  }

  timed(t.stats, [&] {
    for (StrategyResult& s : res.strategies) aggregate_rows(s);
    for (auto& s : stages) s->finish(res);
    res.score_max = summarize(score_max);
    for (std::size_t e = 0; e < E; ++e) {
      SparsityResult sr{config.sparsity_eps[e], summarize(sparsity_counts[e]), 0};
      sr.uncovered_rows = m - sr.count.count;
      res.sparsity.push_back(sr);
    }
  });
  t.total = now() - t_start;
  res.times = slowest_rank_times(comm, t);
  return res;
}

}  // namespace ncsparse
