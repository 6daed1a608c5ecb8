#include "study/records.hpp"

#include "ncsparse/schema.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

namespace ncsparse::study {
namespace {

using h5::check;
using h5::check_id;
using h5::Handle;

Error io_error(const std::string& what) { return Error(kExitIo, what + ": " + std::strerror(errno)); }

void put(std::string& s, const std::string& name, const void* data, std::size_t size) {
  s += name;
  s += '\0';
  s.append(static_cast<const char*>(data), size);
  s += '\0';
}

void write_doubles(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims,
                   const std::vector<double>& values) {
  Handle space(check_id(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                        "cannot create the dataspace of " + name));
  Handle ds(check_id(H5Dcreate2(loc, name.c_str(), H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                     "cannot create dataset " + name));
  if (!values.empty()) check(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()),
                             "cannot write dataset " + name);
}

void write_strings(hid_t loc, const std::string& name, const std::vector<std::string>& values) {
  std::size_t width = 1;
  for (const std::string& v : values) width = std::max(width, v.size());
  std::vector<char> buf(width * values.size(), '\0');
  for (std::size_t i = 0; i < values.size(); ++i) std::memcpy(buf.data() + i * width, values[i].data(), values[i].size());
  Handle type(check_id(H5Tcopy(H5T_C_S1), "cannot create a string type"));
  check(H5Tset_size(type, width), "cannot size a string type");
  check(H5Tset_strpad(type, H5T_STR_NULLPAD), "cannot pad a string type");
  const hsize_t dims[1] = {values.size()};
  Handle space(check_id(H5Screate_simple(1, dims, nullptr), "cannot create the dataspace of " + name));
  Handle ds(check_id(H5Dcreate2(loc, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                     "cannot create dataset " + name));
  if (!values.empty()) check(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), "cannot write " + name);
}

std::vector<double> summary_row(const Summary& s) {
  return {static_cast<double>(s.count), s.mean, s.min, s.p50, s.p90, s.p99, s.max};
}

herr_t collect_attr(hid_t, const char* name, const H5A_info_t*, void* data) {
  static_cast<std::vector<std::string>*>(data)->push_back(name);
  return 0;
}

std::string join(const std::vector<std::string>& v, char sep) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? std::string(1, sep) : "") + v[i];
  return s;
}

constexpr hsize_t kUserBlock = 512;

// The record file's first kUserBlock bytes: magic, size and FNV-1a of the bytes after them,
// zero padded.
std::string file_header(const std::string& bytes) {
  const std::size_t body = bytes.size() - kUserBlock;
  std::string h = std::string("ncsparse-record ") + kFormat + " size " + std::to_string(body) + " fnv1a " +
                  hex64(fnv1a(bytes.data() + kUserBlock, body)) + "\n";
  h.resize(kUserBlock, '\0');
  return h;
}

void write_record_group(hid_t g, const Record& r) {
  for (const auto& [k, v] : r.text) h5::write_attr(g, k, v);
  for (const auto& [k, v] : r.num) h5::write_attr(g, k, v);
  for (const auto& [k, v] : r.ints) h5::write_attr(g, k, v);
  for (const auto& [k, a] : r.arrays) write_doubles(g, k, a.dims, a.values);
}

}  // namespace

std::string record_checksum(const Record& r, bool with_times) {
  std::string s = kFormat;
  for (const auto& [k, v] : r.text) {
    if (k != "checksum") put(s, "t:" + k, v.data(), v.size());
  }
  for (const auto& [k, v] : r.num) put(s, "f:" + k, &v, sizeof v);
  for (const auto& [k, v] : r.ints) put(s, "i:" + k, &v, sizeof v);
  for (const auto& [k, a] : r.arrays) {
    if (!with_times && k == "times") continue;
    put(s, "a:" + k, a.dims.data(), a.dims.size() * sizeof(hsize_t));
    put(s, "", a.values.data(), a.values.size() * sizeof(double));
  }
  return hex64(fnv1a(s.data(), s.size()));
}

