// _ncsparse: the engine as a Python extension (docs/python.md). The package's __init__.py wraps
// these functions; everything computed here is the engine's own (its strategy registry, its
// statistics schema, run_job, the study driver and fit), nothing is re-implemented.
//
// Every rank of the communicator calls the same function with the same arguments, as every
// rank of the command line parses the same flags; K and V are each rank's own shard.
#include <mpi.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "app/generate.hpp"
#include "arrays.hpp"
#include "comm/mpi_startup.hpp"
#include "ncsparse/engine.hpp"
#include "ncsparse/report.hpp"
#include "ncsparse/schema.hpp"
#include "study/fit.hpp"
#include "study/report_study.hpp"
#include "study/run_study.hpp"

namespace py = pybind11;

namespace ncsparse::python {
namespace {

const std::string kWhere = "ncsparse.attend";

bool g_initialised_mpi = false;
// Seconds MPI_Init_thread took in this process and no call has reported yet: the first job after
// it reports them as its start-up phase, as `ncsparse attend` reports its own MPI start-up.
double g_unreported_startup = 0;

// MPI as mpi4py left it, or initialised here when nothing has (mpi4py imported later then
// finds it initialised and leaves finalising to us: finalize_mpi at exit).
void ensure_mpi() {
  int finalised = 0, initialised = 0;
  MPI_Finalized(&finalised);
  if (finalised) throw Error(kExitInternal, "MPI is already finalised: ncsparse cannot run after MPI_Finalize");
  MPI_Initialized(&initialised);
  if (!initialised) {
    prepare_mpi_startup();  // as the CLI does (src/comm/mpi_startup.hpp)
    int provided = 0;
    const auto t0 = std::chrono::steady_clock::now();
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
      throw Error(kExitInternal, "MPI_Init_thread failed");
    }
    finish_mpi_startup();
    g_unreported_startup = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    g_initialised_mpi = true;
  }
}

void finalize_mpi() {
  int finalised = 0;
  MPI_Finalized(&finalised);
  if (g_initialised_mpi && !finalised) MPI_Finalize();
}

// None: MPI_COMM_WORLD; else an mpi4py communicator, through its Fortran handle (no mpi4py
// headers needed at build time).
Comm make_comm(const py::object& comm) {
  ensure_mpi();
  if (comm.is_none()) return Comm(MPI_COMM_WORLD);
  if (!py::hasattr(comm, "py2f")) {
    throw Error(kTypeErrorCode, "comm: give an mpi4py communicator (e.g. mpi4py.MPI.COMM_WORLD) or None");
  }
  return Comm(MPI_Comm_f2c(comm.attr("py2f")().cast<MPI_Fint>()));
}

// Checks between query blocks (and heads) whether Ctrl-C was pressed on any rank: Python's
// handler only sets a flag, which PyErr_CheckSignals turns into KeyboardInterrupt (left set
// for the caller to raise); all ranks agree and leave the job together.
class InterruptSink : public BlockSink {
 public:
  struct Out {
    double* exact = nullptr;               // m × d of this head, or null
    std::vector<double*> sparse;           // per strategy, m × d of this head
    std::int64_t* index = nullptr;         // m × L, or null
    float* score = nullptr;
  };
  explicit InterruptSink(Out out, std::int64_t d) : out_(std::move(out)), d_(static_cast<std::size_t>(d)) {}

  void write_block(const Comm& comm, const BlockView& b) override {
    const std::size_t first = static_cast<std::size_t>(b.first), rows = static_cast<std::size_t>(b.rows);
    if (out_.exact != nullptr) std::copy(b.o_exact.begin(), b.o_exact.end(), out_.exact + first * d_);
    for (std::size_t w = 0; w < out_.sparse.size(); ++w) {
      std::copy(b.o_sparse[w].begin(), b.o_sparse[w].end(), out_.sparse[w] + first * d_);
    }
    if (out_.index != nullptr) {
      const std::size_t L = static_cast<std::size_t>(b.list_length);
      for (std::size_t i = 0; i < rows * L; ++i) {
        const Candidate& c = b.lists[i];
        out_.index[first * L + i] = c.index == kNoIndex ? -1 : c.index;
        out_.score[first * L + i] = c.score;
      }
    }
    stop_check(comm);
  }

