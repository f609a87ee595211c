#pragma once
// The AVX2 matmul for weights in 32-value blocks with an fp16 scale (Q8_0, Q6_0) against
// Q8_0 activations, through a row-interleaved panel built on the fly (the layout of
// ik_llama.cpp's Q8_0_R8, which it also converts to on the fly for large batches):
//
//   panel block b of 8 weight rows = float d[8] (the rows' scales), then 8 x 32 bytes:
//   register l (l = 0..7) holds quants 4l..4l+3 of rows 0..7, row r in 32-bit lane r.
//
// One activation dword broadcast against register l gives, after maddubs + madd, the
// 8 rows' partial dots in 8 lanes; 8 registers make a block's integer dot for 8 rows at
// once, so the float work (convert, scale, FMA) is one vector op per 8 rows and no
// horizontal sum is left at the end: y[c][r0..r0+8) is one store. Weights are read from
// memory once per call (per activation chunk); the panel (8 rows x k, 9 bytes per value)
// stays in L1/L2 while every activation row of the chunk streams by.
//
// A format supplies:
//   struct Weights { using Block = ...; static constexpr int kOffset = ...;
//                    static __m256i raw_values(const Block*); };
// raw_values returns the 32 quants as stored, q + kOffset. kOffset = 0 (Q8_0): signed
// quants, dotted with the sign trick (|w| x sign(a, w)). kOffset > 0 (Q6_0, 32): the
// quants are unsigned 0..63, dotted directly by maddubs (unsigned x signed), two
// maddubs summed in int16 (2 * 2 * 63 * 127 < 32767), and kOffset * sum(a) subtracted
// in int32: the integer dot stays exact, so the float part equals the tile's.
//
// Signed quants with n >= kI16PanelMinN activation rows take block_panel_i16_avx2.hpp
// instead (no sign trick: faster on Zen3 once the wider pack is amortized).
#include <cstring>
#include <vector>

#include "formats/blocks.hpp"
#include "kernels/matmul/avx2_util.hpp"
#include "kernels/matmul/block_gemv_avx2.hpp"
#include "kernels/matmul/block_panel_i16_avx2.hpp"
#include "kernels/matmul/block_tile_avx2.hpp"
#include "kernels/matmul/tiling.hpp"

namespace deepmla::kernels {
namespace {

constexpr int kPanelRows = 8;
constexpr size_t kPanelBlockBytes = 32 + 8 * 32;  // float d[8] + 8 registers

// Packs `rows` (<= 8) weight rows into the panel; missing rows are zero with zero scale.
template <class Weights>
void pack_panel(int64_t nb, const uint8_t* w, size_t w_row_bytes, int rows, uint8_t* panel) {
  using Block = typename Weights::Block;
  const Block* wr[kPanelRows];
  for (int r = 0; r < kPanelRows; ++r) wr[r] = reinterpret_cast<const Block*>(w + size_t(r < rows ? r : 0) * w_row_bytes);
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* out = panel + size_t(b) * kPanelBlockBytes;
    // The 8 scales converted by one vcvtph2ps instead of one by one; with the transpose's
    // loops unrolled (avx2_util.hpp) the pack went 60 -> 20 cycles per block (Zen3).
    alignas(16) uint16_t d16[kPanelRows];
    __m256i v[kPanelRows], t[kPanelRows];
    DEEPMLA_UNROLL
    for (int r = 0; r < kPanelRows; ++r) {
      if (r < rows) {
        d16[r] = wr[r][b].d;
        v[r] = Weights::raw_values(wr[r] + b);
      } else {
        d16[r] = 0;
        v[r] = _mm256_set1_epi8(char(Weights::kOffset));  // zero values
      }
    }
    _mm256_storeu_ps(reinterpret_cast<float*>(out), _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(d16))));
    transpose_8x8_epi32(v, t);
    DEEPMLA_UNROLL
    for (int l = 0; l < 8; ++l) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 + 32 * l), t[l]);
  }
}

inline __m256i broadcast_dword(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Per activation row and block, for unsigned weights (kOffset > 0): its float scale and
// kOffset * sum(a), computed once per chunk. Signed weights need only the scale, which
// the tile reads from the block it loads anyway: a separate pass over every block of the
// chunk cost ~1% of prompt processing in cache misses.
struct ActivationMeta {
  float d;
  int32_t offset_sum;
};

template <int kOffset>
void activation_meta(int64_t nb, const uint8_t* x, size_t x_row_bytes, int64_t n, ActivationMeta* meta) {
  static_assert(kOffset > 0, "signed weights read the scales in the tile");
  using formats::BlockQ8_0;
  const __m256i ones8 = _mm256_set1_epi8(1);
  for (int64_t i = 0; i < n; ++i) {
    const BlockQ8_0* xb = reinterpret_cast<const BlockQ8_0*>(x + size_t(i) * x_row_bytes);
    for (int64_t b = 0; b < nb; ++b) {
      ActivationMeta& m = meta[i * nb + b];
      m.d = _cvtsh_ss(xb[b].d);
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb[b].qs));
      const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, a), _mm256_set1_epi16(1));
      m.offset_sum = kOffset * hsum_epi32(s);
    }
  }
}

