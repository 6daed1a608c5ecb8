// CPU backend: score tiles (register-blocked AVX2 + FMA kernels of its own, or OpenBLAS on the
// portable path), a threshold-filtered top-L per row, and the flash state updated from the
// same tile. Threads split the rows of the query block; each thread runs its own kernels or
// single-threaded GEMMs so that no two levels of threading compete for the cores.
//
// Selection runs on the GEMM scores and re-scores canonically only at the end: each row keeps
// every key whose GEMM score is at least (the L-th best GEMM score so far) − 2·margin, where
// margin bounds |GEMM score − canonical score| (src/core/score.hpp). Any key of the final
// canonical top-L passes that test (proof at GemmFilterRow), so re-scoring the survivors —
// about L per row — gives the same list as re-scoring every key that ever beat a threshold.
//
// Two code paths, chosen once at run time: the portable one (SSE2, any x86-64) and one for
// AVX2 + FMA. Both are compiled from the same source with floating-point contraction off, so
// every canonical score and list is bit-identical between them; NCSPARSE_CPU_ISA=generic
// forces the portable path (for checking that). The exact state is computed by OpenBLAS tiles
// on the portable path (and on AVX2 when d is not a multiple of 8) and by a fused kernel of
// its own on AVX2 (fused_exact_avx2): the two agree to float rounding, not bit for bit.
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/fastexp.hpp"
#include "core/score.hpp"
#include "ncsparse/backend.hpp"
#include "ncsparse/error.hpp"
#include "ncsparse/flash.hpp"

extern "C" void openblas_set_num_threads(int);

