// Selection and admission of the CPU backend: the running top-L of one row on GEMM scores
// (GemmFilterRow), and the sample that seeds the rows' cuts (SeedPlan, SampleCursor).
//
// Selection runs on the GEMM scores and re-scores canonically only at the end: each row keeps
// every key whose GEMM score is at least (the L-th best GEMM score so far) − 2·margin, where
// margin bounds |GEMM score − canonical score| (src/core/score.hpp). Any key of the final
// canonical top-L passes that test (proof at GemmFilterRow), so re-scoring the survivors —
// about L per row — gives the same list as re-scoring every key that ever beat a threshold.
//
// What the AVX2 files (compiled with -mavx2) call from here is either always inlined or
// defined in select.cpp, which is compiled for any x86-64: an inline function left out of line
// in an AVX2 object could be the copy the linker keeps for the portable path too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>

#include "cpu/pack.hpp"

namespace ncsparse::cpu {

// A key that passed the GEMM filter: its GEMM score and its offset in the shard.
struct Hit {
  float score;
  std::uint32_t key;
};

// Largest float strictly below the real number a − b (a, b finite, b >= 0).
float strictly_below(float a, float b);

// The canonical score of a key (its offset in the shard) for one row: a callable passed by
// reference without a template, for the rare paths that need it (ties that block a shrink).
class Rescore {
 public:
  template <class F>
  [[gnu::always_inline]] explicit Rescore(const F& f)
      : ctx_(&f), fn_([](const void* c, std::uint32_t key) { return (*static_cast<const F*>(c))(key); }) {}
  float operator()(std::uint32_t key) const { return fn_(ctx_, key); }

 private:
  const void* ctx_;
  float (*fn_)(const void*, std::uint32_t);
};

// The running selection of one row on GEMM scores.
//
// Invariant: every key not held has at least L keys before it in the canonical total order.
// A shrink finds g, the L-th best GEMM score held, and drops keys with GEMM score below
// g − 2·margin: the L keys at or above g have canonical scores >= g − margin, and a dropped key
// has a canonical score < g − margin, so it is beaten by all L. When ties in the GEMM scores
// keep the buffer from shrinking (inputs made to tie), the held keys are re-scored and cut to
// their canonical top L, which keeps the invariant by definition.
class GemmFilterRow {
 public:
  void reset(std::size_t keep, float margin2);
  // Starts the cut at a guess (from a sample of the row's keys) instead of −∞. Keys at or below
  // it are never admitted, which is right only if the row's final list proves it (see
  // finish_lists: the caller re-runs the row without a seed when it does not).
  [[gnu::always_inline]] void seed(float cut) {
    cut_ = cut_ < cut ? cut : cut_;
    floor_ = cut;
  }
  // The seed (−∞ when none) and 2·margin.
  [[gnu::always_inline]] float floor() const { return floor_; }
  [[gnu::always_inline]] float margin2() const { return margin2_; }
  // A key with GEMM score <= cut() is not needed.
  [[gnu::always_inline]] float cut() const { return cut_; }
  [[gnu::always_inline]] std::size_t size() const { return size_; }
  [[gnu::always_inline]] Hit* hits() { return storage_.get(); }

  // Adds a key whose score beat cut(); shrinks first when the buffer is full. rescore(key)
  // gives the canonical score of a key, needed only when ties block a shrink.
  template <class F>
  [[gnu::always_inline]] void add(float score, std::uint32_t key, const F& rescore) {
    if (size_ == capacity_) shrink(Rescore(rescore));
    if (score > cut_) storage_[size_++] = Hit{score, key};
  }

  // Drops what the GEMM scores allow (see the class comment).
  void reduce();

 private:
  void shrink(Rescore rescore);

