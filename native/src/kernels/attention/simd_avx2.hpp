#pragma once
// The 8-wide float vector the AVX2 flash MLA and SwiGLU variants are written in (see
// flash_mla.hpp, activation/swiglu.hpp), and the tile sizes that fit its 16 registers.
// Internal linkage: see kernels/matmul/tiling.hpp.
#include <immintrin.h>

#include <limits>

#include <cstdint>

#include "kernels/matmul/avx2_util.hpp"

namespace deepmla::kernels {
namespace {

struct Avx2 {
  using F = __m256;
  static constexpr int W = 8;
  // Score tile: 4 query rows x 3 cache rows = 12 accumulators + 3 keys + 1 query.
  static constexpr int kScoreRows = 4, kScoreKeys = 3;
  // Value tile: 4 query rows x 2 vectors of channels = 8 accumulators. Token
  // generation's flash MLA takes 6 rows (12 accumulators, each V load used 6 times): 16
  // heads over 8192 Q8_0 cache rows, 1 thread, ~4% faster (Zen3, best 3.63 against
  // 3.75 ms of 10 alternated runs); the prompt's decompressed flash kept 4 (6 was no faster).
  static constexpr int kAccRows = 4, kAccVecs = 2, kFlashAccRows = 6;
  // decompressed_flash.hpp's score tile: 2 groups of W rows x 4 keys, 8 accumulators.
  static constexpr int kDfTileGroups = 2;

  // out[i * out_stride + r] = rows[r][i0 + i] * scale for i, r < 8 (a null row: zeros).
  static void transpose_scaled(const float* const* rows, int64_t i0, float scale, float* out, size_t out_stride) {
    const __m256 s = _mm256_set1_ps(scale);
    __m256i t[8], u[8];
    for (int r = 0; r < 8; ++r)
      t[r] = rows[r] ? _mm256_castps_si256(_mm256_mul_ps(_mm256_loadu_ps(rows[r] + i0), s)) : _mm256_setzero_si256();
    transpose_8x8_epi32(t, u);
    for (int i = 0; i < 8; ++i) _mm256_storeu_ps(out + size_t(i) * out_stride, _mm256_castsi256_ps(u[i]));
  }

  static F zero() { return _mm256_setzero_ps(); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F set1(float x) { return _mm256_set1_ps(x); }
  static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F min(F a, F b) { return _mm256_min_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static F fnma(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }  // c - a b
  static F neg(F a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
  static F round(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // 2^(n + bias) for integral n with n + bias in [1, 254], built in the exponent field.
  static F exp2i(F n, int bias) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(bias)), 23));
  }
  // The first `count` (< W) lanes; the others are 0 on load and left alone on store.
  static __m256i lanes(int64_t count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static F load_n(const float* p, int64_t count) { return _mm256_maskload_ps(p, lanes(count)); }
  static void store_n(float* p, F v, int64_t count) { _mm256_maskstore_ps(p, lanes(count), v); }
  // x in the lanes r where vis[r] > j, else `otherwise` (vis: W int32).
  static F keep_where_greater(F x, const int32_t* vis, int32_t j, F otherwise) {
    const __m256i seen = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(vis));
    return _mm256_blendv_ps(otherwise, x, _mm256_castsi256_ps(_mm256_cmpgt_epi32(seen, _mm256_set1_epi32(j))));
  }
  // x with its -inf lanes replaced by `by`.
  static F replace_neg_inf(F x, F by) {
    return _mm256_blendv_ps(x, by, _mm256_cmp_ps(x, _mm256_set1_ps(-std::numeric_limits<float>::infinity()), _CMP_EQ_OQ));
  }
  static float hsum(F v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float hmax(F v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // e^x for x <= 0 (softmax weights): Cephes' expf polynomial, relative error ~2e-7;
  // exactly 0 below -87 (and for -inf), where e^x leaves the normal floats.
  static F exp(F x) {
    const F keep = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_GE_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    const F n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), x);
    F y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(y, _mm256_castsi256_ps(e)), keep);
  }
};

}  // namespace
}  // namespace deepmla::kernels
