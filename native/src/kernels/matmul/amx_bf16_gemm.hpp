#pragma once
// The AMX GEMM for prompt micro-batches: weights in 32-value blocks with an fp16 scale
// (Q8_0, Q6_0) against bf16 activation rows, with tdpbf16ps (16 x 16 outputs, 32 products
// each, summed into f32 tiles that stay in their registers over the whole k).
//
//   C (16 weight rows x 16 tokens, f32) += A (16 rows x 32 bf16) * B (32 x 16 tokens)
//
// A is plain rows: per call, each 32-row weight panel is dequantized once to bf16(q * d),
// nearest even (the rounding of the scalar reference in test_kernels.cpp), 64 bytes per
// row and k block. B wants the pair layout (tile row p holds, per token, the bf16 pair
// of values 2p, 2p + 1), so the activations are transposed into it once per call, for
// all weight rows; the finished C tiles are transposed back into y's token rows. (The
// other way round, transposing every weight panel, cost a third of the time of an
// expert's 48 tokens.) 4 C tiles, 2 A, 2 B: the 8 tile registers.
//
// Why bf16 and not the int8 tiles (tdpbssd): a Q8_0 dot is exact in int32 per 32-value
// block only; with a scale per block per row, every int32 tile would be stored and
// rescaled after each block, and that epilogue costs more than the tile product. With
// bf16 the scale is folded into the weights. The activations lose less in bf16
// (8 significant bits per value) than in Q8_0 (8 bits per 32-value block).
//
// With hundreds of rows the tile loads are the limit: one 1 KiB load per tdpbf16ps halves
// the tile unit's rate (Sapphire Rapids class, 2.0 GHz: ~490 GMAC/s without loads, ~250
// with; 2 x 2 is the most reuse 8 registers allow). With a routed expert's ~48 rows the
// weight conversion is (AmxNextPanel).
//
// A format supplies block_weights.hpp's Weights (Block, kOffset, unsigned_values).
// Compiled only into files built with the AMX flags (file suffix _amx, CMakeLists.txt).
// Internal linkage: see kernels/matmul/tiling.hpp.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/amx_util.hpp"
#include "kernels/bf16_util.hpp"
#include "kernels/matmul/avx512_util.hpp"
#include "kernels/matmul/block_weights.hpp"
#include "kernels/matmul/tiling.hpp"

namespace deepmla::kernels {
namespace {

constexpr int kAmxRows = 16;               // tile rows: weight rows of A and C, k pairs of B
constexpr size_t kAmxTileBytes = 16 * 64;  // every tile is 16 rows of 64 bytes
constexpr size_t kAmxPanelBlockBytes = 2 * kAmxTileBytes;  // one k block of a 32-row panel pair
// Packed activations a call keeps per thread (tokens x k slice x 2 bytes): 256 tokens of
// 2048 values, half of a 2 MiB L2 beside the weight panel (2 MiB fell out of L2: ~140
// against ~170-300 GMAC/s at n = 512, a very noisy host). A longer k is cut into slices
// rather than the tokens into smaller chunks: each chunk converts all the weights again
// (k = 10944, n = 512 in 32-token chunks: 178 GMAC/s against 495 at k = 2048), while a
// slice only parks the f32 accumulators of its blocks until the next one.
constexpr size_t kAmxActivationBytes = size_t(1) << 20;
constexpr int64_t kAmxChunkTokens = 256;

// Tokens per chunk and k blocks per slice of one call.
struct AmxPlan {
  int64_t chunk, kb;
};

inline AmxPlan amx_plan(int64_t nb, int64_t n) {
  const int64_t pair = 2 * kAmxRows, tokens = (n + pair - 1) / pair * pair;
  const size_t token_bytes = size_t(nb) * 64;  // one token's packed k
  // Whole rows of k if a chunk of tokens fits (more tokens, fewer weight conversions).
  const int64_t fit = int64_t(kAmxActivationBytes / token_bytes) / pair * pair;
  if (fit >= std::min(tokens, kAmxChunkTokens)) return {std::min(tokens, std::max(fit, pair)), nb};
  const int64_t chunk = std::min(tokens, kAmxChunkTokens);
  const int64_t per_slice = std::max<int64_t>(1, int64_t(kAmxActivationBytes / (size_t(chunk) * 64)));
  const int64_t slices = (nb + per_slice - 1) / per_slice;
  return {chunk, (nb + slices - 1) / slices};
}

// Tile registers: C 0-3 (weight panel i, token group j at 2i + j), A 4-5, B 6-7.
inline void amx_configure() {
  AmxTileConfig config;
  for (int t = 0; t < 8; ++t) config.tile(t, kAmxRows);
  config.load();
}

// Per-thread buffers, grown on demand and kept: a call allocates nothing in steady state.
struct AmxScratch {
  struct alignas(64) Line {
    uint8_t b[64];
  };
  std::vector<Line> panel, act, acc;
  alignas(64) float tile[kAmxRows * kAmxRows];