namespace ncsparse {
namespace {

// Score tile of one GEMM call: rows × keys floats kept within this many bytes so that the
// tile is still in the core's L2 cache when the filter and the exponentials read it.
constexpr std::int64_t kTileBytes = 256 * 1024;
constexpr std::int64_t kMinTileKeys = 256;

// A key that passed the GEMM filter: its GEMM score and its offset in the shard.
struct Hit {
  float score;
  std::uint32_t key;
};

// Largest float strictly below the real number a − b (a, b finite, b >= 0).
float strictly_below(float a, float b) {
  const double exact = static_cast<double>(a) - static_cast<double>(b);
  float c = static_cast<float>(exact);
  if (static_cast<double>(c) >= exact) c = std::nextafter(c, -std::numeric_limits<float>::infinity());
  return c;
}

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
  void reset(std::size_t keep, float margin2) {
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
  // Starts the cut at a guess (from a sample of the row's keys) instead of −∞. Keys at or below
  // it are never admitted, which is right only if the row's final list proves it: see
  // seed_held (the caller re-runs the row without a seed when it does not).
  void seed(float cut) {
    cut_ = std::max(cut_, cut);
    floor_ = cut;
  }
  // The seed (−∞ when none) and 2·margin.
  float floor() const { return floor_; }
  float margin2() const { return margin2_; }
  // A key with GEMM score <= cut() is not needed.
  float cut() const { return cut_; }
  std::size_t size() const { return size_; }
  Hit* hits() { return storage_.get(); }

  // Adds a key whose score beat cut(); shrinks first when the buffer is full. rescore(key)
  // gives the canonical score of a key, needed only when ties block a shrink.
  template <class Rescore>
  [[gnu::always_inline]] void add(float score, std::uint32_t key, Rescore&& rescore) {
    if (size_ == capacity_) shrink(rescore);
    if (score > cut_) storage_[size_++] = Hit{score, key};
  }

  // Drops what the GEMM scores allow (see the class comment).
  void reduce() {
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

 private:
  template <class Rescore>
  void shrink(Rescore&& rescore) {
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

  std::size_t keep_ = 0;
  float margin2_ = 0;
  float cut_ = 0;
  float floor_ = 0;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
  std::unique_ptr<Hit[]> storage_;
};

// A candidate of the shard as one integer whose ascending order is the order `before`: the
// score's bits mapped to an ascending unsigned order and complemented (higher scores first),
// then the key's offset in the shard (lower indices first among equal scores). Canonical
// scores are never −0 or NaN, so equal scores have equal bits. Sorting these is cheaper than
// sorting Candidates with a two-level comparison.
inline std::uint64_t order_key(float score, std::uint32_t key) {
  std::uint32_t b;
  std::memcpy(&b, &score, sizeof b);
  const std::uint32_t ascending = (b & 0x80000000u) != 0 ? ~b : (b | 0x80000000u);
  return (static_cast<std::uint64_t>(~ascending) << 32) | key;
}
inline Candidate candidate_of(std::uint64_t k, std::int64_t begin) {
  const std::uint32_t ascending = ~static_cast<std::uint32_t>(k >> 32);
  const std::uint32_t b = (ascending & 0x80000000u) != 0 ? (ascending & 0x7FFFFFFFu) : ~ascending;
  float score;
  std::memcpy(&score, &b, sizeof score);
  return Candidate{score, begin + static_cast<std::int64_t>(k & 0xFFFFFFFFu)};
}

// A survivor to re-score: its row (within the thread's rows), its slot in the group, its key.
struct Pair {
  std::uint32_t row, slot, key;
};

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

// Where the top-k pass starts each row's cut (NCSPARSE_CPU_SEED): `auto` (the default) seeds
// it from a sample of the shard when the lists are long enough for that to pay, `off` never
// does, `always` does whenever the shape allows (for tests), `optimistic` does so with a cut
// that is usually too high, so that the fallback runs (for tests).
enum class SeedMode { kAuto, kOff, kAlways, kOptimistic };

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

inline float* align32(float* p) {
  return reinterpret_cast<float*>((reinterpret_cast<std::uintptr_t>(p) + 31) & ~std::uintptr_t{31});
}

// Per-thread scratch of scan_rows, kept between calls.
struct Scratch {
  std::vector<float> scores, pv, canon, qpack, kpack, spack, sample, select;
  std::vector<float> vpack;
  std::vector<float> cuts;  // used from its first 32-byte aligned float (align32)
  std::vector<float> qpanel, ktail;  // the key-major top-k pass: rows packed in panels of 16, last keys
  std::vector<std::int32_t> lims;
  std::vector<double> state, q_norm, alpha;
  std::vector<GemmFilterRow> rows;
  std::vector<std::uint64_t> order_keys;
  std::vector<std::size_t> offset, bucket_start;
  std::vector<Pair> order;
};

// Largest of s[0..count) (a max is exact: any order gives the same float on both paths).
[[gnu::always_inline]] inline float row_max_sse2(const float* s, std::int64_t count) {
  __m128 m0 = _mm_set1_ps(-std::numeric_limits<float>::infinity()), m1 = m0, m2 = m0, m3 = m0;
  std::int64_t j = 0;
  for (; j + 16 <= count; j += 16) {
    m0 = _mm_max_ps(m0, _mm_loadu_ps(s + j));
    m1 = _mm_max_ps(m1, _mm_loadu_ps(s + j + 4));
    m2 = _mm_max_ps(m2, _mm_loadu_ps(s + j + 8));
    m3 = _mm_max_ps(m3, _mm_loadu_ps(s + j + 12));
  }
  alignas(16) float lane[4];
  _mm_store_ps(lane, _mm_max_ps(_mm_max_ps(m0, m1), _mm_max_ps(m2, m3)));
  float best = std::max(std::max(lane[0], lane[1]), std::max(lane[2], lane[3]));
  for (; j < count; ++j) best = std::max(best, s[j]);
  return best;
}
__attribute__((target("avx2"))) inline float row_max_avx2(const float* s, std::int64_t count) {
  __m256 m0 = _mm256_set1_ps(-std::numeric_limits<float>::infinity()), m1 = m0;
  std::int64_t j = 0;
  for (; j + 16 <= count; j += 16) {
    m0 = _mm256_max_ps(m0, _mm256_loadu_ps(s + j));
    m1 = _mm256_max_ps(m1, _mm256_loadu_ps(s + j + 8));
  }
  alignas(32) float lane[8];
  _mm256_store_ps(lane, _mm256_max_ps(m0, m1));
  float best = lane[0];
  for (int u = 1; u < 8; ++u) best = std::max(best, lane[u]);
  for (; j < count; ++j) best = std::max(best, s[j]);
  return best;
}

// exp(x) for x <= 0 on 8 or 4 lanes: fast_exp_nonpos (core/fastexp.hpp) operation by
// operation, so that every lane rounds exactly as the scalar function does.
#define NCSPARSE_FAST_EXP_BODY(PS, SET1, ADD, SUB, MUL, MAX, CVTT, ADDI, SLLI, CASTI, SET1I) \
  {                                                                                         \
    x = MAX(x, SET1(-87.0f));                                                               \
    const PS t = MUL(x, SET1(1.44269504088896341f));                                        \
    const PS n = SUB(ADD(t, SET1(12582912.0f)), SET1(12582912.0f));                         \
    const PS r = SUB(SUB(x, MUL(n, SET1(0.693145751953125f))), MUL(n, SET1(1.42860682030941723212e-6f))); \
    PS q = SET1(1.0f / 5040.0f);                                                            \
    q = ADD(MUL(q, r), SET1(1.0f / 720.0f));                                                \
    q = ADD(MUL(q, r), SET1(1.0f / 120.0f));                                                \
    q = ADD(MUL(q, r), SET1(1.0f / 24.0f));                                                 \
    q = ADD(MUL(q, r), SET1(1.0f / 6.0f));                                                  \
    q = ADD(MUL(q, r), SET1(0.5f));                                                         \
    q = ADD(MUL(q, r), SET1(1.0f));                                                         \
    q = ADD(MUL(q, r), SET1(1.0f));                                                         \
    return MUL(q, CASTI(SLLI(ADDI(CVTT(n), SET1I(127)), 23)));                              \
  }
[[gnu::always_inline]] inline __m128 fast_exp_sse2(__m128 x)
    NCSPARSE_FAST_EXP_BODY(__m128, _mm_set1_ps, _mm_add_ps, _mm_sub_ps, _mm_mul_ps, _mm_max_ps, _mm_cvttps_epi32,
                           _mm_add_epi32, _mm_slli_epi32, _mm_castsi128_ps, _mm_set1_epi32)
__attribute__((target("avx2"), always_inline)) inline __m256 fast_exp_avx2(__m256 x)
    NCSPARSE_FAST_EXP_BODY(__m256, _mm256_set1_ps, _mm256_add_ps, _mm256_sub_ps, _mm256_mul_ps, _mm256_max_ps,
                           _mm256_cvttps_epi32, _mm256_add_epi32, _mm256_slli_epi32, _mm256_castsi256_ps,
                           _mm256_set1_epi32)
#undef NCSPARSE_FAST_EXP_BODY
// The same polynomial with fused multiply-adds and a rounding instruction: 15 operations
// instead of 25, and rounded differently in the last bit. For the fused exact pass only, whose
// scores differ from the portable path's in the last bits anyway.
__attribute__((target("avx2,fma"), always_inline)) inline __m256 fast_exp_fma(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 n =
      _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.42860682030941723212e-6f), r);
  __m256 q = _mm256_fmadd_ps(_mm256_set1_ps(1.0f / 5040.0f), r, _mm256_set1_ps(1.0f / 720.0f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.0f / 120.0f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.0f / 24.0f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.0f / 6.0f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(0.5f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.0f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(q, _mm256_castsi256_ps(e));
}

// s[j] <- exp(s[j] − mf) for j < count, with Σ e and Σ e² in double.
//
// Sixteen lanes (key j in lane j mod 16). Each lane sums e and e² in float over at most 8 keys
// (128 keys at a time: relative error < 8·2^-24 per partial sum), then adds that partial sum to
// its double accumulator, so the long sums over the shard stay double. The last count mod 16
// keys go to lanes 0, 1, ... one by one; the 16 lanes are summed in lane order at the end. The
// SSE2 and AVX2 versions do exactly these operations, lane by lane: bit-identical results.
constexpr std::int64_t kExpLanes = 16, kExpGroups = 8;

[[gnu::always_inline]] inline void exp_tail(float* s, std::int64_t j, std::int64_t count, float mf, double* part,
                                            double* part2, double& sum, double& sum2) {
  for (std::int64_t u = 0; j < count; ++j, ++u) {
    const float e = fast_exp_nonpos(s[j] - mf);
    s[j] = e;
    part[u] += e;
    part2[u] += e * e;  // a float product, as in the vector lanes
  }
  sum = 0, sum2 = 0;
  for (std::int64_t u = 0; u < kExpLanes; ++u) sum += part[u], sum2 += part2[u];
}

[[gnu::always_inline]] inline void exp_row_sse2(float* s, std::int64_t count, float mf, double& sum,
                                                double& sum2) {
  const __m128 m = _mm_set1_ps(mf);
  __m128d dp[8], dq[8];  // lanes 2v, 2v + 1
  for (int v = 0; v < 8; ++v) dp[v] = dq[v] = _mm_setzero_pd();
  std::int64_t j = 0;
  while (j + kExpLanes <= count) {
    const std::int64_t groups = std::min(kExpGroups, (count - j) / kExpLanes);
    __m128 a[4], b[4];
    for (int v = 0; v < 4; ++v) a[v] = b[v] = _mm_setzero_ps();
    for (std::int64_t g = 0; g < groups; ++g, j += kExpLanes) {
      for (int v = 0; v < 4; ++v) {
        const __m128 e = fast_exp_sse2(_mm_sub_ps(_mm_loadu_ps(s + j + 4 * v), m));
        _mm_storeu_ps(s + j + 4 * v, e);
        a[v] = _mm_add_ps(a[v], e);
        b[v] = _mm_add_ps(b[v], _mm_mul_ps(e, e));
      }
    }
    for (int v = 0; v < 4; ++v) {
      dp[2 * v] = _mm_add_pd(dp[2 * v], _mm_cvtps_pd(a[v]));
      dp[2 * v + 1] = _mm_add_pd(dp[2 * v + 1], _mm_cvtps_pd(_mm_movehl_ps(a[v], a[v])));
      dq[2 * v] = _mm_add_pd(dq[2 * v], _mm_cvtps_pd(b[v]));
      dq[2 * v + 1] = _mm_add_pd(dq[2 * v + 1], _mm_cvtps_pd(_mm_movehl_ps(b[v], b[v])));
    }
  }
  alignas(16) double part[kExpLanes], part2[kExpLanes];
  for (int v = 0; v < 8; ++v) _mm_store_pd(part + 2 * v, dp[v]), _mm_store_pd(part2 + 2 * v, dq[v]);
  exp_tail(s, j, count, mf, part, part2, sum, sum2);
}
// kFma: with fast_exp_fma and e² summed by fused multiply-adds (the fused exact pass).
template <bool kFma = false>
__attribute__((target("avx2,fma"))) inline void exp_row_avx2(float* s, std::int64_t count, float mf, double& sum,
                                                             double& sum2) {
  const __m256 m = _mm256_set1_ps(mf);
  __m256d dp[4], dq[4];  // lanes 4v .. 4v + 3
  for (int v = 0; v < 4; ++v) dp[v] = dq[v] = _mm256_setzero_pd();
  std::int64_t j = 0;
  while (j + kExpLanes <= count) {
    const std::int64_t groups = std::min(kExpGroups, (count - j) / kExpLanes);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
    for (std::int64_t g = 0; g < groups; ++g, j += kExpLanes) {
      const __m256 x0 = _mm256_sub_ps(_mm256_loadu_ps(s + j), m);
      const __m256 x1 = _mm256_sub_ps(_mm256_loadu_ps(s + j + 8), m);
      const __m256 e0 = kFma ? fast_exp_fma(x0) : fast_exp_avx2(x0);
      const __m256 e1 = kFma ? fast_exp_fma(x1) : fast_exp_avx2(x1);
      _mm256_storeu_ps(s + j, e0);
      _mm256_storeu_ps(s + j + 8, e1);
      a0 = _mm256_add_ps(a0, e0);
      a1 = _mm256_add_ps(a1, e1);
      if constexpr (kFma) {
        b0 = _mm256_fmadd_ps(e0, e0, b0);
        b1 = _mm256_fmadd_ps(e1, e1, b1);
      } else {
        b0 = _mm256_add_ps(b0, _mm256_mul_ps(e0, e0));
        b1 = _mm256_add_ps(b1, _mm256_mul_ps(e1, e1));
      }
    }
    dp[0] = _mm256_add_pd(dp[0], _mm256_cvtps_pd(_mm256_castps256_ps128(a0)));
    dp[1] = _mm256_add_pd(dp[1], _mm256_cvtps_pd(_mm256_extractf128_ps(a0, 1)));
    dp[2] = _mm256_add_pd(dp[2], _mm256_cvtps_pd(_mm256_castps256_ps128(a1)));
    dp[3] = _mm256_add_pd(dp[3], _mm256_cvtps_pd(_mm256_extractf128_ps(a1, 1)));
    dq[0] = _mm256_add_pd(dq[0], _mm256_cvtps_pd(_mm256_castps256_ps128(b0)));
    dq[1] = _mm256_add_pd(dq[1], _mm256_cvtps_pd(_mm256_extractf128_ps(b0, 1)));
    dq[2] = _mm256_add_pd(dq[2], _mm256_cvtps_pd(_mm256_castps256_ps128(b1)));
    dq[3] = _mm256_add_pd(dq[3], _mm256_cvtps_pd(_mm256_extractf128_ps(b1, 1)));
  }
  alignas(32) double part[kExpLanes], part2[kExpLanes];
  for (int v = 0; v < 4; ++v) _mm256_store_pd(part + 4 * v, dp[v]), _mm256_store_pd(part2 + 4 * v, dq[v]);
  exp_tail(s, j, count, mf, part, part2, sum, sum2);
}

// Bit mask of the lanes of s[0..16) that are > cut: one compare per 4 (SSE2) or 8 (AVX2) keys.
[[gnu::always_inline]] inline unsigned above16_sse2(const float* s, float cut) {
  const __m128 c = _mm_set1_ps(cut);
  const unsigned m0 = static_cast<unsigned>(_mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(s), c)));
  const unsigned m1 = static_cast<unsigned>(_mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(s + 4), c)));
  const unsigned m2 = static_cast<unsigned>(_mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(s + 8), c)));
  const unsigned m3 = static_cast<unsigned>(_mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(s + 12), c)));
  return m0 | (m1 << 4) | (m2 << 8) | (m3 << 12);
}
__attribute__((target("avx2"))) inline unsigned above16_avx2(const float* s, float cut) {
  const __m256 c = _mm256_set1_ps(cut);
  const unsigned m0 = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(s), c, _CMP_GT_OQ)));
  const unsigned m1 =
      static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(s + 8), c, _CMP_GT_OQ)));
  return m0 | (m1 << 8);
}

