#pragma once
// The AVX2 matmul of signed 8-bit weights in 32-value blocks with an fp16 scale (Q8_0)
// against Q8_0 activations for larger batches, both sides widened to int16 and dotted
// by vpmaddwd.
//
// Why not the sign trick of block_panel_avx2.hpp: each of its steps is vpsignb +
// vpmaddubsw + vpmaddwd, and on Zen3 vpsignb (and vpabsb) competes with the multiplies
// for their pipes (a loop of 2 vpmaddwd + 2 vpsignb takes 1.4 cycles, of 2 vpmaddwd + 2
// vpaddd 1.0). Widened, a step is vpmaddwd + vpaddd. The integer dot is the same exact
// sum and the float part the same operations in the same order, so the results are
// bit-identical to the int8 panel's. Measured (Zen3, 1 thread, k = 2048): n = 512 55 ->
// 61-63 GMAC/s; a routed expert's n = 48, weights from DRAM, 53 -> 58 (the pack, twice the
// int8 one's work per row, is ~11% of its time); n = 12 40 -> 35. Session 18 made the
// pack 2x cheaper (175 -> 88 cycles per 16-row block: the transpose's loops unrolled so
// its registers stay registers, the 16 scales converted by two vcvtph2ps instead of 16
// scalar ones): expert n = 48 58 -> 62, and the int16 panels now win from 12 rows.
//
//   panel block b of 16 weight rows = float d[16] (the rows' scales), then for each
//   pair p of the block's 32 values (p = 0..15) two registers: register g holds values
//   2p, 2p + 1 of rows 8g..8g+7 as int16, row 8g + r in 32-bit lane r.
//
// One broadcast int16 pair of activations against register g gives, after vpmaddwd, the
// 8 rows' partial dots in 8 lanes. Activations are widened once per chunk.
#include <cstring>
#include <vector>

#include "formats/blocks.hpp"
#include "kernels/matmul/i16_block_avx2.hpp"
#include "kernels/matmul/tiling.hpp"

namespace deepmla::kernels {
namespace {

// 16 x 3 tiles: 6 int32 sums + 6 float accumulators + 2 weight registers + 1 broadcast
// fit the 16 registers (16 x 6 would need 24: 8 x 6 and 24 x 2 measured slower).
constexpr int kI16PanelRows = 16;
constexpr int kI16TileCols = 3;
constexpr size_t kI16PanelBlockBytes = sizeof(float) * kI16PanelRows + kI16BlockBytes;
// A slice of k per pack, so that the panel (1088 bytes per block) stays in L2 while a
// chunk of activations streams past it: at k = 10944 a whole-row panel (372 KB) gained
// nothing over the int8 panel; 120 blocks are 128 KB.
constexpr int64_t kI16SliceBlocks = 120;
// Below this many activation rows the int8 panel (half the packing work) is faster.
// Zen3, routed expert (m = 1408, weights from DRAM), int8 -> int16 GMAC/s: n = 8 40.4 ->
// 39.3, n = 12 45.8 -> 46.8, n = 16 48.6 -> 51.1.
constexpr int64_t kI16PanelMinN = 12;

// Packs blocks [b0, b0 + nb) of `rows` (<= 16) weight rows; missing rows are zero with
// zero scale.
template <class Weights>
void pack_panel_i16(int64_t b0, int64_t nb, const uint8_t* w, size_t w_row_bytes, int rows, uint8_t* panel) {
  static_assert(Weights::kOffset == 0, "signed quants only");
  using Block = typename Weights::Block;
  const Block* wr[kI16PanelRows];
  for (int r = 0; r < kI16PanelRows; ++r) wr[r] = reinterpret_cast<const Block*>(w + size_t(r < rows ? r : 0) * w_row_bytes);
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* out = panel + size_t(b) * kI16PanelBlockBytes;
    // The 16 fp16 scales gathered, then converted 8 at a time (one by one: 102 -> 88
    // cycles per block, Zen3).
    alignas(16) uint16_t d16[kI16PanelRows];
    DEEPMLA_UNROLL
    for (int r = 0; r < kI16PanelRows; ++r) d16[r] = r < rows ? wr[r][b0 + b].d : 0;
    _mm256_store_ps(reinterpret_cast<float*>(out), _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(d16))));
    _mm256_store_ps(reinterpret_cast<float*>(out) + 8,
                    _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(d16 + 8))));
    store_i16_block(
        [&](int r) { return r < rows ? Weights::raw_values(wr[r] + b0 + b) : _mm256_setzero_si256(); },
        out + sizeof(float) * kI16PanelRows);
  }
}

// A chunk's activations widened: row i's values at values[i * k], its block scales at
// scales[i * nb]. Per thread, grown on demand and kept.
struct WideActivations {
  std::vector<int16_t> values;
  std::vector<float> scales;

  static WideActivations& of_this_thread() {
    static thread_local WideActivations wide;
    return wide;
  }
  void widen(int64_t nb, const uint8_t* x, size_t x_row_bytes, int64_t n) {
    const size_t k = size_t(nb) * 32;
    if (values.size() < k * size_t(n)) values.resize(k * size_t(n));
    if (scales.size() < size_t(nb * n)) scales.resize(size_t(nb * n));
    for (int64_t i = 0; i < n; ++i) {
      const auto* xb = reinterpret_cast<const formats::BlockQ8_0*>(x + size_t(i) * x_row_bytes);
      int16_t* v = values.data() + size_t(i) * k;
      for (int64_t b = 0; b < nb; ++b) {
        scales[size_t(i * nb + b)] = _cvtsh_ss(xb[b].d);
        widen_32_values(xb[b].qs, v + 32 * b);
      }
    }
  }
};

