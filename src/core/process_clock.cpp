#include "core/process_clock.hpp"

#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace ncsparse {
namespace {

double boot_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// The process's start in seconds since boot: field 22 of /proc/self/stat. The command name
// (field 2) may hold spaces and parentheses, so fields are counted from the last ')'.
double start_seconds() {
  std::FILE* f = std::fopen("/proc/self/stat", "r");
  if (f == nullptr) return boot_seconds();
  char buf[2048] = {};
  const std::size_t got = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[got] = '\0';
  const char* p = std::strrchr(buf, ')');
  const long tick = sysconf(_SC_CLK_TCK);
  if (p == nullptr || tick <= 0) return boot_seconds();
  unsigned long long start = 0;
  // After ')': field 3 (state) .. field 22 (starttime): skip 19 fields.
  if (std::sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
                  &start) != 1) {
    return boot_seconds();
  }
  return static_cast<double>(start) / static_cast<double>(tick);
}

const double kStart = start_seconds();

}  // namespace

double process_seconds() {
  const double s = boot_seconds() - kStart;
  return s > 0 ? s : 0;
}

}  // namespace ncsparse
