// Q6_0 weights x Q8_0 activations, AVX512-VNNI: the six-bit quants are already unsigned
// (q in 0..63, value q - 32): packed activations (block_actpanel_avx512vnni.hpp) for 4 <= n <= 96,
// 16-row weight panels (block_panel_avx512vnni.hpp) for more, a streaming GEMV for n = 1
// (block_gemv_avx512vnni.hpp), else 4 weight rows x 4 activation rows per tile.
#include "kernels/matmul/block_actpanel_avx512vnni.hpp"
#include "kernels/matmul/block_gemv_avx512vnni.hpp"
#include "kernels/matmul/block_panel_avx512vnni.hpp"
#include "kernels/matmul/block_tile_avx512vnni.hpp"
#include "kernels/matmul/block_weights.hpp"

namespace deepmla::kernels {

namespace {

template <int R, int C>
void tile(int64_t k, const uint8_t* w, size_t wb, const uint8_t* x, size_t xb, float* y, size_t ys) {
  block_tile_avx512vnni<Q6_0Weights, R, C>(k, w, wb, x, xb, y, ys);
}
const TileFn kTiles[4][4] = DEEPMLA_TILES_4x4(tile);
}  // namespace

void matmul_q6_0_avx512vnni(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1,
                            const uint8_t* x, size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  if (n == 1) {
    run_gemv_vnni<Q6_0Weights>(k, w, w_row_bytes, r0, r1, x, y);
    return;
  }
  if (use_act_panels(k, n)) {
    run_act_panels_vnni<Q6_0Weights>(k, w, w_row_bytes, r0, r1, x, x_row_bytes, n, y, y_stride);
    return;
  }
  if (n >= kVnniPanelMinN) {
    run_panels_vnni<Q6_0Weights>(k, w, w_row_bytes, r0, r1, x, x_row_bytes, n, y, y_stride);
    return;
  }
  run_tiles(kTiles, k, w, w_row_bytes, r0, r1, x, x_row_bytes, n, y, y_stride);
}

}  // namespace deepmla::kernels