Record make_record(const Configuration& c, const JobResult& res, const std::string& study_hash) {
  Record r;
  const JobConfig& j = c.job;
  std::vector<std::string> windows, strategies;
  for (const WindowSpec& w : j.windows) windows.push_back(w.text);
  for (const StrategyResult& s : res.strategies) strategies.push_back(s.spec.text);
  r.text["format"] = kFormat;
  r.text["study_hash"] = study_hash;
  r.text["config_hash"] = c.hash;
  r.text["canonical"] = c.canonical;
  r.text["model"] = c.model_label;
  r.text["model_kind"] = to_string(j.model.model);
  r.text["x_dist"] = to_string(j.model.x_dist);
  r.text["windows"] = join(windows, '\n');
  r.text["strategies"] = join(strategies, '\n');
  r.text["backend"] = j.backend;
  std::string stat_fields;
  for (const char* a : kAggregates) stat_fields += (stat_fields.empty() ? "" : ",") + std::string(a);
  r.text["stat_fields"] = stat_fields;
  r.ints["index"] = c.index;
  r.ints["ranks"] = res.ranks;
  r.ints["n"] = j.n;
  r.ints["d"] = j.model.d;
  r.ints["seed"] = static_cast<std::int64_t>(j.model.seed);
  r.ints["queries"] = j.queries;
  r.ints["causal"] = j.causal ? 1 : 0;
  r.ints["exact"] = j.exact ? 1 : 0;
  r.ints["max_k"] = j.max_k;
  r.ints["block"] = j.block;
  r.ints["tile"] = j.tile;
  r.ints["list_length"] = res.list_length;
  r.num["B"] = j.model.bound;
  r.num["R"] = j.model.weight_norm;
  r.num["sigma"] = j.model.sigma;
  // Position features (RoPE, sinks) only when on, so older studies' records keep their checksums.
  if (j.model.rope_theta > 0) r.num["rope_theta"] = j.model.rope_theta;
  if (j.model.sinks > 0) {
    r.ints["sinks"] = j.model.sinks;
    r.num["sink_strength"] = j.model.sink_strength;
  }
  if (j.model.tied) r.ints["tied"] = 1;
  r.num["scale_requested"] = j.scale;
  r.num["scale"] = res.scale;
  r.num["v_max_norm"] = res.v_max_norm;
  const hsize_t S = res.strategies.size();
  for (const RowStatistic& stat : row_statistics()) {
    Record::Array a{{S, kAggregateCount}, {}};
    for (const StrategyResult& s : res.strategies) {
      const std::vector<double> row = summary_row(s.*stat.summary);
      a.values.insert(a.values.end(), row.begin(), row.end());
    }
    r.arrays[std::string("stat_") + stat.name] = std::move(a);
  }
  // The strategies' columns (clamped_rows; the approximators' t or e, state bytes, lost rows...).
  for (const StrategyColumn& c : strategy_columns()) {
    Record::Array a{{S}, {}};
    for (const StrategyResult& s : res.strategies) a.values.push_back(s.*c.field);
    r.arrays[c.name] = std::move(a);
  }
  r.arrays["score_max"] = Record::Array{{7}, summary_row(res.score_max)};
  Record::Array sp{{res.sparsity.size(), 9}, {}};
  for (const SparsityResult& s : res.sparsity) {
    sp.values.push_back(s.eps);
    const std::vector<double> row = summary_row(s.count);
    sp.values.insert(sp.values.end(), row.begin(), row.end());
    sp.values.push_back(static_cast<double>(s.uncovered_rows));
  }
  r.arrays["sparsity"] = std::move(sp);
  // Rows where the certificate fails to bound the realised error: dropped mass 1 − M above
  // cert_mass, and ‖ô − o‖₂ above cert_out. The bound must hold on every row (DESIGN.md §4), so
  // both stay 0; summaries alone could not show it. Slack: 1e-9 relative for rounding, and for
  // the output the resolution of the reference itself: the exact output is accumulated from
  // float32 scores and weights, so ‖ô − o‖₂ is only known to about 1e-5·‖o‖₂ (out_rel bottoms out
  // at 1e-6–1e-5). Without it, rows whose bound is below that floor (e.g. 4.4e-7 against a
  // measured 1.4e-5 = 2.1e-6·‖o‖, n = 1024, d = 32, R = 1152) were counted, although the output
  // bound follows from the mass bound, which held on every row.
  Record::Array viol{{S, 2}, {}};
  for (const StrategyResult& s : res.strategies) {
    double mass = 0, out = 0;
    for (const RowStats& row : s.rows) {
      if (std::isfinite(row.kept_mass) && std::isfinite(row.cert_mass) &&
          1 - row.kept_mass > row.cert_mass * (1 + 1e-9) + 1e-15) {
        ++mass;
      }
      const double o_norm = row.out_rel > 0 ? row.out_l2 / row.out_rel : 0.0;  // ‖o‖₂
      if (std::isfinite(row.out_l2) && std::isfinite(row.cert_out) &&
          row.out_l2 > row.cert_out * (1 + 1e-9) + 1e-5 * o_norm + 1e-15) {
        ++out;
      }
    }
    viol.values.push_back(mass);
    viol.values.push_back(out);
  }
  r.arrays["cert_violations"] = std::move(viol);
  r.text["cert_violations_fields"] = "dropped_mass,out_l2";
  r.text["sparsity_fields"] = "eps,count,mean,min,p50,p90,p99,max,uncovered_rows";
  Record::Array times{{phase_times().size()}, {}};
  std::string times_fields;
  for (const PhaseTime& p : phase_times()) {
    times.values.push_back(res.times.*p.field);
    times_fields += (times_fields.empty() ? "" : ",") + std::string(p.name);
  }
  r.arrays["times"] = std::move(times);
  r.text["times_fields"] = times_fields;
  return r;
}

