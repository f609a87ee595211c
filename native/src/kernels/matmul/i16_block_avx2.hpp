#pragma once
// The int16 weight panels of the AVX2 GEMMs for signed 8-bit weights (Q8_0:
// block_panel_i16_avx2.hpp, Q8_KV: matmul_q8_kv_avx2.cpp): 32 values of 16 rows widened
// to int16 and laid out so that one broadcast pair of activations and vpmaddwd give 8
// rows' partial dots per register:
//
//   for each pair p (0..15) of the 32 values two registers g: lane r of register
//   2p + g holds values 2p, 2p + 1 of row 8g + r, as int16.
#include <cstring>

#include "kernels/matmul/tiling.hpp"

namespace deepmla::kernels {
namespace {

constexpr size_t kI16BlockBytes = 16 * 2 * 32;

// Pair p (0..15) of 8 rows' 32 values, widened: out[p] lane r = values 2p, 2p + 1 of v[r].
DEEPMLA_ALWAYS_INLINE void widen_pairs_8_rows(const __m256i v[8], __m256i out[16]) {
  // A lane-local 8 x 8 transpose of 16-bit words (pairs of int8): register j ends with
  // pair j of rows 0..7 in its low 128 bits and pair j + 8 in its high 128 bits. (Widening
  // first and then two transpose_8x8_epi32 is the same result with a third
  // more shuffles: a routed expert's GEMM, n = 48, 57 -> 55 GMAC/s.)
  __m256i t[8], u[8];
  DEEPMLA_UNROLL
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_epi16(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_epi16(v[2 * i], v[2 * i + 1]);
  }
  DEEPMLA_UNROLL
  for (int i = 0; i < 2; ++i) {
    DEEPMLA_UNROLL
    for (int h = 0; h < 2; ++h) {
      u[4 * i + 2 * h] = _mm256_unpacklo_epi32(t[4 * i + h], t[4 * i + 2 + h]);
      u[4 * i + 2 * h + 1] = _mm256_unpackhi_epi32(t[4 * i + h], t[4 * i + 2 + h]);
    }
  }
  // u[m] (u[4 + m]) holds words 2m and 2m + 1 of rows 0..3 (4..7) in each lane.
  DEEPMLA_UNROLL
  for (int m = 0; m < 4; ++m) {
    const __m256i lo = _mm256_unpacklo_epi64(u[m], u[4 + m]);
    const __m256i hi = _mm256_unpackhi_epi64(u[m], u[4 + m]);
    const int j = 2 * m;
    out[j] = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(lo));
    out[j + 8] = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(lo, 1));
    out[j + 1] = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(hi));
    out[j + 9] = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(hi, 1));
  }
}

// 32 int8 values at q as int16 at out.
inline void widen_32_values(const int8_t* q, int16_t* out) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_cvtepi8_epi16(_mm256_castsi256_si128(v)));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 16), _mm256_cvtepi8_epi16(_mm256_extracti128_si256(v, 1)));
}

// The 32 values of 16 rows as one panel block at out (32-byte aligned); values(r) gives
// row r's 32 int8 (8 rows at a time, so they stay in registers).
template <class Values>
DEEPMLA_ALWAYS_INLINE void store_i16_block(Values values, uint8_t* out) {
  DEEPMLA_UNROLL
  for (int g = 0; g < 2; ++g) {
    __m256i v[8], pairs[16];
    DEEPMLA_UNROLL
    for (int r = 0; r < 8; ++r) v[r] = values(8 * g + r);
    widen_pairs_8_rows(v, pairs);
    DEEPMLA_UNROLL
    for (int p = 0; p < 16; ++p) _mm256_store_si256(reinterpret_cast<__m256i*>(out + 32 * (2 * p + g)), pairs[p]);
  }
}

