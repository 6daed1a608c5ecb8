#include "ncsparse/window.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "ncsparse/error.hpp"
#include "ncsparse/features.hpp"

namespace ncsparse {
namespace {

const char* kForms =
    "const:K, log:A, power:A,C, sqrt:A, eps:E, mass:D, cert:D, sink:S,W, taylor:Q or features:E,KIND";

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t pos = s.find(sep, start);
    parts.push_back(s.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  return parts;
}

double parse_number(const std::string& text, const std::string& flag, const std::string& spec, const char* what) {
  double value = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(first, last, value);
  if (text.empty() || ec != std::errc() || ptr != last || !std::isfinite(value)) {
    throw usage_error(flag + ": '" + spec + "': " + what + " '" + text + "' is not a number (forms: " + kForms + ")");
  }
  return value;
}

}  // namespace

bool WindowSpec::fixed() const {
  return kind == WindowKind::Const || kind == WindowKind::Log || kind == WindowKind::Power || kind == WindowKind::Sqrt;
}

WindowSpec parse_window(const std::string& spec, const std::string& flag) {
  const std::size_t colon = spec.find(':');
  if (colon == std::string::npos) {
    throw usage_error(flag + ": '" + spec + "' is not a window strategy (use one of " + kForms + ")");
  }
  const std::string name = spec.substr(0, colon);
  const std::vector<std::string> args = split(spec.substr(colon + 1), ',');
  auto need_args = [&](std::size_t count, const char* form) {
    if (args.size() != count) {
      throw usage_error(flag + ": '" + spec + "' takes " + std::to_string(count) + (count == 1 ? " value" : " values") +
                        " (write it as " + form + ")");
    }
  };
  auto fail = [&](const std::string& why) { throw usage_error(flag + ": '" + spec + "': " + why); };

  WindowSpec w;
  if (name == "const") {
    need_args(1, "const:K");
    w.kind = WindowKind::Const;
    w.a = parse_number(args[0], flag, spec, "K");
    if (w.a < 1 || w.a != std::floor(w.a)) fail("K must be a whole number >= 1");
  } else if (name == "log" || name == "sqrt") {
    need_args(1, name == "log" ? "log:A" : "sqrt:A");
    w.kind = name == "log" ? WindowKind::Log : WindowKind::Sqrt;
    w.a = parse_number(args[0], flag, spec, "alpha");
    if (w.a <= 0) fail("alpha must be > 0");
  } else if (name == "power") {
    need_args(2, "power:A,C");
    w.kind = WindowKind::Power;
    w.a = parse_number(args[0], flag, spec, "alpha");
    w.b = parse_number(args[1], flag, spec, "C");
    if (w.a <= 0) fail("alpha must be > 0");
    if (!(w.b > 0 && w.b <= 1)) fail("C must lie in (0, 1]");
  } else if (name == "eps" || name == "mass" || name == "cert") {
    need_args(1, name == "eps" ? "eps:E" : (name == "mass" ? "mass:D" : "cert:D"));
    w.kind = name == "eps" ? WindowKind::Eps : (name == "mass" ? WindowKind::Mass : WindowKind::Cert);
    w.a = parse_number(args[0], flag, spec, name == "eps" ? "epsilon" : "delta");
    if (!(w.a > 0 && w.a < 1)) fail((name == "eps" ? "epsilon" : "delta") + std::string(" must lie in (0, 1)"));
  } else if (name == "sink") {
    need_args(2, "sink:S,W");
    w.kind = WindowKind::Sink;
    w.a = parse_number(args[0], flag, spec, "S");
    w.b = parse_number(args[1], flag, spec, "W");
    if (w.a < 0 || w.a != std::floor(w.a)) fail("S (sink tokens) must be a whole number >= 0");
    if (w.b < 1 || w.b != std::floor(w.b)) fail("W (recent window) must be a whole number >= 1");
  } else if (name == "taylor") {
    need_args(1, "taylor:Q");
    w.kind = WindowKind::Taylor;
    w.a = parse_number(args[0], flag, spec, "Q");
    if (w.a < 2 || w.a > 64 || w.a != std::floor(w.a) || std::fmod(w.a, 2.0) != 0) {
      fail("the degree Q must be an even whole number in [2, 64] (an even truncated series of exp stays positive)");
    }
  } else if (name == "features") {
    need_args(2, "features:E,KIND");
    w.kind = WindowKind::Features;
    w.a = parse_number(args[0], flag, spec, "E");
    if (w.a < 1 || w.a != std::floor(w.a)) fail("E (the reduced feature dimension) must be a whole number >= 1");
    w.b = static_cast<double>(parse_projection_kind(args[1], flag + ": '" + spec + "'"));
  } else {
    throw usage_error(flag + ": unknown window strategy '" + name + "' in '" + spec + "' (use one of " + kForms + ")");
  }
  w.text = spec;
  return w;
}

double fixed_window_target(const WindowSpec& w, std::int64_t n) {
  const double nn = static_cast<double>(std::max<std::int64_t>(n, 1));
  switch (w.kind) {
    case WindowKind::Const:
      return w.a;
    case WindowKind::Log:
      return std::ceil(w.a * std::log(nn));
    case WindowKind::Power:
      return std::ceil(w.a * std::pow(nn, w.b));
    case WindowKind::Sqrt:
      return std::ceil(w.a * std::sqrt(nn));
    case WindowKind::Sink:
      return w.a + w.b;
    default:
      NCSPARSE_ASSERT(!"not a fixed window");
  }
  return 0;
}

std::int64_t list_length(std::span<const WindowSpec> windows, std::int64_t n, std::int64_t max_k) {
  double k = 1;
  for (const WindowSpec& w : windows) {
    switch (w.kind) {
      case WindowKind::Eps:
        k = std::max(k, std::min<double>(std::floor(1.0 / w.a), static_cast<double>(max_k)));
        break;
      case WindowKind::Mass:
      case WindowKind::Cert:
        k = std::max(k, static_cast<double>(max_k));
        break;
      case WindowKind::Taylor:
      case WindowKind::Features:
        break;
      default:
        // The largest fixed window over rows is the one of the row that sees all n keys.
        k = std::max(k, fixed_window_target(w, n));
    }
  }
  return static_cast<std::int64_t>(std::min(k, static_cast<double>(n))) + 1;
}

void certificate_mass_bounds(std::span<const Candidate> list, std::int64_t n, std::span<double> bound) {
  const std::size_t count = list.size();
  NCSPARSE_ASSERT(bound.size() >= count);
  if (count == 0) return;
  const double top = list[0].score;
  // Keys not in the list score at most the last listed score.
  const double unseen = static_cast<double>(n - static_cast<std::int64_t>(count)) *
                        std::exp(static_cast<double>(list[count - 1].score) - top);
  // tail[k] = Σ_{j>k} e^{s_j − top} over listed entries, built from the back.
  double tail = 0;
  std::vector<double> kept(count);
  double sum = 0;
  for (std::size_t j = 0; j < count; ++j) {
    sum += std::exp(static_cast<double>(list[j].score) - top);
    kept[j] = sum;
  }
  for (std::size_t k = count; k-- > 0;) {
    const double upper = tail + unseen;
    bound[k] = upper / (kept[k] + upper);
    tail += std::exp(static_cast<double>(list[k].score) - top);
  }
}

WindowChoice choose_window(const WindowSpec& w, std::span<const Candidate> list, std::int64_t list_capacity,
                           std::int64_t n_visible, const RowNormaliser* exact) {
  const std::int64_t max_window = std::min(list_capacity - 1, n_visible);
  const std::int64_t available = std::min<std::int64_t>(n_visible, static_cast<std::int64_t>(list.size()));
  WindowChoice c;
  auto clamp = [&](double target) {
    std::int64_t k = target >= 9.0e18 ? INT64_MAX : static_cast<std::int64_t>(target);
    const std::int64_t hi = std::max<std::int64_t>(1, std::min(max_window, available));
    if (k < 1 || k > hi) {
      c.clamped = true;
      k = std::clamp<std::int64_t>(k, 1, hi);
    }
    c.k = k;
  };
  switch (w.kind) {
    case WindowKind::Const:
    case WindowKind::Log:
    case WindowKind::Power:
    case WindowKind::Sqrt:
      clamp(fixed_window_target(w, n_visible));
      break;
    case WindowKind::Eps: {
      NCSPARSE_ASSERT(exact != nullptr);
      // p_j >= ε  ⇔  s_j >= m + ln(ε·l)
      const double cut = exact->m + std::log(w.a * exact->l);
      std::int64_t k = 0;
      while (k < available && static_cast<double>(list[k].score) >= cut) ++k;
      clamp(static_cast<double>(k));
      break;
    }
    case WindowKind::Mass: {
      NCSPARSE_ASSERT(exact != nullptr);
      double mass = 0;
      std::int64_t k = 0;
      const double goal = 1.0 - w.a;
      while (k < available && mass < goal) {
        mass += std::exp(static_cast<double>(list[k].score) - exact->m) / exact->l;
        ++k;
      }
      if (mass < goal) k = INT64_MAX;  // not reached within the list: clamp and flag
      clamp(static_cast<double>(k));
      break;
    }
    case WindowKind::Cert: {
      std::vector<double> bound(list.size());
      certificate_mass_bounds(list, n_visible, bound);
      std::int64_t k = INT64_MAX;
      for (std::int64_t j = 0; j < available; ++j) {
        if (bound[j] <= w.a) {
          k = j + 1;
          break;
        }
      }
      clamp(static_cast<double>(k));
      break;
    }
    case WindowKind::Sink:
      c.k = std::min<std::int64_t>(static_cast<std::int64_t>(w.a + w.b), n_visible);
      c.clamped = c.k < static_cast<std::int64_t>(w.a + w.b);
      break;
    case WindowKind::Taylor:
    case WindowKind::Features:
      c.k = n_visible;  // every visible key contributes
      break;
  }
  return c;
}

}  // namespace ncsparse