// Feeds the keys of one row of a score tile that beat the row's cut to its selection.
template <bool kAvx2, class Rescore>
[[gnu::always_inline]] inline void filter_row(const float* s, std::int64_t count, std::uint32_t key0,
                                              GemmFilterRow& row, Rescore&& rescore) {
  std::int64_t j = 0;
  for (; j + 16 <= count; j += 16) {
    unsigned mask = kAvx2 ? above16_avx2(s + j, row.cut()) : above16_sse2(s + j, row.cut());
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

// Fused score + filter for the top-k pass (AVX2 + FMA): a 6 × 16 block of scores is computed
// in registers from packed queries and keys and compared with the 6 rows' cuts there; only the
// blocks with a key above a cut are written out. Score tiles never go to memory, and there is
// no separate pass over them. The GEMM scores differ from a BLAS GEMM's in the last bits; the
// margin bounds both (any summation order, FMA or not), and the canonical re-scoring makes the
// lists identical to the portable path's.
constexpr std::int64_t kMr = 6, kNr = 16;
constexpr int kFullLim[kMr] = {kNr, kNr, kNr, kNr, kNr, kNr};  // every key of a panel visible

// qp[c·kMr + r] = q[r][c] for the kMr rows from q (rows < kMr are padded with zeros).
inline void pack_queries(const float* q, std::int64_t rows, std::int64_t d, float* qp) {
  for (std::int64_t c = 0; c < d; ++c)
    for (std::int64_t r = 0; r < kMr; ++r) qp[c * kMr + r] = r < rows ? q[r * d + c] : 0.0f;
}
// kp[(panel·d + c)·kNr + u] = k[panel·kNr + u][c], keys past count padded with zeros.
inline void pack_keys(const float* k, std::int64_t count, std::int64_t d, float* kp) {
  for (std::int64_t j0 = 0; j0 < count; j0 += kNr) {
    float* out = kp + j0 * d;
    const std::int64_t n = std::min(kNr, count - j0);
    for (std::int64_t u = 0; u < n; ++u)
      for (std::int64_t c = 0; c < d; ++c) out[c * kNr + u] = k[(j0 + u) * d + c];
    for (std::int64_t u = n; u < kNr; ++u)
      for (std::int64_t c = 0; c < d; ++c) out[c * kNr + u] = 0.0f;
  }
}

// pack_keys with 8 × 8 AVX transposes for full panels when d is a multiple of 8 (the scalar
// transpose's strided stores cost ~5% of the top-k pass at m = 256).
__attribute__((target("avx2"), always_inline)) inline void transpose8x8_store(const float* src, std::int64_t ld,
                                                                             float* dst, std::int64_t ldd) {
  __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ld), r2 = _mm256_loadu_ps(src + 2 * ld),
         r3 = _mm256_loadu_ps(src + 3 * ld), r4 = _mm256_loadu_ps(src + 4 * ld), r5 = _mm256_loadu_ps(src + 5 * ld),
         r6 = _mm256_loadu_ps(src + 6 * ld), r7 = _mm256_loadu_ps(src + 7 * ld);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
               t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
               t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
               u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
               u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
               u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r0 = _mm256_permute2f128_ps(u0, u4, 0x20);
  r1 = _mm256_permute2f128_ps(u1, u5, 0x20);
  r2 = _mm256_permute2f128_ps(u2, u6, 0x20);
  r3 = _mm256_permute2f128_ps(u3, u7, 0x20);
  r4 = _mm256_permute2f128_ps(u0, u4, 0x31);
  r5 = _mm256_permute2f128_ps(u1, u5, 0x31);
  r6 = _mm256_permute2f128_ps(u2, u6, 0x31);
  r7 = _mm256_permute2f128_ps(u3, u7, 0x31);
  _mm256_storeu_ps(dst, r0);
  _mm256_storeu_ps(dst + ldd, r1);
  _mm256_storeu_ps(dst + 2 * ldd, r2);
  _mm256_storeu_ps(dst + 3 * ldd, r3);
  _mm256_storeu_ps(dst + 4 * ldd, r4);
  _mm256_storeu_ps(dst + 5 * ldd, r5);
  _mm256_storeu_ps(dst + 6 * ldd, r6);
  _mm256_storeu_ps(dst + 7 * ldd, r7);
}
__attribute__((target("avx2"), always_inline)) inline void pack_keys_avx2(const float* k, std::int64_t count,
                                                                         std::int64_t d, float* kp) {
  if (d % 8 != 0) return pack_keys(k, count, d, kp);
  const std::int64_t full = count / kNr * kNr;
  for (std::int64_t j0 = 0; j0 < full; j0 += kNr) {
    float* out = kp + j0 * d;
    for (std::int64_t c0 = 0; c0 < d; c0 += 8) {
      transpose8x8_store(k + j0 * d + c0, d, out + c0 * kNr, kNr);
      transpose8x8_store(k + (j0 + 8) * d + c0, d, out + c0 * kNr + 8, kNr);
    }
  }
  if (full < count) pack_keys(k + full * d, count - full, d, kp + full * d);
}

// The sample that seeds the rows' cuts: every `stride`-th full 16-key panel of the shard,
// starting at panel `phase`, `panels` of them; `rank`: the cut is taken at the rank-th best
// sample score of the row.
//
// Why it pays: a streaming top-L over n keys admits about L·(1 + ln(n/L)) keys to the buffer
// (each one that beats the running L-th best, ~7L at L = 2048, n = 2^20) and shrinks it every
// few thousand admissions. With a cut at the sample's rank-th best score the rest of the scan
// admits about rank·n/S keys (S sample keys), 1.8·L (λ = 32) to 2.25·L (λ = 16, where the
// sample is capped at 8192 keys: L = 2048 at n = 2^20) for the ranks below, and never shrinks.
// The cap: ranking 16,384 sample scores per row cost more than the admissions it saved
// (K = 2048 pass over its bare GEMM, d = 64, alternating runs: 1.09–1.30 against 1.13–1.35).
// The rank is chosen so that the cut is almost surely below the row's true L-th best score:
// λ = L·S/n sample keys are expected among a row's top L, and the rank is λ + 4√λ + 4. When it
// is not (a sample that misrepresents the row), the final check fails and the row is scanned
// again without a seed: slower, never wrong.
struct SeedPlan {
  bool on = false;
  std::int64_t stride = 0, phase = 0, panels = 0, rank = 0;
  // Shard offset of the first key of sample panel s (s < panels).
  std::int64_t start(std::int64_t s) const { return (phase + s * stride) * kNr; }
};

// Which keys are in the sample, for a scan that visits keys in increasing order from `from`:
// skip(j, n) gives the bits of keys j .. j + n − 1 (n <= 16) that are (for a 16-key panel at a
// multiple of 16: nonzero iff the panel is sampled). One division when made, none per call.
class SampleCursor {
 public:
  SampleCursor(const SeedPlan& plan, std::int64_t from) : plan_(plan) {
    if (!plan.on) return;
    const std::int64_t panel = from / kNr;  // the first sample panel that ends after `from`
    s_ = panel <= plan.phase ? 0 : (panel - plan.phase + plan.stride - 1) / plan.stride;
  }
  unsigned skip(std::int64_t j, std::int64_t n) {
    if (!plan_.on) return 0;
    while (s_ < plan_.panels && plan_.start(s_) + kNr <= j) ++s_;
    if (s_ >= plan_.panels || plan_.start(s_) >= j + n) return 0;
    unsigned bits = 0;  // sample panels are at least 16 keys apart: n <= 16 keys meet one or two
    for (std::int64_t s = s_; s < std::min(plan_.panels, s_ + 2); ++s)
      for (std::int64_t i = 0; i < n; ++i)
        if (j + i >= plan_.start(s) && j + i < plan_.start(s) + kNr) bits |= 1u << i;
    return bits;
  }

 private:
  const SeedPlan& plan_;
  std::int64_t s_ = 0;
};
constexpr std::int64_t kSeedLambda = 32;           // sample keys expected in a row's top L
constexpr std::int64_t kSeedMaxSample = 8192;      // keys; more costs more to rank per row
constexpr std::int64_t kSeedMinList = 128;         // auto: shorter lists fill cheaply anyway
constexpr std::int64_t kSeedMinKeysPerList = 64;   // auto: n / L below this, little to skip

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

// Scores of one 6 × 16 block; mask[r] gets the keys of row r above cut[r] (and below lim[r]),
// whose scores go to out[r·16 + u].
// kAll: store every row's scores (at out + r·ld), not only those of rows with a key above the cut.
template <bool kAll = false>
__attribute__((target("avx2,fma"), always_inline)) inline void block_6x16(const float* qp, const float* kp, std::int64_t d,
                                                           float scale, const float* cut, const int* lim,
                                                           float* out, unsigned* mask, std::int64_t ld = kNr) {
  __m256 acc[kMr][2];
  for (int r = 0; r < kMr; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (std::int64_t c = 0; c < d; ++c) {
    const __m256 b0 = _mm256_loadu_ps(kp + c * kNr), b1 = _mm256_loadu_ps(kp + c * kNr + 8);
    for (int r = 0; r < kMr; ++r) {
      const __m256 a = _mm256_broadcast_ss(qp + c * kMr + r);
      acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
    }
  }
  const __m256 sc = _mm256_set1_ps(scale);
  for (int r = 0; r < kMr; ++r) {
    const __m256 s0 = _mm256_mul_ps(acc[r][0], sc), s1 = _mm256_mul_ps(acc[r][1], sc);
    const __m256 cr = _mm256_set1_ps(cut[r]);
    unsigned m = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(s0, cr, _CMP_GT_OQ))) |
                 (static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(s1, cr, _CMP_GT_OQ))) << 8);
    m &= lim[r] >= kNr ? 0xFFFFu : (lim[r] <= 0 ? 0u : (1u << lim[r]) - 1u);
    mask[r] = m;
    if (kAll || m != 0) {
      _mm256_storeu_ps(out + r * ld, s0);
      _mm256_storeu_ps(out + r * ld + 8, s1);
    }
  }
}

