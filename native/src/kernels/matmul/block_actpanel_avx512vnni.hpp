#pragma once
// The AVX512-VNNI matmul for weights in 32-value blocks with an fp16 scale (Q8_0, Q6_0)
// against Q8_0 activations, for a few dozen activation rows (a routed expert's tokens):
// block_panel_avx512vnni.hpp with the roles swapped. There the weights are packed into
// 16-row panels, and at ~48 activation rows that pack (a transpose of every weight block,
// read from DRAM) was ~30% of the GEMM. Here the activations are packed, once per call
// for all weight rows, and each weight row is only shifted to unsigned into an L1 buffer:
//
//   activation panel block b of 16 rows = float d[16], int32 start[16] (-kOffset * sum
//   of the row's block: the dot's start, so the shift costs nothing), then 8 x 64 bytes:
//   register l holds quants 4l..4l+3 of rows 0..15, row c in 32-bit lane c.
//
// One weight dword u (4 unsigned quants of one row) broadcast against register l of a
// panel is one vpdpbusd for 16 activation rows. A tile is 4 weight rows x 3 panels (48
// activation rows): 12 sums + 12 accumulators + 3 panel registers + the broadcast.
// Lanes are activation rows, so results land transposed (y[c * y_stride + r]); a tile
// writes them once, after the whole k.
//
// A format supplies the Weights of block_panel_avx512vnni.hpp. Internal linkage: see
// tiling.hpp.
#include <algorithm>
#include <cstring>

#include "formats/blocks.hpp"
#include "kernels/matmul/avx2_util.hpp"
#include "kernels/matmul/avx512_util.hpp"
#include "kernels/matmul/tiling.hpp"

namespace deepmla::kernels {
namespace {

constexpr int kActPanelRows = 16;
constexpr size_t kActPanelBlockBytes = 64 + 64 + 8 * 64;  // float d[16], int32 start[16], 8 registers
constexpr int kActTileRows = 4, kActTilePanels = 3;

template <int kOffset>
void pack_activation_panels(int64_t nb, const uint8_t* x, size_t x_row_bytes, int64_t n, uint8_t* panels) {
  using formats::BlockQ8_0;
  const int64_t groups = (n + kActPanelRows - 1) / kActPanelRows;
  for (int64_t g = 0; g < groups; ++g) {
    const BlockQ8_0* xr[kActPanelRows];
    const int rows = int(std::min<int64_t>(kActPanelRows, n - g * kActPanelRows));
    for (int r = 0; r < kActPanelRows; ++r)
      xr[r] = reinterpret_cast<const BlockQ8_0*>(x + size_t(g * kActPanelRows + (r < rows ? r : 0)) * x_row_bytes);
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* out = panels + size_t(g * nb + b) * kActPanelBlockBytes;
      alignas(32) uint16_t d16[kActPanelRows];
      int32_t start[kActPanelRows];
      __m256i v[kActPanelRows];
      DEEPMLA_UNROLL
      for (int r = 0; r < kActPanelRows; ++r) {
        // Missing rows: zero quants and scale, so their lanes add nothing.
        v[r] = r < rows ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr[r][b].qs)) : _mm256_setzero_si256();
        d16[r] = r < rows ? xr[r][b].d : 0;
        start[r] = -kOffset * sum_i8x32(v[r]);
      }
      // The 16 scales by one vcvtph2ps (pack_panel_vnni's reason).
      _mm512_storeu_ps(out, _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(d16))));
      std::memcpy(out + 64, start, sizeof start);
      store_dword_lanes_16x32(v, out + 128);
    }
  }
}

// `rows` weight rows as unsigned quants (32 bytes per block, row after row) and f32 scales.
template <class Weights>
void stage_weight_rows(int64_t nb, const uint8_t* w, size_t w_row_bytes, int rows, uint8_t* wu, float* dw) {
  using Block = typename Weights::Block;
  for (int r = 0; r < rows; ++r) {
    const Block* blk = reinterpret_cast<const Block*>(w + size_t(r) * w_row_bytes);
    uint8_t* ur = wu + size_t(r * nb) * 32;
    for (int64_t b = 0; b < nb; ++b) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(ur + 32 * b), Weights::unsigned_values(blk + b));
      dw[r * nb + b] = _cvtsh_ss(blk[b].d);
    }
  }
}

