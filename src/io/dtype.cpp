#include "io/dtype.hpp"

#include "ncsparse/error.hpp"

namespace ncsparse::io {

std::string to_string(Dtype t) {
  switch (t) {
    case Dtype::Float16: return "float16";
    case Dtype::BFloat16: return "bfloat16";
    case Dtype::Float32: return "float32";
    case Dtype::Float64: return "float64";
  }
  return "?";
}

Dtype parse_dtype(const std::string& text) {
  if (text == "float16") return Dtype::Float16;
  if (text == "bfloat16") return Dtype::BFloat16;
  if (text == "float32") return Dtype::Float32;
  if (text == "float64") return Dtype::Float64;
  throw usage_error("--dtype: unknown element type '" + text + "' (use float32, float64, float16 or bfloat16)");
}

}  // namespace ncsparse::io
