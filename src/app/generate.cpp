#include "app/generate.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/stop_signals.hpp"
#include "io/h5.hpp"
#include "io/h5_output.hpp"

namespace ncsparse::app {

using io::Dtype;
using io::OutputFile;

std::uint64_t head_seed(std::uint64_t seed, std::int64_t head) {
  return seed + static_cast<std::uint64_t>(head) * 0x9E3779B97F4A7C15ull;
}

void validate(const GenerateConfig& c) {
  if (c.n < 1) throw usage_error("--n: must be >= 1 (the number of rows), got " + std::to_string(c.n));
  if (c.model.d < 1) throw usage_error("--d: must be >= 1 (the head dimension), got " + std::to_string(c.model.d));
  if (c.model.d > 65536) throw usage_error("--d: " + std::to_string(c.model.d) + " is larger than the supported 65536");
  if (c.heads < 0) throw usage_error("--heads: must be >= 1, got " + std::to_string(c.heads));
  if (c.out.empty()) throw usage_error("--out: give the output file");
  validate_model(c.model);
  // The bytes of Q, K and V must be a number at all (the file system's room is checked when the
  // file's extent is known: OutputFile::flush).
  const std::int64_t esize = c.dtype == Dtype::Float64 ? 8 : c.dtype == Dtype::Float32 ? 4 : 2;
  std::int64_t bytes = 0;
  if (__builtin_mul_overflow(std::int64_t{3} * esize, std::max<std::int64_t>(c.heads, 1), &bytes) ||
      __builtin_mul_overflow(bytes, c.n, &bytes) || __builtin_mul_overflow(bytes, c.model.d, &bytes)) {
    throw Error(kExitCantCreate, c.out + ": 3 x " + std::to_string(std::max<std::int64_t>(c.heads, 1)) + " heads x " +
                                     std::to_string(c.n) + " rows x " + std::to_string(c.model.d) + " x " +
                                     std::to_string(esize) +
                                     " bytes overflows a 64-bit size (give a smaller --n, --d or --heads)");
  }
}

namespace {

void write_attr_u64(hid_t obj, const std::string& name, std::uint64_t value) {
  h5::Handle space(h5::check_id(H5Screate(H5S_SCALAR), "cannot create a scalar dataspace"));
  h5::Handle attr(h5::check_id(H5Acreate2(obj, name.c_str(), H5T_NATIVE_UINT64, space, H5P_DEFAULT, H5P_DEFAULT),
                               "cannot create attribute " + name, kExitCantCreate));
  h5::check(H5Awrite(attr, H5T_NATIVE_UINT64, &value), "cannot write attribute " + name);
}

struct TypedBuffer {
  std::vector<float> f32;
  std::vector<double> f64;
  std::vector<std::uint16_t> u16;
};

}  // namespace

void generate_file(const Comm& comm, const GenerateConfig& c) {
  validate(c);
  const StopPolling stop;  // SIGINT/SIGTERM end the job at the next round, without an output
  OutputFile out(comm, c.out, c.force);
  const bool headed = c.heads > 0;
  const std::int64_t H = headed ? c.heads : 1, n = c.n, d = c.model.d;
  const std::size_t du = static_cast<std::size_t>(d);
  std::vector<hsize_t> dims;
  if (headed) dims.push_back(static_cast<hsize_t>(H));
  dims.push_back(static_cast<hsize_t>(n));
  dims.push_back(static_cast<hsize_t>(d));

  h5::Handle half;
  hid_t file_type = H5T_IEEE_F32LE, mem_type = H5T_NATIVE_FLOAT;
  switch (c.dtype) {
    case Dtype::Float32: break;
    case Dtype::Float64: file_type = H5T_IEEE_F64LE, mem_type = H5T_NATIVE_DOUBLE; break;
    case Dtype::Float16: half = h5::half_type(), file_type = half.get(), mem_type = half.get(); break;
    case Dtype::BFloat16: file_type = H5T_STD_U16LE, mem_type = H5T_NATIVE_UINT16; break;
  }

  // Creation and attributes are collective metadata operations: every rank, the same values.
  const char* names[3] = {"Q", "K", "V"};
  std::vector<h5::Handle> sets;
  collective(comm, [&] {
    const hid_t f = out.file();
    const ModelParams& m = c.model;
    h5::write_attr(f, "model", to_string(m.model));
    h5::write_attr(f, "x_dist", to_string(m.x_dist));
    h5::write_attr(f, "B", m.bound);
    h5::write_attr(f, "R", m.weight_norm);
    h5::write_attr(f, "sigma", m.sigma);
    h5::write_attr(f, "rope_theta", m.rope_theta);
    h5::write_attr(f, "sinks", m.sinks);
    h5::write_attr(f, "sink_strength", m.sink_strength);
    h5::write_attr(f, "tied", static_cast<std::int64_t>(m.tied ? 1 : 0));
    write_attr_u64(f, "seed", m.seed);
    h5::write_attr(f, "head_seeds", std::string("seed + h * 0x9E3779B97F4A7C15 mod 2^64 (head 0: seed)"));
    h5::write_attr(f, "n", n);
    h5::write_attr(f, "d", d);
    h5::write_attr(f, "heads", static_cast<std::int64_t>(c.heads));
    h5::write_attr(f, "dtype", to_string(c.dtype));
    h5::write_attr(f, "query_positions", std::string("row i of Q is position i"));
    h5::write_attr(f, "ncsparse_version", std::string(NCSPARSE_VERSION));
    h5::write_attr(f, "generator", std::string("ncsparse generate"));
    for (const char* name : names) {
      sets.push_back(h5::create_dataset(f, name, file_type, dims));
      h5::write_attr(sets.back(), "tensor", std::string(name));
      if (c.dtype == Dtype::BFloat16) h5::write_attr(sets.back(), "ncsparse_dtype", std::string("bfloat16"));
    }
  });

  out.flush();  // the metadata is on disk: a failing raw write leaves nothing for the close to write

  // Each rank writes its rows [lo, hi) in chunks, independently; every rank makes the same
  // number of rounds (the largest shard's chunk count) and the ranks agree on each round's
  // writes, so a rank whose write fails stops every rank at the end of that round.
  const ShardRange shard = shard_range(n, comm.size(), comm.rank());
  const std::int64_t chunk = std::max<std::int64_t>(1, (std::int64_t{1} << 20) / d);
  const std::int64_t largest = (n + comm.size() - 1) / comm.size();
  const std::int64_t rounds = (largest + chunk - 1) / chunk;
  h5::Handle dxpl = h5::transfer(false, out.parallel());
  std::vector<float> q, k, v;
  std::vector<std::int64_t> pos;
  TypedBuffer buf;
  std::string problem;  // found while writing; agreed on after the writes
  for (std::int64_t h = 0; h < H; ++h) {
    ModelParams params = c.model;
    params.seed = head_seed(c.model.seed, h);
    const Generator gen(params);
    for (std::int64_t r = 0; r < rounds; ++r) {
      const std::int64_t r0 = std::min(shard.hi, shard.lo + r * chunk);
      const std::int64_t rows = std::min(chunk, shard.hi - r0);
      const std::size_t count = static_cast<std::size_t>(rows) * du;
      q.resize(count), k.resize(count), v.resize(count);
      pos.resize(static_cast<std::size_t>(rows));
      for (std::int64_t i = 0; i < rows; ++i) pos[static_cast<std::size_t>(i)] = r0 + i;
      if (rows > 0) {
        gen.keys_values(r0, rows, k, v);
        gen.queries(pos, q);
      }
      const std::vector<float>* data[3] = {&q, &k, &v};
      io::write_agreed(comm, [&] {
      for (int t = 0; rows > 0 && t < 3; ++t) {
        const std::vector<float>& x = *data[t];
        const void* ptr = x.data();
        if (c.dtype == Dtype::Float64) {
          buf.f64.assign(x.begin(), x.end());
          ptr = buf.f64.data();
        } else if (c.dtype == Dtype::Float16 || c.dtype == Dtype::BFloat16) {
          buf.u16.resize(count);
          for (std::size_t i = 0; i < count; ++i) {
            buf.u16[i] = c.dtype == Dtype::Float16 ? io::float_to_half(x[i]) : io::float_to_bf16(x[i]);
            if (problem.empty() && !std::isfinite(io::quantise(x[i], c.dtype))) {
              problem = c.out + ": " + names[t] + " row " + std::to_string(r0 + static_cast<std::int64_t>(i / du)) +
                        " holds " + std::to_string(x[i]) + ", beyond the range of " + to_string(c.dtype) +
                        " (use --dtype float32 or a smaller --R/--sigma)";
            }
          }
          ptr = buf.u16.data();
        }
        h5::write_rows(sets[static_cast<std::size_t>(t)], mem_type, dims, headed, static_cast<hsize_t>(h),
                       static_cast<hsize_t>(r0), static_cast<hsize_t>(rows), ptr, dxpl, out.temp_path(),
                       std::string("rows of ") + names[t]);
      }
      });
      io::stop_if_signalled(comm, c.out);
    }
  }
  collective(comm, [&] {
    if (!problem.empty()) throw Error(kExitData, problem);
  });
  sets.clear();
  out.commit();
}

}  // namespace ncsparse::app