  static AmxScratch& of_this_thread() {
    static thread_local AmxScratch scratch;
    return scratch;
  }
  static uint8_t* grow(std::vector<Line>& v, size_t bytes) {
    if (v.size() * 64 < bytes) v.resize((bytes + 63) / 64);
    return reinterpret_cast<uint8_t*>(v.data());
  }
};

// bf16(q * d) of a block's 32 values, in value order.
template <class Weights>
inline __m512i amx_bf16_block(const typename Weights::Block* b) {
  const __m512 d = _mm512_set1_ps(_cvtsh_ss(b->d));
  __m512 lo, hi;
  if constexpr (std::is_same_v<typename Weights::Block, formats::BlockQ8_0>) {
    // Signed bytes as they are: two widening loads, no offset.
    lo = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs)))), d);
    hi = _mm512_mul_ps(
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs + 16)))), d);
  } else {
    // (u - offset) d as one rounding: fma(u, d, -offset d), offset d exact (a power of two).
    const __m256i u = Weights::unsigned_values(b);
    const __m512 shift = _mm512_mul_ps(d, _mm512_set1_ps(-float(Weights::kOffset)));
    lo = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(u))), d, shift);
    hi = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(u, 1))), d, shift);
  }
  return bf16_as_int(_mm512_cvtne2ps_pbh(hi, lo));
}

// In place: v[c] becomes column c of the 16 x 16 dword matrix whose rows were v[0..15].
DEEPMLA_ALWAYS_INLINE void transpose_16x16_dwords(__m512i (&v)[16]) {
  __m512i t[16];
  DEEPMLA_UNROLL
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
  }
  // u[4i + c], 128-bit lane L: column 4L + c of rows 4i..4i+3.
  __m512i u[16];
  DEEPMLA_UNROLL
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  DEEPMLA_UNROLL
  for (int c = 0; c < 4; ++c) {
    const __m512i x0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88), x1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xdd);
    const __m512i y0 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88);
    const __m512i y1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xdd);
    v[c] = _mm512_shuffle_i32x4(x0, y0, 0x88);
    v[4 + c] = _mm512_shuffle_i32x4(x1, y1, 0x88);
    v[8 + c] = _mm512_shuffle_i32x4(x0, y0, 0xdd);
    v[12 + c] = _mm512_shuffle_i32x4(x1, y1, 0xdd);
  }
}

// K block b of weight rows [0, rows) (rows <= 32) as A tiles: panel + b * 2 KiB + i KiB
// holds rows 16i..16i+15, a row per 64 bytes; missing rows are zeros.
template <class Weights>
inline void amx_pack_weight_block(int64_t b, const uint8_t* w, size_t w_row_bytes, int rows, uint8_t* panel) {
  using Block = typename Weights::Block;
  uint8_t* out = panel + size_t(b) * kAmxPanelBlockBytes;
  int r = 0;
  for (; r < rows; ++r)
    _mm512_store_si512(reinterpret_cast<void*>(out + size_t(r) * 64),
                       amx_bf16_block<Weights>(reinterpret_cast<const Block*>(w + size_t(r) * w_row_bytes) + b));
  for (; r < 2 * kAmxRows; ++r) _mm512_store_si512(reinterpret_cast<void*>(out + size_t(r) * 64), _mm512_setzero_si512());
}

