// Study files: strict parsing, configuration expansion and hashing, budget alignment.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <set>

#include "study/records.hpp"
#include "study/study_spec.hpp"

namespace ncsparse::study {
namespace {

const char* kGood = R"(
[study]
name = "t"
n = [1024, 4096]
d = [16, 32]
seeds = [1, 2, 3]
queries = 64

[[model]]
model = "paper"
B = 3
R = 288.0

[[model]]
model = "gaussian"
sigma = 0.5

[windows]
align = "const:64"
aligned = ["log", "power:0.5", "sqrt"]
strategies = ["cert:1e-2", "eps:1e-3"]
)";

// Expects a usage error whose message contains every fragment.
void expect_error(const std::string& text, std::initializer_list<const char*> fragments) {
  try {
    parse_study_text(text, "s.toml");
    FAIL() << "no error for:\n" << text;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitUsage);
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const char* f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
  }
}

std::string replace(std::string text, const std::string& from, const std::string& to) {
  const std::size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return text.replace(at, from.size(), to);
}

TEST(StudySpec, ParsesTheGoodFile) {
  const StudySpec s = parse_study_text(kGood, "s.toml");
  EXPECT_EQ(s.name, "t");
  EXPECT_EQ(s.n, (std::vector<std::int64_t>{1024, 4096}));
  EXPECT_EQ(s.seeds.size(), 3u);
  ASSERT_EQ(s.models.size(), 2u);
  EXPECT_EQ(s.models[1].params.model, InputModel::Gaussian);
  EXPECT_DOUBLE_EQ(s.models[1].params.sigma, 0.5);
  ASSERT_EQ(s.windows.size(), 6u);
  EXPECT_EQ(s.windows[0].text, "const:64");
  EXPECT_EQ(s.windows[4].text, "cert:1e-2");
  EXPECT_EQ(s.reference_total, 128);
}

TEST(StudySpec, TrialsMeanSeedsOneToT) {
  const StudySpec s = parse_study_text(replace(kGood, "seeds = [1, 2, 3]", "trials = 4"), "s.toml");
  EXPECT_EQ(s.seeds, (std::vector<std::uint64_t>{1, 2, 3, 4}));
}

TEST(StudySpec, RejectsWithKeyAndLine) {
  expect_error(replace(kGood, "queries = 64", "queries = 64\nbogus = 1"), {"s.toml:8:", "study.bogus", "unknown key"});
  expect_error(replace(kGood, "n = [1024, 4096]", "n = []"), {"s.toml:4:", "study.n", "empty"});
  expect_error(replace(kGood, "n = [1024, 4096]", "n = [1024, \"x\"]"), {"study.n", "must be an integer"});
  expect_error(replace(kGood, "n = [1024, 4096]", "n = [1024, 1024]"), {"study.n", "twice"});
  expect_error(replace(kGood, "n = [1024, 4096]", "n = [0]"), {"study.n", ">= 1"});
  expect_error(replace(kGood, "d = [16, 32]", "d = 1.5"), {"study.d", "integer"});
  expect_error(replace(kGood, "seeds = [1, 2, 3]", "seeds = [1]\ntrials = 2"), {"study.trials", "not both"});
  expect_error(replace(kGood, "seeds = [1, 2, 3]\n", ""), {"study.seeds", "required"});
  expect_error(replace(kGood, "queries = 64", "queries = 64\ncausal = 1"), {"study.causal", "true or false"});
  expect_error(replace(kGood, "sigma = 0.5", "sigma = 0"), {"model.sigma", "> 0"});
  expect_error(replace(kGood, "sigma = 0.5", "sigma = 0.5\nB = 2"), {"model.B", "paper"});
  expect_error(replace(kGood, "R = 288.0", "R = 288.0\nsigma = 1"), {"model.sigma", "gaussian"});
  expect_error(replace(kGood, "model = \"paper\"", "model = \"llama\""), {"model.model", "llama"});
  expect_error(replace(kGood, "\"cert:1e-2\"", "\"cert:2\""), {"windows.strategies", "delta"});
  expect_error(replace(kGood, "\"cert:1e-2\"", "\"foo:1\""), {"windows.strategies", "unknown window strategy"});
  expect_error(replace(kGood, "\"cert:1e-2\"", "\"const:64\""), {"windows", "twice"});
  expect_error(replace(kGood, "align = \"const:64\"", "align = \"cert:1e-2\""), {"windows.align", "fixed window"});
  expect_error(replace(kGood, "\"sqrt\"", "\"const\""), {"windows.aligned", "cannot be aligned"});
  expect_error(replace(kGood, "\"power:0.5\"", "\"power:2\""), {"windows.aligned", "C must"});
  expect_error(replace(kGood, "align = \"const:64\"\n", ""), {"windows.aligned", "needs windows.align"});
  expect_error(replace(kGood, "[windows]", "[window]"), {"window", "unknown key"});
  expect_error(replace(kGood, "queries = 64", "queries = [64"), {"s.toml:", "not valid TOML"});
}