// R staged weight rows x P panels (panel_bytes apart); `cols` rows of the last panel are
// written (all 16 of the others).
template <int R, int P>
void act_panel_tile(int64_t nb, const uint8_t* wu, const float* dw, const uint8_t* panels, size_t panel_bytes, int cols,
                    float* y, size_t y_stride, PanelPrefetcher& pf) {
  __m512 acc[R][P];
  DEEPMLA_UNROLL
  for (int r = 0; r < R; ++r)
    DEEPMLA_UNROLL
    for (int p = 0; p < P; ++p) acc[r][p] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    pf.step();
    const uint8_t* pb = panels + size_t(b) * kActPanelBlockBytes;
    __m512i sum[R][P];
    DEEPMLA_UNROLL
    for (int p = 0; p < P; ++p) {
      const __m512i start = _mm512_load_si512(reinterpret_cast<const void*>(pb + p * panel_bytes + 64));
      DEEPMLA_UNROLL
      for (int r = 0; r < R; ++r) sum[r][p] = start;
    }
    DEEPMLA_UNROLL
    for (int l = 0; l < 8; ++l) {
      __m512i a[P];
      DEEPMLA_UNROLL
      for (int p = 0; p < P; ++p) a[p] = _mm512_load_si512(reinterpret_cast<const void*>(pb + p * panel_bytes + 128 + 64 * l));
      DEEPMLA_UNROLL
      for (int r = 0; r < R; ++r) {
        int32_t v;
        std::memcpy(&v, wu + size_t(r * nb + b) * 32 + 4 * l, 4);
        const __m512i u = _mm512_set1_epi32(v);
        DEEPMLA_UNROLL
        for (int p = 0; p < P; ++p) sum[r][p] = _mm512_dpbusd_epi32(sum[r][p], u, a[p]);
      }
    }
    DEEPMLA_UNROLL
    for (int p = 0; p < P; ++p) {
      const __m512 da = _mm512_load_ps(reinterpret_cast<const float*>(pb + p * panel_bytes));
      DEEPMLA_UNROLL
      for (int r = 0; r < R; ++r)
        acc[r][p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[r][p]), _mm512_mul_ps(da, _mm512_set1_ps(dw[r * nb + b])),
                                    acc[r][p]);
    }
  }
  alignas(64) float out[R][P * kActPanelRows];
  DEEPMLA_UNROLL
  for (int r = 0; r < R; ++r)
    DEEPMLA_UNROLL
    for (int p = 0; p < P; ++p) _mm512_store_ps(out[r] + p * kActPanelRows, acc[r][p]);
  const int total = (P - 1) * kActPanelRows + cols;
  for (int c = 0; c < total; ++c)
    for (int r = 0; r < R; ++r) y[size_t(c) * y_stride + size_t(r)] = out[r][c];
}

using ActPanelTileFn = void (*)(int64_t, const uint8_t*, const float*, const uint8_t*, size_t, int, float*, size_t,
                                PanelPrefetcher&);
template <int R>
constexpr ActPanelTileFn kActPanelTiles[kActTilePanels] = {act_panel_tile<R, 1>, act_panel_tile<R, 2>,
                                                           act_panel_tile<R, 3>};

// Activation bytes of packed panels a call keeps, so that they stay in L2 while every
// weight row streams by: beyond it (long rows or many activations) the weight-panel
// kernel, which reads each weight row once per call, is the one to use.
constexpr size_t kActPanelBudgetBytes = size_t(512) << 10;

// Up to this many activation rows the kernel beats the weight panels, which pack each
// weight row once per call whatever n is (Zen5, 1 thread, Q8_0, weights from DRAM,
// GMAC/s weight panels -> these: k = 2048, m = 1408: n = 16 146 -> 174-194, 48 225 ->
// 293-299, 64 246 -> 293, 96 273 -> 308, 128 280 -> 308-314; k = 1408, m = 2048: n = 48
// 233 -> 233-238, 64 254 -> 250, 128 285 -> 262-272).
constexpr int64_t kActPanelMaxN = 96;

inline bool use_act_panels(int64_t k, int64_t n) {
  const int64_t panels = (n + kActPanelRows - 1) / kActPanelRows;
  return n >= 4 && n <= kActPanelMaxN && size_t(panels) * size_t(k / 32) * kActPanelBlockBytes <= kActPanelBudgetBytes;
}

// The MatmulFn body when use_act_panels(k, n).
template <class Weights>
void run_act_panels_vnni(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x,
                         size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  const int64_t nb = k / 32;
  if (nb == 0 || r1 <= r0 || n <= 0) return;
  const int64_t panels = (n + kActPanelRows - 1) / kActPanelRows;
  const size_t panel_bytes = size_t(nb) * kActPanelBlockBytes;
  // Scratch: the packed activations, then the staged weight rows and their scales.
  auto& s = PanelScratch<64, float>::of_this_thread();
  uint8_t* packed = s.panel_bytes(size_t(panels) * panel_bytes + size_t(kActTileRows * nb) * 32);
  uint8_t* wu = packed + size_t(panels) * panel_bytes;
  float* dw = s.metas(size_t(kActTileRows * nb));
  pack_activation_panels<Weights::kOffset>(nb, x, x_row_bytes, n, packed);
  static constexpr const ActPanelTileFn* tiles[kActTileRows] = {kActPanelTiles<1>, kActPanelTiles<2>,
                                                                kActPanelTiles<3>, kActPanelTiles<4>};
  const int64_t tile_groups = (panels + kActTilePanels - 1) / kActTilePanels;
  PanelPrefetcher pf;
  for (int64_t r = r0; r < r1; r += kActTileRows) {
    const int rows = int(std::min<int64_t>(kActTileRows, r1 - r));
    stage_weight_rows<Weights>(nb, w + size_t(r) * w_row_bytes, w_row_bytes, rows, wu, dw);
    pf.reset(w + size_t(r + kActTileRows) * w_row_bytes, w_row_bytes, next_panel_rows(r + kActTileRows, r1, kActTileRows),
             tile_groups * nb);
    for (int64_t g = 0, p = 0; g < tile_groups; ++g) {
      const int np = even_share(panels - p, tile_groups - g);
      const int cols = int(std::min<int64_t>(kActPanelRows, n - (p + np - 1) * kActPanelRows));
      tiles[rows - 1][np - 1](nb, wu, dw, packed + size_t(p) * panel_bytes, panel_bytes, cols,
                              y + size_t(p * kActPanelRows) * y_stride + size_t(r), y_stride, pf);
      p += np;
    }
  }
}

}  // namespace
}  // namespace deepmla::kernels
