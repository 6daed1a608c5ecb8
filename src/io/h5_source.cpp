#include "io/h5_source.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>

namespace ncsparse::io {
namespace {

std::string shape_text(const std::vector<hsize_t>& dims) {
  std::string s = "(";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + ")";
}

std::string type_name(hid_t type) {
  const H5T_class_t cls = H5Tget_class(type);
  const std::size_t bits = H5Tget_size(type) * 8;
  switch (cls) {
    case H5T_INTEGER:
      return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(bits);
    case H5T_FLOAT:
      return "a " + std::to_string(bits) + "-bit float of unusual layout";
    case H5T_STRING:
      return "string";
    case H5T_COMPOUND:
      return "compound";
    case H5T_ENUM:
      return "enum";
    case H5T_BITFIELD:
      return "bitfield";
    case H5T_OPAQUE:
      return "opaque";
    case H5T_ARRAY:
      return "array";
    case H5T_VLEN:
      return "variable-length";
    case H5T_REFERENCE:
      return "reference";
    default:
      return "an unknown type";
  }
}

bool has_fields(hid_t type, std::size_t spos, std::size_t epos, std::size_t esize, std::size_t mpos,
                std::size_t msize) {
  std::size_t f[5] = {};
  if (H5Tget_fields(type, &f[0], &f[1], &f[2], &f[3], &f[4]) < 0) return false;
  return f[0] == spos && f[1] == epos && f[2] == esize && f[3] == mpos && f[4] == msize;
}

Dtype classify(hid_t dset, const std::string& where) {
  h5::Handle type(h5::check_id(H5Dget_type(dset), where + ": cannot read its type", kExitData));
  const H5T_class_t cls = H5Tget_class(type);
  const std::size_t size = H5Tget_size(type);
  const std::string fix =
      " (store float32, float64, float16, or bfloat16 as uint16 with the attribute ncsparse_dtype = \"bfloat16\")";
  if (cls == H5T_FLOAT) {
    if (size == 4 && has_fields(type, 31, 23, 8, 0, 23)) return Dtype::Float32;
    if (size == 8 && has_fields(type, 63, 52, 11, 0, 52)) return Dtype::Float64;
    if (size == 2 && has_fields(type, 15, 10, 5, 0, 10) && H5Tget_ebias(type) == 15) return Dtype::Float16;
  } else if (cls == H5T_INTEGER && h5::has_attr(dset, "ncsparse_dtype")) {
    const std::string tag = h5::read_attr_string(dset, "ncsparse_dtype");
    if (tag == "bfloat16" && size == 2 && H5Tget_sign(type) == H5T_SGN_NONE) return Dtype::BFloat16;
    throw Error(kExitData, where + ": attribute ncsparse_dtype = \"" + tag + "\" on a " + type_name(type) +
                               " dataset is not understood" + fix);
  }
  throw Error(kExitData, where + " holds " + type_name(type) + ", which ncsparse does not convert" + fix);
}

}  // namespace

H5Input::H5Input(const Comm& comm, const std::string& path, const InputNames& names)
    : path_(path), rank_(comm.rank()), ranks_(comm.size()) {
  const h5::UntrustedFileScope untrusted(path);
  file_ = h5::open_input_file(path, comm.size() > 1 ? comm.get() : MPI_COMM_NULL);
  const std::pair<Tensor*, const std::string*> all[] = {{&q_, &names.q}, {&k_, &names.k}, {&v_, &names.v}};
  for (auto [t, name] : all) {
    t->name = *name;
    const std::string where = path + ": dataset '" + *name + "'";
    if (name->empty() || !h5::exists(file_, *name)) {
      throw Error(kExitData, path + ": no dataset '" + *name +
                                 "' (list the file with h5ls -r; name the datasets with --q/--k/--v)");
    }
    h5::check_input_dataset(file_, *name, path);
    t->dset = h5::open_dataset(file_, *name, path);
    H5O_info_t info{};
    h5::check(H5Oget_info2(t->dset, &info, H5O_INFO_BASIC), where + ": cannot read it", kExitData);
    if (info.type != H5O_TYPE_DATASET) throw Error(kExitData, where + " is not a dataset");
    t->dims = h5::shape(t->dset);
    if (t->dims.size() != 2 && t->dims.size() != 3) {
      throw Error(kExitData, where + " has shape " + shape_text(t->dims) + ": expected (n, d) or (heads, n, d)");
    }
    for (hsize_t x : t->dims) {
      if (x == 0) throw Error(kExitData, where + " has shape " + shape_text(t->dims) + ": no dimension may be 0");
    }
    t->heads = t->dims.size() == 3 ? t->dims[0] : 1;
    t->rows = t->dims[t->dims.size() - 2];
    t->d = t->dims.back();
    t->dtype = classify(t->dset, where);
  }
  const std::string f = path + ": ";
  if (q_.dims.size() != k_.dims.size() || k_.dims.size() != v_.dims.size()) {
    throw Error(kExitData, f + "Q, K and V have shapes " + shape_text(q_.dims) + ", " + shape_text(k_.dims) + ", " +
                               shape_text(v_.dims) + ": give all three as (n, d) or all as (heads, n, d)");
  }
  if (q_.d != k_.d || k_.d != v_.d) {
    throw Error(kExitData, f + "Q, K and V must have the same d (last dimension), got " + std::to_string(q_.d) + ", " +
                               std::to_string(k_.d) + ", " + std::to_string(v_.d));
  }
  if (k_.rows != v_.rows || k_.heads != v_.heads) {
    throw Error(kExitData, f + "K " + shape_text(k_.dims) + " and V " + shape_text(v_.dims) +
                               " must have the same shape (one value row per key)");
  }
  if (q_.rows > k_.rows) {
    throw Error(kExitData, f + "Q has " + std::to_string(q_.rows) + " rows but K only " + std::to_string(k_.rows) +
                               " (queries are aligned to the last keys; use at most as many query rows as keys)");
  }
  if (q_.heads % k_.heads != 0) {
    throw Error(kExitData, f + "Q has " + std::to_string(q_.heads) + " heads, not a multiple of K's " +
                               std::to_string(k_.heads) + " (grouped-query attention needs Hq = g * Hkv)");
  }
  dxpl_ = h5::transfer(false, ranks_ > 1);
}

H5Input::~H5Input() = default;

Dtype H5Input::dtype(char tensor) const { return tensor == 'q' ? q_.dtype : tensor == 'k' ? k_.dtype : v_.dtype; }

Error H5Input::bad_value(const Tensor& t, hsize_t head, hsize_t row, std::size_t col,
                         const std::string& what_value) const {
  return Error(kExitData, (ranks_ == 1 ? "rank 0: " : "") +
                              bad_value_text(path_, what_value, "dataset '" + t.name + "'", static_cast<std::int64_t>(row),
                                             static_cast<std::int64_t>(col),
                                             t.dims.size() == 3 ? static_cast<std::int64_t>(head) : -1));
}

void H5Input::read(Tensor& t, hsize_t head, hsize_t row0, hsize_t rows, float* out) {
  const h5::UntrustedFileScope untrusted(path_);
  const std::size_t d = static_cast<std::size_t>(t.d);
  const std::string what = path_ + ": dataset '" + t.name + "' rows " + std::to_string(row0) + ".." +
                           std::to_string(row0 + rows) + (t.dims.size() == 3 ? " of head " + std::to_string(head) : "");
  const hsize_t chunk = std::max<hsize_t>(1, (hsize_t{1} << 21) / t.d);
  std::vector<double> wide;
  auto bad = [&](hsize_t row, std::size_t col, const std::string& what_value) {
    return bad_value(t, head, row, col, what_value);
  };
  for (hsize_t r0 = 0; r0 < rows; r0 += chunk) {
    const hsize_t nr = std::min(chunk, rows - r0);
    const std::size_t count = static_cast<std::size_t>(nr) * d;
    float* dst = out + static_cast<std::size_t>(r0) * d;
    switch (t.dtype) {
      case Dtype::Float32:
        h5::read_rows(t.dset, H5T_NATIVE_FLOAT, t.dims, t.dims.size() == 3, head, row0 + r0, nr, dst, dxpl_, what);
        break;
      case Dtype::Float64:
        wide.resize(count);
        h5::read_rows(t.dset, H5T_NATIVE_DOUBLE, t.dims, t.dims.size() == 3, head, row0 + r0, nr, wide.data(), dxpl_,
                      what);
        for (std::size_t i = 0; i < count; ++i) {
          if (std::isfinite(wide[i]) && std::fabs(wide[i]) > FLT_MAX) {
            throw bad(row0 + r0 + i / d, i % d, beyond_float_text(wide[i]));
          }
          dst[i] = static_cast<float>(wide[i]);
        }
        break;
      case Dtype::Float16:
      case Dtype::BFloat16: {
        // Read into the upper half of the chunk's own floats, then widen in place: no buffer.
        auto* half = reinterpret_cast<std::uint16_t*>(dst) + count;
        const h5::Handle mem = t.dtype == Dtype::Float16 ? h5::half_type() : h5::Handle{};
        const hid_t mem_type = t.dtype == Dtype::Float16 ? mem.get() : H5T_NATIVE_UINT16;
        h5::read_rows(t.dset, mem_type, t.dims, t.dims.size() == 3, head, row0 + r0, nr, half, dxpl_, what);
        widen_in_place(t.dtype, dst, count);
        break;
      }
    }
    for (std::size_t i = 0; i < count; ++i) {
      if (!std::isfinite(dst[i])) throw bad(row0 + r0 + i / d, i % d, std::isnan(dst[i]) ? "NaN" : "Inf");
    }
  }
}


H5Input::Mapped::~Mapped() {
  guard_.reset();  // disarmed before the range is unmapped
  if (addr_ != nullptr) ::munmap(addr_, bytes_);
}

std::optional<H5Input::Mapped> H5Input::map(Tensor& t, hsize_t head, hsize_t row0, hsize_t rows) {
  static const bool off = [] {
    const char* e = std::getenv("NCSPARSE_NO_MMAP");
    return e != nullptr && std::string(e) == "1";
  }();
  if (off || rows == 0 || t.dtype != Dtype::Float32 || std::endian::native != std::endian::little) return std::nullopt;
  const h5::UntrustedFileScope untrusted(path_);
  {
    h5::Handle type(H5Dget_type(t.dset));
    if (type < 0 || H5Tequal(type, H5T_IEEE_F32LE) <= 0) return std::nullopt;
    h5::Handle plist(H5Dget_create_plist(t.dset));
    if (plist < 0 || H5Pget_layout(plist) != H5D_CONTIGUOUS || H5Pget_external_count(plist) != 0) return std::nullopt;
  }
  const haddr_t base = H5Dget_offset(t.dset);
  if (base == HADDR_UNDEF) return std::nullopt;  // not allocated (never written), or not contiguous
  const std::uint64_t row_bytes = t.d * sizeof(float);
  const std::uint64_t first = base + (head * t.rows + row0) * row_bytes, bytes = rows * row_bytes;
  if (first % alignof(float) != 0) return std::nullopt;
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct stat st {};
  const long page = ::sysconf(_SC_PAGESIZE);
  // Inside the file: a truncated file would fault (SIGBUS) where read() reports an error.
  if (::fstat(fd, &st) != 0 || page <= 0 || first + bytes > static_cast<std::uint64_t>(st.st_size)) {
    ::close(fd);
    return std::nullopt;
  }
  const std::uint64_t start = first / static_cast<std::uint64_t>(page) * static_cast<std::uint64_t>(page);
  const std::size_t len = static_cast<std::size_t>(first + bytes - start);
  void* addr = ::mmap(nullptr, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, static_cast<off_t>(start));
  ::close(fd);
  if (addr == MAP_FAILED) return std::nullopt;
  Mapped m(addr, len, reinterpret_cast<const float*>(static_cast<const char*>(addr) + (first - start)), path_);
  // The offset is HDF5's own; still, the first row must be what HDF5 reads, or the mapping is
  // not used (a user block or a driver that places data elsewhere would show here).
  std::vector<float> row(static_cast<std::size_t>(t.d));
  read(t, head, row0, 1, row.data());
  if (std::memcmp(row.data(), m.rows(), static_cast<std::size_t>(row_bytes)) != 0) return std::nullopt;
  const std::size_t count = static_cast<std::size_t>(rows * t.d);
  if (const std::size_t i = first_non_finite(m.rows(), count); i < count) {
    const std::size_t d = static_cast<std::size_t>(t.d);
    throw bad_value(t, head, row0 + i / d, i % d, std::isnan(m.rows()[i]) ? "NaN" : "Inf");
  }
  return m;
}

namespace {

class HeadSource final : public InputSource {
 public:
  HeadSource(H5Input& in, hsize_t q_head, hsize_t kv_head) : in_(in), qh_(q_head), kvh_(kv_head) {}
  void keys_values(std::int64_t begin, std::int64_t count, std::span<float> k, std::span<float> v) override {
    if (count <= 0) return;
    in_.read(in_.tensor('k'), kvh_, static_cast<hsize_t>(begin), static_cast<hsize_t>(count), k.data());
    in_.read(in_.tensor('v'), kvh_, static_cast<hsize_t>(begin), static_cast<hsize_t>(count), v.data());
  }
  bool map_keys_values(std::int64_t begin, std::int64_t count, const float** k, const float** v) override {
    if (count <= 0) return false;
    std::optional<H5Input::Mapped> mk =
        in_.map(in_.tensor('k'), kvh_, static_cast<hsize_t>(begin), static_cast<hsize_t>(count));
    if (!mk) return false;
    std::optional<H5Input::Mapped> mv =
        in_.map(in_.tensor('v'), kvh_, static_cast<hsize_t>(begin), static_cast<hsize_t>(count));
    if (!mv) return false;
    *k = mk->rows();
    *v = mv->rows();
    maps_.push_back(std::move(*mk));
    maps_.push_back(std::move(*mv));
    return true;
  }
  void query_rows(std::span<const std::int64_t> rows, std::span<float> q) override {
    // Contiguous runs of rows are read as one hyperslab each.
    const std::size_t d = static_cast<std::size_t>(in_.d());
    std::size_t i = 0;
    while (i < rows.size()) {
      std::size_t j = i + 1;
      while (j < rows.size() && rows[j] == rows[j - 1] + 1) ++j;
      in_.read(in_.tensor('q'), qh_, static_cast<hsize_t>(rows[i]), static_cast<hsize_t>(j - i), q.data() + i * d);
      i = j;
    }
  }

 private:
  H5Input& in_;
  hsize_t qh_, kvh_;
  std::vector<H5Input::Mapped> maps_;  // the shards given out by map_keys_values
};

}  // namespace

std::unique_ptr<InputSource> H5Input::head(std::int64_t q_head, std::int64_t kv_head) {
  NCSPARSE_ASSERT(q_head >= 0 && q_head < q_heads() && kv_head >= 0 && kv_head < kv_heads());
  return std::make_unique<HeadSource>(*this, static_cast<hsize_t>(q_head), static_cast<hsize_t>(kv_head));
}

}  // namespace ncsparse::io
