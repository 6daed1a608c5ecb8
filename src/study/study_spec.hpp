// Study files (docs/study.md): parsing and strict validation of the TOML, budget alignment of
// window strategies (DESIGN.md §5), expansion into configurations, and their hashes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ncsparse/engine.hpp"

namespace ncsparse::study {

// One input model of the grid ([[model]] tables).
struct ModelEntry {
  ModelParams params;  // seed and d are set per configuration
};

// One aligned strategy: its form as written ("log", "sqrt", "power:C"), the α chosen and the
// total k it realises over the study's lengths.
struct Alignment {
  std::string form;
  WindowSpec spec;  // with the chosen α
  double alpha = 0;
  std::int64_t total = 0;
};

struct StudySpec {
  std::string path;  // the file it was read from
  std::string name;
  std::vector<std::int64_t> n, d;
  std::vector<std::uint64_t> seeds;
  std::vector<ModelEntry> models;
  // The job's settings, with the job's own defaults (JobConfig).
  std::int64_t queries = JobConfig{}.queries;  // capped at n per configuration
  bool causal = JobConfig{}.causal;
  double scale = JobConfig{}.scale;
  bool exact = JobConfig{}.exact;
  std::int64_t max_k = JobConfig{}.max_k;
  std::vector<double> sparsity_eps = JobConfig{}.sparsity_eps;
  int threads = JobConfig{}.threads;
  std::int64_t block = JobConfig{}.block, tile = JobConfig{}.tile;
  // Budget alignment: the reference (a fixed window) and the aligned strategies.
  bool aligned = false;
  WindowSpec reference;
  std::int64_t reference_total = 0;
  std::vector<Alignment> alignments;
  // Every window of every configuration: reference, aligned ones, then `strategies`.
  std::vector<WindowSpec> windows;
};

// One point of the grid.
struct Configuration {
  std::int64_t index = 0;  // position in the study's order
  JobConfig job;
  std::string model_label;  // e.g. "paper(gaussian,B=3,R=288)" or "gaussian(sigma=1)"
  std::string canonical;    // every parameter that defines its results, one "key=value;" each
  std::string hash;         // 16 hex digits of the canonical text
};

// Parses and validates a study file. Errors: Error(kExitNoInput) for a missing file,
// usage Errors (64) "PATH:LINE: key: problem (fix)" for everything else.
StudySpec parse_study_file(const std::string& path);
// The same from text (path only names it in messages).
StudySpec parse_study_text(const std::string& text, const std::string& path);

// The grid in study order: model, d, n, seed (seed fastest).
std::vector<Configuration> expand(const StudySpec& spec);

// The study's identity: "key = value" lines of everything that defines its results (not
// threads, not the file's name or comments). study_hash hashes it.
std::string canonical_study(const StudySpec& spec);
std::string study_hash(const StudySpec& spec);
// Names what differs between two canonical texts: "n (was [..], now [..]); seeds (...)".
std::string describe_changes(const std::string& before, const std::string& after);

// FNV-1a, 64 bits, as 16 lowercase hex digits.
std::uint64_t fnv1a(const void* data, std::size_t size, std::uint64_t h = 0xcbf29ce484222325ULL);
std::string hex64(std::uint64_t h);

// Budget alignment. k(n) of a fixed window clamped to [1, n] as the engine applies it.
std::int64_t window_k(const WindowSpec& w, std::int64_t n);
std::int64_t total_k(const WindowSpec& w, const std::vector<std::int64_t>& lengths);
// Chooses α for `form` ("log", "sqrt", "power:C") so that total_k over `lengths` is as close
// as possible to `target` (ties: the total at or above it), with α in the middle of its
// plateau and written with as few digits as keep it there.
Alignment align_window(const std::string& form, const std::vector<std::int64_t>& lengths, std::int64_t target,
                       const std::string& where);

// A number as the canonical text writes it: the shortest form that reads back exactly.
std::string num_text(double x);

}  // namespace ncsparse::study