// The weight panel pair the tiles take next, converted a k block per tile step of the
// current one, so that the tile products and the conversion's vector work share the out-of-
// order window (an expert's 48 tokens, k = 2048, weights from DRAM, 1 thread: Q8_0 226 ->
// 264, Q6_0 214 -> 262 GMAC/s). They still mostly add up: without any conversion the
// tiles alone ran at 572 GMAC/s there, with it 311 (weights in cache).
template <class Weights>
struct AmxNextPanel {
  const uint8_t* w = nullptr;
  size_t w_row_bytes = 0;
  int rows = 0;  // 0: none
  uint8_t* panel = nullptr;
  void step(int64_t b) const {
    if (rows > 0) amx_pack_weight_block<Weights>(b, w, w_row_bytes, rows, panel);
  }
};

// Tokens [0, tokens) of x as B tiles: act + (g * nb + b) KiB is k block b of tokens
// 16g..16g+15, pair p of token t at row p, dword t; missing tokens are zeros.
inline void amx_pack_tokens(int64_t nb, const uint8_t* x, size_t x_row_bytes, int64_t tokens, uint8_t* act) {
  for (int64_t g = 0; g * kAmxRows < tokens; ++g) {
    const int valid = int(std::min<int64_t>(kAmxRows, tokens - g * kAmxRows));
    const uint8_t* rows = x + size_t(g * kAmxRows) * x_row_bytes;
    for (int64_t b = 0; b < nb; ++b) {
      __m512i v[kAmxRows];
      for (int t = 0; t < valid; ++t) v[t] = _mm512_loadu_si512(rows + size_t(t) * x_row_bytes + size_t(b) * 64);
      for (int t = valid; t < kAmxRows; ++t) v[t] = _mm512_setzero_si512();
      transpose_16x16_dwords(v);
      uint8_t* out = act + size_t(g * nb + b) * kAmxTileBytes;
      for (int p = 0; p < kAmxRows; ++p) _mm512_store_si512(reinterpret_cast<void*>(out + p * 64), v[p]);
    }
  }
}

// The tile intrinsics take the register number as a literal (they paste it into asm).
template <int C>
inline void amx_store_tile(void* p) {
  if constexpr (C == 0) _tile_stored(0, p, 64);
  else if constexpr (C == 1) _tile_stored(1, p, 64);
  else if constexpr (C == 2) _tile_stored(2, p, 64);
  else _tile_stored(3, p, 64);
}

template <int C>
inline void amx_load_tile(const void* p) {
  if constexpr (C == 0) _tile_loadd(0, p, 64);
  else if constexpr (C == 1) _tile_loadd(1, p, 64);
  else if constexpr (C == 2) _tile_loadd(2, p, 64);
  else _tile_loadd(3, p, 64);
}

template <int C>
inline void amx_zero_tile() {
  if constexpr (C == 0) _tile_zero(0);
  else if constexpr (C == 1) _tile_zero(1);
  else if constexpr (C == 2) _tile_zero(2);
  else _tile_zero(3);
}

// C tile `C` (weight rows r.. x tokens t..) into y[t][r]: `rows` and `tokens` of it are real.
template <int C>
inline void amx_store(int64_t r, int rows, int64_t t, int64_t tokens, float* y, size_t y_stride, float* scratch) {
  amx_store_tile<C>(scratch);
  __m512i v[kAmxRows];
  for (int i = 0; i < kAmxRows; ++i) v[i] = _mm512_load_si512(reinterpret_cast<const void*>(scratch + i * kAmxRows));
  transpose_16x16_dwords(v);
  const __mmask16 mask = __mmask16((1u << rows) - 1);
  for (int64_t j = 0; j < tokens; ++j)
    _mm512_mask_storeu_ps(y + size_t(t + j) * y_stride + size_t(r), mask, _mm512_castsi512_ps(v[j]));
}

