// Q6_0 weights x Q8_0 activations, AVX2: row-interleaved panels of 8 weight rows
// (block_panel_avx2.hpp), the quants kept unsigned (0..63) and 32 * sum(a) subtracted.
#include "kernels/matmul/block_panel_avx2.hpp"
#include "kernels/matmul/block_weights.hpp"

namespace deepmla::kernels {

namespace {
// block_panel_avx2.hpp's format: the quants as stored, q in [0, 63].
struct Q6_0RawWeights {
  using Block = formats::BlockQ6_0;
  static constexpr int kOffset = 32;
  static __m256i raw_values(const Block* b) { return q6_0_unsigned_values(b); }
};
}  // namespace

void matmul_q6_0_avx2(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x,
                      size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  run_panels<Q6_0RawWeights>(k, w, w_row_bytes, r0, r1, x, x_row_bytes, n, y, y_stride);
}

}  // namespace deepmla::kernels
