// SwiGLU rows with AVX2 + FMA: swiglu.hpp's recipe in 8 lanes, a true division (an rcp
// estimate would cost ~12 bits), the tail under a mask.
#include "kernels/activation/swiglu.hpp"
#include "kernels/attention/simd_avx2.hpp"

namespace deepmla::kernels {

void swiglu_avx2(const float* g, const float* u, float* out, int64_t n) { swiglu_rows<Avx2>(g, u, out, n); }

}  // namespace deepmla::kernels
