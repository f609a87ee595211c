// F16 weights x F32 activations, AVX512: a streaming GEMV for n = 1, weight panels
// converted to f32 (float_panel_avx512.hpp) for more.
// Token generation multiplies by the F16 attn_k_b / attn_v_b (per head, 128 x 512) that
// a legacy file's attn_kv_b is split into: the AVX2 4 x 1 tiles read them at ~13 GB/s
// (short per-head row shares, 4 streams, no prefetch), a third of the bandwidth.
#include <immintrin.h>

#include "kernels/matmul/avx512_util.hpp"
#include "kernels/matmul/block_gemv_avx2.hpp"  // kPrefetchBytes, prefetch_stream
#include "kernels/matmul/float_panel_avx512.hpp"

namespace deepmla::kernels {

namespace {
// One row at a time, front to back, 64 values per step in 4 independent FMA chains; the
// last k % 16 values by masked loads.
void gemv_f16(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const float* x, float* y) {
  const int64_t k64 = k - k % 64, k16 = k - k % 16;
  const __mmask16 tail = __mmask16((1u << (k % 16)) - 1);
  for (int64_t r = r0; r < r1; ++r) {
    const uint16_t* wr = reinterpret_cast<const uint16_t*>(w + size_t(r) * w_row_bytes);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t j = 0; j < k64; j += 64) {
      const char* ahead = reinterpret_cast<const char*>(wr + j) + kPrefetchBytes;
      prefetch_stream(ahead);
      prefetch_stream(ahead + 64);
      DEEPMLA_UNROLL
      for (int v = 0; v < 4; ++v) {
        const __m512 wv = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + j + 16 * v)));
        acc[v] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + j + 16 * v), acc[v]);
      }
    }
    for (int64_t j = k64; j < k16; j += 16)
      acc[0] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + j))),
                               _mm512_loadu_ps(x + j), acc[0]);
    if (tail)
      acc[1] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(tail, wr + k16)),
                               _mm512_maskz_loadu_ps(tail, x + k16), acc[1]);
    y[r] = hsum512_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
  }
}
// float_panel_avx512.hpp's format: one value per dword, converted to f32 in the panel.
struct F16Panels : F32ValuePanels {
  static __m512i row_dwords(const uint8_t* row, int64_t k, int64_t p0) {
    const int64_t left = k - p0;
    const __mmask16 mask = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
    return _mm512_castps_si512(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, row + 2 * size_t(p0))));
  }
};
}  // namespace

void matmul_f16_avx512(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x,
                       size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  if (n == 1) return gemv_f16(k, w, w_row_bytes, r0, r1, reinterpret_cast<const float*>(x), y);
  run_float_panels<F16Panels>(k, w, w_row_bytes, r0, r1, reinterpret_cast<const float*>(x), x_row_bytes / 4, n, y,
                              y_stride);
}

}  // namespace deepmla::kernels
