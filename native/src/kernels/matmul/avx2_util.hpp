#pragma once
// Small AVX2 helpers for the _avx2 kernel files only (internal linkage: see tiling.hpp).
#include <immintrin.h>

#include <cstdint>

#include "kernels/unroll.hpp"

namespace deepmla::kernels {
namespace {

inline float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

// Sum of the 32 signed bytes of v (exact: maddubs pairs them into int16, madd into int32).
inline int32_t sum_i8x32(__m256i v) {
  return hsum_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), v), _mm256_set1_epi16(1)));
}

// Sum of w[j] * a[j] over 32 int8 pairs, as 8 int32 lanes. maddubs multiplies unsigned
// by signed bytes, so |w| takes the sign of w over to a (the "sign trick"). Exact as
// long as a != -128: a pair sum is at most 2 * 128 * 127 < 32767 in int16. Activations
// come from our quantizers, which never produce -128; weights may hold any int8.
inline __m256i dot_i8x32(__m256i w_abs, __m256i w, __m256i a) {
  const __m256i p16 = _mm256_maddubs_epi16(w_abs, _mm256_sign_epi8(a, w));
  return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

// 8 x 8 transpose of 32-bit lanes: out[l] lane r = in[r] lane l.
DEEPMLA_ALWAYS_INLINE void transpose_8x8_epi32(const __m256i in[8], __m256i out[8]) {
  __m256i t[8], u[8];
  DEEPMLA_UNROLL
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_epi32(in[2 * i], in[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_epi32(in[2 * i], in[2 * i + 1]);
  }
  DEEPMLA_UNROLL
  for (int i = 0; i < 2; ++i) {
    u[4 * i + 0] = _mm256_unpacklo_epi64(t[4 * i + 0], t[4 * i + 2]);
    u[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i + 0], t[4 * i + 2]);
    u[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  DEEPMLA_UNROLL
  for (int l = 0; l < 4; ++l) {
    out[l] = _mm256_permute2x128_si256(u[l], u[4 + l], 0x20);
    out[l + 4] = _mm256_permute2x128_si256(u[l], u[4 + l], 0x31);
  }
}

}  // namespace
}  // namespace deepmla::kernels