bool read_text(const std::string& path, std::string& text) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream os;
  os << in.rdbuf();
  text = os.str();
  return true;
}

void commit_record(const std::string& dir, const std::string& hash, Record record) {
  record.text["checksum"] = record_checksum(record);
  io::AtomicFile temp(dir + "/" + hash + ".h5");
  const std::string& tmp = temp.path();
  // Built in memory and written with plain checked writes: a full disk fails one write() with
  // its errno, never an HDF5 flush or close, which would leave the file open until HDF5's own
  // shutdown at MPI_Finalize.
  std::string bytes(kUserBlock, '\0');
  {
    h5::silence_errors();
    Handle fcpl(check_id(H5Pcreate(H5P_FILE_CREATE), "cannot create a file creation list"));
    check(H5Pset_userblock(fcpl, kUserBlock), "cannot set the user block");
    Handle fapl = h5::memory_file_access();
    Handle file(check_id(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, fcpl, fapl), tmp + ": cannot create the record",
                         kExitCantCreate));
    Handle g = h5::create_group(file, "record");
    write_record_group(g, record);
    g.reset();
    bytes += h5::file_image(file, tmp);
  }
  // The user block (which HDF5 skips) carries a checksum of every byte after it, so a damaged
  // file is found with plain reads, before HDF5 parses it.
  bytes.replace(0, kUserBlock, file_header(bytes));
  io::write_all(tmp, bytes.data(), bytes.size(), "the record");
  temp.commit();
}

Record read_record_group(hid_t g) {
  Record r;
  std::vector<std::string> names;
  hsize_t idx = 0;
  check(H5Aiterate2(g, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attr, &names), "cannot list attributes", kExitData);
  for (const std::string& name : names) {
    Handle attr(check_id(H5Aopen(g, name.c_str(), H5P_DEFAULT), "cannot open attribute " + name, kExitData));
    Handle type(check_id(H5Aget_type(attr), "cannot read the type of attribute " + name, kExitData));
    switch (H5Tget_class(type)) {
      case H5T_STRING: r.text[name] = h5::read_attr_string(g, name); break;
      case H5T_FLOAT: r.num[name] = h5::read_attr_double(g, name); break;
      case H5T_INTEGER: r.ints[name] = h5::read_attr_int(g, name); break;
      default: throw Error(kExitData, "attribute " + name + " has an unexpected type");
    }
  }
  H5G_info_t info{};
  check(H5Gget_info(g, &info), "cannot list datasets", kExitData);
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    check(static_cast<herr_t>(len < 0 ? -1 : 0), "cannot read a dataset name", kExitData);
    std::string name(static_cast<std::size_t>(len) + 1, '\0');
    H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT);
    name.resize(static_cast<std::size_t>(len));
    Handle ds = h5::open_dataset(g, name, "record");
    Record::Array a;
    a.dims = h5::shape(ds);
    hsize_t total = 1;
    for (hsize_t d : a.dims) total *= d;
    if (total > (1u << 24)) throw Error(kExitData, "dataset " + name + " is too large for a record");
    a.values.resize(total);
    if (total > 0) {
      check(H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, a.values.data()),
            "cannot read dataset " + name, kExitData);
    }
    r.arrays[name] = std::move(a);
  }
  return r;
}

