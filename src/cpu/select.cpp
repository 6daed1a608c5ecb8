#include "cpu/select.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/score.hpp"
#include "cpu/scan.hpp"
#include "ncsparse/candidate.hpp"
#include "ncsparse/error.hpp"

namespace ncsparse::cpu {

float strictly_below(float a, float b) {
  const double exact = static_cast<double>(a) - static_cast<double>(b);
  float c = static_cast<float>(exact);
  if (static_cast<double>(c) >= exact) c = std::nextafter(c, -std::numeric_limits<float>::infinity());
  return c;
}

void GemmFilterRow::reset(std::size_t keep, float margin2) {
  keep_ = keep;
  margin2_ = margin2;
  cut_ = keep == 0 ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
  floor_ = -std::numeric_limits<float>::infinity();
  size_ = 0;
  const std::size_t want = 4 * keep + 64;
  if (capacity_ < want) {
    storage_.reset(new Hit[want]);  // uninitialised: pages are touched only when used
    capacity_ = want;
  }
}

void GemmFilterRow::reduce() {
  if (size_ <= keep_) return;
  Hit* h = storage_.get();
  std::nth_element(h, h + (keep_ - 1), h + size_, [](const Hit& a, const Hit& b) { return a.score > b.score; });
  const float g = h[keep_ - 1].score;
  const float c = strictly_below(g, margin2_);
  // The first keep_ entries are >= g > c already.
  Hit* mid = std::partition(h + keep_, h + size_, [c](const Hit& x) { return x.score > c; });
  size_ = static_cast<std::size_t>(mid - h);
  cut_ = std::max(cut_, c);
}

void GemmFilterRow::shrink(Rescore rescore) {
  reduce();
  if (capacity_ - size_ >= keep_ / 2 + 32) return;
  // Ties: keep the canonical top keep_ of what is held (keys are offsets in one shard, so
  // their order is the global index order).
  std::vector<std::pair<Candidate, Hit>> all(size_);
  for (std::size_t i = 0; i < size_; ++i) {
    const Hit& x = storage_[i];
    all[i] = {Candidate{rescore(x.key), static_cast<std::int64_t>(x.key)}, x};
  }
  std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(keep_ - 1), all.end(),
                   [](const auto& a, const auto& b) { return before(a.first, b.first); });
  for (std::size_t i = 0; i < keep_; ++i) storage_[i] = all[i].second;
  size_ = keep_;
}

SeedMode seed_mode() {
  static const SeedMode mode = [] {
    const char* v = std::getenv("NCSPARSE_CPU_SEED");
    if (v == nullptr || std::strcmp(v, "auto") == 0 || *v == 0) return SeedMode::kAuto;
    if (std::strcmp(v, "off") == 0) return SeedMode::kOff;
    if (std::strcmp(v, "always") == 0) return SeedMode::kAlways;
    if (std::strcmp(v, "optimistic") == 0) return SeedMode::kOptimistic;
    throw usage_error("NCSPARSE_CPU_SEED: expected auto, off, always or optimistic, not '" + std::string(v) + "'");
  }();
  return mode;
}

namespace {

constexpr std::int64_t kSeedLambda = 32;          // sample keys expected in a row's top L
constexpr std::int64_t kSeedMaxSample = 8192;     // keys; more costs more to rank per row
constexpr std::int64_t kSeedMinList = 128;        // auto: shorter lists fill cheaply anyway
constexpr std::int64_t kSeedMinKeysPerList = 3;  // auto: n / L below this, little to skip (measured: RESULTS.md)

}  // namespace

