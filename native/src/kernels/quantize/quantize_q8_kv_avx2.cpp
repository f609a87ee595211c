// F32 -> Q8_KV activations, AVX2. Bit-identical to formats/q8_kv.cpp: the same float
// expressions for d and 1/d, round to nearest even (std::nearbyint in the default mode),
// and the exact int32 sum of the quants in the header.
#include <cstring>

#include "formats/blocks.hpp"
#include "formats/formats.hpp"
#include "kernels/quantize/quantize_avx2_util.hpp"

namespace deepmla::kernels {

void quantize_q8_kv_avx2(const float* src, void* dst, int64_t n) {
  if (n % 32 != 0) {  // not a valid Q8_KV row length; keep the reference's behaviour
    formats::q8_kv_quantize_row(src, dst, n);
    return;
  }
  formats::RowHeaderQ8_KV h{0, 0};
  int8_t* q = static_cast<int8_t*>(dst) + sizeof h;
  __m256 vmax = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 32) vmax = max_abs_32(src + i, vmax);
  const float amax = hmax_ps(vmax);
  if (amax == 0) {
    std::memset(q, 0, size_t(n));
  } else {
    h.d = amax / 127.0f;
    const __m256 vid = _mm256_set1_ps(formats::quantization_inverse(h.d));
    __m256i sum = _mm256_setzero_si256();
    for (int64_t i = 0; i < n; i += 32) {
      __m256i v[4];
      for (int j = 0; j < 4; ++j) {
        const __m256 scaled = _mm256_mul_ps(_mm256_loadu_ps(src + i + 8 * j), vid);
        v[j] = _mm256_cvtps_epi32(_mm256_round_ps(scaled, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        sum = _mm256_add_epi32(sum, v[j]);
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), pack_i32_to_i8(v[0], v[1], v[2], v[3]));
    }
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    h.sum = _mm_cvtsi128_si32(s);
  }
  std::memcpy(dst, &h, sizeof h);
}

}  // namespace deepmla::kernels
