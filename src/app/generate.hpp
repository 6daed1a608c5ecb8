// ncsparse generate as an application: the generator's Q, K, V written to an HDF5 file by
// every rank, its own rows, through io (OutputFile). Layout: docs/files.md.
#pragma once

#include <cstdint>
#include <string>

#include "io/dtype.hpp"
#include "ncsparse/comm.hpp"
#include "ncsparse/generator.hpp"

namespace ncsparse::app {

// The seed of head h: seed + h·0x9E3779B97F4A7C15 (mod 2^64); head 0 uses the seed itself,
// so a one-head file holds exactly the inputs `ncsparse run` generates with that seed.
std::uint64_t head_seed(std::uint64_t seed, std::int64_t head);

struct GenerateConfig {
  std::int64_t n = 0;
  ModelParams model;       // model.d is d
  std::int64_t heads = 0;  // 0: datasets of shape (n, d); H >= 1: (H, n, d)
  io::Dtype dtype = io::Dtype::Float32;
  std::string out;
  bool force = false;
};
// Checks the config (usage Errors naming the flag); identical on every rank.
void validate(const GenerateConfig& config);
// Writes /Q, /K, /V: each rank its own rows [lo, hi), collectively.
void generate_file(const Comm& comm, const GenerateConfig& config);

}  // namespace ncsparse::app
