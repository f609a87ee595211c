// BF16 weights x F32 activations, AVX512-BF16 (vdpbf16ps), 4 weight rows x 4 activation
// rows per tile. The activations are rounded to bf16 (nearest even) on the fly, as
// ik_llama.cpp does when it takes BF16 weights down its native-bf16 path: each product
// then carries a relative error up to 2^-8 (8 significant bits) beyond the F32 path's
// (test_kernels.cpp widens its tolerance for this variant accordingly).

#include "kernels/bf16_util.hpp"
#include "kernels/matmul/avx512_util.hpp"
#include "kernels/matmul/tiling.hpp"

namespace deepmla::kernels {

namespace {
template <int R, int C>
void tile(int64_t k, const uint8_t* w, size_t w_row_bytes, const uint8_t* x, size_t x_row_bytes, float* y,
          size_t y_stride) {
  const uint16_t* wr[R];
  const float* xc[C];
  DEEPMLA_UNROLL
  for (int r = 0; r < R; ++r) wr[r] = reinterpret_cast<const uint16_t*>(w + size_t(r) * w_row_bytes);
  DEEPMLA_UNROLL
  for (int c = 0; c < C; ++c) xc[c] = reinterpret_cast<const float*>(x + size_t(c) * x_row_bytes);
  __m512 acc[R][C];
  DEEPMLA_UNROLL
  for (int r = 0; r < R; ++r)
    DEEPMLA_UNROLL
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t j = 0; j < k; j += 32) {
    // Any row length: the last chunk is a masked load (no fault, zeros beyond the row).
    const int64_t left = k - j;
    const __mmask32 mask = left >= 32 ? ~__mmask32(0) : __mmask32((1u << left) - 1);
    const __mmask16 mask_lo = __mmask16(mask), mask_hi = __mmask16(mask >> 16);
    __m512bh wv[R];
    DEEPMLA_UNROLL
    for (int r = 0; r < R; ++r) wv[r] = bf16_bits(_mm512_maskz_loadu_epi16(mask, wr[r] + j));
    DEEPMLA_UNROLL
    for (int c = 0; c < C; ++c) {
      const __m512 lo = _mm512_maskz_loadu_ps(mask_lo, xc[c] + j);
      const __m512 hi = _mm512_maskz_loadu_ps(mask_hi, xc[c] + j + 16);
      const __m512bh xv = _mm512_cvtne2ps_pbh(hi, lo);  // element i = x[j + i]
      DEEPMLA_UNROLL
      for (int r = 0; r < R; ++r) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], wv[r], xv);
    }
  }
  DEEPMLA_UNROLL
  for (int c = 0; c < C; ++c)
    DEEPMLA_UNROLL
    for (int r = 0; r < R; ++r) y[size_t(c) * y_stride + size_t(r)] = hsum512_ps(acc[r][c]);
}
const TileFn kTiles[4][4] = DEEPMLA_TILES_4x4(tile);
}  // namespace

void matmul_bf16_avx512bf16(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1,
                            const uint8_t* x, size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  run_tiles(kTiles, k, w, w_row_bytes, r0, r1, x, x_row_bytes, n, y, y_stride);
}

}  // namespace deepmla::kernels
