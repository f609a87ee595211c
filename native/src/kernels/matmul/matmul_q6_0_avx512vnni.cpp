// Q6_0 weights x Q8_0 activations, AVX512-VNNI: the six-bit quants are already unsigned
// (q in 0..63, value q - 32): packed activations (block_actpanel_avx512vnni.hpp) for 4 <= n <= 96,
// 16-row weight panels (block_panel_avx512vnni.hpp) for more, a streaming GEMV for n = 1
// (block_gemv_avx512vnni.hpp), else 4 weight rows x 4 activation rows per tile.
#include <cstring>

#include "kernels/matmul/block_actpanel_avx512vnni.hpp"
#include "kernels/matmul/block_gemv_avx512vnni.hpp"
#include "kernels/matmul/block_panel_avx512vnni.hpp"
#include "kernels/matmul/block_tile_avx512vnni.hpp"

namespace deepmla::kernels {

namespace {
struct Q6_0Weights {
  using Block = formats::BlockQ6_0;
  static constexpr int kOffset = 32;
  // Same unpacking as matmul_q6_0_avx2.cpp, without the final - 32.
  static __m256i unsigned_values(const Block* b) {
    const __m128i m4 = _mm_set1_epi8(0x0f);
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs));
    const __m256i low4 = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(qs, 4), m4), _mm_and_si128(qs, m4));
    uint64_t qh;
    std::memcpy(&qh, b->qh, 8);
    __m256i h = _mm256_set1_epi64x(int64_t(qh));
    h = _mm256_sllv_epi64(h, _mm256_set_epi64x(0, 2, 0, 4));
    h = _mm256_srlv_epi64(h, _mm256_set_epi64x(2, 0, 0, 0));
    return _mm256_or_si256(low4, _mm256_and_si256(h, _mm256_set1_epi8(0x30)));
  }
};

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
