// HDF5 round trips: `generate` writes the generator's Q, K, V; reading them back through the
// HDF5 source (run --input) and through attend_file (attend) gives the answer of the in-memory
// generator path (run_job without a source): identical top-k lists (indices and scores) and
// outputs within 1e-6 relative, for any number of ranks, n not divisible by P and n < P,
// 2-D and 3-D datasets, float32 and float64.
//
// float16 and bfloat16 files hold the generator's values rounded to nearest (ties to even).
// Their reference is run_job with a source that rounds the generator's values the same way
// (io::quantise), so it sees exactly the floats the reader decodes: the same identities hold.
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "app/attend.hpp"
#include "app/generate.hpp"
#include "io/h5_source.hpp"
#include "ncsparse/engine.hpp"

namespace ncsparse {
namespace {

using io::Dtype;

class QuantisedSource final : public InputSource {
 public:
  QuantisedSource(const ModelParams& p, Dtype t) : gen_(p), t_(t) {}
  void keys_values(std::int64_t begin, std::int64_t count, std::span<float> k, std::span<float> v) override {
    gen_.keys_values(begin, count, k, v);
    for (float& x : k) x = io::quantise(x, t_);
    for (float& x : v) x = io::quantise(x, t_);
  }
  void query_rows(std::span<const std::int64_t> rows, std::span<float> q) override {
    gen_.queries(rows, q);
    for (float& x : q) x = io::quantise(x, t_);
  }

 private:
  Generator gen_;
  Dtype t_;
};

// A directory every rank agrees on (rank 0 makes it).
std::string shared_dir() {
  static std::string dir;
  if (!dir.empty()) return dir;
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  char buf[256] = {};
  if (rank == 0) {
    std::snprintf(buf, sizeof buf, "/tmp/ncsparse-io-XXXXXX");
    if (mkdtemp(buf) == nullptr) std::abort();
  }
  MPI_Bcast(buf, sizeof buf, MPI_CHAR, 0, MPI_COMM_WORLD);
  dir = buf;
  return dir;
}

double rel_diff(std::span<const double> a, std::span<const double> b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::abs(a[i] - b[i]));
    den = std::max(den, std::abs(b[i]));
  }
  return den > 0 ? num / den : num;
}

JobConfig make_job(std::int64_t n, std::int64_t d, bool causal) {
  JobConfig c;
  c.n = n;
  c.queries = n;
  c.model.d = d;
  c.model.seed = 4242;
  c.model.weight_norm = 90;
  c.causal = causal;
  c.block = 5;
  c.tile = 7;
  c.max_k = 16;
  c.keep_rows = true;
  for (const char* w : {"const:3", "log:1", "mass:0.2", "cert:0.3", "sink:1,2"}) c.windows.push_back(parse_window(w));
  return c;
}

void expect_same(const JobResult& got, const JobResult& want, const std::string& what) {
  ASSERT_EQ(got.lists.size(), want.lists.size()) << what;
  for (std::size_t i = 0; i < got.lists.size(); ++i) {
    ASSERT_EQ(got.lists[i].index, want.lists[i].index) << what << ": list entry " << i;
    ASSERT_EQ(got.lists[i].score, want.lists[i].score) << what << ": list entry " << i;
  }
  EXPECT_LT(rel_diff(got.o_exact, want.o_exact), 1e-6) << what;
  EXPECT_LT(rel_diff(got.o_sparse, want.o_sparse), 1e-6) << what;
}

// Reads a whole dataset of the file serially.
template <class T>
std::vector<T> read_all(hid_t file, const std::string& name, hid_t mem_type) {
  h5::Handle set = h5::open_dataset(file, name, "out.h5");
  std::size_t count = 1;
  for (hsize_t x : h5::shape(set)) count *= static_cast<std::size_t>(x);
  std::vector<T> data(count);
  h5::check(H5Dread(set, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()), "read " + name);
  return data;
}

