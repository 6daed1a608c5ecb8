#include "plan/cost_model.hpp"

#include <algorithm>
#include <cmath>

#include "engine/job.hpp"
#include "ncsparse/comm.hpp"
#include "ncsparse/flash.hpp"
#include "ncsparse/window.hpp"

namespace ncsparse::plan {
namespace {

int ceil_log2(int p) {
  int l = 0;
  while ((1 << l) < p) ++l;
  return l;
}

// The window length a strategy keeps per row: fixed windows their clamped target, adaptive
// ones their bound (max_k): the plan cannot know the row's choice before the job.
double window_keys(const WindowSpec& w, std::int64_t n, std::int64_t max_k) {
  if (w->family() == Family::Approximator) return 0;
  const double target = fixed_window_target(w, n);
  if (!std::isnan(target)) return std::clamp(target, 1.0, static_cast<double>(n));
  return std::min(w->list_need(n, max_k), static_cast<double>(n));
}

}  // namespace

double collective_seconds(const CollectiveFit& fit, const CollectiveFit& fallback, int ranks, double bytes,
                          bool row_owner) {
  if (ranks <= 1) return 0;
  const CollectiveFit& f = fit.ranks > 1 ? fit : fallback;
  if (row_owner) {
    // At the fit's P the merge was a ring-like all-reduce (P = 2: two messages, the list's
    // bytes once) or the row owner itself: both move 2(P − 1)/P of the lists in 2(P − 1) steps.
    const double p = ranks, pf = f.ranks;
    return f.alpha * (p - 1) / (pf - 1) + f.beta * bytes * ((p - 1) / p) / ((pf - 1) / pf);
  }
  return f.seconds(bytes) * ceil_log2(ranks) / std::max(1, ceil_log2(f.ranks));
}

double selection_scale(double keys_per_entry) {
  return std::clamp(0.5 + std::log2(std::max(1.0, keys_per_entry)) / 6.0, 0.5, 1.0);
}

Prediction predict(const JobConfig& c, int P, const Profile& prof, const NodeShape& node, bool with_startup) {
  static const Profile fallback = default_profile();
  Prediction out;
  out.ranks = P;
  const double n = static_cast<double>(c.n), d = static_cast<double>(c.model.d);
  const double ns = std::ceil(n / P);  // the largest shard
  const double m = static_cast<double>(c.queries);
  const double b = static_cast<double>(std::min(c.block, c.queries));
  const double blocks = std::ceil(m / b);
  const double L = static_cast<double>(list_length(c.windows, c.n, c.max_k));
  const double T = std::max(1, c.threads);
  const int on_node = std::max(1, std::min(P, node.ranks_per_node));
  out.oversubscription = std::max(1.0, (on_node * T + node.background) / std::max(1, node.cores));
  const double over = out.oversubscription;
  // Ranks computing at once on a node slow each other (shared caches, memory, and whatever else
  // runs there): the profile's ratio at its rank count, interpolated from 1 on one rank.
  const double share =
      prof.ranks > 1 ? static_cast<double>(std::min(on_node, prof.ranks) - 1) / static_cast<double>(prof.ranks - 1) : 0;
  const double cc = 1 + (prof.contention_compute - 1) * share, cm = 1 + (prof.contention_memory - 1) * share;
  const double cg = 1 + (prof.contention_generate - 1) * share;

  // Inputs: K and V rows of the shard from the generator (per thread), the query rows of every
  // block (about half a key row each: one projection, not two), and the first touch of the
  // shard's fresh pages (the norms are taken from each chunk while it is in cache).
  const double gen_row = Profile::at_d(c.model.model == InputModel::Paper ? prof.gen_paper : prof.gen_gaussian, c.model.d);
  const double shard_bytes = 2 * ns * d * 4;
  out.inputs = over * (cg * (ns + 0.5 * m) * gen_row / T + cm * shard_bytes / prof.first_touch);

  // Local pass, per block: the score tiles (and the exact pass's exponentials and P·V) over the
  // row × key pairs the slowest rank sees (causal: rank 0 sees 1 − 1/(2P) of them), plus the
  // selection of each row's top-L (per list entry); never faster than reading the shard once.
  const double visible = c.causal ? 1 - 1 / (2.0 * P) : 1.0;
  const double per_pair = Profile::at_d(prof.score, c.model.d) + (c.exact ? Profile::at_d(prof.exact, c.model.d) : 0);
  // A rank's list holds at most its shard: min(L, n_s) entries to select and sort, each at
  // about half the cost when the list is the whole shard, rising to the calibrated σ (measured at
  // n_s ≥ 8L) by n_s = 8L (selection_scale; docs/scaling.md).
  const double compute =
      cc * (b * ns * visible * per_pair + b * prof.selection * std::min(L, ns) * selection_scale(ns / L)) / T;
  const double memory_floor = cm * ns * d * 4 * (c.exact ? 2 : 1) / prof.bandwidth;
  out.local_pass = over * blocks * std::max(compute, memory_floor);
  if (c.exact) out.exact = over * cc * blocks * b * ns * visible * Profile::at_d(prof.exact, c.model.d) / T;

  // Merge, per block: all-reduce top-k of b × L candidates and, with the exact pass, the
  // log-sum-exp all-reduce of b flash states.
  const double list_bytes = b * L * sizeof(Candidate);
  const double flash_bytes = b * static_cast<double>(flash_row_size(static_cast<std::size_t>(c.model.d))) * 8;
  const bool row_owner = choose_topk_merge(P, static_cast<std::size_t>(list_bytes)) == TopkMerge::kRowOwner;
  out.merge = over * blocks *
              (collective_seconds(prof.topk, fallback.topk, P, list_bytes, row_owner) +
               (c.exact ? collective_seconds(prof.flash, fallback.flash, P, flash_bytes) : 0));

  // Sparse softmax, per row: the weights exp(s_j − s_0) up to the largest window, the V rows
  // this rank owns (1/P of them) gathered into Σ p_j v_j — once up to the widest prefix window
  // (one running sum serves every prefix window), once per key-set window — and one
  // sum-reduction of the strategies' outputs (S × b × d doubles) per block.
  double widest = 0, widest_prefix = 0, gathered = 0, fetched_key_set = 0, prefix = 0;
  for (const WindowSpec& w : c.windows) {
    if (w->family() != Family::Prefix && w->family() != Family::KeySet) continue;
    const double k = window_keys(w, c.n, c.max_k);
    widest = std::max(widest, k);
    if (w->family() == Family::Prefix) widest_prefix = std::max(widest_prefix, k);
    if (w->family() == Family::KeySet) fetched_key_set += k;
    gathered += k;
    prefix += 1;
  }
  const double fetched = widest_prefix + fetched_key_set;
  const double sum_bytes = prefix * b * d * 8;
  out.sparse = over * cc * m * (widest * prof.exp_seconds + fetched / P * d * prof.gather_seconds) / T +
               blocks * collective_seconds(prof.flash, fallback.flash, P, sum_bytes);

  // Statistics, per row: the certificate's walk over the list, and per strategy a walk over its
  // window (kept mass and errors).
  out.stats = over * cc * m * (L * prof.stats_seconds + gathered * prof.exp_seconds) / T;

  // Other: what every job costs beyond its work (the profile's tiny job), on a shared node too.
  out.other = over * prof.job_seconds;
  out.startup = with_startup ? prof.startup : 0;
  out.total = out.startup + out.inputs + out.local_pass + out.merge + out.sparse + out.stats + out.other;

  out.memory = engine::memory_per_rank(c, P);
  out.memory_limit = node.memory_per_rank > 0 ? node.memory_per_rank : node.memory_per_node / on_node;
  out.fits = out.memory <= 0.9 * out.memory_limit;
  return out;
}

}  // namespace ncsparse::plan