Record read_record_file(const std::string& path) {
  Handle file = h5::open_input_file(path, MPI_COMM_NULL);
  if (!h5::exists(file, "record")) throw Error(kExitData, path + ": no group 'record'");
  Handle g(check_id(H5Gopen2(file, "record", H5P_DEFAULT), path + ": cannot open group 'record'", kExitData));
  return read_record_group(g);
}

bool record_valid(const std::string& path, const std::string& study, const std::string& config, int ranks,
                  std::string* why) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (why) *why = "missing";
    return false;
  }
  std::string bytes;
  if (!read_text(path, bytes) || bytes.size() < kUserBlock || bytes.compare(0, kUserBlock, file_header(bytes)) != 0) {
    if (why) *why = "damaged: its file checksum does not match";
    return false;
  }
  try {
    const Record r = read_record_file(path);
    auto text = [&](const char* k) {
      const auto it = r.text.find(k);
      return it == r.text.end() ? std::string() : it->second;
    };
    std::string problem;
    if (text("format") != kFormat) {
      problem = "not a study record";
    } else if (text("study_hash") != study) {
      problem = "made by another study";
    } else if (text("config_hash") != config) {
      problem = "holds another configuration";
    } else if (const auto it = r.ints.find("ranks"); it == r.ints.end() || it->second != ranks) {
      problem = (it == r.ints.end() ? std::string("made before records held their rank count")
                                    : "made on " + std::to_string(it->second) + " ranks") +
                "; this run has " + std::to_string(ranks) +
                ", and exact-pass floats differ in their last bits between rank counts";
    } else if (text("checksum") != record_checksum(r)) {
      problem = "checksum mismatch";
    }
    if (why) *why = problem;
    return problem.empty();
  } catch (const Error& e) {
    if (why) *why = std::string("unreadable: ") + e.what();
    return false;
  }
}

