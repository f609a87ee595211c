#pragma once
// The AVX512-VNNI matmul for weights in 32-value blocks with an fp16 scale (Q8_0, Q6_0)
// against Q8_0 activations, for n >= kVnniPanelMinN activation rows: block_panel_avx2.hpp's
// row-interleaved panel widened to 16 rows, built on the fly per 16 weight rows:
//
//   panel block b of 16 rows = float d[16], then 8 x 64 bytes: register l (l = 0..7)
//   holds quants 4l..4l+3 of rows 0..15 as unsigned bytes u = q + kOffset, row r in
//   32-bit lane r.
//
// One activation dword broadcast against register l is one vpdpbusd (unsigned weights x
// signed activations, 4 products summed into each int32 lane) for 16 rows; 8 of them make
// the block's integer dot for 16 rows. Each dot starts from -kOffset * sum(a) of the
// activation block (exact in int32 for any int8 activation), so the float part, one FMA
// per 16 rows, has the same terms as the scalar vec_dot.
//
// A format supplies (as for block_tile_avx512vnni.hpp):
//   struct Weights { using Block = ...; static constexpr int kOffset = ...;
//                    static __m256i unsigned_values(const Block*); };
// Fewer activation rows use block_tile_avx512vnni.hpp's tiles (packing would cost more
// than it saves).
#include <cstring>
#include <vector>

#include "formats/blocks.hpp"
#include "kernels/matmul/avx2_util.hpp"
#include "kernels/matmul/avx512_util.hpp"
#include "kernels/matmul/tiling.hpp"

namespace deepmla::kernels {
namespace {

constexpr int kVnniPanelRows = 16;
constexpr size_t kVnniPanelBlockBytes = 64 + 8 * 64;  // float d[16] + 8 registers
constexpr int64_t kVnniPanelMinN = 4;

template <class Weights>
void pack_panel_vnni(int64_t nb, const uint8_t* w, size_t w_row_bytes, int rows, uint8_t* panel) {
  using Block = typename Weights::Block;
  const Block* wr[kVnniPanelRows];
  for (int r = 0; r < kVnniPanelRows; ++r)
    wr[r] = reinterpret_cast<const Block*>(w + size_t(r < rows ? r : 0) * w_row_bytes);
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* out = panel + size_t(b) * kVnniPanelBlockBytes;
    // Unrolled, with the 16 scales converted by one vcvtph2ps: as a loop its registers went
    // through the stack (the AVX2 packs' same change: 3x faster on Zen3; not timed here).
    alignas(32) uint16_t d16[kVnniPanelRows];
    __m256i v[kVnniPanelRows];
    DEEPMLA_UNROLL
    for (int r = 0; r < kVnniPanelRows; ++r) {
      // Missing rows: value 0 (u = kOffset) with scale 0.
      d16[r] = r < rows ? wr[r][b].d : 0;
      v[r] = r < rows ? Weights::unsigned_values(wr[r] + b) : _mm256_set1_epi8(char(Weights::kOffset));
    }
    _mm512_storeu_ps(out, _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(d16))));
    store_dword_lanes_16x32(v, out + 64);
  }
}

// Per activation row and block: float scale and -kOffset * sum(a), the dot's start.
struct VnniActivationMeta {
  float d;
  int32_t start;
};

template <int kOffset>
void vnni_activation_meta(int64_t nb, const uint8_t* x, size_t x_row_bytes, int64_t n, VnniActivationMeta* meta) {
  using formats::BlockQ8_0;
  for (int64_t i = 0; i < n; ++i) {
    const BlockQ8_0* xb = reinterpret_cast<const BlockQ8_0*>(x + size_t(i) * x_row_bytes);
    for (int64_t b = 0; b < nb; ++b) {
      const int32_t sum = sum_i8x32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb[b].qs)));
      meta[i * nb + b] = {_cvtsh_ss(xb[b].d), -kOffset * sum};
    }
  }
}