// Admits key `key` with GEMM score `score` to row i (within the thread's rows, which start at
// r0 in the block) if it beats the row's cut; returns the row's cut afterwards.
[[gnu::always_inline]] inline float admit(std::int64_t i, float score, std::uint32_t key, const QueryBlock& queries,
                                          const KeyShard& keys, const PassParams& p, std::int64_t r0, Scratch& w) {
  GemmFilterRow& row = w.rows[static_cast<std::size_t>(i)];
  if (score > row.cut()) {
    const float* qi = queries.q + (r0 + i) * p.d;
    row.add(score, key, [&](std::uint32_t k) { return canonical_score(qi, keys.k + k * p.d, p.d, p.scale); });
  }
  return row.cut();
}

// Admits to the selections of rows i0 .. i0 + nr − 1 (within the thread's rows, which start at
// r0 in the block) the keys that block_6x16 marked in mask: key key0 + u of row r has its
// score at out[r·ld + u]. cut[r] gets the row's cut afterwards.
[[gnu::always_inline]] inline void admit_block(const unsigned* mask, std::int64_t nr, std::int64_t i0,
                                               const float* out, std::int64_t ld, std::uint32_t key0,
                                               const QueryBlock& queries, const KeyShard& keys, const PassParams& p,
                                               std::int64_t r0, Scratch& w, float* cut) {
  for (std::int64_t r = 0; r < nr; ++r) {
    for (unsigned m = mask[r]; m != 0; m &= m - 1) {
      const int u = __builtin_ctz(m);
      cut[r] = admit(i0 + r, out[r * ld + u], key0 + static_cast<std::uint32_t>(u), queries, keys, p, r0, w);
    }
  }
}

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
// Packs rows [r0, r0 + rows) of the block into w.qpack, kMr rows per block (the last padded
// with zeros); returns the number of blocks.
inline std::int64_t pack_query_blocks(const QueryBlock& queries, std::int64_t r0, std::int64_t rows, std::int64_t d,
                                      Scratch& w) {
  const std::int64_t blocks = (rows + kMr - 1) / kMr;
  w.qpack.resize(static_cast<std::size_t>(blocks * kMr * d));
  for (std::int64_t b = 0; b < blocks; ++b)
    pack_queries(queries.q + (r0 + b * kMr) * d, std::min(kMr, rows - b * kMr), d, w.qpack.data() + b * kMr * d);
  return blocks;
}

// Share `part` of `parts` of the cache lines of [base, base + bytes) prefetched into L2: the
// next tile's keys (and values) come from DRAM, and fetching them a share per unit of work on
// the current tile keeps the packing of the next one from waiting on memory.
inline void prefetch_share(const float* base, std::int64_t bytes, std::int64_t part, std::int64_t parts) {
  const std::int64_t lines = bytes / 64;
  const std::int64_t per = (lines + parts - 1) / parts;
  const char* c = reinterpret_cast<const char*>(base);
  for (std::int64_t l = part * per; l < std::min(lines, (part + 1) * per); ++l) _mm_prefetch(c + 64 * l, _MM_HINT_T1);
}

// Seeds the cuts of rows [r0, r0 + rows) from a sample of the shard (SeedPlan) and admits the
// sample keys above them; the scans then skip the sampled panels (the top-k pass) or score them
// without admitting (the exact pass). w.qpack holds the rows' packed queries. Returns the plan
// (on = false: nothing done).
__attribute__((target("avx2,fma"))) SeedPlan seed_cuts_avx2(const QueryBlock& queries, const KeyShard& keys,
                                                           const PassParams& p, std::int64_t r0, std::int64_t rows,
                                                           SeedMode seed_mode, Scratch& w) {
  const std::int64_t d = p.d;
  const std::int64_t blocks = (rows + kMr - 1) / kMr;
  const float scale = static_cast<float>(p.scale);
  alignas(32) float out_block[kMr * kNr];
  unsigned mask[kMr];
  const SeedPlan seed = plan_seed(keys.count, p.list_length, p.causal, seed_mode);
  if (!seed.on) return seed;
  // Score the sample panels for groups of row blocks, rank each row's sample scores, seed
  // its cut, and admit the sample keys above it; the scan below skips these panels.
  const std::int64_t S = seed.panels * kNr;
  w.spack.resize(static_cast<std::size_t>(S * d));
  for (std::int64_t sp = 0; sp < seed.panels; ++sp)
    pack_keys_avx2(keys.k + seed.start(sp) * d, kNr, d, w.spack.data() + sp * kNr * d);
  constexpr std::int64_t kGroupBlocks = 8;
  w.sample.resize(static_cast<std::size_t>(kGroupBlocks * kMr * S));
  w.select.resize(static_cast<std::size_t>(S));
  const float all_cut[kMr] = {-std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
  for (std::int64_t gb0 = 0; gb0 < blocks; gb0 += kGroupBlocks) {
    const std::int64_t gb1 = std::min(blocks, gb0 + kGroupBlocks);
    for (std::int64_t sp = 0; sp < seed.panels; ++sp) {
      for (std::int64_t b = gb0; b < gb1; ++b) {
        block_6x16(w.qpack.data() + b * kMr * d, w.spack.data() + sp * kNr * d, d, scale, all_cut, kFullLim,
                   out_block, mask);
        for (std::int64_t r = 0; r < kMr; ++r)
          std::copy_n(out_block + r * kNr, kNr, w.sample.data() + ((b - gb0) * kMr + r) * S + sp * kNr);
      }
    }
    for (std::int64_t i = gb0 * kMr; i < std::min(rows, gb1 * kMr); ++i) {
      const float* sc = w.sample.data() + (i - gb0 * kMr) * S;
      std::copy_n(sc, S, w.select.data());
      std::nth_element(w.select.begin(), w.select.begin() + (seed.rank - 1), w.select.begin() + S,
                       std::greater<float>());
      GemmFilterRow& row = w.rows[static_cast<std::size_t>(i)];
      row.seed(strictly_below(w.select[static_cast<std::size_t>(seed.rank - 1)], row.margin2()));
      const float* qi = queries.q + (r0 + i) * d;
      auto rescore = [&](std::uint32_t key) { return canonical_score(qi, keys.k + key * d, d, p.scale); };
      for (std::int64_t sp = 0; sp < seed.panels; ++sp) {
        const std::uint32_t key0 = static_cast<std::uint32_t>(seed.start(sp));
        filter_row<true>(sc + sp * kNr, kNr, key0, row, rescore);
      }
    }
  }
  return seed;
}

#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
// The top-k pass, key-major, for 16 rows or more per thread: the same products as block_6x16
// with the roles of rows and keys swapped. Six key rows are read where they lie in the shard
// (broadcast one coordinate at a time), and 16 query rows packed once per pass (pack_keys_avx2
// layout) are the vector operand. Nothing of the shard is packed or copied: at m = 64, packing
// the keys of each tile (every key once per query block) took ~10% of block_6x16's pass, and
// the rows padded to blocks of six another 3%. Each score is the same chain of fused
// multiply-adds over c = 0 .. d−1 as block_6x16's, so the GEMM scores, the admissions and the
// lists are the same.
constexpr std::int64_t kKeyBlock = 6;
constexpr std::int64_t kQueryPanel = 16;
// Packed query panels that go over a tile together (64 queries at d = 128, 128 at d = 64):
// 16 KiB and 32 KiB ran within noise of each other, 32 KiB 1–9% faster in the medians of
// alternating runs (d = 128, m = 256 and 1024; d = 64, m = 256).
constexpr std::int64_t kQueryGroupBytes = 32 * 1024;
constexpr std::int64_t kKeyAheadBytes = 8 * 1024;     // keys prefetched ahead of the first group's scan

// Scores of keys kr[0..5] (rows of d floats) against a 16-row query panel qp; mask[i] gets
// the rows whose score with key i is above their cut (and, kCausal, whose limit lim[u] is
// above the key's shard offset key + i), and out[i·16 + u] their scores. Keys whose bit in
// `valid` is clear get no mask.
// The six keys are rows kr, kr + d, ..., kr + 5·d: addressed from two pointers and the row
// stride, and the loop ends on a pointer, so that it needs few general registers (with six
// row pointers, or a counter beside them, GCC spilled some and reloaded them every step).
template <bool kCausal>
__attribute__((target("avx2,fma"), always_inline)) inline void block_k6q16(
    const float* kr, const float* qp, std::int64_t d, float scale, const float* cut, const std::int32_t* lim,
    std::int32_t key, unsigned valid, float* out, unsigned* mask) {
  __m256 acc[kKeyBlock][2];
  for (int i = 0; i < kKeyBlock; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  const float* a = kr;
  const float* b = kr + 3 * d;
  for (const float* const a_end = kr + d; a != a_end; ++a, ++b, qp += kQueryPanel) {
    const __m256 q0 = _mm256_loadu_ps(qp), q1 = _mm256_loadu_ps(qp + 8);
    for (int i = 0; i < kKeyBlock; ++i) {
      const __m256 k = _mm256_broadcast_ss((i < 3 ? a : b) + (i % 3) * d);
      acc[i][0] = _mm256_fmadd_ps(k, q0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(k, q1, acc[i][1]);
    }
  }
  const __m256 sc = _mm256_set1_ps(scale);
  const __m256 c0 = _mm256_loadu_ps(cut), c1 = _mm256_loadu_ps(cut + 8);
  for (int i = 0; i < kKeyBlock; ++i) {
    const __m256 s0 = _mm256_mul_ps(acc[i][0], sc), s1 = _mm256_mul_ps(acc[i][1], sc);
    unsigned m = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(s0, c0, _CMP_GT_OQ))) |
                 (static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(s1, c1, _CMP_GT_OQ))) << 8);
    if constexpr (kCausal) {
      const __m256i kk = _mm256_set1_epi32(key + i);
      const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lim));
      const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lim + 8));
      m &= static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(l0, kk)))) |
           (static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(l1, kk)))) << 8);
    }
    if (((valid >> i) & 1u) == 0) m = 0;
    mask[i] = m;
    if (m != 0) {
      _mm256_storeu_ps(out + i * kQueryPanel, s0);
      _mm256_storeu_ps(out + i * kQueryPanel + 8, s1);
    }
  }
}