// 16 panel rows x C activation rows over the panel's nb blocks (a slice of k); writes
// `rows` (<= 16) outputs per activation row, or adds to them when `accumulate` (a later
// slice: the same FMAs on the same accumulator values as one pass over the whole k).
// a, ad: the first activation row's values and scales at the slice's first block (rows
// k values and nb_row scales apart).
template <int C>
void panel_i16_tile(int64_t nb, const uint8_t* panel, const int16_t* a, int64_t k, const float* ad, int64_t nb_row,
                    int rows, bool accumulate, float* y, size_t y_stride, PanelPrefetcher& pf) {
  constexpr int R = kI16PanelRows;
  __m256 acc[C][2];
  DEEPMLA_UNROLL
  for (int c = 0; c < C; ++c) {
    float* yc = y + size_t(c) * y_stride;
    if (!accumulate) {
      acc[c][0] = acc[c][1] = _mm256_setzero_ps();
    } else if (rows == R) {
      acc[c][0] = _mm256_loadu_ps(yc), acc[c][1] = _mm256_loadu_ps(yc + 8);
    } else {
      alignas(32) float in[R] = {};
      for (int r = 0; r < rows; ++r) in[r] = yc[r];
      acc[c][0] = _mm256_load_ps(in), acc[c][1] = _mm256_load_ps(in + 8);
    }
  }
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* pb = panel + size_t(b) * kI16PanelBlockBytes;
    pf.step();
    const __m256i* q = reinterpret_cast<const __m256i*>(pb + sizeof(float) * R);
    __m256i sum[C][2];
    DEEPMLA_UNROLL
    for (int c = 0; c < C; ++c) sum[c][0] = sum[c][1] = _mm256_setzero_si256();
    madd_i16_block<C>(q, a + 32 * b, k, sum);
    const __m256 dw0 = _mm256_load_ps(reinterpret_cast<const float*>(pb));
    const __m256 dw1 = _mm256_load_ps(reinterpret_cast<const float*>(pb) + 8);
    DEEPMLA_UNROLL
    for (int c = 0; c < C; ++c) {
      const __m256 da = _mm256_set1_ps(ad[size_t(c) * size_t(nb_row) + size_t(b)]);
      acc[c][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[c][0]), _mm256_mul_ps(dw0, da), acc[c][0]);
      acc[c][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[c][1]), _mm256_mul_ps(dw1, da), acc[c][1]);
    }
  }
  DEEPMLA_UNROLL
  for (int c = 0; c < C; ++c) {
    float* yc = y + size_t(c) * y_stride;
    if (rows == R) {
      _mm256_storeu_ps(yc, acc[c][0]), _mm256_storeu_ps(yc + 8, acc[c][1]);
    } else {
      alignas(32) float out[R];
      _mm256_store_ps(out, acc[c][0]), _mm256_store_ps(out + 8, acc[c][1]);
      for (int r = 0; r < rows; ++r) yc[r] = out[r];
    }
  }
}

// run_panels for signed weights and n >= kI16PanelMinN: run_i16_panels with 3-column
// tiles; later slices of k add to the outputs of the earlier ones.
template <class Weights>
void run_panels_i16(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x,
                    size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  constexpr int C = kI16TileCols;
  using TileFn = void (*)(int64_t, const uint8_t*, const int16_t*, int64_t, const float*, int64_t, int, bool, float*,
                          size_t, PanelPrefetcher&);
  static constexpr TileFn tiles[C + 1] = {nullptr, panel_i16_tile<1>, panel_i16_tile<2>, panel_i16_tile<3>};
  const int64_t nb = k / 32;
  uint8_t* panel = PanelScratch<32, char>::of_this_thread().panel_bytes(size_t(slice_blocks_of(nb, kI16SliceBlocks)) *
                                                                       kI16PanelBlockBytes);
  WideActivations& wide = WideActivations::of_this_thread();
  run_i16_panels<C>(
      nb, kI16SliceBlocks, w, w_row_bytes, 0, sizeof(typename Weights::Block), r0, r1, x_row_bytes, n,
      [&](int64_t i0, int64_t i1) { wide.widen(nb, x + size_t(i0) * x_row_bytes, x_row_bytes, i1 - i0); },
      [&](int64_t r, int rows, int64_t b0, int64_t sb) {
        pack_panel_i16<Weights>(b0, sb, w + size_t(r) * w_row_bytes, w_row_bytes, rows, panel);
      },
      [&](int64_t i0, int64_t i, int cols, int64_t r, int rows, int64_t b0, int64_t sb, PanelPrefetcher& pf) {
        tiles[cols](sb, panel, wide.values.data() + size_t(i) * size_t(k) + size_t(32 * b0), k,
                    wide.scales.data() + size_t(i * nb + b0), nb, rows, b0 > 0,
                    y + size_t(i0 + i) * y_stride + size_t(r), y_stride, pf);
      });
}

}  // namespace
}  // namespace deepmla::kernels
