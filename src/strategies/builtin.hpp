// The built-in strategies: each file of this folder defines one registry entry.
#pragma once

#include <vector>

#include "ncsparse/strategy.hpp"

namespace ncsparse {

// The registry's entries, in the order --help lists them. Adding a strategy: its file here
// defines `StrategyKind NAME_strategy()`, and its name joins this list.
#define NCSPARSE_BUILTIN_STRATEGIES(X) \
  X(const) X(log) X(power) X(sqrt) X(eps) X(mass) X(cert) X(sink) X(taylor) X(features)

#define NCSPARSE_DECLARE_STRATEGY(name) StrategyKind name##_strategy();
NCSPARSE_BUILTIN_STRATEGIES(NCSPARSE_DECLARE_STRATEGY)
#undef NCSPARSE_DECLARE_STRATEGY

std::vector<StrategyKind> builtin_strategies();

}  // namespace ncsparse
