// F32 -> BF16 activation rows (the AMX GEMM's), AVX512. Bit-identical to fp32_to_bf16
// (formats/half.cpp): nearest even done on the integer bits, so that denormals round as
// they do there (vcvtneps2bf16 would flush them to zero), and NaNs stay quiet NaNs.
#include <immintrin.h>

#include <cstdint>

namespace deepmla::kernels {

namespace {
inline __m256i to_bf16(__m512i x) {
  const __m512i abs = _mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(abs, _mm512_set1_epi32(0x7f800000));
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(x, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(x, 16), _mm512_set1_epi32(64));
  return _mm512_cvtepi32_epi16(r);
}
}  // namespace

void quantize_bf16_avx512(const float* src, void* dst, int64_t n) {
  uint16_t* out = static_cast<uint16_t*>(dst);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), to_bf16(_mm512_loadu_si512(src + i)));
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    _mm256_mask_storeu_epi16(out + i, m, to_bf16(_mm512_maskz_loadu_epi32(m, src + i)));
  }
}

}  // namespace deepmla::kernels