void round_trip(std::int64_t n, std::int64_t heads, Dtype dtype, bool causal) {
  const Comm world(MPI_COMM_WORLD);
  const std::int64_t d = 6;
  const std::string tag =
      "n" + std::to_string(n) + "_h" + std::to_string(heads) + "_" + io::to_string(dtype) + (causal ? "_causal" : "");
  const std::string in_path = shared_dir() + "/in_" + tag + ".h5", out_path = shared_dir() + "/out_" + tag + ".h5";
  const JobConfig job = make_job(n, d, causal);

  app::GenerateConfig g;
  g.n = n;
  g.model = job.model;
  g.heads = heads;
  g.dtype = dtype;
  g.out = in_path;
  g.force = true;
  app::generate_file(world, g);

  // Reference per head: the in-memory generator (rounded for the 16-bit types).
  const std::int64_t H = heads > 0 ? heads : 1;
  std::vector<JobResult> want;
  for (std::int64_t h = 0; h < H; ++h) {
    JobConfig ref = job;
    ref.model.seed = app::head_seed(job.model.seed, h);
    if (dtype == Dtype::Float32 || dtype == Dtype::Float64) {
      want.push_back(run_job(world, ref));
    } else {
      QuantisedSource source(ref.model, dtype);
      want.push_back(run_job(world, ref, &source));
    }
  }

  // run --input: the HDF5 source.
  {
    std::unique_ptr<io::H5Input> in;
    collective(world, [&] { in = std::make_unique<io::H5Input>(world, in_path); });
    ASSERT_EQ(in->n(), n);
    ASSERT_EQ(in->d(), d);
    ASSERT_EQ(in->q_heads(), H);
    ASSERT_EQ(in->dtype('k'), dtype);
    // Contiguous float32 files lend their rows in place (mapped), equal to what HDF5 reads;
    // the other types are read and converted.
    const ShardRange r = shard_range(n, world.size(), world.rank());
    for (std::int64_t h = 0; h < H && r.hi > r.lo; ++h) {
      auto source = in->head(h, h);
      const float *mk = nullptr, *mv = nullptr;
      const bool mapped = source->map_keys_values(r.lo, r.hi - r.lo, &mk, &mv);
      EXPECT_EQ(mapped, dtype == Dtype::Float32) << tag << " head " << h;
      if (!mapped) continue;
      const std::size_t count = static_cast<std::size_t>((r.hi - r.lo) * d);
      std::vector<float> k(count), v(count);
      source->keys_values(r.lo, r.hi - r.lo, k, v);
      EXPECT_EQ(std::memcmp(k.data(), mk, count * sizeof(float)), 0) << tag << " mapped K, head " << h;
      EXPECT_EQ(std::memcmp(v.data(), mv, count * sizeof(float)), 0) << tag << " mapped V, head " << h;
    }
    for (std::int64_t h = 0; h < H; ++h) {
      JobConfig j = job;
      j.query_rows = in->query_rows();
      auto source = in->head(h, h);
      expect_same(run_job(world, j, source.get()), want[static_cast<std::size_t>(h)],
                  tag + " run --input head " + std::to_string(h));
    }
  }

  // attend: the same results, and the file holds them.
  app::AttendConfig a;
  a.input = in_path;
  a.out = out_path;
  a.force = true;
  a.job = job;
  a.job.keep_rows = true;
  a.save_lists = true;
  a.save_cert = true;
  const std::vector<JobResult> got = app::attend_file(world, a);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(H));
  for (std::int64_t h = 0; h < H; ++h) {
    expect_same(got[static_cast<std::size_t>(h)], want[static_cast<std::size_t>(h)],
                tag + " attend head " + std::to_string(h));
  }
  if (world.rank() != 0) return;
  h5::Handle file(H5Fopen(out_path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  ASSERT_TRUE(file.valid()) << out_path;
  const std::vector<std::int64_t> index = read_all<std::int64_t>(file, "/lists/index", H5T_NATIVE_INT64);
  const std::vector<double> o_exact = read_all<double>(file, "/O_exact", H5T_NATIVE_DOUBLE);
  const std::size_t m = static_cast<std::size_t>(n), du = static_cast<std::size_t>(d);
  const std::size_t L = static_cast<std::size_t>(want[0].list_length);
  ASSERT_EQ(index.size(), static_cast<std::size_t>(H) * m * L);
  for (std::size_t h = 0; h < static_cast<std::size_t>(H); ++h) {
    const JobResult& w = want[h];
    for (std::size_t i = 0; i < m * L; ++i) {
      const std::int64_t expect = w.lists[i].index == kNoIndex ? -1 : w.lists[i].index;
      ASSERT_EQ(index[h * m * L + i], expect) << tag << " /lists/index head " << h << " entry " << i;
    }
    EXPECT_LT(rel_diff(std::span(o_exact).subspan(h * m * du, m * du), w.o_exact), 1e-6) << tag << " /O_exact";
    for (std::size_t s = 0; s < job.windows.size(); ++s) {
      const std::vector<double> o = read_all<double>(file, "/O/" + job.windows[s].text, H5T_NATIVE_DOUBLE);
      EXPECT_LT(rel_diff(std::span(o).subspan(h * m * du, m * du), std::span(w.o_sparse).subspan(s * m * du, m * du)),
                1e-6)
          << tag << " /O/" << job.windows[s].text << " head " << h;
      const std::vector<std::int64_t> k =
          read_all<std::int64_t>(file, "/stats/" + job.windows[s].text + "/k", H5T_NATIVE_INT64);
      for (std::size_t r = 0; r < m; ++r) ASSERT_EQ(k[h * m + r], w.strategies[s].rows[r].k);
    }
  }
}

TEST(IoRoundTrip, Float32TwoD) {
  round_trip(37, 0, Dtype::Float32, false);
  round_trip(3, 0, Dtype::Float32, true);  // n < P for P = 4: empty shards
}
TEST(IoRoundTrip, Float32ThreeD) { round_trip(23, 2, Dtype::Float32, true); }
TEST(IoRoundTrip, Float64) {
  round_trip(37, 0, Dtype::Float64, true);
  round_trip(3, 2, Dtype::Float64, false);
}
TEST(IoRoundTrip, Float16) {
  round_trip(37, 0, Dtype::Float16, false);
  round_trip(3, 2, Dtype::Float16, true);
}
TEST(IoRoundTrip, BFloat16) {
  round_trip(37, 2, Dtype::BFloat16, false);
  round_trip(3, 0, Dtype::BFloat16, true);
}

TEST(IoDtype, HalfAndBFloat16Conversions) {
  // Every half value converts to float and back exactly; rounding is to nearest, ties to even.
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const float f = io::half_to_float(static_cast<std::uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(io::float_to_half(f), h) << h;
  }
  EXPECT_EQ(io::half_to_float(io::float_to_half(65504.0f)), 65504.0f);
  EXPECT_TRUE(std::isinf(io::half_to_float(io::float_to_half(65520.0f))));
  EXPECT_EQ(io::half_to_float(io::float_to_half(1.0f + 0x1p-11f)), 1.0f);                // tie: to even
  EXPECT_EQ(io::half_to_float(io::float_to_half(1.0f + 3 * 0x1p-11f)), 1.0f + 0x1p-9f);  // tie: to even
  EXPECT_EQ(io::half_to_float(io::float_to_half(0x1p-24f)), 0x1p-24f);                   // smallest subnormal
  EXPECT_EQ(io::bf16_to_float(io::float_to_bf16(1.0f + 0x1p-8f)), 1.0f);                 // tie: to even
  EXPECT_EQ(io::bf16_to_float(io::float_to_bf16(1.0f + 3 * 0x1p-8f)), 1.0f + 0x1p-6f);
}

// Widening in place (the 16-bit values in the upper half of the float buffer, as a read puts
// them) gives exactly the scalar conversions, for every float16 bit pattern and over block
// boundaries, and so does widening between buffers.
TEST(IoDtype, WideningInPlaceIsExact) {
  for (Dtype t : {Dtype::Float16, Dtype::BFloat16}) {
    for (std::size_t n : {std::size_t{1}, std::size_t{7}, std::size_t{2048}, std::size_t{0x10000 + 5}}) {
      std::vector<std::uint16_t> bits(n);
      for (std::size_t i = 0; i < n; ++i) bits[i] = static_cast<std::uint16_t>((i * 40503u + 7) & 0xFFFF);
      if (n > 0x10000) {
        for (std::size_t i = 0; i < 0x10000; ++i) bits[i] = static_cast<std::uint16_t>(i);  // all of them
      }
      std::vector<float> buf(n, -7.0f), copy(n, -7.0f);
      std::memcpy(reinterpret_cast<std::uint16_t*>(buf.data()) + n, bits.data(), 2 * n);
      io::widen_in_place(t, buf.data(), n);
      io::widen(t, bits.data(), copy.data(), n);
      for (std::size_t i = 0; i < n; ++i) {
        const float want = t == Dtype::Float16 ? io::half_to_float(bits[i]) : io::bf16_to_float(bits[i]);
        if (std::isnan(want)) {
          ASSERT_TRUE(std::isnan(buf[i]) && std::isnan(copy[i])) << i;
          continue;
        }
        ASSERT_EQ(std::memcmp(&buf[i], &want, 4), 0) << io::to_string(t) << " n " << n << " value " << i;
        ASSERT_EQ(std::memcmp(&copy[i], &want, 4), 0) << io::to_string(t) << " n " << n << " value " << i;
      }
    }
  }
}

// Last: rank 0 removes the shared directory once every rank is done with it.
TEST(IoRoundTrip, ZCleanup) {
  const std::string dir = shared_dir();
  MPI_Barrier(MPI_COMM_WORLD);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) {
    EXPECT_EQ(std::system(("rm -rf '" + dir + "'").c_str()), 0);
  }
}

}  // namespace
}  // namespace ncsparse
