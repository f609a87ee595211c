#pragma once
// Scores of the int8-cache flash MLA (flash_mla_vnni.hpp) on AMX int8 tiles: the same
// integer dot per 32-value block as score_tile_vnni, by tdpbssd (signed x signed, so the
// cache's quants need no shift to unsigned and no staging), then the same f32 steps:
// acc = fma(float(dot), d_q d_k, acc), block after block. So the scores are bit for bit
// those of the VNNI variants, by construction.
//
// Per 16 cache rows (keys) and 16 query rows, per block b:
//   A = the keys' 32 quants of block b, read in place from the cache (rows k_row_bytes
//       apart): 16 x 32 bytes;
//   B = the query panel's block b as packed by pack_query_panels: quad l of row r at
//       lane r of register l, which is tdpbssd's B layout (8 rows of 16 dwords);
//   C = S^T for the block, 16 keys x 16 query rows of int32, stored and folded into 16
//       accumulators (a key each, query rows in the lanes) with d_q d_k.
// Tile registers 5 (C), 6 (A), 7 (B): flash_mla_amx_values.hpp's use 0-4.
// Internal linkage: see kernels/matmul/tiling.hpp.
#include "kernels/amx_util.hpp"
#include "kernels/attention/flash_mla_vnni.hpp"

namespace deepmla::kernels {
namespace {

// One group of <= 16 query rows against `keys` (<= 16) cache rows from `rows`: the scores
// s[r * kC + jj] for r < panel_rows, jj < keys. KEYS is keys when it is known (16).
template <class Cache, int KEYS>
void score_keys_amx(const uint8_t* panel, int64_t nb, const uint8_t* rows, size_t k_row_bytes, int keys, int panel_rows,
                    int32_t* c, float* s) {
  if constexpr (KEYS > 0) keys = KEYS;
  __m512 acc[16];
  DEEPMLA_ATTN_UNROLL
  for (int jj = 0; jj < 16; ++jj) acc[jj] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* pb = panel + size_t(b) * kQueryPanelBlockBytes;
    _tile_zero(5);
    _tile_loadd(6, Cache::quants(rows, b), k_row_bytes);
    _tile_loadd(7, pb + 128, 64);
    _tile_dpbssd(5, 6, 7);
    _tile_stored(5, c, 64);
    const __m512 dq = _mm512_load_ps(reinterpret_cast<const float*>(pb));
    auto fold = [&](int jj) {
      const __m512 scale = _mm512_mul_ps(dq, _mm512_set1_ps(Cache::scale(rows + size_t(jj) * k_row_bytes, b)));
      const __m512 dot = _mm512_cvtepi32_ps(_mm512_load_si512(reinterpret_cast<const void*>(c + 16 * jj)));
      acc[jj] = _mm512_fmadd_ps(dot, scale, acc[jj]);
    };
    if constexpr (KEYS == 16) {
      DEEPMLA_ATTN_UNROLL
      for (int jj = 0; jj < 16; ++jj) fold(jj);
    } else {
      for (int jj = 0; jj < keys; ++jj) fold(jj);
    }
  }
  for (int jj = 0; jj < keys; ++jj) {
    alignas(64) float out[16];
    _mm512_store_ps(out, acc[jj]);
    for (int r = 0; r < panel_rows; ++r) s[r * kC + jj] = out[r];
  }
}

template <class Cache>
struct AmxScores {
  // ku: the layout's staging region, unused by this policy but for one C tile.
  static void chunk(const FlashMlaArgs& a, const uint8_t* panels, int64_t nb, const uint8_t* rows, int64_t n,
                    uint8_t* ku, float*, float* s) {
    int32_t* c = reinterpret_cast<int32_t*>(ku);
    for (int64_t j = 0; j < n; j += 16) {
      const int keys = int(std::min<int64_t>(16, n - j));
      // Only `keys` rows of A and C are real: past the cache's last row there is no memory.
      AmxTileConfig config;
      config.tile(5, keys).tile(6, keys).tile(7, 8);
      config.colsb[6] = 32;
      config.load();
      const uint8_t* kr = rows + size_t(j) * a.k_row_bytes;
      for (int64_t g = 0; g * 16 < a.n_rows; ++g) {
        const int panel_rows = int(std::min<int64_t>(16, a.n_rows - 16 * g));
        const uint8_t* panel = panels + size_t(g * nb) * kQueryPanelBlockBytes;
        float* sg = s + 16 * g * kC + j;
        if (keys == 16) score_keys_amx<Cache, 16>(panel, nb, kr, a.k_row_bytes, keys, panel_rows, c, sg);
        else score_keys_amx<Cache, 0>(panel, nb, kr, a.k_row_bytes, keys, panel_rows, c, sg);
      }
    }
    _tile_release();
  }
};

}  // namespace
}  // namespace deepmla::kernels