  static void stop_check(const Comm& comm) {
    int stop = 0;
    {
      py::gil_scoped_acquire gil;
      stop = PyErr_CheckSignals() != 0 ? 1 : 0;
    }
    if (comm.allreduce_max(static_cast<double>(stop)) != 0) {
      throw Error(kExitInterrupted, "interrupted (KeyboardInterrupt)");
    }
  }

 private:
  Out out_;
  std::size_t d_;
};

std::string shape_list(const TensorView& q, const TensorView& k, const TensorView& v) {
  return q.shape_text() + ", " + k.shape_text() + ", " + v.shape_text();
}

// The checks of io::H5Input on the arrays, in its words (an argument in place of a dataset).
// K and V are this rank's shard: with several ranks a shard may be empty.
void check_shapes(const TensorView& q, const TensorView& k, const TensorView& v, int ranks) {
  const std::string f = kWhere + ": ";
  for (const TensorView* t : {&q, &k, &v}) {
    if (t->shape.size() != 2 && t->shape.size() != 3) {
      throw Error(kExitData, f + t->name + " has shape " + t->shape_text() + ": expected (n, d) or (heads, n, d)");
    }
    for (std::size_t i = 0; i < t->shape.size(); ++i) {
      const bool shard_rows = t != &q && ranks > 1 && i == t->shape.size() - 2;
      if (t->shape[i] == 0 && !shard_rows) {
        throw Error(kExitData, f + t->name + " has shape " + t->shape_text() + ": no dimension may be 0");
      }
    }
  }
  if (q.shape.size() != k.shape.size() || k.shape.size() != v.shape.size()) {
    throw Error(kExitData, f + "Q, K and V have shapes " + shape_list(q, k, v) +
                               ": give all three as (n, d) or all as (heads, n, d)");
  }
  if (q.d != k.d || k.d != v.d) {
    throw Error(kExitData, f + "Q, K and V must have the same d (last dimension), got " + std::to_string(q.d) + ", " +
                               std::to_string(k.d) + ", " + std::to_string(v.d));
  }
  if (k.rows != v.rows || k.heads != v.heads) {
    throw Error(kExitData, f + "K " + k.shape_text() + " and V " + v.shape_text() +
                               " must have the same shape (one value row per key)");
  }
  if (q.heads % k.heads != 0) {
    throw Error(kExitData, f + "Q has " + std::to_string(q.heads) + " heads, not a multiple of K's " +
                               std::to_string(k.heads) + " (grouped-query attention needs Hq = g * Hkv)");
  }
}

// Every rank must pass the same Q and the same K/V heads and d; each its own balanced shard.
// Returns n, the keys of all shards.
std::int64_t check_shards(const Comm& comm, const TensorView& q, const TensorView& k) {
  const std::int64_t n = [&] {
    std::vector<double> rows{static_cast<double>(k.rows)};
    comm.allreduce_sum(rows);
    return static_cast<std::int64_t>(rows[0]);
  }();
  if (comm.size() == 1) return n;
  std::vector<double> hi{double(q.heads), double(q.rows), double(q.d), double(k.heads), double(q.shape.size())};
  std::vector<double> lo;
  for (double x : hi) lo.push_back(-x);
  comm.allreduce_max(hi);
  comm.allreduce_max(lo);
  collective(comm, [&] {
    for (std::size_t i = 0; i < hi.size(); ++i) {
      if (hi[i] != -lo[i]) {
        throw Error(kExitData, kWhere + ": the ranks pass different shapes of q " + q.shape_text() + " or heads of k (" +
                                   std::to_string(k.heads) +
                                   "): every rank passes all of q and its own shard of k and v");
      }
    }
    const ShardRange s = shard_range(n, comm.size(), comm.rank());
    if (k.rows != s.hi - s.lo) {
      throw Error(kExitData, kWhere + ": k and v hold " + std::to_string(k.rows) + " rows here, but this rank's shard of n=" +
                                 std::to_string(n) + " keys over " + std::to_string(comm.size()) + " ranks is rows " +
                                 std::to_string(s.lo) + ".." + std::to_string(s.hi) +
                                 " (pass k[lo:hi] and v[lo:hi] with (lo, hi) = ncsparse.shard_range(n))");
    }
  });
  return n;
}

py::dict summary_dict(const Summary& s) {
  py::dict d;
  for (std::size_t a = 0; a < kAggregateCount; ++a) d[kAggregates[a]] = aggregate(s, a);
  return d;
}

template <class T>
py::array_t<T> zeros(std::vector<py::ssize_t> shape) {
  py::array_t<T> a(shape);
  std::fill(a.mutable_data(), a.mutable_data() + a.size(), T{});
  return a;
}

py::dict attend(py::object q_obj, py::object k_obj, py::object v_obj, const std::vector<std::string>& windows,
                bool causal, bool exact, std::int64_t queries, double scale, const std::string& backend, int threads,
                bool save_lists, const py::object& comm_obj, std::int64_t block, std::int64_t tile, std::int64_t max_k,
                const std::vector<double>& sparsity_eps, const std::string& score_precision) {
  const Comm comm = make_comm(comm_obj);
  const int P = comm.size();

  // Usage checks first, as attend's (identical on every rank, no communication).
  JobConfig job;
  for (const std::string& w : windows) job.windows.push_back(parse_window(w));
  std::set<std::string> seen;
  for (const WindowSpec& w : job.windows) {
    if (w.needs_exact() && !exact) throw usage_error("--window " + w.text + ": needs the exact pass (add --exact)");
    if (!seen.insert(w.text).second) {
      throw usage_error("--window " + w.text + ": given twice (give each strategy once)");
    }
  }
  if (queries < 0) {
    throw usage_error("--queries: must be >= 1, got " + std::to_string(queries) + " (leave it out for every row of Q)");
  }
  job.causal = causal;
  job.exact = exact;
  job.scale = scale;
  job.backend = backend;
  job.score_precision = score_precision;
  job.threads = threads;
  job.block = block > 0 ? block : std::max<std::int64_t>(256, 64 * std::int64_t{std::max(threads, 1)});
  job.tile = tile;
  job.max_k = max_k;
  job.sparsity_eps = sparsity_eps;

  TensorView q, k, v;
  collective(comm, [&] {
    q = describe(q_obj, "q", kWhere);
    k = describe(k_obj, "k", kWhere);
    v = describe(v_obj, "v", kWhere);
    check_shapes(q, k, v, P);
  });
  const std::int64_t n = check_shards(comm, q, k);
  const ShardRange shard = shard_range(n, P, comm.rank());
  collective(comm, [&] {
    if (q.rows > n) {
      throw Error(kExitData, kWhere + ": Q has " + std::to_string(q.rows) + " rows but K only " + std::to_string(n) +
                                 " (queries are aligned to the last keys; use at most as many query rows as keys)");
    }
  });
  job.n = n;
  job.query_rows = q.rows;
  job.queries = queries > 0 ? queries : q.rows;
  job.model.d = q.d;
  validate(job, P);  // usage errors, identical on every rank

  // The values the engine will read, before any work: every rank its shard and the sampled queries.
  const std::int64_t Hq = q.heads, Hkv = k.heads, group = Hq / Hkv, m = job.queries, d = q.d;
  const std::vector<std::int64_t> rows = sample_positions(q.rows, m);
  collective(comm, [&] {
    py::gil_scoped_release nogil;
    for (std::int64_t h = 0; h < Hq; ++h) check_rows(q, h, rows, kWhere, P);
    for (std::int64_t h = 0; h < Hkv; ++h) {
      check_values(k, h, 0, k.rows, kWhere, P);
      check_values(v, h, 0, v.rows, kWhere, P);
    }
  });

  const std::size_t S = job.windows.size();
  const std::int64_t L = list_length(job.windows, n, job.max_k);
  py::dict out;
  py::dict outputs;
  std::vector<py::array_t<double>> sparse;
  for (const WindowSpec& w : job.windows) {
    sparse.push_back(zeros<double>({Hq, m, d}));
    outputs[py::str(w.text)] = sparse.back();
  }
  py::object exact_out = py::none();
  py::array_t<double> exact_arr;
  if (exact) exact_out = exact_arr = zeros<double>({Hq, m, d});
  py::array_t<std::int64_t> list_index;
  py::array_t<float> list_score;
  if (save_lists) {
    list_index = zeros<std::int64_t>({Hq, m, L});
    list_score = zeros<float>({Hq, m, L});
  }

  // Per-row statistics from the schema, plus the clamp flag: (heads, m) each.
  py::dict stats;
  std::vector<std::vector<py::array_t<double>>> stat_arrays(S);
  for (std::size_t w = 0; w < S; ++w) {
    py::dict per;
    for (const RowStatistic& st : row_statistics()) {
      stat_arrays[w].push_back(zeros<double>({Hq, m}));
      per[st.name] = stat_arrays[w].back();
    }
    stat_arrays[w].push_back(zeros<double>({Hq, m}));
    per["clamped"] = stat_arrays[w].back();
    stats[py::str(job.windows[w].text)] = per;
  }

  py::list aggregates, times, sparsity, score_max, warnings, lent_k, lent_v;
  std::vector<std::int64_t> positions;
  std::string collectives;
  double result_scale = 0;
  JobWorkspace workspace;  // one shard buffer for every head
  // MPI's start-up, when this process's first job pays it: the slowest rank's, once, in head 0's times.
  double startup = comm.allreduce_max(g_unreported_startup);
  g_unreported_startup = 0;
  for (std::int64_t h = 0; h < Hq; ++h) {
    ArraySource source(q, k, v, h, h / group, shard.lo);
    InterruptSink::Out o;
    const std::size_t head_off = static_cast<std::size_t>(h * m * d);
    if (exact) o.exact = exact_arr.mutable_data() + head_off;
    for (auto& a : sparse) o.sparse.push_back(a.mutable_data() + head_off);
    if (save_lists) {
      o.index = list_index.mutable_data() + static_cast<std::size_t>(h * m * L);
      o.score = list_score.mutable_data() + static_cast<std::size_t>(h * m * L);
    }
    InterruptSink sink(o, d);
    JobResult res;
    try {
      py::gil_scoped_release nogil;
      if (h > 0) InterruptSink::stop_check(comm);
      res = run_job(comm, job, &source, &sink, &workspace);
    } catch (const Error& e) {
      if (PyErr_Occurred()) throw py::error_already_set();  // this rank's KeyboardInterrupt
      throw;
    }
    lent_k.append(reinterpret_cast<std::uintptr_t>(source.lent_k()));
    lent_v.append(reinterpret_cast<std::uintptr_t>(source.lent_v()));
    positions = res.positions;
    collectives = res.collectives;
    result_scale = res.scale;
    for (std::size_t w = 0; w < S; ++w) {
      const StrategyResult& s = res.strategies[w];
      py::dict row;
      row["head"] = h;
      row["strategy"] = s.spec.text;
      row["rows"] = s.rows.size();
      for (const StrategyColumn& c : strategy_columns()) row[c.name] = s.*c.field;
      for (const RowStatistic& st : row_statistics()) {
        for (std::size_t a = 0; a < kAggregateCount; ++a) {
          row[py::str(std::string(st.name) + "_" + kAggregates[a])] = aggregate(s.*st.summary, a);
        }
      }
      aggregates.append(row);
      std::size_t i = 0;
      for (const RowStatistic& st : row_statistics()) {
        double* dst = stat_arrays[w][i++].mutable_data() + h * m;
        for (std::int64_t r = 0; r < m; ++r) dst[r] = st.get(s.rows[static_cast<std::size_t>(r)]);
      }
      double* clamped = stat_arrays[w][i].mutable_data() + h * m;
      for (std::int64_t r = 0; r < m; ++r) clamped[r] = s.rows[static_cast<std::size_t>(r)].clamped ? 1 : 0;
    }
    res.times.startup += startup;
    res.times.total += startup;
    startup = 0;
    py::dict t;
    for (const PhaseTime& p : phase_times()) t[p.name] = res.times.*p.field;
    times.append(t);
    for (const SparsityResult& s : res.sparsity) {
      py::dict e = summary_dict(s.count);
      e["head"] = h;
      e["eps"] = s.eps;
      e["uncovered_rows"] = s.uncovered_rows;
      sparsity.append(e);
    }
    score_max.append(summary_dict(res.score_max));
    for (const std::string& w : res.warnings) warnings.append("head " + std::to_string(h) + ": " + w);
  }

  out["windows"] = py::cast(windows);
  out["outputs"] = outputs;
  out["exact"] = exact_out;
  out["stats"] = stats;
  out["aggregates"] = aggregates;
  out["times"] = times;
  out["sparsity"] = sparsity;
  out["score_max"] = score_max;
  out["warnings"] = warnings;
  out["row_ids"] = py::array_t<std::int64_t>(static_cast<py::ssize_t>(rows.size()), rows.data());
  out["positions"] = py::array_t<std::int64_t>(static_cast<py::ssize_t>(positions.size()), positions.data());
  if (save_lists) {
    py::dict lists;
    lists["index"] = list_index;
    lists["score"] = list_score;
    out["lists"] = lists;
  } else {
    out["lists"] = py::none();
  }
  py::dict copied;
  copied["q"] = !q.in_place();
  copied["k"] = !k.in_place();
  copied["v"] = !v.in_place();
  out["copied"] = copied;
  py::dict lent;
  lent["k"] = lent_k;
  lent["v"] = lent_v;
  out["lent"] = lent;
  out["n"] = n;
  out["d"] = d;
  out["heads"] = Hq;
  out["kv_heads"] = Hkv;
  out["headed"] = q.shape.size() == 3;
  out["queries"] = m;
  out["ranks"] = P;
  out["shard"] = py::make_tuple(shard.lo, shard.hi);
  out["scale"] = result_scale;
  out["list_length"] = L;
  out["backend"] = backend;
  out["score_precision"] = score_precision;
  out["collectives"] = collectives;
  return out;
}

ModelParams model_params(std::int64_t d, const std::string& model, const std::string& x_dist, double B, double R,
                         double sigma, std::uint64_t seed, double rope_theta, std::int64_t sinks, double sink_strength,
                         bool tied) {
  ModelParams p;
  p.d = d;
  if (!parse_input_model(model, p.model)) {
    throw usage_error("--model: unknown input model '" + model + "' (use paper or gaussian)");
  }
  if (!parse_x_distribution(x_dist, p.x_dist)) {
    throw usage_error("--x-dist: unknown distribution '" + x_dist + "' (use gaussian or uniform)");
  }
  p.bound = B;
  p.weight_norm = R;
  p.sigma = sigma;
  p.seed = seed;
  p.rope_theta = rope_theta;
  p.sinks = sinks;
  p.sink_strength = sink_strength;
  p.tied = tied;
  return p;
}

// The generator's Q (all rows) and K, V (rows [lo, hi)) as float32 arrays, (n, d) or (H, n, d).
py::tuple generate_arrays(const app::GenerateConfig& c, std::int64_t lo, std::int64_t hi, int threads) {
  const std::int64_t H = c.heads > 0 ? c.heads : 1, n = c.n, d = c.model.d, rows = hi - lo;
  std::vector<py::ssize_t> qs{n, d}, ks{rows, d};
  if (c.heads > 0) qs.insert(qs.begin(), H), ks.insert(ks.begin(), H);
  py::array_t<float> q(qs), k(ks), v(ks);
  float *qp = q.mutable_data(), *kp = k.mutable_data(), *vp = v.mutable_data();
  {
    py::gil_scoped_release nogil;
    std::vector<std::int64_t> positions(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) positions[static_cast<std::size_t>(i)] = i;
    for (std::int64_t h = 0; h < H; ++h) {
      ModelParams p = c.model;
      p.seed = app::head_seed(c.model.seed, h);
      Generator gen(p);
      gen.set_threads(threads);
      const std::size_t qn = static_cast<std::size_t>(n * d), kn = static_cast<std::size_t>(rows * d);
      gen.queries(positions, {qp + h * qn, qn});
      if (rows > 0) gen.keys_values(lo, rows, {kp + h * kn, kn}, {vp + h * kn, kn});
    }
  }
  return py::make_tuple(q, k, v);
}

py::object generate(std::int64_t n, std::int64_t d, std::int64_t heads, const std::string& dtype,
                    const std::string& model, const std::string& x_dist, double B, double R, double sigma,
                    std::uint64_t seed, double rope_theta, std::int64_t sinks, double sink_strength, bool tied,
                    const std::string& out, bool force, bool shard, int threads, const py::object& comm_obj) {
  app::GenerateConfig c;
  c.n = n;
  c.model = model_params(d, model, x_dist, B, R, sigma, seed, rope_theta, sinks, sink_strength, tied);
  c.heads = heads;
  c.dtype = io::parse_dtype(dtype);
  c.out = out.empty() ? std::string("-") : out;  // checked below for arrays
  c.force = force;
  app::validate(c);
  if (!out.empty()) {
    const Comm comm = make_comm(comm_obj);
    py::gil_scoped_release nogil;
    app::generate_file(comm, c);
    return py::none();
  }
  if (threads < 1) throw usage_error("--threads: must be >= 1, got " + std::to_string(threads));
  std::int64_t lo = 0, hi = n;
  if (shard) {
    const Comm comm = make_comm(comm_obj);
    const ShardRange s = shard_range(n, comm.size(), comm.rank());
    lo = s.lo, hi = s.hi;
  }
  return generate_arrays(c, lo, hi, threads);
}

int run_study(const std::string& path, const std::string& out, bool restart, bool force, const std::string& backend,
          const py::object& comm_obj) {
  const Comm comm = make_comm(comm_obj);
  study::StudyOptions o;
  o.study_file = path;
  o.out = out;
  o.restart = restart;
  o.force = force;
  o.backend = backend;
  py::gil_scoped_release nogil;  // the study installs its own SIGINT/SIGTERM handlers meanwhile
  return study::run_study(comm, o);
}

std::string read_results_csv(const std::string& path) {
  py::gil_scoped_release nogil;
  return study::format_study_results(path, study::ReportFormat::Csv);
}

std::string fit_text(const std::string& path, double confidence, double target_l1, std::int64_t min_n,
                     const std::string& format) {
  study::FitOptions o;
  o.confidence = confidence;
  o.target_l1 = target_l1;
  o.min_n = min_n;
  o.format = study::parse_fit_format(format);
  py::gil_scoped_release nogil;
  return study::format_fit(path, o);
}

py::dict schema() {
  py::dict out;
  py::list rows, cols, phases;
  auto need = [](Need n) { return n == Need::Always ? "always" : n == Need::Exact ? "exact" : "certificate"; };
  for (const RowStatistic& s : row_statistics()) {
    rows.append(py::dict(py::arg("name") = s.name, py::arg("meaning") = s.meaning, py::arg("units") = s.units,
                         py::arg("needs") = need(s.need), py::arg("integer") = s.integer));
  }
  for (const StrategyColumn& c : strategy_columns()) {
    cols.append(py::dict(py::arg("name") = c.name, py::arg("meaning") = c.meaning, py::arg("units") = c.units,
                         py::arg("integer") = c.integer));
  }
  for (const PhaseTime& p : phase_times()) {
    phases.append(py::dict(py::arg("name") = p.name, py::arg("label") = p.label, py::arg("meaning") = p.meaning));
  }
  out["row_statistics"] = rows;
  out["strategy_columns"] = cols;
  out["phase_times"] = phases;
  out["aggregates"] = py::cast(std::vector<std::string>(std::begin(kAggregates), std::end(kAggregates)));
  out["markdown"] = schema_markdown();
  return out;
}

py::list strategies() {
  py::list out;
  for (const StrategyKind& k : strategy_kinds()) {
    out.append(py::dict(py::arg("name") = k.name, py::arg("form") = k.form, py::arg("help") = k.help));
  }
  return out;
}

py::tuple py_shard_range(std::int64_t n, const py::object& comm_obj) {
  const Comm comm = make_comm(comm_obj);
  const ShardRange s = shard_range(n, comm.size(), comm.rank());
  return py::make_tuple(s.lo, s.hi);
}

}  // namespace
}  // namespace ncsparse::python

