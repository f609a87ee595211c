// F32 -> Q8_0 activations, AVX2. Bit-identical to formats/q8_0.cpp: the same float
// expressions for d and 1/d, F16C's round-to-nearest-even fp16 (as fp32_to_fp16), and
// std::round's half-away-from-zero done exactly: t = trunc(v); v - t is exact, and
// |v - t| >= 0.5 moves t one away from zero.
#include "formats/blocks.hpp"
#include "kernels/quantize/quantize_avx2_util.hpp"

namespace deepmla::kernels {

namespace {
inline __m256i round_half_away(__m256 v) {
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
  const __m256 step = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(v, sign));  // +-1 with v's sign
  const __m256 up = _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), step);
  return _mm256_cvttps_epi32(_mm256_add_ps(t, up));
}
}  // namespace

void quantize_q8_0_avx2(const float* src, void* dst, int64_t n) {
  formats::BlockQ8_0* out = static_cast<formats::BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / 32; ++i) {
    const float* x = src + i * 32;
    const float amax = hmax_ps(max_abs_32(x, _mm256_setzero_ps()));
    const float d = amax / 127.0f;
    const float id = formats::quantization_inverse(d);
    out[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int j = 0; j < 4; ++j) q[j] = round_half_away(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * j), vid));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[i].qs), pack_i32_to_i8(q[0], q[1], q[2], q[3]));
  }
}

}  // namespace deepmla::kernels
