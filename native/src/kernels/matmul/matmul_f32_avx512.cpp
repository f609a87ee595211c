// F32 weights x F32 activations, AVX512: weight panels (float_panel_avx512.hpp) for many
// rows (use_float_panels), else the AVX2 tiles. F32 matrices in DeepSeek files are small
// (the router, ffn_gate_inp: 64 x 2048 per layer) unless the whole file is F32.
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "kernels/matmul/float_panel_avx512.hpp"

namespace deepmla::kernels {

void matmul_f32_avx2(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x,
                     size_t x_row_bytes, int64_t n, float* y, size_t y_stride);

namespace {
// float_panel_avx512.hpp's format: one value per dword.
struct F32Panels : F32ValuePanels {
  static __m512i row_dwords(const uint8_t* row, int64_t k, int64_t p0) {
    const int64_t left = k - p0;
    const __mmask16 mask = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
    return _mm512_castps_si512(_mm512_maskz_loadu_ps(mask, row + 4 * size_t(p0)));
  }
};
}  // namespace

void matmul_f32_avx512(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x,
                       size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  if (use_float_panels(n, r1 - r0))
    return run_float_panels<F32Panels>(k, w, w_row_bytes, r0, r1, reinterpret_cast<const float*>(x), x_row_bytes / 4,
                                       n, y, y_stride);
  matmul_f32_avx2(k, w, w_row_bytes, r0, r1, x, x_row_bytes, n, y, y_stride);
}

}  // namespace deepmla::kernels