// 8 panel rows x C activation rows; writes `rows` (<= 8) outputs per activation row.
template <int kOffset, int C>
void panel_tile(int64_t nb, const uint8_t* panel, const uint8_t* x, size_t x_row_bytes, const ActivationMeta* meta,
                int rows, float* y, size_t y_stride, PanelPrefetcher& pf) {
  using formats::BlockQ8_0;
  const BlockQ8_0* xc[C];
  DEEPMLA_UNROLL
  for (int c = 0; c < C; ++c) xc[c] = reinterpret_cast<const BlockQ8_0*>(x + size_t(c) * x_row_bytes);
  const __m256i ones16 = _mm256_set1_epi16(1);
  __m256 acc[C];
  DEEPMLA_UNROLL
  for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* pb = panel + size_t(b) * kPanelBlockBytes;
    pf.step();
    const __m256i* q = reinterpret_cast<const __m256i*>(pb + 32);
    __m256i sum[C];
    if constexpr (kOffset == 0) {
      DEEPMLA_UNROLL
      for (int c = 0; c < C; ++c) sum[c] = _mm256_setzero_si256();
      // Not fully unrolled: with all 8 steps in flight GCC keeps 32 products live and
      // spills them to the stack.
      DEEPMLA_UNROLL_2
      for (int l = 0; l < 8; ++l) {
        const __m256i w = _mm256_load_si256(q + l);
        const __m256i w_abs = _mm256_abs_epi8(w);
        DEEPMLA_UNROLL
        for (int c = 0; c < C; ++c) {
          const __m256i a = broadcast_dword(xc[c][b].qs + 4 * l);
          sum[c] = _mm256_add_epi32(sum[c], _mm256_madd_epi16(_mm256_maddubs_epi16(w_abs, _mm256_sign_epi8(a, w)), ones16));
        }
      }
    } else {
      DEEPMLA_UNROLL
      for (int l = 0; l < 8; l += 2) {
        const __m256i w0 = _mm256_load_si256(q + l), w1 = _mm256_load_si256(q + l + 1);
        DEEPMLA_UNROLL
        for (int c = 0; c < C; ++c) {
          const __m256i p16 = _mm256_add_epi16(_mm256_maddubs_epi16(w0, broadcast_dword(xc[c][b].qs + 4 * l)),
                                               _mm256_maddubs_epi16(w1, broadcast_dword(xc[c][b].qs + 4 * l + 4)));
          const __m256i p = _mm256_madd_epi16(p16, ones16);
          sum[c] = l == 0 ? p : _mm256_add_epi32(sum[c], p);
        }
      }
      DEEPMLA_UNROLL
      for (int c = 0; c < C; ++c) sum[c] = _mm256_sub_epi32(sum[c], _mm256_set1_epi32(meta[c * nb + b].offset_sum));
    }
    const __m256 dw = _mm256_load_ps(reinterpret_cast<const float*>(pb));
    DEEPMLA_UNROLL
    for (int c = 0; c < C; ++c) {
      const float da = kOffset == 0 ? _cvtsh_ss(xc[c][b].d) : meta[c * nb + b].d;
      acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[c]), _mm256_mul_ps(dw, _mm256_set1_ps(da)), acc[c]);
    }
  }
  DEEPMLA_UNROLL
  for (int c = 0; c < C; ++c) {
    if (rows == kPanelRows) {
      _mm256_storeu_ps(y + size_t(c) * y_stride, acc[c]);
    } else {
      alignas(32) float out[kPanelRows];
      _mm256_store_ps(out, acc[c]);
      for (int r = 0; r < rows; ++r) y[size_t(c) * y_stride + size_t(r)] = out[r];
    }
  }
}

// Below this many activation rows, packing costs more than it saves (measured on Zen3:
// the panel wins from n = 4 on): the rows are dotted in place by block_tile_avx2.
constexpr int64_t kPanelMinN = 4;

// block_tile_avx2's view of a format: signed quants q = raw - kOffset.
template <class Weights>
struct SignedView {
  using Block = typename Weights::Block;
  static __m256i values(const Block* b) {
    const __m256i raw = Weights::raw_values(b);
    return Weights::kOffset ? _mm256_sub_epi8(raw, _mm256_set1_epi8(char(Weights::kOffset))) : raw;
  }
};

