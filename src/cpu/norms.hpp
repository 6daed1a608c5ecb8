// The largest row norm of a block of float rows, as the engine reports it (v_max_norm) and the
// CPU backend bounds its scores with (the largest key norm): each row's Σ_c x_c² in double,
// in column order. The products of two floats are exact in double, so a fused multiply-add
// rounds them as a multiply and an add do; a max does not depend on the order. So every path
// (portable, AVX2), every split of the rows and every thread count gives the same bits.
#pragma once

#include <cstdint>

namespace ncsparse::cpu {

// max_j Σ_c x[j·d + c]² over rows j (0 when rows is 0); one thread.
double max_row_norm_sq(const float* x, std::int64_t rows, std::int64_t d);

// The portable path (norms.cpp), also the AVX2 path's loop for its last rows.
double max_row_norm_sq_generic(const float* x, std::int64_t rows, std::int64_t d);

namespace avx2 {
// The same, rows in the lanes (norms_avx2.cpp); call only when use_avx2().
double max_row_norm_sq(const float* x, std::int64_t rows, std::int64_t d);
}  // namespace avx2

}  // namespace ncsparse::cpu