template <bool kCausal>
__attribute__((target("avx2,fma"))) void keymajor_topk_scan(const QueryBlock& queries, const KeyShard& keys,
                                                           const PassParams& p, std::int64_t r0, std::int64_t rows,
                                                           const SeedPlan& seed, Scratch& w) {
  const std::int64_t d = p.d;
  const float scale = static_cast<float>(p.scale);
  const std::int64_t panels = (rows + kQueryPanel - 1) / kQueryPanel;
  w.qpanel.resize(static_cast<std::size_t>(panels * kQueryPanel * d));
  pack_keys_avx2(queries.q + r0 * d, rows, d, w.qpanel.data());
  // Limits (causal): row u sees the keys at shard offsets below lims[u]; padded rows see none.
  w.lims.assign(static_cast<std::size_t>(panels * kQueryPanel), 0);
  std::int64_t reach = keys.count;  // keys past every row's limit are not scanned
  if constexpr (kCausal) {
    reach = 0;
    for (std::int64_t i = 0; i < rows; ++i) {
      const std::int64_t lim = std::clamp<std::int64_t>(queries.positions[r0 + i] - keys.begin + 1, 0, keys.count);
      w.lims[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(lim);
      reach = std::max(reach, lim);
    }
  }
  w.cuts.assign(static_cast<std::size_t>(panels * kQueryPanel), std::numeric_limits<float>::infinity());
  for (std::int64_t i = 0; i < rows; ++i) w.cuts[static_cast<std::size_t>(i)] = w.rows[static_cast<std::size_t>(i)].cut();
  // Tiles of keys that stay in L2 while each group of query panels (in L1) goes over them.
  const std::int64_t TK = std::max<std::int64_t>(
      kKeyBlock, std::min(p.tile, kTileBytes / static_cast<std::int64_t>(sizeof(float)) / d) / kKeyBlock * kKeyBlock);
  const std::int64_t G = std::clamp<std::int64_t>(
      kQueryGroupBytes / (kQueryPanel * d * static_cast<std::int64_t>(sizeof(float))), 1, panels);
  alignas(32) float out[kKeyBlock * kQueryPanel];
  unsigned mask[kKeyBlock];
  w.ktail.resize(static_cast<std::size_t>(kKeyBlock * d));
  float* const ktail = w.ktail.data();
  for (std::int64_t t0 = 0; t0 < reach; t0 += TK) {
    const std::int64_t t1 = std::min(reach, t0 + TK);
    for (std::int64_t g0 = 0; g0 < panels; g0 += G) {
      const std::int64_t g1 = std::min(panels, g0 + G);
      std::int64_t g_reach = t1;
      if constexpr (kCausal) {
        std::int64_t r = 0;
        for (std::int64_t u = g0 * kQueryPanel; u < g1 * kQueryPanel; ++u) r = std::max<std::int64_t>(r, w.lims[u]);
        g_reach = std::min(t1, r);
      }
      SampleCursor sample(seed, t0);
      for (std::int64_t j = t0; j < g_reach; j += kKeyBlock) {
        const std::int64_t nk = std::min(kKeyBlock, g_reach - j);
        if (g0 == 0) {  // the first group reads the tile from DRAM: fetch ahead
          const char* ahead = reinterpret_cast<const char*>(keys.k + j * d) + kKeyAheadBytes;
          const char* end = reinterpret_cast<const char*>(keys.k + keys.count * d);
          for (std::int64_t b = 0; b < kKeyBlock * d * static_cast<std::int64_t>(sizeof(float)) && ahead + b < end; b += 64)
            _mm_prefetch(ahead + b, _MM_HINT_T0);
        }
        const unsigned valid = ((1u << nk) - 1u) & ~sample.skip(j, nk);
        if (valid == 0) continue;
        const float* kr = keys.k + j * d;
        if (j + kKeyBlock > keys.count) {  // the shard's last keys: a copy padded with zeros (masked)
          std::fill(ktail, ktail + kKeyBlock * d, 0.0f);
          std::copy_n(kr, (keys.count - j) * d, ktail);
          kr = ktail;
        }
        for (std::int64_t pn = g0; pn < g1; ++pn) {
          const std::int64_t u0 = pn * kQueryPanel;
          block_k6q16<kCausal>(kr, w.qpanel.data() + u0 * d, d, scale, w.cuts.data() + u0,
                               w.lims.data() + u0, static_cast<std::int32_t>(j), valid, out, mask);
          for (std::int64_t i = 0; i < nk; ++i) {
            for (unsigned m = mask[i]; m != 0; m &= m - 1) {
              const std::int64_t row_i = u0 + __builtin_ctz(m);
              w.cuts[static_cast<std::size_t>(row_i)] = admit(row_i, out[i * kQueryPanel + __builtin_ctz(m)],
                                                              static_cast<std::uint32_t>(j + i), queries, keys, p, r0, w);
            }
          }
        }
      }
    }
  }
}
#pragma GCC pop_options

// The top-k pass on AVX2 + FMA (no exact state): a 6 × 16 block of scores is computed in
// registers and compared with the rows' cuts there, optionally after seeding the cuts from a
// sample (SeedPlan). From 16 rows per thread the key-major scan above does it (keys read in
// place); below, rows go in blocks of six against key panels packed per tile (block_6x16),
// which wastes less on padded rows. Rows [r0, r0 + rows) of the block; w.rows already reset.
// In its own function so that block_6x16 is inlined into both of its loops.
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
__attribute__((target("avx2,fma"))) void fused_topk_avx2(const QueryBlock& queries, const KeyShard& keys,
                                                         const PassParams& p, std::int64_t r0, std::int64_t rows,
                                                         SeedMode seed_mode, Scratch& w, SeedPlan& seed) {
  const std::int64_t d = p.d;
  // Keys in tiles of ~256 KiB packed, queries packed once.
  const std::int64_t blocks = pack_query_blocks(queries, r0, rows, d, w);
  const std::int64_t TK =
      std::max<std::int64_t>(kNr, (kTileBytes / static_cast<std::int64_t>(sizeof(float)) / d) / kNr * kNr);
  w.kpack.resize(static_cast<std::size_t>(((std::min(TK, keys.count) + kNr - 1) / kNr) * kNr * d));
  alignas(32) float out_block[kMr * kNr];
  int lim[kMr];
  unsigned mask[kMr];
  const float scale = static_cast<float>(p.scale);
  seed = seed_cuts_avx2(queries, keys, p, r0, rows, seed_mode, w);
  if (rows >= kQueryPanel && keys.count < (std::int64_t{1} << 31)) {  // key offsets compared as int32
    if (p.causal) {
      keymajor_topk_scan<true>(queries, keys, p, r0, rows, seed, w);
    } else {
      keymajor_topk_scan<false>(queries, keys, p, r0, rows, seed, w);
    }
    return;
  }
  // The rows' cuts side by side, so that a block reads its six at once; padded rows get +∞
  // (never admitted). Refreshed after each row's admissions.
  w.cuts.assign(static_cast<std::size_t>(blocks * kMr), std::numeric_limits<float>::infinity());
  for (std::int64_t i = 0; i < rows; ++i) w.cuts[static_cast<std::size_t>(i)] = w.rows[static_cast<std::size_t>(i)].cut();
  for (std::int64_t t0 = 0; t0 < keys.count; t0 += TK) {
    const std::int64_t tc = std::min(TK, keys.count - t0);
    const std::int64_t g0 = keys.begin + t0;
    pack_keys_avx2(keys.k + t0 * d, tc, d, w.kpack.data());
    // The next tile's keys, a share per panel (a third of the pass at m = 64 without this).
    const std::int64_t next_bytes =
        std::min(TK, std::max<std::int64_t>(0, keys.count - t0 - TK)) * d * static_cast<std::int64_t>(sizeof(float));
    const std::int64_t panels = (tc + kNr - 1) / kNr;
    SampleCursor sample(seed, t0);
    // Panel outside, row blocks inside: the 16-key panel stays in L1 for every row block.
    for (std::int64_t j0 = 0; j0 < tc; j0 += kNr) {
      prefetch_share(keys.k + std::min(t0 + TK, keys.count) * d, next_bytes, j0 / kNr, panels);
      if (sample.skip(t0 + j0, kNr) != 0) continue;
      const float* kb = w.kpack.data() + j0 * d;
      for (std::int64_t b = 0; b < blocks; ++b) {
        const std::int64_t i0 = b * kMr;  // first row of the block, within this thread's rows
        const std::int64_t nr = std::min(kMr, rows - i0);
        const int* lim_b = kFullLim;
        if (p.causal || j0 + kNr > tc) {
          bool any = false;
          for (std::int64_t r = 0; r < kMr; ++r) {
            const std::int64_t row_lim =
                r >= nr ? 0
                : p.causal ? std::clamp<std::int64_t>(queries.positions[r0 + i0 + r] - g0 + 1, 0, tc)
                           : tc;
            lim[r] = static_cast<int>(std::clamp<std::int64_t>(row_lim - j0, 0, kNr));
            any = any || lim[r] > 0;
          }
          if (!any) continue;
          lim_b = lim;
        }
        block_6x16(w.qpack.data() + b * kMr * d, kb, d, scale, w.cuts.data() + i0, lim_b, out_block, mask);
        admit_block(mask, nr, i0, out_block, kNr, static_cast<std::uint32_t>(t0 + j0), queries, keys, p, r0, w,
                    w.cuts.data() + i0);
      }
    }
  }
}
#pragma GCC pop_options

// The exact pass on AVX2 + FMA, fused: no BLAS call, and nothing the size of a score tile
// leaves L1. For each tile of keys (packed as in the top-k pass) and each block of kMr rows:
//   1. the kMr × T scores are computed by block_6x16 into a small buffer, and the keys above a
//      row's cut go to its selection on the way;
//   2. each row's running max, its exponentials (exp_row_avx2) and their sums are taken in
//      that buffer, which then holds P = exp(s − m);
//   3. the kMr × d output O = P·V of the tile is accumulated in registers (pv_strip) from P
//      and the value rows of the tile as they lie in memory, and folded into the double state:
//      o ← o·α + O.
// The tile is sized so that its packed keys and its values stay in L2 while every row block
// of the thread goes over them.
constexpr std::int64_t kExactTileBytes = 128 * 1024;  // packed keys of one tile

// acc[r] (kW vectors of 8 columns) = Σ_j P[r][j] · v[j][0 .. 8·kW) for j < count, for kMr rows
// of P (row stride ld), then folded into the rows' double states. v: a strip of packed values,
// 8·kW floats per key, 32-byte aligned.
template <int kW>
__attribute__((target("avx2,fma"), always_inline)) inline void pv_strip(const float* P, std::int64_t ld,
                                                                       const float* v, std::int64_t count, std::int64_t nr,
                                                                       const double* alpha, double* const* o) {
  __m256 acc[kMr][kW];
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r)
#pragma GCC unroll 2
    for (int u = 0; u < kW; ++u) acc[r][u] = _mm256_setzero_ps();
  for (std::int64_t j = 0; j < count; ++j) {
    __m256 b[kW];
#pragma GCC unroll 2
    for (int u = 0; u < kW; ++u) b[u] = _mm256_load_ps(v + j * 8 * kW + 8 * u);
#pragma GCC unroll 8
    for (int r = 0; r < kMr; ++r) {
      const __m256 a = _mm256_broadcast_ss(P + r * ld + j);
#pragma GCC unroll 2
      for (int u = 0; u < kW; ++u) acc[r][u] = _mm256_fmadd_ps(a, b[u], acc[r][u]);
    }
  }
  // A loop over the constant kMr (not nr) keeps acc in registers: a runtime index would put
  // the array in memory and store it on every key.
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r) {
    if (r >= nr) break;
    const __m256d al = _mm256_set1_pd(alpha[r]);
#pragma GCC unroll 2
    for (int u = 0; u < kW; ++u) {
      double* out = o[r] + 8 * u;
      const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(acc[r][u]));
      const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(acc[r][u], 1));
      _mm256_storeu_pd(out, _mm256_add_pd(_mm256_mul_pd(_mm256_loadu_pd(out), al), lo));
      _mm256_storeu_pd(out + 4, _mm256_add_pd(_mm256_mul_pd(_mm256_loadu_pd(out + 4), al), hi));
    }
  }
}

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
// Rows [r0, r0 + rows) of the block; w.rows and w.state already reset. d is a multiple of 8.
__attribute__((target("avx2,fma"))) void fused_exact_avx2(const QueryBlock& queries, const KeyShard& keys,
                                                          const PassParams& p, std::int64_t r0, std::int64_t rows,
                                                          SeedMode seed_mode, Scratch& w, SeedPlan& seed) {
  const std::int64_t d = p.d;
  const std::size_t frow = flash_row_size(static_cast<std::size_t>(d));
  const std::int64_t blocks = pack_query_blocks(queries, r0, rows, d, w);
  // p.tile caps it (tests use small tiles to put tile edges everywhere).
  const std::int64_t TK =
      std::min(std::max<std::int64_t>(kNr, (kExactTileBytes / static_cast<std::int64_t>(sizeof(float)) / d) / kNr * kNr),
               std::max<std::int64_t>(1, p.tile));
  // Row stride of the score buffer: whole panels, plus 8 floats off the 4 KiB aliasing.
  const std::int64_t ld = (TK + kNr - 1) / kNr * kNr + 8;
  w.kpack.resize(static_cast<std::size_t>(((std::min(TK, keys.count) + kNr - 1) / kNr) * kNr * d));
  w.scores.resize(static_cast<std::size_t>(kMr * ld));
  w.vpack.resize(static_cast<std::size_t>(TK * d + 8));
  float* const vp = align32(w.vpack.data());
  float* const S = w.scores.data();
  // Seeded cuts as in the top-k pass when tiles hold whole 16-key panels of the shard (the
  // sample is made of those); the sampled panels are scored here like the others, but their
  // keys, admitted already, are not admitted again.
  seed = TK % kNr == 0 ? seed_cuts_avx2(queries, keys, p, r0, rows, seed_mode, w) : SeedPlan{};
  const float no_cut[kMr] = {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity(),
                             std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity(),
                             std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity()};
  const float scale = static_cast<float>(p.scale);
  float cut[kMr];
  int lim[kMr];
  unsigned mask[kMr];
  std::int64_t limit[kMr];
  double alpha[kMr];
  double* o[kMr];
  for (std::int64_t t0 = 0; t0 < keys.count; t0 += TK) {
    const std::int64_t tc = std::min(TK, keys.count - t0);
    const std::int64_t g0 = keys.begin + t0;
    if (p.causal && g0 > queries.positions[r0 + rows - 1] && g0 > queries.positions[r0]) {
      // Cheap skip when both ends of the block are before the tile (positions rise in a block
      // as a rule); the exact test is per row below.
      bool any = false;
      for (std::int64_t i = 0; i < rows && !any; ++i) any = queries.positions[r0 + i] >= g0;
      if (!any) continue;
    }
    pack_keys_avx2(keys.k + t0 * d, tc, d, w.kpack.data());
    // Values in strips of 16 columns (8 for the last when d mod 16 = 8), each strip's keys
    // consecutive: pv_strip then reads whole cache lines in order.
    for (std::int64_t j = 0; j < tc; ++j) {
      const float* src = keys.v + (t0 + j) * d;
      std::int64_t c0 = 0;
      for (; c0 + 16 <= d; c0 += 16) {
        _mm256_store_ps(vp + c0 * TK + j * 16, _mm256_loadu_ps(src + c0));
        _mm256_store_ps(vp + c0 * TK + j * 16 + 8, _mm256_loadu_ps(src + c0 + 8));
      }
      if (c0 < d) _mm256_store_ps(vp + c0 * TK + j * 8, _mm256_loadu_ps(src + c0));
    }
    // The next tile's keys and values, a share per row block.
    const std::int64_t next_bytes =
        std::min(TK, std::max<std::int64_t>(0, keys.count - t0 - TK)) * d * static_cast<std::int64_t>(sizeof(float));
    for (std::int64_t b = 0; b < blocks; ++b) {
      prefetch_share(keys.k + std::min(t0 + TK, keys.count) * d, next_bytes, b, blocks);
      prefetch_share(keys.v + std::min(t0 + TK, keys.count) * d, next_bytes, b, blocks);
      const std::int64_t i0 = b * kMr;
      const std::int64_t nr = std::min(kMr, rows - i0);
      std::int64_t seen = 0;  // keys of the tile that some row of the block sees
      for (std::int64_t r = 0; r < kMr; ++r) {
        limit[r] = r >= nr ? 0
                   : p.causal ? std::clamp<std::int64_t>(queries.positions[r0 + i0 + r] - g0 + 1, 0, tc)
                              : tc;
        seen = std::max(seen, limit[r]);
        cut[r] = r < nr ? w.rows[static_cast<std::size_t>(i0 + r)].cut() : 0.0f;
      }
      if (seen == 0) continue;
      // 1. Scores, and the selection.
      SampleCursor sample(seed, t0);
      for (std::int64_t j0 = 0; j0 < seen; j0 += kNr) {
        for (std::int64_t r = 0; r < kMr; ++r) lim[r] = static_cast<int>(std::clamp<std::int64_t>(limit[r] - j0, 0, kNr));
        block_6x16<true>(w.qpack.data() + b * kMr * d, w.kpack.data() + j0 * d, d, scale,
                         sample.skip(t0 + j0, kNr) != 0 ? no_cut : cut, lim,
                         S + j0, mask, ld);
        admit_block(mask, nr, i0, S + j0, ld, static_cast<std::uint32_t>(t0 + j0), queries, keys, p, r0, w, cut);
      }
      // 2. Running max, exponentials and their sums; P is 0 past each row's limit.
      for (std::int64_t r = 0; r < kMr; ++r) {
        float* s = S + r * ld;
        alpha[r] = 1.0;
        o[r] = r < nr ? w.state.data() + (i0 + r) * static_cast<std::int64_t>(frow) + kFlashHeader : nullptr;
        if (limit[r] > 0) {
          double* st = w.state.data() + (i0 + r) * static_cast<std::int64_t>(frow);
          const double m_new = std::max(st[0], static_cast<double>(row_max_avx2(s, limit[r])));
          // 0 when the row was empty; exp(0) = 1 exactly, so the call is skipped then.
          alpha[r] = m_new == st[0] ? 1.0 : std::exp(st[0] - m_new);
          double sum, sum2;
          exp_row_avx2<true>(s, limit[r], static_cast<float>(m_new), sum, sum2);
          st[0] = m_new;
          st[1] = st[1] * alpha[r] + sum;
          st[2] = st[2] * alpha[r] * alpha[r] + sum2;
        }
        std::fill(s + limit[r], s + seen, 0.0f);
      }
      // 3. O = P·V over the seen keys, folded into the states.
      std::int64_t c0 = 0;
      for (; c0 + 16 <= d; c0 += 16) {
        pv_strip<2>(S, ld, vp + c0 * TK, seen, nr, alpha, o);
        for (std::int64_t r = 0; r < nr; ++r) o[r] += 16;
      }
      if (c0 < d) pv_strip<1>(S, ld, vp + c0 * TK, seen, nr, alpha, o);
    }
  }
}
#pragma GCC pop_options