TEST(StudySpec, ExpandsTheGridWithStableDistinctHashes) {
  const StudySpec s = parse_study_text(kGood, "s.toml");
  const std::vector<Configuration> c = expand(s);
  ASSERT_EQ(c.size(), 2u * 2u * 2u * 3u);
  std::set<std::string> hashes;
  for (const Configuration& x : c) hashes.insert(x.hash);
  EXPECT_EQ(hashes.size(), c.size());
  EXPECT_EQ(c[0].job.n, 1024);
  EXPECT_EQ(c[0].job.model.seed, 1u);
  EXPECT_EQ(c[1].job.model.seed, 2u);
  EXPECT_EQ(c[0].job.queries, 64);
  EXPECT_EQ(c[0].job.windows.size(), 6u);
  // Same text, same hashes; threads do not change them, a parameter does.
  const std::vector<Configuration> again = expand(parse_study_text(kGood, "other.toml"));
  EXPECT_EQ(again[5].hash, c[5].hash);
  EXPECT_EQ(study_hash(parse_study_text(kGood, "x.toml")), study_hash(s));
  const StudySpec threads = parse_study_text(std::string(kGood) + "[engine]\nthreads = 2\n", "s.toml");
  EXPECT_EQ(expand(threads)[3].hash, c[3].hash);
  EXPECT_EQ(study_hash(threads), study_hash(s));
  const StudySpec causal = parse_study_text(replace(kGood, "queries = 64", "queries = 64\ncausal = true"), "s.toml");
  EXPECT_NE(expand(causal)[3].hash, c[3].hash);
  EXPECT_NE(study_hash(causal), study_hash(s));
  const std::string change = describe_changes(canonical_study(s), canonical_study(causal));
  EXPECT_NE(change.find("causal (was false, now true)"), std::string::npos) << change;
  EXPECT_EQ(change.find("seeds"), std::string::npos) << change;
}

TEST(StudySpec, QueriesAreCappedAtN) {
  const StudySpec s = parse_study_text(replace(kGood, "queries = 64", "queries = 2000"), "s.toml");
  const std::vector<Configuration> c = expand(s);
  EXPECT_EQ(c[0].job.queries, 1024);
  EXPECT_EQ(c[3].job.queries, 2000);
}

TEST(StudySpec, QueriesBeyondTheLongestNAreRefused) {
  expect_error(replace(kGood, "queries = 64", "queries = 1000000000"),
               {"s.toml:", "study.queries", "1000000000 query rows", "longest sequence has n ="});
}

TEST(BudgetAlignment, WindowKClampsAndCeils) {
  EXPECT_EQ(window_k(parse_window("const:64"), 10), 10);
  EXPECT_EQ(window_k(parse_window("const:64"), 1000), 64);
  EXPECT_EQ(window_k(parse_window("log:2"), 1000), static_cast<std::int64_t>(std::ceil(2 * std::log(1000.0))));
  EXPECT_EQ(window_k(parse_window("sqrt:1"), 4096), 64);
  EXPECT_EQ(window_k(parse_window("power:1,0.5"), 4097), 65);
}

TEST(BudgetAlignment, MatchesTheReferenceTotal) {
  const std::vector<std::int64_t> lengths = {4096, 8192, 16384, 32768, 65536};
  const std::int64_t target = total_k(parse_window("const:256"), lengths);
  ASSERT_EQ(target, 1280);
  for (const char* form : {"log", "sqrt", "power:0.5", "power:0.3"}) {
    const Alignment a = align_window(form, lengths, target, "t");
    EXPECT_EQ(a.total, total_k(a.spec, lengths)) << form;
    EXPECT_LE(std::llabs(a.total - target), static_cast<long long>(lengths.size())) << form;
    // No other alpha gets closer: one step of the plateau either side is not better.
    const std::int64_t gap = std::llabs(a.total - target);
    for (double f : {0.99, 0.999, 1.001, 1.01}) {
      const StrategyKind* kind = find_strategy_kind(a.spec.name());
      const std::string fs = form;
      const std::string rest = fs.find(':') == std::string::npos ? "" : fs.substr(fs.find(':') + 1);
      const WindowSpec w = parse_window(kind->aligned_spec(num_text(a.alpha * f), rest.empty() ? std::vector<std::string>{}
                                                                                             : std::vector<std::string>{rest}));
      EXPECT_GE(std::llabs(total_k(w, lengths) - target), gap) << form << " x" << f;
    }
    // The spec's text reads back to the same alpha.
    EXPECT_DOUBLE_EQ(parse_window(a.spec.text)->value(0), a.alpha) << a.spec.text;
  }
  // sqrt over one length: alpha * 64 = 256 exactly reachable.
  const Alignment s = align_window("sqrt", {4096}, 256, "t");
  EXPECT_EQ(s.total, 256);
  EXPECT_EQ(s.spec.name(), "sqrt");
  EXPECT_THROW(align_window("log", {16, 32}, 100, "t"), Error);  // more than the lengths hold
}

TEST(Records, ChecksumCoversContentButNotTimesWhenAsked) {
  Record r;
  r.text["a"] = "x";
  r.ints["n"] = 5;
  r.arrays["stat_k"] = {{1, 7}, {1, 2, 3, 4, 5, 6, 7}};
  r.arrays["times"] = {{7}, {1, 1, 1, 1, 1, 1, 1}};
  const std::string c = record_checksum(r);
  Record t = r;
  t.arrays["times"].values[0] = 2;
  EXPECT_NE(record_checksum(t), c);
  EXPECT_EQ(record_checksum(t, false), record_checksum(r, false));
  t = r;
  t.arrays["stat_k"].values[6] = std::nextafter(7.0, 8.0);
  EXPECT_NE(record_checksum(t, false), record_checksum(r, false));
  t = r;
  t.text["checksum"] = "whatever";
  EXPECT_EQ(record_checksum(t), c);
}

}  // namespace
}  // namespace ncsparse::study
