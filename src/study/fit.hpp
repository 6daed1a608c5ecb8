// `ncsparse fit`: the sparsity exponent C of a study's results (PAPERS.md §2). For each input
// regime (model, d, causal, scale) it fits ln y = ln a + C·ln n by least squares over the
// configurations (one point per n and seed), where y is an effective support of the rows:
// the mean count of entries above ε, or the mean window of `mass:δ` (smallest k with kept
// mass ≥ 1 − δ) or `cert:δ`; it gives C with a Student-t confidence interval and turns the
// mass fit into a recommended window `power:α,C` for a target attention error.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

namespace ncsparse::study {

struct FitPoint {
  double n = 0;  // keys
  double y = 0;  // effective support (> 0 to enter the fit)
};

struct PowerLawFit {
  bool ok = false;
  std::string why;            // when !ok: what was missing
  std::int64_t points = 0;    // points used (y > 0)
  std::int64_t skipped = 0;   // points with y <= 0 (or not finite), left out
  double c = std::numeric_limits<double>::quiet_NaN();      // the exponent C
  double log_a = std::numeric_limits<double>::quiet_NaN();  // ln a
  double se_c = std::numeric_limits<double>::quiet_NaN();   // standard error of C
  double c_lo = std::numeric_limits<double>::quiet_NaN(), c_hi = std::numeric_limits<double>::quiet_NaN();
  double r2 = std::numeric_limits<double>::quiet_NaN();
  double n_min = 0, n_max = 0;
  double confidence = 0.95;
};

// Ordinary least squares of ln y on ln n; the interval is C ± t·se with t the
// (1 + confidence)/2 quantile of Student's t with points − 2 degrees of freedom. Needs at least
// three points with y > 0 at two or more distinct n (ok = false otherwise, `why` says so).
PowerLawFit fit_power_law(std::span<const FitPoint> points, double confidence = 0.95);

// Quantiles: the standard normal's and Student's t with `dof` degrees of freedom (dof > 0),
// for p in (0, 1).
double normal_quantile(double p);
double student_t_quantile(double p, double dof);

// The smallest α (rounded up to three significant digits) with α·n^C ≥ y at every point:
// the window power:α,C then covers every observed support.
double covering_alpha(std::span<const FitPoint> points, double c);

enum class FitFormat { Table, Markdown, Csv };
FitFormat parse_fit_format(const std::string& text);  // usage Error naming --format

struct FitOptions {
  double confidence = 0.95;
  double target_l1 = 0;      // > 0: recommend for this mean attention-row ℓ1 error only
  std::int64_t min_n = 0;    // fit only configurations with n >= min_n
  FitFormat format = FitFormat::Table;
};

// The fit report of a results file written by `ncsparse study`. Errors as `report`'s
// (66 missing, 65 not a study's results); usage Error for bad options.
std::string format_fit(const std::string& path, const FitOptions& options);

}  // namespace ncsparse::study