void build_results(const std::string& out, const StudySpec& spec, const std::string& study_hash,
                   std::int64_t configurations, const std::vector<std::string>& record_paths) {
  io::AtomicFile temp(out);
  const std::string& tmp = temp.path();
  std::string bytes;
  {
    // In memory, then written with checked writes (see commit_record).
    h5::silence_errors();
    Handle fapl = h5::memory_file_access();
    Handle file(check_id(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl), tmp + ": cannot create the results",
                         kExitCantCreate));
    h5::write_attr(file, "format", std::string(kFormat));
    h5::write_attr(file, "study_hash", study_hash);
    h5::write_attr(file, "study_name", spec.name);
    h5::write_attr(file, "study_file", spec.path);
    h5::write_attr(file, "study", canonical_study(spec));
    h5::write_attr(file, "configurations", configurations);
    h5::write_attr(file, "recorded", static_cast<std::int64_t>(record_paths.size()));
    h5::write_attr(file, "complete", static_cast<std::int64_t>(
                                         static_cast<std::int64_t>(record_paths.size()) == configurations ? 1 : 0));
    {
      Handle al = h5::create_group(file, "alignment");
      h5::write_attr(al, "reference", spec.aligned ? spec.reference.text : std::string());
      h5::write_attr(al, "reference_total", spec.reference_total);
      std::vector<double> lengths(spec.n.begin(), spec.n.end());
      write_doubles(al, "lengths", {lengths.size()}, lengths);
      std::vector<std::string> forms, specs;
      std::vector<double> alpha, total;
      for (const Alignment& a : spec.alignments) {
        forms.push_back(a.form);
        specs.push_back(a.spec.text);
        alpha.push_back(a.alpha);
        total.push_back(static_cast<double>(a.total));
      }
      write_strings(al, "form", forms);
      write_strings(al, "strategy", specs);
      write_doubles(al, "alpha", {alpha.size()}, alpha);
      write_doubles(al, "total", {total.size()}, total);
    }
    Handle configs = h5::create_group(file, "configs");
    // The summary table: one row per configuration x strategy.
    std::vector<std::string> s_config, s_model, s_strategy;
    std::map<std::string, std::vector<double>> cols;
    for (const std::string& path : record_paths) {
      const Record r = read_record_file(path);
      const std::string hash = r.text.at("config_hash");
      {
        Handle src = h5::open_input_file(path, MPI_COMM_NULL);
        check(H5Ocopy(src, "record", configs, hash.c_str(), H5P_DEFAULT, H5P_DEFAULT),
              tmp + ": cannot copy the record " + path);
      }
      std::vector<std::string> strategies;
      std::istringstream in(r.text.at("strategies"));
      for (std::string line; std::getline(in, line);) strategies.push_back(line);
      for (std::size_t s = 0; s < strategies.size(); ++s) {
        s_config.push_back(hash);
        s_model.push_back(r.text.at("model"));
        s_strategy.push_back(strategies[s]);
        for (const char* k : {"index", "n", "d", "seed", "queries"}) {
          cols[k].push_back(static_cast<double>(r.ints.at(k)));
        }
        const double nan = std::numeric_limits<double>::quiet_NaN();
        for (const RowStatistic& stat : row_statistics()) {
          const Record::Array& a = r.arrays.at(std::string("stat_") + stat.name);
          for (std::size_t f = 1; f < kAggregateCount; ++f) {
            cols[std::string(stat.name) + "_" + kAggregates[f]].push_back(a.values[s * kAggregateCount + f]);
          }
        }
        // Columns a record of an older version lacks are NaN.
        for (const StrategyColumn& c : strategy_columns()) {
          const auto a = r.arrays.find(c.name);
          cols[c.name].push_back(a != r.arrays.end() ? a->second.values[s] : nan);
        }
        const auto score = r.arrays.find("score_max");
        cols["score_max_max"].push_back(score != r.arrays.end() ? score->second.values[6] : nan);
      }
    }
    configs.reset();
    Handle summary = h5::create_group(file, "summary");
    write_strings(summary, "config", s_config);
    write_strings(summary, "model", s_model);
    write_strings(summary, "strategy", s_strategy);
    for (const auto& [k, v] : cols) write_doubles(summary, k, {v.size()}, v);
    summary.reset();
    bytes = h5::file_image(file, tmp);
  }
  io::write_all(tmp, bytes.data(), bytes.size(), "the results");
  temp.commit();
}

std::string results_study_hash(const std::string& path) {
  try {
    h5::silence_errors();
    if (H5Fis_hdf5(path.c_str()) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return "";
    }
    Handle file = h5::open_input_file(path, MPI_COMM_NULL);
    if (!h5::has_attr(file, "format") || h5::read_attr_string(file, "format") != kFormat) return "";
    return h5::read_attr_string(file, "study_hash");
  } catch (const Error&) {
    return "";
  }
}

StudyLock::StudyLock(const std::string& path) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw Error(kExitCantCreate, path + ": cannot create the study's lock file: " + std::strerror(errno) +
                                     " (check that the output's directory is writable)");
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int saved = errno;
    char buf[128] = {0};
    const ssize_t got = ::pread(fd_, buf, sizeof buf - 1, 0);
    std::string holder = got > 0 ? std::string(buf, static_cast<std::size_t>(got)) : std::string("unknown");
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    ::close(fd_);
    fd_ = -1;
    if (saved == EWOULDBLOCK) {
      throw Error(kExitCantCreate, path + ": another ncsparse study job (" + holder +
                                       ") is running this study; wait for it to end or stop it, then rerun");
    }
    errno = saved;
    throw io_error(path + ": cannot lock");
  }
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  const std::string me = "pid " + std::to_string(::getpid()) + " on " + host + "\n";
  if (::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, me.data(), me.size(), 0) < 0) {
    // The holder's name is only for messages; the lock itself holds.
  }
}

StudyLock::~StudyLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace ncsparse::study
