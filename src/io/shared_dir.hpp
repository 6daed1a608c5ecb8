// Whether an output directory is the same file-system object on every rank (collective).
//
// Parallel HDF5 opens its file on every rank, and a study's records are written by rank 0 and
// read back by all: both need the output on a file system every rank shares. A node-local path
// (/tmp, a relative path under different working directories) would otherwise let each node
// make its own file, or leave one rank inside a collective open the others never enter.
#pragma once

#include <string>

#include "ncsparse/comm.hpp"

namespace ncsparse::io {

// Collective; does nothing on one rank. Rank 0 creates a probe file with a fresh random token
// in `dir` (".ncsparse-shared-TOKEN"); every rank opens it by name and reads the token
// back; the ranks agree on the outcome and rank 0 removes the probe. When any rank does not see
// it, every rank throws the same Error(kExitCantCreate): "rank R: TARGET: its directory DIR is
// not shared by all ranks ...", R the lowest such rank, one line naming the fix. When rank 0
// cannot create the probe (the directory is missing or not writable) nothing is checked: the
// caller's own checks of the output report that. `flag` names the option in messages.
void check_shared_directory(const Comm& comm, const std::string& dir, const std::string& target,
                            const std::string& flag = "--out");

}  // namespace ncsparse::io
