// Seconds since this process began, as /usr/bin/time counts them: from the kernel's start
// time of the process (/proc/self/stat, clock ticks since boot, 10 ms on Linux) against
// CLOCK_BOOTTIME, so the dynamic loader, MPI initialisation and argument parsing are included.
// Where /proc is not readable, from the first call (made during static initialisation).
#pragma once

namespace ncsparse {

double process_seconds();

}  // namespace ncsparse
