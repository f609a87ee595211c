// SwiGLU reference: the formula the ops used before the kernel existed, with libm's expf.
// For -g past ln(FLT_MAX) e^-g is inf and g / inf gives -0; g = -inf gives NaN (inf/inf).
#include <cmath>
#include <cstdint>

namespace deepmla::kernels {

void swiglu_scalar(const float* g, const float* u, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

}  // namespace deepmla::kernels
