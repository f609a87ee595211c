#pragma once
// Small AVX512 helpers for the _avx512* kernel files only (internal linkage: see tiling.hpp).
#include <immintrin.h>

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX512 headers build casts and conversions on _mm*_undefined_*() values,
// which -Wuninitialized flags at every inlined use (GCC PR 105593). Only files that
// include this header (the _avx512* kernels) are affected.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <cstdint>

#include "kernels/unroll.hpp"

namespace deepmla::kernels {
namespace {

inline float hsum512_ps(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int32_t hsum512_epi32(__m512i v) {
  const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

// [lo x 8 | hi x 8]: the scales of two consecutive 32-value blocks, lane-aligned with a
// 512-bit register holding both blocks' products.
inline __m512 two_scales(float lo, float hi) {
  return _mm512_insertf32x8(_mm512_set1_ps(lo), _mm256_set1_ps(hi), 1);
}

inline __m512i two_halves(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// Two 8 x 8 dword transposes at once: in[i] holds row i in its low half and row i + 8 in
// its high half; out[l] gets dword l of rows 0..7 (low half) and of rows 8..15 (high).
// transpose_8x8_epi32's steps on 512-bit registers (the unpacks work within 128-bit
// lanes either way), with vpermt2q for its cross-lane step: 24 shuffles for 16 rows
// instead of 48 plus 8 merges.
DEEPMLA_ALWAYS_INLINE void transpose_2x8x8_epi32(const __m512i in[8], __m512i out[8]) {
  __m512i t[8], u[8];
  DEEPMLA_UNROLL
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(in[2 * i], in[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(in[2 * i], in[2 * i + 1]);
  }
  DEEPMLA_UNROLL
  for (int i = 0; i < 2; ++i) {
    u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i + 0], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i + 0], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  // Per 256-bit half, 128-bit lane 0 of u[l] then of u[4 + l] (out[l]), lane 1 of each
  // (out[l + 4]).
  const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
  const __m512i second = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
  DEEPMLA_UNROLL
  for (int l = 0; l < 4; ++l) {
    out[l] = _mm512_permutex2var_epi64(u[l], first, u[4 + l]);
    out[l + 4] = _mm512_permutex2var_epi64(u[l], second, u[4 + l]);
  }
}

// 16 rows of 32 bytes as 8 registers at out (64-byte aligned): register l holds bytes
// 4l..4l+3 of row r in 32-bit lane r, the layout of every VNNI panel (a broadcast dword
// against register l is one vpdpbusd for the 16 rows).
DEEPMLA_ALWAYS_INLINE void store_dword_lanes_16x32(const __m256i v[16], uint8_t* out) {
  __m512i in[8], t[8];
  DEEPMLA_UNROLL
  for (int r = 0; r < 8; ++r) in[r] = two_halves(v[r], v[r + 8]);
  transpose_2x8x8_epi32(in, t);  // rows 0..7 -> lanes 0..7, rows 8..15 -> lanes 8..15
  DEEPMLA_UNROLL
  for (int l = 0; l < 8; ++l) _mm512_store_si512(reinterpret_cast<void*>(out + 64 * l), t[l]);
}

// r[j] becomes column j of the 16 x 16 dword matrix whose row i was r[i].
DEEPMLA_ALWAYS_INLINE void transpose_16x16_epi32(__m512i r[16]) {
  __m512i a[16], b[16];
  DEEPMLA_UNROLL
  for (int i = 0; i < 8; ++i) {
    a[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // b[4i + c], 128-bit lane L: column 4L + c of rows 4i..4i+3.
  DEEPMLA_UNROLL
  for (int i = 0; i < 4; ++i) {
    b[4 * i] = _mm512_unpacklo_epi64(a[4 * i], a[4 * i + 2]);
    b[4 * i + 1] = _mm512_unpackhi_epi64(a[4 * i], a[4 * i + 2]);
    b[4 * i + 2] = _mm512_unpacklo_epi64(a[4 * i + 1], a[4 * i + 3]);
    b[4 * i + 3] = _mm512_unpackhi_epi64(a[4 * i + 1], a[4 * i + 3]);
  }
  // Column 4L + c = lane L of b[c], b[4 + c], b[8 + c], b[12 + c]: a 4 x 4 transpose of lanes.
  DEEPMLA_UNROLL
  for (int c = 0; c < 4; ++c) {
    const __m512i t0 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0x44), t1 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0xEE);
    const __m512i t2 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0x44),
                  t3 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0xEE);
    r[c] = _mm512_shuffle_i32x4(t0, t2, 0x88);
    r[4 + c] = _mm512_shuffle_i32x4(t0, t2, 0xDD);
    r[8 + c] = _mm512_shuffle_i32x4(t1, t3, 0x88);
    r[12 + c] = _mm512_shuffle_i32x4(t1, t3, 0xDD);
  }
}

}  // namespace
}  // namespace deepmla::kernels