SeedPlan plan_seed(std::int64_t n, std::int64_t L, bool causal, SeedMode mode) {
  SeedPlan s;
  const std::int64_t full = n / kNr;
  if (mode == SeedMode::kOff || causal || L < 1 || L >= n || full < 2) return s;
  if (mode == SeedMode::kAuto && (L < kSeedMinList || n < kSeedMinKeysPerList * L)) return s;
  const std::int64_t want = std::clamp<std::int64_t>(kSeedLambda * n / L, kNr, kSeedMaxSample);
  s.stride = std::max<std::int64_t>(2, full / std::max<std::int64_t>(1, want / kNr));
  s.phase = s.stride / 2;  // not panel 0: attention sinks sit at the first keys
  s.panels = (full - s.phase + s.stride - 1) / s.stride;
  const double lambda = static_cast<double>(L) * static_cast<double>(s.panels * kNr) / static_cast<double>(n);
  s.rank = mode == SeedMode::kOptimistic ? 1 : static_cast<std::int64_t>(std::ceil(lambda + 4 * std::sqrt(lambda) + 4));
  s.on = s.panels > 0 && s.rank <= s.panels * kNr;
  return s;
}

void seed_row(GemmFilterRow& row, const float* sample_scores, std::int64_t count, const SeedPlan& plan, float* select) {
  std::copy_n(sample_scores, count, select);
  std::nth_element(select, select + (plan.rank - 1), select + count, std::greater<float>());
  row.seed(strictly_below(select[plan.rank - 1], row.margin2()));
}

namespace {

// A candidate of the shard as one integer whose ascending order is the order `before`: the
// score's bits mapped to an ascending unsigned order and complemented (higher scores first),
// then the key's offset in the shard (lower indices first among equal scores). Canonical
// scores are never −0 or NaN, so equal scores have equal bits. Sorting these is cheaper than
// sorting Candidates with a two-level comparison.
std::uint64_t order_key(float score, std::uint32_t key) {
  std::uint32_t b;
  std::memcpy(&b, &score, sizeof b);
  const std::uint32_t ascending = (b & 0x80000000u) != 0 ? ~b : (b | 0x80000000u);
  return (static_cast<std::uint64_t>(~ascending) << 32) | key;
}
Candidate candidate_of(std::uint64_t k, std::int64_t begin) {
  const std::uint32_t ascending = ~static_cast<std::uint32_t>(k >> 32);
  const std::uint32_t b = (ascending & 0x80000000u) != 0 ? (ascending & 0x7FFFFFFFu) : ~ascending;
  float score;
  std::memcpy(&score, &b, sizeof score);
  return Candidate{score, begin + static_cast<std::int64_t>(k & 0xFFFFFFFFu)};
}

// Whether a seeded row's list is right. A key never admitted has a GEMM score <= floor, so a
// canonical score <= floor + margin; if the row's L-th best canonical score is above that, the
// L listed keys all beat every such key (and the keys dropped by shrinks, as without a seed).
// Compared in double: floor + margin is a real number, not a float.
bool seed_held(const GemmFilterRow& row, std::span<const Candidate> list, std::size_t kept) {
  if (row.floor() == -std::numeric_limits<float>::infinity()) return true;
  if (kept < list.size() || list.empty()) return false;
  return static_cast<double>(list.back().score) >
         static_cast<double>(row.floor()) + 0.5 * static_cast<double>(row.margin2());
}

constexpr std::int64_t kKeyBlockShift = 8;  // 256 keys per bucket

// Rows [g_begin, g_end) reduced, and their survivors in w.order sorted by key bucket (a
// counting sort); w.offset: each row's first slot in w.canon.
void order_survivors(std::int64_t g_begin, std::int64_t g_end, std::size_t buckets, Scratch& w) {
  w.bucket_start.assign(buckets + 1, 0);
  for (std::int64_t i = g_begin; i < g_end; ++i) {
    GemmFilterRow& row = w.rows[static_cast<std::size_t>(i)];
    for (std::size_t h = 0; h < row.size(); ++h) ++w.bucket_start[(row.hits()[h].key >> kKeyBlockShift) + 1];
  }
  for (std::size_t b = 0; b < buckets; ++b) w.bucket_start[b + 1] += w.bucket_start[b];
  const std::size_t pairs = w.offset.back();
  w.order.resize(pairs);
  w.canon.resize(pairs);
  for (std::int64_t i = g_begin; i < g_end; ++i) {
    GemmFilterRow& row = w.rows[static_cast<std::size_t>(i)];
    const std::uint32_t base = static_cast<std::uint32_t>(w.offset[static_cast<std::size_t>(i - g_begin)]);
    for (std::size_t h = 0; h < row.size(); ++h) {
      w.order[w.bucket_start[row.hits()[h].key >> kKeyBlockShift]++] =
          Pair{static_cast<std::uint32_t>(i), base + static_cast<std::uint32_t>(h), row.hits()[h].key};
    }
  }
}

// Row i's list (its canonical top L, in order) from the canonical scores of its survivors
// (from w.canon[base]); whether the row's seed, if any, held.
bool list_row(std::int64_t i, std::size_t base, const KeyShard& keys, std::int64_t L, std::int64_t r0, Scratch& w,
              LocalOutput out) {
  GemmFilterRow& row = w.rows[static_cast<std::size_t>(i)];
  std::span<Candidate> list = out.lists.subspan(static_cast<std::size_t>((r0 + i) * L), static_cast<std::size_t>(L));
  w.order_keys.resize(row.size());
  for (std::size_t h = 0; h < row.size(); ++h) w.order_keys[h] = order_key(w.canon[base + h], row.hits()[h].key);
  const std::size_t kept = std::min(w.order_keys.size(), static_cast<std::size_t>(L));
  if (kept > 0 && kept < w.order_keys.size()) {
    std::nth_element(w.order_keys.begin(), w.order_keys.begin() + static_cast<std::ptrdiff_t>(kept - 1),
                     w.order_keys.end());
  }
  std::sort(w.order_keys.begin(), w.order_keys.begin() + static_cast<std::ptrdiff_t>(kept));
  for (std::size_t h = 0; h < kept; ++h) list[h] = candidate_of(w.order_keys[h], keys.begin);
  std::fill(list.begin() + static_cast<std::ptrdiff_t>(kept), list.end(), kEmptyCandidate);
  return seed_held(row, list, kept);
}

}  // namespace

