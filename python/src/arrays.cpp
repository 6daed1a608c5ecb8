#include "arrays.hpp"

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace py = pybind11;

namespace ncsparse::python {

namespace {

Error type_error(const std::string& message) { return Error(kTypeErrorCode, message); }

const char* kAccepted = "float32, float16, bfloat16 or float64";

// numpy's typestr ("<f4") and dtype name ("bfloat16" for ml_dtypes) to an element type.
bool numpy_dtype(const std::string& typestr, const std::string& name, io::Dtype& out) {
  if (name == "bfloat16") return (out = io::Dtype::BFloat16), true;
  if (typestr.size() < 3 || typestr[0] == '>') return false;
  const std::string t = typestr.substr(1);
  if (t == "f4") return (out = io::Dtype::Float32), true;
  if (t == "f2") return (out = io::Dtype::Float16), true;
  if (t == "f8") return (out = io::Dtype::Float64), true;
  return false;
}

std::int64_t element_size(io::Dtype t) {
  switch (t) {
    case io::Dtype::Float16:
    case io::Dtype::BFloat16:
      return 2;
    case io::Dtype::Float32:
      return 4;
    default:
      return 8;
  }
}

}  // namespace

std::string TensorView::shape_text() const {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

TensorView describe(py::handle obj, const std::string& name, const std::string& where) {
  TensorView t;
  t.name = name;
  t.owner = py::reinterpret_borrow<py::object>(obj);
  std::vector<std::int64_t> strides;  // bytes
  const std::string module = py::str(py::type::handle_of(obj).attr("__module__"));
  if (module.rfind("torch", 0) == 0 && py::hasattr(obj, "data_ptr") && py::hasattr(obj, "stride")) {
    t.kind = "torch";
    const std::string device = py::str(obj.attr("device").attr("type"));
    if (device != "cpu") {
      throw type_error(where + ": " + name + " is a torch tensor on " + std::string(py::str(obj.attr("device"))) +
                       ": give CPU tensors (tensor.cpu()), or backend=\"cuda\" still takes host inputs");
    }
    const std::string dt = py::str(obj.attr("dtype"));
    if (dt == "torch.float32") t.dtype = io::Dtype::Float32;
    else if (dt == "torch.float16") t.dtype = io::Dtype::Float16;
    else if (dt == "torch.bfloat16") t.dtype = io::Dtype::BFloat16;
    else if (dt == "torch.float64") t.dtype = io::Dtype::Float64;
    else {
      throw type_error(where + ": " + name + " has dtype " + dt.substr(6) + ", which ncsparse does not convert (give " +
                       kAccepted + ")");
    }
    for (py::handle x : obj.attr("shape")) t.shape.push_back(x.cast<std::int64_t>());
    const std::int64_t size = element_size(t.dtype);
    for (py::handle x : obj.attr("stride")()) strides.push_back(x.cast<std::int64_t>() * size);
    t.data = reinterpret_cast<const char*>(obj.attr("data_ptr")().cast<std::uintptr_t>());
  } else if (py::hasattr(obj, "__array_interface__")) {
    t.kind = "numpy";
    py::dict ai = obj.attr("__array_interface__");
    const std::string typestr = py::str(ai["typestr"]);
    std::string dname;
    if (py::hasattr(obj, "dtype")) dname = py::str(obj.attr("dtype").attr("name"));
    if (!numpy_dtype(typestr, dname, t.dtype)) {
      const std::string shown = dname.empty() ? typestr : dname;
      throw type_error(where + ": " + name + " has dtype " + shown + ", which ncsparse does not convert (give " +
                       kAccepted + (typestr[0] == '>' ? " in the machine's byte order" : "") + ")");
    }
    for (py::handle x : ai["shape"]) t.shape.push_back(x.cast<std::int64_t>());
    py::tuple data = ai["data"];
    t.data = reinterpret_cast<const char*>(data[0].cast<std::uintptr_t>());
    if (ai.contains("strides") && !ai["strides"].is_none()) {
      for (py::handle x : ai["strides"]) strides.push_back(x.cast<std::int64_t>());
    } else {  // C-contiguous
      strides.assign(t.shape.size(), element_size(t.dtype));
      for (std::size_t i = t.shape.size(); i-- > 1;) strides[i - 1] = strides[i] * t.shape[i];
    }
  } else {
    throw type_error(where + ": " + name + " is a " + std::string(py::str(py::type::handle_of(obj).attr("__name__"))) +
                     ": give a numpy array or a torch CPU tensor");
  }
  const std::size_t nd = t.shape.size();
  if (nd == 2 || nd == 3) {
    t.heads = nd == 3 ? t.shape[0] : 1;
    t.rows = t.shape[nd - 2];
    t.d = t.shape[nd - 1];
    t.head_stride = nd == 3 ? strides[0] : 0;
    t.row_stride = strides[nd - 2];
    t.col_stride = strides[nd - 1];
  }
  return t;
}

void TensorView::row(std::int64_t head, std::int64_t r, float* out) const {
  const char* p = row_address(head, r);
  switch (dtype) {
    case io::Dtype::Float32:
      if (col_stride == 4) {
        std::memcpy(out, p, static_cast<std::size_t>(d) * 4);
      } else {
        for (std::int64_t c = 0; c < d; ++c) std::memcpy(out + c, p + c * col_stride, 4);
      }
      break;
    case io::Dtype::Float64:
      for (std::int64_t c = 0; c < d; ++c) {
        double x;
        std::memcpy(&x, p + c * col_stride, 8);
        out[c] = static_cast<float>(x);
      }
      break;
    case io::Dtype::Float16:
    case io::Dtype::BFloat16:
      if (col_stride == 2) {
        io::widen(dtype, reinterpret_cast<const std::uint16_t*>(p), out, static_cast<std::size_t>(d));
      } else {
        for (std::int64_t c = 0; c < d; ++c) {
          std::uint16_t h;
          std::memcpy(&h, p + c * col_stride, 2);
          out[c] = dtype == io::Dtype::Float16 ? io::half_to_float(h) : io::bf16_to_float(h);
        }
      }
      break;
  }
}

namespace {

Error bad_value(const TensorView& t, std::int64_t head, std::int64_t row, std::int64_t col, const std::string& what,
                const std::string& where, int ranks) {
  return Error(kExitData, (ranks == 1 ? "rank 0: " : "") +
                              io::bad_value_text(where, what, t.name, row, col, t.shape.size() == 3 ? head : -1));
}

void check_one_row(const TensorView& t, std::int64_t head, std::int64_t r, std::vector<float>& tmp,
                   const std::string& where, int ranks) {
  if (t.dtype == io::Dtype::Float64) {
    const char* p = t.row_address(head, r);
    for (std::int64_t c = 0; c < t.d; ++c) {
      double x;
      std::memcpy(&x, p + c * t.col_stride, 8);
      if (std::isnan(x)) throw bad_value(t, head, r, c, "NaN", where, ranks);
      if (std::isinf(x)) throw bad_value(t, head, r, c, "Inf", where, ranks);
      if (std::fabs(x) > FLT_MAX) throw bad_value(t, head, r, c, io::beyond_float_text(x), where, ranks);
    }
    return;
  }
  tmp.resize(static_cast<std::size_t>(t.d));
  t.row(head, r, tmp.data());
  const std::size_t i = io::first_non_finite(tmp.data(), tmp.size());
  if (i < tmp.size()) {
    throw bad_value(t, head, r, static_cast<std::int64_t>(i), std::isnan(tmp[i]) ? "NaN" : "Inf", where, ranks);
  }
}

}  // namespace

void check_values(const TensorView& t, std::int64_t head, std::int64_t row0, std::int64_t count,
                  const std::string& where, int ranks) {
  if (count <= 0) return;
  if (t.in_place()) {
    const float* x = reinterpret_cast<const float*>(t.row_address(head, row0));
    const std::size_t n = static_cast<std::size_t>(count * t.d);
    const std::size_t i = io::first_non_finite(x, n);
    if (i < n) {
      throw bad_value(t, head, row0 + static_cast<std::int64_t>(i) / t.d, static_cast<std::int64_t>(i) % t.d,
                      std::isnan(x[i]) ? "NaN" : "Inf", where, ranks);
    }
    return;
  }
  std::vector<float> tmp;
  for (std::int64_t r = row0; r < row0 + count; ++r) check_one_row(t, head, r, tmp, where, ranks);
}

void check_rows(const TensorView& t, std::int64_t head, const std::vector<std::int64_t>& rows,
                const std::string& where, int ranks) {
  std::vector<float> tmp;
  for (std::int64_t r : rows) check_one_row(t, head, r, tmp, where, ranks);
}

void ArraySource::keys_values(std::int64_t begin, std::int64_t count, std::span<float> k, std::span<float> v) {
  const std::size_t d = static_cast<std::size_t>(k_.d);
  for (std::int64_t r = 0; r < count; ++r) {
    k_.row(kvh_, begin - lo_ + r, k.data() + static_cast<std::size_t>(r) * d);
    v_.row(kvh_, begin - lo_ + r, v.data() + static_cast<std::size_t>(r) * d);
  }
}

bool ArraySource::map_keys_values(std::int64_t begin, std::int64_t count, const float** k, const float** v) {
  if (count <= 0 || !k_.in_place() || !v_.in_place()) return false;
  *k = lent_k_ = reinterpret_cast<const float*>(k_.row_address(kvh_, begin - lo_));
  *v = lent_v_ = reinterpret_cast<const float*>(v_.row_address(kvh_, begin - lo_));
  return true;
}

void ArraySource::query_rows(std::span<const std::int64_t> rows, std::span<float> q) {
  const std::size_t d = static_cast<std::size_t>(q_.d);
  for (std::size_t i = 0; i < rows.size(); ++i) q_.row(qh_, rows[i], q.data() + i * d);
}

}  // namespace ncsparse::python