template <class Weights, int R, int C>
void direct_tile(int64_t k, const uint8_t* w, size_t wb, const uint8_t* x, size_t xb, float* y, size_t ys) {
  block_tile_avx2<SignedView<Weights>, R, C>(k, w, wb, x, xb, y, ys);
}

// The MatmulFn body: activation rows in chunks that stay in L3, then for each group of
// 8 weight rows one panel and every activation row of the chunk, 6 at a time.
template <class Weights>
void run_panels(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x,
                size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  constexpr int kOffset = Weights::kOffset;
  // 8 x 6 tiles: 12 accumulators fit the 16 registers beside the weights, and the
  // per-register weight load is shared by 6 activation rows (1 thread, k = m = 2048,
  // n = 510: 57.0 GMAC/s against 55.5 with 8 x 4).
  constexpr int C = 6;
  using PanelTileFn = void (*)(int64_t, const uint8_t*, const uint8_t*, size_t, const ActivationMeta*, int, float*,
                               size_t, PanelPrefetcher&);
  static constexpr PanelTileFn panel_tiles[C + 1] = {
      nullptr,                panel_tile<kOffset, 1>, panel_tile<kOffset, 2>, panel_tile<kOffset, 3>,
      panel_tile<kOffset, 4>, panel_tile<kOffset, 5>, panel_tile<kOffset, 6>};
  const int64_t nb = k / 32;
  if (nb == 0 || r1 <= r0 || n <= 0) return;
  if (n == 1) {
    run_gemv<Weights>(k, w, w_row_bytes, r0, r1, x, y);
    return;
  }
  if (n < kPanelMinN) {
    // GEMV's neighbours: 4 weight rows x 2 or 3 activation rows in place.
    static const TileFn tiles[4][3] = {
        {direct_tile<Weights, 1, 1>, direct_tile<Weights, 1, 2>, direct_tile<Weights, 1, 3>},
        {direct_tile<Weights, 2, 1>, direct_tile<Weights, 2, 2>, direct_tile<Weights, 2, 3>},
        {direct_tile<Weights, 3, 1>, direct_tile<Weights, 3, 2>, direct_tile<Weights, 3, 3>},
        {direct_tile<Weights, 4, 1>, direct_tile<Weights, 4, 2>, direct_tile<Weights, 4, 3>}};
    run_tiles(tiles, k, w, w_row_bytes, r0, r1, x, x_row_bytes, n, y, y_stride);
    return;
  }
  if constexpr (kOffset == 0) {
    if (n >= kI16PanelMinN) {
      run_panels_i16<Weights>(k, w, w_row_bytes, r0, r1, x, x_row_bytes, n, y, y_stride);
      return;
    }
  }
  auto& s = PanelScratch<32, ActivationMeta>::of_this_thread();
  uint8_t* panel = s.panel_bytes(size_t(nb) * kPanelBlockBytes);
  const int64_t chunk = chunk_rows(kPanelChunkBytes, x_row_bytes, n, C);
  ActivationMeta* meta = kOffset > 0 ? s.metas(size_t(chunk * nb)) : nullptr;
  for (int64_t i0 = 0; i0 < n; i0 += chunk) {
    const int64_t i1 = n - i0 < chunk ? n : i0 + chunk;
    const uint8_t* xi = x + size_t(i0) * x_row_bytes;
    if constexpr (kOffset > 0) activation_meta<kOffset>(nb, xi, x_row_bytes, i1 - i0, meta);
    PanelPrefetcher pf;
    const int64_t steps = (i1 - i0 + C - 1) / C * nb;
    for (int64_t r = r0; r < r1; r += kPanelRows) {
      const int rows = int(r1 - r < kPanelRows ? r1 - r : kPanelRows);
      pack_panel<Weights>(nb, w + size_t(r) * w_row_bytes, w_row_bytes, rows, panel);
      pf.reset(w + size_t(r + kPanelRows) * w_row_bytes, w_row_bytes, next_panel_rows(r + kPanelRows, r1, kPanelRows),
               steps);
      float* yr = y + size_t(i0) * y_stride + size_t(r);
      for (int64_t i = 0; i < i1 - i0; i += C) {
        const int64_t cols = i1 - i0 - i < C ? i1 - i0 - i : C;
        const ActivationMeta* mi = kOffset > 0 ? meta + i * nb : nullptr;
        panel_tiles[cols](nb, panel, xi + size_t(i) * x_row_bytes, x_row_bytes, mi, rows, yr + size_t(i) * y_stride,
                          y_stride, pf);
      }
    }
  }
}

}  // namespace
}  // namespace deepmla::kernels