void scan_rows_generic(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, std::int64_t r0,
                       std::int64_t r1, double k_norm_max, SeedMode seed, Scratch& w, LocalOutput out);
__attribute__((target("avx2,fma"))) void scan_rows_avx2(const QueryBlock& queries, const KeyShard& keys,
                                                        const PassParams& p, std::int64_t r0, std::int64_t r1,
                                                        double k_norm_max, SeedMode seed, Scratch& w,
                                                        LocalOutput out);

// Scans the shard for rows [r0, r1) of the block. k_norm_max: the largest key norm of the shard.
template <bool kAvx2>
[[gnu::always_inline]] inline void scan_rows_impl(const QueryBlock& queries, const KeyShard& keys,
                                                  const PassParams& p, std::int64_t r0, std::int64_t r1,
                                                  double k_norm_max, SeedMode seed_mode, Scratch& w,
                                                  LocalOutput out) {
  const std::int64_t d = p.d;
  const std::int64_t rows = r1 - r0;
  const std::int64_t L = p.list_length;
  const std::size_t frow = flash_row_size(static_cast<std::size_t>(d));
  // Tile: up to p.tile keys, fewer when rows × keys would not stay in L2; then the rows are
  // split into sub-blocks that do.
  const std::int64_t budget = kTileBytes / static_cast<std::int64_t>(sizeof(float));
  std::int64_t T = std::max<std::int64_t>(1, std::min(p.tile, keys.count));
  T = std::min(T, std::max(kMinTileKeys, budget / std::max<std::int64_t>(rows, 1)));
  const std::int64_t RB = std::clamp<std::int64_t>(budget / T, 1, std::max<std::int64_t>(rows, 1));

  w.scores.resize(static_cast<std::size_t>(RB * T));
  w.pv.resize(p.exact ? static_cast<std::size_t>(RB * d) : 0);
  w.alpha.resize(p.exact ? static_cast<std::size_t>(RB) : 0);
  if (w.rows.size() < static_cast<std::size_t>(rows)) w.rows.resize(static_cast<std::size_t>(rows));
  w.state.resize(p.exact ? static_cast<std::size_t>(rows) * frow : 0);
  w.q_norm.resize(static_cast<std::size_t>(rows));
  for (std::int64_t i = 0; i < rows; ++i) {
    const float* qi = queries.q + (r0 + i) * d;
    double s2 = 0;
    for (std::int64_t c = 0; c < d; ++c) s2 += double(qi[c]) * double(qi[c]);
    const double qn = std::sqrt(s2);
    w.q_norm[static_cast<std::size_t>(i)] = qn;
    // One margin for the whole row: every score's magnitude is at most scale·|q|·max|k|.
    const double bound = p.scale * qn * k_norm_max;
    w.rows[static_cast<std::size_t>(i)].reset(static_cast<std::size_t>(L),
                                              2 * score_margin(qn, k_norm_max, d, p.scale, 2 * bound));
    if (p.exact) flash_clear({w.state.data() + i * frow, frow});
  }

  SeedPlan seed;
  if constexpr (kAvx2) {
    if (!p.exact) {
      fused_topk_avx2(queries, keys, p, r0, rows, seed_mode, w, seed);
      goto lists;
    }
    if (d % 8 == 0) {
      fused_exact_avx2(queries, keys, p, r0, rows, seed_mode, w, seed);
      goto lists;
    }
  }
  for (std::int64_t t0 = 0; t0 < keys.count; t0 += T) {
    const std::int64_t tc = std::min(T, keys.count - t0);
    const std::int64_t g0 = keys.begin + t0;  // global index of the tile's first key
    for (std::int64_t b0 = 0; b0 < rows; b0 += RB) {
      const std::int64_t rb = std::min(RB, rows - b0);
      std::int64_t max_pos = std::numeric_limits<std::int64_t>::min();
      for (std::int64_t i = r0 + b0; i < r0 + b0 + rb; ++i) max_pos = std::max(max_pos, queries.positions[i]);
      if (p.causal && g0 > max_pos) continue;  // the tile is masked for every row of the sub-block
      float* tile = w.scores.data();
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rb), static_cast<int>(tc),
                  static_cast<int>(d), static_cast<float>(p.scale), queries.q + (r0 + b0) * d, static_cast<int>(d),
                  keys.k + t0 * d, static_cast<int>(d), 0.0f, tile, static_cast<int>(tc));

      bool any_visible = false;
      for (std::int64_t ib = 0; ib < rb; ++ib) {
        const std::int64_t i = b0 + ib;  // row within this thread's rows
        float* s = tile + ib * tc;
        std::int64_t limit = tc;
        if (p.causal) limit = std::clamp<std::int64_t>(queries.positions[r0 + i] - g0 + 1, 0, tc);
        const float* qi = queries.q + (r0 + i) * d;
        auto rescore = [&](std::uint32_t key) { return canonical_score(qi, keys.k + key * d, d, p.scale); };
        filter_row<kAvx2>(s, limit, static_cast<std::uint32_t>(t0), w.rows[static_cast<std::size_t>(i)], rescore);
        if (!p.exact) continue;

        double* st = w.state.data() + i * frow;
        w.alpha[static_cast<std::size_t>(ib)] = 1.0;
        if (limit == 0) {
          std::fill(s, s + tc, 0.0f);  // no weight from this tile
          continue;
        }
        any_visible = true;
        const float tile_max = kAvx2 ? row_max_avx2(s, limit) : row_max_sse2(s, limit);
        const double m_new = std::max(st[0], static_cast<double>(tile_max));
        // 0 when the row was empty; exp(0) = 1 exactly, so the call is skipped then.
        const double alpha = m_new == st[0] ? 1.0 : std::exp(st[0] - m_new);
        double sum, sum2;
        if constexpr (kAvx2) {
          exp_row_avx2(s, limit, static_cast<float>(m_new), sum, sum2);
        } else {
          exp_row_sse2(s, limit, static_cast<float>(m_new), sum, sum2);
        }
        std::fill(s + limit, s + tc, 0.0f);
        st[0] = m_new;
        st[1] = st[1] * alpha + sum;
        st[2] = st[2] * alpha * alpha + sum2;
        w.alpha[static_cast<std::size_t>(ib)] = alpha;  // o ← o·alpha + P·V below
      }
      if (p.exact && any_visible) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rb), static_cast<int>(d),
                    static_cast<int>(tc), 1.0f, tile, static_cast<int>(tc), keys.v + t0 * d, static_cast<int>(d), 0.0f,
                    w.pv.data(), static_cast<int>(d));
        for (std::int64_t ib = 0; ib < rb; ++ib) {
          double* o = w.state.data() + (b0 + ib) * frow + kFlashHeader;
          const float* x = w.pv.data() + ib * d;
          const double alpha = w.alpha[static_cast<std::size_t>(ib)];
          for (std::int64_t c = 0; c < d; ++c) o[c] = o[c] * alpha + x[c];
        }
      }
    }
  }

