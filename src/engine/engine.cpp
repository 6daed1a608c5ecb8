#include "ncsparse/engine.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>

#include "engine/approx.hpp"
#include "ncsparse/backend.hpp"
#include "ncsparse/flash.hpp"

extern "C" void openblas_set_num_threads(int);

namespace ncsparse {
namespace {

double now() { return MPI_Wtime(); }

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

// Keys a query row at sequence position `pos` sees.
std::int64_t visible_keys(std::int64_t pos, std::int64_t n, bool causal) { return causal ? std::min(pos + 1, n) : n; }

// The StreamingLLM set of a row: the first s positions and the w positions ending at the row.
bool in_sink_set(const WindowSpec& w, std::int64_t j, std::int64_t pos) {
  return j < static_cast<std::int64_t>(w.a) || (j <= pos && j > pos - static_cast<std::int64_t>(w.b));
}

}  // namespace

ShardRange shard_range(std::int64_t n, int ranks, int rank) {
  const std::int64_t base = n / ranks, extra = n % ranks;
  const std::int64_t lo = rank * base + std::min<std::int64_t>(rank, extra);
  return {lo, lo + base + (rank < extra ? 1 : 0)};
}

void validate(const JobConfig& c, int ranks) {
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
  if (c.threads < 1) throw usage_error("--threads: must be >= 1, got " + std::to_string(c.threads));
  if (c.block < 1) throw usage_error("--block: must be >= 1, got " + std::to_string(c.block));
  if (c.tile < 1) throw usage_error("--tile: must be >= 1, got " + std::to_string(c.tile));
  if (c.max_k < 1) throw usage_error("--max-k: must be >= 1, got " + std::to_string(c.max_k));
  if (!(c.scale >= 0) || !std::isfinite(c.scale)) throw usage_error("--scale: must be a finite number > 0");
  validate_model(c.model);
  const double have = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
  double approx_bytes = 0;
  std::string selections;  // windows that need the shard in memory
  for (const WindowSpec& w : c.windows) {
    if (w.needs_exact() && !c.exact) {
      throw usage_error("--window " + w.text + ": needs the exact pass (drop --no-exact)");
    }
    if (w.kind == WindowKind::Taylor && c.causal) {
      throw usage_error("--window " + w.text +
                        ": the sketch sums over all keys and has no causal form (drop --causal or this window)");
    }
    if (w.approximator()) {
      approx::validate(w, c.model.d, have);
      approx_bytes += approx::state_bytes(w, c.model.d, std::min(c.block, c.queries));
    } else {
      selections += (selections.empty() ? "" : " ") + w.text;
    }
  }
  if (c.stream && !selections.empty()) {
    throw usage_error("--stream: only taylor and features windows can stream the keys; " + selections +
                      " need the shard in memory (drop --stream or these windows)");
  }
  for (double e : c.sparsity_eps) {
    if (!(e > 0 && e < 1)) throw usage_error("--sparsity-eps: every epsilon must lie in (0, 1)");
  }
  // Memory per rank: the K/V shard, the candidate lists and the per-thread tiles.
  const double shard_rows = std::ceil(static_cast<double>(c.n) / ranks);
  const double d = static_cast<double>(c.model.d);
  const double L = static_cast<double>(list_length(c.windows, c.n, c.max_k));
  const double block = static_cast<double>(std::min(c.block, c.queries));
  const double strategies = static_cast<double>(c.windows.size());
  const double tile = static_cast<double>(std::min(c.tile, c.n));
  double need = (c.stream ? tile : shard_rows) * d * 8 + block * L * sizeof(Candidate) * 4 + block * tile * 4 +
                block * d * 8 * (strategies + 2) + approx_bytes;
  if (approx_bytes > 0) need += block * tile * 8 * 2 + tile * d * 8;  // the dense passes' weights and tiles
  if (c.keep_rows) need += static_cast<double>(c.queries) * (L * sizeof(Candidate) + d * 8 * (strategies + 1));
  // Checked per rank against the node's memory: ranks sharing a node are not counted here.
  if (need > 0.9 * have) {
    throw usage_error("--n: each rank needs about " + gib(need) + " but this machine has " + gib(have) +
                      " (use more ranks, a smaller --n, --block or --max-k)");
  }
}

JobResult run_job(const Comm& comm, const JobConfig& config, InputSource* source, BlockSink* sink) {
  const double t_start = now();
  // Ranks are the unit of parallelism across cores and --threads within a rank; BLAS
  // threads on top would oversubscribe the cores.
  openblas_set_num_threads(1);
  validate(config, comm.size());  // identical on every rank: no collective needed to agree

  JobResult res;
  res.config = config;
  res.ranks = comm.size();
  const std::int64_t n = config.n, d = config.model.d, m = config.queries;
  const std::size_t du = static_cast<std::size_t>(d);
  res.scale = config.scale > 0 ? config.scale : 1.0 / std::sqrt(static_cast<double>(d));
  const std::int64_t L = list_length(config.windows, n, config.max_k);
  res.list_length = L;
  const std::int64_t q_rows = config.query_rows > 0 ? config.query_rows : n;
  res.row_ids = sample_positions(q_rows, m);
  res.positions = res.row_ids;
  for (std::int64_t& p : res.positions) p += n - q_rows;  // bottom-right aligned
  const ShardRange shard = shard_range(n, comm.size(), comm.rank());
  const std::int64_t owned = shard.hi - shard.lo;

  std::unique_ptr<InputSource> own_source;
  if (source == nullptr) {
    own_source = std::make_unique<GeneratorSource>(config.model);
    source = own_source.get();
  }
  std::unique_ptr<Backend> backend;
  std::vector<float> k, v;
  double t0 = now();
  collective(comm, [&] {
    // Fault injection for the tests of the error agreement: the named rank fails here alone.
    if (const char* inject = std::getenv("NCSPARSE_INJECT_FAILURE"); inject && std::atoi(inject) == comm.rank()) {
      throw Error(kExitIo, "injected failure (NCSPARSE_INJECT_FAILURE is set)");
    }
    if (config.stream) return;  // the keys are read tile by tile where they are needed
    backend = make_backend(config.backend);
    k.resize(static_cast<std::size_t>(owned) * du);
    v.resize(k.size());
    source->keys_values(shard.lo, owned, k, v);
  });
  // NCCL between GPUs for the merges when the backend is cuda (else MPI): `job` carries them.
  const Comm job =
      comm.with_device(make_device_collectives(comm, device_collectives_setup(config.backend), res.collectives));
  double v_max = 0;
  for (std::int64_t j = 0; j < (config.stream ? 0 : owned); ++j) {
    double s = 0;
    for (std::int64_t c = 0; c < d; ++c) s += double(v[j * d + c]) * double(v[j * d + c]);
    v_max = std::max(v_max, std::sqrt(s));
  }
  double t_generate = now() - t0, t_local = 0, t_merge = 0, t_sparse = 0, t_stats = 0, t_output = 0, t_approx = 0;

  const std::size_t S = config.windows.size();
  res.strategies.resize(S);
  for (std::size_t w = 0; w < S; ++w) {
    res.strategies[w].spec = config.windows[w];
    res.strategies[w].rows.resize(static_cast<std::size_t>(m));
  }
  std::vector<std::size_t> prefix_ids, sink_ids, approx_ids;
  for (std::size_t w = 0; w < S; ++w) {
    const WindowSpec& spec = config.windows[w];
    (spec.approximator() ? approx_ids : spec.kind == WindowKind::Sink ? sink_ids : prefix_ids).push_back(w);
  }
  const std::size_t E = config.exact && !config.stream ? config.sparsity_eps.size() : 0;
  std::vector<std::vector<double>> sparsity_counts(E, std::vector<double>(static_cast<std::size_t>(m), kNaN));
  if (config.keep_rows) {
    res.lists.resize(static_cast<std::size_t>(m * L));
    if (config.exact) res.o_exact.resize(static_cast<std::size_t>(m) * du);
    res.o_sparse.resize(S * static_cast<std::size_t>(m) * du);
  }

  PassParams pass;
  pass.d = d;
  pass.scale = res.scale;
  pass.causal = config.causal;
  pass.list_length = L;
  pass.exact = config.exact;
  pass.tile = config.tile;
  pass.threads = config.threads;
  const std::size_t frow = flash_row_size(du);
  if (!config.stream) {
    collective(comm, [&] { backend->load_shard(KeyShard{k.data(), v.data(), shard.lo, owned}, pass); });
  }

  // The approximators (taylor, features) take in the keys in one pass over the tiles, from the
  // shard in memory or streamed from the source, and reduce their state over the ranks.
  approx::KeyTiles tiles = config.stream ? approx::KeyTiles(source, shard.lo, owned, d, config.tile)
                                         : approx::KeyTiles(k.data(), v.data(), shard.lo, owned, d, config.tile);
  std::vector<std::unique_ptr<approx::Approximator>> approximators;
  std::vector<approx::Approximator*> ap;
  if (!approx_ids.empty()) {
    t0 = now();
    collective(comm, [&] {
      for (std::size_t w : approx_ids) approximators.push_back(approx::make(config.windows[w], d, res.scale, config.model.seed));
      tiles.for_each([&](std::int64_t first, std::int64_t rows, const float* kt, const float* vt) {
        for (auto& a : approximators) a->add_keys(first, rows, kt, vt);
        if (!config.stream) return;
        for (std::int64_t j = 0; j < rows; ++j) {
          double s = 0;
          for (std::int64_t c = 0; c < d; ++c) s += double(vt[j * d + c]) * double(vt[j * d + c]);
          v_max = std::max(v_max, std::sqrt(s));
        }
      });
    });
    for (auto& a : approximators) {
      a->reduce(job);
      a->finish();
      ap.push_back(a.get());
    }
    t_approx += now() - t0;
  }
  res.v_max_norm = comm.allreduce_max(v_max);
  const std::size_t A = ap.size();
  std::vector<double> approx_out, approx_err, approx_max;
  std::vector<double> score_max(static_cast<std::size_t>(m), kNaN);

  std::vector<float> q;
  std::vector<Candidate> lists;
  std::vector<double> flash, acc, sink_state;
  std::vector<std::vector<WindowChoice>> choice(S);
  std::vector<double> o_exact(du), o_hat(du), bounds;
  std::vector<std::uint8_t> in_set;
  std::vector<double> block_sparse, block_exact;  // this block's outputs, for the sink

  for (std::int64_t b0 = 0; b0 < m; b0 += config.block) {
    const std::int64_t rows = std::min(config.block, m - b0);
    const std::size_t ru = static_cast<std::size_t>(rows);
    const std::int64_t* pos = res.positions.data() + b0;

    t0 = now();
    q.resize(ru * du);
    collective(comm, [&] { source->query_rows({res.row_ids.data() + b0, ru}, q); });
    t_generate += now() - t0;

    t0 = now();
    lists.assign(ru * static_cast<std::size_t>(L), kEmptyCandidate);
    flash.assign(config.exact ? ru * frow : 0, 0.0);
    const approx::Queries block_q{q.data(), rows, d, pos};
    if (!config.stream) {
      backend->local_pass(QueryBlock{q.data(), pos, rows}, KeyShard{k.data(), v.data(), shard.lo, owned}, pass,
                          LocalOutput{lists, flash});
    } else if (config.exact) {  // no shard: the exact state by a dense pass over streamed tiles
      for (std::size_t i = 0; i < ru; ++i) flash_clear({flash.data() + i * frow, frow});
      collective(comm, [&] { approx::dense_flash(tiles, block_q, nullptr, d, res.scale, config.causal, flash); });
    }
    t_local += now() - t0;

    t0 = now();
    job.allreduce_topk(lists, L);
    if (config.exact) job.allreduce_flash(flash, d);
    t_merge += now() - t0;

    // Sparse softmax: every rank forms the weights from the merged list and adds the
    // contributions of the V rows it owns; one sum-reduction for all prefix strategies.
    t0 = now();
    acc.assign(prefix_ids.size() * ru * du, 0.0);
    const std::size_t P = prefix_ids.size();
    std::vector<std::int64_t> k_of(P);
    std::vector<double> inv_z(P);
    for (std::size_t i = 0; i < ru; ++i) {
      const std::span<const Candidate> row{lists.data() + i * static_cast<std::size_t>(L), static_cast<std::size_t>(L)};
      const std::span<const Candidate> valid = row.first(count_valid(row));
      const std::int64_t nv = visible_keys(pos[i], n, config.causal);
      RowNormaliser norm{};
      if (config.exact) norm = {flash[i * frow], flash[i * frow + 1]};
      std::int64_t k_max = 0;
      for (std::size_t pi = 0; pi < P; ++pi) {
        const std::size_t w = prefix_ids[pi];
        choice[w].resize(ru);
        const WindowChoice c = choose_window(config.windows[w], valid, L, nv, config.exact ? &norm : nullptr);
        choice[w][i] = c;
        k_of[pi] = valid.empty() ? 0 : c.k;
        k_max = std::max(k_max, k_of[pi]);
      }
      if (valid.empty()) continue;
      // Every window is a prefix of the list: one walk over it serves all strategies, and
      // each owned V row is fetched once (prefetched ahead: the rows are scattered over the
      // shard, so this loop is bound by memory latency, not arithmetic).
      const double top = valid[0].score;
      std::fill(inv_z.begin(), inv_z.end(), 0.0);
      double z = 0;
      std::int64_t next = 0;
      {  // normalisers of all prefixes in one walk, shortest first
        std::vector<std::pair<std::int64_t, std::size_t>> by_k(P);
        for (std::size_t pi = 0; pi < P; ++pi) by_k[pi] = {k_of[pi], pi};
        std::sort(by_k.begin(), by_k.end());
        for (const auto& [kk, pi] : by_k) {
          for (; next < kk; ++next) z += std::exp(static_cast<double>(valid[next].score) - top);
          inv_z[pi] = z > 0 ? 1.0 / z : 0.0;
        }
      }
      constexpr std::int64_t kAhead = 12;
      auto owned_row = [&](std::int64_t j) -> const float* {
        const std::int64_t g = valid[j].index;
        return g >= shard.lo && g < shard.hi ? v.data() + (g - shard.lo) * d : nullptr;
      };
      for (std::int64_t j = 0; j < std::min(kAhead, k_max); ++j) {
        if (const float* r = owned_row(j)) __builtin_prefetch(r);
      }
      for (std::int64_t j = 0; j < k_max; ++j) {
        if (j + kAhead < k_max) {
          if (const float* r = owned_row(j + kAhead)) {
            for (std::int64_t c2 = 0; c2 < d; c2 += 16) __builtin_prefetch(r + c2);
          }
        }
        const float* vr = owned_row(j);
        if (vr == nullptr) continue;
        const double e = std::exp(static_cast<double>(valid[j].score) - top);
        for (std::size_t pi = 0; pi < P; ++pi) {
          if (j >= k_of[pi]) continue;
          const double p = e * inv_z[pi];
          double* out = acc.data() + (pi * ru + i) * du;
          for (std::int64_t c2 = 0; c2 < d; ++c2) out[c2] += p * vr[c2];
        }
      }
    }
    job.allreduce_sum(acc);
    // Sink windows are not prefixes: each rank forms the flash state of the set's keys it owns,
    // and the states merge like the exact ones.
    sink_state.assign(sink_ids.size() * ru * frow, 0.0);
    for (std::size_t si = 0; si < sink_ids.size(); ++si) {
      const WindowSpec& w = config.windows[sink_ids[si]];
      for (std::size_t i = 0; i < ru; ++i) {
        double* st = sink_state.data() + (si * ru + i) * frow;
        flash_clear({st, frow});
        const std::int64_t nv = visible_keys(pos[i], n, config.causal);
        auto add_range = [&](std::int64_t a, std::int64_t b) {  // keys [a, b) ∩ shard
          a = std::max(a, shard.lo);
          b = std::min({b, shard.hi, nv});
          std::vector<double> one(frow);
          for (std::int64_t j = a; j < b; ++j) {
            const float* kr = k.data() + (j - shard.lo) * d;
            const float* qr = q.data() + i * du;
            double s = 0;
            for (std::int64_t c2 = 0; c2 < d; ++c2) s += double(qr[c2]) * double(kr[c2]);
            s *= res.scale;
            one[0] = s;
            one[1] = 1;
            one[2] = 1;
            const float* vr = v.data() + (j - shard.lo) * d;
            for (std::int64_t c2 = 0; c2 < d; ++c2) one[kFlashHeader + c2] = vr[c2];
            flash_merge({st, frow}, one);
          }
        };
        const std::int64_t s_end = static_cast<std::int64_t>(w.a);
        const std::int64_t r_begin = std::max(s_end, pos[i] - static_cast<std::int64_t>(w.b) + 1);
        add_range(0, s_end);
        add_range(r_begin, pos[i] + 1);
      }
    }
    if (!sink_ids.empty()) job.allreduce_flash(sink_state, d);
    t_sparse += now() - t0;

    // The approximators' outputs, and their attention-row errors against the exact softmax
    // (one more pass over the keys: ℓ1 and ℓ2² add over ranks, ℓ∞ takes the maximum).
    t0 = now();
    approx_out.assign(A * ru * du, 0.0);
    for (std::size_t a = 0; a < A; ++a) {
      ap[a]->outputs(job, tiles, block_q, config.causal, {approx_out.data() + a * ru * du, ru * du});
    }
    if (A > 0 && config.exact) {
      approx_err.assign(A * ru * 3, 0.0);
      collective(comm, [&] {
        approx::row_errors(tiles, block_q, d, res.scale, config.causal, flash, ap, approx_err);
      });
      std::vector<double> sums(A * ru * 2);
      approx_max.resize(A * ru);
      for (std::size_t x = 0; x < A * ru; ++x) {
        sums[2 * x] = approx_err[3 * x];
        sums[2 * x + 1] = approx_err[3 * x + 1];
        approx_max[x] = approx_err[3 * x + 2];
      }
      job.allreduce_sum(sums);
      comm.allreduce_max(approx_max);
      for (std::size_t x = 0; x < A * ru; ++x) {
        approx_err[3 * x] = sums[2 * x];
        approx_err[3 * x + 1] = sums[2 * x + 1];
        approx_err[3 * x + 2] = approx_max[x];
      }
    }
    t_approx += now() - t0;

    t0 = now();
    block_sparse.assign(S * ru * du, 0.0);
    block_exact.assign(config.exact ? ru * du : 0, 0.0);
    for (std::size_t i = 0; i < ru; ++i) {
      const std::size_t row_index = static_cast<std::size_t>(b0) + i;
      const std::span<const Candidate> row{lists.data() + i * static_cast<std::size_t>(L), static_cast<std::size_t>(L)};
      const std::span<const Candidate> valid = row.first(count_valid(row));
      const std::int64_t nv = visible_keys(pos[i], n, config.causal);
      const double* fl = config.exact ? flash.data() + i * frow : nullptr;
      if (config.exact) {
        flash_output({fl, frow}, o_exact);
        std::copy(o_exact.begin(), o_exact.end(), block_exact.begin() + static_cast<std::ptrdiff_t>(i * du));
        if (fl[1] > 0) score_max[row_index] = fl[0];
      }
      bounds.resize(valid.size());
      certificate_mass_bounds(valid, nv, bounds);
      const double sum_sq_all = config.exact && fl[1] > 0 ? fl[2] / (fl[1] * fl[1]) : 0.0;

      for (std::size_t w = 0; w < S; ++w) {
        RowStats& st = res.strategies[w].rows[row_index];
        const WindowSpec& spec = config.windows[w];
        KeptSet kept;
        if (spec.approximator()) {
          const std::size_t a =
              static_cast<std::size_t>(std::find(approx_ids.begin(), approx_ids.end(), w) - approx_ids.begin());
          const double* oa = approx_out.data() + (a * ru + i) * du;
          std::copy(oa, oa + du, o_hat.begin());
          st.k = nv;
          if (config.exact && fl[1] > 0 && !std::isnan(oa[0])) {
            const double* e = approx_err.data() + (a * ru + i) * 3;
            st.attn_l1 = e[0];
            st.attn_l2 = std::sqrt(e[1]);
            st.attn_linf = e[2];
            fill_output_errors(o_hat, o_exact, st);
          }
        } else if (spec.kind == WindowKind::Sink) {
          const std::size_t si =
              static_cast<std::size_t>(std::find(sink_ids.begin(), sink_ids.end(), w) - sink_ids.begin());
          const double* ss = sink_state.data() + (si * ru + i) * frow;
          flash_output({ss, frow}, o_hat);
          std::int64_t size = std::min<std::int64_t>(static_cast<std::int64_t>(spec.a), nv);
          size += std::max<std::int64_t>(
              0,
              pos[i] + 1 - std::max(static_cast<std::int64_t>(spec.a), pos[i] - static_cast<std::int64_t>(spec.b) + 1));
          size = std::min(size, nv);
          st.k = size;
          st.clamped = size < static_cast<std::int64_t>(spec.a + spec.b);
          if (config.exact && fl[1] > 0) {
            const double f = std::exp(ss[0] - fl[0]);
            in_set.resize(valid.size());
            for (std::size_t j = 0; j < valid.size(); ++j)
              in_set[j] = in_sink_set(spec, valid[j].index, pos[i]) ? 1 : 0;
            kept = general_kept_set(valid, in_set, size, ss[1] * f / fl[1], ss[2] * f * f / (fl[1] * fl[1]),
                                    ss[1] > 0 ? f / fl[1] : 0.0, fl[0], fl[1], nv, sum_sq_all);
          }
        } else {
          const std::size_t pi =
              static_cast<std::size_t>(std::find(prefix_ids.begin(), prefix_ids.end(), w) - prefix_ids.begin());
          const WindowChoice& c = choice[w][i];
          st.k = c.k;
          st.clamped = c.clamped;
          std::copy_n(acc.data() + (pi * ru + i) * du, du, o_hat.begin());
          if (config.exact && fl[1] > 0) kept = prefix_kept_set(valid, c.k, fl[0], fl[1], nv, sum_sq_all);
          if (c.k >= 1 && static_cast<std::size_t>(c.k) <= bounds.size()) {
            st.cert_mass = bounds[static_cast<std::size_t>(c.k - 1)];
            st.cert_out = certificate_output_bound(st.cert_mass, o_hat, res.v_max_norm);
          }
        }
        if (config.exact && !spec.approximator()) fill_errors(kept, sum_sq_all, o_hat, o_exact, st);
        std::copy(o_hat.begin(), o_hat.end(), block_sparse.begin() + static_cast<std::ptrdiff_t>((w * ru + i) * du));
        if (config.keep_rows) std::copy(o_hat.begin(), o_hat.end(), res.o_sparse.begin() + (w * m + row_index) * du);
      }
      for (std::size_t e = 0; e < E; ++e) {
        if (fl[1] <= 0) continue;
        const double cut = fl[0] + std::log(config.sparsity_eps[e] * fl[1]);
        std::size_t count = 0;
        while (count < valid.size() && static_cast<double>(valid[count].score) > cut) ++count;
        const bool covered = count < valid.size() || valid.size() == static_cast<std::size_t>(nv);
        sparsity_counts[e][row_index] = covered ? static_cast<double>(count) : kNaN;
      }
      if (config.keep_rows) {
        std::copy(row.begin(), row.end(),
                  res.lists.begin() + static_cast<std::ptrdiff_t>(row_index * static_cast<std::size_t>(L)));
        if (config.exact)
          std::copy(o_exact.begin(), o_exact.end(), res.o_exact.begin() + static_cast<std::ptrdiff_t>(row_index * du));
      }
    }
    t_stats += now() - t0;

    if (sink != nullptr) {
      t0 = now();
      BlockView view;
      view.first = b0;
      view.rows = rows;
      view.row_ids = {res.row_ids.data() + b0, ru};
      view.positions = {pos, ru};
      view.list_length = L;
      view.lists = lists;
      view.o_exact = block_exact;
      for (std::size_t w = 0; w < S; ++w) {
        view.o_sparse.emplace_back(block_sparse.data() + w * ru * du, ru * du);
        view.stats.emplace_back(res.strategies[w].rows.data() + b0, ru);
      }
      collective(comm, [&] { sink->write_block(comm, view); });
      t_output += now() - t0;
    }
  }

  t0 = now();
  for (StrategyResult& s : res.strategies) {
    std::vector<double> col(static_cast<std::size_t>(m));
    auto agg = [&](auto field) {
      for (std::size_t i = 0; i < col.size(); ++i) col[i] = static_cast<double>(field(s.rows[i]));
      return summarize(col);
    };
    s.k = agg([](const RowStats& r) { return r.k; });
    s.kept_mass = agg([](const RowStats& r) { return r.kept_mass; });
    s.attn_l1 = agg([](const RowStats& r) { return r.attn_l1; });
    s.attn_l2 = agg([](const RowStats& r) { return r.attn_l2; });
    s.attn_linf = agg([](const RowStats& r) { return r.attn_linf; });
    s.out_l2 = agg([](const RowStats& r) { return r.out_l2; });
    s.out_linf = agg([](const RowStats& r) { return r.out_linf; });
    s.out_rel = agg([](const RowStats& r) { return r.out_rel; });
    s.cert_mass = agg([](const RowStats& r) { return r.cert_mass; });
    s.cert_out = agg([](const RowStats& r) { return r.cert_out; });
    s.clamped_rows = 0;
    for (const RowStats& r : s.rows) s.clamped_rows += r.clamped ? 1 : 0;
  }
  for (std::size_t a = 0; a < A; ++a) {
    StrategyResult& s = res.strategies[approx_ids[a]];
    s.features = ap[a]->features();
    s.state_bytes = ap[a]->state_bytes();
    s.lost_rows = ap[a]->lost_rows();
    s.min_cancellation = ap[a]->min_cancellation();
    s.unconverged_rows = ap[a]->unconverged_rows();
    s.max_last_share = ap[a]->max_last_share();
    for (std::string& w : ap[a]->warnings(m)) res.warnings.push_back(std::move(w));
  }
  res.score_max = summarize(score_max);
  for (std::size_t e = 0; e < E; ++e) {
    SparsityResult sr;
    sr.eps = config.sparsity_eps[e];
    sr.count = summarize(sparsity_counts[e]);
    sr.uncovered_rows = m - sr.count.count;
    res.sparsity.push_back(sr);
  }
  t_stats += now() - t0;

  res.times.generate = comm.allreduce_max(t_generate);
  res.times.local_pass = comm.allreduce_max(t_local);
  res.times.merge = comm.allreduce_max(t_merge);
  res.times.sparse = comm.allreduce_max(t_sparse);
  res.times.stats = comm.allreduce_max(t_stats);
  res.times.output = comm.allreduce_max(t_output);
  res.times.approx = comm.allreduce_max(t_approx);
  res.times.total = comm.allreduce_max(now() - t_start);
  return res;
}

}  // namespace ncsparse
