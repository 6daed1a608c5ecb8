// Element types of input files and the conversions between them and float.
//
// float16 is IEEE 754 binary16 (an HDF5 float type built by h5::half_type()); bfloat16 is stored
// as uint16 with the attribute ncsparse_dtype = "bfloat16" on the dataset (HDF5 has no bfloat16
// type). Narrowing rounds to nearest, ties to even, as numpy and PyTorch do.
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

namespace ncsparse::io {

enum class Dtype { Float16, BFloat16, Float32, Float64 };

std::string to_string(Dtype t);
Dtype parse_dtype(const std::string& text);  // throws a usage Error naming --dtype

inline std::uint16_t float_to_bf16(float f) {
  std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if (std::isnan(f)) return static_cast<std::uint16_t>((u >> 16) | 0x40);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}
inline float bf16_to_float(std::uint16_t h) { return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16); }

inline std::uint16_t float_to_half(float f) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (u >> 16) & 0x8000u;
  const std::uint32_t a = u & 0x7FFFFFFFu;
  if (a >= 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7C00u | (a > 0x7F800000u ? 0x200u : 0u));
  if (a >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // rounds past 65504: infinity
  if (a < 0x38800000u) {                                                    // below 2^-14: subnormal or zero
    // Exact: a float of magnitude < 2^-14 scaled by 2^24 and rounded to an integer (ties to even).
    const float scaled = std::bit_cast<float>(a) * 16777216.0f;
    return static_cast<std::uint16_t>(sign | static_cast<std::uint32_t>(std::nearbyint(scaled)));
  }
  std::uint32_t h = a - 0x38000000u;  // rebias the exponent from 127 to 15
  h += 0xFFFu + ((h >> 13) & 1u);     // round to nearest even on the 13 dropped bits
  return static_cast<std::uint16_t>(sign | (h >> 13));
}

inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
  if (exp == 0) {
    const float v = static_cast<float>(man) * (1.0f / 16777216.0f);  // man · 2^-24, exact
    return std::bit_cast<float>(std::bit_cast<std::uint32_t>(v) | sign);
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7F800000u | (man << 13));
  return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (man << 13));
}

// Widens n float16 or bfloat16 values to float, exactly. `widen` reads src and writes dst (not
// overlapping); `widen_in_place` takes the n 16-bit values from the upper half of buf (the
// bytes 2n .. 4n, i.e. reinterpret_cast<std::uint16_t*>(buf) + n, where a read can put them)
// and leaves the n floats in buf[0, n): no second buffer. float16 uses the F16C instruction
// where the CPU has it (the same values as half_to_float, NaN payloads aside).
void widen(Dtype t, const std::uint16_t* src, float* dst, std::size_t n);
void widen_in_place(Dtype t, float* buf, std::size_t n);

// The first non-finite value of x[0, count), or count: a branch-free (vectorised) scan of the
// exponent bits, then a search only where one was found.
std::size_t first_non_finite(const float* x, std::size_t count);

// The one-line text of a rejected input value, worded alike for files and Python arrays:
// "<source>: <what> in <tensor> row R, column C[ of head H] (ncsparse rejects ...: clean the input)".
// source: the file's path or the Python call; tensor: "dataset 'K'" or "k"; head < 0: no head.
std::string bad_value_text(const std::string& source, const std::string& what, const std::string& tensor,
                           std::int64_t row, std::int64_t col, std::int64_t head);
// "value X (beyond the float32 range)": `what` for a float64 input whose magnitude exceeds FLT_MAX.
std::string beyond_float_text(double x);

// Rounds a float to the nearest value of the type (identity for float32 and float64).
inline float quantise(float f, Dtype t) {
  switch (t) {
    case Dtype::Float16:
      return half_to_float(float_to_half(f));
    case Dtype::BFloat16:
      return bf16_to_float(float_to_bf16(f));
    default:
      return f;
  }
}

}  // namespace ncsparse::io
