// SwiGLU rows with AVX512F: swiglu.hpp's recipe in 16 lanes (the AVX2 variant's
// operations, so the two give identical results), the tail under a mask.
#include "kernels/activation/swiglu.hpp"
#include "kernels/attention/simd_avx512.hpp"

namespace deepmla::kernels {

void swiglu_avx512(const float* g, const float* u, float* out, int64_t n) { swiglu_rows<Avx512>(g, u, out, n); }

}  // namespace deepmla::kernels
