#pragma once
// The 16-wide float vector the AVX512 flash MLA and SwiGLU variants are written in (see
// flash_mla.hpp, activation/swiglu.hpp), and tile sizes for its 32 registers. Internal
// linkage: see kernels/matmul/tiling.hpp.
#include <immintrin.h>

#include <limits>

// hsum512_ps, and the GCC 12 AVX512 warning suppression every _avx512 file needs.
#include "kernels/matmul/avx512_util.hpp"

namespace deepmla::kernels {
namespace {

struct Avx512 {
  using F = __m512;
  static constexpr int W = 16;
  // Score tile: 4 query rows x 4 cache rows = 16 accumulators + 4 keys + 1 query.
  static constexpr int kScoreRows = 4, kScoreKeys = 4;
  // Value tile: 4 query rows x 4 vectors of channels = 16 accumulators.
  static constexpr int kAccRows = 4, kAccVecs = 4, kFlashAccRows = kAccRows;
  // decompressed_flash.hpp's score tile: 4 groups of W rows x 4 keys, 16 accumulators.
  static constexpr int kDfTileGroups = 4;

  // out[i * out_stride + r] = rows[r][i0 + i] * scale for r, i < 16 (a null row: zeros).
  static void transpose_scaled(const float* const* rows, int64_t i0, float scale, float* out, size_t out_stride) {
    const __m512 s = _mm512_set1_ps(scale);
    __m512i t[16];
    for (int r = 0; r < 16; ++r)
      t[r] = rows[r] ? _mm512_castps_si512(_mm512_mul_ps(_mm512_loadu_ps(rows[r] + i0), s)) : _mm512_setzero_si512();
    transpose_16x16_epi32(t);
    for (int i = 0; i < 16; ++i) _mm512_storeu_ps(out + size_t(i) * out_stride, _mm512_castsi512_ps(t[i]));
  }

  static F zero() { return _mm512_setzero_ps(); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F set1(float x) { return _mm512_set1_ps(x); }
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static F min(F a, F b) { return _mm512_min_ps(a, b); }
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  static F fnma(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }  // c - a b
  static F neg(F a) { return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32(INT32_MIN))); }
  static F round(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // 2^(n + bias) for integral n with n + bias in [1, 254], built in the exponent field.
  static F exp2i(F n, int bias) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(bias)), 23));
  }
  // The first `count` (< W) lanes; the others are 0 on load and left alone on store.
  static F load_n(const float* p, int64_t count) { return _mm512_maskz_loadu_ps(__mmask16((1u << count) - 1), p); }
  static void store_n(float* p, F v, int64_t count) { _mm512_mask_storeu_ps(p, __mmask16((1u << count) - 1), v); }
  // x in the lanes r where vis[r] > j, else `otherwise` (vis: W int32).
  static F keep_where_greater(F x, const int32_t* vis, int32_t j, F otherwise) {
    const __m512i seen = _mm512_loadu_si512(reinterpret_cast<const void*>(vis));
    return _mm512_mask_mov_ps(otherwise, _mm512_cmpgt_epi32_mask(seen, _mm512_set1_epi32(j)), x);
  }
  // x with its -inf lanes replaced by `by`.
  static F replace_neg_inf(F x, F by) {
    return _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, _mm512_set1_ps(-std::numeric_limits<float>::infinity()), _CMP_EQ_OQ), by);
  }
  // Halves by hand: GCC 12's _mm512_reduce_* warn about an undefined register.
  static float hsum(F v) { return hsum512_ps(v); }
  static float hmax(F v) {
    const __m256 h = _mm256_max_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // e^x for x <= 0, as Avx2::exp (same polynomial); exactly 0 below -87.
  static F exp(F x) {
    const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_GE_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
    const F n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    x = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), x);
    F y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mov_ps(keep, _mm512_mul_ps(y, _mm512_castsi512_ps(e)));
  }
};

}  // namespace
}  // namespace deepmla::kernels
