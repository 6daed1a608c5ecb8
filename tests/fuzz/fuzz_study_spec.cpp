// libFuzzer harness: study files (docs/study.md). The fuzzer's bytes are a study file's text;
// it goes through what `ncsparse study` does before any communication: parse_study_text,
// expand into configurations (when the grid is small enough to hold), the study's hash, and
// the engine's validation of every configuration. A bad file must end in ncsparse::Error
// (64 for the file itself, 65 for a bad configuration), never in a crash or a sanitizer report.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ncsparse/engine.hpp"
#include "ncsparse/error.hpp"
#include "study/study_spec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const ncsparse::study::StudySpec spec = ncsparse::study::parse_study_text(text, "fuzz.toml");
    (void)ncsparse::study::canonical_study(spec);
    (void)ncsparse::study::study_hash(spec);
    const double grid = static_cast<double>(spec.models.size()) * static_cast<double>(spec.d.size()) *
                        static_cast<double>(spec.n.size()) * static_cast<double>(spec.seeds.size());
    if (grid <= 4096) {
      for (const ncsparse::study::Configuration& c : ncsparse::study::expand(spec)) {
        ncsparse::validate(c.job, 1);
        ncsparse::validate(c.job, 3);
      }
    }
  } catch (const ncsparse::Error& e) {
    const int code = e.code();
    if (code != ncsparse::kExitUsage && code != ncsparse::kExitData && code != ncsparse::kExitCantCreate) {
      std::fprintf(stderr, "fuzz_study_spec: unexpected exit code %d: %s\n", code, e.what());
      std::abort();
    }
  }
  return 0;
}
