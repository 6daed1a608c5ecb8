// The strategy interface and the statistics schema from the outside: a strategy registered here,
// in this file only, runs through `run` (run_job and its table/CSV/JSON), a study (records,
// results file, report) and an `attend` output file; and every output path carries every
// statistic of the schema.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "app/attend.hpp"
#include "app/generate.hpp"
#include "io/h5.hpp"
#include "ncsparse/report.hpp"
#include "ncsparse/schema.hpp"
#include "ncsparse/window.hpp"
#include "study/records.hpp"
#include "study/report_study.hpp"
#include "study/run_study.hpp"

namespace ncsparse {
namespace {

namespace fs = std::filesystem;

// lg2:A — k = ⌈A log₂ n⌉: a prefix window the engine has never heard of.
class Lg2Window final : public PrefixStrategy {
 public:
  Lg2Window(const SpecArgs& a, double alpha) : PrefixStrategy(a.name(), a.spec(), {alpha}) {}
  double fixed_target(std::int64_t n) const override {
    return std::ceil(value(0) * std::log2(static_cast<double>(std::max<std::int64_t>(n, 1))));
  }
  WindowChoice choose(std::span<const Candidate> list, std::int64_t capacity, std::int64_t n_visible,
                      const RowFacts&) const override {
    return clamp(fixed_target(n_visible), list, capacity, n_visible);
  }
};

void register_lg2() {
  if (find_strategy_kind("lg2") != nullptr) return;
  register_strategy({"lg2", "lg2:A", "k = ceil(A log2 n)",
                     [](const SpecArgs& a) -> std::shared_ptr<const Strategy> {
                       a.need(1);
                       const double alpha = a.number(0, "alpha");
                       if (alpha <= 0) a.fail("alpha must be > 0");
                       return std::make_shared<Lg2Window>(a, alpha);
                     },
                     "lg2", [](const std::string& alpha, const std::vector<std::string>&) { return "lg2:" + alpha; }});
}

fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("ncsparse-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

JobConfig small_job(std::vector<std::string> windows) {
  JobConfig c;
  c.n = 1024;
  c.queries = 16;
  c.block = 7;
  c.model.d = 16;
  c.model.seed = 5;
  for (const std::string& w : windows) c.windows.push_back(parse_window(w));
  c.keep_rows = true;
  return c;
}

// Runs a one-model study (sizes and windows as TOML lines) into dir/res.h5; returns its path.
std::string run_small_study(const fs::path& dir, const std::string& sizes, const std::string& windows) {
  std::ofstream(dir / "s.toml") << "[study]\nname = \"t\"\n" << sizes << "d = [8]\nseeds = [1]\n"
                                << "[[model]]\nmodel = \"gaussian\"\nsigma = 0.5\n[windows]\n" << windows;
  study::StudyOptions so;
  so.study_file = (dir / "s.toml").string();
  so.out = (dir / "res.h5").string();
  EXPECT_EQ(study::run_study(Comm(MPI_COMM_SELF), so), 0);
  return so.out;
}

// Generates n keys of d = 8 into dir/in.h5 and attends them (exact pass on) into dir/att.h5.
std::string attend_small(const fs::path& dir, std::int64_t n, const std::vector<std::string>& windows,
                         bool save_cert) {
  app::GenerateConfig g;
  g.n = n;
  g.model.d = 8;
  g.out = (dir / "in.h5").string();
  app::generate_file(Comm(MPI_COMM_SELF), g);
  app::AttendConfig a;
  a.input = g.out;
  a.out = (dir / "att.h5").string();
  a.job = small_job(windows);
  a.job.keep_rows = false;
  a.save_cert = save_cert;
  app::attend_file(Comm(MPI_COMM_SELF), a);
  return a.out;
}

// The strategies of a `report --format csv` text (its fifth column), each once.
std::set<std::string> report_strategies(const std::string& csv) {
  std::set<std::string> out;
  std::istringstream in(csv);
  std::string line;
  std::getline(in, line);  // the header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string field;
    for (int i = 0; i < 5 && std::getline(fields, field, ','); ++i) {
    }
    out.insert(field);
  }
  return out;
}

TEST(StrategyRegistry, ATestStrategyRunsThroughRunStudyAndAttend) {
  register_lg2();
  EXPECT_NE(strategy_forms().find("lg2:A"), std::string::npos);
  EXPECT_NE(alignable_forms().find("lg2"), std::string::npos);
  EXPECT_THROW(parse_window("lg2:-1"), Error);
  EXPECT_THROW(register_strategy(*find_strategy_kind("lg2")), Error);  // a name is registered once

  // run: lg2:3 at n = 1024 is k = 30 on every row, the same prefix as const:30.
  const JobResult r = run_job(Comm(MPI_COMM_SELF), small_job({"lg2:3", "const:30"}));
  ASSERT_EQ(r.strategies.size(), 2u);
  for (std::size_t i = 0; i < r.strategies[0].rows.size(); ++i) {
    EXPECT_EQ(r.strategies[0].rows[i].k, 30);
    EXPECT_EQ(r.strategies[0].rows[i].out_rel, r.strategies[1].rows[i].out_rel);
    EXPECT_EQ(r.strategies[0].rows[i].cert_out, r.strategies[1].rows[i].cert_out);
  }
  EXPECT_EQ(r.o_sparse.size() % 2, 0u);
  const std::size_t half = r.o_sparse.size() / 2;
  for (std::size_t x = 0; x < half; ++x) ASSERT_EQ(r.o_sparse[x], r.o_sparse[half + x]);
  for (Format f : {Format::Table, Format::Csv, Format::Json}) {
    EXPECT_NE(format_result(r, f).find("lg2:3"), std::string::npos);
  }

  // a study, with lg2 aligned to a reference budget by the registry's align form
  const fs::path dir = temp_dir("registry-study");
  const std::string res = run_small_study(dir, "n = [512, 1024]\nqueries = 8\n",
                                          "align = \"const:20\"\naligned = [\"lg2\"]\nstrategies = [\"lg2:2\"]\n");
  std::set<std::string> lg2;
  for (const std::string& s : report_strategies(study::format_study_results(res, study::ReportFormat::Csv))) {
    if (s.rfind("lg2:", 0) == 0) lg2.insert(s);
  }
  EXPECT_EQ(lg2.size(), 2u) << "lg2:2 and the aligned lg2 window, both in the report";
  EXPECT_TRUE(lg2.count("lg2:2"));

  // attend, to an HDF5 output with the strategy's outputs and per-row statistics
  h5::Handle f = h5::open_input_file(attend_small(dir, 256, {"lg2:1"}, false), MPI_COMM_NULL);
  EXPECT_TRUE(h5::exists(f, "/O/lg2:1"));
  EXPECT_TRUE(h5::exists(f, "/stats/lg2:1/k"));
  fs::remove_all(dir);
}

// Every output path carries every statistic of the schema: the CSV and JSON of `run`, the study
// record and results file, `report --format csv`, attend's per-row datasets and the docs.
TEST(StatisticsSchema, EveryOutputCarriesEveryStatistic) {
  JobConfig c = small_job({"const:8", "taylor:2"});
  c.keep_rows = false;
  const JobResult r = run_job(Comm(MPI_COMM_SELF), c);
  const std::string csv = format_result(r, Format::Csv), json = format_result(r, Format::Json);
  const std::string header = csv.substr(0, csv.find('\n'));
  for (const RowStatistic& s : row_statistics()) {
    for (const char* a : kAggregates)
      EXPECT_NE(header.find(std::string(s.name) + "_" + a), std::string::npos) << s.name << a;
    EXPECT_NE(json.find("\"" + std::string(s.name) + "\": {"), std::string::npos) << s.name;
  }
  for (const StrategyColumn& col : strategy_columns()) {
    EXPECT_NE(header.find(col.name), std::string::npos) << col.name;
    EXPECT_NE(json.find("\"" + std::string(col.name) + "\""), std::string::npos) << col.name;
  }
  for (const PhaseTime& p : phase_times()) EXPECT_NE(json.find("\"" + std::string(p.name) + "\""), std::string::npos);

  study::Configuration conf;
  conf.job = c;
  conf.hash = "0123456789abcdef";
  const study::Record rec = study::make_record(conf, r, "h");
  for (const RowStatistic& s : row_statistics()) EXPECT_TRUE(rec.arrays.count(std::string("stat_") + s.name)) << s.name;
  for (const StrategyColumn& col : strategy_columns()) EXPECT_TRUE(rec.arrays.count(col.name)) << col.name;
  EXPECT_EQ(rec.arrays.at("times").values.size(), phase_times().size());

  // The docs' list is the schema's.
  std::ifstream doc(std::string(NCSPARSE_SOURCE_DIR) + "/docs/statistics.md");
  std::stringstream text;
  text << doc.rdbuf();
  EXPECT_NE(text.str().find(schema_markdown()), std::string::npos)
      << "docs/statistics.md is out of date: regenerate its tables with `ncsparse schema`";
}

TEST(StatisticsSchema, ResultsFileReportAndAttendCarryEveryStatistic) {
  const fs::path dir = temp_dir("schema");
  const std::string res_path = run_small_study(dir, "n = [256]\nqueries = 4\n", "strategies = [\"const:4\"]\n");
  const std::string report = study::format_study_results(res_path, study::ReportFormat::Csv);
  const std::string head = report.substr(0, report.find('\n'));
  h5::Handle res = h5::open_input_file(res_path, MPI_COMM_NULL);
  for (const RowStatistic& s : row_statistics()) {
    for (std::size_t a = 1; a < kAggregateCount; ++a) {
      const std::string name = std::string(s.name) + "_" + kAggregates[a];
      EXPECT_NE(head.find(name), std::string::npos) << name;
      EXPECT_TRUE(h5::exists(res, "/summary/" + name)) << name;
    }
  }
  for (const StrategyColumn& col : strategy_columns()) {
    EXPECT_NE(head.find(col.name), std::string::npos) << col.name;
    EXPECT_TRUE(h5::exists(res, std::string("/summary/") + col.name)) << col.name;
  }

  h5::Handle f = h5::open_input_file(attend_small(dir, 128, {"const:4"}, true), MPI_COMM_NULL);
  for (const RowStatistic& s : row_statistics()) {
    EXPECT_TRUE(h5::exists(f, std::string("/stats/const:4/") + s.name)) << s.name;
  }
  EXPECT_TRUE(h5::exists(f, "/stats/const:4/clamped"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ncsparse
