// BF16 weights x F32 activations, AVX512-BF16 (vdpbf16ps): a streaming GEMV for n = 1,
// weight panels (float_panel_avx512.hpp) for more. The activations are rounded to bf16
// (nearest even) on the fly, as ik_llama.cpp does when it takes BF16 weights down its native-bf16 path: each product
// then carries a relative error up to 2^-8 (8 significant bits) beyond the F32 path's
// (test_kernels.cpp widens its tolerance for this variant accordingly).

#include <vector>

#include "kernels/bf16_util.hpp"
#include "kernels/matmul/float_panel_avx512.hpp"
#include "kernels/matmul/block_gemv_avx2.hpp"  // kPrefetchBytes, prefetch_stream
#include "kernels/matmul/avx512_util.hpp"
#include "kernels/matmul/tiling.hpp"

namespace deepmla::kernels {

namespace {
// x[0, k) rounded to bf16 (nearest even) at out, zeros up to the next multiple of 32.
void round_row_to_bf16(const float* x, int64_t k, uint16_t* out) {
  for (int64_t j = 0; j < k; j += 32) {
    const int64_t left = k - j;
    const __mmask32 mask = left >= 32 ? ~__mmask32(0) : __mmask32((1u << left) - 1);
    const __m512 lo = _mm512_maskz_loadu_ps(__mmask16(mask), x + j);
    const __m512 hi = _mm512_maskz_loadu_ps(__mmask16(mask >> 16), x + j + 16);
    _mm512_storeu_si512(reinterpret_cast<void*>(out + j), bf16_as_int(_mm512_cvtne2ps_pbh(hi, lo)));
  }
}

// One row at a time, front to back, as matmul_f16_avx512.cpp's GEMV, on the activation row
// rounded to bf16 once per call (the 4 x 4 tiles it replaced rounded it again for every 4
// weight rows, and their 4 streams had no prefetch: 0.5-0.7 of the read bandwidth). The weights are
// read 256 bits at a time: a GGUF aligns tensors to 32 bytes, and 512-bit loads that
// straddle two lines held a DRAM stream at ~0.75 of the read loop (Zen5, 1 thread), 256-bit
// ones at 0.87-1.0.
void gemv_bf16(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const float* x, float* y) {
  static thread_local std::vector<uint16_t> xb;
  const int64_t k32 = (k + 31) / 32 * 32, k128 = k - k % 128;
  if (int64_t(xb.size()) < k32) xb.resize(size_t(k32));
  round_row_to_bf16(x, k, xb.data());
  const uint16_t* xv = xb.data();
  for (int64_t r = r0; r < r1; ++r) {
    const uint16_t* wr = reinterpret_cast<const uint16_t*>(w + size_t(r) * w_row_bytes);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t j = 0;
    for (; j < k128; j += 128) {
      const char* ahead = reinterpret_cast<const char*>(wr + j) + kPrefetchBytes;
      DEEPMLA_UNROLL
      for (int v = 0; v < 4; ++v) {
        prefetch_stream(ahead + 64 * v);
        const __m256i w_lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + j + 32 * v));
        const __m256i w_hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + j + 32 * v + 16));
        const __m512bh wv = bf16_bits(_mm512_inserti64x4(_mm512_castsi256_si512(w_lo), w_hi, 1));
        const __m512bh xx = bf16_bits(_mm512_loadu_si512(reinterpret_cast<const void*>(xv + j + 32 * v)));
        acc[v] = _mm512_dpbf16_ps(acc[v], wv, xx);
      }
    }
    // The rest 32 at a time, the last chunk by a masked load (zeros beyond the row).
    for (int v = 0; j < k; j += 32, ++v) {
      const int64_t left = k - j;
      const __mmask32 mask = left >= 32 ? ~__mmask32(0) : __mmask32((1u << left) - 1);
      const __m512bh wv = bf16_bits(_mm512_maskz_loadu_epi16(mask, wr + j));
      const __m512bh xx = bf16_bits(_mm512_loadu_si512(reinterpret_cast<const void*>(xv + j)));
      acc[v] = _mm512_dpbf16_ps(acc[v], wv, xx);
    }
    y[r] = hsum512_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
  }
}
// float_panel_avx512.hpp's format: pairs of bf16 values, the activations' pairs rounded to
// bf16 once per call (nearest even, as the GEMV rounds them).
struct Bf16Panels {
  static constexpr int kValuesPerDword = 2;
  static __m512i row_dwords(const uint8_t* row, int64_t k, int64_t p0) {
    const int64_t left = k - 2 * p0;
    const __mmask32 mask = left >= 32 ? ~__mmask32(0) : __mmask32((1u << left) - 1);
    return _mm512_maskz_loadu_epi16(mask, row + 4 * size_t(p0));
  }
  static const uint32_t* activations(const float* x, size_t x_row_floats, int64_t n, int64_t k,
                                     std::vector<uint32_t>& scratch, size_t* stride) {
    const size_t pairs = size_t((k + 1) / 2), st = (pairs + 15) / 16 * 16;
    if (scratch.size() < size_t(n) * st + 16) scratch.resize(size_t(n) * st + 16);
    uint32_t* xb = align64_dwords(scratch.data());
    for (int64_t c = 0; c < n; ++c)
      round_row_to_bf16(x + size_t(c) * x_row_floats, k, reinterpret_cast<uint16_t*>(xb + size_t(c) * st));
    *stride = st;
    return xb;
  }
  using Vec = __m512bh;
  static __m512bh load(const uint32_t* p) { return bf16_bits(_mm512_load_si512(reinterpret_cast<const void*>(p))); }
  static __m512bh broadcast(const uint32_t* p) { return bf16_bits(_mm512_set1_epi32(int32_t(*p))); }
  static __m512 madd(__m512 acc, __m512bh w, __m512bh x) { return _mm512_dpbf16_ps(acc, w, x); }
};
}  // namespace

void matmul_bf16_avx512bf16(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1,
                            const uint8_t* x, size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  if (n == 1) return gemv_bf16(k, w, w_row_bytes, r0, r1, reinterpret_cast<const float*>(x), y);
  run_float_panels<Bf16Panels>(k, w, w_row_bytes, r0, r1, reinterpret_cast<const float*>(x), x_row_bytes / 4, n, y,
                               y_stride);
}

}  // namespace deepmla::kernels
