#include "strategies/builtin.hpp"

namespace ncsparse {

std::vector<StrategyKind> builtin_strategies() {
#define NCSPARSE_ENTRY(name) name##_strategy(),
  return {NCSPARSE_BUILTIN_STRATEGIES(NCSPARSE_ENTRY)};
#undef NCSPARSE_ENTRY
}

}  // namespace ncsparse