PYBIND11_MODULE(_ncsparse, m) {
  using namespace ncsparse;
  using namespace ncsparse::python;
  m.doc() = "ncsparse engine (use the ncsparse package, not this module)";
  // An Error becomes the Python exception of its kind, with the command line's one-line message.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      PyObject* type = PyExc_RuntimeError;
      switch (e.code()) {
        case kExitUsage:
        case kExitData: type = PyExc_ValueError; break;
        case kTypeErrorCode: type = PyExc_TypeError; break;
        case kExitNoInput: type = PyExc_FileNotFoundError; break;
        case kExitCantCreate:
        case kExitIo: type = PyExc_OSError; break;
        case kExitInterrupted: type = PyExc_KeyboardInterrupt; break;
        default: break;
      }
      PyErr_SetString(type, e.what());
    }
  });
  m.attr("version") = NCSPARSE_VERSION;
  m.def("attend", &attend, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("windows"), py::arg("causal"),
        py::arg("exact"), py::arg("queries"), py::arg("scale"), py::arg("backend"), py::arg("threads"),
        py::arg("save_lists"), py::arg("comm"), py::arg("block"), py::arg("tile"), py::arg("max_k"),
        py::arg("sparsity_eps"), py::arg("score_precision"));
  m.def("generate", &generate, py::arg("n"), py::arg("d"), py::arg("heads"), py::arg("dtype"), py::arg("model"),
        py::arg("x_dist"), py::arg("B"), py::arg("R"), py::arg("sigma"), py::arg("seed"), py::arg("rope_theta"),
        py::arg("sinks"), py::arg("sink_strength"), py::arg("tied"), py::arg("out"), py::arg("force"),
        py::arg("shard"), py::arg("threads"), py::arg("comm"));
  m.def("study", &python::run_study, py::arg("path"), py::arg("out"), py::arg("restart"), py::arg("force"), py::arg("backend"),
        py::arg("comm"));
  m.def("read_results_csv", &read_results_csv, py::arg("path"));
  m.def("fit_text", &fit_text, py::arg("path"), py::arg("confidence"), py::arg("target_l1"), py::arg("min_n"),
        py::arg("format"));
  m.def("schema", &schema);
  m.def("strategies", &strategies);
  m.def("shard_range", &py_shard_range, py::arg("n"), py::arg("comm"));
  m.def("finalize_mpi", &finalize_mpi);
  m.def("ensure_mpi", &ensure_mpi);
}
