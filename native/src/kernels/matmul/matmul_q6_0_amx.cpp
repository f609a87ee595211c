// Q6_0 weights x bf16 activations, AMX (amx_bf16_gemm.hpp): chosen for micro-batches of at
// least kBf16GemmMinRows activation rows (registry.inc); fewer take the AVX512-VNNI variant.
#include "kernels/matmul/amx_bf16_gemm.hpp"

namespace deepmla::kernels {

void matmul_q6_0_amx(int64_t k, const uint8_t* w, size_t w_row_bytes, int64_t r0, int64_t r1, const uint8_t* x,
                     size_t x_row_bytes, int64_t n, float* y, size_t y_stride) {
  run_amx_bf16<Q6_0Weights>(k, w, w_row_bytes, r0, r1, x, x_row_bytes, n, y, y_stride);
}

}  // namespace deepmla::kernels