// One panel block q against C activation rows' 32 int16 values at a, a + k, ...: the 16
// rows' int32 partial dots added to sum[c][0] (rows 0..7) and sum[c][1] (rows 8..15).
template <int C>
DEEPMLA_ALWAYS_INLINE void madd_i16_block(const __m256i* q, const int16_t* a, int64_t k, __m256i (&sum)[C][2]) {
  // By 4: a routed expert's n = 48 ran 55 -> 58 GMAC/s against by 2 (Q8_0, n = 512 the
  // same); all 16 spill the sums.
  DEEPMLA_UNROLL_4
  for (int p = 0; p < 16; ++p) {
    const __m256i w0 = _mm256_load_si256(q + 2 * p), w1 = _mm256_load_si256(q + 2 * p + 1);
    DEEPMLA_UNROLL
    for (int c = 0; c < C; ++c) {
      int32_t pair;
      std::memcpy(&pair, a + size_t(c) * size_t(k) + 2 * p, 4);
      const __m256i av = _mm256_set1_epi32(pair);
      sum[c][0] = _mm256_add_epi32(sum[c][0], _mm256_madd_epi16(w0, av));
      sum[c][1] = _mm256_add_epi32(sum[c][1], _mm256_madd_epi16(w1, av));
    }
  }
}

// Blocks per k slice: nb cut into slices of at most slice_max, evened out.
inline int64_t slice_blocks_of(int64_t nb, int64_t slice_max) {
  const int64_t slices = (nb + slice_max - 1) / slice_max;
  return (nb + slices - 1) / slices;
}

// The loop nest of both int16 GEMMs: activation rows [0, n) in chunks that stay in L3,
// widen(i0, i1) once per chunk; then for each panel of 16 weight rows [r, r + rows) of
// [r0, r1) and each slice [b0, b0 + sb) of the nb blocks (at most slice_max, evened out),
// pack(r, rows, b0, sb) and tile(i0, i, cols, r, rows, b0, sb, pf) for every C activation
// rows of the chunk. While a slice's tiles run, pf brings in the next slice of these rows,
// else the next panel's. A weight row's blocks start data_offset bytes in, block_bytes apart.
template <int C, class Widen, class Pack, class Tile>
DEEPMLA_ALWAYS_INLINE void run_i16_panels(int64_t nb, int64_t slice_max, const uint8_t* w, size_t w_row_bytes,
                                          size_t data_offset, size_t block_bytes, int64_t r0, int64_t r1,
                                          size_t x_row_bytes, int64_t n, Widen widen, Pack pack, Tile tile) {
  constexpr int R = 16;
  const int64_t slice_blocks = slice_blocks_of(nb, slice_max);
  const size_t slice_bytes = size_t(slice_blocks) * block_bytes;
  // Widened rows are twice the bytes of the int8 rows they come from.
  const int64_t chunk = chunk_rows(kPanelChunkBytes / 2, x_row_bytes, n, C);
  for (int64_t i0 = 0; i0 < n; i0 += chunk) {
    const int64_t i1 = n - i0 < chunk ? n : i0 + chunk;
    widen(i0, i1);
    for (int64_t r = r0; r < r1; r += R) {
      const int rows = int(r1 - r < R ? r1 - r : R);
      for (int64_t b0 = 0; b0 < nb; b0 += slice_blocks) {
        const int64_t sb = nb - b0 < slice_blocks ? nb - b0 : slice_blocks;
        pack(r, rows, b0, sb);
        PanelPrefetcher pf;
        const int64_t steps = (i1 - i0 + C - 1) / C * sb;
        if (b0 + sb < nb) {
          pf.reset(w + size_t(r) * w_row_bytes + data_offset + size_t(b0 + sb) * block_bytes, w_row_bytes, rows, steps,
                   slice_bytes);
        } else {
          pf.reset(w + size_t(r + R) * w_row_bytes, w_row_bytes, next_panel_rows(r + R, r1, R), steps,
                   slice_blocks < nb ? slice_bytes : 0);
        }
        for (int64_t i = 0; i < i1 - i0; i += C) tile(i0, i, i1 - i0 - i < C ? int(i1 - i0 - i) : C, r, rows, b0, sb, pf);
      }
    }
  }
}

}  // namespace
}  // namespace deepmla::kernels
