// Errors a caller can act on. Each carries a sysexits code (DESIGN.md §9) and a one-line
// message that names the problem and the fix. Broken internal invariants are not errors of
// this kind: they abort (see NCSPARSE_ASSERT).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace ncsparse {

enum ExitCode : int {
  kExitOk = 0,
  kExitUsage = 64,        // bad command line or study file
  kExitData = 65,         // bad input data
  kExitNoInput = 66,      // missing input
  kExitUnavailable = 69,  // backend or device unavailable
  kExitInternal = 70,     // internal error
  kExitCantCreate = 73,   // cannot create output
  kExitIo = 74,           // I/O error
  kExitInterrupted = 75,  // interrupted, resumable
};

class Error : public std::runtime_error {
 public:
  Error(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

// A usage error: bad flag value or spec. The message names the flag and what is accepted.
inline Error usage_error(const std::string& message) { return Error(kExitUsage, message); }

}  // namespace ncsparse

#define NCSPARSE_ASSERT(cond)                                                                                      \
  do {                                                                                                             \
    if (!(cond)) {                                                                                                 \
      std::fprintf(stderr, "ncsparse: internal error: %s:%d: assertion '%s' failed\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                                                \
    }                                                                                                              \
  } while (0)
