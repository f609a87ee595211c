// Q8_0 weights x Q8_0 activations, AVX512-VNNI: vpdpbusd on weights shifted to unsigned
// (q + 128, a sign-bit flip); the batch sizes' paths in block_matmul_avx512vnni.hpp.
#include "kernels/matmul/block_matmul_avx512vnni.hpp"

namespace deepmla::kernels {

void matmul_q8_0_avx512vnni(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1,
                            const uint8_t* x, size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  matmul_blocks_avx512vnni<Q8_0Weights>(k, w, w_row_bytes, r0, r1, x, x_row_bytes, n, y, y_stride);
}

}  // namespace deepmla::kernels