lists: __attribute__((unused));
  // Canonical re-scoring of the survivors, then the list of each row. The survivors of all rows
  // are re-scored key block by key block, so that each key row is read from memory once and
  // stays in cache for every query row that needs it (a row-by-row re-scoring reads L random
  // key rows per query row from DRAM). Rows go in groups that bound the scratch memory.
  constexpr std::int64_t kKeyBlockShift = 8;  // 256 keys per bucket
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
    // Counting sort of (row, slot) by key bucket.
    w.bucket_start.assign(buckets + 1, 0);
    for (std::int64_t i = g_begin; i < g_end; ++i) {
      GemmFilterRow& row = w.rows[static_cast<std::size_t>(i)];
      for (std::size_t h = 0; h < row.size(); ++h) ++w.bucket_start[(row.hits()[h].key >> kKeyBlockShift) + 1];
    }
    for (std::size_t b = 0; b < buckets; ++b) w.bucket_start[b + 1] += w.bucket_start[b];
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
      GemmFilterRow& row = w.rows[static_cast<std::size_t>(i)];
      const std::size_t base = w.offset[static_cast<std::size_t>(i - g_begin)];
      std::span<Candidate> list =
          out.lists.subspan(static_cast<std::size_t>((r0 + i) * L), static_cast<std::size_t>(L));
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
      if (!seed_held(row, list, kept)) unseeded.push_back(i);
    }
    g_begin = g_end;
  }
  // Rows whose seed was too high: scanned again, alone and unseeded (their list is replaced).
  if (!unseeded.empty()) {
    Scratch again;
    for (const std::int64_t i : unseeded) {
      if constexpr (kAvx2) {
        scan_rows_avx2(queries, keys, p, r0 + i, r0 + i + 1, k_norm_max, SeedMode::kOff, again, out);
      } else {
        scan_rows_generic(queries, keys, p, r0 + i, r0 + i + 1, k_norm_max, SeedMode::kOff, again, out);
      }
    }
  }
  if (p.exact) {
    std::copy(w.state.begin(), w.state.begin() + rows * static_cast<std::ptrdiff_t>(frow),
              out.flash.begin() + r0 * static_cast<std::ptrdiff_t>(frow));
  }
}

