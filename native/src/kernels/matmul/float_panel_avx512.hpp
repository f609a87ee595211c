#pragma once
// The AVX512 matmul for F16 and BF16 weights and n >= 2 activation rows: the layout of the
// VNNI weight panels (block_panel_avx512vnni.hpp) with one dword per lane and step. Per 32
// weight rows (two panels of 16):
//
//   panel dword p * 16 + r = dword p of weight row r in the format's panel form (F16: the
//     value as f32; BF16: the pair of values 2p, 2p + 1), row r in lane r;
//   activation dword p of row c: its value (F16 weights, read in place) or its pair
//     rounded to bf16 (BF16, converted once per call);
//   a tile of 2 panels x C activation rows: per step, the 2 panel registers and, per
//     activation row, one broadcast dword against both: 2C accumulators.
//
// Against the 4-row tiles that read weight rows in place (Zen5, 1 thread, GMAC/s):
//
//   | weights | k = m = 2048, n = 64 | n = 512 | an expert's 1408 x 2048 from DRAM, n = 32 | n = 48 |
//   |---|---|---|---|---|
//   | F16  | 45 -> 81-88   | 45 -> 81-109  | 42 -> 64  | 45 -> 75  |
//   | BF16 | 86 -> 146-165 | 90 -> 195-203 | 70 -> 104 | 74 -> 126 |
//
// (Slices of 128 steps, to keep a slice of the panels in L1, were a quarter slower: the
// accumulators went through y once per slice and the activations were read again.)
//
// Every call of 2 or more activation rows takes the panels, whatever n or its row range:
// a row's result is then one order of FMAs for any micro-batch (api.test.ts holds a prompt
// in one call and in two to bit-identical logits; with panels from 16 rows and the tiles
// below, a MoE's routing flipped on the difference). The price is at 2-4 rows, where the
// pack costs more than it saves (an expert's weights from DRAM, GMAC/s: F16 n = 2 17.8 ->
// 8.2, n = 4 24.2 -> 16.6, n = 8 29.8 -> 31.9; BF16 18.2 -> 12.3, 30.2 -> 23.0, 43.2 ->
// 46.8).
//
// A format supplies:
//   struct Format {
//     static constexpr int kValuesPerDword;  // 1 or 2
//     // 16 dwords of panel form of a weight row from dword p0, zeros past k values:
//     static __m512i row_dwords(const uint8_t* row, int64_t k, int64_t p0);
//     // the activation rows as dwords (*stride apart); may return x itself:
//     static const uint32_t* activations(const float* x, size_t x_row_floats, int64_t n, int64_t k,
//                                        std::vector<uint32_t>& scratch, size_t* stride);
//     using Vec;                                     // __m512 or __m512bh
//     static Vec load(const uint32_t* panel);        // 16 panel dwords
//     static Vec broadcast(const uint32_t* x);       // one activation dword
//     static __m512 madd(__m512 acc, Vec w, Vec x);
//   };
// Internal linkage: see tiling.hpp.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/matmul/avx512_util.hpp"
#include "kernels/matmul/tiling.hpp"

