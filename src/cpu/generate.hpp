// The generator's bulk kernels on the CPU (core/generator.cpp calls them): standard values of
// many rows at once and the canonical projection X·W. A portable path and an AVX2 + FMA path
// (generate_avx2.cpp), bit-identical to each other and to the CUDA kernels (cuda/generate.cu),
// because all of them evaluate the same operations of core/gen_math.hpp in the same order.
#pragma once

#include <cstdint>

namespace ncsparse::cpu {

// What happens to a standard value before it is stored: nothing, clipping to [−b, b], or a
// product with b.
enum class Post { None, Clamp, Scale };

struct StandardRows {
  std::uint64_t seed = 0;
  std::uint32_t tensor = 0;
  std::int64_t first = 0;  // global row index of the first row
  std::int64_t rows = 0;
  std::int64_t d = 0;
  bool uniform = false;  // uniform on (−1, 1), else standard normal
  Post post = Post::None;
  float b = 1;
};

// out[i·d + c] for i < rows, c < d: value c of row first + i of the tensor (gen::philox_block,
// gen::standard_values), then `post`. `threads` OpenMP threads share the rows.
void standard_rows(const StandardRows& s, float* out, int threads = 1);

// out (rows × cols) = x (rows × inner) · w (inner × cols), row-major, every element the chain
// acc ← fma(x[i][t], w[t][j], acc) for t = 0 .. inner − 1 from acc = 0, in that order: one
// correctly rounded operation per step, so every path gives the same bits.
void project_canonical(const float* x, const float* w, std::int64_t rows, std::int64_t inner, std::int64_t cols,
                       float* out, int threads = 1);

// The two paths, for the tests that compare them: portable (generate.cpp) and AVX2 + FMA
// (generate_avx2.cpp; only call when use_avx2()).
namespace portable {
void standard_rows(const StandardRows& s, float* out);
void project_canonical(const float* x, const float* w, std::int64_t rows, std::int64_t inner, std::int64_t cols,
                       float* out);
}  // namespace portable
namespace avx2 {
void standard_rows(const StandardRows& s, float* out);
void project_canonical(const float* x, const float* w, std::int64_t rows, std::int64_t inner, std::int64_t cols,
                       float* out);
}  // namespace avx2
namespace avx512 {  // generate_avx512.cpp; only call when use_avx512()
void standard_rows(const StandardRows& s, float* out);
void project_canonical(const float* x, const float* w, std::int64_t rows, std::int64_t inner, std::int64_t cols,
                       float* out);
}  // namespace avx512

}  // namespace ncsparse::cpu