// The two compiled paths. No contraction of a·b + c into an FMA in the AVX2 one (the helpers
// above are inlined into it and compiled with its options): it rounds exactly like the
// portable path, canonical scores included.
void scan_rows_generic(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, std::int64_t r0,
                       std::int64_t r1, double k_norm_max, SeedMode seed, Scratch& w, LocalOutput out) {
  scan_rows_impl<false>(queries, keys, p, r0, r1, k_norm_max, seed, w, out);
}
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
__attribute__((target("avx2,fma"))) void scan_rows_avx2(
    const QueryBlock& queries, const KeyShard& keys, const PassParams& p, std::int64_t r0, std::int64_t r1,
    double k_norm_max, SeedMode seed, Scratch& w, LocalOutput out) {
  scan_rows_impl<true>(queries, keys, p, r0, r1, k_norm_max, seed, w, out);
}
#pragma GCC pop_options

bool use_avx2() {
  static const bool avx2 = [] {
    const char* isa = std::getenv("NCSPARSE_CPU_ISA");
    if (isa != nullptr && std::strcmp(isa, "generic") == 0) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return avx2;
}

// Largest key norm of a shard (exact: a max of exactly computed norms, in any order).
double key_norm_max(const KeyShard& keys, std::int64_t d, int threads) {
  double best = 0;
#pragma omp parallel for num_threads(threads) reduction(max : best) schedule(static)
  for (std::int64_t j = 0; j < keys.count; ++j) {
    double s2 = 0;
    for (std::int64_t c = 0; c < d; ++c) s2 += double(keys.k[j * d + c]) * double(keys.k[j * d + c]);
    best = std::max(best, s2);
  }
  return std::sqrt(best);
}

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  void load_shard(const KeyShard& keys, const PassParams& p) override {
    loaded_ = keys;
    loaded_d_ = p.d;
    loaded_norm_ = key_norm_max(keys, p.d, std::max(1, p.threads));
  }
  void local_pass(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, LocalOutput out) override;
  DenseKernels* dense_kernels() override { return dense_.get(); }

 private:
  std::unique_ptr<DenseKernels> dense_ = make_cpu_dense_kernels();
  // The shard given to load_shard stays unchanged for the job: its norm is computed once.
  KeyShard loaded_{};
  std::int64_t loaded_d_ = -1;
  double loaded_norm_ = 0;
  std::vector<Scratch> scratch_;
};

void CpuBackend::local_pass(const QueryBlock& queries, const KeyShard& keys, const PassParams& p, LocalOutput out) {
  NCSPARSE_ASSERT(out.lists.size() == static_cast<std::size_t>(queries.rows * p.list_length));
  NCSPARSE_ASSERT(!p.exact || out.flash.size() == static_cast<std::size_t>(queries.rows) *
                                                      flash_row_size(static_cast<std::size_t>(p.d)));
  NCSPARSE_ASSERT(keys.count < (std::int64_t{1} << 32));  // keys are held as 32-bit shard offsets
  openblas_set_num_threads(1);
  const bool same = keys.k == loaded_.k && keys.count == loaded_.count && keys.begin == loaded_.begin &&
                    p.d == loaded_d_;
  const double k_norm_max = same ? loaded_norm_ : key_norm_max(keys, p.d, std::max(1, p.threads));
  const int threads = static_cast<int>(std::clamp<std::int64_t>(p.threads, 1, std::max<std::int64_t>(queries.rows, 1)));
  if (scratch_.size() < static_cast<std::size_t>(threads)) scratch_.resize(static_cast<std::size_t>(threads));
  const std::int64_t per = (queries.rows + threads - 1) / threads;
  const bool avx2 = use_avx2();
  const SeedMode seed = seed_mode();  // throws on a bad value, outside the parallel region
#pragma omp parallel for num_threads(threads) schedule(static, 1)
  for (int t = 0; t < threads; ++t) {
    const std::int64_t r0 = std::min(queries.rows, t * per);
    const std::int64_t r1 = std::min(queries.rows, r0 + per);
    if (r0 >= r1) continue;
    Scratch& w = scratch_[static_cast<std::size_t>(t)];
    if (avx2) {
      scan_rows_avx2(queries, keys, p, r0, r1, k_norm_max, seed, w, out);
    } else {
      scan_rows_generic(queries, keys, p, r0, r1, k_norm_max, seed, w, out);
    }
  }
}

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace ncsparse
