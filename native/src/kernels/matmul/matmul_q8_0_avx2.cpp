// Q8_0 weights x Q8_0 activations, AVX2: row-interleaved panels of 8 weight rows
// (block_panel_avx2.hpp), signed quants dotted with the sign trick; from 32 activation
// rows on, panels of 16 rows widened to int16 (block_panel_i16_avx2.hpp).
#include "kernels/matmul/block_panel_avx2.hpp"

namespace deepmla::kernels {

namespace {
struct Q8_0Weights {
  using Block = formats::BlockQ8_0;
  static constexpr int kOffset = 0;
  static __m256i raw_values(const Block* b) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs)); }
};
}  // namespace

void matmul_q8_0_avx2(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x,
                      size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  run_panels<Q8_0Weights>(k, w, w_row_bytes, r0, r1, x, x_row_bytes, n, y, y_stride);
}

}  // namespace deepmla::kernels
