#include "app/attend.hpp"

#include <memory>
#include <set>

#include "core/stop_signals.hpp"
#include "io/h5_output.hpp"

namespace ncsparse::app {

std::vector<JobResult> attend_file(const Comm& comm, const AttendConfig& c,
                                   const std::function<void(std::int64_t, const JobResult&)>& on_head) {
  // Usage checks first: identical on every rank, no communication.
  std::set<std::string> seen;
  for (const WindowSpec& w : c.job.windows) {
    if (w.needs_exact() && !c.job.exact) {
      throw usage_error("--window " + w.text + ": needs the exact pass (add --exact)");
    }
    if (!seen.insert(w.text).second) throw usage_error("--window " + w.text + ": given twice (give each strategy once)");
  }
  if (c.out.empty()) throw usage_error("--out: give the output file");
  if (c.input.empty()) throw usage_error("--input: give the input file");

  std::unique_ptr<io::H5Input> in;
  collective(comm, [&] { in = std::make_unique<io::H5Input>(comm, c.input, c.names); });
  const std::int64_t Hq = in->q_heads(), Hkv = in->kv_heads();
  if (c.heads_kv > 0 && c.heads_kv != Hkv) {
    throw usage_error("--heads-kv " + std::to_string(c.heads_kv) + ": " + c.input + " has " + std::to_string(Hkv) +
                      " key/value heads (drop --heads-kv or give " + std::to_string(Hkv) + ")");
  }
  if (c.only_head >= Hq) {
    throw usage_error("--head " + std::to_string(c.only_head) + ": " + c.input + " has " + std::to_string(Hq) +
                      " query heads (use 0.." + std::to_string(Hq - 1) + ")");
  }
  JobConfig job = c.job;
  job.n = in->n();
  job.query_rows = in->query_rows();
  job.queries = c.queries > 0 ? c.queries : in->query_rows();
  job.model.d = in->d();
  validate(job, comm.size());  // usage errors before any output exists

  io::AttendOutputSpec spec;
  spec.input = c.input;
  spec.names = c.names;
  spec.out = c.out;
  spec.force = c.force;
  spec.headed = in->has_heads();
  spec.q_heads = Hq;
  spec.kv_heads = Hkv;
  for (std::int64_t h = 0; h < Hq; ++h) {
    if (c.only_head < 0 || h == c.only_head) spec.heads.push_back(h);
  }
  spec.save_lists = c.save_lists;
  spec.save_cert = c.save_cert;

  std::vector<JobResult> results;
  const StopPolling stop;  // SIGINT/SIGTERM end the job at the next block, without an output
  const std::int64_t group = Hq / Hkv;
  JobWorkspace workspace;  // one shard buffer for every head
  io::write_attend_output(comm, spec, job, [&](std::int64_t h, BlockSink& sink) {
    std::unique_ptr<InputSource> source = in->head(h, h / group);
    results.push_back(run_job(comm, job, source.get(), &sink, &workspace));
    if (on_head) on_head(h, results.back());
  });
  return results;
}

}  // namespace ncsparse::app
