// SwiGLU rows with AVX512F: the AVX2 variant's operations in 16 lanes (same recipe,
// swiglu_exp.hpp, so the two give identical results), tail under a mask.
#include <cstdint>

#include "kernels/activation/swiglu_exp.hpp"
#include "kernels/matmul/avx512_util.hpp"  // and its GCC 12 pragma for AVX512 headers

namespace deepmla::kernels {

namespace {
using namespace swiglu_exp;

inline __m512 exp_ps(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(kMinArg)), _mm512_set1_ps(kMaxArg));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(kC6), r, _mm512_set1_ps(kC5));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512i scale = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(126)), 23);
  return _mm512_mul_ps(_mm512_add_ps(p, p), _mm512_castsi512_ps(scale));
}

inline __m512 swiglu16(__m512 g, __m512 u) {
  const __m512 e = exp_ps(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(g), _mm512_set1_epi32(INT32_MIN))));
  return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}
}  // namespace

void swiglu_avx512(const float* g, const float* u, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, swiglu16(_mm512_loadu_ps(g + i), _mm512_loadu_ps(u + i)));
  if (i < n) {
    const __mmask16 mask = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(out + i, mask, swiglu16(_mm512_maskz_loadu_ps(mask, g + i), _mm512_maskz_loadu_ps(mask, u + i)));
  }
}

}  // namespace deepmla::kernels