namespace deepmla::kernels {
namespace {

constexpr int kFloatPanelRows = 16;
// For fewer activation rows than kPrefetchMaxN, the next panel pair's weight rows are
// prefetched (tiling.hpp's PanelPrefetcher) a line per kPrefetchEvery steps of the current
// pair's tiles: a routed expert's rows come from DRAM (Zen5, 1 thread, GMAC/s: BF16 n = 48
// 126-129 -> 137-142, n = 16 65-66 -> 75-79; F16 +7-10%). With hundreds of activation rows
// there is time enough without them; at n = 512 they cost ~5% (every 8 steps) or ~2% (16).
constexpr int64_t kPrefetchEvery = 16;
constexpr int64_t kPrefetchMaxN = 128;
constexpr int kFloatTileCols = 12;  // 2 panels x 12 rows = 24 accumulators + 2 panel registers

inline uint32_t* align64_dwords(uint32_t* p) {
  return reinterpret_cast<uint32_t*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
}

// The parts of a format whose panel dwords are f32 values (F16): the activations read in
// place, FMAs. A format adds row_dwords. (F32 weights keep the AVX2 tiles: they serve n = 1
// too, so an F32 model's logits stay bit-identical for any micro-batch split, which a GEMV
// beside the panels would break as soon as a routed expert gets one token.)
struct F32ValuePanels {
  static constexpr int kValuesPerDword = 1;
  static const uint32_t* activations(const float* x, size_t x_row_floats, int64_t, int64_t, std::vector<uint32_t>&,
                                     size_t* stride) {
    *stride = x_row_floats;
    return reinterpret_cast<const uint32_t*>(x);
  }
  using Vec = __m512;
  static __m512 load(const uint32_t* p) { return _mm512_load_ps(reinterpret_cast<const float*>(p)); }
  static __m512 broadcast(const uint32_t* p) {
    float v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_ps(v);
  }
  static __m512 madd(__m512 acc, __m512 w, __m512 x) { return _mm512_fmadd_ps(w, x, acc); }
};

// A panel of `rows` (<= 16) weight rows, steps [0, steps); missing rows are zeros.
template <class Format>
void pack_float_panel(int64_t k, const uint8_t* w, size_t w_row_bytes, int rows, int64_t steps, uint32_t* panel) {
  for (int64_t p = 0; p < steps; p += 16) {
    __m512i v[16];
    for (int r = 0; r < kFloatPanelRows; ++r)
      v[r] = r < rows ? Format::row_dwords(w + size_t(r) * w_row_bytes, k, p) : _mm512_setzero_si512();
    transpose_16x16_epi32(v);
    for (int j = 0; j < 16 && p + j < steps; ++j) _mm512_store_si512(reinterpret_cast<void*>(panel + (p + j) * 16), v[j]);
  }
}

// y[c * y_stride + 16 pp + r] for P panels (the last with last_rows rows) x C rows.
template <class Format, int P, int C>
void float_panel_tile(int64_t steps, const uint32_t* panel, size_t panel_dwords, const uint32_t* x, size_t x_stride,
                      int last_rows, float* y, size_t y_stride, PanelPrefetcher& pf) {
  const __mmask16 last = __mmask16((1u << last_rows) - 1);
  auto mask_of = [&](int pp) { return pp < P - 1 ? __mmask16(0xffff) : last; };
  __m512 acc[P][C];
  DEEPMLA_UNROLL
  for (int pp = 0; pp < P; ++pp)
    DEEPMLA_UNROLL
    for (int c = 0; c < C; ++c) acc[pp][c] = _mm512_setzero_ps();
  for (int64_t p0 = 0; p0 < steps; p0 += kPrefetchEvery) {
    pf.step();
    const int64_t p1 = std::min(steps, p0 + kPrefetchEvery);
    for (int64_t p = p0; p < p1; ++p) {
      typename Format::Vec wv[P];
      DEEPMLA_UNROLL
      for (int pp = 0; pp < P; ++pp) wv[pp] = Format::load(panel + pp * panel_dwords + p * 16);
      DEEPMLA_UNROLL
      for (int c = 0; c < C; ++c) {
        const auto xv = Format::broadcast(x + size_t(c) * x_stride + size_t(p));
        DEEPMLA_UNROLL
        for (int pp = 0; pp < P; ++pp) acc[pp][c] = Format::madd(acc[pp][c], wv[pp], xv);
      }
    }
  }
  DEEPMLA_UNROLL
  for (int c = 0; c < C; ++c)
    DEEPMLA_UNROLL
    for (int pp = 0; pp < P; ++pp) _mm512_mask_storeu_ps(y + size_t(c) * y_stride + 16 * pp, mask_of(pp), acc[pp][c]);
}

using FloatPanelTileFn = void (*)(int64_t, const uint32_t*, size_t, const uint32_t*, size_t, int, float*, size_t,
                                  PanelPrefetcher&);

template <class Format, int P, int... Cs>
constexpr std::array<FloatPanelTileFn, sizeof...(Cs) + 1> float_panel_tiles(std::integer_sequence<int, Cs...>) {
  return {nullptr, float_panel_tile<Format, P, Cs + 1>...};
}

// Per thread: two panels and the converted activations, kept between calls.
struct FloatPanelScratch {
  std::vector<uint32_t> panel, x;
  static FloatPanelScratch& of_this_thread() {
    static thread_local FloatPanelScratch s;
    return s;
  }
};

template <class Format>
void run_float_panels(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const float* x,
                      size_t x_row_floats, int64_t n, float* y, size_t y_stride) {
  static constexpr auto one = float_panel_tiles<Format, 1>(std::make_integer_sequence<int, kFloatTileCols>());
  static constexpr auto two = float_panel_tiles<Format, 2>(std::make_integer_sequence<int, kFloatTileCols>());
  if (k <= 0 || r1 <= r0 || n <= 0) return;
  const int64_t steps = (k + Format::kValuesPerDword - 1) / Format::kValuesPerDword;
  const size_t panel_dwords = size_t(steps) * 16;
  FloatPanelScratch& s = FloatPanelScratch::of_this_thread();
  if (s.panel.size() < 2 * panel_dwords + 16) s.panel.resize(2 * panel_dwords + 16);  // + 16: to align
  uint32_t* panel = align64_dwords(s.panel.data());
  size_t x_stride = 0;
  const uint32_t* xd = Format::activations(x, x_row_floats, n, k, s.x, &x_stride);
  PanelPrefetcher pf;
  for (int64_t r = r0; r < r1; r += 2 * kFloatPanelRows) {
    const int rows = int(std::min<int64_t>(2 * kFloatPanelRows, r1 - r));
    const int rows0 = std::min(rows, kFloatPanelRows);
    pack_float_panel<Format>(k, w + size_t(r) * w_row_bytes, w_row_bytes, rows0, steps, panel);
    if (rows > kFloatPanelRows)
      pack_float_panel<Format>(k, w + size_t(r + kFloatPanelRows) * w_row_bytes, w_row_bytes, rows - kFloatPanelRows,
                               steps, panel + panel_dwords);
    const int64_t tiles = (n + kFloatTileCols - 1) / kFloatTileCols;
    pf.reset(w + size_t(r + 2 * kFloatPanelRows) * w_row_bytes, w_row_bytes,
             n < kPrefetchMaxN ? next_panel_rows(r + 2 * kFloatPanelRows, r1, 2 * kFloatPanelRows) : 0,
             tiles * ((steps + kPrefetchEvery - 1) / kPrefetchEvery));
    for (int64_t c = 0; c < n; c += kFloatTileCols) {
      const size_t cols = size_t(std::min<int64_t>(kFloatTileCols, n - c));
      const uint32_t* xc = xd + size_t(c) * x_stride;
      float* yc = y + size_t(c) * y_stride + size_t(r);
      if (rows > kFloatPanelRows)
        two[cols](steps, panel, panel_dwords, xc, x_stride, rows - kFloatPanelRows, yc, y_stride, pf);
      else
        one[cols](steps, panel, panel_dwords, xc, x_stride, rows0, yc, y_stride, pf);
    }
  }
}

}  // namespace
}  // namespace deepmla::kernels