// Where a block's C tiles begin and end a k slice: zeroed or loaded from `acc` (C tile c at
// acc + c KiB), stored to y at the last slice, else back to acc.
struct AmxSlice {
  bool first, last;
  float* acc;
};

template <int C>
inline void amx_begin(const AmxSlice& slice) {
  if (slice.first) amx_zero_tile<C>();
  else amx_load_tile<C>(slice.acc + C * kAmxRows * kAmxRows);
}

template <int C>
inline void amx_end(const AmxSlice& slice, int64_t r, int rows, int64_t t, int64_t tokens, float* y, size_t y_stride,
                    float* scratch) {
  if (slice.last) amx_store<C>(r, rows, t, tokens, y, y_stride, scratch);
  else amx_store_tile<C>(slice.acc + C * kAmxRows * kAmxRows);
}

// One block of PI weight panels x GJ token groups over the slice's kb k blocks (the
// second token group's tiles are group_bytes after the first's), converting `next`'s.
template <class Weights, int PI, int GJ>
void amx_block(int64_t kb, const uint8_t* panel, const uint8_t* act, size_t group_bytes, const AmxSlice& slice,
               int64_t r, int rows, int64_t t, int64_t tokens, float* y, size_t y_stride, float* scratch,
               const AmxNextPanel<Weights>& next, PanelPrefetcher& prefetch) {
  amx_begin<0>(slice);
  if (GJ == 2) amx_begin<1>(slice);
  if (PI == 2) amx_begin<2>(slice);
  if (PI == 2 && GJ == 2) amx_begin<3>(slice);
  for (int64_t b = 0; b < kb; ++b) {
    const uint8_t* pa = panel + size_t(b) * kAmxPanelBlockBytes;
    const uint8_t* pb = act + size_t(b) * kAmxTileBytes;
    _tile_loadd(4, pa, 64);
    _tile_loadd(6, pb, 64);
    if (GJ == 2) _tile_loadd(7, pb + group_bytes, 64);
    if (PI == 2) _tile_loadd(5, pa + kAmxTileBytes, 64);
    _tile_dpbf16ps(0, 4, 6);
    if (GJ == 2) _tile_dpbf16ps(1, 4, 7);
    if (PI == 2) _tile_dpbf16ps(2, 5, 6);
    if (PI == 2 && GJ == 2) _tile_dpbf16ps(3, 5, 7);
    next.step(b);
    prefetch.step();
  }
  const int rows0 = std::min(kAmxRows, rows), rows1 = rows - kAmxRows;
  const int64_t tokens0 = std::min<int64_t>(kAmxRows, tokens), tokens1 = tokens - kAmxRows;
  amx_end<0>(slice, r, rows0, t, tokens0, y, y_stride, scratch);
  if (GJ == 2) amx_end<1>(slice, r, rows0, t + kAmxRows, tokens1, y, y_stride, scratch);
  if (PI == 2) amx_end<2>(slice, r + kAmxRows, rows1, t, tokens0, y, y_stride, scratch);
  if (PI == 2 && GJ == 2) amx_end<3>(slice, r + kAmxRows, rows1, t + kAmxRows, tokens1, y, y_stride, scratch);
}