  std::size_t keep_ = 0;
  float margin2_ = 0;
  float cut_ = 0;
  float floor_ = 0;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
  std::unique_ptr<Hit[]> storage_;
};

// Feeds the keys of one row of a score tile that beat the row's cut to its selection.
// Above16(s, cut): bit mask of the lanes of s[0..16) that are > cut (one per ISA).
template <unsigned (*Above16)(const float*, float), class F>
[[gnu::always_inline]] inline void filter_row(const float* s, std::int64_t count, std::uint32_t key0,
                                              GemmFilterRow& row, const F& rescore) {
  std::int64_t j = 0;
  for (; j + 16 <= count; j += 16) {
    unsigned mask = Above16(s + j, row.cut());
    while (mask != 0) {
      const int b = __builtin_ctz(mask);
      mask &= mask - 1;
      if (s[j + b] > row.cut()) row.add(s[j + b], key0 + static_cast<std::uint32_t>(j + b), rescore);
    }
  }
  for (; j < count; ++j) {
    if (s[j] > row.cut()) row.add(s[j], key0 + static_cast<std::uint32_t>(j), rescore);
  }
}

// Where the top-k pass starts each row's cut (NCSPARSE_CPU_SEED): `auto` (the default) seeds
// it from a sample of the shard when the lists are long enough for that to pay, `off` never
// does, `always` does whenever the shape allows (for tests), `optimistic` does so with a cut
// that is usually too high, so that the fallback runs (for tests).
enum class SeedMode { kAuto, kOff, kAlways, kOptimistic };

// NCSPARSE_CPU_SEED, read once; throws a usage error on a bad value.
SeedMode seed_mode();

// The sample that seeds the rows' cuts: every `stride`-th full 16-key panel of the shard,
// starting at panel `phase`, `panels` of them; `rank`: the cut is taken at the rank-th best
// sample score of the row.
//
// Why it pays: a streaming top-L over n keys admits about L·(1 + ln(n/L)) keys to the buffer
// (each one that beats the running L-th best, ~7L at L = 2048, n = 2^20) and shrinks it every
// few thousand admissions. With a cut at the sample's rank-th best score the rest of the scan
// admits about rank·n/S keys (S sample keys), 1.8·L (λ = 32) to 2.25·L (λ = 16, where the
// sample is capped at 8192 keys: L = 2048 at n = 2^20) for the ranks below, and never shrinks.
// The cap: ranking 16,384 sample scores per row cost more than the admissions it saved.
// The rank is chosen so that the cut is almost surely below the row's true L-th best score:
// λ = L·S/n sample keys are expected among a row's top L, and the rank is λ + 4√λ + 4. When it
// is not (a sample that misrepresents the row), the final check fails and the row is scanned
// again without a seed: slower, never wrong.
struct SeedPlan {
  bool on = false;
  std::int64_t stride = 0, phase = 0, panels = 0, rank = 0;
  // Shard offset of the first key of sample panel s (s < panels).
  [[gnu::always_inline]] std::int64_t start(std::int64_t s) const { return (phase + s * stride) * kNr; }
};

// The plan for a shard of n keys and lists of L (off when the mode or the shape rules it out).
SeedPlan plan_seed(std::int64_t n, std::int64_t L, bool causal, SeedMode mode);

// Seeds a row's cut at the plan's rank-th best of its `count` sample scores (GEMM scores),
// lowered by the row's 2·margin. select: scratch of at least `count` floats.
void seed_row(GemmFilterRow& row, const float* sample_scores, std::int64_t count, const SeedPlan& plan, float* select);

// Which keys are in the sample, for a scan that visits keys in increasing order from `from`:
// skip(j, n) gives the bits of keys j .. j + n − 1 (n <= 16) that are (for a 16-key panel at a
// multiple of 16: nonzero iff the panel is sampled). One division when made, none per call.
class SampleCursor {
 public:
  [[gnu::always_inline]] SampleCursor(const SeedPlan& plan, std::int64_t from) : plan_(plan) {
    if (!plan.on) return;
    const std::int64_t panel = from / kNr;  // the first sample panel that ends after `from`
    s_ = panel <= plan.phase ? 0 : (panel - plan.phase + plan.stride - 1) / plan.stride;
  }
  [[gnu::always_inline]] unsigned skip(std::int64_t j, std::int64_t n) {
    if (!plan_.on) return 0;
    while (s_ < plan_.panels && plan_.start(s_) + kNr <= j) ++s_;
    if (s_ >= plan_.panels || plan_.start(s_) >= j + n) return 0;
    unsigned bits = 0;  // sample panels are at least 16 keys apart: n <= 16 keys meet one or two
    const std::int64_t s_end = plan_.panels < s_ + 2 ? plan_.panels : s_ + 2;
    for (std::int64_t s = s_; s < s_end; ++s)
      for (std::int64_t i = 0; i < n; ++i)
        if (j + i >= plan_.start(s) && j + i < plan_.start(s) + kNr) bits |= 1u << i;
    return bits;
  }

 private:
  const SeedPlan& plan_;
  std::int64_t s_ = 0;
};

}  // namespace ncsparse::cpu