inline __m512i broadcast_dword512(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// P panels (16 rows each, panel_bytes apart) x C activation rows; all rows of the first
// P - 1 panels and `rows` (<= 16) of the last are written per activation row. With P = 2
// each activation broadcast feeds two vpdpbusd instead of one.
template <int P, int C>
void panel_tile_vnni(int64_t nb, const uint8_t* panel, size_t panel_bytes, const uint8_t* x, size_t x_row_bytes,
                     const VnniActivationMeta* meta, int rows, float* y, size_t y_stride, PanelPrefetcher& pf) {
  using formats::BlockQ8_0;
  const BlockQ8_0* xc[C];
  for (int c = 0; c < C; ++c) xc[c] = reinterpret_cast<const BlockQ8_0*>(x + size_t(c) * x_row_bytes);
  __m512 acc[P][C];
  DEEPMLA_UNROLL
  for (int p = 0; p < P; ++p)
    DEEPMLA_UNROLL
    for (int c = 0; c < C; ++c) acc[p][c] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* pb = panel + size_t(b) * kVnniPanelBlockBytes;
    pf.step();
    __m512i sum[P][C];
    DEEPMLA_UNROLL
    for (int c = 0; c < C; ++c) {
      const __m512i start = _mm512_set1_epi32(meta[c * nb + b].start);
      DEEPMLA_UNROLL
      for (int p = 0; p < P; ++p) sum[p][c] = start;
    }
    DEEPMLA_UNROLL
    for (int l = 0; l < 8; ++l) {
      __m512i u[P];
      DEEPMLA_UNROLL
      for (int p = 0; p < P; ++p)
        u[p] = _mm512_load_si512(reinterpret_cast<const void*>(pb + p * panel_bytes + 64 + 64 * l));
      DEEPMLA_UNROLL
      for (int c = 0; c < C; ++c) {
        const __m512i a = broadcast_dword512(xc[c][b].qs + 4 * l);
        DEEPMLA_UNROLL
        for (int p = 0; p < P; ++p) sum[p][c] = _mm512_dpbusd_epi32(sum[p][c], u[p], a);
      }
    }
    __m512 dw[P];
    DEEPMLA_UNROLL
    for (int p = 0; p < P; ++p) dw[p] = _mm512_load_ps(reinterpret_cast<const float*>(pb + p * panel_bytes));
    DEEPMLA_UNROLL
    for (int c = 0; c < C; ++c) {
      const __m512 da = _mm512_set1_ps(meta[c * nb + b].d);
      DEEPMLA_UNROLL
      for (int p = 0; p < P; ++p)
        acc[p][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[p][c]), _mm512_mul_ps(dw[p], da), acc[p][c]);
    }
  }
  for (int c = 0; c < C; ++c) {
    float* yc = y + size_t(c) * y_stride;
    for (int p = 0; p + 1 < P; ++p) _mm512_storeu_ps(yc + p * kVnniPanelRows, acc[p][c]);
    alignas(64) float out[kVnniPanelRows];
    _mm512_store_ps(out, acc[P - 1][c]);
    for (int r = 0; r < rows; ++r) yc[(P - 1) * kVnniPanelRows + r] = out[r];
  }
}

