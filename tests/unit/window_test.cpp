// Window strategies (DESIGN.md §5): parsing, fixed window targets, list length, and the
// per-row choice of k with its clamping, against brute force.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "ncsparse/candidate.hpp"
#include "ncsparse/error.hpp"
#include "ncsparse/features.hpp"
#include "ncsparse/window.hpp"

namespace ncsparse {
namespace {

// ---------------------------------------------------------------------------------------------
// parse_window

TEST(ParseWindow, AcceptsEveryForm) {
  struct Case {
    const char* spec;
    const char* name;
    std::vector<double> values;
    const char* projection;  // features: the KIND the spec names
    bool fixed, exact;
  };
  const Case cases[] = {
      {"const:5", "const", {5}, "", true, false},
      {"const:1", "const", {1}, "", true, false},
      {"const:4096", "const", {4096}, "", true, false},
      {"log:2", "log", {2}, "", true, false},
      {"log:0.5", "log", {0.5}, "", true, false},
      {"power:1,0.5", "power", {1, 0.5}, "", true, false},
      {"power:2.5,1", "power", {2.5, 1}, "", true, false},
      {"power:0.1,0.25", "power", {0.1, 0.25}, "", true, false},
      {"sqrt:1", "sqrt", {1}, "", true, false},
      {"sqrt:0.75", "sqrt", {0.75}, "", true, false},
      {"eps:0.01", "eps", {0.01}, "", false, true},
      {"eps:1e-3", "eps", {1e-3}, "", false, true},
      {"mass:0.1", "mass", {0.1}, "", false, true},
      {"mass:0.999", "mass", {0.999}, "", false, true},
      {"cert:0.05", "cert", {0.05}, "", false, false},
      {"sink:2,8", "sink", {2, 8}, "", false, false},
      {"sink:0,4", "sink", {0, 4}, "", false, false},
      {"sink:4,1", "sink", {4, 1}, "", false, false},
      {"taylor:2", "taylor", {2}, "", false, false},
      {"taylor:6", "taylor", {6}, "", false, false},
      {"features:8,gaussian", "features", {8}, "gaussian", false, false},
      {"features:1,sparse", "features", {1}, "sparse", false, false},
      {"features:64,gram", "features", {64}, "gram", false, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.spec);
    WindowSpec w;
    ASSERT_NO_THROW(w = parse_window(c.spec));
    EXPECT_EQ(w.name(), c.name);
    ASSERT_EQ(w->values().size(), c.values.size());
    for (std::size_t i = 0; i < c.values.size(); ++i) EXPECT_DOUBLE_EQ(w->value(i), c.values[i]);
    if (*c.projection) EXPECT_EQ(w.text.substr(w.text.find(',') + 1), c.projection);
    EXPECT_EQ(w.fixed(), c.fixed);
    EXPECT_EQ(w.needs_exact(), c.exact);
    EXPECT_FALSE(w.text.empty());
    // The canonical text parses back to the same strategy.
    const WindowSpec again = parse_window(w.text);
    EXPECT_EQ(again.name(), w.name());
    EXPECT_EQ(again.text, w.text);
    EXPECT_TRUE(std::equal(again->values().begin(), again->values().end(), w->values().begin(), w->values().end()));
  }
}

TEST(ParseWindow, RejectsBadSpecsWithUsageError) {
  const char* bad[] = {
      "unknown:3",     "CONST:5",     "top:5",        "const:0",   "const:-3", "const:2.5",  "power:1,0",
      "power:1,1.5",   "power:0,0.5", "power:-1,0.5", "log:0",     "log:-1",   "sqrt:0",     "sqrt:-2",
      "eps:0",         "eps:1",       "eps:-0.1",     "eps:2",     "mass:2",   "mass:0",     "mass:1",
      "cert:0",        "cert:1",      "cert:1.5",     "sink:-1,4", "sink:4,0", "sink:1.5,4", "sink:2,2.5",
      "sink:2",        "sink:2,3,4",  "const:abc",    "const:",    "const:5x", "const: 5",   "const:5,6",
      "const:nan",     "const:inf",   "log:inf",      "log:nan",   "power:1",  "power:1,",   "power:,0.5",
      "power:1,0.5,2", "const5",      "log",          "",          ":",        ":5",         "const:1e400",
      // The approximators: q even and >= 2; e a whole number >= 1; a known KIND.
      "taylor:3",      "taylor:0",    "taylor:1",     "taylor:-2", "taylor:2.0001", "taylor:66", "taylor:",
      "taylor:2,4",    "features:0,gaussian", "features:-1,sparse", "features:2.5,gram", "features:8",
      "features:8,unknown", "features:8,Gaussian", "features:8,gram,1", "features:,gram",
  };
  for (const char* spec : bad) {
    SCOPED_TRACE(spec);
    try {
      parse_window(spec, "--my-window");
      ADD_FAILURE() << "accepted bad spec '" << spec << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), kExitUsage);
      EXPECT_EQ(e.code(), 64);
      EXPECT_NE(std::string(e.what()).find("--my-window"), std::string::npos)
          << "message does not name the flag: " << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "threw a non-ncsparse exception: " << e.what();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// fixed_window_target and list_length

TEST(FixedWindowTarget, Formulas) {
  std::mt19937_64 rng(55);
  std::vector<std::int64_t> ns = {1, 2, 3, 7, 10, 100, 777, 1000, 4096, 1 << 20, 1000003, std::int64_t{1} << 40};
  for (int i = 0; i < 200; ++i) ns.push_back(1 + static_cast<std::int64_t>(rng() % 10000000));
  const WindowSpec c7 = parse_window("const:7"), lg = parse_window("log:2"), lg3 = parse_window("log:0.3"),
                   pw = parse_window("power:1.5,0.3"), pw1 = parse_window("power:0.5,1"), sq = parse_window("sqrt:0.7"),
                   sk = parse_window("sink:3,9");
  for (std::int64_t n : ns) {
    SCOPED_TRACE(n);
    const double nn = static_cast<double>(n);
    EXPECT_EQ(fixed_window_target(c7, n), 7.0);
    EXPECT_EQ(fixed_window_target(lg, n), std::ceil(2.0 * std::log(nn)));
    EXPECT_EQ(fixed_window_target(lg3, n), std::ceil(0.3 * std::log(nn)));
    EXPECT_EQ(fixed_window_target(pw, n), std::ceil(1.5 * std::pow(nn, 0.3)));
    EXPECT_EQ(fixed_window_target(pw1, n), std::ceil(0.5 * nn));
    EXPECT_EQ(fixed_window_target(sq, n), std::ceil(0.7 * std::sqrt(nn)));
    EXPECT_EQ(fixed_window_target(sk, n), 12.0);
  }
  // Hand-checked values.
  EXPECT_EQ(fixed_window_target(lg, 1000), 14.0);                          // 2 ln 1000 = 13.8
  EXPECT_EQ(fixed_window_target(parse_window("power:1,0.5"), 777), 28.0);  // √777 = 27.9
  EXPECT_EQ(fixed_window_target(parse_window("sqrt:1"), 100), 10.0);
  EXPECT_EQ(fixed_window_target(parse_window("sqrt:1"), 101), 11.0);
}

TEST(ListLength, IsLargestWindowPlusOneCappedByN) {
  auto L = [](std::vector<std::string> specs, std::int64_t n, std::int64_t max_k) {
    std::vector<WindowSpec> w;
    for (const auto& s : specs) w.push_back(parse_window(s));
    return list_length(w, n, max_k);
  };
  EXPECT_EQ(L({"const:5"}, 100, 8192), 6);
  EXPECT_EQ(L({"const:500"}, 100, 8192), 101);
  EXPECT_EQ(L({"const:100"}, 100, 8192), 101);
  EXPECT_EQ(L({"log:2"}, 1000, 8192), 15);
  EXPECT_EQ(L({"power:1,0.5"}, 777, 8192), 29);
  EXPECT_EQ(L({"sqrt:1"}, 777, 8192), 29);
  EXPECT_EQ(L({"eps:0.01"}, 777, 8192), 101);
  EXPECT_EQ(L({"eps:0.01"}, 777, 50), 51);
  EXPECT_EQ(L({"eps:0.3"}, 777, 8192), 4);
  EXPECT_EQ(L({"eps:0.01"}, 40, 8192), 41);
  EXPECT_EQ(L({"mass:0.1"}, 777, 64), 65);
  EXPECT_EQ(L({"mass:0.1"}, 777, 8192), 778);
  EXPECT_EQ(L({"cert:0.05"}, 777, 100), 101);
  EXPECT_EQ(L({"cert:0.05"}, 10, 100), 11);
  EXPECT_EQ(L({"sink:2,8"}, 777, 8192), 11);
  EXPECT_EQ(L({"sink:2,8"}, 5, 8192), 6);
  EXPECT_EQ(L({"const:5", "log:2", "sqrt:1", "sink:2,8"}, 777, 8192), 29);
  EXPECT_EQ(L({"const:5", "cert:0.05", "eps:0.01"}, 777, 40), 41);
  EXPECT_EQ(L({}, 777, 40), 2);
  EXPECT_EQ(L({"const:5"}, 1, 8192), 2);
  // Never below 2 (K >= 1) and never above n + 1.
  std::mt19937_64 rng(3);
  const char* specs[] = {"const:3", "log:1", "power:2,0.7", "sqrt:3", "eps:0.05", "mass:0.2", "cert:0.1", "sink:4,16"};
  for (int i = 0; i < 500; ++i) {
    std::vector<std::string> pick;
    for (const char* s : specs)
      if (rng() % 3 == 0) pick.push_back(s);
    const std::int64_t n = 1 + static_cast<std::int64_t>(rng() % 5000);
    const std::int64_t max_k = 1 + static_cast<std::int64_t>(rng() % 300);
    const std::int64_t got = L(pick, n, max_k);
    EXPECT_GE(got, 2);
    EXPECT_LE(got, n + 1);
    double want = 1;
    for (const auto& s : pick) {
      const WindowSpec w = parse_window(s);
      if (w.name() == "eps")
        want = std::max(want, std::min(std::floor(1.0 / w->value(0)), double(max_k)));
      else if (w.name() == "mass" || w.name() == "cert")
        want = std::max(want, double(max_k));
      else
        want = std::max(want, fixed_window_target(w, n));
    }
    EXPECT_EQ(got, static_cast<std::int64_t>(std::min(want, double(n))) + 1);
  }
}

// ---------------------------------------------------------------------------------------------
// choose_window

// A row of n scores, its sorted list of min(L, n) valid entries and its exact normaliser.
struct Row {
  std::vector<double> scores;   // all n scores (float values held in double)
  std::vector<Candidate> list;  // valid entries of the top-L list
  RowNormaliser norm{};
};

Row make_row(std::mt19937_64& rng, std::int64_t n, std::int64_t L, double sd) {
  Row r;
  std::normal_distribution<double> normal(0.0, sd);
  std::vector<Candidate> all(static_cast<std::size_t>(n));
  r.scores.resize(static_cast<std::size_t>(n));
  for (std::int64_t j = 0; j < n; ++j) {
    const float s = static_cast<float>(normal(rng));
    all[j] = Candidate{s, j};
    r.scores[j] = s;
  }
  std::sort(all.begin(), all.end(), before);
  all.resize(static_cast<std::size_t>(std::min(L, n)));
  r.list = all;
  r.norm.m = -INFINITY;
  for (double s : r.scores) r.norm.m = std::max(r.norm.m, s);
  r.norm.l = 0;
  for (double s : r.scores) r.norm.l += std::exp(s - r.norm.m);
  return r;
}

TEST(ChooseWindow, FixedWindowsClampToOneAndAvailable) {
  std::mt19937_64 rng(808);
  const char* specs[] = {"const:1",     "const:5",     "const:300", "log:0.1", "log:2", "log:30",
                         "power:1,0.5", "power:3,0.9", "sqrt:0.05", "sqrt:1",  "sqrt:9"};
  int clamped_seen = 0, unclamped_seen = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const std::int64_t n = 1 + static_cast<std::int64_t>(rng() % 600);
    const std::int64_t L = 2 + static_cast<std::int64_t>(rng() % 120);
    const Row row = make_row(rng, n, L, 1.0);
    for (const char* s : specs) {
      SCOPED_TRACE(std::string(s) + " n=" + std::to_string(n) + " L=" + std::to_string(L));
      const WindowSpec w = parse_window(s);
      const WindowChoice c = choose_window(w, row.list, L, n, nullptr);
      const double target = fixed_window_target(w, n);
      const std::int64_t hi = std::min(L - 1, n);
      const std::int64_t want = static_cast<std::int64_t>(std::clamp<double>(target, 1.0, double(hi)));
      EXPECT_EQ(c.k, want);
      EXPECT_EQ(c.clamped, target < 1 || target > double(hi));
      (c.clamped ? clamped_seen : unclamped_seen)++;
    }
  }
  EXPECT_GT(clamped_seen, 100);
  EXPECT_GT(unclamped_seen, 100);
  // Hand-checked cases.
  const std::vector<Candidate> list10 = make_row(rng, 10, 100, 1.0).list;
  auto pick = [&](const char* s, std::int64_t L, std::int64_t n) {
    std::mt19937_64 r2(1);
    const Row row = make_row(r2, n, L, 1.0);
    return choose_window(parse_window(s), row.list, L, n, nullptr);
  };
  EXPECT_EQ(pick("const:5", 3, 100).k, 2);
  EXPECT_TRUE(pick("const:5", 3, 100).clamped);
  EXPECT_EQ(pick("const:5", 10, 3).k, 3);
  EXPECT_TRUE(pick("const:5", 10, 3).clamped);
  EXPECT_EQ(pick("const:5", 10, 100).k, 5);
  EXPECT_FALSE(pick("const:5", 10, 100).clamped);
  EXPECT_EQ(pick("const:5", 6, 100).k, 5);
  EXPECT_FALSE(pick("const:5", 6, 100).clamped);
  EXPECT_EQ(pick("const:5", 6, 5).k, 5);
  EXPECT_FALSE(pick("const:5", 6, 5).clamped);
  EXPECT_EQ(pick("log:1", 10, 1).k, 1);  // ln 1 = 0 → clamped up to 1
  EXPECT_TRUE(pick("log:1", 10, 1).clamped);
  EXPECT_EQ(pick("log:2", 100, 1000).k, 14);
  EXPECT_FALSE(pick("log:2", 100, 1000).clamped);
  EXPECT_EQ(pick("power:1,1", 50, 1000).k, 49);
  EXPECT_TRUE(pick("power:1,1", 50, 1000).clamped);
  (void)list10;
}

TEST(ChooseWindow, EpsAndMassAgainstBruteForce) {
  std::mt19937_64 rng(9090);
  int clamped_eps = 0, clamped_mass = 0, free_eps = 0, free_mass = 0;
  for (int trial = 0; trial < 600; ++trial) {
    const std::int64_t n = 1 + static_cast<std::int64_t>(rng() % 2000);
    const std::int64_t L = 2 + static_cast<std::int64_t>(rng() % 200);
    const double sd = std::vector<double>{0.3, 1.0, 3.0, 8.0}[rng() % 4];
    const Row row = make_row(rng, n, L, sd);
    const std::int64_t hi = std::min(L - 1, n);
    const std::int64_t avail = static_cast<std::int64_t>(row.list.size());
    std::vector<double> p(row.list.size());
    for (std::size_t j = 0; j < p.size(); ++j) {
      p[j] = std::exp(static_cast<double>(row.list[j].score) - row.norm.m) / row.norm.l;
    }
    for (double eps : {0.5, 0.1, 0.01, 0.002}) {
      SCOPED_TRACE("eps " + std::to_string(eps) + " n=" + std::to_string(n) + " L=" + std::to_string(L));
      WindowSpec w = parse_window("eps:" + std::to_string(eps));
      // Brute force: every listed entry with p >= eps (the list is sorted, so a prefix).
      std::int64_t count = 0;
      for (double x : p)
        if (x >= eps) ++count;
      const WindowChoice c = choose_window(w, row.list, L, n, &row.norm);
      const std::int64_t want = std::clamp<std::int64_t>(count, 1, hi);
      EXPECT_EQ(c.k, want);
      EXPECT_EQ(c.clamped, count < 1 || count > hi);
      (c.clamped ? clamped_eps : free_eps)++;
    }
    for (double delta : {0.5, 0.1, 0.01, 1e-4}) {
      SCOPED_TRACE("mass " + std::to_string(delta) + " n=" + std::to_string(n) + " L=" + std::to_string(L));
      WindowSpec w = parse_window("mass:" + std::to_string(delta));
      // Brute force: the smallest k with Σ_{j<=k} p_j >= 1 − δ, over the whole row.
      std::vector<double> sorted = row.scores;
      std::sort(sorted.begin(), sorted.end(), std::greater<>());
      double mass = 0;
      std::int64_t k = 0;
      while (k < n && mass < 1.0 - delta) mass += std::exp(sorted[k++] - row.norm.m) / row.norm.l;
      const WindowChoice c = choose_window(w, row.list, L, n, &row.norm);
      if (k <= hi) {
        EXPECT_EQ(c.k, k);
        EXPECT_FALSE(c.clamped);
        ++free_mass;
      } else {
        EXPECT_EQ(c.k, hi);
        EXPECT_TRUE(c.clamped);
        ++clamped_mass;
      }
      (void)avail;
    }
  }
  EXPECT_GT(clamped_eps, 50);
  EXPECT_GT(free_eps, 50);
  EXPECT_GT(clamped_mass, 50);
  EXPECT_GT(free_mass, 50);
}

TEST(ChooseWindow, CertPicksSmallestKWithBoundBelowDelta) {
  std::mt19937_64 rng(4242);
  int found = 0, clamped = 0;
  for (int trial = 0; trial < 600; ++trial) {
    const std::int64_t n = 1 + static_cast<std::int64_t>(rng() % 3000);
    const std::int64_t L = 2 + static_cast<std::int64_t>(rng() % 150);
    const double sd = std::vector<double>{0.5, 2.0, 5.0, 20.0}[rng() % 4];
    const Row row = make_row(rng, n, L, sd);
    std::vector<double> bound(row.list.size());
    certificate_mass_bounds(row.list, n, bound);
    const std::int64_t hi = std::min(L - 1, n);
    for (double delta : {0.5, 0.05, 1e-3}) {
      SCOPED_TRACE("cert " + std::to_string(delta) + " n=" + std::to_string(n) + " L=" + std::to_string(L));
      std::int64_t want = -1;
      for (std::size_t j = 0; j < bound.size(); ++j) {
        if (bound[j] <= delta) {
          want = static_cast<std::int64_t>(j) + 1;
          break;
        }
      }
      // No exact state is needed: pass none.
      const WindowChoice c = choose_window(parse_window("cert:" + std::to_string(delta)), row.list, L, n, nullptr);
      if (want >= 1 && want <= hi) {
        EXPECT_EQ(c.k, want);
        EXPECT_FALSE(c.clamped);
        ++found;
      } else {
        EXPECT_EQ(c.k, hi);
        EXPECT_TRUE(c.clamped);
        ++clamped;
      }
      // The bound is monotone non-increasing in k.
      for (std::size_t j = 1; j < bound.size(); ++j) EXPECT_LE(bound[j], bound[j - 1] * (1 + 1e-12));
    }
  }
  EXPECT_GT(found, 100);
  EXPECT_GT(clamped, 100);
}

TEST(ChooseWindow, SinkIsSPlusWCappedByVisibleKeys) {
  const WindowSpec w = parse_window("sink:2,8");
  std::mt19937_64 rng(1);
  for (std::int64_t n : {1, 5, 10, 11, 500}) {
    const Row row = make_row(rng, n, 11, 1.0);
    const WindowChoice c = choose_window(w, row.list, 11, n, nullptr);
    EXPECT_EQ(c.k, std::min<std::int64_t>(10, n)) << n;
    EXPECT_EQ(c.clamped, n < 10) << n;
  }
}

}  // namespace
}  // namespace ncsparse
