#pragma once
// The AVX512-VNNI matmul of 32-value block weights with one fp16 scale (Q8_0, Q6_0)
// against Q8_0 activations, by batch size: a streaming GEMV for n = 1
// (block_gemv_avx512vnni.hpp), packed activations for 4 <= n <= 96
// (block_actpanel_avx512vnni.hpp), 16-row weight panels for more
// (block_panel_avx512vnni.hpp), else 4 weight rows x 4 activation rows per tile.
// A variant file is one line: its symbol calls matmul_blocks_avx512vnni<Weights>.
// Internal linkage: see kernels/matmul/tiling.hpp.
#include "kernels/matmul/block_actpanel_avx512vnni.hpp"
#include "kernels/matmul/block_gemv_avx512vnni.hpp"
#include "kernels/matmul/block_panel_avx512vnni.hpp"
#include "kernels/matmul/block_tile_avx512vnni.hpp"
#include "kernels/matmul/block_weights.hpp"

namespace deepmla::kernels {
namespace {

template <class Weights>
struct VnniTiles {
  template <int R, int C>
  static void tile(int64_t k, const uint8_t* w, size_t wb, const uint8_t* x, size_t xb, float* y, size_t ys) {
    block_tile_avx512vnni<Weights, R, C>(k, w, wb, x, xb, y, ys);
  }
};

template <class Weights>
void matmul_blocks_avx512vnni(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1,
                              const uint8_t* x, size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  if (n == 1) {
    run_gemv_vnni<Weights>(k, w, w_row_bytes, r0, r1, x, y);
    return;
  }
  if (use_act_panels(k, n)) {
    run_act_panels_vnni<Weights>(k, w, w_row_bytes, r0, r1, x, x_row_bytes, n, y, y_stride);
    return;
  }
  if (n >= kVnniPanelMinN) {
    run_panels_vnni<Weights>(k, w, w_row_bytes, r0, r1, x, x_row_bytes, n, y, y_stride);
    return;
  }
  static const TileFn tiles[4][4] = DEEPMLA_TILES_4x4(VnniTiles<Weights>::template tile);
  run_tiles(tiles, k, w, w_row_bytes, r0, r1, x, x_row_bytes, n, y, y_stride);
}

}  // namespace
}  // namespace deepmla::kernels