// The MatmulFn body for n >= kVnniPanelMinN: activation rows in chunks that stay in L3;
// per 32 weight rows two panels and every activation row of the chunk, 6 at a time
// (panel_tile_vnni<2, C>); a last group of at most 16 rows one panel, 8 at a time.
// Why two panels: per vpdpbusd the 16-row tile also does one activation broadcast and,
// per block, 3/8 of a float op, all on the same vector pipes; sharing each broadcast
// between two panels cut that overhead by a third (Zen5, 1 thread, Q8_0 k = 2048,
// m = 2048: n = 512 247 -> 297 GMAC/s, n = 48 199 -> 230). Enough chains: 12 sums of 8
// vpdpbusd per block cover the ~4-cycle latency at two per cycle. The 16-row tile has 8
// columns, not 4, for the same reason (Zen4: 4 chains kept ~0.8 vpdpbusd in flight per
// cycle).
template <class Weights>
void run_panels_vnni(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x,
                     size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  constexpr int C = 8, C2 = 6;  // 2 panels: 12 sums + 12 accumulators + 2 panel registers + a broadcast
  using PanelTileFn = void (*)(int64_t, const uint8_t*, size_t, const uint8_t*, size_t, const VnniActivationMeta*, int,
                               float*, size_t, PanelPrefetcher&);
  static constexpr PanelTileFn tiles[C + 1] = {
      nullptr,               panel_tile_vnni<1, 1>, panel_tile_vnni<1, 2>, panel_tile_vnni<1, 3>, panel_tile_vnni<1, 4>,
      panel_tile_vnni<1, 5>, panel_tile_vnni<1, 6>, panel_tile_vnni<1, 7>, panel_tile_vnni<1, 8>};
  static constexpr PanelTileFn pair_tiles[C2 + 1] = {
      nullptr,               panel_tile_vnni<2, 1>, panel_tile_vnni<2, 2>, panel_tile_vnni<2, 3>,
      panel_tile_vnni<2, 4>, panel_tile_vnni<2, 5>, panel_tile_vnni<2, 6>};
  const int64_t nb = k / 32;
  if (nb == 0 || r1 <= r0 || n <= 0) return;
  auto& s = PanelScratch<64, VnniActivationMeta>::of_this_thread();
  const size_t panel_bytes = size_t(nb) * kVnniPanelBlockBytes;
  uint8_t* panel = s.panel_bytes(2 * panel_bytes);
  const int64_t chunk = chunk_rows(kPanelChunkBytes, x_row_bytes, n, C);
  VnniActivationMeta* meta = s.metas(size_t(chunk * nb));
  constexpr int kPair = 2 * kVnniPanelRows;
  for (int64_t i0 = 0; i0 < n; i0 += chunk) {
    const int64_t i1 = n - i0 < chunk ? n : i0 + chunk, cols_total = i1 - i0;
    const uint8_t* xi = x + size_t(i0) * x_row_bytes;
    vnni_activation_meta<Weights::kOffset>(nb, xi, x_row_bytes, cols_total, meta);
    PanelPrefetcher pf;
    for (int64_t r = r0; r < r1;) {
      const int64_t left = r1 - r;
      if (left > kVnniPanelRows) {
        // 32 rows (the second panel possibly partial): pairs of panels, 6 columns a tile.
        const int rows1 = int(left - kVnniPanelRows < kVnniPanelRows ? left - kVnniPanelRows : kVnniPanelRows);
        pack_panel_vnni<Weights>(nb, w + size_t(r) * w_row_bytes, w_row_bytes, kVnniPanelRows, panel);
        pack_panel_vnni<Weights>(nb, w + size_t(r + kVnniPanelRows) * w_row_bytes, w_row_bytes, rows1,
                                 panel + panel_bytes);
        pf.reset(w + size_t(r + kPair) * w_row_bytes, w_row_bytes, next_panel_rows(r + kPair, r1, kPair),
                 (cols_total + C2 - 1) / C2 * nb);
        for (int64_t i = 0; i < cols_total; i += C2) {
          const int64_t cols = cols_total - i < C2 ? cols_total - i : C2;
          pair_tiles[cols](nb, panel, panel_bytes, xi + size_t(i) * x_row_bytes, x_row_bytes, meta + i * nb, rows1,
                           y + size_t(i0 + i) * y_stride + size_t(r), y_stride, pf);
        }
        r += kPair;
        continue;
      }
      const int rows = int(left);
      pack_panel_vnni<Weights>(nb, w + size_t(r) * w_row_bytes, w_row_bytes, rows, panel);
      pf.reset(nullptr, w_row_bytes, 0, 1);
      for (int64_t i = 0; i < cols_total; i += C) {
        const int64_t cols = cols_total - i < C ? cols_total - i : C;
        tiles[cols](nb, panel, panel_bytes, xi + size_t(i) * x_row_bytes, x_row_bytes, meta + i * nb, rows,
                    y + size_t(i0 + i) * y_stride + size_t(r), y_stride, pf);
      }
      r += kVnniPanelRows;
    }
  }
}

}  // namespace
}  // namespace deepmla::kernels