// The survivors of all rows are re-scored key block by key block, so that each key row is read
// from memory once and stays in cache for every query row that needs it (a row-by-row
// re-scoring reads L random key rows per query row from DRAM). Rows go in groups that bound
// the scratch memory.
std::vector<std::int64_t> finish_lists(const QueryBlock& queries, const KeyShard& keys, const PassParams& p,
                                       std::int64_t r0, std::int64_t rows, Scratch& w, LocalOutput out) {
  const std::int64_t d = p.d;
  std::vector<std::int64_t> unseeded;
  const std::size_t buckets = static_cast<std::size_t>((keys.count >> kKeyBlockShift) + 1);
  std::int64_t g_begin = 0;
  while (g_begin < rows) {
    std::size_t pairs = 0;
    std::int64_t g_end = g_begin;
    w.offset.clear();
    while (g_end < rows && (g_end == g_begin || pairs < (std::size_t{1} << 22))) {
      GemmFilterRow& row = w.rows[static_cast<std::size_t>(g_end)];
      row.reduce();
      w.offset.push_back(pairs);
      pairs += row.size();
      ++g_end;
    }
    w.offset.push_back(pairs);
    order_survivors(g_begin, g_end, buckets, w);
    // The key rows are scattered over 64 KiB buckets: fetch a few pairs ahead.
    constexpr std::size_t kAhead = 8;
    const std::int64_t lines = (d * static_cast<std::int64_t>(sizeof(float)) + 63) / 64;
    for (std::size_t t = 0; t < w.order.size(); ++t) {
      if (t + kAhead < w.order.size()) {
        const char* next = reinterpret_cast<const char*>(keys.k + w.order[t + kAhead].key * d);
        for (std::int64_t c = 0; c < lines; ++c) __builtin_prefetch(next + 64 * c);
      }
      const Pair& pr = w.order[t];
      w.canon[pr.slot] = canonical_score(queries.q + (r0 + pr.row) * d, keys.k + pr.key * d, d, p.scale);
    }
    for (std::int64_t i = g_begin; i < g_end; ++i) {
      if (!list_row(i, w.offset[static_cast<std::size_t>(i - g_begin)], keys, p.list_length, r0, w, out)) {
        unseeded.push_back(i);
      }
    }
    g_begin = g_end;
  }
  return unseeded;
}

}  // namespace ncsparse::cpu