// The MatmulFn body: x holds n bf16 rows of k values, x_row_bytes apart (k % 32 == 0).
template <class Weights>
void run_amx_bf16(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x,
                  size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  if (r1 <= r0 || n <= 0) return;
  using Block = typename Weights::Block;
  const int64_t nb = k / 32;
  const AmxPlan plan = amx_plan(nb, n);
  AmxScratch& s = AmxScratch::of_this_thread();
  // Two panel pairs: the one the tiles read and the next one, being converted.
  const size_t panel_bytes = size_t(plan.kb) * kAmxPanelBlockBytes;
  uint8_t* panels = AmxScratch::grow(s.panel, 2 * panel_bytes);
  uint8_t* act = AmxScratch::grow(s.act, size_t(plan.chunk / kAmxRows) * size_t(plan.kb) * kAmxTileBytes);
  // A block's 4 C tiles per (panel pair, token group pair), when k takes several slices.
  constexpr size_t kBlockAccBytes = 4 * kAmxTileBytes;
  const int64_t group_pairs = plan.chunk / (2 * kAmxRows);
  float* acc = plan.kb < nb ? reinterpret_cast<float*>(AmxScratch::grow(
                                  s.acc, size_t((r1 - r0 + 2 * kAmxRows - 1) / (2 * kAmxRows) * group_pairs) * kBlockAccBytes))
                            : nullptr;
  amx_configure();
  PanelPrefetcher prefetch;
  for (int64_t t0 = 0; t0 < n; t0 += plan.chunk) {
    const int64_t tn = std::min(plan.chunk, n - t0), groups = (tn + kAmxRows - 1) / kAmxRows;
    for (int64_t b0 = 0; b0 < nb; b0 += plan.kb) {
      const int64_t kb = std::min(plan.kb, nb - b0);
      const size_t group_bytes = size_t(kb) * kAmxTileBytes;
      amx_pack_tokens(kb, x + size_t(t0) * x_row_bytes + size_t(b0) * 64, x_row_bytes, tn, act);
      const uint8_t* ws = w + size_t(b0) * sizeof(Block);
      auto rows_at = [&](int64_t r) { return next_panel_rows(r, r1, 2 * kAmxRows); };
      for (int64_t b = 0; b < kb; ++b) amx_pack_weight_block<Weights>(b, ws + size_t(r0) * w_row_bytes, w_row_bytes, rows_at(r0), panels);
      int cur = 0;
      for (int64_t r = r0; r < r1; r += 2 * kAmxRows, cur ^= 1) {
        const int rows = rows_at(r);
        const uint8_t* panel = panels + size_t(cur) * panel_bytes;
        const int64_t r_next = r + 2 * kAmxRows;
        const AmxNextPanel<Weights> next{ws + size_t(r_next) * w_row_bytes, w_row_bytes, rows_at(r_next),
                                         panels + size_t(cur ^ 1) * panel_bytes};
        // The pair after that reaches L2 meanwhile, ready for its conversion.
        const int64_t r_ahead = r_next + 2 * kAmxRows;
        prefetch.reset(ws + size_t(r_ahead) * w_row_bytes, w_row_bytes, rows_at(r_ahead), kb * ((groups + 1) / 2),
                       size_t(kb) * sizeof(Block));
        for (int64_t g = 0; g < groups; g += 2) {
          const uint8_t* ag = act + size_t(g) * group_bytes;
          const int64_t t = t0 + g * kAmxRows, tokens = std::min<int64_t>(2 * kAmxRows, tn - g * kAmxRows);
          const AmxSlice slice{b0 == 0, b0 + kb == nb,
                               acc ? acc + ((r - r0) / (2 * kAmxRows) * group_pairs + g / 2) * (kBlockAccBytes / 4) : nullptr};
          // Only the first block of the pair converts the next one.
          const AmxNextPanel<Weights> convert = g == 0 ? next : AmxNextPanel<Weights>{};
          const bool two_panels = rows > kAmxRows, two_groups = tokens > kAmxRows;
          if (two_panels && two_groups)
            amx_block<Weights, 2, 2>(kb, panel, ag, group_bytes, slice, r, rows, t, tokens, y, y_stride, s.tile, convert, prefetch);
          else if (two_panels)
            amx_block<Weights, 2, 1>(kb, panel, ag, group_bytes, slice, r, rows, t, tokens, y, y_stride, s.tile, convert, prefetch);
          else if (two_groups)
            amx_block<Weights, 1, 2>(kb, panel, ag, group_bytes, slice, r, rows, t, tokens, y, y_stride, s.tile, convert, prefetch);
          else
            amx_block<Weights, 1, 1>(kb, panel, ag, group_bytes, slice, r, rows, t, tokens, y, y_stride, s.tile, convert, prefetch);
        }
      }
    }
  }
  _tile_release();
}

}  // namespace
}  // namespace deepmla::kernels
